"""Console output: progress and tables to stderr, results to stdout, --json as one document."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.text import Text

# Progress and messages go to stderr so stdout holds only the result (and only JSON with --json).
# Piped output (CI logs, files) gets a wide fixed width rather than rich's 80 columns, so tables keep
# their columns whole.
# Markup and emoji codes are off: everything printed holds user or host data (names, tags, log lines),
# and `[/x]` or `:x:` in it must show as written, never be parsed. Styling is done with Text spans.
err = Console(stderr=True, highlight=False, markup=False, emoji=False, width=None if sys.stderr.isatty() else 160)
out = Console(highlight=False, markup=False, emoji=False, width=None if sys.stdout.isatty() else 160)


def styled(label: str, style: str, message: str) -> Text:
    """`label message` with only the label styled; the message is shown literally."""
    return Text.assemble((label, style), " ", message)


def emit_json(doc: Any) -> None:
    """Write one JSON document to stdout, nothing else."""
    sys.stdout.write(json.dumps(doc, indent=2, sort_keys=False, default=str) + "\n")
    sys.stdout.flush()


def step(message: str) -> None:
    err.print(styled(">", "bold cyan", message), soft_wrap=True)


def ok(message: str) -> None:
    err.print(styled("ok", "green", message), soft_wrap=True)


def warn(message: str) -> None:
    err.print(styled("warning:", "yellow", message), soft_wrap=True)
