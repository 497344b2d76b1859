"""Launching the shortfall: the cost shown and agreed, numbered launch tokens, zone failover."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from infprov.floor import paths
from infprov.floor.errors import InfprovError, UsageError
from infprov.provision import catalog, ui
from infprov.provision.ec2 import Ec2ApiError
from infprov.provision.planning import CAPACITY_CODES, InstancePlan, client_token, hourly_cost, launch_params
from infprov.provision.providers import Provider
from infprov.provision.specs import TAG_CLUSTER, Confirm, UpSpec, api_error, money


def confirm_spend(
    prov: Provider,
    spec: UpSpec,
    itype: catalog.InstanceType,
    plan: InstancePlan,
    image: Mapping[str, Any] | None,
    confirm: Confirm | None,
) -> None:
    region = prov.region
    price = itype.price(region)
    n_start = len(plan.start) + len(plan.stopping)
    parts = []
    if plan.launch:
        parts.append(f"launch {plan.launch} x {itype.name}")
    if n_start:
        parts.append(f"start {n_start} stopped {itype.name}")
    what = " and ".join(parts)
    added = hourly_cost(itype.name, region, plan.launch + n_start)
    line = f"cluster {spec.name} in {region}: {what}"
    if image is not None:
        line += f" from {image['ImageId']} ({image.get('Name')})"
    if spec.spot:
        spot = prov.spot_price(itype.name)
        cost = f"spot, now {money(spot)}/h each, at most on-demand {money(price)}/h each"
    else:
        cost = f"{money(added)}/h on-demand"
        if added is not None:
            cost += f" (${added * 24:,.2f}/day)"
        if price is None:
            cost += f": the catalog has no {region} price for {itype.name}; see aws.amazon.com/ec2/pricing"
    total = hourly_cost(itype.name, region, spec.count)
    if not spec.spot and total is not None and total != added:
        cost += f"; the whole cluster then costs {money(total)}/h"
    cost += prov.cost_note()
    if spec.model_note:
        cost += f"; {spec.model_note}"
    ui.step(f"{line}: {cost}")
    ask_or_refuse(f"{what.capitalize()}?", spec.yes, confirm, "launch instances")


def ask_or_refuse(question: str, yes: bool, confirm: Confirm | None, action: str) -> None:
    """Confirmation before spending or deleting: --yes skips it; without a terminal it is refused."""
    if yes:
        return
    if confirm is None:
        if not interactive():
            raise UsageError(f"refusing to {action} without confirmation: this run is not interactive", "pass --yes")
        confirm = _ask
    if not confirm(question):
        raise InfprovError("not confirmed: nothing was changed", f"pass --yes to {action} without asking")


def interactive() -> bool:
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


def _ask(question: str) -> bool:
    from rich.prompt import Confirm as RichConfirm

    return bool(RichConfirm.ask(question, console=ui.err, default=False))


def launch_shortfall(
    prov: Provider,
    spec: UpSpec,
    itype: catalog.InstanceType,
    image: Mapping[str, Any],
    key_name: str,
    group_id: str,
    targets: Sequence[tuple[str, str]],
    existing: int,
    tags: Mapping[str, str],
) -> list[str]:
    """Launch the shortfall in the first zone that has capacity; quota errors stop at once.

    A zone without capacity answers at once (Ec2Provider.run_instances does not let botocore retry
    it) and the next zone is tried. Each zone's ClientToken comes from LaunchTokens: the same one for
    every repeat of an attempt, a new one only once the last is known spent.
    """
    need = spec.count - existing
    tokens = LaunchTokens(prov, spec.name, group_id, spec.count, existing)
    tried: list[str] = []
    for zone, subnet in targets:
        for _ in range(MAX_SPENT_TOKENS_PER_ZONE):
            token = tokens.token(zone)
            params = launch_params(
                image=image,
                instance_type=itype.name,
                count=need,
                key_name=key_name,
                group_id=group_id,
                subnet_id=subnet,
                token=token,
                tags=tags,
                disk_gib=spec.disk_gib,
                spot=spec.spot,
            )
            ui.step(f"launching {need} x {itype.name} in {zone}")
            try:
                instances = prov.run_instances(**params)
            except Ec2ApiError as exc:
                if exc.code in CAPACITY_CODES:
                    ui.warn(f"{zone}: {exc.code}; trying the next zone")
                    tried.append(f"{zone} ({exc.code})")
                    break
                if exc.code == "IdempotentParameterMismatch" and not tokens.held_alive(token):
                    ui.warn(f"{zone}: the launch token was used before, with other settings, by instances that "
                            "have ended; launching with a new one")
                    tokens.spent(zone, token)
                    continue
                raise launch_error(exc, spec, itype, need, prov.region) from None
            ids = [str(i.id) for i in instances]
            ended = [str(i.id) for i in instances if i.state in ENDED_STATES]
            if ended and len(ended) == len(instances):
                ui.warn(f"{zone}: EC2 answered with {', '.join(ended)}, launched earlier with this token and "
                        "ended since; launching with a new one")
                tokens.spent(zone, token)
                continue
            if ended:
                raise InfprovError(
                    f"EC2 answered the launch with instances of an earlier launch of cluster {spec.name}, "
                    f"some ended ({', '.join(ended)}), some not ({', '.join(i for i in ids if i not in ended)})",
                    "the next run counts the live ones and launches only the rest",
                )
            ui.ok(f"launched {', '.join(ids)} in {zone}")
            return ids
        else:
            raise InfprovError(
                f"EC2 kept answering the launch in {zone} with ended instances "
                f"({MAX_SPENT_TOKENS_PER_ZONE} launch tokens in a row)",
                "rerun with --debug and report it; `infprov teardown` and `up` again starts the cluster afresh",
            )
    raise InfprovError(
        f"no capacity for {need} x {itype.name} in any zone of {prov.region}: tried {', '.join(tried)}",
        "try again later, another --region, or a smaller --count",
    )


ENDED_STATES = ("shutting-down", "terminated")


MAX_SPENT_TOKENS_PER_ZONE = 5


class LaunchTokens:
    """The ClientTokens of one launch of a cluster, and when a new one is due.

    Why a token: EC2 carries out a RunInstances call whose ClientToken it has seen before only once,
    and answers every repeat with the instances the first call launched. So a call that is repeated
    (botocore's or infprov's retry, `up` run again after a crash or Ctrl-C between sending the call
    and recording its answer, or the same `up` on another machine at the same time) never launches a
    second set.

    Why not one token per launch step for ever (infprov's first design: a hash of cluster, security
    group, target count, instances already there, zone): EC2 keeps a token for at least 24 h after
    the instances it launched terminate. After a spot interruption or a manual terminate, the next
    `up` is the same step again, sends the same token, gets the dead instances back (or, if a setting
    changed since, IdempotentParameterMismatch), and every retry fails alike.

    The rule here: each step has a sequence of tokens, attempt 0, 1, 2, ... (client_token), and
    local state (INFPROV_HOME/launch/REGION-CLUSTER.json, 0600, written atomically) keeps the
    attempt each step has reached. The attempt moves on only when its token is known spent, that
    is, when it can never again launch anything:
      - the cluster's instances that hold it are all terminated or shutting-down, and none that is
        alive holds it (DescribeInstances, which shows ended instances for about an hour);
      - RunInstances answers with instances that have all ended (EC2 repeating an old answer);
      - RunInstances refuses it with IdempotentParameterMismatch and no live instance holds it (the
        instances it launched have ended and a setting changed since).
    Nothing else moves it: a capacity error, throttling, a timeout, a lost answer, an interrupted or
    crashed run all keep the attempt, so every repeat of an attempt sends the same token and EC2
    answers with what the first call launched, if it launched anything. A spent token holds nothing
    alive, so leaving it behind never leaves a live set behind that the new token would double.

    Why numbered attempts and not a random nonce: a random nonce lives in this machine's state only;
    another machine, or this one after INFPROV_HOME was lost, would send another token for the same
    step and launch a second set beside the first. Numbered attempts are the same everywhere: state
    that is behind walks the same sequence, skipping tokens seen spent (through DescribeInstances, or
    EC2's answer), and arrives at the token the others send. The state saves those round trips, and
    remembers spent tokens after DescribeInstances has forgotten their instances. Attempt 0 is the
    token earlier infprov versions sent, so a launch they left half-done is still recognised.

    Left open: a token whose instances are alive but not yet visible to DescribeInstances (eventual
    consistency, seconds after a launch) and that EC2 refuses as a mismatch would be taken as spent.
    That needs a second `up` of the same cluster with other settings within seconds of the first,
    from another machine (on this one the cluster lock makes runs take turns).
    """

    def __init__(self, prov: Provider, cluster: str, group_id: str, count: int, existing: int) -> None:
        self.prov = prov
        self.region = prov.region
        self.cluster = cluster
        self.group_id = group_id
        self.count = count
        self.existing = existing
        folder = paths.private_dir(paths.home() / "launch", role="launch tokens folder")
        self.path = folder / f"{self.region}-{cluster}.json"
        self.attempts = self._load()
        self.live: set[str] = set()
        self.ended: set[str] = set()
        self._look()

    def token(self, zone: str) -> str:
        """The token to send for this zone now: the step's attempt, past every token seen spent."""
        step = self._step(zone)
        start = attempt = self.attempts.get(step, 0)
        while self._token(zone, attempt) in self.ended and self._token(zone, attempt) not in self.live:
            attempt += 1
        if attempt != start:
            self._save(step, attempt)
        return self._token(zone, attempt)

    def spent(self, zone: str, token: str) -> None:
        """EC2 showed that token can launch nothing any more: the zone's next attempt is due."""
        self.ended.add(token)
        self.live.discard(token)
        step = self._step(zone)
        attempt = self.attempts.get(step, 0)
        if self._token(zone, attempt) == token:
            self._save(step, attempt + 1)

    def held_alive(self, token: str) -> bool:
        """Whether an instance that is not ending holds this token (looked up afresh)."""
        self._look()
        return token in self.live

    def _step(self, zone: str) -> str:
        return f"{self.count}|{self.existing}|{zone}"

    def _token(self, zone: str, attempt: int) -> str:
        return client_token(self.region, self.cluster, self.group_id, self.count, self.existing, zone, attempt)

    def _look(self) -> None:
        self.live.clear()
        self.ended.clear()
        for inst in self.prov.instances({f"tag:{TAG_CLUSTER}": [self.cluster]}):
            token = inst.client_token
            if token:
                (self.ended if inst.state in ENDED_STATES else self.live).add(str(token))

    def _load(self) -> dict[str, int]:
        if not self.path.exists():
            return {}
        paths.check_private_file(self.path, role="launch token state")
        try:
            doc = json.loads(self.path.read_text())
        except (OSError, ValueError):
            doc = None
        if not isinstance(doc, dict) or not isinstance(doc.get("attempts"), dict):
            ui.warn(f"{self.path} is not valid launch token state; starting over (the tokens are derived anew)")
            return {}
        if doc.get("group_id") != self.group_id:  # the cluster was made again: its tokens are all new
            return {}
        return {str(k): v for k, v in doc["attempts"].items() if isinstance(v, int) and v >= 0}

    def _save(self, step: str, attempt: int) -> None:
        self.attempts[step] = attempt
        doc = {"region": self.region, "cluster": self.cluster, "group_id": self.group_id, "attempts": self.attempts}
        paths.write_private(self.path, json.dumps(doc, indent=1, sort_keys=True) + "\n")


def launch_error(exc: Ec2ApiError, spec: UpSpec, itype: catalog.InstanceType, need: int, region: str) -> InfprovError:
    if exc.code == "VcpuLimitExceeded":
        quota = itype.vcpu_quota(spec.spot)
        return InfprovError(
            f"launching {need} x {itype.name} ({need * itype.vcpus} vCPUs) exceeds this account's "
            f"vCPU quota in {region}",
            f"raise the EC2 quota '{quota}' in Service Quotas ({region}) to at least the cluster's vCPUs",
        )
    if exc.code == "MaxSpotInstanceCountExceeded":
        return InfprovError(
            f"spot request refused in {region}: {exc.message}",
            f"raise the EC2 quota '{itype.vcpu_quota(spot=True)}' in Service Quotas, or drop --spot",
        )
    if exc.code == "IdempotentParameterMismatch":  # reached only while a live instance holds the token
        return InfprovError(
            f"an earlier `up` of cluster {spec.name}, whose instances are still alive, used the same launch "
            "token with other settings",
            f"run `infprov up` again with the earlier settings (it finds those instances), or "
            f"`infprov teardown --name {spec.name}` and run up again",
        )
    if exc.code.startswith("InvalidAMIID"):
        return InfprovError(f"the AMI cannot be launched in {region}: {exc.message}", "pin another with --ami")
    if exc.code == "UnauthorizedOperation":
        # The credentials did work up to here (the lookups before the launch): what is refused is this
        # launch, most likely by a condition of the IAM policy on one of its resources.
        key = f"your key pair {spec.key_name} needs a grant of its own; " if spec.key_name else ""
        return InfprovError(
            f"EC2 refused the launch of {need} x {itype.name} in {region} (UnauthorizedOperation: {exc.message})",
            "infprov's IAM policy (provision/data/iam-policy.json) launches only inf1/inf2/trn1 types, with "
            f"IMDSv2 required, into a security group and with a key pair tagged infprov:managed=true; {key}"
            "see README, The IAM policy. `aws sts decode-authorization-message --encoded-message ...` names "
            "the refused resource",
        )
    return api_error(exc, f"launch of {need} x {itype.name}")
