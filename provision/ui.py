"""Console output: progress and tables to stderr, results to stdout, --json as one document."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console

# Progress and messages go to stderr so stdout holds only the result (and only JSON with --json).
# Piped output (CI logs, files) gets a wide fixed width rather than rich's 80 columns, so tables keep
# their columns whole.
err = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 160)
out = Console(highlight=False, width=None if sys.stdout.isatty() else 160)


def emit_json(doc: Any) -> None:
    """Write one JSON document to stdout, nothing else."""
    sys.stdout.write(json.dumps(doc, indent=2, sort_keys=False, default=str) + "\n")
    sys.stdout.flush()


def step(message: str) -> None:
    err.print(f"[bold cyan]>[/] {message}")


def ok(message: str) -> None:
    err.print(f"[green]ok[/] {message}")


def warn(message: str) -> None:
    err.print(f"[yellow]warning:[/] {message}")
