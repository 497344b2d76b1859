"""Where one sandbox lives: its names (the prefix that sets it apart from any other sandbox on this
machine), its subnet and addresses, its folders, and each host's names."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from infprov.floor.errors import UsageError

MAX_HOSTS = 8
NEURON_DEVICES = 4  # an inf1.6xlarge: four chips, /dev/neuron0..3
USER = "ubuntu"
DEFAULT_SUBNET = "10.237.0.0/24"
DEFAULT_EC2_PORT = 5055
# Each host runs in a user namespace: its IDs 0..65535 are the machine's HOST_ID_BASE..+65535, so root on a
# host is an unprivileged user on the machine (issue 23, item 10). Its login user `ubuntu` is HOST_USER_UID
# inside (HOST_ID_BASE + HOST_USER_UID outside). The host root file system (sandbox/hostroot.py), the docker
# root the hosts clone (sandbox/images.py) and each host's own files are owned by that range.
HOST_ID_BASE = 1_000_000_000
HOST_ID_COUNT = 65536
HOST_USER_UID = 1000


def prefix() -> str:
    """Names this sandbox's links, namespaces and cgroups; another prefix is another sandbox."""
    value = os.environ.get("INFPROV_SANDBOX_ID", "infp")
    if not (value.isascii() and value.isalnum() and value.islower() and 1 <= len(value) <= 6):
        raise UsageError(f"INFPROV_SANDBOX_ID={value!r} is not usable", "use 1 to 6 lowercase letters or digits")
    return value


def check_settings() -> None:
    """The sandbox's settings from the environment (id, subnet, EC2 port), each refused in one line (exit 2)
    before anything is made."""
    prefix()
    subnet()
    ec2_port()


def bridge() -> str:
    return f"{prefix()}br0"


def base_dir() -> Path:
    return Path(os.environ.get("INFPROV_SANDBOX_DIR", "/var/lib/infprov-sandbox"))


def private_dir() -> Path:
    """Hosts' backing folders, the login key and state: hidden from inside every host."""
    return base_dir() / "private"


def public_dir() -> Path:
    """What every host may read: the python_backend stand-in repository."""
    return base_dir() / "public"


def downloads_dir() -> Path:
    """What the stand-in download server serves (the sandbox's pins name its files)."""
    return base_dir() / "downloads"


def key_file() -> Path:
    return private_dir() / "keys" / "id_ed25519"


def subnet() -> ipaddress.IPv4Network:
    raw = os.environ.get("INFPROV_SANDBOX_SUBNET", DEFAULT_SUBNET)
    try:
        net = ipaddress.IPv4Network(raw)
    except ValueError:
        raise UsageError(f"INFPROV_SANDBOX_SUBNET={raw!r} is not an IPv4 network",
                         f"give one like {DEFAULT_SUBNET}, or unset it") from None
    # the gateway is .1 and the hosts .11 on: a private network of /16 to /26
    if not net.is_private or not 16 <= net.prefixlen <= 26:
        raise UsageError(f"INFPROV_SANDBOX_SUBNET={raw} must be a private network of /16 to /26",
                         f"give one like {DEFAULT_SUBNET}, or unset it")
    return net


def gateway() -> str:
    return str(subnet().network_address + 1)


def ec2_port() -> int:
    raw = os.environ.get("INFPROV_SANDBOX_EC2_PORT", str(DEFAULT_EC2_PORT))
    if not raw.isascii() or not raw.isdigit() or not 1024 <= int(raw) <= 65535:
        raise UsageError(f"INFPROV_SANDBOX_EC2_PORT={raw!r} is not a port from 1024 to 65535",
                         f"give one like {DEFAULT_EC2_PORT}, or unset it")
    return int(raw)


def seal_chain() -> str:
    """The machine's iptables chain that drops what this sandbox's hosts send beyond its subnet.

    At most 14 characters (the prefix has 1 to 6): iptables allows 28.
    """
    return f"INFPROV-{prefix()}"


@dataclass(frozen=True)
class HostSpec:
    """Names and address of sandbox host number `index` (1-based)."""

    index: int

    @property
    def name(self) -> str:
        return f"h{self.index}"

    @property
    def address(self) -> str:
        return str(subnet().network_address + 10 + self.index)

    @property
    def netns(self) -> str:
        return f"{prefix()}-{self.name}"

    @property
    def veth(self) -> str:
        return f"{prefix()}-{self.name}"

    @property
    def hostname(self) -> str:
        return "ip-" + self.address.replace(".", "-")

    @property
    def dir(self) -> Path:
        return private_dir() / "hosts" / self.name

    @property
    def cgroup(self) -> Path:
        return cgroup_root() / f"infprov-{prefix()}" / self.name


def cgroup_root() -> Path:
    """The cgroup v2 tree: a hybrid machine mounts it at /sys/fs/cgroup/unified."""
    unified = Path("/sys/fs/cgroup/unified")
    if (unified / "cgroup.procs").exists():
        return unified
    return Path("/sys/fs/cgroup")
