"""shell and command: run a command, unless `creates`/`removes` say it already ran."""

from __future__ import annotations

import re
import shlex
import time
from typing import Any

from infprov.playbooks.modules.base import ModuleArgError, ModuleContext, ModuleResult, module, quote

SKIP_MARK = "__infprov_skip__"
_ARGS = {"cmd", "chdir", "creates", "removes", "executable", "stdin", "stdin_add_newline", "argv", "_raw_params"}
_INLINE = re.compile(r"(?:^|\s)(creates|removes|chdir|executable|stdin)=(\"[^\"]*\"|'[^']*'|\S+)")


def split_free_form(text: str) -> tuple[str, dict[str, str]]:
    """Ansible's free form `cmd creates=/x chdir=/y`: pull out the options it knows."""
    options: dict[str, str] = {}

    def take(match: re.Match[str]) -> str:
        value = match.group(2)
        if value[:1] in "\"'" and value[-1:] == value[:1]:
            value = value[1:-1]
        options[match.group(1)] = value
        return ""

    return _INLINE.sub(take, text).strip(), options


def guard_script(creates: str | None, removes: str | None) -> str:
    """Shell lines that print the skip mark and stop when the command need not run."""
    lines = []
    if creates:
        lines.append(f"if [ -e {quote(creates)} ]; then echo {SKIP_MARK}; exit 0; fi")
    if removes:
        lines.append(f"if [ ! -e {quote(removes)} ]; then echo {SKIP_MARK}; exit 0; fi")
    return "\n".join(lines)


def build_script(args: dict[str, Any], *, shell: bool) -> tuple[str, str]:
    """(script to run through /bin/sh, the command as the user wrote it)."""
    argv = args.get("argv")
    cmd = args.get("cmd")
    if argv and not shell:
        if not isinstance(argv, list):
            raise ModuleArgError("argument `argv` must be a list")
        shown = shlex.join(str(a) for a in argv)
    elif cmd:
        shown = str(cmd)
    else:
        raise ModuleArgError("no command given (free form or `cmd`)")
    lines = []
    guard = guard_script(args.get("creates"), args.get("removes"))
    if args.get("chdir"):
        lines.append(f"cd {quote(str(args['chdir']))} || exit 1")
    if guard:
        lines.append(guard)
    if shell:
        executable = str(args.get("executable") or "/bin/sh")
        lines.append(f"exec {quote(executable)} -c {quote(shown)}")
    else:
        words = [str(a) for a in argv] if argv else shlex.split(shown)
        lines.append("exec " + shlex.join(words))
    return "\n".join(lines), shown


def _run(ctx: ModuleContext, args: dict[str, Any], *, shell: bool) -> ModuleResult:
    script, shown = build_script(args, shell=shell)
    if ctx.check:
        if not (args.get("creates") or args.get("removes")):
            return ModuleResult(skipped=True, msg="command would run (not run in check mode)")
        probe = ctx.sh(guard_script(args.get("creates"), args.get("removes")) + "\nexit 0")
        if probe.out.startswith(SKIP_MARK):
            return ModuleResult(msg=_skip_msg(args), data={"cmd": shown, "stdout": _skip_msg(args), "rc": 0})
        return ModuleResult(changed=True, msg="command would have run if not in check mode", data={"cmd": shown})
    stdin = args.get("stdin")
    data = None
    if stdin is not None:
        text = str(stdin)
        if args.get("stdin_add_newline", True) and not text.endswith("\n"):
            text += "\n"
        data = text.encode()
    start = time.time()
    result = ctx.sh(script, stdin=data)
    end = time.time()
    out = result.out.rstrip("\n")
    err = result.err.rstrip("\n")
    if result.exit_code == 0 and out.startswith(SKIP_MARK):
        msg = _skip_msg(args)
        return ModuleResult(msg=msg, data={"cmd": shown, "stdout": msg, "stdout_lines": [msg], "rc": 0})
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


def _skip_msg(args: dict[str, Any]) -> str:
    if args.get("creates"):
        return f"skipped, since {args['creates']} exists"
    return f"skipped, since {args['removes']} does not exist"


@module("shell", args=_ARGS, free_form="cmd")
def shell(ctx: ModuleContext, args: dict[str, Any]) -> ModuleResult:
    return _run(ctx, args, shell=True)


@module("command", args=_ARGS, free_form="cmd")
def command(ctx: ModuleContext, args: dict[str, Any]) -> ModuleResult:
    return _run(ctx, args, shell=False)
