"""Console output: progress and tables to stderr, results to stdout, --json as one document."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

    err: Console
    out: Console

# Progress and messages go to stderr so stdout holds only the result (and only JSON with --json).
# Piped output (CI logs, files) gets a wide fixed width rather than rich's 80 columns, so tables keep
# their columns whole.
# Markup and emoji codes are off: everything printed holds user or host data (names, tags, log lines),
# and `[/x]` or `:x:` in it must show as written, never be parsed. Styling is done with Text spans.
# The two consoles are made on first use (`ui.err`, `ui.out`): a command that prints only JSON, such as
# `infprov play --json`, never imports Rich, which is a good part of a command's start-up time.


def _console(stderr: bool) -> Console:
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, highlight=False, markup=False, emoji=False, width=None if stream.isatty() else 160)


def __getattr__(name: str) -> Any:
    if name in ("err", "out"):
        console = _console(stderr=name == "err")
        globals()[name] = console
        return console
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def styled(label: str, style: str, message: str) -> Text:
    """`label message` with only the label styled; the message is shown literally."""
    from rich.text import Text

    return Text.assemble((label, style), " ", message)


def emit_json(doc: Any) -> None:
    """Write one JSON document to stdout, nothing else."""
    sys.stdout.write(json.dumps(doc, indent=2, sort_keys=False, default=str) + "\n")
    sys.stdout.flush()


def _stderr() -> Console:
    """The stderr console, made now if nothing has printed yet (module __getattr__ serves only other modules)."""
    console: Console = globals().get("err") or __getattr__("err")
    return console


def step(message: str) -> None:
    _stderr().print(styled(">", "bold cyan", message), soft_wrap=True)


def ok(message: str) -> None:
    _stderr().print(styled("ok", "green", message), soft_wrap=True)


def warn(message: str) -> None:
    _stderr().print(styled("warning:", "yellow", message), soft_wrap=True)
