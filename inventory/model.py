"""The host model: one cloud instance as infprov and Ansible both see it."""

from __future__ import annotations

import fnmatch
import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infprov.inventory.errors import InventoryError

PYTHON_INTERPRETER = "/usr/bin/python3"
DEFAULT_CLUSTER = "infprov"
UNGROUPED = "ungrouped"

# Inventory variables that map onto Host fields; everything else rides along in Host.extra.
_FIELD_VARS = {
    "ansible_host": "address",
    "ansible_user": "user",
    "ansible_ssh_private_key_file": "key_file",
    "ansible_port": "port",
    "instance_type": "instance_type",
    "neuron_devices": "neuron_devices",
    "neuron_cores": "neuron_cores",
    "region": "region",
}


# What an inventory may hold in the fields that reach ssh's command line, ssh_config and local paths.
# The inventory is outside data (a user may be handed one): a value that could be read as an ssh
# option, a second config line or a path out of the state folder is refused when the file is read.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"(?=.{{1,253}}\Z){_LABEL}(\.{_LABEL})*")
_USER = re.compile(r"[a-z_][a-z0-9_.-]{0,31}")
_WORD = re.compile(r"[a-z0-9][a-z0-9.-]{0,63}")


def check_name(value: str, what: str = "host name") -> str:
    """An inventory host or group name: letters, digits, '.', '_', '-'; never a path or an option."""
    if not _NAME.fullmatch(value) or ".." in value:
        raise ValueError(f"{what} {value!r} is not allowed: use letters, digits, '.', '_' and '-', "
                         "starting with a letter or digit")
    return value


def check_address(value: str) -> str:
    try:
        ipaddress.ip_address(value)
        return value
    except ValueError:
        pass
    if not _HOSTNAME.fullmatch(value):
        raise ValueError(f"ansible_host {value!r} is not an IP address or DNS name")
    return value


def _check_fields(fields: dict[str, Any]) -> None:
    user = fields.get("user")
    if user is not None and not _USER.fullmatch(user):
        raise ValueError(f"ansible_user {user!r} is not a valid user name (lowercase letters, digits, '_', '.', '-')")
    port = fields.get("port")
    if port is not None and not 1 <= port <= 65535:
        raise ValueError(f"ansible_port {port} is out of range (1 to 65535)")
    key = fields.get("key_file")
    if key is not None and (not key or key.startswith("-") or any(ord(ch) < 32 or ord(ch) == 127 for ch in key)):
        raise ValueError(f"ansible_ssh_private_key_file {key!r} is not a usable path")
    for name, var in (("instance_type", "instance_type"), ("region", "region")):
        value = fields.get(name)
        if value is not None and not _WORD.fullmatch(value):
            raise ValueError(f"{var} {value!r} is not valid (lowercase letters, digits, '.', '-')")
    for name in ("neuron_devices", "neuron_cores"):
        value = fields.get(name)
        if value is not None and not 0 <= value <= 1024:
            raise ValueError(f"{name} {value} is out of range")


@dataclass(frozen=True)
class Host:
    """One host: `name` is the instance id (the inventory hostname), `address` where SSH reaches it."""

    name: str
    address: str
    user: str = "ubuntu"
    key_file: str | None = None
    port: int = 22
    instance_type: str | None = None
    neuron_devices: int | None = None
    neuron_cores: int | None = None
    region: str | None = None
    cluster: str = DEFAULT_CLUSTER
    extra: Mapping[str, Any] = field(default_factory=dict, hash=False)

    @property
    def instance_id(self) -> str:
        """The instance the host is: infprov names each inventory host by its instance id."""
        return self.name

    def vars(self) -> dict[str, Any]:
        """The host's inventory variables, as written to the file (None values left out)."""
        out: dict[str, Any] = {
            "ansible_host": self.address,
            "ansible_user": self.user,
            "ansible_ssh_private_key_file": self.key_file,
            "ansible_port": self.port,
            "ansible_python_interpreter": PYTHON_INTERPRETER,
            "instance_type": self.instance_type,
            "neuron_devices": self.neuron_devices,
            "neuron_cores": self.neuron_cores,
            "region": self.region,
        }
        out.update(self.extra)
        return {k: v for k, v in out.items() if v is not None}

    @classmethod
    def from_vars(cls, name: str, cluster: str, hostvars: Mapping[str, Any]) -> Host:
        """Build a Host from inventory variables; raises ValueError on a bad field value."""
        fields: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for key, value in hostvars.items():
            if key in _FIELD_VARS:
                fields[_FIELD_VARS[key]] = value
            elif key == "ansible_python_interpreter" and value == PYTHON_INTERPRETER:
                continue
            else:
                extra[key] = value
        address = fields.pop("address", None) or name
        for key in ("port", "neuron_devices", "neuron_cores"):
            if fields.get(key) is not None:
                try:
                    fields[key] = int(fields[key])
                except (TypeError, ValueError):
                    var = next(k for k, v in _FIELD_VARS.items() if v == key)
                    raise ValueError(f"{var} must be a whole number, not {fields[key]!r}") from None
        for key in ("user", "key_file", "instance_type", "region"):
            if fields.get(key) is not None:
                fields[key] = str(fields[key])
        check_name(str(name))
        check_name(cluster, "group name")
        check_address(str(address))
        _check_fields(fields)
        return cls(name=str(name), address=str(address), cluster=cluster, extra=extra, **fields)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for --json: the fields plus the extra vars."""
        return {
            "name": self.name,
            "address": self.address,
            "user": self.user,
            "key_file": self.key_file,
            "port": self.port,
            "instance_type": self.instance_type,
            "neuron_devices": self.neuron_devices,
            "neuron_cores": self.neuron_cores,
            "region": self.region,
            "cluster": self.cluster,
            "extra": dict(self.extra),
        }


@dataclass(frozen=True)
class Inventory:
    """What an inventory file holds: hosts (each in one cluster group) and group variables."""

    hosts: tuple[Host, ...] = ()
    group_vars: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, hash=False)
    path: Path | None = None

    @property
    def clusters(self) -> list[str]:
        seen: dict[str, None] = {}
        for host in self.hosts:
            seen.setdefault(host.cluster, None)
        return list(seen)

    def get(self, name: str) -> Host | None:
        return next((h for h in self.hosts if h.name == name), None)

    def find(self, name_or_address: str) -> Host | None:
        """A host by instance id first, else by address (what `--host` accepts)."""
        return self.get(name_or_address) or next((h for h in self.hosts if h.address == name_or_address), None)

    def in_cluster(self, cluster: str) -> list[Host]:
        return [h for h in self.hosts if h.cluster == cluster]

    def host_vars(self, host: Host) -> dict[str, Any]:
        """Variables a playbook sees for this host: all's vars < its group's vars < its own."""
        merged: dict[str, Any] = {}
        merged.update(self.group_vars.get("all", {}))
        merged.update(self.group_vars.get(host.cluster, {}))
        merged.update(host.vars())
        return merged

    def groups(self) -> dict[str, list[str]]:
        """Group name → host names, with Ansible's implicit `all` and `ungrouped`."""
        out: dict[str, list[str]] = {"all": [h.name for h in self.hosts]}
        for host in self.hosts:
            out.setdefault(host.cluster, []).append(host.name)
        out.setdefault(UNGROUPED, [])
        return out

    def select(self, pattern: str) -> list[Host]:
        """Hosts matching an Ansible host pattern, in inventory order.

        Supported: `all`/`*`, group and host names, shell globs (`i-0*`), unions with `:` or `,`,
        intersections `&group`, exclusions `!group`. A pattern that matches nothing selects nothing.
        """
        groups = self.groups()
        chosen: list[str] = []
        parts = [p.strip() for p in pattern.replace(",", ":").split(":") if p.strip()]
        if not parts:
            raise InventoryError(f"empty host pattern {pattern!r}", "give a group, a host or 'all'")
        for part in parts:
            if part.startswith("&"):
                keep = set(self._match(part[1:], groups))
                chosen = [n for n in chosen if n in keep]
            elif part.startswith("!"):
                drop = set(self._match(part[1:], groups))
                chosen = [n for n in chosen if n not in drop]
            else:
                for name in self._match(part, groups):
                    if name not in chosen:
                        chosen.append(name)
        order = {h.name: i for i, h in enumerate(self.hosts)}
        by_name = {h.name: h for h in self.hosts}
        return [by_name[n] for n in sorted(chosen, key=order.__getitem__)]

    def _match(self, word: str, groups: dict[str, list[str]]) -> list[str]:
        if word in ("all", "*"):
            return list(groups["all"])
        if word in groups:
            return list(groups[word])
        names = [h.name for h in self.hosts if h.name == word or h.address == word]
        if names:
            return names
        if any(ch in word for ch in "*?["):
            found: list[str] = []
            for group, members in groups.items():
                if fnmatch.fnmatchcase(group, word):
                    found.extend(m for m in members if m not in found)
            found.extend(h.name for h in self.hosts if fnmatch.fnmatchcase(h.name, word) and h.name not in found)
            return found
        return []

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path) if self.path else None,
            "clusters": {c: [h.to_dict() for h in self.in_cluster(c)] for c in self.clusters},
            "group_vars": {k: dict(v) for k, v in self.group_vars.items()},
        }


def ssh_config(hosts: Iterable[Host], known_hosts: Path | None = None) -> str:
    """An OpenSSH config block per host, so `ssh <instance-id>` (or `ssh <cluster>-<n>`, n from 1 in the
    inventory's order) reaches it with infprov's key and pins."""
    blocks = []
    numbered: dict[str, int] = {}
    for host in hosts:
        numbered[host.cluster] = numbered.get(host.cluster, 0) + 1
        alias = f"{host.cluster}-{numbered[host.cluster]}"  # `ssh demo-1`: the cluster's hosts in inventory order
        for value in (host.name, host.address, host.user, host.key_file or "", str(known_hosts or "")):
            if any(ch.isspace() or ch == '"' for ch in value):  # one value must stay one token of one line
                raise InventoryError(f"host {host.name!r}: {value!r} cannot be written to an ssh config",
                                     "fix the inventory entry")
        lines = [
            f"Host {host.name} {alias}",
            f"    HostName {host.address}",
            f"    User {host.user}",
            f"    Port {host.port}",
        ]
        if host.key_file:
            lines.append(f"    IdentityFile {host.key_file}")
            lines.append("    IdentitiesOnly yes")
        if known_hosts is not None:
            lines.append(f"    UserKnownHostsFile {known_hosts}")
            lines.append("    StrictHostKeyChecking yes")  # as `infprov ssh`: only keys infprov pinned
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + ("\n" if blocks else "")
