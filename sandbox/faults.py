"""What the fault tests do to a host: stop and start its daemons (by PID, through its cgroup)."""

from __future__ import annotations

import contextlib
import os
import signal

from infprov.sandbox import nshost, records
from infprov.sandbox.places import HostSpec


def host_processes(name: str, comm: str) -> list[int]:
    """PIDs of the host's processes named comm (e.g. sshd, dockerd), found through its cgroup."""
    return [p for p in nshost.cgroup_pids(HostSpec(int(name[1:]))) if nshost.comm(p) == comm]


def restart_daemon(name: str, comm: str, stop_signal: int = signal.SIGTERM) -> None:
    """Stop the host's sshd or dockerd (every process of that name, by PID) and start it again, as a
    crash and a restart by the host's init would."""
    if comm not in ("sshd", "dockerd"):
        raise ValueError(comm)
    stop_daemon(name, comm, stop_signal)
    start_daemon(name, comm)


def stop_daemon(name: str, comm: str, stop_signal: int = signal.SIGKILL) -> list[int]:
    pids = host_processes(name, comm)
    for p in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, stop_signal)
    for p in pids:
        nshost.wait_gone(p, 20)
    return pids


def start_daemon(name: str, comm: str) -> None:
    spec = HostSpec(int(name[1:]))
    pid = int(records.read_state()["hosts"][name]["init_pid"])
    if comm == "sshd":
        nshost.start_sshd(spec, pid)
        nshost.wait_ssh(spec)
    else:
        nshost.start_dockerd(spec, pid)
        nshost.wait_docker(spec, f"unix:///proc/{pid}/root/run/docker.sock")
