"""Which cluster or hosts a command acts on, when the user names none: what the inventory records."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from typing import Any

from infprov.floor.errors import UsageError


def recorded_target(name: str | None, region: str | None, sandbox: bool, inventory: str | None,
                     *, one_cluster: bool) -> tuple[str | None, str | None, bool]:
    """What the inventory records fills in what the command line leaves out, as the README's three
    commands promise: the one cluster there (several: ask for --name), its region, and whether it
    lives in the sandbox. Flags given always win."""
    from infprov.floor import paths
    from infprov.inventory import store
    from infprov.provision import specs

    inv = store.load(paths.inventory_file(inventory))
    clusters = [c for c in inv.clusters if inv.in_cluster(c)]
    if name is None and one_cluster and len(clusters) > 1:
        raise UsageError(f"the inventory holds {len(clusters)} clusters: {', '.join(clusters)}",
                         "pick one with --name (or --all)")
    chosen = name or (clusters[0] if one_cluster and len(clusters) == 1 else None)
    hosts = inv.in_cluster(chosen) if chosen else list(inv.hosts)
    if hosts and not sandbox and region is None and all(h.extra.get(specs.SANDBOX_VAR) for h in hosts):
        sandbox = True
    regions = {h.region for h in hosts if h.region}
    if region is None and not sandbox and len(regions) == 1:
        region = regions.pop()
    return chosen, region, sandbox


def nothing_recorded(inventory: str | None) -> bool:
    """Whether the inventory holds no host (a missing inventory holds none)."""
    from infprov.floor import paths
    from infprov.inventory import store

    return not store.load(paths.inventory_file(inventory)).hosts


def select_hosts(name: str | None, host: str | None, inventory: str | None) -> list[Any]:
    """--host H, or every host of cluster --name N, or every host in the inventory."""
    from infprov.floor import paths
    from infprov.inventory import store

    if name and host:
        raise UsageError("--name and --host cannot be used together", "pick one")
    inv_path = paths.inventory_file(inventory)
    inv = store.load(inv_path)
    if host:
        found = inv.find(host)
        if found is None:
            raise UsageError(f"no host {host!r} in {inv_path}", "see `infprov inventory` (or run `infprov up`)")
        return [found]
    hosts = inv.in_cluster(name) if name else list(inv.hosts)
    if not hosts:
        where = f"cluster {name!r}" if name else str(inv_path)
        raise UsageError(f"no hosts in {where}", "run `infprov up` first, or name one with --host")
    return hosts


def pick_host(name: str | None, host: str | None, inventory: str | None) -> Any:
    hosts = select_hosts(name, host, inventory)
    if len(hosts) > 1:
        raise UsageError(f"{len(hosts)} hosts match", "name one with --host (see `infprov inventory`)")
    return hosts[0]


def mixed_types(hosts: Sequence[Any]) -> UsageError:
    """Hosts of several instance types cannot be benched as one: which cluster has which type, and the
    commands that bench each one."""
    by_type: dict[str, set[str]] = {}
    for h in hosts:
        by_type.setdefault(str(h.instance_type or "unknown type"), set()).add(str(h.cluster or h.name))
    shown = "; ".join(f"{t}: {', '.join(sorted(c))}" for t, c in sorted(by_type.items()))
    clusters = sorted({c for cs in by_type.values() for c in cs})
    runs = ", ".join(f"`infprov bench --name {shlex.quote(c)}`" for c in clusters)
    return UsageError(f"the hosts are of {len(by_type)} instance types ({shown})",
                      f"bench one cluster at a time: {runs}")
