"""Who may reach the hosts: the managed key pair, the user's own key, the cluster's security group."""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path

from infprov.floor import paths
from infprov.floor.errors import InfprovError, UsageError
from infprov.provision import ui
from infprov.provision.ec2 import Ec2ApiError, tag_map
from infprov.provision.planning import (
    TAG_HOME,
    has_permission,
    home_of,
    managed_key_name,
    security_group_name,
    ssh_permission,
    stray_permissions,
)
from infprov.provision.providers import Provider
from infprov.provision.specs import NOT_GONE_STATES, TAG_CLUSTER, TAG_MANAGED, TAG_SCOPE, UpSpec


def managed_key_file(region: str) -> Path:
    return paths.keys_dir() / f"{this_home_key(region)}.pem"


def this_home_key(region: str) -> str:
    """The name of this home's key pair in region (infprov-REGION-HOMEID)."""
    return managed_key_name(region, paths.home_id())


def ensure_managed_key(prov: Provider, region: str, user_tags: Sequence[tuple[str, str]] = ()) -> Path:
    """infprov's key pair for the region: made here (private half 0600 in INFPROV_HOME/keys), then reused.

    It serves every cluster this home has in the region, so it carries no cluster tag (but this home's
    id); teardown deletes it with this home's last cluster of the region.
    """
    home = paths.home_id()
    name = managed_key_name(region, home)
    local = managed_key_file(region)
    remote = prov.key_pair(name)
    if remote is not None:
        if local.exists():
            return paths.check_private_file(local, role="infprov's private key")
        remote_tags = tag_map(remote)
        if remote_tags.get(TAG_MANAGED) != "true" or home_of(remote_tags) not in (None, home):
            raise InfprovError(
                f"a key pair named {name} exists in {region} that this infprov home did not make",
                "pass --key-name with your own key pair, or delete that key pair",
            )
        users = prov.instances({"key-name": [name], "instance-state-name": list(NOT_GONE_STATES)})
        if users:
            clusters = sorted({u.tags.get(TAG_CLUSTER, "?") for u in users})
            raise InfprovError(
                f"key pair {name} is in use by {len(users)} instance(s) of this home's cluster(s) "
                f"{', '.join(clusters)} but its private key is not at {local}",
                "copy the private key there (mode 0600), or tear those clusters down first: "
                + "; ".join(f"`infprov teardown --name {shlex.quote(c)} --region {region}`" for c in clusters),
            )
        ui.warn(f"key pair {name} has no private key at {local}; replacing it")
        prov.delete_key_pair(name)
    if not local.exists():
        _write_new_key(local)
    public = _public_openssh(local)
    tags = {TAG_MANAGED: "true", TAG_SCOPE: "region", TAG_HOME: home, "Name": name, **dict(user_tags)}
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


def check_user_key(prov: Provider, spec: UpSpec) -> None:
    assert spec.key_name is not None
    if prov.key_pair(spec.key_name) is None:
        raise UsageError(
            f"key pair {spec.key_name} was not found in {prov.region}",
            "create or import it in this region, or omit --key-name to let infprov make one",
        )
    if prov.needs_key_file() and user_key_file(spec.key_name) is None:
        raise UsageError(
            f"no private key for key pair {spec.key_name}",
            f"put it at {paths.keys_dir() / (spec.key_name + '.pem')} (mode 0600)",
        )


def ensure_security_group(prov: Provider, vpc_id: str, cluster: str, cidr: str, tags: Mapping[str, str]) -> str:
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


