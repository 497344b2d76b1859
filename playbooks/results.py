"""What a run reports: per-task results, progress events, the run's result, and the fleet's one shape
(HostOutcome: per host ok/failed, changed, error, output tail, time) that play, up's server step and bench
all return."""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infprov.playbooks.templating import LazyVars


@dataclass(frozen=True)
class HostOutcome:
    """One host's part in a fleet operation."""

    host: str
    ok: bool
    changed: int = 0
    unreachable: bool = False
    error: str = ""  # the line that says what stopped the host ("" when ok)
    tail: str = ""  # the last output lines behind the error
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


@dataclass
class HostStats:
    """Ansible's recap counters for one host (`ok` counts changed tasks too, as Ansible does)."""

    ok: int = 0
    changed: int = 0
    unreachable: int = 0
    failed: int = 0
    skipped: int = 0
    ignored: int = 0

    def to_dict(self) -> dict[str, int]:
        return dict(vars(self))

    def count(self, tr: TaskResult) -> None:
        """One task's result, counted as Ansible's recap counts it (an ignored failure is ok, and changed if
        it changed, too)."""
        if tr.status == "unreachable":
            self.unreachable += 1
        elif tr.status == "failed" and tr.ignored:
            self.ignored += 1
            self.ok += 1
            self.changed += int(tr.changed)
        elif tr.status == "failed":
            self.failed += 1
        elif tr.status == "skipped":
            self.skipped += 1
        else:
            self.ok += 1
            self.changed += int(tr.status == "changed")


@dataclass(frozen=True)
class TaskResult:
    """One task on one host, as the recap, the log and --json report it."""

    host: str
    play: str
    task: str
    module: str
    status: str  # ok, changed, failed, skipped, unreachable
    msg: str = ""
    elapsed: float = 0.0
    ignored: bool = False
    command: str | None = None
    rc: int | None = None
    tail: str = ""
    items: int = 0
    hint: str = ""
    changed: bool = False  # also for a failed task (an ignored failure that changed counts as changed)

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


@dataclass(frozen=True)
class Event:
    """Progress for a renderer: play, task_start, task_running (long tasks), task_end, no_hosts, and output
    (one line a streamed command printed, in `line`)."""

    kind: str
    play: str = ""
    host: str = ""
    task: str = ""
    elapsed: float = 0.0
    result: TaskResult | None = None
    hosts: tuple[str, ...] = ()
    line: str = ""


@dataclass(frozen=True)
class RunResult:
    """The outcome of a run: per-host stats, every task result, registered variables and the log path."""

    playbook: str
    check: bool
    hosts: tuple[str, ...]
    stats: dict[str, HostStats]
    tasks: tuple[TaskResult, ...]
    registered: dict[str, dict[str, Any]]
    log_path: Path | None
    elapsed: float

    @property
    def ok(self) -> bool:
        return not self.failed_hosts

    @property
    def failed_hosts(self) -> list[str]:
        return [h for h, s in self.stats.items() if s.failed or s.unreachable]

    @property
    def changed(self) -> int:
        return sum(s.changed for s in self.stats.values())

    def failures(self) -> list[TaskResult]:
        """The task that stopped each failed host (ignored failures are not in here)."""
        return [t for t in self.tasks if t.status in ("failed", "unreachable") and not t.ignored]

    def outcomes(self, names: Sequence[str] | None = None) -> list[HostOutcome]:
        """The fleet's shape: one HostOutcome per host (those named, in that order; else every host seen)."""
        return [self.outcome(name) for name in (names if names is not None else self.hosts)]

    def outcome(self, name: str) -> HostOutcome:
        stats = self.stats.get(name)
        tasks = [t for t in self.tasks if t.host == name]
        failed = [t for t in tasks if t.status in ("failed", "unreachable") and not t.ignored]
        error = tail = ""
        if failed:
            last = failed[-1]
            tail = last.tail
            error = f"{last.task}: {last.msg}" if last.task else last.msg
        elif stats is None:
            error = "not run: the host was not in any play"
        return HostOutcome(
            host=name,
            ok=stats is not None and not failed,
            changed=stats.changed if stats else 0,
            unreachable=any(t.status == "unreachable" for t in failed),
            error=error,
            tail=tail,
            seconds=round(sum(t.elapsed for t in tasks), 3),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "playbook": self.playbook,
            "check": self.check,
            "ok": self.ok,
            "elapsed_s": round(self.elapsed, 3),
            "log": str(self.log_path) if self.log_path else None,
            "stats": {h: s.to_dict() for h, s in self.stats.items()},
            "hosts": [o.to_dict() for o in self.outcomes()],
            "failures": [t.to_dict() for t in self.failures()],
            "tasks": [t.to_dict() for t in self.tasks],
        }


# Variables whose names say they hold a secret; their values are masked in logs and output.
_SECRET_NAME = re.compile(r"token|passw(or)?d|passphrase|secret|credential|key$|(^|_)(api_?)?key(_|$)|pass$|pwd",
                          re.I)
_NOT_SECRET = re.compile(r"_(file|path|dir|name|id)$|^(old)?pwd$", re.I)  # PWD: the working directory
MASK = "********"


def secret_name(name: str) -> bool:
    return bool(_SECRET_NAME.search(name)) and not _NOT_SECRET.search(name)


class Redactor:
    """Masks the values of secret-named variables in every line the run logs or reports."""

    def __init__(self) -> None:
        self._values: tuple[str, ...] = ()  # longest first, so a secret inside another is masked whole
        self._lock = threading.Lock()

    def learn(self, variables: list[Mapping[str, Any]]) -> None:
        """The secret values of these variables: of every secret-named one (resolved), and inside mappings and
        lists, of every secret-named key at any depth and everything under one (`registry.password`,
        `tokens[0]`); a walk of at most LEARN_NODES nodes a call."""
        names = {k for layer in variables for k in layer if isinstance(k, str) and secret_name(k)}
        found: list[str] = []
        budget = [LEARN_NODES]
        if names:
            lazy = LazyVars(list(variables))
            for name in names:
                try:
                    value = lazy[name]
                except Exception:  # an unresolvable secret cannot be printed either
                    continue
                _secret_leaves(value, True, found, budget)
        for layer in variables:
            if not isinstance(layer, dict):  # a lazy mapping (hostvars) would render what it is walked for
                continue
            for key, value in layer.items():
                if isinstance(value, dict | list | tuple) and not (isinstance(key, str) and secret_name(key)):
                    _secret_leaves(value, False, found, budget)
        fresh = {text for text in found if len(text) >= 4} - set(self._values)
        if fresh:
            with self._lock:
                self._values = tuple(sorted({*self._values, *fresh}, key=len, reverse=True))

    def __call__(self, text: str) -> str:
        if not self._values or not text:
            return text
        for value in self._values:
            if value in text:
                text = text.replace(value, MASK)
        return text


LEARN_NODES = 20_000  # how many values one learn() walks at most (a registered output can be large)


def _secret_leaves(value: Any, secret: bool, found: list[str], budget: list[int], depth: int = 0) -> None:
    """Collect the scalar values that are secret: under a secret-named key (or a secret variable) at any
    depth. Mappings and lists deeper than 32 or past the budget are not walked."""
    if budget[0] <= 0 or depth > 32:
        return
    budget[0] -= 1
    if isinstance(value, dict):  # plain data only: a lazy mapping would render what it is walked for
        for key, item in value.items():
            _secret_leaves(item, secret or (isinstance(key, str) and secret_name(key)), found, budget, depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            _secret_leaves(item, secret, found, budget, depth + 1)
    elif secret and isinstance(value, str | int | float) and not isinstance(value, bool):
        found.append(str(value))


# The ansible-core release this engine is compared against (tests/sandbox/test_ansible_diff.py)
ANSIBLE_VERSION = {"full": "2.19.14", "major": 2, "minor": 19, "revision": 14, "string": "2.19.14"}
