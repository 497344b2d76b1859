"""Key-only sshd daemons on 127.0.0.1 for playbook tests and the bench, when no sandbox hosts exist."""

from __future__ import annotations

import atexit
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

USER = "ubuntu"


@dataclass
class LoopbackSshd:
    """One sshd we started: we end it by its own PID and nothing else."""

    name: str
    port: int
    key_file: Path
    host_key: Path
    config: Path
    pid_file: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return "127.0.0.1"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["/usr/sbin/sshd", "-D", "-e", "-f", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshd on port {self.port} exited with {self.proc.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    if sock.recv(4).startswith(b"SSH-"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"sshd on port {self.port} did not answer within 10 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.proc = None

    def new_host_key(self) -> None:
        """Replace the host key: the next start looks like an impostor to a pinned client."""
        self.host_key.unlink(missing_ok=True)
        Path(f"{self.host_key}.pub").unlink(missing_ok=True)
        _keygen(self.host_key, "impostor")


def _keygen(path: Path, comment: str) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ensure_user() -> None:
    """User ubuntu with passwordless sudo, unlocked for key logins (sshd with UsePAM no refuses `!`)."""
    try:
        pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "-m", "-s", "/bin/bash", USER], check=False)
        subprocess.run(["usermod", "-p", "*", USER], check=True)
    sudoers = Path("/etc/sudoers.d/90-infprov-ubuntu")
    if not sudoers.exists():
        sudoers.write_text(f"{USER} ALL=(ALL) NOPASSWD:ALL\n")
        sudoers.chmod(0o440)


def can_run() -> str | None:
    """Why loopback sshd cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (sshd, useradd)"
    if not Path("/usr/sbin/sshd").exists():
        return "openssh-server is not installed"
    if shutil.which("sudo") is None:
        return "sudo is not installed"
    return None


def start_hosts(workdir: Path, count: int) -> list[LoopbackSshd]:
    """Start `count` sshd daemons that log in as ubuntu with one client key."""
    ensure_user()
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)
    workdir.mkdir(parents=True, exist_ok=True)
    os.chmod(workdir, 0o755)
    client_key = workdir / "id_ed25519"
    if not client_key.exists():
        _keygen(client_key, "infprov-test")
    # sshd reads authorized_keys as the user: keep it where ubuntu can reach (pytest's tmp is root-only).
    auth_dir = Path(tempfile.mkdtemp(prefix="infprov-sshd-keys-"))
    atexit.register(shutil.rmtree, auth_dir, True)
    os.chmod(auth_dir, 0o755)
    auth = auth_dir / "authorized_keys"
    shutil.copy(f"{client_key}.pub", auth)
    os.chmod(auth, 0o644)
    hosts = []
    for i in range(count):
        name = f"h{i + 1}"
        port = free_port()
        host_key = workdir / f"hostkey-{name}"
        if not host_key.exists():
            _keygen(host_key, name)
        config = workdir / f"sshd-{name}.conf"
        pid_file = workdir / f"sshd-{name}.pid"
        config.write_text(
            f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\nPidFile {pid_file}\n"
            f"AuthorizedKeysFile {auth}\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
            "UsePAM no\nStrictModes no\nPermitRootLogin no\nSubsystem sftp internal-sftp\n"
            f"AllowUsers {USER}\nMaxSessions 50\nMaxStartups 50\n"
        )
        host = LoopbackSshd(name, port, client_key, host_key, config, pid_file)
        host.start()
        hosts.append(host)
    return hosts
