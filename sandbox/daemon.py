"""A daemon the sandbox starts and later stops, named by a pid file: its PID and start time.

The PID with the process's start time names one process: a PID the kernel has since given to another
process is never signalled, and only the process this pid file names is ever stopped.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from infprov.floor.errors import InfprovError


def spawn(command: Sequence[str], pid_file: Path, log_file: Path, *, cwd: Path, env: Mapping[str, str],
          **recorded: Any) -> subprocess.Popen[bytes]:
    """Start command in its own session (a Ctrl-C in the caller's terminal leaves it be), its output
    appended to log_file, and record it in pid_file with what else is given (a port, a kind)."""
    log = log_file.open("ab")
    try:
        proc = subprocess.Popen(list(command), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                cwd=cwd, env=dict(env), start_new_session=True)
    finally:
        log.close()
    pid_file.write_text(json.dumps({"pid": proc.pid, "start": start_ticks(proc.pid), **recorded}))
    return proc


def check_port_free(address: str, port: int, what: str) -> None:
    """Refuse, in one line, to start what would serve on address:port while something else listens there.
    As http.server binds (SO_REUSEADDR): a last server's connections in TIME-WAIT (a `down` just before) do not
    count, a socket that listens there does."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, port))
        except OSError as exc:
            raise InfprovError(f"cannot serve {what} on {address}:{port}: {exc}",
                               f"stop what listens on port {port} there, then `infprov sandbox up`") from None


def spawn_until(answers: Callable[[], bool], command: Sequence[str], pid_file: Path, log_file: Path, *,
                cwd: Path, env: Mapping[str, str], what: str, timeout_s: float = 15.0) -> None:
    """spawn, then wait until answers() says it serves; a daemon that exits first, or does not answer within
    timeout_s, is stopped and refused with its log named."""
    proc = spawn(command, pid_file, log_file, cwd=cwd, env=env)
    deadline = time.monotonic() + timeout_s
    while not answers():
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(pid_file)
            raise InfprovError(f"{what} did not start", f"see {log_file}")
        time.sleep(0.1)


def read(pid_file: Path) -> dict[str, Any] | None:
    """What the pid file records (pid and start as numbers), or None when it is missing or damaged."""
    try:
        data = json.loads(pid_file.read_text())
        data["pid"], data["start"] = int(data["pid"]), int(data["start"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return data if isinstance(data, dict) else None


def running(pid_file: Path) -> dict[str, Any] | None:
    """What the pid file records, if the very process it names still runs."""
    info = read(pid_file)
    return info if info is not None and _same_process(info) else None


def stop(pid_file: Path, grace_s: float = 5.0) -> None:
    """End the process the pid file names (SIGTERM, then SIGKILL after grace_s); safe when it is not running."""
    info = running(pid_file)
    if info is not None:
        pid = info["pid"]
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and _same_process(info):
            _reap(pid)
            time.sleep(0.05)
        if _same_process(info):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)
        _reap(pid)  # when this process started it, collect the exit status (no zombie left)
    pid_file.unlink(missing_ok=True)


def start_ticks(pid: int) -> int:
    """The process's start time in clock ticks since boot: with the PID, it names one process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return -1
    # Field 22; the command name (field 2) may hold spaces, so split after its closing parenthesis.
    return int(stat.rsplit(")", 1)[1].split()[19])


def _same_process(info: Mapping[str, Any]) -> bool:
    pid = int(info["pid"])
    if pid <= 1:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z" and start_ticks(pid) == info["start"]


def _reap(pid: int) -> None:
    # Only a child of this process can be reaped; for others this is a no-op.
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
