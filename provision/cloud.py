"""The cloud part of `up`, `status` and `teardown`: pure plans, carried out through the EC2 provider."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

from infprov.floor import paths
from infprov.floor.errors import InfprovError, UsageError
from infprov.floor.files import file_lock
from infprov.floor.wait import wait_until
from infprov.inventory.model import Host
from infprov.provision import access, catalog, providers, reach, specs, ui
from infprov.provision.access import (
    check_user_key,
    ensure_managed_key,
    this_home_key,
)
from infprov.provision.amis import resolve_image
from infprov.provision.ec2 import Ec2ApiError, Instance, tag_map
from infprov.provision.launch import ask_or_refuse, confirm_spend, launch_shortfall
from infprov.provision.planning import (
    cluster_filter,
    cluster_tags,
    cost_so_far,
    home_of,
    hourly_cost,
    managed_key_name,
    order_zones,
    plan_instances,
)
from infprov.provision.providers import Provider
from infprov.provision.reach import forget_host_keys, hosts_of, wait_running, wait_state, wait_status_ok
from infprov.provision.specs import (
    DEFAULT_CLUSTER,
    LIVE_STATES,
    NOT_GONE_STATES,
    TAG_CLUSTER,
    TAG_MANAGED,
    ClusterInfo,
    Confirm,
    InstanceInfo,
    Leftover,
    SshWait,
    StatusResult,
    TeardownResult,
    Timeouts,
    UpResult,
    UpSpec,
    api_error,
    ticker,
    validate_name,
)


def up(
    spec: UpSpec,
    *,
    provider: Provider | None = None,
    ssh_wait: SshWait | None = None,
    confirm: Confirm | None = None,
    timeouts: Timeouts | None = None,
) -> UpResult:
    """Find or launch the cluster's instances and wait until each one takes an SSH login.

    Re-runnable: a second `up` reuses what runs, starts what is stopped and launches only the
    shortfall. After a launch, any failure says how to continue or remove the cluster.
    """
    timeouts = timeouts or specs.DEFAULT_TIMEOUTS
    prov = provider or providers.connect(spec.region, spec.sandbox)
    region = prov.region
    itype = catalog.get(spec.instance_type)
    prov.prepare()
    try:  # a Ctrl-C anywhere from here on (between two steps too) says how to continue, once
        try:
            with _lock(f"cluster-{region}-{spec.name}", timeouts):
                result = _converge(prov, spec, itype, confirm, timeouts)
        except Ec2ApiError as exc:
            raise api_error(exc, f"up of cluster {spec.name}") from None
        try:
            ids = [*result.reused, *result.started, *result.launched]
            wait_running(prov, ids, timeouts)
            wait_status_ok(prov, ids, timeouts)
            instances = prov.instances({"instance-id": ids})
            hosts = hosts_of(instances, spec.name, prov, spec.key_name)
            fresh = set(result.launched) | set(result.started)
            forget_host_keys([(h.address, h.port) for h in hosts if h.instance_id in fresh])
            if ssh_wait is None:
                reach.wait_for_ssh(hosts, timeouts, console=prov.host_key_source())
            else:
                ssh_wait(hosts, timeouts)
            _record_hosts(spec.name, hosts, spec.inventory)
        except Ec2ApiError as exc:
            err = api_error(exc, f"cluster {spec.name} was launched, then")
            raise InfprovError(err.message, continue_hint(spec)) from None
        except InfprovError as exc:
            hint = f"{exc.hint}; or " if exc.hint else ""
            raise InfprovError(f"cluster {spec.name}: {exc.message}", hint + continue_hint(spec)) from None
        ui.ok(f"cluster {spec.name}: {len(hosts)} host(s) take SSH logins")
    except KeyboardInterrupt as exc:
        _say_once(exc, continue_hint(spec))
        raise
    return replace(result, hosts=tuple(hosts), zones={str(i.id): str(i.zone) for i in instances})


def _say_once(interrupt: KeyboardInterrupt, message: str) -> None:
    """Warn with how to continue after a Ctrl-C, once however many handlers it passes on its way out."""
    if not getattr(interrupt, "infprov_said", False):
        ui.warn(message)
        setattr(interrupt, "infprov_said", True)  # noqa: B010 - an attribute KeyboardInterrupt does not declare


def check_up(spec: UpSpec, prov: Provider) -> None:
    """What `up` would refuse, asked of EC2 before anything slower (preflight) or anything is made: the type
    offered in the region, the cluster's owner, its type and count, the sandbox's room. Read only; `up`
    asks again under its lock."""
    itype = catalog.get(spec.instance_type)
    try:
        prov.prepare()
        if not prov.zones_offering(itype.name):
            raise UsageError(
                f"{itype.name} is not offered in {prov.region}",
                f"choose a region that offers {itype.family.capitalize()}, e.g. us-east-1 or us-west-2",
            )
        existing = prov.instances({f"tag:{TAG_CLUSTER}": [spec.name], "instance-state-name": list(LIVE_STATES)})
        check_home(prov, spec.name, paths.home_id(), existing, "choose another --name")
        plan = plan_instances(existing, spec.name, itype.name, spec.count)
        prov.check_room(spec.name, plan.launch)
    except Ec2ApiError as exc:
        raise api_error(exc, f"up of cluster {spec.name}") from None


def continue_hint(spec: UpSpec) -> str:
    """How to pick up an `up` that stopped half-way, or undo it: the options that find the same cluster."""
    where = " --sandbox" if spec.sandbox else ""
    if spec.region:
        where += f" --region {spec.region}"
    count = f" --count {spec.count}" if spec.count != 1 else ""
    again = f"infprov up --type {spec.instance_type} --name {spec.name}{count}{where}"
    return f"run `{again}` again to continue or `infprov teardown --name {spec.name}{where}` to remove it"


def _converge(
    prov: Provider, spec: UpSpec, itype: catalog.InstanceType, confirm: Confirm | None, timeouts: Timeouts
) -> UpResult:
    """Look (read only), decide, confirm, then act: key pair, security group, start, launch."""
    region = prov.region
    zones = prov.zones_offering(itype.name)
    if not zones:
        raise UsageError(
            f"{itype.name} is not offered in {region}",
            f"choose a region that offers {itype.family.capitalize()}, e.g. us-east-1 or us-west-2",
        )
    existing = prov.instances({f"tag:{TAG_CLUSTER}": [spec.name], "instance-state-name": list(LIVE_STATES)})
    home = paths.home_id()
    check_home(prov, spec.name, home, existing, "choose another --name")
    plan = plan_instances(existing, spec.name, itype.name, spec.count)
    prov.check_room(spec.name, plan.launch)
    vpc_id = prov.default_vpc()
    if vpc_id is None:
        raise InfprovError(
            f"{region} has no default VPC", f"create one with `aws ec2 create-default-vpc --region {region}`"
        )
    image: Mapping[str, Any] | None = None
    targets: list[tuple[str, str]] = []
    if plan.launch:
        image = resolve_image(prov, spec.ami, itype.family)
        used = [i.zone for i in existing]
        targets = order_zones(zones, prov.default_subnets(vpc_id), used)
        if not targets:
            raise InfprovError(
                f"no zone of {region} that offers {itype.name} ({', '.join(zones)}) has a default subnet",
                "create default subnets with `aws ec2 create-default-subnet --availability-zone ZONE`",
            )
    key_name = spec.key_name or this_home_key(region)
    if spec.key_name:
        check_user_key(prov, spec)
    cidr = spec.ssh_cidr or prov.caller_cidr()

    if plan.launch or plan.start or plan.stopping:
        confirm_spend(prov, spec, itype, plan, image, confirm)

    tags = cluster_tags(spec.name, spec.tags, home)
    try:
        if not spec.key_name:
            with _lock(f"key-{region}", timeouts):
                ensure_managed_key(prov, region, spec.tags)
        group_id = access.ensure_security_group(prov, vpc_id, spec.name, cidr, tags)
    except KeyboardInterrupt as exc:
        _say_once(exc, f"interrupted while making the key pair and security group: {continue_hint(spec)}")
        raise

    started: list[str] = []
    launched: list[str] = []
    try:
        if plan.stopping:
            wait_state(prov, list(plan.stopping), "stopped", timeouts.running, timeouts)
        to_start = [*plan.start, *plan.stopping]
        if to_start:
            ui.step(f"starting {len(to_start)} stopped instance(s): {', '.join(to_start)}")
            prov.start_instances(to_start)
            started = to_start
        if plan.launch and image is not None:
            launched = launch_shortfall(prov, spec, itype, image, key_name, group_id, targets, len(existing), tags)
    except KeyboardInterrupt as exc:
        _say_once(exc, f"interrupted while starting or launching instances: {continue_hint(spec)}")
        raise
    except (InfprovError, Ec2ApiError) as exc:
        err = exc if isinstance(exc, InfprovError) else api_error(exc, f"launch of cluster {spec.name}")
        hint = f"{err.hint}; then " if err.hint else ""
        raise InfprovError(err.message, hint + continue_hint(spec)) from None
    for inst_id in plan.reuse:
        ui.ok(f"reusing {inst_id}")
    return UpResult(
        cluster=spec.name,
        region=region,
        instance_type=itype.name,
        hosts=(),
        reused=plan.reuse,
        started=tuple(started),
        launched=tuple(launched),
        ami=str(image["ImageId"]) if image is not None else None,
        security_group=group_id,
        key_name=key_name,
        ssh_cidr=cidr,
        hourly_cost=hourly_cost(itype.name, region, spec.count),
        sandbox=spec.sandbox,
    )


def check_home(prov: Provider, cluster: str, home: str, instances: Sequence[Instance] | None, hint: str) -> None:
    """Refuse to act on a cluster another infprov home made (its instances or its group carry that home's
    id): two homes sharing an account never take over or remove each other's clusters by accident."""
    if instances is None:
        instances = prov.instances({**cluster_filter(cluster), "instance-state-name": list(NOT_GONE_STATES)})
    homes = {home_of(i.tags) for i in instances}
    homes |= {home_of(tag_map(g)) for g in prov.security_groups(cluster_filter(cluster))}
    others = sorted(h for h in homes if h is not None and h != home)
    if others:
        raise UsageError(f"cluster {cluster} belongs to another infprov home (id {', '.join(others)}), "
                         f"not this one (id {home}, {paths.home()})", hint)


def _record_hosts(cluster: str, hosts: Sequence[Host], inventory: str | None) -> None:
    """Make the inventory's group for cluster hold exactly these hosts (the cloud is the truth)."""
    from infprov.inventory import store

    store.set_cluster_hosts(paths.inventory_file(inventory), cluster, list(hosts))


def _forget_hosts(prov: Provider, inventory: str | None, cluster: str | None, keep: Sequence[str] = ()) -> None:
    """Drop the inventory's hosts of this provider and region, of one cluster or all, except keep."""
    from infprov.inventory import model, store

    kept_ids = set(keep)

    def gone(h: model.Host) -> bool:
        return ((cluster is None or h.cluster == cluster) and h.region == prov.region and prov.holds(h.extra)
                and h.name not in kept_ids)

    store.remove_where(paths.inventory_file(inventory), gone)


def status(
    *,
    name: str | None = None,
    region: str | None = None,
    sandbox: bool = False,
    provider: Provider | None = None,
    inventory: str | None = None,
    now: datetime | None = None,
) -> StatusResult:
    """Every infprov cluster in the region (the cloud is the truth); refreshes the local inventory."""
    if name is not None:
        validate_name(name)
    prov = provider or providers.connect(region, sandbox)
    prov.prepare()
    moment = now or datetime.now(timezone.utc)
    home = paths.home_id()
    try:
        found = prov.instances({**cluster_filter(name), "instance-state-name": list(NOT_GONE_STATES)})
    except Ec2ApiError as exc:
        raise api_error(exc, "status") from None
    clusters: dict[str, list[InstanceInfo]] = {}
    running: dict[str, list[Instance]] = {}
    homes: dict[str, set[str | None]] = {}
    storage = instance_storage(prov, cluster_filter(name)) if found else {}
    for inst in sorted(found, key=lambda i: str(i.id)):
        tags = inst.tags
        cluster = tags.get(TAG_CLUSTER, "?")
        homes.setdefault(cluster, set()).add(home_of(tags))
        state = inst.state
        itype = str(inst.instance_type)
        price = catalog.TYPES[itype].price(prov.region) if itype in catalog.TYPES else None
        launched = inst.launch_time
        launched_at = launched if isinstance(launched, datetime) else None
        up_now = state in ("pending", "running")
        address = prov.shown_address(inst)
        if state == "running" and itype in catalog.TYPES:
            running.setdefault(cluster, []).append(inst)
        clusters.setdefault(cluster, []).append(
            InstanceInfo(
                instance_id=str(inst.id),
                cluster=cluster,
                state=state,
                address=str(address),
                instance_type=itype,
                availability_zone=inst.zone,
                spot=inst.spot,
                launched_at=launched_at.isoformat() if launched_at else None,
                uptime_s=round((moment - launched_at).total_seconds()) if launched_at and up_now else None,
                hourly_price=price,
                cost_so_far=cost_so_far(launched_at, moment, price) if up_now else 0.0,
                auto_teardown=tags.get("infprov:auto-teardown"),
                idle_stop=tags.get("infprov:idle-stop"),
                storage_gib=storage.get(str(inst.id), (None, None))[0],
                storage_monthly_cost=storage.get(str(inst.id), (None, None))[1],
            )
        )
    def mine(cluster: str) -> bool:
        return homes[cluster] <= {None, home}

    live_ids = [i.instance_id for infos in clusters.values() for i in infos]
    _forget_hosts(prov, inventory, name, keep=live_ids)
    for cluster, insts in running.items():
        if mine(cluster):  # another home's hosts are reached with that home's key: never recorded here
            _record_hosts(cluster, hosts_of(insts, cluster, prov, None), inventory)
    return StatusResult(
        region=prov.region,
        clusters=tuple(
            ClusterInfo(n, tuple(i), home=next((h for h in sorted(homes[n], key=str) if h), None), mine=mine(n))
            for n, i in sorted(clusters.items(), key=lambda item: (not mine(item[0]), item[0]))
        ),
        sandbox=prov.sandbox,
        cache=_cache_status(prov),
    )


def instance_storage(prov: Provider, filters: Mapping[str, Sequence[str]]) -> dict[str, tuple[int, float | None]]:
    """Instance id -> (GiB of EBS attached to it, USD per month for them: None if a volume's type or the region
    has no price in the catalog), from the volumes that carry these tags."""
    sizes: dict[str, int] = {}
    costs: dict[str, float | None] = {}
    for volume in prov.volumes(filters):
        size = volume.get("Size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            continue
        price = catalog.storage_price(str(volume.get("VolumeType", "")), prov.region)
        for attachment in volume.get("Attachments") or []:
            iid = str(attachment.get("InstanceId", ""))
            if not iid:
                continue
            sizes[iid] = sizes.get(iid, 0) + size
            before = costs.get(iid, 0.0)
            costs[iid] = None if before is None or price is None else before + size * price
    return {iid: (gib, None if costs[iid] is None else round(costs[iid] or 0.0, 2)) for iid, gib in sizes.items()}


def stop(
    *,
    name: str,
    region: str | None = None,
    sandbox: bool = False,
    provider: Provider | None = None,
    timeouts: Timeouts | None = None,
) -> specs.StopResult:
    """Stop the cluster's instances (their EBS volumes stay, compute billing stops) and wait until they are
    stopped. Re-runnable: stopped instances stay as they are. Refuses another home's cluster and spot
    instances (EC2 cannot stop a one-time spot instance)."""
    from infprov.provision import autoteardown

    validate_name(name)
    timeouts = timeouts or specs.DEFAULT_TIMEOUTS
    prov = provider or providers.connect(region, sandbox)
    prov.prepare()
    hint = "see `infprov status` for the clusters there"
    try:
        with server_lock(prov.region, name, timeouts), _lock(f"cluster-{prov.region}-{name}", timeouts):
            found = prov.instances({**cluster_filter(name), "instance-state-name": list(LIVE_STATES)})
            if not found:
                raise UsageError(f"no cluster {name} in {prov.region}", hint)
            check_home(prov, name, paths.home_id(), found, "stop only this home's clusters")
            spot = sorted(i.id for i in found if i.spot)
            if spot:
                raise UsageError(f"cluster {name} has spot instance(s) ({', '.join(spot)}), which EC2 cannot stop",
                                 f"`infprov teardown --name {name}` ends them; launch without --spot to stop and "
                                 "start a cluster")
            pending = [i.id for i in found if i.state == "pending"]
            if pending:
                wait_running(prov, pending, timeouts)
            to_stop = [i.id for i in found if i.state in ("pending", "running")]
            already = [i.id for i in found if i.state in ("stopping", "stopped")]
            # the hosts' own scheduled power-off (auto-teardown) does not outlive a power-off: say so, in the tag too
            scheduled = [i.id for i in found if i.id in to_stop and autoteardown.read_deadline(i.tags) is not None]
            if to_stop:
                ui.step(f"stopping {len(to_stop)} instance(s) of cluster {name}: {', '.join(to_stop)}")
                prov.stop_instances(to_stop)
            waiting = [i.id for i in found if i.state != "stopped"]
            if waiting:
                wait_state(prov, waiting, "stopped", timeouts.running, timeouts)
            if scheduled:
                prov.create_tags(scheduled, {autoteardown.TAG: autoteardown.CANCELLED})
    except Ec2ApiError as exc:
        raise api_error(exc, f"stop of cluster {name}") from None
    storage = instance_storage(prov, cluster_filter(name))
    ids = [i.id for i in found]
    costs = [storage.get(i, (0, 0.0))[1] for i in ids]
    return specs.StopResult(
        cluster=name, region=prov.region, stopped=tuple(to_stop), already_stopped=tuple(already),
        storage_gib=sum(storage.get(i, (0, 0.0))[0] for i in ids),
        storage_monthly_cost=None if any(c is None for c in costs) else round(sum(c or 0.0 for c in costs), 2),
        storage_price=catalog.storage_price("gp3", prov.region), sandbox=prov.sandbox,
        auto_teardown_cancelled=tuple(scheduled),
    )  # fmt: skip


def _cache_status(prov: Provider) -> dict[str, Any] | None:
    """The region's environment cache for `status`; ECR trouble (no rights, say) is shown, not fatal."""
    from infprov.provision import envcache

    try:
        found = envcache.info(prov)
    except (Ec2ApiError, InfprovError) as exc:
        return {"error": f"{exc.code}: {exc.message}" if isinstance(exc, Ec2ApiError) else exc.message}
    return found.to_dict() if found is not None else None


def teardown(
    *,
    name: str | None = None,
    all_clusters: bool = False,
    region: str | None = None,
    sandbox: bool = False,
    yes: bool = False,
    dry_run: bool = False,
    provider: Provider | None = None,
    confirm: Confirm | None = None,
    inventory: str | None = None,
    timeouts: Timeouts | None = None,
    any_home: bool = False,
    cache: bool = False,
) -> TeardownResult:
    """Terminate, wait, delete the group and key pair, then sweep by tag and report what is left; with
    cache (only with all_clusters) also the region's environment cache, which is otherwise kept.

    Interrupted, it can be run again: every step looks first and skips what is already gone.
    """
    if name is not None and all_clusters:
        raise UsageError("--name and --all exclude each other", "give one of them")
    if cache and not all_clusters:
        raise UsageError("--cache goes with --all: the environment cache serves every cluster of the region",
                         "run `infprov teardown --all --cache`")
    cluster = None if all_clusters else validate_name(name or DEFAULT_CLUSTER)
    timeouts = timeouts or specs.DEFAULT_TIMEOUTS
    prov = provider or providers.connect(region, sandbox)
    if cluster is None:
        scope = "all clusters of every infprov home" if any_home else "all clusters of this infprov home"
    else:
        scope = f"cluster {cluster}"
    prov.prepare()
    try:
        with contextlib.ExitStack() as stack:
            if cluster is not None:
                stack.enter_context(_lock(f"cluster-{prov.region}-{cluster}", timeouts))
                stack.enter_context(server_lock(prov.region, cluster, timeouts))
            done = _teardown(prov, cluster, scope, yes, dry_run, confirm, inventory, timeouts, any_home)
    except Ec2ApiError as exc:
        err = api_error(exc, f"teardown of {scope}")
        raise InfprovError(err.message, "run `infprov teardown` again; it continues where it stopped") from None
    return replace(done, cache=_teardown_cache(prov, cache, dry_run))


def _teardown_cache(prov: Provider, remove: bool, dry_run: bool) -> str:
    """Remove the environment cache when asked, else say whether it is kept. An answer ECR refuses (no rights
    to look) leaves the cache unmentioned rather than failing a teardown that is done."""
    from infprov.provision import envcache

    try:
        there = prov.repository(envcache.REPOSITORY) is not None
        if not there:
            return "none"
        if not remove:
            return "kept"
        if dry_run:
            return "would remove"
        envcache.remove(prov)
        return "removed"
    except Ec2ApiError as exc:
        if remove:
            raise InfprovError(f"the environment cache was not removed: {exc.code}: {exc.message}",
                               "run `infprov teardown --all --cache` again") from None
        return ""


def _teardown(
    prov: Provider,
    cluster: str | None,
    scope: str,
    yes: bool,
    dry_run: bool,
    confirm: Confirm | None,
    inventory: str | None,
    timeouts: Timeouts,
    any_home: bool = False,
) -> TeardownResult:
    region = prov.region
    home = paths.home_id()
    reach = None if any_home else home
    filters = cluster_filter(cluster, reach)
    instances = prov.instances({**filters, "instance-state-name": list(NOT_GONE_STATES)})
    if cluster is not None and not any_home:
        check_home(prov, cluster, home, instances,
                   "tear it down from the home that made it, or add --any-home to remove it from here")
    instance_ids = sorted(str(i.id) for i in instances)
    groups = prov.security_groups(filters)
    volumes = prov.volumes(filters)
    key_pairs = _key_pairs_to_delete(prov, cluster, home, instance_ids, any_home)
    plan = TeardownResult(
        region=region,
        scope=scope,
        dry_run=dry_run,
        instances=tuple(instance_ids),
        security_groups=tuple(str(g["GroupId"]) for g in groups),
        volumes=tuple(str(v["VolumeId"]) for v in volumes),
        key_pairs=tuple(key_pairs),
    )
    if dry_run or plan.nothing:
        if plan.nothing and not dry_run:
            _forget_hosts(prov, inventory, cluster)
            return replace(plan, leftovers=tuple(sweep(prov, cluster, home=reach)))
        return plan
    what = []
    if instance_ids:
        what.append(f"terminate {len(instance_ids)} instance(s)")
    if groups or volumes or key_pairs:
        what.append(f"delete {len(groups)} security group(s), {len(volumes)} volume(s), {len(key_pairs)} key pair(s)")
    ui.step(f"{scope} in {region}: {' and '.join(what)}")
    ask_or_refuse(f"Remove {scope} in {region}?", yes, confirm, "tear down")

    addresses = [found for found in map(prov.address, instances) if found is not None]
    live = [i.id for i in instances if i.state != "shutting-down"]
    if live:
        ui.step(f"terminating {', '.join(live)}")
        prov.terminate_instances(live)
    if instance_ids:
        wait_state(prov, instance_ids, "terminated", timeouts.terminated, timeouts)
        ui.ok(f"{len(instance_ids)} instance(s) terminated")
        forget_host_keys(addresses)
        prov.release(instance_ids)
    for group in groups:
        try:
            _delete_group(prov, str(group["GroupId"]), str(group.get("GroupName", "")), timeouts)
        except InfprovError as exc:  # reported by the sweep below; the other steps still run
            ui.warn(exc.line())
    for volume in prov.volumes(filters):
        if volume.get("State") == "available":
            prov.delete_volume(volume["VolumeId"])
            ui.ok(f"volume {volume['VolumeId']} deleted")
    for key in key_pairs:
        local = paths.keys_dir() / f"{key}.pem"
        ours = key in (managed_key_name(region, home), managed_key_name(region))
        with _lock(f"key-{region}", timeouts):
            prov.delete_key_pair(key)
            if ours:
                local.unlink(missing_ok=True)
        ui.ok(f"key pair {key} deleted" + (", and its private key" if ours else " (another home's)"))
    _forget_hosts(prov, inventory, cluster)
    leftovers = sweep(prov, cluster, also_key=key_pairs[0] if key_pairs else None, home=reach)
    for key in key_pairs[1:]:
        if key not in {x.resource_id for x in leftovers} and prov.key_pair(key) is not None:
            leftovers.append(Leftover("key-pair", key, "not deleted"))
    return replace(plan, leftovers=tuple(leftovers))


def _key_pairs_to_delete(
    prov: Provider, cluster: str | None, home: str, instance_ids: Sequence[str], any_home: bool
) -> list[str]:
    """infprov key pairs that no instance will use once instance_ids are gone: this home's (and, if its
    private key is here, the region's key from before homes had ids); with any_home and no cluster, every
    home's. This home's key also stays while another cluster of this home lives."""
    region = prov.region
    mine = managed_key_name(region, home)
    candidates = [mine]
    legacy = managed_key_name(region)
    if (paths.keys_dir() / f"{legacy}.pem").exists():
        candidates.append(legacy)
    if any_home and cluster is None:
        found = prov.key_pairs({f"tag:{TAG_MANAGED}": ["true"]})
        candidates += sorted(str(k.get("KeyName")) for k in found if str(k.get("KeyName")) not in candidates)
    chosen: list[str] = []
    for key_name in candidates:
        if prov.key_pair(key_name) is None:
            continue
        users = prov.instances({"key-name": [key_name], "instance-state-name": list(NOT_GONE_STATES)})
        if not all(u.id in instance_ids for u in users):
            continue
        if key_name == mine and cluster is not None and _other_clusters(prov, cluster, home):
            continue
        chosen.append(key_name)
    return chosen


def _other_clusters(prov: Provider, cluster: str, home: str | None = None) -> bool:
    """Whether a cluster other than this one lives (of home, when given)."""
    managed = prov.instances({**cluster_filter(None, home), "instance-state-name": list(NOT_GONE_STATES)})
    return any(i.tags.get(TAG_CLUSTER) != cluster for i in managed)


def _delete_group(prov: Provider, group_id: str, name: str, timeouts: Timeouts) -> None:
    """Delete a group, retrying while terminated instances' interfaces still hold it."""
    last = [""]

    def attempt() -> bool:
        try:
            prov.delete_security_group(group_id)
        except Ec2ApiError as exc:
            if exc.code == "InvalidGroup.NotFound":
                return True
            if exc.code == "DependencyViolation":
                last[0] = exc.message
                return False
            raise
        return True

    wait_until(
        attempt,
        what=f"security group {name or group_id} to be free to delete",
        timeout=timeouts.sg_delete,
        interval=timeouts.interval,
        on_tick=ticker(f"security group {name or group_id} to be released"),
        last_state=lambda: last[0] or "in use",
    )
    ui.ok(f"security group {name or group_id} deleted")


def sweep(prov: Provider, cluster: str | None, also_key: str | None = None, home: str | None = None) -> list[Leftover]:
    """What still carries the cluster's tags (or home's infprov tags, or any infprov tag): must be nothing
    after teardown."""
    filters = cluster_filter(cluster, home)
    left: list[Leftover] = []
    for inst in prov.instances({**filters, "instance-state-name": list(NOT_GONE_STATES)}):
        left.append(Leftover("instance", str(inst.id), inst.state))
    for group in prov.security_groups(filters):
        left.append(Leftover("security-group", str(group["GroupId"]), str(group.get("GroupName", ""))))
    for volume in prov.volumes(filters):
        left.append(Leftover("volume", str(volume["VolumeId"]), str(volume.get("State", ""))))
    for pair in prov.key_pairs(filters):
        left.append(Leftover("key-pair", str(pair.get("KeyName")), "tagged"))
    if also_key and also_key not in {x.resource_id for x in left} and prov.key_pair(also_key) is not None:
        left.append(Leftover("key-pair", also_key, "not deleted"))
    # Anything else tagged (a type infprov does not make itself) is reported, never guessed at.
    checked = {"instance", "security-group", "volume", "key-pair"}
    key, value = next(iter(filters.items()))
    for tag in prov.tagged({"key": [key.removeprefix("tag:")], "value": value}):
        if tag.get("ResourceType") not in checked:
            left.append(Leftover(str(tag.get("ResourceType")), str(tag.get("ResourceId")), "tagged"))
    return left


def server_lock(region: str, cluster: str, timeouts: Timeouts | None = None) -> contextlib.AbstractContextManager[None]:
    """Held while `up` provisions the cluster's hosts and while `teardown` removes them. Two `up` at once
    raced to replace one server container (tests/sandbox/test_faults.py found it: one failed with "No such
    container"); a teardown in the middle of an `up` is the same race, so teardown waits its turn."""
    return _lock(f"server-{region}-{cluster}", timeouts or specs.DEFAULT_TIMEOUTS)


def _lock(name: str, timeouts: Timeouts) -> contextlib.AbstractContextManager[None]:
    """An exclusive lock shared by every infprov process of this user (flock on INFPROV_HOME/locks).

    It makes two `up` of one cluster on this machine take turns: the second finds the first's
    instances. Across machines the launch token plays that part.
    """
    folder = paths.private_dir(paths.home() / "locks", role="locks folder")
    where = folder / f"{name}.lock"
    return file_lock(where, timeout=timeouts.lock, what=f"the lock {name}",
                     hint=f"another infprov run is working on it; remove {where} only if no infprov runs",
                     on_wait=lambda: ui.step(f"another infprov run holds {name}; waiting for it"))
