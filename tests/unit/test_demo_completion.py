"""`infprov demo` end to end on the sandbox, and installable shell completion."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from infprov.provision.cli import app

runner = CliRunner()
AS_INFPROV = [sys.executable, "-c", "import sys; from infprov.provision.cli import app; app(prog_name='infprov')"]


@pytest.mark.parametrize(("shell", "mark"), [("bash", "complete -o default -F _infprov_completion infprov"),
                                             ("zsh", "#compdef infprov"), ("fish", "complete --command infprov")])
def test_the_completion_script_is_printed_for_each_shell(shell: str, mark: str) -> None:
    # the shell is named, not detected from the processes above this one (a background run may have no shell
    # above it at all): typer's own switch turns its detection off and takes the name given
    env = {**os.environ, "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}
    proc = subprocess.run([*AS_INFPROV, "--show-completion", shell], capture_output=True, text=True, timeout=60,
                          env=env)
    assert proc.returncode == 0, proc.stderr
    assert "_INFPROV_COMPLETE" in proc.stdout and mark in proc.stdout


@pytest.mark.parametrize(("words", "cword", "expected"), [("infprov tea", "1", "teardown"),
                                                          ("infprov up --auto", "2", "--auto-teardown"),
                                                          ("infprov sandbox st", "2", "status")])
def test_completion_completes_commands_and_options(words: str, cword: str, expected: str) -> None:
    env = {**os.environ, "COMP_WORDS": words, "COMP_CWORD": cword, "_INFPROV_COMPLETE": "complete_bash"}
    proc = subprocess.run(AS_INFPROV, capture_output=True, text=True, env=env, timeout=60)
    assert proc.stdout.split() == [expected], proc.stdout + proc.stderr


@pytest.mark.parametrize("argv", [["demo", "--hosts", "0"], ["demo", "--hosts", "9"], ["demo", "--limit", "0"]])
def test_demo_refuses_bad_numbers_before_doing_anything(argv: list[str]) -> None:
    result = runner.invoke(app, argv)
    assert result.exit_code == 2
    [line] = result.stderr.strip().splitlines()
    assert "out of range" in line and "hint:" in line


