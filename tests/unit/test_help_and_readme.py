"""Help texts and the README, read as a newcomer (issue 25, items 8 and 11)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from infprov.provision.cli import app

README = Path(__file__).resolve().parents[2] / "README.md"
COMMANDS = [[], ["up"], ["bench"], ["teardown"], ["status"], ["play"], ["ssh"], ["logs"], ["tunnel"], ["results"],
            ["inventory"], ["preflight"], ["demo"], ["sandbox", "up"]]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "infprov")
def test_help_shows_no_python_type_tags(command: list[str]) -> None:
    r = CliRunner().invoke(app, [*command, "--help"], terminal_width=200)
    assert r.exit_code == 0, r.output
    assert not re.search(r"<(bool|str|int|float|list\[str\])>", r.stdout), r.stdout


def test_help_speaks_of_every_generation() -> None:
    top = CliRunner().invoke(app, ["--help"], terminal_width=200).stdout
    assert "Inf2" in top and "Trn1" in top
    up = CliRunner().invoke(app, ["up", "--help"], terminal_width=200).stdout
    assert "--type" in up and "TYPE" in up and "inf2.xlarge" in up and "trn1.2xlarge" in up


def test_an_empty_inventory_is_a_sentence_not_an_empty_table(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFPROV_HOME", str(tmp_path / "h"))
    r = CliRunner().invoke(app, ["inventory"])
    assert r.exit_code == 0 and "no hosts yet" in r.stdout and "┏" not in r.stdout


def test_an_empty_sandbox_is_a_sentence_not_an_empty_table(capsys: pytest.CaptureFixture[str]) -> None:
    from infprov.provision import render

    render.render_sandbox({"ec2_endpoint": None, "hosts": []}, json_out=False)
    out = capsys.readouterr().out
    assert "no sandbox hosts" in out and "┏" not in out


@pytest.mark.parametrize("command", ["up", "bench", "teardown", "status"])
def test_readme_lists_every_option_of_the_main_commands(command: str) -> None:
    text = README.read_text()
    r = CliRunner().invoke(app, [command, "--help"], terminal_width=400)
    options = set(re.findall(r"│\s+(?:\*\s+)?(--[a-z][a-z-]+)", r.stdout)) - {"--help", "--inventory"}
    line = re.search(rf"`infprov {command} [^`]*`:", text)
    assert line is not None
    missing = sorted(o for o in options if o not in line.group(0))
    assert missing == [], f"README's `infprov {command}` line lacks {missing}"


def test_readme_says_how_to_install_and_how_to_try_it_on_the_sandbox() -> None:
    head = README.read_text()[:2500]
    assert "pipx install ." in head and "pip install ." in head
    quick = head[head.index("Try it without AWS"):]
    lines = quick.split("```")[1].strip().splitlines()
    assert len(lines) == 3 and lines[0].startswith("infprov sandbox up") and "--sandbox" in lines[1]
    text = README.read_text()
    assert "the two variables above" not in text
    assert "Which tool to trust" in text
    assert "one folder per host" in text
