"""The SSH connection's parts without SSH: pinned host keys, console fingerprints, the quick-ack socket."""

from __future__ import annotations

import subprocess
from pathlib import Path

import paramiko
import pytest

from infprov.playbooks.errors import HostKeyChanged
from infprov.playbooks.hostkeys import console_fingerprints, fingerprint, forget_host_key, record_host_key


def test_forget_host_key(tmp_path: Path) -> None:
    key = paramiko.Ed25519Key.from_private_key_file(str(_keygen(tmp_path / "k")))
    known = tmp_path / "known_hosts"
    record_host_key(known, "[10.0.0.5]:2222", key)
    record_host_key(known, "10.0.0.6", key)
    record_host_key(known, "10.0.0.6", key)  # pinning the same key twice is a no-op
    assert known.read_text().count("\n") == 2
    assert forget_host_key(known, "10.0.0.5", 2222) is True
    assert forget_host_key(known, "10.0.0.5", 2222) is False
    assert known.read_text().startswith("10.0.0.6 ssh-ed25519 ")
    other = paramiko.Ed25519Key.from_private_key_file(str(_keygen(tmp_path / "k2")))
    with pytest.raises(HostKeyChanged, match="CHANGED") as err:
        record_host_key(known, "10.0.0.6", other)
    assert f"ssh-keygen -R '10.0.0.6' -f {known}" in err.value.hint


def test_console_fingerprints_from_ec2_console_output(tmp_path: Path) -> None:
    key_path = _keygen(tmp_path / "hostkey")
    pub = Path(f"{key_path}.pub").read_text().strip()
    listed = subprocess.run(["ssh-keygen", "-lf", f"{key_path}.pub"], capture_output=True, text=True, check=True)
    ssh_keygen_fp = listed.stdout.split()[1]
    console = (
        "[   10.1] cloud-init[1021]: Generating public/private ed25519 key pair.\n"
        "ec2: -----BEGIN SSH HOST KEY FINGERPRINTS-----\n"
        f"ec2: 256 {ssh_keygen_fp} root@ip-10-0-0-1 (ED25519)\n"
        "ec2: -----END SSH HOST KEY FINGERPRINTS-----\n"
        f"-----BEGIN SSH HOST KEY KEYS-----\n{pub}\n-----END SSH HOST KEY KEYS-----\n"
    )
    key = paramiko.Ed25519Key.from_private_key_file(str(key_path))
    assert console_fingerprints(console) == [ssh_keygen_fp] == [fingerprint(key)]
    assert console_fingerprints("no keys printed yet") == []


def _keygen(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path


def test_quick_ack_socket_connects_reads_and_keeps_the_timeout() -> None:
    import socket

    from infprov.playbooks.connection import _QuickAckSocket

    with socket.create_server(("127.0.0.1", 0)) as server:
        sock = _QuickAckSocket.connect_to(server.getsockname()[:2], timeout=3.5)
        peer, _ = server.accept()
        with sock, peer:
            assert sock.gettimeout() == 3.5
            assert sock.getpeername() == server.getsockname()[:2]
            peer.sendall(b"hello")
            assert sock.recv(5) == b"hello"
            peer.close()
            assert sock.recv(5) == b""


def test_quick_ack_socket_refused_connection_raises() -> None:
    import socket

    from infprov.playbooks.connection import _QuickAckSocket

    with socket.create_server(("127.0.0.1", 0)) as server:
        address = server.getsockname()[:2]
    with pytest.raises(ConnectionRefusedError):
        _QuickAckSocket.connect_to(address, timeout=2)
