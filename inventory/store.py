"""The inventory file: Ansible's YAML format, written atomically under a lock, read with clear errors."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from infprov.floor import paths
from infprov.floor.errors import WaitTimeout
from infprov.floor.files import atomic_write, file_lock
from infprov.inventory.errors import InventoryError
from infprov.inventory.model import UNGROUPED, Host, Inventory
from infprov.inventory.yamlsrc import LineDict, YamlSyntaxError, line_of, load_text, plain

LOCK_TIMEOUT = 30.0
_HEADER = "# infprov inventory (Ansible YAML format): `ansible-inventory -i THIS_FILE --list` reads it.\n"


def load(path: Path) -> Inventory:
    """Read the inventory; a missing or empty file is an empty inventory."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Inventory(path=path)
    except UnicodeDecodeError as exc:
        raise InventoryError(
            f"{path}: not UTF-8 text (byte {exc.start})", "an inventory is YAML text: fix or move the file aside"
        ) from None
    except OSError as exc:
        raise InventoryError(
            f"cannot read inventory {path}: {exc.strerror}", "check the file's permissions", exit_code=1
        ) from exc
    return parse(text, path)


def parse(text: str, path: Path | None = None) -> Inventory:
    """Parse inventory text; errors name the file and the line."""
    where = str(path) if path else "<inventory>"
    try:
        doc = load_text(text)
    except YamlSyntaxError as exc:
        raise InventoryError(
            f"{where}:{exc.line}: not valid YAML: {exc.problem}", "fix the file or move it aside"
        ) from exc
    if doc is None:
        return Inventory(path=path)

    def bad(node: Any, key: str | None, what: str) -> InventoryError:
        return InventoryError(
            f"{where}:{line_of(node, key)}: {what}",
            "an infprov inventory looks like all: {children: {CLUSTER: {hosts: {INSTANCE_ID: {...}}}}}",
        )

    if not isinstance(doc, dict) or set(doc) - {"all"}:
        raise bad(doc, None, "the top level must be a single `all:` group")
    root = doc.get("all") or LineDict()
    if not isinstance(root, dict):
        raise bad(doc, "all", "`all` must be a mapping")
    unknown = set(root) - {"hosts", "children", "vars"}
    if unknown:
        word = sorted(map(str, unknown))[0]
        raise bad(root, word, f"unknown key `{word}` under `all` (allowed: hosts, children, vars)")

    hosts: list[Host] = []
    group_vars: dict[str, dict[str, Any]] = {}
    seen: dict[str, str] = {}

    def read_group(group: str, node: Any, parent: Any, key: str) -> None:
        if node is None:
            return
        if not isinstance(node, dict):
            raise bad(parent, key, f"group `{group}` must be a mapping")
        for word in node:
            if word not in ("hosts", "vars", "children"):
                raise bad(node, str(word), f"unknown key `{word}` in group `{group}` (allowed: hosts, vars)")
        if node.get("children"):
            raise bad(node, "children", f"group `{group}` has children; infprov keeps one level of groups")
        gvars = node.get("vars") or {}
        if not isinstance(gvars, dict):
            raise bad(node, "vars", f"`vars` of group `{group}` must be a mapping")
        if gvars:
            group_vars[group] = plain(gvars)
        members = node.get("hosts") or {}
        if not isinstance(members, dict):
            raise bad(node, "hosts", f"`hosts` of group `{group}` must be a mapping of host name to vars")
        for name, hvars in members.items():
            hvars = hvars or {}
            if not isinstance(hvars, dict):
                raise bad(members, str(name), f"host `{name}` must map to its variables")
            if str(name) in seen:
                raise bad(members, str(name), f"host `{name}` is in both `{seen[str(name)]}` and `{group}`")
            seen[str(name)] = group
            try:
                hosts.append(Host.from_vars(str(name), group, plain(hvars)))
            except ValueError as exc:
                raise bad(members, str(name), f"host {str(name)!r}: {exc}") from None

    read_group(UNGROUPED, {"hosts": root.get("hosts")}, root, "hosts")
    children = root.get("children") or {}
    if not isinstance(children, dict):
        raise bad(root, "children", "`children` must be a mapping of group name to group")
    for group, node in children.items():
        read_group(str(group), node, children, str(group))
    all_vars = root.get("vars") or {}
    if not isinstance(all_vars, dict):
        raise bad(root, "vars", "`all.vars` must be a mapping")
    if all_vars:
        group_vars["all"] = plain(all_vars)
    return Inventory(hosts=tuple(hosts), group_vars=group_vars, path=path)


def dump(inv: Inventory) -> str:
    """The YAML text for an inventory (hosts grouped under all.children.<cluster>)."""
    root: dict[str, Any] = {}
    if inv.group_vars.get("all"):
        root["vars"] = dict(inv.group_vars["all"])
    ungrouped = inv.in_cluster(UNGROUPED)
    if ungrouped:
        root["hosts"] = {h.name: h.vars() for h in ungrouped}
    children: dict[str, Any] = {}
    for cluster in inv.clusters:
        if cluster == UNGROUPED:
            continue
        group: dict[str, Any] = {"hosts": {h.name: h.vars() for h in inv.in_cluster(cluster)}}
        if inv.group_vars.get(cluster):
            group["vars"] = dict(inv.group_vars[cluster])
        children[cluster] = group
    for cluster, gvars in inv.group_vars.items():  # keep vars of groups that have no hosts left
        if cluster not in ("all", UNGROUPED) and cluster not in children and gvars:
            children[cluster] = {"vars": dict(gvars)}
    if children:
        root["children"] = children
    return _HEADER + yaml.safe_dump({"all": root}, sort_keys=False, default_flow_style=False)


@contextlib.contextmanager
def locked(path: Path, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
    """Hold the inventory's lock file (beside it) so read-modify-write never loses another's change."""
    path = Path(path)
    paths.make_private_parents(path.parent)
    lock_path = path.with_name(path.name + ".lock")
    try:
        with file_lock(lock_path, timeout=timeout, what=f"the lock on inventory {path}",
                       hint=f"another infprov is writing it; if none runs, remove {lock_path}"):
            yield
    except WaitTimeout as exc:
        raise InventoryError(exc.message, exc.hint, exit_code=1) from None


def write(path: Path, inv: Inventory) -> None:
    """Replace the file atomically: a temp file in the same folder, fsync, rename (mode 0600)."""
    atomic_write(Path(path), dump(inv))


def update(path: Path, change: Callable[[Inventory], Inventory]) -> Inventory:
    """Read, change and write back under the lock; returns what was written."""
    path = Path(path)
    with locked(path):
        new = change(load(path))
        new = Inventory(hosts=new.hosts, group_vars=new.group_vars, path=path)
        write(path, new)
        return new


def upsert_hosts(path: Path, cluster: str, hosts: Iterable[Host]) -> Inventory:
    """Add hosts to `cluster` or replace them (matched by instance id, in whichever cluster they were)."""
    incoming = [_in_cluster(h, cluster) for h in hosts]
    _check_name(cluster, "cluster")
    for h in incoming:
        _check_name(h.name, "host")

    def change(inv: Inventory) -> Inventory:
        by_name = {h.name: h for h in incoming}
        kept = [by_name.pop(h.name) if h.name in by_name else h for h in inv.hosts]
        kept.extend(h for h in incoming if h.name in by_name)
        return Inventory(hosts=tuple(kept), group_vars=inv.group_vars)

    return update(path, change)


def set_cluster_hosts(path: Path, cluster: str, hosts: Iterable[Host]) -> Inventory:
    """Make `cluster` hold exactly these hosts: its other hosts leave, and these leave any other cluster."""
    incoming = [_in_cluster(h, cluster) for h in hosts]
    _check_name(cluster, "cluster")
    for h in incoming:
        _check_name(h.name, "host")
    ids = {h.name for h in incoming}

    def change(inv: Inventory) -> Inventory:
        kept = [h for h in inv.hosts if h.cluster != cluster and h.name not in ids]
        return Inventory(tuple(kept + incoming), inv.group_vars)

    return update(path, change)


def remove_where(path: Path, gone: Callable[[Host], bool]) -> Inventory | None:
    """Drop the hosts `gone` picks; a missing inventory stays missing (None)."""
    if not Path(path).exists():
        return None
    return update(path, lambda inv: Inventory(tuple(h for h in inv.hosts if not gone(h)), inv.group_vars))


def remove_hosts(path: Path, ids: Iterable[str]) -> Inventory:
    """Drop hosts by instance id; ids not present are ignored."""
    gone = set(ids)
    return update(path, lambda inv: Inventory(tuple(h for h in inv.hosts if h.name not in gone), inv.group_vars))


def remove_cluster(path: Path, cluster: str) -> Inventory:
    """Drop a cluster's hosts and its group vars."""

    def change(inv: Inventory) -> Inventory:
        gvars = {k: v for k, v in inv.group_vars.items() if k != cluster}
        return Inventory(tuple(h for h in inv.hosts if h.cluster != cluster), gvars)

    return update(path, change)


def set_group_vars(path: Path, group: str, values: dict[str, Any]) -> Inventory:
    """Merge variables into a group's `vars` (`all` for every host)."""

    def change(inv: Inventory) -> Inventory:
        gvars = {k: dict(v) for k, v in inv.group_vars.items()}
        gvars.setdefault(group, {}).update(values)
        return Inventory(inv.hosts, gvars)

    return update(path, change)


def _in_cluster(host: Host, cluster: str) -> Host:
    if host.cluster == cluster:
        return host
    return replace(host, cluster=cluster)


def _check_name(name: str, what: str) -> None:
    if not name or any(ch.isspace() for ch in name) or any(ch in name for ch in ":,&!*?[]"):
        raise InventoryError(
            f"{what} name {name!r} cannot be used in an inventory",
            "use letters, digits, '-', '_' and '.' only",
        )
