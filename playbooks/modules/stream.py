"""infprov_stream: a shell command whose output lines reach the run's output events as they arrive.

infprov's own module (Ansible has none that streams): `bench.yml` runs the benchmark client with it, so the
user watches the client's lines live and a Ctrl-C ends the container (`on_stop`) while what was measured
is kept. Its stdout and stderr are one stream (`2>&1` is added); `register` holds rc, stdout, stdout_lines
and `stopped` (the run's stop signal ended the command).
"""

from __future__ import annotations

import collections
import datetime
import time
from typing import Any

from infprov.playbooks.modules.base import ModuleContext, ModuleResult, module, required

KEEP_LINES = 20_000  # what `register` keeps of a long output: the last lines,
KEEP_BYTES = 8 << 20  # and of those no more than this many bytes (each line is cut at LINE_MAX already)


class _Kept:
    """The last lines of a streamed command (KEEP_LINES, KEEP_BYTES), and how many earlier ones were dropped."""

    def __init__(self) -> None:
        self.lines: collections.deque[str] = collections.deque()
        self.size = 0
        self.dropped = 0

    def append(self, line: str) -> None:
        self.lines.append(line)
        self.size += len(line) + 1
        while len(self.lines) > KEEP_LINES or (self.size > KEEP_BYTES and len(self.lines) > 1):
            self.size -= len(self.lines.popleft()) + 1
            self.dropped += 1

    def kept(self) -> list[str]:
        note = [f"[infprov: output cut: the first {self.dropped} lines were dropped]"] if self.dropped else []
        return note + list(self.lines)


@module("infprov_stream", args={"cmd", "on_stop"}, free_form="cmd", builtin=False)
def stream(ctx: ModuleContext, args: dict[str, Any]) -> ModuleResult:
    cmd = str(required(args, "cmd"))
    if ctx.check:
        return ModuleResult(skipped=True, msg="a streamed command does not run in check mode", data={"cmd": cmd})
    on_stop = args.get("on_stop")
    kept = _Kept()
    began = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    start = time.monotonic()
    got = ctx.conn.stream(
        ctx.wrap("exec 2>&1\n" + cmd), kept.append, on_stop=ctx.wrap(str(on_stop)) if on_stop else None
    )
    lines = kept.kept()
    if got.stopped and got.exit_code == -1 and not lines:
        return ModuleResult(skipped=True, msg="the run was stopped before this command began",
                            data={"cmd": cmd, "stopped": True})
    out = "\n".join(lines)
    data = {"cmd": cmd, "rc": got.exit_code, "stdout": out, "stdout_lines": lines, "stopped": got.stopped,
            "start": began, "delta": f"{time.monotonic() - start:.3f}"}
    if got.exit_code != 0 and not got.stopped:
        tail = "\n".join(lines[-20:])
        return ModuleResult(changed=True, failed=True, msg="non-zero return code", data=data, command=cmd,
                            rc=got.exit_code, tail=tail)
    return ModuleResult(changed=True, data=data, rc=got.exit_code)
