"""The Triton probe over a real socket: a host that takes the TCP connection and then says nothing (a hung
sshd, a half-open path) is reported unreachable after the probe's own bounds, and a closed port at once:
`status` never hangs on a host (issue 25, item 14)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from infprov.inventory.model import Host
from infprov.provision import health


@pytest.fixture()
def silent_port() -> Iterator[int]:
    """A loopback port that accepts connections and never sends a byte."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield int(server.getsockname()[1])
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def _host(port: int, tmp_path: Path) -> Host:
    key = tmp_path / "key"
    key.write_text("")
    return Host(name="i-0123456789abcdef0", address="127.0.0.1", port=port, user="ubuntu", key_file=str(key),
                cluster="c")


def test_a_silent_host_is_unreachable_not_a_hang(silent_port: int, tmp_path: Path) -> None:
    [answer] = health.probe([(_host(silent_port, tmp_path), "m")], tmp_path / "known_hosts")
    assert answer.reachable is False and answer.server_ready is None
    assert answer.error and answer.summary() == "unreachable"


def test_a_closed_port_is_unreachable(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])  # closed once the block ends
    [answer] = health.probe([(_host(port, tmp_path), "m")], tmp_path / "known_hosts")
    assert answer.reachable is False and "cannot connect" in answer.error
