"""The playbook engine on a local shell: connections that need no SSH, and run_local to run a playbook text."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from infprov.inventory.model import Host, Inventory
from infprov.playbooks.connection import CommandResult
from infprov.playbooks.errors import HostUnreachable
from infprov.playbooks.localconn import LocalConnection  # noqa: F401  (the tests' name for it)
from infprov.playbooks.results import Event
from infprov.playbooks.runner import run_playbook


# ---------------------------------------------------------------- connections that need no SSH
class ScriptedConnection:
    """Answers each command from a list of canned results, and records what was asked."""

    def __init__(self, answers: list[tuple[int, str]]) -> None:
        self.name = "scripted"
        self.answers = list(answers)
        self.commands: list[str] = []

    def run(self, command: str, *, stdin: bytes | None = None, timeout: float | None = None,
            keep: int = 0) -> CommandResult:
        self.commands.append(command)
        code, out = self.answers.pop(0) if self.answers else (0, "")
        return CommandResult(command, code, out.encode(), b"")

    def close(self) -> None:
        pass


class DeadConnection:
    name = "dead"

    def run(self, command: str, *, stdin: bytes | None = None, timeout: float | None = None,
            keep: int = 0) -> CommandResult:
        raise HostUnreachable("127.0.0.1:1: cannot connect: refused", "is sshd running?")

    def close(self) -> None:
        pass


def write_book(tmp_path: Path, text: str, name: str = "book.yml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def run_local(
    tmp_path: Path,
    text: str,
    *,
    hosts: int = 1,
    check: bool = False,
    extra: dict[str, Any] | None = None,
    host_vars: dict[str, Any] | None = None,
    events: list[Event] | None = None,
    dead: set[str] = frozenset(),  # type: ignore[assignment]
    **kw: Any,
) -> Any:
    book = write_book(tmp_path, text)
    inv = Inventory(tuple(Host(f"h{i + 1}", "127.0.0.1", cluster="c", extra=host_vars or {}) for i in range(hosts)))
    conns: dict[str, LocalConnection] = {}

    def connector(host: Host) -> Any:
        if host.name in dead:
            return DeadConnection()
        conns[host.name] = LocalConnection(host.name)
        return conns[host.name]

    result = run_playbook(
        book,
        inv,
        check=check,
        extra_vars=extra or {},
        connector=connector,
        runs_dir=tmp_path / "runs",
        on_event=events.append if events is not None else None,
        **kw,
    )
    return result
