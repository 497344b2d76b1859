"""shell and command, in their free form (`shell: |` a script, `command: curl ...`): run it, report its output."""

from __future__ import annotations

import re
import shlex
import time
from typing import Any

from infprov.playbooks.modules.base import ModuleArgError, ModuleContext, ModuleResult, module, quote

# Ansible's command module expands $VAR and ~ in each word with Python's os.path.expandvars/expanduser on the
# host (expand_argument_vars, default true); the host's python3 does the same here, only when a word needs it.
_EXPAND = (
    "import os,sys; a=[os.path.expanduser(os.path.expandvars(x)) for x in sys.argv[1:]]; os.execvp(a[0], a)"
)
# the options Ansible takes from inside a free-form command (`cmd creates=/x`): infprov's engine has none
INLINE_OPTION = re.compile(r"(?:^|\s)(creates|removes|chdir|executable|stdin|stdin_add_newline|warn|argv|"
                           r"expand_argument_vars|strip_empty_ends)=")


def build_script(args: dict[str, Any], *, shell: bool) -> tuple[str, str]:
    """(script to run through /bin/sh, the command as the user wrote it)."""
    shown = str(args.get("cmd") or "")
    if not shown.strip():
        raise ModuleArgError("no command given")
    if shell:
        return f"exec /bin/sh -c {quote(shown)}", shown
    words = shlex.split(shown)
    if any("$" in w or w.startswith("~") for w in words):
        return f"exec python3 -c {quote(_EXPAND)} " + shlex.join(words), shown
    return "exec " + shlex.join(words), shown


def _run(ctx: ModuleContext, args: dict[str, Any], *, shell: bool) -> ModuleResult:
    script, shown = build_script(args, shell=shell)
    if ctx.check:
        empty = {"cmd": shown, "stdout": "", "stderr": "", "stdout_lines": [], "stderr_lines": [], "rc": 0}
        return ModuleResult(skipped=True, msg="Command would have run if not in check mode", data=empty)
    start = time.time()
    result = ctx.sh(script)
    end = time.time()
    out = result.out.rstrip("\n")
    err = result.err.rstrip("\n")
    data_out = {
        "cmd": shown,
        "rc": result.exit_code,
        "stdout": out,
        "stderr": err,
        "stdout_lines": out.splitlines(),
        "stderr_lines": err.splitlines(),
        "start": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(start)),
        "end": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(end)),
        "delta": f"{end - start:.3f}",
    }
    if result.exit_code != 0:
        return ModuleResult(
            changed=True,
            failed=True,
            msg="non-zero return code",
            data=data_out,
            command=shown,
            rc=result.exit_code,
            tail=result.tail(),
        )
    return ModuleResult(changed=True, data=data_out, rc=0)


@module("shell", args={"cmd"}, free_form="cmd")
def shell(ctx: ModuleContext, args: dict[str, Any]) -> ModuleResult:
    return _run(ctx, args, shell=True)


@module("command", args={"cmd"}, free_form="cmd")
def command(ctx: ModuleContext, args: dict[str, Any]) -> ModuleResult:
    return _run(ctx, args, shell=False)
