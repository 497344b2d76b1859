"""One function per command: each does the work and returns a result the CLI renders (bench aside)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from infprov.floor.errors import InfprovError, UsageError
from infprov.provision import targets, ui

# The cloud code and the playbook engine (paramiko, jinja2, yaml) are imported inside the lifecycle that needs
# them, so importing the CLI loads none of them (tests/unit/test_cli_startup.py); boto3 waits further, until
# ec2._sdk() is first called: a command refused before it asks EC2 anything never loads it.
if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from infprov.inventory.model import Host, Inventory
    from infprov.playbooks.results import Event, RunResult
    from infprov.provision.ansible_play import AnsibleRun
    from infprov.provision.bench import HostRun, Interrupts
    from infprov.provision.benchplan import BenchPlan
    from infprov.provision.bundle import Bundle
    from infprov.provision.preflight import Outcome, Standin
    from infprov.provision.providers import Provider
    from infprov.provision.server import ServerResult
    from infprov.provision.specs import StatusResult, StopResult, TeardownResult, UpResult, UpSpec
    from infprov.provision.usermodel import ModelPlan


# ---------------------------------------------------------------- up = cloud -> inventory -> server playbook
@dataclass(frozen=True)
class UpOutcome:
    """The cloud part's result, and the server playbook's (None with --skip-server)."""

    cloud: UpResult
    served: ServerResult | None
    continue_hint: str

    def to_dict(self) -> dict[str, Any]:
        doc = self.cloud.to_dict()
        return doc if self.served is None else {**doc, "server": self.served.to_dict()}

    def error(self) -> InfprovError | None:
        """Triton not serving on some host: one error naming each, and how to continue."""
        if self.served is None or self.served.ok:
            return None
        bad = [h for h in self.served.hosts if not h.ready]
        return InfprovError(
            f"Triton is not serving on {len(bad)} of {len(self.served.hosts)} host(s): "
            + "; ".join(f"{h.address}: {h.error}" for h in bad),
            f"fix it, then {self.continue_hint} (log: {self.served.log})",
        )


def up(
    spec: UpSpec,
    *,
    preflight: bool = True,
    lifetime: int | None = None,
    skip_server: bool = False,
    before_server: Callable[[UpResult], None] | None = None,
    on_event: Callable[[Event], None] | None = None,
    idle: tuple[int, str] | None = None,
    model: ModelPlan | None = None,
    cache: bool = True,
) -> UpOutcome:
    """Preflight, the cloud part (find or launch, wait for SSH, record the hosts in the inventory), the
    auto-teardown deadline, then the server playbook on every host, the Neuron environment taken from the
    account's cache where it is there (cache=False, or a model of the user's: every host builds it, the cache
    is neither read nor written), then the idle watch (idle: its seconds and action, stop or terminate).
    before_server sees the cloud part's result before the playbook starts; on_event gets the runner's
    progress events."""
    from infprov.floor import paths
    from infprov.provision import cloud, providers, usermodel

    # What is cheap and local first (the region, the sandbox being up), then what EC2 answers at once (the
    # type, the cluster's owner), and only then preflight's many requests to the internet.
    prov = providers.connect(spec.region, spec.sandbox)
    cloud.check_up(spec, prov)
    if idle is not None or lifetime is not None:
        _check_idle_and_deadline(prov, spec.name, idle, lifetime)
    if preflight and os.environ.get("INFPROV_NO_PREFLIGHT") != "1":
        check_before_up(prov.standin(), spec.instance_type)
    # the upload is made (and its size known) before anything is launched, in a folder of this run's own that
    # goes when the run ends: the hosts keep the model, and the next `up` packs it again
    with usermodel.staged_for_run(model, paths.home() / "models") as staged:
        return _up_staged(spec, prov, staged, model, skip_server, idle, lifetime, cache, on_event, before_server)


def _up_staged(spec: UpSpec, prov: Provider, staged: dict[str, Any] | None, model: ModelPlan | None,
               skip_server: bool, idle: tuple[int, str] | None, lifetime: int | None, cache: bool,
               on_event: Callable[[Event], None] | None, before_server: Callable[[UpResult], None] | None
               ) -> UpOutcome:
    from infprov.floor import paths
    from infprov.provision import cloud, envcache, server

    result = cloud.up(spec, provider=prov)
    if idle is None and result.started:  # a started host's idle watch ended with its power-off: armed again
        idle = _idle_tagged(prov, result.started)
    if lifetime is not None:
        _schedule_teardown(result, prov, lifetime, spec.inventory)
    hint = cloud.continue_hint(spec)
    if skip_server:
        if idle is not None:
            _arm_idle(result, prov, idle, spec.inventory)
        return UpOutcome(result, None, hint)
    try:
        if before_server is not None:
            before_server(result)
        # what the cluster serves, for bench (its default model, a text model's vocabulary)
        served_vars = {"infprov_served_model": staged["infprov_model_name"] if staged else "",
                       "infprov_model_vocab": model.vocab_size if model is not None else 0}
        group_vars = {**prov.server_vars(), **served_vars}

        def run(ids: list[str]) -> ServerResult:
            return server.provision(result.cluster, ids, group_vars=group_vars, inventory=spec.inventory,
                                    on_event=on_event, extra_vars=staged,
                                    model=staged["infprov_model_name"] if staged else None)

        with cloud.server_lock(result.region, result.cluster):
            if cache and staged is None and os.environ.get("INFPROV_NO_CACHE") != "1":
                profile = str(group_vars.get("infprov_profile") or spec.instance_type.split(".")[0])
                served = envcache.provision(prov, result.hosts, profile, run, paths.known_hosts())
            else:
                served = run([h.instance_id for h in result.hosts])
    except KeyboardInterrupt:
        ui.warn(f"the instances are up; Triton may be half set up on them: {hint}")
        raise
    if idle is not None:  # armed once the server step is over, so the idle clock starts when it serves
        _arm_idle(result, prov, idle, spec.inventory)
    return UpOutcome(result, served, hint)


def _check_idle_and_deadline(prov: Provider, cluster: str, idle: tuple[int, str] | None,
                             lifetime: int | None) -> None:
    from datetime import datetime, timezone

    from infprov.provision import idlestop
    from infprov.provision.planning import cluster_filter
    from infprov.provision.specs import LIVE_STATES

    found = prov.instances({**cluster_filter(cluster), "instance-state-name": list(LIVE_STATES)})
    idlestop.check_cluster(cluster, [i.tags for i in found], idle, lifetime, datetime.now(timezone.utc))


def _idle_tagged(prov: Provider, instance_ids: Sequence[str]) -> tuple[int, str] | None:
    """The idle-stop setting `up --idle-stop` tagged on these instances, if any."""
    from infprov.provision import idlestop

    found = (idlestop.read_tag(i.tags) for i in prov.instances({"instance-id": list(instance_ids)}))
    return next((setting for setting in found if setting is not None), None)


def _arm_idle(result: UpResult, prov: Provider, idle: tuple[int, str], inventory: str | None) -> None:
    from infprov.floor import paths
    from infprov.inventory import store
    from infprov.provision import idlestop

    inv = store.load(paths.inventory_file(inventory))
    hosts = [h for h in (inv.find(x.instance_id) for x in result.hosts) if h is not None]
    idlestop.arm(prov, hosts, *idle)


def _schedule_teardown(result: UpResult, prov: Provider, seconds: int, inventory: str | None) -> None:
    from infprov.floor import paths
    from infprov.inventory import store
    from infprov.provision import autoteardown

    inv = store.load(paths.inventory_file(inventory))
    hosts = [h for h in (inv.find(x.instance_id) for x in result.hosts) if h is not None]
    autoteardown.schedule(prov, hosts, seconds)


def auto_teardown(name: str | None, inventory: str | None, seconds: int | None) -> str:
    """Move a cluster's auto-teardown deadline to `seconds` from now, or cancel it (None), without `up`.
    Returns the cluster's name."""
    from infprov.floor import paths
    from infprov.inventory import store
    from infprov.provision import autoteardown, providers

    chosen, region, sandbox = targets.recorded_target(name, None, False, inventory, one_cluster=True)
    inv_path = paths.inventory_file(inventory)
    hosts = store.load(inv_path).in_cluster(chosen) if chosen else []
    if not hosts:
        where = f"cluster {chosen!r}" if chosen else str(inv_path)
        raise UsageError(f"no hosts in {where}", "see `infprov inventory` (or run `infprov up`)")
    prov = providers.connect(None if sandbox else region, sandbox)
    if seconds is None:
        autoteardown.cancel(prov, hosts)
    else:
        from infprov.provision import idlestop

        insts = prov.instances({"instance-id": [h.name for h in hosts]})
        if any((idlestop.read_tag(i.tags) or (0, ""))[1] == idlestop.STOP for i in insts):
            raise UsageError(f"cluster {chosen} stops itself when idle (up --idle-stop without --down), so its "
                             "power-off stops rather than terminates it: a deadline would only stop it",
                             f"run `infprov up ... --name {chosen} --idle-stop D --down` first, or `infprov stop`")
        autoteardown.schedule(prov, hosts, seconds)
    return str(chosen)


def stop(name: str | None, region: str | None, sandbox: bool, inventory: str | None) -> StopResult:
    """Stop a cluster's instances (the inventory's one when no name is given); their disks stay."""
    from infprov.provision import cloud

    chosen, region, sandbox = targets.recorded_target(name, region, sandbox, inventory, one_cluster=True)
    if chosen is None:
        raise UsageError("no cluster to stop: the inventory holds none", "give its name: `infprov stop NAME`")
    return cloud.stop(name=chosen, region=region, sandbox=sandbox)


def start(
    name: str | None, region: str | None, sandbox: bool, inventory: str | None, *, yes: bool, skip_server: bool,
    before_server: Callable[[UpResult], None] | None = None, on_event: Callable[[Event], None] | None = None,
) -> UpOutcome:
    """Start a stopped cluster again and bring its server back: `up` for the type and count its instances have
    (the cost is shown and asked for unless yes). The hosts kept their disks, so the server starts from the
    committed environment image: setup.sh does not run again."""
    from infprov.provision import providers, specs
    from infprov.provision.planning import cluster_filter

    chosen, region, sandbox = targets.recorded_target(name, region, sandbox, inventory, one_cluster=True)
    if chosen is None:
        raise UsageError("no cluster to start: the inventory holds none", "give its name: `infprov start NAME`")
    prov = providers.connect(region, sandbox)
    prov.prepare()
    found = prov.instances({**cluster_filter(chosen), "instance-state-name": list(specs.LIVE_STATES)})
    if not found:
        where = "the sandbox" if prov.sandbox else prov.region
        raise UsageError(f"no cluster {chosen} in {where}", "see `infprov status` (a terminated cluster is gone: "
                         "`infprov up` makes a new one)")
    kinds = sorted({i.instance_type for i in found})
    if len(kinds) != 1:
        raise InfprovError(f"cluster {chosen} has instances of several types ({', '.join(kinds)})",
                           f"`infprov up --type T --name {chosen}` for the type you mean")
    spec = specs.UpSpec(instance_type=kinds[0], name=chosen, count=len(found),
                        region=None if prov.sandbox else prov.region, yes=yes, sandbox=prov.sandbox,
                        inventory=inventory)
    # a started host's idle watch is armed again as its tag says (up does it for every instance it starts)
    return up(spec, preflight=False, skip_server=skip_server, before_server=before_server, on_event=on_event)


def check_before_up(standin: Standin | None, instance_type: str) -> None:
    """`up`'s preflight: the failed items on stderr, then one error; nothing is launched."""
    from infprov.provision import catalog
    from infprov.provision import preflight as pf

    ui.step("preflight: checking that what the instances will fetch still exists"
            + (" (the sandbox's stand-in download server)" if standin is not None else ""))
    generation = catalog.generation(instance_type)
    failed = [o for o in pf.run(standin=standin, generations=(generation,)) if not o.ok]
    for line in collapsed_failures(failed):
        ui.err.print(line, soft_wrap=True)
    if failed:
        raise InfprovError(f"preflight: {len(failed)} pinned download(s) are gone or unreachable; nothing was launched",
                           "fix them (see the lines above), or pass --no-preflight to launch anyway")


def collapsed_failures(failed: Sequence[Outcome]) -> list[str]:
    """One line per distinct reason: twelve items that failed alike (no network, a DNS failure, the stand-in
    answering 404) are one line naming them all, not twelve."""
    groups: dict[tuple[str, str], list[Outcome]] = {}
    for outcome in failed:
        first, _, rest = outcome.detail.partition(" ")
        reason = rest if "://" in first and rest else outcome.detail
        groups.setdefault((reason, outcome.fix), []).append(outcome)
    lines = []
    for (reason, fix), members in groups.items():
        if len(members) == 1:
            lines.append(members[0].line())
        else:
            names = ", ".join(m.name for m in members)
            lines.append(f"FAIL  {len(members)} items ({names}): {reason}. fix: {fix}")
    return lines


def preflight(
    region: str | None, sandbox: bool, no_ami: bool, fresh: bool, instance_type: str | None
) -> list[Outcome]:
    """Every pinned download (and, unless no_ami, the AMI `up` would pick), checked from here."""
    from infprov.provision import catalog, providers, specs
    from infprov.provision import preflight as pf

    if region is not None:  # checked here, before anything is asked of the network
        specs.validate_region(region)
    if instance_type is not None:
        generations: tuple[str, ...] = (catalog.generation(instance_type),)
        family = catalog.get(instance_type).name.split(".")[0]
    else:
        generations, family = pf.GENERATIONS, "inf1"
    extra = [] if no_ami else [pf.ami_outcome(region, sandbox, family)]
    # the sandbox's provider says where its hosts download from (AWS's hosts: the internet, no region needed)
    standin = providers.connect(region, sandbox).standin() if sandbox else None
    return pf.run(extra, use_cache=not fresh, standin=standin, generations=generations)


# ---------------------------------------------------------------- types
def types(region: str | None) -> dict[str, Any]:
    """The instance types infprov supports, from its catalog (no network): chips, NeuronCores, vCPUs, memory
    and the on-demand price in region (default: the configured region, else us-east-1)."""
    from infprov.provision import catalog, specs
    from infprov.provision.ec2 import default_region

    where = specs.validate_region(region) if region is not None else (default_region() or "us-east-1")
    rows = []
    for t in catalog.TYPES.values():
        rows.append({
            "type": t.name, "family": t.family, "generation": "Neuron v2" if t.generation == catalog.NEURON_V2
            else "Neuron v1", "chips": t.neuron_devices, "neuron_cores": t.neuron_cores, "vcpus": t.vcpus,
            "memory_gib": t.memory_gib, "hourly_price": t.price(where),
        })  # fmt: skip
    return {"region": where, "types": rows}


# ---------------------------------------------------------------- status / teardown
def status(
    name: str | None, region: str | None, sandbox: bool, inventory: str | None, health: bool = True
) -> StatusResult:
    """The clusters as EC2 sees them; what the command line leaves out comes from the inventory. With health,
    each running host of this home's clusters is also asked what its Triton says (over SSH, briefly)."""
    from infprov.provision import cloud
    from infprov.provision.specs import StatusResult

    _, region, sandbox = targets.recorded_target(name, region, sandbox, inventory, one_cluster=False)
    if name is None and _nowhere_to_look(region, sandbox, inventory):
        return StatusResult(region="", clusters=())
    result = cloud.status(name=name, region=region, sandbox=sandbox, inventory=inventory)
    return with_health(result, inventory) if health else result


def with_health(result: StatusResult, inventory: str | None) -> StatusResult:
    """The status with each running host's Triton health (this home's hosts, as the inventory records them)."""
    from dataclasses import replace

    from infprov.floor import paths
    from infprov.inventory import store
    from infprov.provision import health
    from infprov.provision.server import model_of

    inv = store.load(paths.inventory_file(inventory))
    asked: list[tuple[str, Any, str]] = []
    for cluster in result.clusters:
        for info in cluster.instances:
            host = inv.find(info.instance_id) if cluster.mine and info.state == "running" else None
            if host is not None:
                asked.append((info.instance_id, host, model_of(host)))
    if not asked:
        return result
    answers = health.probe([(h, m) for _, h, m in asked], paths.known_hosts())
    by_id = {iid: a.to_dict() for (iid, _, _), a in zip(asked, answers, strict=True)}
    clusters = tuple(
        replace(c, instances=tuple(replace(i, triton=by_id.get(i.instance_id)) for i in c.instances))
        for c in result.clusters
    )
    return replace(result, clusters=clusters)


def _nowhere_to_look(region: str | None, sandbox: bool, inventory: str | None) -> bool:
    """Nothing named, nothing in the inventory and no region configured (a sandbox user whose last cluster
    is gone): there is nothing to act on, which is no usage error."""
    from infprov.provision.ec2 import default_region

    return region is None and not sandbox and targets.nothing_recorded(inventory) and not default_region()


def teardown(
    name: str | None, all_clusters: bool, region: str | None, sandbox: bool, yes: bool, dry_run: bool,
    inventory: str | None, any_home: bool = False, cache: bool = False,
) -> TeardownResult:
    """Terminate and delete what infprov made for the cluster (or all), then sweep by tag."""
    from infprov.provision import cloud

    if name is not None and all_clusters:
        raise UsageError("--name and --all exclude each other", "give one of them")
    name, region, sandbox = targets.recorded_target(name, region, sandbox, inventory, one_cluster=not all_clusters)
    if name is None and _nowhere_to_look(region, sandbox, inventory):
        from infprov.provision.specs import TeardownResult

        return TeardownResult(region="", scope="nothing", dry_run=dry_run)
    return cloud.teardown(
        name=name, all_clusters=all_clusters, region=region, sandbox=sandbox, yes=yes, dry_run=dry_run,
        inventory=inventory, any_home=any_home, cache=cache,
    )


def teardown_error(result: TeardownResult) -> InfprovError | None:
    if not result.leftovers:
        return None
    left = ", ".join(f"{x.resource_type} {x.resource_id}" for x in result.leftovers)
    return InfprovError(
        f"still left after teardown: {left}", "run `infprov teardown` again; if it stays, delete it by hand"
    )


# ---------------------------------------------------------------- inventory / play
def inventory(path: str | None) -> Inventory:
    from infprov.floor import paths
    from infprov.inventory import store

    return store.load(paths.inventory_file(path))


def ssh_config(path: str | None) -> str:
    """An OpenSSH config block per host, with infprov's key and pinned host keys."""
    from infprov.floor import paths
    from infprov.inventory import ssh_config as make_ssh_config

    return make_ssh_config(inventory(path).hosts, paths.known_hosts())


ENGINES = ("auto", "ansible", "infprov")


def play(
    playbook: str,
    *,
    name: str | None = None,
    host: str | None = None,
    check: bool = False,
    extra_vars: Sequence[str] = (),
    forks: int | None = None,
    inventory: str | None = None,
    tags: Sequence[str] = (),
    skip_tags: Sequence[str] = (),
    limit: str | None = None,
    diff: bool = False,
    verbosity: int = 0,
    engine: str = "auto",
    on_event: Callable[[Event], None] | None = None,
    on_line: Callable[[str], None] | None = None,
    on_output: Callable[[str], None] | None = None,
) -> RunResult | AnsibleRun:
    """Run a playbook against the inventory's hosts (all, one cluster, one host, or --limit's).

    A user's playbook file runs on ansible-core (provision/ansible_play.py: on_line gets infprov's lines,
    on_output ansible-playbook's own); the built-in ones (`server`, `bench`, or the shipped files' paths) on
    infprov's engine (on_event gets its events). engine `ansible` or `infprov` chooses instead."""
    from infprov.provision import ansible_play

    if name and host:
        raise UsageError("--name and --host cannot be used together", "pick one")
    if engine not in ENGINES:
        raise UsageError(f"--engine {engine!r} is not one of {', '.join(ENGINES)}", "e.g. --engine ansible")
    if engine == "auto":
        engine = "infprov" if ansible_play.builtin_playbook(playbook) else "ansible"
    if engine == "infprov":
        if diff or verbosity:
            raise UsageError("--diff and -v are ansible-core's: infprov's engine runs this playbook",
                             "leave them out, or pass --engine ansible")
        return _play_on_engine(playbook, name=name, host=host, check=check, extra_vars=extra_vars, forks=forks,
                               inventory=inventory, tags=tags, skip_tags=skip_tags, limit=limit, on_event=on_event)
    return _play_on_ansible(playbook, name=name, host=host, check=check, extra_vars=extra_vars, forks=forks,
                            inventory=inventory, tags=tags, skip_tags=skip_tags, limit=limit, diff=diff,
                            verbosity=verbosity, on_line=on_line, on_output=on_output)


def _selected(inv: Inventory, inv_path: Any, name: str | None, host: str | None) -> list[str] | None:
    """--name's or --host's host names (None: neither was given)."""
    if name:
        chosen = [h.name for h in inv.in_cluster(name)]
        if not chosen:
            raise UsageError(f"no hosts in cluster {name!r}", f"clusters: {', '.join(inv.clusters)}")
        return chosen
    if host:
        found = inv.find(host)
        if found is None:
            raise UsageError(f"no host {host!r} in {inv_path}", "see `infprov inventory`")
        return [found.name]
    return None


def _play_on_engine(
    playbook: str, *, name: str | None, host: str | None, check: bool, extra_vars: Sequence[str],
    forks: int | None, inventory: str | None, tags: Sequence[str], skip_tags: Sequence[str], limit: str | None,
    on_event: Callable[[Event], None] | None,
) -> RunResult:
    from infprov.floor import paths
    from infprov.inventory import store
    from infprov.playbooks.engine import load_playbook, parse_extra_vars
    from infprov.playbooks.runner import run_playbook

    book = load_playbook(playbook)  # the whole playbook is checked before anything is made or run
    inv_path = paths.inventory_file(inventory)
    inv = store.load(inv_path)
    variables = parse_extra_vars(list(extra_vars))
    if not inv.hosts:
        raise InfprovError(f"inventory {inv_path} has no hosts", "run `infprov up` first, or pass --inventory")
    chosen = _selected(inv, inv_path, name, host)
    if limit:
        from infprov.inventory.errors import InventoryError

        try:
            narrowed = {h.name for h in inv.select(limit)}
        except InventoryError as exc:
            raise UsageError(f"--limit {limit!r}: {exc.message}", "give a group, a host or a pattern") from None
        chosen = [n for n in (chosen if chosen is not None else [h.name for h in inv.hosts]) if n in narrowed]
        if not chosen:
            raise UsageError(f"--limit {limit!r} matches no selected host", "see `infprov inventory`")
    return run_playbook(
        book, inv, limit=chosen, extra_vars=variables, check=check, forks=forks, on_event=on_event,
        known_hosts=paths.known_hosts(), runs_dir=paths.runs_dir(), tags=list(tags), skip_tags=list(skip_tags),
    )  # fmt: skip


def play_syntax_check(playbook: str, *, engine: str = "auto", inventory: str | None = None) -> str:
    """Check a playbook without running it (ansible-playbook --syntax-check, or the engine's own parse and
    checks for infprov's playbooks): the playbook's path when it is fine, else a UsageError with its one line."""
    from infprov.floor import paths
    from infprov.playbooks.parsing import load_playbook, resolve_playbook
    from infprov.provision import ansible_play

    if engine not in ENGINES:
        raise UsageError(f"--engine {engine!r} is not one of {', '.join(ENGINES)}", "e.g. --engine ansible")
    if engine == "auto":
        engine = "infprov" if ansible_play.builtin_playbook(playbook) else "ansible"
    book = resolve_playbook(playbook)
    if engine == "infprov":
        load_playbook(book)  # refuses, in one line, what the engine does not run
        return str(book)
    ansible_play.ansible_version()  # one line saying how to install ansible-core when it is missing
    problem = ansible_play.syntax_check(book, paths.inventory_file(inventory), paths.home(), paths.known_hosts())
    if problem:
        raise UsageError(problem, "fix the playbook")
    return str(book)


def _play_on_ansible(
    playbook: str, *, name: str | None, host: str | None, check: bool, extra_vars: Sequence[str],
    forks: int | None, inventory: str | None, tags: Sequence[str], skip_tags: Sequence[str], limit: str | None,
    diff: bool, verbosity: int, on_line: Callable[[str], None] | None, on_output: Callable[[str], None] | None,
) -> AnsibleRun:
    from infprov.floor import paths
    from infprov.inventory import store
    from infprov.playbooks.parsing import parse_extra_vars, resolve_playbook
    from infprov.provision import ansible_play

    book = resolve_playbook(playbook)
    inv_path = paths.inventory_file(inventory)
    inv = store.load(inv_path)
    secrets = parse_extra_vars(list(extra_vars))  # infprov's own checks of -e, and what it must mask
    version = ansible_play.ansible_version()
    warning = ansible_play.version_warning(version)
    if warning:
        ui.warn(warning)
    home, known = paths.home(), paths.known_hosts()
    if not inv.hosts:
        problem = ansible_play.syntax_check(book, inv_path, home, known)
        if problem:
            raise UsageError(problem, "fix the playbook")
        raise InfprovError(f"inventory {inv_path} has no hosts", "run `infprov up` first, or pass --inventory")
    chosen = _selected(inv, inv_path, name, host)
    within = name if name else chosen[0] if chosen else None
    ansible_play.check_inventory(inv, chosen if chosen is not None else [h.name for h in inv.hosts])
    count = len(chosen) if chosen is not None else len(inv.hosts)
    options = ansible_play.Options(
        check=check, diff=diff, tags=tuple(tags), skip_tags=tuple(skip_tags), verbosity=verbosity, forks=forks,
        extra_vars=tuple(extra_vars),
    )  # fmt: skip
    return ansible_play.run(
        book, inv_path, inv, limit=ansible_play.limit_pattern(limit, within),
        forks=forks or max(1, min(count, ansible_play.DEFAULT_FORKS_MAX)), options=options, home=home,
        known_hosts=known, runs_dir=None, secrets=secrets, on_line=on_line, on_output=on_output,
        version=version,
    )  # fmt: skip


def play_error(result: RunResult | AnsibleRun) -> InfprovError | None:
    """No host matched, or some failed: one error with the first failure and where the log is."""
    from infprov.playbooks.results import RunResult as EngineResult

    if not isinstance(result, EngineResult):
        from infprov.provision import ansible_play

        return ansible_play.run_error(result)
    if not result.stats:
        return InfprovError(
            "no host matched the playbook's `hosts` patterns", "see `infprov inventory` for the cluster names"
        )
    if result.ok:
        return None
    first = result.failures()[0] if result.failures() else None
    where = f": {first.host}: {first.task}: {first.msg}" if first else ""
    return InfprovError(
        f"{len(result.failed_hosts)} of {len(result.stats)} host(s) failed{where}",
        f"see the log {result.log_path}" if result.log_path else "rerun to see the failing task",
    )


# ---------------------------------------------------------------- a host's shell: logs / ssh / tunnel
def _target(name: str | None, host: str | None, inventory: str | None) -> Host:
    return targets.pick_host(name, host, inventory)


def logs_argv(
    name: str | None, host: str | None, inventory: str | None, tail: int | None, follow: bool, setup: bool = False
) -> list[str]:
    """ssh to the host, running `docker logs` on the server container (setup: the setup run's log instead)."""
    from infprov.floor import paths
    from infprov.provision import server

    if tail is not None and tail < 0:
        raise UsageError(f"--tail {tail} is negative", "give a number of lines, e.g. --tail 200")
    target = _target(name, host, inventory)
    command = server.setup_log_command(tail, follow) if setup else server.log_command(tail, follow)
    return [*server.ssh_argv(target, paths.known_hosts()), command]


def logs_bundle(path: str, name: str | None, inventory: str | None) -> list[Bundle]:
    """`logs --bundle`: one support archive per cluster (or only --name's) in the folder `path`."""
    from infprov.floor import paths
    from infprov.inventory import store
    from infprov.provision import bundle

    inv_path = paths.inventory_file(inventory)
    inv = store.load(inv_path)
    if not inv.hosts:
        raise InfprovError(f"inventory {inv_path} has no hosts", "run `infprov up` first, or pass --inventory")
    if name is not None and not inv.in_cluster(name):
        raise UsageError(f"no cluster {bundle.shown(name, 80)!r} in {inv_path}",
                         f"clusters: {', '.join(inv.clusters)}")
    folder = bundle.check_folder(path)
    argv = ["infprov", "logs", "--bundle", path, *(["--name", name] if name is not None else [])]
    made = []
    for cluster in [name] if name is not None else inv.clusters:
        hosts = inv.in_cluster(cluster)
        ui.step(f"collecting a support bundle from {len(hosts)} host(s) of cluster {cluster}")
        made.append(bundle.make(cluster, hosts, inv, folder, known_hosts=paths.known_hosts(),
                                runs_dir=paths.runs_dir(), argv=argv))
    return made


def bundle_error(made: Sequence[Bundle]) -> InfprovError | None:
    """Hosts that could not be read: one error (their lines are on stderr already, and in the bundles)."""
    failed = [h for b in made for h in b.hosts if not h.ok]
    if not failed:
        return None
    total = sum(len(b.hosts) for b in made)
    where = ", ".join(str(b.path) for b in made)
    return InfprovError(f"{len(failed)} of {total} host(s) could not be read; their errors and what the others "
                        f"gave are in {where}", "see `infprov status`, and `infprov ssh --host H` for a host")


def ssh_argv(name: str | None, host: str | None, inventory: str | None, command: Sequence[str]) -> list[str]:
    from infprov.floor import paths
    from infprov.provision import server

    target = _target(name, host, inventory)
    return server.ssh_argv(target, paths.known_hosts()) + remote_command(command)


def remote_command(command: Sequence[str]) -> list[str]:
    """ssh joins the words after the host with spaces for the remote shell, losing their boundaries: several
    words are quoted one by one (`infprov ssh -- ls 'a b'` lists one file), one word stays a shell command
    line as ssh takes it (`infprov ssh -- 'ls | wc -l'`)."""
    import shlex

    if len(command) <= 1:
        return list(command)
    return [" ".join(shlex.quote(word) for word in command)]


def tunnel_argv(
    name: str | None, host: str | None, inventory: str | None, port: int, local_port: int | None
) -> tuple[Host, list[str]]:
    """The host, and the ssh command line that forwards its Triton port to 127.0.0.1 here."""
    from infprov.floor import paths
    from infprov.provision import server

    if not 1 <= port <= 65535 or not 1 <= (local_port or port) <= 65535:
        raise UsageError("--port and --local-port take 1 to 65535", "e.g. --port 8000")
    target = _target(name, host, inventory)
    _require_free_local_port(local_port or port, "--local-port" if local_port else "--port")
    return target, server.tunnel_argv(target, paths.known_hosts(), port, local_port or port)


def _require_free_local_port(port: int, option: str) -> None:
    """ssh -L would only print its own bind errors and go on without the forward: say it in one line first."""
    import socket

    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as ssh binds: TIME-WAIT does not count
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            raise InfprovError(f"port {port} on 127.0.0.1 is taken here ({exc.strerror}), so the tunnel cannot "
                               "listen there",
                               f"choose a free one with --local-port (e.g. {port + 10000 if port < 55535 else 18000}), "
                               f"or stop what listens on {port}") from None


# ---------------------------------------------------------------- results
# ---------------------------------------------------------------- bench
@dataclass(frozen=True)
class BenchRequest:
    """What `bench` was asked: the hosts chosen and the plan of points made for them."""

    hosts: tuple[Host, ...]
    plan: BenchPlan
    budget_ms: float | None


@dataclass(frozen=True)
class BenchOutcome:
    """What `bench` did: the run's folder, each host's part, and the fleet summary (summary.json's document)."""

    run_dir: Path
    runs: tuple[HostRun, ...]
    summary: dict[str, Any]

    @property
    def partial(self) -> bool:
        return bool(self.summary.get("partial"))

    def error(self) -> InfprovError | None:
        """A host that failed (what the others measured is kept), or a run cut short (what was measured is kept)."""
        from infprov.provision.bench import shown

        failed = [r for r in self.runs if r.error]
        if failed:
            others = len(failed) < len(self.runs)
            where = (f"what the others measured is in {shown(str(self.run_dir))}" if others
                     else f"the run's files are in {shown(str(self.run_dir))}")
            return InfprovError(f"{len(failed)} of {len(self.runs)} host(s) failed: "
                                + "; ".join(shown(r.error) for r in failed), where)
        if self.partial:
            return InfprovError("the run was interrupted; what was measured is saved (partial) in "
                                + shown(str(self.run_dir)))
        return None


def bench_request(
    name: str | None, host: str | None, inventory: str | None, *, model: str | None, batch_size: int | None,
    threads: int, request_rate: float | None, limit: float, warmup: int, tool: str, sweep: list[str] | None,
    input_data: str | None, allow_small_batch: bool, p99: str | None,
) -> BenchRequest:
    """The hosts and the plan, every option checked before anything runs or any folder is made."""
    from infprov.provision import bench as bench_mod
    from infprov.provision import benchplan
    from infprov.provision.recommend import parse_budget

    if model is not None:
        bench_mod.check_model(model)
    budget = None if p99 is None else parse_budget(p99)
    chosen = targets.select_hosts(name, host, inventory)
    served, vocab = bench_mod.served_model(chosen, inventory)
    if model is None and served:
        model = served  # what `up --model` serves on these hosts
    if input_data is not None:
        bench_mod.check_input_data(input_data)
    types = {h.instance_type for h in chosen}
    if len(types) != 1 or None in types:
        raise targets.mixed_types(chosen)
    cores = {h.neuron_cores for h in chosen}
    if len(cores) != 1:
        raise UsageError(
            f"the hosts have different NeuronCore counts ({sorted(c or 0 for c in cores)})",
            "bench them one --host at a time",
        )
    plan = benchplan.plan(
        str(types.pop()), model=model, batch_size=batch_size, threads=threads, limit_s=limit, warmup=warmup,
        tool=tool, sweep=sweep, allow_small_batch=allow_small_batch, neuron_cores=cores.pop(),
        request_rate=request_rate, input_data=input_data, vocab=vocab,
    )
    return BenchRequest(tuple(chosen), plan, budget)


def bench(
    request: BenchRequest, run_dir: Path, *, on_line: Callable[[str, str], None],
    on_progress: Callable[[dict[str, Any]], None] | None, interrupts: Interrupts,
    live: AbstractContextManager[Any] | None = None,
) -> BenchOutcome:
    """Run the plan on the hosts (live: what shows the run while it goes) and write the fleet summary. Ctrl-C
    (interrupts, the caller's) stops the clients; what was measured is saved either way."""
    from contextlib import nullcontext

    from infprov.floor import paths
    from infprov.provision import bench as bench_mod

    with live if live is not None else nullcontext():
        runs = bench_mod.run(list(request.hosts), request.plan, run_dir, on_line, paths.known_hosts(),
                             interrupts=interrupts, on_progress=on_progress)
    summary = bench_mod.write_fleet(run_dir, runs, request.plan.is_sweep, budget_ms=request.budget_ms,
                                    plan=request.plan)
    return BenchOutcome(run_dir, tuple(runs), summary)


def runs(budget_ms: float | None = None) -> list[dict[str, Any]]:
    """The past benchmark runs, newest first as the bench module lists them."""
    from infprov.floor import paths
    from infprov.provision import benchruns

    return benchruns.list_runs(paths.runs_dir(create=False), budget_ms)


def load_runs(names: Sequence[str]) -> list[dict[str, Any]]:
    from infprov.floor import paths
    from infprov.provision import benchruns

    return [benchruns.load_run(paths.runs_dir(create=False), n) for n in names]


def plot_compare(docs: Sequence[dict[str, Any]], budget_ms: float | None) -> Path | None:
    """The runs' frontiers in one plot, INFPROV_HOME/runs/compare-<UTC time>.png; None if no point can be placed."""
    import datetime as dt

    from infprov.floor import paths
    from infprov.provision import plots

    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    runs = [(str(d["run"]), [p for h in d["hosts"] for p in h.get("points") or []]) for d in docs]
    drawn = plots.plot_compare(paths.runs_dir() / f"compare-{stamp}.png", runs, budget_ms)
    return None if drawn is None else drawn.path
