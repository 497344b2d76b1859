"""The CLI's contract: --version, --help, exit codes, one line per error, tracebacks only with --debug."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from infprov.provision import __version__
from infprov.provision.cli import app

runner = CliRunner()


def test_version_and_help() -> None:
    assert runner.invoke(app, ["--version"]).stdout.strip() == f"infprov {__version__}"
    helped = runner.invoke(app, ["--help"])
    assert helped.exit_code == 0
    for command in ("up", "bench", "teardown", "status", "sandbox", "play", "inventory", "results", "logs", "ssh"):
        assert command in helped.stdout


@pytest.mark.parametrize("command", [["bench"], ["logs"], ["ssh"], ["play", "server"], ["inventory"]])
def test_malformed_inventory_is_one_line_naming_file_and_line(command: list[str], tmp_path: Path) -> None:
    bad = tmp_path / "inventory.yml"
    bad.write_text("all:\n  children:\n    x: [1, 2\n")
    result = runner.invoke(app, [*command, "--inventory", str(bad)])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {bad}:") and "hint:" in lines[0]
    assert "Traceback" not in result.output


def test_empty_inventory_says_run_up_first(tmp_path: Path) -> None:
    result = runner.invoke(app, ["bench", "--inventory", str(tmp_path / "none.yml")])
    assert result.exit_code == 2
    assert "run `infprov up` first" in result.stderr


def test_traceback_only_with_debug(tmp_path: Path) -> None:
    bad = tmp_path / "inventory.yml"
    bad.write_text("all: [\n")
    plain = subprocess.run([sys.executable, "-m", "infprov.provision.cli", "bench", "--inventory", str(bad)],
                           capture_output=True, text=True)
    assert plain.returncode == 2 and "Traceback" not in plain.stderr
    debug = subprocess.run([sys.executable, "-m", "infprov.provision.cli", "--debug", "bench", "--inventory", str(bad)],
                           capture_output=True, text=True)
    assert debug.returncode != 0 and "Traceback" in debug.stderr


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["up", "--bogus"], "No such option: --bogus"),
        (["nosuch"], "No such command 'nosuch'"),
        (["up", "--type", "inf1.xlarge", "--count", "abc"], "Invalid value for '--count'"),
        (["up"], "Missing option '--type'"),
        (["sandbox", "up", "--hosts", "x"], "Invalid value for '--hosts'"),
    ],
)
def test_the_frameworks_own_usage_errors_are_one_line(argv: list[str], said: str) -> None:
    result = runner.invoke(app, argv)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and said in lines[0] and "--help`" in lines[0]
    assert "╭" not in result.output and "Traceback" not in result.output
