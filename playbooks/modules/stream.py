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

KEEP_LINES = 20_000  # what `register` keeps of a long output: the last lines


@module("infprov_stream", args={"cmd", "on_stop"}, free_form="cmd", builtin=False)
def stream(ctx: ModuleContext, args: dict[str, Any]) -> ModuleResult:
    cmd = str(required(args, "cmd"))
    if ctx.check:
        return ModuleResult(skipped=True, msg="a streamed command does not run in check mode", data={"cmd": cmd})
    on_stop = args.get("on_stop")
    lines: collections.deque[str] = collections.deque(maxlen=KEEP_LINES)
    began = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    start = time.monotonic()
    got = ctx.conn.stream(
        ctx.wrap("exec 2>&1\n" + cmd), lines.append, on_stop=ctx.wrap(str(on_stop)) if on_stop else None
    )
    if got.stopped and got.exit_code == -1 and not lines:
        return ModuleResult(skipped=True, msg="the run was stopped before this command began",
                            data={"cmd": cmd, "stopped": True})
    out = "\n".join(lines)
    data = {"cmd": cmd, "rc": got.exit_code, "stdout": out, "stdout_lines": list(lines), "stopped": got.stopped,
            "start": began, "delta": f"{time.monotonic() - start:.3f}"}
    if got.exit_code != 0 and not got.stopped:
        tail = "\n".join(list(lines)[-20:])
        return ModuleResult(changed=True, failed=True, msg="non-zero return code", data=data, command=cmd,
                            rc=got.exit_code, tail=tail)
    return ModuleResult(changed=True, data=data, rc=got.exit_code)
