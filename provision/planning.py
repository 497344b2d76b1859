"""Pure plan logic for a cluster: tags, names, costs, launch tokens, instance shortfall, zone order, launch
parameters and security-group rules."""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from infprov.floor.errors import InfprovError, UsageError
from infprov.provision import catalog
from infprov.provision.ec2 import Instance
from infprov.provision.specs import DEFAULT_CLUSTER, SSH_PORT, TAG_CLUSTER, TAG_MANAGED

TAG_HOME = "infprov:home"  # the id of the INFPROV_HOME that made it (floor.paths.home_id)

CAPACITY_CODES = frozenset({"InsufficientInstanceCapacity", "InsufficientCapacity", "Unsupported"})


def cluster_tags(cluster: str, extra: Sequence[tuple[str, str]] = (), home: str | None = None) -> dict[str, str]:
    """The tags every resource of a cluster carries (with the id of the home that made it); user tags may
    rename it but not unmanage it."""
    tags = {TAG_CLUSTER: cluster, TAG_MANAGED: "true", "Name": resource_name(cluster)}
    if home:
        tags[TAG_HOME] = home
    for key, value in extra:
        tags[key] = value
    return tags


def cluster_filter(cluster: str | None, home: str | None = None) -> dict[str, list[str]]:
    """EC2 filters that find one cluster's resources, or every cluster's when cluster is None (with home:
    every cluster that home made; the first filter is the one the sweep asks the tag API about)."""
    if cluster is None:
        if home:
            return {f"tag:{TAG_HOME}": [home], f"tag:{TAG_MANAGED}": ["true"]}
        return {f"tag:{TAG_MANAGED}": ["true"]}
    return {f"tag:{TAG_CLUSTER}": [cluster]}


def managed_key_name(region: str, home: str | None = None) -> str:
    """infprov's key pair for a region, one per home (two homes sharing an account never share one);
    without home, the name infprov used before homes had ids."""
    return f"infprov-{region}-{home}" if home else f"infprov-{region}"


def home_of(tags: Mapping[str, str]) -> str | None:
    """The home that made a resource (None: made before homes had ids)."""
    return tags.get(TAG_HOME) or None


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


def plan_instances(existing: Sequence[Instance], cluster: str, instance_type: str, count: int) -> InstancePlan:
    """Reuse what runs, start what is stopped, launch the shortfall; refuse a type change or a leak."""
    other_types = sorted({i.instance_type for i in existing if i.instance_type != instance_type})
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
    for inst in sorted(existing, key=lambda i: str(i.id)):
        by_state.setdefault(inst.state, []).append(inst.id)
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
        # IMDSv2 only (the IAM policy requires it: ec2:MetadataHttpTokens), and a token's answer travels
        # one hop: the host's own processes (cloud-init) reach the metadata, Triton's container on docker's
        # bridge network does not; nothing infprov runs there needs it (tests/unit/test_cloud_unit.py).
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
