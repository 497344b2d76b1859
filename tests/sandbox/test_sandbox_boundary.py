"""A sandbox host's root cannot touch the machine (issue 23, item 10).

Each host runs in a user namespace of its own (root there is an unprivileged ID on the machine) on a root file
system of its own (an overlay over the read-only host root file system, pivoted into, the machine's `/`
detached). Everything here is done from the host, over its SSH login, as root through sudo, as a user's
playbook would: what it writes stays in the host's own layer, and what the machine keeps private (a
controller's INFPROV_HOME key, the sandbox's private folder and login key) it cannot read, also after it has
unmounted whatever is mounted.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from pathlib import Path
from typing import Any

import pytest

from infprov.sandbox import faults, records
from infprov.sandbox.places import HOST_ID_BASE, HOST_ID_COUNT, HostSpec, key_file, private_dir

pytestmark = pytest.mark.sandbox


def _ssh(host: dict[str, Any], command: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ssh", "-i", host["key_file"], "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
         "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-p", str(host["port"]),
         f"{host['user']}@{host['address']}", command],
        capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def _ok(host: dict[str, Any], command: str, timeout: float = 120) -> str:
    proc = _ssh(host, command, timeout)
    assert proc.returncode == 0, f"{command}: {proc.stdout}{proc.stderr}"
    return proc.stdout


@pytest.fixture()
def host(sandbox_hosts: list[dict[str, Any]]) -> dict[str, Any]:
    return sandbox_hosts[0]


def test_root_on_a_host_is_an_unprivileged_id_on_the_machine(host: dict[str, Any]) -> None:
    """Inside, sudo gives uid 0 with the host's own uid map; on the machine the host's daemons run as
    HOST_ID_BASE, an ordinary unprivileged ID."""
    assert _ok(host, "sudo id -u").strip() == "0"
    uid_map = _ok(host, "sudo cat /proc/self/uid_map").split()
    gid_map = _ok(host, "cat /proc/self/gid_map").split()
    assert uid_map == ["0", str(HOST_ID_BASE), str(HOST_ID_COUNT)]
    assert gid_map == ["0", str(HOST_ID_BASE), str(HOST_ID_COUNT)]
    assert HOST_ID_BASE > 65535
    for comm in ("sshd", "dockerd"):
        pids = faults.host_processes(host["name"], comm)
        assert pids, f"no {comm} on {host['name']}"
        for pid in pids:
            uids = [int(u) for u in Path(f"/proc/{pid}/status").read_text().split("Uid:")[1].split()[:4]]
            assert all(HOST_ID_BASE <= u < HOST_ID_BASE + HOST_ID_COUNT for u in uids), (comm, uids)


def test_sudo_writes_stay_on_the_host(host: dict[str, Any]) -> None:
    """`sudo touch` in /tmp, /etc, /root and /usr/local/bin makes the file on the host only; the machine's
    copy of those folders is untouched, and the host's layer holds the file as HOST_ID_BASE's."""
    name = f"infprov-boundary-{secrets.token_hex(4)}"
    places = [f"/tmp/{name}", f"/etc/{name}", f"/root/{name}", f"/usr/local/bin/{name}"]
    try:
        _ok(host, " && ".join(f"sudo touch {p} && sudo test -e {p}" for p in places))
        for p in places:
            assert not Path(p).exists(), f"a host's `sudo touch {p}` made {p} on the machine"
        upper = HostSpec(int(host["name"][1:])).dir / "upper" / "etc" / name
        assert upper.stat().st_uid == HOST_ID_BASE and upper.stat().st_gid == HOST_ID_BASE
        # also through docker, the classic way from the docker group to root: the container's / is the host's
        sdk = "nvcr.io/nvidia/tritonserver:22.04-py3-sdk"
        _ok(host, f"docker run --rm -v /:/m {sdk} touch /m/tmp/{name}-docker && test -e /tmp/{name}-docker")
        assert not Path(f"/tmp/{name}-docker").exists()
        priv = _ssh(host, f"docker run --rm --privileged -v /:/m {sdk} touch /m/tmp/{name}-privileged")
        assert not Path(f"/tmp/{name}-privileged").exists(), priv.stderr
    finally:
        for p in [*places, f"/tmp/{name}-docker", f"/tmp/{name}-privileged"]:
            if Path(p).exists():
                os.unlink(p)


# Run as root on the host: look for each path, then lazily unmount every mount the host has (deepest first, / last:
# the mounted /proc, /dev, /run, /home/ubuntu, docker root, public folder and the overlay root itself), and look
# again. Only shell built-ins and cat are used after the unmounting (/dev and /proc are gone then).
_LOOK_UNMOUNT_LOOK = r"""
look() {
  for p in "$@"; do
    if [ -e "$p" ]; then echo "EXISTS $p"; cat "$p" 2>&1 | head -c 300; echo; else echo "MISSING $p"; fi
  done
}
look "$@" /home/ubuntu/.ssh/authorized_keys
n=0
for pass in 1 2 3; do  # until nothing is left that can go (umount reads /proc: it goes last in each pass)
  [ -r /proc/self/mountinfo ] || break  # (no 2>/dev/null: /dev goes too)
  ms=$(awk '{print $5}' /proc/self/mountinfo | grep -vx -e /proc -e / | sort -r)
  for m in $ms /proc /; do umount -l "$m" 2>&- && n=$((n + 1)) && echo "UMOUNT $m"; done
done
echo "UNMOUNTED $n"
look "$@" /home/ubuntu/.ssh/authorized_keys /proc/self/mountinfo
"""


def test_machine_secrets_are_out_of_reach_even_after_umount(host: dict[str, Any], tmp_path: Path) -> None:
    """A controller's INFPROV_HOME private key, the sandbox's login key and its private folder (every host's
    files, the state, the EC2 endpoint's credentials) do not exist on a host, before and after its root
    unmounts everything it can (`umount -l` of every mount point, / last). The host is made anew afterwards
    (it has no /dev, /proc or /run left)."""
    marker = f"infprov-secret-{secrets.token_hex(8)}"
    home_key = tmp_path / "infprov-home" / "keys" / "infprov-us-east-1.pem"
    home_key.parent.mkdir(parents=True)
    home_key.write_text(f"-----BEGIN OPENSSH PRIVATE KEY-----\n{marker}\n")
    home_key.chmod(0o644)  # readable by anyone on the machine: the host still must not see it
    state = private_dir() / "state.json"
    hdir = HostSpec(int(host["name"][1:])).dir
    paths = [home_key, key_file(), state, private_dir(), private_dir() / "ec2", hdir / "ssh_host_ed25519_key",
             Path("/var/lib/docker"), Path("/etc/sudoers.d/90-infprov-ubuntu")]
    assert key_file().exists() and state.exists()
    try:
        out = _ok(host, f"sudo sh -c {_quote(_LOOK_UNMOUNT_LOOK)} sh " + " ".join(str(p) for p in paths))
        before, after = out.split("UNMOUNTED ")
        assert "EXISTS /home/ubuntu/.ssh/authorized_keys" in before
        unmounted = int(after.split()[0])
        assert unmounted >= 10, out  # /, /proc, /sys and its cgroups, /run, /dev and its binds, home, docker
        # the host's own mounts are gone (its home's keys and /proc with them) ...
        assert "MISSING /home/ubuntu/.ssh/authorized_keys" in after and "MISSING /proc/self/mountinfo" in after, out
        # ... and none of the machine's secrets appeared, before or after
        assert marker not in out and "PRIVATE KEY" not in out and "assignments" not in out
        for p in paths[:-2]:
            assert f"MISSING {p}" in before and f"MISSING {p}" in after, (p, out)
        # the machine's own /var/lib/docker and sudoers are not the host's: the host has its own
        # (its docker root; the host root file system's sudoers)
        assert "EXISTS /etc/sudoers.d/90-infprov-ubuntu" in before
    finally:
        from infprov.sandbox import system

        with system.sane_umask(), records.locked():
            state_doc = records.read_state()
            records.renew_host(HostSpec(int(host["name"][1:])), state_doc)
            records.write_state(state_doc)
    assert _ok(host, "sudo true && docker info --format '{{.ServerVersion}}'").strip()


def test_the_machine_root_is_not_below_the_host_root(host: dict[str, Any]) -> None:
    """The host's / is its own overlay, and its lower layer is the host root file system, not the machine's /:
    the machine's own top-level folders that a host root file system lacks are not there."""
    mountinfo = _ok(host, "cat /proc/self/mountinfo")
    root_line = next(line for line in mountinfo.splitlines() if line.split()[4] == "/")
    assert " - overlay " in root_line, root_line
    for machine_only in ("/work", "/var/lib/infprov-sandbox", "/var/cache/infprov", "/root/.infprov"):
        if Path(machine_only).exists():
            assert _ssh(host, f"sudo test -e {machine_only}").returncode != 0, machine_only


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"
