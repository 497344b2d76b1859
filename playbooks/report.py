"""Plain-text lines for progress, failures and Ansible's recap (the CLI and the run log share them)."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from infprov.playbooks.results import Event, RunResult, TaskResult

SLOW = 3.0  # tasks longer than this show their time


# C0 and C1 control characters: what a terminal acts on (ESC, CSI, BEL ...), never shown as sent
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")
_CONTROL_BUT_NEWLINE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str, *, keep_newlines: bool = True) -> str:
    """Host output as a terminal may show it: control characters (escape sequences a hostile host
    could send to rewrite the screen) become '?'; tabs stay, and newlines unless keep_newlines=False."""
    return (_CONTROL_BUT_NEWLINE if keep_newlines else _CONTROL).sub("?", text)


def event_line(event: Event) -> str | None:
    line = _event_line(event)
    return printable(line) if line is not None else None


def _event_line(event: Event) -> str | None:
    if event.kind == "play":
        return f"PLAY [{event.play}] on {len(event.hosts)} host(s): {', '.join(event.hosts)}"
    if event.kind == "no_hosts":
        return f"PLAY [{event.play}] skipped: no hosts matched"
    if event.kind == "task_start":
        return f"{event.host}: {event.task} ..."
    if event.kind == "task_running":
        return f"{event.host}: {event.task} still running ({event.elapsed:.0f} s)"
    if event.kind == "output":
        return f"{event.host} | {event.line}"
    if event.kind == "task_end" and event.result is not None:
        return task_line(event.result)
    return None


def task_line(tr: TaskResult) -> str:
    status = tr.status + (" (ignored)" if tr.ignored else "")
    text = f"{tr.host}: {tr.task}: {status}"
    if tr.elapsed >= SLOW:
        text += f" in {tr.elapsed:.1f} s"
    if tr.status in ("failed", "unreachable"):
        text += "\n" + failure(tr)
    return text


def failure(tr: TaskResult) -> str:
    """The block a failed task shows: message, command, exit code and the tail of its output."""
    lines = [f"  msg: {tr.msg}" if tr.msg else "  msg: (none)"]
    if tr.command:
        lines.append(f"  command: {tr.command}")
    if tr.rc is not None:
        lines.append(f"  exit code: {tr.rc}")
    if tr.tail:
        lines.append("  output (last lines):")
        lines.extend("    | " + line for line in tr.tail.splitlines())
    if tr.hint:
        lines.append(f"  hint: {tr.hint}")
    return "\n".join(lines)


def recap(result: RunResult) -> str:
    """Ansible's PLAY RECAP block."""
    if not result.stats:
        return "PLAY RECAP: no hosts"
    width = max(len(h) for h in result.stats)
    lines = ["PLAY RECAP " + "*" * 40]
    for host, s in result.stats.items():
        lines.append(
            f"{host:<{width}} : ok={s.ok:<4} changed={s.changed:<4} unreachable={s.unreachable:<4} "
            f"failed={s.failed:<4} skipped={s.skipped:<4} ignored={s.ignored}"
        )
    mode = " (check mode: nothing was changed)" if result.check else ""
    took = f"{result.elapsed:.1f}" if result.elapsed >= 1 else f"{result.elapsed:.2f}"
    lines.append(f"{len(result.stats)} host(s) in {took} s{mode}")
    return "\n".join(lines)


def detail(registered: dict[str, Any], limit: int = 4000) -> str:
    """A task's output for the run log (stdout/stderr of commands, HTTP status), trimmed."""
    keys = ("cmd", "rc", "stdout", "stderr", "status", "msg", "before", "after", "dest", "elapsed")
    picked = {k: registered[k] for k in keys if registered.get(k) not in (None, "", [])}
    if "results" in registered:
        picked["items"] = len(registered["results"])
    if not picked:
        return ""
    text = json.dumps(picked, default=str, ensure_ascii=False)
    if len(text) > limit:
        text = text[: limit // 2] + " ... " + text[-limit // 2 :]
    return "    " + text
