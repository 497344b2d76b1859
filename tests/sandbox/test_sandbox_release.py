"""A released sandbox host is made new: nothing one tenant left reaches the next (issue 23, item 11).

The first tenant, as root on its host, changes /etc, leaves a root process running, a file in /dev/shm, a
docker volume and network and a scheduled power-off; after release the next tenant of the same host finds
none of it.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

pytestmark = pytest.mark.sandbox


def _ssh(host: dict[str, Any], command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ssh", "-i", host["key_file"], "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
         "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-p", str(host["port"]),
         f"{host['user']}@{host['address']}", command],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


@pytest.fixture()
def tenants(sandbox_hosts: list[dict[str, Any]]) -> Iterator[list[str]]:
    """Instance ids this test assigns hosts to; every one still held is released at the end."""
    from infprov.sandbox import core, records

    held: list[str] = []
    try:
        yield held
    finally:
        for iid in held:
            if iid in records.read_state().get("assignments", {}):
                core.release_host(iid)


def test_a_released_host_keeps_nothing_of_its_tenant(tenants: list[str]) -> None:
    from infprov.sandbox import core, records

    first = core.assign_host("i-0tenant000000001")
    tenants.append("i-0tenant000000001")
    leave = (
        "set -e; sudo -n sh -c 'echo tenant > /etc/infprov-tenant-mark'; "
        "cp /bin/sleep ~/tenantproc; sudo -n setsid ~/tenantproc 86400 </dev/null >/dev/null 2>&1 & "
        "echo tenant > /dev/shm/infprov-tenant-mark; "
        "docker volume create infprov-tenant-vol >/dev/null; docker network create infprov-tenant-net >/dev/null; "
        "sudo -n shutdown -P +30 2>/dev/null; sleep 1; pgrep -x tenantproc >/dev/null && echo left"
    )
    done = _ssh(first, leave)
    assert done.returncode == 0 and "left" in done.stdout, done.stderr
    seen = _ssh(first, "cat /etc/infprov-tenant-mark /dev/shm/infprov-tenant-mark; cat /run/infprov-power.at")
    assert seen.stdout.count("tenant") == 2 and seen.returncode == 0, seen

    core.release_host("i-0tenant000000001")
    # the next tenant of that same host (other free hosts are taken first if they come earlier)
    again: dict[str, Any] = {}
    for n in range(2, 10):
        iid = f"i-0tenant00000000{n}"
        host = core.assign_host(iid)
        tenants.append(iid)
        if host["name"] == first["name"]:
            again = host
            break
    assert again, "the released host was not given out again"
    after = _ssh(again, "ls /etc/infprov-tenant-mark /dev/shm/infprov-tenant-mark /run/infprov-power.at 2>&1; "
                        "pgrep -x tenantproc || echo no-tenant-process; docker volume ls -q; "
                        "docker network ls --format '{{.Name}}'")
    assert "No such file" in after.stdout and after.stdout.count("No such file") == 3, after.stdout
    assert "no-tenant-process" in after.stdout, after.stdout
    assert "infprov-tenant-vol" not in after.stdout and "infprov-tenant-net" not in after.stdout, after.stdout
    # and it is a whole host again: sshd, dockerd and the stand-in images
    state = records.read_state()["hosts"][first["name"]]
    from infprov.sandbox import nshost
    from infprov.sandbox.places import HostSpec

    assert nshost.host_problem(HostSpec(int(first["name"][1:])), state, quick=False) is None
