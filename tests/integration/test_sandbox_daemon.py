"""The sandbox's daemons (its download server, its registry) start through one path: a port already served is
refused in one line, a daemon is waited for until it answers, one that dies first is refused with its log."""

from __future__ import annotations

import socket
import sys
import urllib.request
from pathlib import Path

import pytest

from infprov.floor.errors import InfprovError
from infprov.sandbox import daemon


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def test_a_daemon_is_waited_for_until_it_answers_then_stopped(tmp_path: Path) -> None:
    port = _free_port()
    daemon.check_port_free("127.0.0.1", port, "a test server")
    pid_file, log = tmp_path / "server.pid", tmp_path / "server.log"
    daemon.spawn_until(lambda: _answers(port), [sys.executable, "-m", "http.server", "--bind", "127.0.0.1",
                                                str(port)], pid_file, log, cwd=tmp_path, env={}, what="a test server")
    try:
        assert _answers(port) and daemon.running(pid_file) is not None
        with pytest.raises(InfprovError, match=f"cannot serve a second server on 127.0.0.1:{port}") as refused:
            daemon.check_port_free("127.0.0.1", port, "a second server")
        assert "stop what listens on port" in str(refused.value.hint)
    finally:
        daemon.stop(pid_file)
    assert not pid_file.exists() and not _answers(port)


def test_a_daemon_that_dies_before_answering_is_refused_with_its_log(tmp_path: Path) -> None:
    pid_file, log = tmp_path / "dies.pid", tmp_path / "dies.log"
    with pytest.raises(InfprovError, match="a dying server did not start") as refused:
        daemon.spawn_until(lambda: False, [sys.executable, "-c", "print('no config'); raise SystemExit(3)"],
                           pid_file, log, cwd=tmp_path, env={}, what="a dying server")
    assert refused.value.hint == f"see {log}"
    assert "no config" in log.read_text() and not pid_file.exists()
