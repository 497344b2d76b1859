"""The cloud part of `up`, `status` and `teardown`: pure plans, carried out through the EC2 provider."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import ipaddress
import json
import os
import re
import socket
import sys
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from provision import catalog, paths, ui
from provision.ec2 import Ec2ApiError, Ec2Provider, default_region, tag_map
from provision.errors import InfprovError, UsageError
from provision.wait import wait_until

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
CAPACITY_CODES = frozenset({"InsufficientInstanceCapacity", "InsufficientCapacity", "Unsupported"})
# Neuron DLAMIs from this release on ship a driver that no longer drives Inf1.
INF1_LAST_RELEASE_EXCLUSIVE = (2, 26, 1)
# Without a readable release, a DLAMI dated before this is taken to predate 2.26.1 (released
# 2025-10-29); the margin keeps images built shortly before that release out.
INF1_DATE_CUTOFF = "20251015"
DLAMI_NAME_PATTERNS = ("Deep Learning AMI Neuron*(Ubuntu 2*", "Deep Learning Base Neuron AMI (Ubuntu 2*")
CHECKIP_URL = "https://checkip.amazonaws.com"
_NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$")
_AMI_RE = re.compile(r"^ami-(?:[0-9a-f]{8}|[0-9a-f]{17})$")
_REGION_RE = re.compile(r"^[a-z]{2}(?:-gov|-iso[a-z]?)?-[a-z]+-\d$")
_KEY_NAME_RE = re.compile(r"^[\x20-\x7e]{1,255}$")


# ---------------------------------------------------------------- specs and results


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
        if self.ami is not None and not _AMI_RE.match(self.ami):
            raise UsageError(f"--ami {self.ami!r} is not an AMI id", "give one like ami-0123456789abcdef0")
        if self.key_name is not None and not _KEY_NAME_RE.match(self.key_name):
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
class Host:
    """One instance as the playbooks reach it; the fields the inventory records."""

    instance_id: str
    address: str
    user: str
    key_file: str
    port: int
    instance_type: str
    neuron_devices: int
    neuron_cores: int
    region: str
    cluster: str
    availability_zone: str = ""


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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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


@dataclass(frozen=True)
class ClusterInfo:
    name: str
    instances: tuple[InstanceInfo, ...]

    @property
    def hourly_cost(self) -> float | None:
        return _total(i.hourly_price for i in self.instances if i.state in ("pending", "running"))

    @property
    def cost_so_far(self) -> float | None:
        return _total(i.cost_so_far for i in self.instances)


@dataclass(frozen=True)
class StatusResult:
    region: str
    clusters: tuple[ClusterInfo, ...]
    sandbox: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "region": self.region,
            "sandbox": self.sandbox,
            "clusters": [
                {
                    "name": c.name,
                    "hourly_cost": c.hourly_cost,
                    "cost_so_far": c.cost_so_far,
                    "instances": [asdict(i) for i in c.instances],
                }
                for c in self.clusters
            ],
        }


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


# ---------------------------------------------------------------- input checks (pure)


def validate_name(name: str) -> str:
    if not _NAME_RE.match(name):
        raise UsageError(
            f"cluster name {name!r} is not valid",
            "use 1-32 lowercase letters, digits and dashes, starting and ending with a letter or digit",
        )
    return name


def validate_region(region: str) -> str:
    if not _REGION_RE.match(region):
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


# ---------------------------------------------------------------- pure plan logic


def cluster_tags(cluster: str, extra: Sequence[tuple[str, str]] = ()) -> dict[str, str]:
    """The tags every resource of a cluster carries; user tags may rename it but not unmanage it."""
    tags = {TAG_CLUSTER: cluster, TAG_MANAGED: "true", "Name": resource_name(cluster)}
    for key, value in extra:
        tags[key] = value
    return tags


def cluster_filter(cluster: str | None) -> dict[str, list[str]]:
    """EC2 filters that find one cluster's resources, or every cluster's when cluster is None."""
    if cluster is None:
        return {f"tag:{TAG_MANAGED}": ["true"]}
    return {f"tag:{TAG_CLUSTER}": [cluster]}


def managed_key_name(region: str) -> str:
    return f"infprov-{region}"


def resource_name(cluster: str) -> str:
    """The Name of a cluster's instances and security group: infprov-CLUSTER (the default cluster: infprov)."""
    return cluster if cluster == DEFAULT_CLUSTER else f"infprov-{cluster}"


def security_group_name(cluster: str) -> str:
    return resource_name(cluster)


def hourly_cost(instance_type: str, region: str, count: int) -> float | None:
    price = catalog.hourly_price(instance_type, region)
    return None if price is None else round(price * count, 4)


def cost_so_far(launch_time: datetime | None, now: datetime, price: float | None) -> float | None:
    if launch_time is None or price is None:
        return None
    hours = max(0.0, (now - launch_time).total_seconds()) / 3600
    return round(hours * price, 4)


def client_token(
    region: str, cluster: str, group_id: str, count: int, existing: int, zone: str, attempt: int = 0
) -> str:
    """The RunInstances idempotency token for one launch step of a cluster, at one attempt.

    The same `up` (same cluster, target count, what already exists, zone) gives the same token, so
    EC2 answers a repeated or concurrent call with the first call's instances instead of launching
    more. The security group's id changes when a cluster is torn down and made again, so a later
    cluster of the same name never collides with the tokens of an earlier one. `attempt` numbers the
    tokens of one step (LaunchTokens says when the next one is due); attempt 0 is the token infprov
    has always sent for the step.
    """
    key = f"{region}|{cluster}|{group_id}|{count}|{existing}|{zone}"
    if attempt:
        key += f"|attempt {attempt}"
    digest = hashlib.sha256(key.encode()).hexdigest()
    return f"infprov-{digest[:48]}"


@dataclass(frozen=True)
class InstancePlan:
    reuse: tuple[str, ...]
    start: tuple[str, ...]
    stopping: tuple[str, ...]
    launch: int


def plan_instances(existing: Sequence[Mapping[str, Any]], cluster: str, instance_type: str, count: int) -> InstancePlan:
    """Reuse what runs, start what is stopped, launch the shortfall; refuse a type change or a leak."""
    other_types = sorted({i["InstanceType"] for i in existing if i["InstanceType"] != instance_type})
    if other_types:
        raise UsageError(
            f"cluster {cluster} runs {', '.join(other_types)}, not {instance_type}",
            f"use --type {other_types[0]} for this cluster, another --name, or "
            f"`infprov teardown --name {cluster}` first",
        )
    if len(existing) > count:
        raise InfprovError(
            f"cluster {cluster} has {len(existing)} instances but --count {count} was asked: looks like a leak",
            f"run `infprov teardown --name {cluster}` (or `infprov up --name {cluster} --count {len(existing)}` "
            "to keep them all)",
        )
    by_state: dict[str, list[str]] = {}
    for inst in sorted(existing, key=lambda i: str(i["InstanceId"])):
        by_state.setdefault(inst["State"]["Name"], []).append(inst["InstanceId"])
    return InstancePlan(
        reuse=tuple(by_state.get("pending", []) + by_state.get("running", [])),
        start=tuple(by_state.get("stopped", [])),
        stopping=tuple(by_state.get("stopping", [])),
        launch=count - len(existing),
    )


def order_zones(
    offered: Sequence[str], subnets: Mapping[str, str], prefer: Sequence[str] = ()
) -> list[tuple[str, str]]:
    """(zone, subnet) pairs to try: zones that offer the type and have a default subnet.

    Zones the cluster already uses come first (instances close together); the rest in name order,
    which every concurrent run computes alike.
    """
    usable = sorted(z for z in set(offered) if z in subnets)
    first = [z for z in dict.fromkeys(prefer) if z in usable]
    return [(z, subnets[z]) for z in first + [z for z in usable if z not in first]]


# A version is the Neuron SDK's release only where the text says so: "Neuron SDK 2.19.1", "Neuron SDK
# version 2.19.1", "Neuron SDK: v2.19", "Neuron version 2.19.1", "Neuron release 2.19.1". A version
# right after "Neuron" alone is a framework's ("PyTorch Neuron 1.13", "TensorFlow Neuron 2.10"), and so
# is "Neuron version/release X" right after a framework's name; package versions ("torch-neuron
# 1.13.1.2.9.0", "neuron-cc 1.11.4.0") never match.
_NEURON_RELEASE_RE = re.compile(
    r"(?<![\w-])Neuron\s+(?:(?P<sdk>SDK)(?:\s+(?:version|release))?|(?:version|release))\b\s*:?\s*[vV]?"
    r"(?P<version>\d+\.\d+(?:\.\d+)?)(?!\d|\.\d)",
    re.IGNORECASE,
)
_FRAMEWORK_BEFORE_RE = re.compile(
    r"(?:py)?torch(?:vision)?|tensorflow|tf|jax|mxnet|transformers|optimum|vllm|nxd[it]?|nemo|hugging\s*face",
    re.IGNORECASE,
)


def neuron_release(image: Mapping[str, Any]) -> tuple[int, ...] | None:
    """The Neuron SDK release an image names in its description or name, e.g. (2, 26, 0), or None.

    Only an explicit SDK release counts (see _NEURON_RELEASE_RE), never a framework's version: in
    "PyTorch Neuron 1.13, Neuron SDK 2.19.1" the release is 2.19.1, and "PyTorch Neuron 1.13" alone
    names none. Where a text names several releases, the highest is taken: reading too low a release
    is the mistake that would let an image that cannot drive Inf1 through.
    """
    found: list[tuple[int, ...]] = []
    for text in (str(image.get("Description") or ""), str(image.get("Name") or "")):
        for m in _NEURON_RELEASE_RE.finditer(text):
            word_before = re.search(r"([\w-]+)\s+$", text[: m.start()])
            if not m.group("sdk") and word_before and _FRAMEWORK_BEFORE_RE.fullmatch(word_before.group(1)):
                continue
            found.append(tuple(int(part) for part in m.group("version").split(".")))
    return max(found) if found else None


def image_date(image: Mapping[str, Any]) -> str | None:
    m = re.search(r"(20\d{6})\s*$", str(image.get("Name") or ""))
    if m:
        return m.group(1)
    created = str(image.get("CreationDate") or "")
    return created[:10].replace("-", "") if re.match(r"^\d{4}-\d{2}-\d{2}", created) else None


def inf1_verdict(image: Mapping[str, Any]) -> tuple[bool | None, str]:
    """Can this image drive Inf1? (True/False/None = cannot tell) and why, in a few words."""
    desc = str(image.get("Description") or "")
    name = str(image.get("Name") or "")
    listed = re.search(r"Supported EC2 instances?:\s*([^.]*)", desc, re.IGNORECASE)
    supports_listed = None if listed is None else bool(re.search(r"\binf1\b", listed.group(1), re.IGNORECASE))
    if supports_listed is False:
        return False, "its description does not list Inf1 among the supported instances"
    release = neuron_release(image)
    if release is not None:
        text = ".".join(map(str, release))
        cutoff = ".".join(map(str, INF1_LAST_RELEASE_EXCLUSIVE))
        if release >= INF1_LAST_RELEASE_EXCLUSIVE:
            return False, f"Neuron release {text}; releases from {cutoff} on cannot drive Inf1"
        return True, f"Neuron release {text}"
    if supports_listed:
        return True, "its description lists Inf1"
    date = image_date(image)
    if "neuron" in name.lower() and date is not None:
        if date < INF1_DATE_CUTOFF:
            return True, f"dated {date}, before Neuron 2.26.1 (release estimated from the date)"
        return False, f"dated {date}: likely Neuron 2.26.1 or later, which cannot drive Inf1"
    return None, "not a Neuron DLAMI whose release infprov can tell"


def _flavour_rank(name: str) -> int:
    if name.startswith("Deep Learning AMI Neuron ("):
        return 0  # multi-framework
    if name.startswith("Deep Learning Base Neuron AMI"):
        return 1
    return 2  # a single-framework DLAMI


def choose_ami(images: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
    """The newest Inf1-capable Neuron DLAMI among images (x86_64, Ubuntu 22.04 before 20.04)."""
    capable = [
        img
        for img in images
        if img.get("Architecture", "x86_64") == "x86_64"
        and img.get("State", "available") == "available"
        and inf1_verdict(img)[0] is True
    ]
    if not capable:
        raise InfprovError(
            "no Inf1-capable Neuron DLAMI (release before 2.26.1) was found in this region",
            "pin one with --ami ami-..., e.g. a 'Deep Learning AMI Neuron (Ubuntu 22.04)' image from "
            "release 2.26.0 or earlier",
        )

    def rank(img: Mapping[str, Any]) -> tuple[Any, ...]:
        name = str(img.get("Name") or "")
        release = neuron_release(img) or (0,)
        return (
            release,
            -_flavour_rank(name),
            "22.04" in name,
            image_date(img) or "",
            str(img.get("CreationDate") or ""),
        )

    return max(capable, key=rank)


def check_pinned_ami(image: Mapping[str, Any], region: str) -> None:
    """`--ami` wins, but an image known not to drive Inf1 is refused rather than launched."""
    ami = image.get("ImageId")
    name = image.get("Name") or "?"
    if image.get("State", "available") != "available":
        raise UsageError(f"AMI {ami} ({name}) is {image.get('State')}, not available", "pin an available image")
    if image.get("Architecture", "x86_64") != "x86_64":
        raise UsageError(
            f"AMI {ami} ({name}) is for {image.get('Architecture')}; Inf1 instances are x86_64",
            "pin an x86_64 image",
        )
    verdict, why = inf1_verdict(image)
    if verdict is False:
        raise UsageError(
            f"AMI {ami} ({name}) cannot drive Inf1: {why}",
            "pin a Neuron DLAMI of release 2.26.0 or earlier with --ami, or omit --ami to let infprov choose",
        )
    if verdict is None:
        ui.warn(
            f"cannot tell whether AMI {ami} ({name}) in {region} supports Inf1 ({why}); using it as asked. "
            "It needs the Neuron driver of the aws-neuronx-dkms 2.24 line and docker"
        )


def launch_params(
    *,
    image: Mapping[str, Any],
    instance_type: str,
    count: int,
    key_name: str,
    group_id: str,
    subnet_id: str,
    token: str,
    tags: Mapping[str, str],
    disk_gib: int,
    spot: bool,
) -> dict[str, Any]:
    """RunInstances arguments: IMDSv2 only, encrypted gp3 root, terminate on shutdown, tagged."""
    root_device = str(image.get("RootDeviceName") or "/dev/sda1")
    image_root_gib = 0
    for mapping in image.get("BlockDeviceMappings") or []:
        if mapping.get("DeviceName") == root_device:
            image_root_gib = int(mapping.get("Ebs", {}).get("VolumeSize") or 0)
    tag_list = [{"Key": k, "Value": v} for k, v in tags.items()]
    params: dict[str, Any] = {
        "ImageId": image["ImageId"],
        "InstanceType": instance_type,
        "MinCount": count,
        "MaxCount": count,
        "KeyName": key_name,
        "SubnetId": subnet_id,
        "SecurityGroupIds": [group_id],
        "ClientToken": token,
        "InstanceInitiatedShutdownBehavior": "terminate",
        "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled", "HttpPutResponseHopLimit": 1},
        "BlockDeviceMappings": [
            {
                "DeviceName": root_device,
                "Ebs": {
                    "VolumeSize": max(disk_gib, image_root_gib),
                    "VolumeType": "gp3",
                    "Encrypted": True,
                    "DeleteOnTermination": True,
                },
            }
        ],
        "TagSpecifications": [
            {"ResourceType": "instance", "Tags": tag_list},
            {"ResourceType": "volume", "Tags": tag_list},
        ],
    }
    if spot:
        params["InstanceMarketOptions"] = {
            "MarketType": "spot",
            "SpotOptions": {"SpotInstanceType": "one-time", "InstanceInterruptionBehavior": "terminate"},
        }
    return params


def ssh_permission(cidr: str) -> dict[str, Any]:
    net = ipaddress.ip_network(cidr)
    ranges: dict[str, Any] = (
        {"IpRanges": [{"CidrIp": cidr, "Description": "infprov: SSH from the operator"}]}
        if net.version == 4
        else {"Ipv6Ranges": [{"CidrIpv6": cidr, "Description": "infprov: SSH from the operator"}]}
    )
    return {"IpProtocol": "tcp", "FromPort": SSH_PORT, "ToPort": SSH_PORT, **ranges}


def stray_permissions(group: Mapping[str, Any], cidr: str) -> list[dict[str, Any]]:
    """Ingress rules of an infprov group other than SSH from cidr: they are revoked."""
    stray: list[dict[str, Any]] = []
    for perm in group.get("IpPermissions", []) or []:
        base = {k: perm[k] for k in ("IpProtocol", "FromPort", "ToPort") if k in perm}
        is_ssh = perm.get("IpProtocol") == "tcp" and perm.get("FromPort") == SSH_PORT and perm.get("ToPort") == SSH_PORT
        for r in perm.get("IpRanges", []) or []:
            if not (is_ssh and r.get("CidrIp") == cidr):
                stray.append({**base, "IpRanges": [{"CidrIp": r["CidrIp"]}]})
        for r in perm.get("Ipv6Ranges", []) or []:
            if not (is_ssh and r.get("CidrIpv6") == cidr):
                stray.append({**base, "Ipv6Ranges": [{"CidrIpv6": r["CidrIpv6"]}]})
        for pair in perm.get("UserIdGroupPairs", []) or []:
            stray.append({**base, "UserIdGroupPairs": [{"GroupId": pair["GroupId"]}]})
        for pl in perm.get("PrefixListIds", []) or []:
            stray.append({**base, "PrefixListIds": [{"PrefixListId": pl["PrefixListId"]}]})
    return stray


def has_permission(group: Mapping[str, Any], cidr: str) -> bool:
    for perm in group.get("IpPermissions", []) or []:
        if perm.get("IpProtocol") == "tcp" and perm.get("FromPort") == SSH_PORT and perm.get("ToPort") == SSH_PORT:
            cidrs = [r.get("CidrIp") for r in perm.get("IpRanges", []) or []]
            cidrs += [r.get("CidrIpv6") for r in perm.get("Ipv6Ranges", []) or []]
            if cidr in cidrs:
                return True
    return False


def _total(values: Any) -> float | None:
    vals = list(values)
    if not vals or any(v is None for v in vals):
        return None
    return round(sum(vals), 4)


def _money(value: float | None) -> str:
    return "price unknown" if value is None else f"${value:,.2f}"


# ---------------------------------------------------------------- connecting


def connect(region: str | None, sandbox: bool) -> Ec2Provider:
    """The provider for this run: the sandbox's moto endpoint, or EC2 as boto3 is configured."""
    if sandbox:
        if region is not None and region != SANDBOX_REGION:
            raise UsageError(f"the sandbox is {SANDBOX_REGION} only, not {region}", "drop --region with --sandbox")
        endpoint = _sandbox().status().get("ec2_endpoint")
        if not endpoint:
            raise InfprovError("the sandbox is not up", "run `infprov sandbox up`")
        # moto takes any credentials; fixed dummy ones keep real ones out of the sandbox.
        return Ec2Provider(SANDBOX_REGION, endpoint_url=endpoint, access_key="testing", secret_key="testing")
    region = region or default_region()
    if not region:
        raise UsageError("no AWS region is configured", "pass --region us-east-1 or set AWS_REGION")
    return Ec2Provider(validate_region(region))


def _sandbox() -> Any:
    from provision.sandbox import core

    return core


def reconcile_sandbox(prov: Ec2Provider | None = None) -> list[str]:
    """Hosts held by instances the sandbox's EC2 endpoint no longer runs are wiped and freed."""
    prov = prov or connect(None, sandbox=True)
    live = {str(i["InstanceId"]) for i in prov.instances({"instance-state-name": list(NOT_GONE_STATES)})}
    released: list[str] = _sandbox().reconcile(live)
    if released:
        ui.step(f"sandbox: freed the host(s) of {', '.join(released)} (no such instance is alive any more)")
    return released


def _check_sandbox_room(spec: UpSpec, plan: InstancePlan) -> None:
    """Before anything is created: enough free sandbox hosts for the instances this run would launch."""
    free = _sandbox().free_hosts()
    if plan.launch > free:
        total = len(_sandbox().status().get("hosts", []))
        raise UsageError(
            f"cluster {spec.name} needs {plan.launch} more sandbox host(s) but {free} of {total} are free",
            f"run `infprov sandbox up --hosts {total + plan.launch - free}`, or tear another cluster down",
        )


def _api_error(exc: Ec2ApiError, what: str) -> InfprovError:
    if exc.code in ("AuthFailure", "UnauthorizedOperation", "InvalidClientTokenId", "SignatureDoesNotMatch"):
        return InfprovError(f"{what}: EC2 refused the credentials ({exc.code}: {exc.message})",
                            "check AWS_PROFILE / the access keys and the IAM permissions for EC2")
    if exc.code in ("OptInRequired", "InvalidRegion"):
        return InfprovError(f"{what}: {exc.code}: {exc.message}", "choose a region this account may use")
    return InfprovError(f"{what}: EC2 {exc.operation} failed: {exc.code}: {exc.message}",
                        "rerun with --debug for details")


# ---------------------------------------------------------------- up


def up(
    spec: UpSpec,
    *,
    provider: Ec2Provider | None = None,
    ssh_wait: SshWait | None = None,
    confirm: Confirm | None = None,
    timeouts: Timeouts | None = None,
) -> UpResult:
    """Find or launch the cluster's instances and wait until each one takes an SSH login.

    Re-runnable: a second `up` reuses what runs, starts what is stopped and launches only the
    shortfall. After a launch, any failure says how to continue or remove the cluster.
    """
    timeouts = timeouts or DEFAULT_TIMEOUTS
    prov = provider or connect(spec.region, spec.sandbox)
    region = prov.region
    itype = catalog.get(spec.instance_type)
    if spec.sandbox:
        reconcile_sandbox(prov)
    try:
        with _lock(f"cluster-{region}-{spec.name}", timeouts):
            result = _converge(prov, spec, itype, confirm, timeouts)
    except Ec2ApiError as exc:
        raise _api_error(exc, f"up of cluster {spec.name}") from None
    try:
        ids = [*result.reused, *result.started, *result.launched]
        _wait_running(prov, ids, timeouts)
        _wait_status_ok(prov, ids, timeouts)
        instances = prov.instances({"instance-id": ids})
        hosts = _hosts_of(instances, spec.name, region, spec.sandbox, spec.key_name)
        fresh = set(result.launched) | set(result.started)
        _forget_host_keys([(h.address, h.port) for h in hosts if h.instance_id in fresh])
        if ssh_wait is None:
            console = None if spec.sandbox else prov.console_output
            wait_for_ssh(hosts, timeouts, console=console)
        else:
            ssh_wait(hosts, timeouts)
        _record_hosts(spec.name, hosts, spec.inventory, spec.sandbox)
    except KeyboardInterrupt:
        ui.warn(continue_hint(spec))
        raise
    except Ec2ApiError as exc:
        err = _api_error(exc, f"cluster {spec.name} was launched, then")
        raise InfprovError(err.message, continue_hint(spec)) from None
    except InfprovError as exc:
        hint = f"{exc.hint}; or " if exc.hint else ""
        raise InfprovError(f"cluster {spec.name}: {exc.message}", hint + continue_hint(spec)) from None
    ui.ok(f"cluster {spec.name}: {len(hosts)} host(s) take SSH logins")
    return replace(result, hosts=tuple(hosts))


def continue_hint(spec: UpSpec) -> str:
    """How to pick up an `up` that stopped half-way, or undo it: the options that find the same cluster."""
    where = " --sandbox" if spec.sandbox else ""
    if spec.region:
        where += f" --region {spec.region}"
    count = f" --count {spec.count}" if spec.count != 1 else ""
    again = f"infprov up --type {spec.instance_type} --name {spec.name}{count}{where}"
    return f"run `{again}` again to continue or `infprov teardown --name {spec.name}{where}` to remove it"


def _converge(
    prov: Ec2Provider, spec: UpSpec, itype: catalog.InstanceType, confirm: Confirm | None, timeouts: Timeouts
) -> UpResult:
    """Look (read only), decide, confirm, then act: key pair, security group, start, launch."""
    region = prov.region
    zones = prov.zones_offering(itype.name)
    if not zones:
        raise UsageError(
            f"{itype.name} is not offered in {region}", "choose a region that offers Inf1, e.g. us-east-1 or us-west-2"
        )
    existing = prov.instances({f"tag:{TAG_CLUSTER}": [spec.name], "instance-state-name": list(LIVE_STATES)})
    plan = plan_instances(existing, spec.name, itype.name, spec.count)
    if spec.sandbox:
        _check_sandbox_room(spec, plan)
    vpc_id = prov.default_vpc()
    if vpc_id is None:
        raise InfprovError(
            f"{region} has no default VPC", f"create one with `aws ec2 create-default-vpc --region {region}`"
        )
    image: Mapping[str, Any] | None = None
    targets: list[tuple[str, str]] = []
    if plan.launch:
        image = _resolve_image(prov, spec.ami)
        used = [i["Placement"]["AvailabilityZone"] for i in existing]
        targets = order_zones(zones, prov.default_subnets(vpc_id), used)
        if not targets:
            raise InfprovError(
                f"no zone of {region} that offers {itype.name} ({', '.join(zones)}) has a default subnet",
                "create default subnets with `aws ec2 create-default-subnet --availability-zone ZONE`",
            )
    key_name = spec.key_name or managed_key_name(region)
    if spec.key_name:
        _check_user_key(prov, spec)
    cidr = spec.ssh_cidr or caller_cidr(spec.sandbox)

    if plan.launch or plan.start or plan.stopping:
        _confirm_spend(prov, spec, itype, plan, image, confirm)

    tags = cluster_tags(spec.name, spec.tags)
    try:
        if not spec.key_name:
            with _lock(f"key-{region}", timeouts):
                ensure_managed_key(prov, region, spec.tags)
        group_id = ensure_security_group(prov, vpc_id, spec.name, cidr, tags)
    except KeyboardInterrupt:
        ui.warn(f"interrupted while making the key pair and security group: {continue_hint(spec)}")
        raise

    started: list[str] = []
    launched: list[str] = []
    try:
        if plan.stopping:
            _wait_state(prov, list(plan.stopping), "stopped", timeouts.running, timeouts)
        to_start = [*plan.start, *plan.stopping]
        if to_start:
            ui.step(f"starting {len(to_start)} stopped instance(s): {', '.join(to_start)}")
            prov.start_instances(to_start)
            started = to_start
        if plan.launch and image is not None:
            launched = _launch(prov, spec, itype, image, key_name, group_id, targets, len(existing), tags)
    except KeyboardInterrupt:
        ui.warn(f"interrupted while starting or launching instances: {continue_hint(spec)}")
        raise
    except (InfprovError, Ec2ApiError) as exc:
        err = exc if isinstance(exc, InfprovError) else _api_error(exc, f"launch of cluster {spec.name}")
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


def _resolve_image(prov: Ec2Provider, pinned: str | None) -> Mapping[str, Any]:
    if pinned:
        found = prov.image(pinned)
        if found is None:
            raise UsageError(
                f"AMI {pinned} was not found in {prov.region}",
                "AMIs are regional: give this region's id of the image, or omit --ami",
            )
        check_pinned_ami(found, prov.region)
        return found
    image = choose_ami(prov.find_images(["amazon"], DLAMI_NAME_PATTERNS))
    ui.step(f"AMI {image['ImageId']}: {image.get('Name')} ({inf1_verdict(image)[1]})")
    return image


def _confirm_spend(
    prov: Ec2Provider,
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
        cost = f"spot, now {_money(spot)}/h each, at most on-demand {_money(price)}/h each"
    else:
        cost = f"{_money(added)}/h on-demand"
        if added is not None:
            cost += f" (${added * 24:,.2f}/day)"
        if price is None:
            cost += f": the catalog has no {region} price for {itype.name}; see aws.amazon.com/ec2/pricing"
    total = hourly_cost(itype.name, region, spec.count)
    if not spec.spot and total is not None and total != added:
        cost += f"; the whole cluster then costs {_money(total)}/h"
    if spec.sandbox:
        cost += " (sandbox: nothing is billed)"
    ui.step(f"{line}: {cost}")
    ask_or_refuse(f"{what.capitalize()}?", spec.yes, confirm, "launch instances")


def ask_or_refuse(question: str, yes: bool, confirm: Confirm | None, action: str) -> None:
    """Confirmation before spending or deleting: --yes skips it; without a terminal it is refused."""
    if yes:
        return
    if confirm is None:
        if not _interactive():
            raise UsageError(f"refusing to {action} without confirmation: this run is not interactive", "pass --yes")
        confirm = _ask
    if not confirm(question):
        raise InfprovError("not confirmed: nothing was changed", f"pass --yes to {action} without asking")


def _interactive() -> bool:
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


def _ask(question: str) -> bool:
    from rich.prompt import Confirm as RichConfirm

    return bool(RichConfirm.ask(question, console=ui.err, default=False))


def _launch(
    prov: Ec2Provider,
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
                raise _launch_error(exc, spec, itype, need, prov.region) from None
            ids = [str(i["InstanceId"]) for i in instances]
            ended = [str(i["InstanceId"]) for i in instances if i.get("State", {}).get("Name") in ENDED_STATES]
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

    def __init__(self, prov: Ec2Provider, cluster: str, group_id: str, count: int, existing: int) -> None:
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
            token = inst.get("ClientToken")
            if token:
                (self.ended if inst.get("State", {}).get("Name") in ENDED_STATES else self.live).add(str(token))

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


def _launch_error(exc: Ec2ApiError, spec: UpSpec, itype: catalog.InstanceType, need: int, region: str) -> InfprovError:
    if exc.code == "VcpuLimitExceeded":
        quota = "All Inf Spot Instance Requests" if spec.spot else "Running On-Demand Inf instances"
        return InfprovError(
            f"launching {need} x {itype.name} ({need * itype.vcpus} vCPUs) exceeds this account's "
            f"vCPU quota in {region}",
            f"raise the EC2 quota '{quota}' in Service Quotas ({region}) to at least the cluster's vCPUs",
        )
    if exc.code == "MaxSpotInstanceCountExceeded":
        return InfprovError(
            f"spot request refused in {region}: {exc.message}",
            "raise the EC2 quota 'All Inf Spot Instance Requests' in Service Quotas, or drop --spot",
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
    return _api_error(exc, f"launch of {need} x {itype.name}")


# ---------------------------------------------------------------- key pair and security group


def managed_key_file(region: str) -> Path:
    return paths.keys_dir() / f"{managed_key_name(region)}.pem"


def ensure_managed_key(prov: Ec2Provider, region: str, user_tags: Sequence[tuple[str, str]] = ()) -> Path:
    """infprov's key pair for the region: made here (private half 0600 in INFPROV_HOME/keys), then reused.

    It serves every cluster of the region, so it carries no cluster tag; teardown deletes it with
    the region's last cluster.
    """
    name = managed_key_name(region)
    local = managed_key_file(region)
    remote = prov.key_pair(name)
    if remote is not None:
        if local.exists():
            return paths.check_private_file(local, role="infprov's private key")
        if tag_map(remote).get(TAG_MANAGED) != "true":
            raise InfprovError(
                f"a key pair named {name} exists in {region} that infprov did not make",
                "pass --key-name with your own key pair, or delete that key pair",
            )
        users = prov.instances({"key-name": [name], "instance-state-name": list(NOT_GONE_STATES)})
        if users:
            raise InfprovError(
                f"key pair {name} is in use by {len(users)} instance(s) but its private key is not at {local}",
                f"copy the private key there (mode 0600), or `infprov teardown --all --region {region}` first",
            )
        ui.warn(f"key pair {name} has no private key at {local}; replacing it")
        prov.delete_key_pair(name)
    if not local.exists():
        _write_new_key(local)
    public = _public_openssh(local)
    tags = {TAG_MANAGED: "true", TAG_SCOPE: "region", "Name": name, **dict(user_tags)}
    try:
        prov.import_key_pair(name, public, tags)
    except Ec2ApiError as exc:
        if exc.code != "InvalidKeyPair.Duplicate":
            raise
    ui.ok(f"key pair {name} (private key {local})")
    return local


def _write_new_key(path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    paths.write_private(path, pem)


def _public_openssh(private_key: Path) -> bytes:
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_ssh_private_key(private_key.read_bytes(), password=None)
    return key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)


def user_key_file(key_name: str) -> Path | None:
    """Where the private half of a user's own key pair is looked for."""
    home = Path.home() / ".ssh"
    for candidate in (
        paths.keys_dir() / f"{key_name}.pem",
        paths.keys_dir() / key_name,
        home / f"{key_name}.pem",
        home / key_name,
    ):
        if candidate.is_file():
            return paths.check_private_file(candidate, role=f"private key of key pair {key_name}")
    return None


def _check_user_key(prov: Ec2Provider, spec: UpSpec) -> None:
    assert spec.key_name is not None
    if prov.key_pair(spec.key_name) is None:
        raise UsageError(
            f"key pair {spec.key_name} was not found in {prov.region}",
            "create or import it in this region, or omit --key-name to let infprov make one",
        )
    if not spec.sandbox and user_key_file(spec.key_name) is None:
        raise UsageError(
            f"no private key for key pair {spec.key_name}",
            f"put it at {paths.keys_dir() / (spec.key_name + '.pem')} (mode 0600)",
        )


def ensure_security_group(prov: Ec2Provider, vpc_id: str, cluster: str, cidr: str, tags: Mapping[str, str]) -> str:
    """The cluster's group: SSH from cidr only, nothing else open (Triton's ports stay closed)."""
    name = security_group_name(cluster)
    groups = prov.security_groups({"group-name": [name], "vpc-id": [vpc_id]})
    if not groups:
        try:
            group_id = prov.create_security_group(
                name, f"infprov cluster {cluster}: SSH from the operator only", vpc_id, tags
            )
            ui.ok(f"security group {name} ({group_id})")
        except Ec2ApiError as exc:
            if exc.code != "InvalidGroup.Duplicate":
                raise
        groups = prov.security_groups({"group-name": [name], "vpc-id": [vpc_id]})
    group = groups[0]
    if tag_map(group).get(TAG_CLUSTER) != cluster:
        raise InfprovError(
            f"a security group named {name} exists that infprov did not make for cluster {cluster}",
            "delete or rename it, or choose another --name",
        )
    group_id = str(group["GroupId"])
    stray = stray_permissions(group, cidr)
    if stray:
        prov.revoke_ingress(group_id, stray)
        ui.step(f"security group {name}: removed {len(stray)} rule(s) other than SSH from {cidr}")
    if not has_permission(group, cidr):
        try:
            prov.authorize_ingress(group_id, [ssh_permission(cidr)])
        except Ec2ApiError as exc:
            if exc.code != "InvalidPermission.Duplicate":
                raise
        ui.step(f"security group {name}: SSH from {cidr}")
    return group_id


def caller_cidr(sandbox: bool) -> str:
    """This machine's address as the hosts see it, as a /32 (or /128)."""
    if sandbox:
        hosts = _sandbox().status().get("hosts", [])
        if hosts:
            # The kernel's source address towards a sandbox host; a UDP connect sends nothing.
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.connect((hosts[0]["address"], SSH_PORT))
                return f"{sock.getsockname()[0]}/32"
        return "127.0.0.1/32"
    try:
        with urllib.request.urlopen(CHECKIP_URL, timeout=10) as resp:
            text = resp.read(64).decode().strip()
        addr = ipaddress.ip_address(text)
    except (OSError, ValueError) as exc:
        raise InfprovError(
            f"could not learn this machine's public address from {CHECKIP_URL} ({exc})",
            "pass --ssh-cidr A.B.C.D/32 with the address you connect from",
        ) from None
    return f"{addr}/{addr.max_prefixlen}"


# ---------------------------------------------------------------- waits


def _ticker(what: str, every: float = 15.0) -> Callable[[float], None]:
    shown = [0.0]

    def tick(elapsed: float) -> None:
        if elapsed - shown[0] >= every:
            shown[0] = elapsed
            ui.step(f"still waiting for {what} ({elapsed:.0f} s)")

    return tick


def _wait_state(prov: Ec2Provider, ids: Sequence[str], target: str, timeout: float, timeouts: Timeouts) -> None:
    states: dict[str, str] = {}

    def probe() -> bool:
        states.clear()
        states.update({i["InstanceId"]: i["State"]["Name"] for i in prov.instances({"instance-id": list(ids)})})
        if target == "terminated":  # EC2 forgets terminated instances after a while
            return all(states.get(i, "terminated") == target for i in ids)
        return all(states.get(i) == target for i in ids)

    wait_until(
        probe,
        what=f"{len(ids)} instance(s) to be {target}",
        timeout=timeout,
        interval=timeouts.interval,
        on_tick=_ticker(f"{len(ids)} instance(s) to be {target}"),
        last_state=lambda: ", ".join(f"{k}: {v}" for k, v in sorted(states.items())) or "none found",
    )


def _wait_running(prov: Ec2Provider, ids: Sequence[str], timeouts: Timeouts) -> None:
    """Wait until every instance runs; one that ends meanwhile (e.g. no spot capacity) fails at once."""
    if not ids:
        return
    states: dict[str, tuple[str, str]] = {}

    def probe() -> str | None:
        for inst in prov.instances({"instance-id": list(ids)}):
            states[inst["InstanceId"]] = (inst["State"]["Name"], inst.get("StateReason", {}).get("Message", ""))
        dead = {k: v for k, v in states.items() if v[0] in ("shutting-down", "terminated")}
        if dead:
            return "; ".join(f"{k}: {s} ({why or 'no reason given'})" for k, (s, why) in sorted(dead.items()))
        return "" if all(states.get(i, ("",))[0] == "running" for i in ids) else None

    ui.step(f"waiting for {len(ids)} instance(s) to run")
    dead = wait_until(
        probe,
        what=f"{len(ids)} instance(s) to be running",
        timeout=timeouts.running,
        interval=timeouts.interval,
        on_tick=_ticker("the instances to run"),
        last_state=lambda: ", ".join(f"{k}: {v[0]}" for k, v in sorted(states.items())) or "none found",
    )
    if dead:
        raise InfprovError(f"instance(s) ended while starting: {dead}", "")


def _wait_status_ok(prov: Ec2Provider, ids: Sequence[str], timeouts: Timeouts) -> None:
    if not ids:
        return
    checks: dict[str, tuple[str, str, str]] = {}

    def probe() -> bool:
        checks.update(prov.instance_statuses(ids))
        return all(checks.get(i, ("", "", ""))[1:] == ("ok", "ok") for i in ids)

    ui.step(f"waiting for the status checks of {len(ids)} instance(s)")
    wait_until(
        probe,
        what="the EC2 status checks to pass",
        timeout=timeouts.status_ok,
        interval=timeouts.interval,
        on_tick=_ticker("the status checks"),
        last_state=lambda: ", ".join(f"{k}: instance {v[1]}, system {v[2]}" for k, v in sorted(checks.items()))
        or "no status yet",
    )


def wait_for_ssh(
    hosts: Sequence[Host], timeouts: Timeouts, console: Callable[[str], str] | None = None
) -> None:
    """The real SSH wait: the port answers, then a key login as the user runs a command.

    Host keys are pinned in INFPROV_HOME/known_hosts on first contact (by the playbook engine's
    connection, the one SSH path); a key that differs from a pinned one stops the wait at once.
    With `console` (instance id -> its console output), a first contact is checked against the host
    key fingerprints the instance printed there, when it printed any, instead of being trusted.
    """
    pending = list(hosts)
    ui.step(f"waiting for SSH on {', '.join(f'{h.address}:{h.port}' for h in hosts)}")

    def port_probe() -> bool:
        for host in list(pending):
            with socket.create_connection((host.address, host.port), timeout=3):
                pending.remove(host)
        return not pending

    wait_until(
        port_probe,
        what=f"SSH port on {len(hosts)} host(s)",
        timeout=timeouts.ssh_port,
        interval=timeouts.interval,
        on_tick=_ticker("the SSH port"),
        hint="the security group allows SSH only from --ssh-cidr; check it matches the address you connect from",
    )
    pending = list(hosts)
    from playbooks.errors import HostKeyChanged

    expected: dict[str, list[str]] = {}

    def login_probe() -> HostKeyChanged | bool:
        for host in list(pending):
            if console is not None and not expected.get(host.instance_id):
                from playbooks.connection import console_fingerprints

                expected[host.instance_id] = console_fingerprints(console(host.instance_id))
            try:
                ssh_login(host, expected=expected.get(host.instance_id) or None)
            except HostKeyChanged as exc:
                return exc  # waiting will not change a host key
            if console is not None and not expected.get(host.instance_id):
                ui.warn(f"{host.address}: its console output shows no SSH host key fingerprints yet, so the key "
                        "it presented was pinned unchecked (trust on first use); later logins must match it")
            pending.remove(host)
        return not pending

    outcome = wait_until(
        login_probe,
        what=f"an SSH login as {hosts[0].user if hosts else SSH_USER} on {len(hosts)} host(s)",
        timeout=timeouts.ssh_login,
        interval=timeouts.interval,
        on_tick=_ticker("the SSH login"),
        hint="cloud-init may still be setting up the user; check the key file and the instance's console output",
    )
    if isinstance(outcome, HostKeyChanged):
        raise InfprovError(outcome.message, outcome.hint)


def ssh_login(host: Host, timeout: float = 15.0, expected: Sequence[str] | None = None) -> None:
    """One key login that runs `true`, through the playbook engine's SSH connection."""
    from inventory import model
    from playbooks.connection import SshConnection

    target = model.Host(
        name=host.instance_id, address=host.address, user=host.user, key_file=host.key_file, port=host.port
    )
    conn = SshConnection(target, paths.known_hosts(), connect_timeout=timeout, expected_fingerprints=expected)
    try:
        result = conn.run("true", timeout=timeout)
    finally:
        conn.close()
    if result.exit_code != 0:
        raise InfprovError(f"{host.address}: `true` exited {result.exit_code} over SSH: {result.tail(3)}", "")


def _forget_host_keys(hosts: Sequence[tuple[str, int]]) -> None:
    """Drop pinned host keys of addresses that now belong to other machines (new or gone instances)."""
    from playbooks.connection import forget_host_key

    for address, port in hosts:
        if address:
            forget_host_key(paths.known_hosts(), address, port)


def _hosts_of(
    instances: Sequence[Mapping[str, Any]], cluster: str, region: str, sandbox: bool, user_key: str | None
) -> list[Host]:
    hosts: list[Host] = []
    for inst in sorted(instances, key=lambda i: str(i["InstanceId"])):
        itype = catalog.get(inst["InstanceType"])
        devices = itype.neuron_devices
        zone = str(inst.get("Placement", {}).get("AvailabilityZone", ""))
        if sandbox:
            entry = _sandbox().assign_host(inst["InstanceId"], devices)  # the host shows the type's chips
            address, port, user, key_file = entry["address"], int(entry["port"]), entry["user"], entry["key_file"]
            host_devices = int(entry.get("neuron_devices") or devices)
            if host_devices != devices:
                ui.warn(
                    f"{inst['InstanceId']} ({itype.name}, {devices} Neuron devices) stands on sandbox host "
                    f"{entry.get('name')} with {host_devices}; recording the host's"
                )
            devices = host_devices
        else:
            address = inst.get("PublicIpAddress") or inst.get("PrivateIpAddress") or ""
            if not address:
                raise InfprovError(f"{inst['InstanceId']} has no IP address", "check the default subnet's settings")
            port, user = SSH_PORT, SSH_USER
            key_name = inst.get("KeyName") or user_key or managed_key_name(region)
            if key_name == managed_key_name(region):
                key_file = str(managed_key_file(region))
            else:
                found = user_key_file(key_name)
                key_file = str(found) if found else str(paths.keys_dir() / f"{key_name}.pem")
        hosts.append(
            Host(
                instance_id=str(inst["InstanceId"]),
                address=str(address),
                user=str(user),
                key_file=str(key_file),
                port=port,
                instance_type=itype.name,
                neuron_devices=devices,
                neuron_cores=devices * catalog.CORES_PER_DEVICE,
                region=region,
                cluster=cluster,
                availability_zone=zone,
            )
        )
    return hosts


# ---------------------------------------------------------------- inventory

SANDBOX_VAR = "infprov_sandbox"  # marks sandbox hosts, so a sandbox run never drops AWS ones


def _record_hosts(cluster: str, hosts: Sequence[Host], inventory: str | None = None, sandbox: bool = False) -> None:
    """Make the inventory's group for cluster hold exactly these hosts (the cloud is the truth)."""
    from inventory import model, store

    records = [
        model.Host(
            name=h.instance_id,
            address=h.address,
            user=h.user,
            key_file=h.key_file,
            port=h.port,
            instance_type=h.instance_type,
            neuron_devices=h.neuron_devices,
            neuron_cores=h.neuron_cores,
            region=h.region,
            cluster=cluster,
            extra={SANDBOX_VAR: True} if sandbox else {},
        )
        for h in hosts
    ]
    ids = {r.name for r in records}

    def change(inv: model.Inventory) -> model.Inventory:
        kept = [h for h in inv.hosts if h.cluster != cluster and h.name not in ids]
        return model.Inventory(tuple(kept + records), inv.group_vars)

    with _inventory_errors():
        store.update(paths.inventory_file(inventory), change)


def _forget_hosts(
    region: str, sandbox: bool, inventory: str | None, cluster: str | None, keep: Sequence[str] = ()
) -> None:
    """Drop the inventory's hosts of this region (and sandbox-ness), of one cluster or all, except keep."""
    from inventory import model, store

    path = paths.inventory_file(inventory)
    if not path.exists():
        return
    kept_ids = set(keep)

    def gone(h: model.Host) -> bool:
        return (
            (cluster is None or h.cluster == cluster)
            and h.region == region
            and bool(h.extra.get(SANDBOX_VAR, False)) == sandbox
            and h.name not in kept_ids
        )

    def change(inv: model.Inventory) -> model.Inventory:
        return model.Inventory(tuple(h for h in inv.hosts if not gone(h)), inv.group_vars)

    with _inventory_errors():
        store.update(path, change)


@contextlib.contextmanager
def _inventory_errors() -> Iterator[None]:
    from inventory.errors import InventoryError

    try:
        yield
    except InventoryError as exc:
        err = InfprovError(exc.message, exc.hint)
        err.exit_code = exc.exit_code
        raise err from None


# ---------------------------------------------------------------- status


def status(
    *,
    name: str | None = None,
    region: str | None = None,
    sandbox: bool = False,
    provider: Ec2Provider | None = None,
    inventory: str | None = None,
    now: datetime | None = None,
) -> StatusResult:
    """Every infprov cluster in the region (the cloud is the truth); refreshes the local inventory."""
    if name is not None:
        validate_name(name)
    prov = provider or connect(region, sandbox)
    moment = now or datetime.now(timezone.utc)
    try:
        found = prov.instances({**cluster_filter(name), "instance-state-name": list(NOT_GONE_STATES)})
    except Ec2ApiError as exc:
        raise _api_error(exc, "status") from None
    clusters: dict[str, list[InstanceInfo]] = {}
    running: dict[str, list[Mapping[str, Any]]] = {}
    for inst in sorted(found, key=lambda i: str(i["InstanceId"])):
        tags = tag_map(inst)
        cluster = tags.get(TAG_CLUSTER, "?")
        state = inst["State"]["Name"]
        itype = str(inst["InstanceType"])
        price = catalog.TYPES[itype].price(prov.region) if itype in catalog.TYPES else None
        launched = inst.get("LaunchTime")
        launched_at = launched if isinstance(launched, datetime) else None
        up_now = state in ("pending", "running")
        address = inst.get("PublicIpAddress") or inst.get("PrivateIpAddress") or ""
        if sandbox and state == "running":
            address = _sandbox().assign_host(inst["InstanceId"])["address"]
        if state == "running" and itype in catalog.TYPES:
            running.setdefault(cluster, []).append(inst)
        clusters.setdefault(cluster, []).append(
            InstanceInfo(
                instance_id=str(inst["InstanceId"]),
                cluster=cluster,
                state=state,
                address=str(address),
                instance_type=itype,
                availability_zone=str(inst.get("Placement", {}).get("AvailabilityZone", "")),
                spot=inst.get("InstanceLifecycle") == "spot",
                launched_at=launched_at.isoformat() if launched_at else None,
                uptime_s=round((moment - launched_at).total_seconds()) if launched_at and up_now else None,
                hourly_price=price,
                cost_so_far=cost_so_far(launched_at, moment, price) if up_now else 0.0,
                auto_teardown=tags.get("infprov:auto-teardown"),
            )
        )
    live_ids = [i.instance_id for infos in clusters.values() for i in infos]
    _forget_hosts(prov.region, sandbox, inventory, name, keep=live_ids)
    for cluster, insts in running.items():
        _record_hosts(cluster, _hosts_of(insts, cluster, prov.region, sandbox, None), inventory, sandbox)
    return StatusResult(
        region=prov.region,
        clusters=tuple(ClusterInfo(n, tuple(i)) for n, i in sorted(clusters.items())),
        sandbox=sandbox,
    )


# ---------------------------------------------------------------- teardown


def teardown(
    *,
    name: str | None = None,
    all_clusters: bool = False,
    region: str | None = None,
    sandbox: bool = False,
    yes: bool = False,
    dry_run: bool = False,
    provider: Ec2Provider | None = None,
    confirm: Confirm | None = None,
    inventory: str | None = None,
    timeouts: Timeouts | None = None,
) -> TeardownResult:
    """Terminate, wait, delete the group and key pair, then sweep by tag and report what is left.

    Interrupted, it can be run again: every step looks first and skips what is already gone.
    """
    if name is not None and all_clusters:
        raise UsageError("--name and --all exclude each other", "give one of them")
    cluster = None if all_clusters else validate_name(name or DEFAULT_CLUSTER)
    timeouts = timeouts or DEFAULT_TIMEOUTS
    prov = provider or connect(region, sandbox)
    scope = "all clusters" if cluster is None else f"cluster {cluster}"
    if sandbox:
        reconcile_sandbox(prov)
    try:
        with contextlib.ExitStack() as stack:
            if cluster is not None:
                stack.enter_context(_lock(f"cluster-{prov.region}-{cluster}", timeouts))
                stack.enter_context(server_lock(prov.region, cluster, timeouts))
            return _teardown(prov, cluster, scope, sandbox, yes, dry_run, confirm, inventory, timeouts)
    except Ec2ApiError as exc:
        err = _api_error(exc, f"teardown of {scope}")
        raise InfprovError(err.message, "run `infprov teardown` again; it continues where it stopped") from None


def _teardown(
    prov: Ec2Provider,
    cluster: str | None,
    scope: str,
    sandbox: bool,
    yes: bool,
    dry_run: bool,
    confirm: Confirm | None,
    inventory: str | None,
    timeouts: Timeouts,
) -> TeardownResult:
    region = prov.region
    filters = cluster_filter(cluster)
    instances = prov.instances({**filters, "instance-state-name": list(NOT_GONE_STATES)})
    instance_ids = sorted(str(i["InstanceId"]) for i in instances)
    groups = prov.security_groups(filters)
    volumes = prov.volumes(filters)
    key_name = managed_key_name(region)
    key_pairs: list[str] = []
    if prov.key_pair(key_name) is not None:
        users = prov.instances({"key-name": [key_name], "instance-state-name": list(NOT_GONE_STATES)})
        only_ours = all(u["InstanceId"] in instance_ids for u in users)
        if only_ours and (cluster is None or not _other_clusters(prov, cluster)):
            key_pairs.append(key_name)
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
            _forget_hosts(region, sandbox, inventory, cluster)
            return replace(plan, leftovers=tuple(sweep(prov, cluster)))
        return plan
    what = []
    if instance_ids:
        what.append(f"terminate {len(instance_ids)} instance(s)")
    if groups or volumes or key_pairs:
        what.append(f"delete {len(groups)} security group(s), {len(volumes)} volume(s), {len(key_pairs)} key pair(s)")
    ui.step(f"{scope} in {region}: {' and '.join(what)}")
    ask_or_refuse(f"Remove {scope} in {region}?", yes, confirm, "tear down")

    addresses = _addresses(instances, sandbox)
    live = [i["InstanceId"] for i in instances if i["State"]["Name"] != "shutting-down"]
    if live:
        ui.step(f"terminating {', '.join(live)}")
        prov.terminate_instances(live)
    if instance_ids:
        _wait_state(prov, instance_ids, "terminated", timeouts.terminated, timeouts)
        ui.ok(f"{len(instance_ids)} instance(s) terminated")
        _forget_host_keys(addresses)
        if sandbox:
            for inst_id in instance_ids:
                _sandbox().release_host(inst_id)
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
        with _lock(f"key-{region}", timeouts):
            prov.delete_key_pair(key)
            managed_key_file(region).unlink(missing_ok=True)
        ui.ok(f"key pair {key} deleted, and its private key")
    _forget_hosts(region, sandbox, inventory, cluster)
    leftovers = sweep(prov, cluster, also_key=key_pairs[0] if key_pairs else None)
    return replace(plan, leftovers=tuple(leftovers))


def _addresses(instances: Sequence[Mapping[str, Any]], sandbox: bool) -> list[tuple[str, int]]:
    """Where SSH reached these instances: their public address, or their sandbox host's."""
    found: list[tuple[str, int]] = []
    for inst in instances:
        if sandbox:
            with contextlib.suppress(InfprovError):  # no host for it: nothing was pinned for it either
                entry = _sandbox().assign_host(inst["InstanceId"])  # idempotent: the host it already has
                found.append((str(entry["address"]), int(entry["port"])))
        elif inst.get("PublicIpAddress"):
            found.append((str(inst["PublicIpAddress"]), SSH_PORT))
    return found


def _other_clusters(prov: Ec2Provider, cluster: str) -> bool:
    managed = prov.instances({f"tag:{TAG_MANAGED}": ["true"], "instance-state-name": list(NOT_GONE_STATES)})
    return any(tag_map(i).get(TAG_CLUSTER) != cluster for i in managed)


def _delete_group(prov: Ec2Provider, group_id: str, name: str, timeouts: Timeouts) -> None:
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
        on_tick=_ticker(f"security group {name or group_id} to be released"),
        last_state=lambda: last[0] or "in use",
    )
    ui.ok(f"security group {name or group_id} deleted")


def sweep(prov: Ec2Provider, cluster: str | None, also_key: str | None = None) -> list[Leftover]:
    """What still carries the cluster's tags (or any infprov tag): must be nothing after teardown."""
    filters = cluster_filter(cluster)
    left: list[Leftover] = []
    for inst in prov.instances({**filters, "instance-state-name": list(NOT_GONE_STATES)}):
        left.append(Leftover("instance", str(inst["InstanceId"]), inst["State"]["Name"]))
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


# ---------------------------------------------------------------- local locks


def server_lock(region: str, cluster: str, timeouts: Timeouts | None = None) -> contextlib.AbstractContextManager[None]:
    """Held while `up` provisions the cluster's hosts and while `teardown` removes them. Two `up` at once
    raced to replace one server container (tests/test_faults.py found it: one failed with "No such
    container"); a teardown in the middle of an `up` is the same race, so teardown waits its turn."""
    return _lock(f"server-{region}-{cluster}", timeouts or DEFAULT_TIMEOUTS)


@contextlib.contextmanager
def _lock(name: str, timeouts: Timeouts) -> Iterator[None]:
    """An exclusive lock shared by every infprov process of this user (flock on INFPROV_HOME/locks).

    It makes two `up` of one cluster on this machine take turns: the second finds the first's
    instances. Across machines the launch token plays that part.
    """
    folder = paths.private_dir(paths.home() / "locks", role="locks folder")
    fd = os.open(folder / f"{name}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            ui.step(f"another infprov run holds {name}; waiting for it")

            def take() -> bool:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return False
                return True

            wait_until(take, what=f"the lock {name}", timeout=timeouts.lock, interval=0.2,
                       hint=f"another infprov run is working on it; remove {folder / (name + '.lock')} "
                       "only if no infprov runs")
        yield
    finally:
        os.close(fd)  # closing releases the flock
