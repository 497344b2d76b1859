"""What `up`, `status` and `teardown` take and give: constants, specs, results, input checks, and the
small helpers every cloud module shares."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from infprov.floor.errors import InfprovError, UsageError
from infprov.inventory.model import Host
from infprov.provision import catalog, ui
from infprov.provision.ec2 import Ec2ApiError

DEFAULT_CLUSTER = "infprov"  # the inventory's default group, too


TAG_CLUSTER = "infprov:cluster"


TAG_MANAGED = "infprov:managed"


TAG_SCOPE = "infprov:scope"


MAX_COUNT = 20


DEFAULT_DISK_GIB = 150  # the Triton images, python_backend's build and the models, with room to spare


MIN_DISK_GIB = 120  # python_backend's README asks for more than 110 GiB


SSH_USER = "ubuntu"


SSH_PORT = 22


SANDBOX_REGION = "us-east-1"


LIVE_STATES = ("pending", "running", "stopping", "stopped")


NOT_GONE_STATES = (*LIVE_STATES, "shutting-down")


NAME_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?")


AMI_RE = re.compile(r"ami-(?:[0-9a-f]{8}|[0-9a-f]{17})")


REGION_RE = re.compile(r"[a-z]{2}(?:-gov|-iso[a-z]?)?-[a-z]+-\d")


KEY_NAME_RE = re.compile(r"[\x20-\x7e]{1,255}")


@dataclass(frozen=True)
class Timeouts:
    """How long each wait may take, in seconds, and how often it looks."""

    running: float = 600
    status_ok: float = 900
    ssh_port: float = 600
    ssh_login: float = 300
    terminated: float = 900
    sg_delete: float = 300
    lock: float = 900
    interval: float = 5.0


DEFAULT_TIMEOUTS = Timeouts()


@dataclass(frozen=True)
class UpSpec:
    """What `infprov up` was asked for; validated on construction, so a bad one never reaches AWS."""

    instance_type: str
    name: str = DEFAULT_CLUSTER
    count: int = 1
    region: str | None = None
    ami: str | None = None
    key_name: str | None = None
    ssh_cidr: str | None = None
    allow_wide_ssh: bool = False
    tags: tuple[tuple[str, str], ...] = ()
    spot: bool = False
    yes: bool = False
    sandbox: bool = False
    disk_gib: int = DEFAULT_DISK_GIB
    inventory: str | None = None
    model_note: str = ""  # `up --model`: what is uploaded, shown with the cost

    def __post_init__(self) -> None:
        object.__setattr__(self, "instance_type", catalog.get(self.instance_type).name)
        validate_name(self.name)
        if not 1 <= self.count <= MAX_COUNT:
            raise UsageError(
                f"--count {self.count} is out of range: give a number from 1 to {MAX_COUNT}",
                "to remove instances use `infprov teardown`",
            )
        if self.region is not None:
            validate_region(self.region)
        if self.ami is not None and not AMI_RE.fullmatch(self.ami):
            raise UsageError(f"--ami {self.ami!r} is not an AMI id", "give one like ami-0123456789abcdef0")
        if self.key_name is not None and not KEY_NAME_RE.fullmatch(self.key_name):
            raise UsageError(f"--key-name {self.key_name!r} is not a valid key pair name", "use 1-255 ASCII characters")
        if self.ssh_cidr is not None:
            object.__setattr__(self, "ssh_cidr", parse_cidr(self.ssh_cidr, self.allow_wide_ssh))
        validate_tags(self.tags)
        if not MIN_DISK_GIB <= self.disk_gib <= 16384:
            raise UsageError(
                f"--disk {self.disk_gib} GiB is out of range",
                f"give {MIN_DISK_GIB} to 16384 GiB (default {DEFAULT_DISK_GIB}); python_backend needs >110 GiB",
            )


@dataclass(frozen=True)
class UpResult:
    cluster: str
    region: str
    instance_type: str
    hosts: tuple[Host, ...]
    reused: tuple[str, ...] = ()
    started: tuple[str, ...] = ()
    launched: tuple[str, ...] = ()
    ami: str | None = None
    security_group: str = ""
    key_name: str = ""
    ssh_cidr: str = ""
    hourly_cost: float | None = None
    sandbox: bool = False
    zones: Mapping[str, str] = field(default_factory=dict, hash=False)  # instance id -> its availability zone

    def to_dict(self) -> dict[str, Any]:
        doc = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "zones"}
        doc["hosts"] = [
            {"instance_id": h.name, "address": h.address, "user": h.user, "key_file": h.key_file, "port": h.port,
             "instance_type": h.instance_type, "neuron_devices": h.neuron_devices, "neuron_cores": h.neuron_cores,
             "region": h.region, "cluster": h.cluster, "availability_zone": self.zones.get(h.name, "")}
            for h in self.hosts
        ]
        return doc


@dataclass(frozen=True)
class InstanceInfo:
    instance_id: str
    cluster: str
    state: str
    address: str
    instance_type: str
    availability_zone: str
    spot: bool
    launched_at: str | None
    uptime_s: float | None
    hourly_price: float | None
    cost_so_far: float | None
    auto_teardown: str | None = None  # the deadline tagged by `up --auto-teardown` (UTC)
    triton: Mapping[str, Any] | None = None  # what Triton said on the host (health.Health), None: not asked
    idle_stop: str | None = None  # the idle watch `up --idle-stop` armed (tag: `30m stop` / `30m terminate`)
    storage_gib: int | None = None  # its EBS volumes' provisioned size (kept, and billed, while it is stopped)
    storage_monthly_cost: float | None = None  # USD per month for them (None: a volume type/region not priced)


@dataclass(frozen=True)
class ClusterInfo:
    name: str
    instances: tuple[InstanceInfo, ...]
    home: str | None = None  # the id of the infprov home that made it (None: made before homes had ids)
    mine: bool = True  # made by this home (or before homes had ids); False: another home's, shown as others'

    @property
    def hourly_cost(self) -> float | None:
        """What its instances cost per hour now: 0 when none runs (a stopped cluster pays only for storage)."""
        up = [i.hourly_price for i in self.instances if i.state in ("pending", "running")]
        return total(up) if up else 0.0

    @property
    def cost_so_far(self) -> float | None:
        return total(i.cost_so_far for i in self.instances)

    @property
    def stopped(self) -> bool:
        return bool(self.instances) and all(i.state in ("stopping", "stopped") for i in self.instances)

    @property
    def storage_gib(self) -> int:
        return sum(i.storage_gib or 0 for i in self.instances)

    @property
    def storage_monthly_cost(self) -> float | None:
        return total(i.storage_monthly_cost for i in self.instances)


@dataclass(frozen=True)
class StatusResult:
    region: str
    clusters: tuple[ClusterInfo, ...]
    sandbox: bool = False
    # the region's environment cache (envcache.CacheInfo.to_dict(), or {"error": why}); None: there is none
    cache: Mapping[str, Any] | None = field(default=None, hash=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "region": self.region,
            "sandbox": self.sandbox,
            "cache": dict(self.cache) if self.cache is not None else None,
            "clusters": [
                {
                    "name": c.name,
                    "home": c.home,
                    "mine": c.mine,
                    "hourly_cost": c.hourly_cost,
                    "cost_so_far": c.cost_so_far,
                    "stopped": c.stopped,
                    "storage_gib": c.storage_gib,
                    "storage_monthly_cost": c.storage_monthly_cost,
                    "instances": [asdict(i) for i in c.instances],
                }
                for c in self.clusters
            ],
        }


@dataclass(frozen=True)
class StopResult:
    """`infprov stop`: what was stopped, what was already, and what the kept volumes cost while stopped."""

    cluster: str
    region: str
    stopped: tuple[str, ...]
    already_stopped: tuple[str, ...]
    storage_gib: int
    storage_monthly_cost: float | None
    storage_price: float | None  # USD per GB-month (gp3 in the region), None where unknown
    sandbox: bool = False
    auto_teardown_cancelled: tuple[str, ...] = ()  # a stop ends the hosts' scheduled power-off

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Leftover:
    resource_type: str
    resource_id: str
    detail: str = ""


@dataclass(frozen=True)
class TeardownResult:
    region: str
    scope: str  # "cluster NAME" or "all clusters"
    dry_run: bool
    instances: tuple[str, ...] = ()
    security_groups: tuple[str, ...] = ()
    volumes: tuple[str, ...] = ()
    key_pairs: tuple[str, ...] = ()
    leftovers: tuple[Leftover, ...] = ()
    # the region's environment cache: "removed", "would remove" (--dry-run), "kept" (there, not asked to
    # remove it), "none" (there is none) or "" (not looked at)
    cache: str = ""

    @property
    def ok(self) -> bool:
        return not self.leftovers

    @property
    def nothing(self) -> bool:
        return not (self.instances or self.security_groups or self.volumes or self.key_pairs)

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["ok"] = self.ok
        return doc


Confirm = Callable[[str], bool]


SshWait = Callable[[Sequence[Host], Timeouts], None]


def validate_name(name: str) -> str:
    if not NAME_RE.fullmatch(name):
        raise UsageError(
            f"cluster name {name!r} is not valid",
            "use 1-32 lowercase letters, digits and dashes, starting and ending with a letter or digit",
        )
    return name


def validate_region(region: str) -> str:
    if not REGION_RE.fullmatch(region):
        raise UsageError(f"--region {region!r} is not an AWS region name", "give one like us-east-1")
    return region


def parse_tags(raw: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """`--tag k=v` values into pairs; refuses what EC2 would refuse, before any call."""
    pairs: list[tuple[str, str]] = []
    for item in raw:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--tag {item!r} is not KEY=VALUE", "write it like --tag team=ml")
        pairs.append((key.strip(), value.strip()))
    validate_tags(pairs)
    return tuple(pairs)


def validate_tags(pairs: Sequence[tuple[str, str]]) -> None:
    seen: set[str] = set()
    for key, value in pairs:
        low = key.lower()
        if low.startswith("aws:"):
            raise UsageError(f"--tag {key}: keys starting with 'aws:' are reserved by AWS", "choose another key")
        if low.startswith("infprov:"):
            raise UsageError(f"--tag {key}: keys starting with 'infprov:' are infprov's own", "choose another key")
        if not 1 <= len(key) <= 128 or len(value) > 256:
            raise UsageError(f"--tag {key}: keys take 1-128 characters, values up to 256", "shorten it")
        if key in seen:
            raise UsageError(f"--tag {key} is given twice", "give each key once")
        seen.add(key)
    if len(pairs) > 40:
        raise UsageError(f"{len(pairs)} --tag options: EC2 allows 50 tags and infprov uses some", "give at most 40")


# Wider SSH ranges than these need --allow-wide-ssh: /8 is already 16 million IPv4 addresses.
WIDEST_SSH_PREFIX = {4: 8, 6: 32}


def parse_cidr(text: str, allow_wide: bool = False) -> str:
    """A CIDR for the SSH rule; a bare address becomes /32 (/128). The whole internet is refused, and
    anything wider than a /8 (IPv6: /32) unless allow_wide."""
    try:
        net = ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise UsageError(f"--ssh-cidr {text!r} is not an address or CIDR", "give one like 203.0.113.7/32") from None
    if net.prefixlen == 0:
        raise UsageError(
            f"--ssh-cidr {text} would open SSH to the whole internet",
            "give your own address, e.g. 203.0.113.7/32 (the default is this machine's public address)",
        )
    widest = WIDEST_SSH_PREFIX[net.version]
    if net.prefixlen < widest and not allow_wide:
        raise UsageError(
            f"--ssh-cidr {text} opens SSH to {net.num_addresses:,} addresses (wider than /{widest})",
            "give your own address or network, e.g. 203.0.113.7/32, or add --allow-wide-ssh if you mean it",
        )
    return str(net)


def total(values: Any) -> float | None:
    vals = list(values)
    if not vals or any(v is None for v in vals):
        return None
    return round(sum(vals), 4)


def money(value: float | None) -> str:
    return "price unknown" if value is None else f"${value:,.2f}"


def api_error(exc: Ec2ApiError, what: str) -> InfprovError:
    if exc.code in ("AuthFailure", "UnauthorizedOperation", "InvalidClientTokenId", "SignatureDoesNotMatch"):
        return InfprovError(f"{what}: EC2 refused the credentials ({exc.code}: {exc.message})",
                            "check AWS_PROFILE / the access keys and the IAM permissions for EC2")
    if exc.code in ("OptInRequired", "InvalidRegion"):
        return InfprovError(f"{what}: {exc.code}: {exc.message}", "choose a region this account may use")
    return InfprovError(f"{what}: EC2 {exc.operation} failed: {exc.code}: {exc.message}",
                        "rerun with --debug for details")


def ticker(what: str, every: float = 15.0) -> Callable[[float], None]:
    shown = [0.0]

    def tick(elapsed: float) -> None:
        if elapsed - shown[0] >= every:
            shown[0] = elapsed
            ui.step(f"still waiting for {what} ({elapsed:.0f} s)")

    return tick


SANDBOX_VAR = "infprov_sandbox"  # marks sandbox hosts, so a sandbox run never drops AWS ones
