"""A command on an inventory host over infprov's own SSH connection (the pinned host key), for the sandbox
tests that look at what a run left on a host."""

from __future__ import annotations

from pathlib import Path


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
