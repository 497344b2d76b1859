"""Checks of the ground the sandbox stands on (OS, root, tools, disk) and a subprocess helper."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from infprov.floor.errors import InfprovError, UsageError

Progress = Callable[[str], None]

# Commands the sandbox runs, and the Debian package that provides each.
TOOLS = {
    "ip": "iproute2",
    "iptables": "iptables",
    "nsenter": "util-linux",
    "unshare": "util-linux",
    "setsid": "util-linux",
    "mount": "mount",
    "sshd": "openssh-server",
    "ssh-keygen": "openssh-client",
    "dockerd": "docker.io",
    "docker": "docker.io",
    "sudo": "sudo",
    "git": "git",
    "debootstrap": "debootstrap",
    "tar": "tar",
    "gpg": "gpg",  # signs the stand-in CUDA apt repositories (sandbox/cudaapt.py)
    "gpgconf": "gpgconf",
    "docker-registry": "docker-registry",  # ECR's stand-in data plane (sandbox/registry.py)
}


def require_linux_root() -> None:
    if sys.platform != "linux":
        raise UsageError(
            f"the sandbox needs Linux (namespaces, veth, dockerd); this is {sys.platform}",
            "run it on a Linux machine or VM",
        )
    if os.geteuid() != 0:
        raise UsageError("the sandbox needs root (it makes namespaces, links and mounts)", "run it with sudo")


def which(cmd: str) -> str | None:
    found = shutil.which(cmd)
    if found:
        return found
    for d in ("/usr/sbin", "/sbin", "/usr/bin", "/bin"):
        cand = Path(d) / cmd
        if cand.exists():
            return str(cand)
    return None


def require_tools(tools: dict[str, str] | None = None) -> None:
    """Fail with the apt packages to install when any needed command is missing."""
    tools = tools or TOOLS
    missing = sorted({pkg for cmd, pkg in tools.items() if which(cmd) is None})
    if missing:
        raise InfprovError(
            f"missing system package(s): {' '.join(missing)}",
            f"apt-get install -y {' '.join(missing)}",
        )


def check_free_space(path: Path, need: int, purpose: str) -> None:
    free = shutil.disk_usage(path).free
    if free < need:
        raise InfprovError(
            f"not enough free disk at {path} to {purpose}: {free / 2**30:.1f} GiB free, "
            f"{need / 2**30:.1f} GiB needed",
            "free some space (or point INFPROV_CACHE / INFPROV_SANDBOX_DIR elsewhere)",
        )


@contextlib.contextmanager
def sane_umask() -> Iterator[None]:
    """0o022 while the sandbox lays files out (sshd refuses group- or world-writable files and folders, so a
    caller's umask 000 would break every host); the caller's umask again afterwards."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


@contextlib.contextmanager
def flocked(lock_file: Path) -> Iterator[None]:
    """Hold an exclusive lock on lock_file (made if missing) while the block runs: one holder on the machine."""
    with open(lock_file, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def run(
    cmd: Sequence[str],
    *,
    what: str,
    check: bool = True,
    input: str | None = None,
    timeout: float | None = 300,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a local command; on failure raise with the command's last output lines."""
    try:
        proc = subprocess.run(
            list(cmd), input=input, capture_output=True, text=True, timeout=timeout, check=False, env=env
        )
    except FileNotFoundError as exc:
        pkg = TOOLS.get(Path(cmd[0]).name, "")
        hint = f"apt-get install -y {pkg}" if pkg else f"install {cmd[0]}"
        raise InfprovError(f"cannot {what}: {cmd[0]} is not installed", hint) from exc
    except subprocess.TimeoutExpired as exc:
        raise InfprovError(f"cannot {what}: `{' '.join(cmd)}` took longer than {timeout} s") from exc
    if check and proc.returncode != 0:
        tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
        raise InfprovError(f"cannot {what}: `{' '.join(cmd)}` exited {proc.returncode}: {tail}")
    return proc
