"""For the sandbox tests: a command on an inventory host over infprov's own SSH connection (the pinned host
key), a hostile inventory of one sandbox host, and a boto3 client on the sandbox's EC2 endpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from infprov.inventory.model import Host

# ansible-core's own ssh options a hostile inventory would set to turn host-key checking off
NO_HOST_KEY_CHECKS = "-o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no"


def on_host(instance_id: str, command: str, *, timeout: float | None = None, known_hosts: Path | None = None) -> str:
    """The command's standard output (not stripped); it must exit 0 (else the assertion shows its output)."""
    from infprov.floor import paths
    from infprov.inventory import store
    from infprov.playbooks.connection import SshConnection

    found = store.load(paths.inventory_file()).find(instance_id)
    assert found is not None, f"{instance_id} is not in the inventory"
    conn = SshConnection(found, known_hosts or paths.known_hosts())
    try:
        res = conn.run(command, timeout=timeout) if timeout is not None else conn.run(command)
    finally:
        conn.close()
    assert res.exit_code == 0, str(res.out) + str(res.err)
    return str(res.out)


def hostile_inventory(path: Path, h: dict[str, Any], name: str = "i-hostile") -> Host:
    """An inventory at path of one sandbox host (as sandbox_hosts gives it), in cluster `hostile`, whose
    variables try to turn host-key checking off."""
    from infprov.inventory import store
    from infprov.inventory.model import Inventory

    host = Host(name=name, address=h["address"], port=int(h["port"]), user=h["user"], key_file=h["key_file"],
                cluster="hostile", extra={"ansible_ssh_common_args": NO_HOST_KEY_CHECKS})
    store.write(path, Inventory((host,)))
    return host


def sandbox_ec2() -> Any:
    """A boto3 EC2 client on the sandbox's endpoint, with its own credentials."""
    import boto3

    from infprov.sandbox import core

    access_key, secret_key = core.ec2_credentials()
    return boto3.client("ec2", region_name="us-east-1", endpoint_url=core.status()["ec2_endpoint"],
                        aws_access_key_id=access_key, aws_secret_access_key=secret_key)
