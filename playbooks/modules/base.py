"""What every module gets (a context with the host's connection) and gives back (a result)."""

from __future__ import annotations

import posixpath
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infprov.playbooks.connection import OUTPUT_KEEP, CommandResult, Connection, Stdin
from infprov.playbooks.modules.facts import FileStat
from infprov.playbooks.templating import Templar, unsafe

quote = shlex.quote


class ModuleArgError(Exception):
    """Arguments a module cannot work with; the message names the argument."""


@dataclass
class ModuleResult:
    """Ansible's result shape: changed/failed/skipped, a message, and module data for `register`."""

    changed: bool = False
    failed: bool = False
    skipped: bool = False
    msg: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    command: str | None = None  # the command behind a failure, as the user would recognise it
    rc: int | None = None
    tail: str = ""  # last lines of output behind a failure

    @property
    def status(self) -> str:
        if self.failed:
            return "failed"
        if self.skipped:
            return "skipped"
        return "changed" if self.changed else "ok"

    def as_var(self) -> dict[str, Any]:
        """What `register:` stores."""
        out: dict[str, Any] = dict(self.data)
        out.update(changed=self.changed, failed=self.failed)
        if self.skipped:
            out["skipped"] = True
        if self.msg:
            out["msg"] = self.msg
        if self.rc is not None and "rc" not in out:
            out["rc"] = self.rc
        return dict(unsafe(out))


@dataclass
class ModuleContext:
    """One task on one host: its connection, check mode and timeout."""

    conn: Connection
    host_name: str
    check: bool = False
    base_dir: Path = Path(".")
    templar: Templar = field(default_factory=lambda: Templar({}))
    timeout: float | None = None

    def wrap(self, script: str) -> str:
        """The command line for a shell script: /bin/sh."""
        return "/bin/sh -c " + quote(script)

    def sh(self, script: str, *, stdin: Stdin | None = None, keep: int = OUTPUT_KEEP) -> CommandResult:
        return self.conn.run(self.wrap(script), stdin=stdin, timeout=self.timeout, keep=keep)

    def failed(self, msg: str, result: CommandResult | None = None, command: str | None = None) -> ModuleResult:
        """A failed result carrying the command, exit code and output tail when a command is to blame."""
        if result is None:
            return ModuleResult(failed=True, msg=msg, command=command)
        return ModuleResult(
            failed=True,
            msg=msg,
            command=command or result.command,
            rc=result.exit_code,
            tail=result.tail(),
            data={"rc": result.exit_code, "stdout": result.out, "stderr": result.err},
        )


# ---------------------------------------------------------------- registry
@dataclass(frozen=True)
class ModuleSpec:
    name: str
    run: Callable[[ModuleContext, dict[str, Any]], ModuleResult]
    args: frozenset[str]  # the arguments infprov's playbooks give it; any other is refused before running
    free_form: str | None = None  # the argument a plain string fills (`shell: echo hi` → cmd)
    remote: bool = True  # False: runs on the control side only, needs no connection
    conditions: frozenset[str] = frozenset()  # arguments that are conditionals: evaluated, never templated first
    # arguments that must be given, with this value (or one of a tuple's values)
    fixed: dict[str, Any] = field(default_factory=dict)


MODULES: dict[str, ModuleSpec] = {}


def module(
    name: str,
    *,
    args: set[str],
    free_form: str | None = None,
    remote: bool = True,
    builtin: bool = True,
    conditions: set[str] | None = None,
    fixed: dict[str, Any] | None = None,
) -> Callable[[Callable[[ModuleContext, dict[str, Any]], ModuleResult]], Callable[..., ModuleResult]]:
    """Register a module under its short name and, for Ansible's own (builtin), its `ansible.builtin.` name."""

    def deco(fn: Callable[[ModuleContext, dict[str, Any]], ModuleResult]) -> Callable[..., ModuleResult]:
        spec = ModuleSpec(
            name=name,
            run=fn,
            args=frozenset(args),
            free_form=free_form,
            remote=remote,
            conditions=frozenset(conditions or ()),
            fixed=dict(fixed or {}),
        )
        for full in (name, f"ansible.builtin.{name}") if builtin else (name,):
            MODULES[full] = spec
        return fn

    return deco


# ---------------------------------------------------------------- argument helpers
def boolean(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("yes", "true", "on", "1", "y"):
        return True
    if text in ("no", "false", "off", "0", "n", ""):
        return False
    raise ModuleArgError(f"argument `{name}` must be a boolean, not {value!r}")


def required(args: dict[str, Any], name: str) -> Any:
    value = args.get(name)
    if value is None or value == "":
        raise ModuleArgError(f"missing required argument `{name}`")
    return value


def parse_mode(value: Any) -> int | None:
    """Ansible's mode: an int is taken as is (YAML's 0644 is already octal), a string is octal digits."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ModuleArgError(f"argument `mode` must be octal like '0644', not {value!r}")
    if isinstance(value, int):
        return value
    text = str(value).strip()
    try:
        return int(text, 8)
    except ValueError:
        raise ModuleArgError(f"argument `mode` {text!r}: only octal modes like '0644' are supported") from None


# ---------------------------------------------------------------- acting on files
def mode_commands(path: str, cur: FileStat, mode: int | None) -> list[str]:
    """The chmod still needed to give an existing path the asked-for mode."""
    if mode is not None and cur.mode != mode:
        return [f"chmod {mode:o} {quote(path)}"]
    return []


def write_script(dest: str, mode: int | None, exists: bool) -> str:
    """Write stdin to dest atomically: temp file beside it, mode (the old file's owner kept), rename."""
    q = quote(dest)
    folder = quote(posixpath.dirname(dest) or ".")
    lines = [
        "set -e",
        f"t=$(mktemp {folder}/.infprov.XXXXXX)",
        "trap 'rm -f \"$t\"' EXIT",
        'cat > "$t"',
    ]
    if mode is not None:
        lines.append(f'chmod {mode:o} "$t"')
    elif exists:
        lines.append(f'chmod --reference={q} "$t"')
    else:
        lines.append('chmod "$(printf %o $(( 0666 & ~0$(umask) )))" "$t"')
    if exists:
        lines.append(f'chown --reference={q} "$t" 2>/dev/null || true')
    lines.append(f'mv -f "$t" {q}')
    return "\n".join(lines)
