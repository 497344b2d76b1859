"""shell and command: run a command, unless `creates`/`removes` say it already ran."""

from __future__ import annotations

import re
import shlex
import time
from typing import Any

from infprov.playbooks.modules.base import ModuleArgError, ModuleContext, ModuleResult, module, quote

SKIP_MARK = "__infprov_skip__"
_ARGS = {
    "cmd", "chdir", "creates", "removes", "executable", "stdin", "stdin_add_newline", "argv", "_raw_params",
    "expand_argument_vars",
}  # fmt: skip
_GLOB = re.compile(r"[*?\[]")
# Ansible's command module expands $VAR and ~ in each word with Python's os.path.expandvars/expanduser on the
# host (expand_argument_vars, default true); the host's python3 does the same here, only when a word needs it.
_EXPAND = (
    "import os,sys; a=[os.path.expanduser(os.path.expandvars(x)) for x in sys.argv[1:]]; os.execvp(a[0], a)"
)
_GLOB_TEST = "import glob,sys; sys.exit(0 if glob.glob(sys.argv[1]) else 1)"
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


def _exists(pattern: str) -> str:
    """A shell test that is true when the path (or, with *?[, any path the glob matches) exists, as glob.glob."""
    if _GLOB.search(pattern):
        return f"python3 -c {quote(_GLOB_TEST)} {quote(pattern)}"
    return f"{{ [ -e {quote(pattern)} ] || [ -L {quote(pattern)} ]; }}"


def guard_script(creates: str | None, removes: str | None) -> str:
    """Shell lines that print the skip mark and stop when the command need not run."""
    lines = []
    if creates:
        lines.append(f"if {_exists(str(creates))}; then echo {SKIP_MARK}; exit 0; fi")
    if removes:
        lines.append(f"if ! {_exists(str(removes))}; then echo {SKIP_MARK}; exit 0; fi")
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
        expand = args.get("expand_argument_vars", True) not in (False, "false", "no", "False")
        if expand and any("$" in w or w.startswith("~") for w in words):
            lines.append(f"exec python3 -c {quote(_EXPAND)} " + shlex.join(words))
        else:
            lines.append("exec " + shlex.join(words))
    return "\n".join(lines), shown


def _run(ctx: ModuleContext, args: dict[str, Any], *, shell: bool) -> ModuleResult:
    script, shown = build_script(args, shell=shell)
    if ctx.check:
        empty = {"cmd": shown, "stdout": "", "stderr": "", "stdout_lines": [], "stderr_lines": [], "rc": 0}
        if not (args.get("creates") or args.get("removes")):
            return ModuleResult(skipped=True, msg="Command would have run if not in check mode", data=empty)
        probe = ctx.sh(guard_script(args.get("creates"), args.get("removes")) + "\nexit 0")
        if probe.out.startswith(SKIP_MARK):
            out = _skip_stdout(args)
            return ModuleResult(msg=_skip_msg(args, "Would"), data={**empty, "stdout": out, "stdout_lines": [out]})
        return ModuleResult(changed=True, msg="Command would have run if not in check mode", data=empty)
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
        out = _skip_stdout(args)
        skip = {"cmd": shown, "stdout": out, "stdout_lines": [out], "stderr": "", "stderr_lines": [], "rc": 0}
        return ModuleResult(msg=_skip_msg(args, "Did"), data=skip)
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


def _skip_stdout(args: dict[str, Any]) -> str:
    if args.get("creates"):
        return f"skipped, since {args['creates']} exists"
    return f"skipped, since {args['removes']} does not exist"


def _skip_msg(args: dict[str, Any], did: str) -> str:
    """Ansible's words: "Did not run command since 'X' exists" ("Would" in check mode)."""
    if args.get("creates"):
        return f"{did} not run command since '{args['creates']}' exists"
    return f"{did} not run command since '{args['removes']}' does not exist"


@module("shell", args=_ARGS, free_form="cmd")
def shell(ctx: ModuleContext, args: dict[str, Any]) -> ModuleResult:
    return _run(ctx, args, shell=True)


@module("command", args=_ARGS, free_form="cmd")
def command(ctx: ModuleContext, args: dict[str, Any]) -> ModuleResult:
    return _run(ctx, args, shell=False)
