"""The sandbox hosts' root file system: a small Debian of its own (sshd, sudo, dockerd, python3, git), built once
into the image cache and owned by the hosts' ID range, so that it is root's on a host and nobody's on the
machine. Each host mounts it as the read-only lower layer of an overlay (its own upper layer holds what it
writes) and pivots into that: the machine's own `/` is not in a host at all (issue 23, item 10)."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
from pathlib import Path

from infprov.floor.errors import InfprovError
from infprov.sandbox import images, system
from infprov.sandbox.places import HOST_ID_BASE, HOST_USER_UID, USER

# Bumped whenever what goes into the host root file system changes.
VERSION = "1"
SUITE = images.SUITE
# What a host runs outside its containers: sshd (with sftp), sudo, dockerd and its runtime (containerd, runc,
# iptables for its bridge), python3 for ansible-core's modules, git for server.yml's clone, and the basics.
PACKAGES = ["openssh-server", "sudo", "docker.io", "iproute2", "iptables", "python3", "procps", "curl",
            "ca-certificates", "git", "psmisc"]


def key() -> str:
    parts = [VERSION, SUITE, ",".join(PACKAGES), str(HOST_ID_BASE), str(HOST_USER_UID), USER]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:12]


def path() -> Path:
    return images.cache_dir() / f"hostroot-{SUITE}-{key()}"


def cached() -> Path | None:
    dest = path()
    return dest if (dest / ".infprov-complete").exists() else None


def ensure_built(log: Path, progress: system.Progress | None = None) -> Path:
    """The host root file system for the current recipe, built (about two minutes: debootstrap) if missing."""
    found = cached()
    if found is not None:
        return found
    dest = path()
    system.require_tools({"debootstrap": "debootstrap", "chroot": "coreutils"})
    system.check_free_space(images.cache_dir(), 2 << 30, "build the sandbox hosts' root file system")
    for old in images.cache_dir().glob(f"hostroot-{SUITE}-*"):
        if old.name != dest.name:
            shutil.rmtree(old, ignore_errors=True)
    part = dest.with_name(dest.name + ".part")
    shutil.rmtree(part, ignore_errors=True)
    shutil.rmtree(dest, ignore_errors=True)
    if progress is not None:
        progress(f"hosts' root file system: debootstrap {SUITE} with {', '.join(PACKAGES)} (about two minutes)")
    with open(log, "ab") as fh:
        proc = subprocess.run(
            ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, str(part),
             images._debian_mirror()],
            stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, check=False,
        )
    if proc.returncode != 0:
        raise InfprovError(f"debootstrap of the hosts' root file system failed (exit {proc.returncode})",
                           f"see {log}; the Debian package mirror must be reachable")
    _configure(part)
    shift_ids(part, HOST_ID_BASE)
    (part / ".infprov-complete").touch()
    part.rename(dest)
    return dest


def _configure(root: Path) -> None:
    """The login user (sudo without a password, group docker), no shared SSH host keys, git that reads the
    python_backend stand-in (owned by a user the host cannot map), and the mount points a host needs."""
    system.run(["chroot", str(root), "useradd", "-m", "-u", str(HOST_USER_UID), "-s", "/bin/bash",
                "-G", "sudo,docker", USER], what=f"create {USER} in the hosts' root file system")
    # useradd leaves the account locked ("!"): sshd with UsePAM no refuses a locked account even for keys
    system.run(["chroot", str(root), "usermod", "-p", "*", USER], what=f"unlock {USER}")
    sudoers = root / "etc" / "sudoers.d" / "90-infprov-ubuntu"
    sudoers.write_text(f"{USER} ALL=(ALL) NOPASSWD:ALL\n")
    sudoers.chmod(0o440)
    (root / "etc" / "gitconfig").write_text("[safe]\n\tdirectory = *\n")
    for hostkey in (root / "etc" / "ssh").glob("ssh_host_*"):
        hostkey.unlink()
    (root / "var" / "lib" / "docker").mkdir(mode=0o710, exist_ok=True)
    for sub in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for child in (root / sub).glob("*"):
            if child.is_file():
                child.unlink()


def shift_ids(root: Path, base: int) -> None:
    """Add base to the owner and group of everything under root (a file already at or past base stays):
    what is root's inside a host's user namespace is then the unprivileged base on the machine. Set-ID bits
    (which chown clears) are set again."""
    def one(path: str) -> None:
        st = os.lstat(path)
        if st.st_uid >= base and st.st_gid >= base:
            return
        os.lchown(path, st.st_uid % base + base, st.st_gid % base + base)
        if not stat.S_ISLNK(st.st_mode) and st.st_mode & 0o6000:
            os.chmod(path, stat.S_IMODE(st.st_mode))

    one(str(root))
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            one(os.path.join(dirpath, name))
