"""`up` checks what is local first, then what EC2 answers, and only then runs preflight; identical preflight
failures are one line (issue 25, item 3)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from infprov.provision import lifecycle
from infprov.provision import preflight as pf
from infprov.provision.cli import app
from tests.nocloud import without_cloud


@pytest.fixture()
def no_preflight_allowed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    calls: list[Any] = []
    monkeypatch.setattr(pf, "run", lambda *a, **k: calls.append((a, k)) or [])
    without_cloud(monkeypatch, tmp_path)
    return calls


def test_missing_region_comes_before_preflight(no_preflight_allowed: list[Any]) -> None:
    r = CliRunner().invoke(app, ["up", "--type", "inf1.xlarge", "--yes"])
    assert r.exit_code == 2 and "no AWS region is configured" in r.stderr
    assert no_preflight_allowed == [] and "preflight" not in r.stderr


def test_a_sandbox_that_is_down_comes_before_preflight(no_preflight_allowed: list[Any], tmp_path: Path) -> None:
    r = CliRunner().invoke(app, ["up", "--sandbox", "--type", "inf1.xlarge", "--yes"])
    assert r.exit_code == 1
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: the sandbox is not up. hint: run `infprov sandbox up`"]
    assert no_preflight_allowed == [] and "404" not in r.stderr
    assert not (tmp_path / "no-sandbox").exists()


def test_identical_failures_collapse_into_one_line() -> None:
    dns = "could not be reached ([Errno -3] Temporary failure in name resolution)"
    fix = "check the network from this machine, then run preflight again"
    failed = [pf.Outcome(f"item {n}", False, f"https://h{n}.example/x {dns}", fix) for n in range(12)]
    failed.append(pf.Outcome("boost", False, "https://b.example/b.tgz answered HTTP 404", "pin another"))
    lines = lifecycle.collapsed_failures(failed)
    assert len(lines) == 2
    assert lines[0].startswith("FAIL  12 items (item 0, item 1,") and dns in lines[0] and fix in lines[0]
    assert lines[1] == failed[-1].line()
    assert lifecycle.collapsed_failures(failed[:1]) == [failed[0].line()]


def test_up_prints_one_line_for_twelve_identical_failures(monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    from infprov.floor.errors import InfprovError

    same = [pf.Outcome(f"item {n}", False, f"http://x/{n} answered HTTP 404", "run `infprov sandbox up`")
            for n in range(12)]
    monkeypatch.setattr(pf, "run", lambda *a, **k: same)
    with pytest.raises(InfprovError, match="12 pinned download"):
        lifecycle.check_before_up(None, "inf1.xlarge")
    fails = [line for line in capsys.readouterr().err.splitlines() if line.startswith("FAIL")]
    assert fails == ["FAIL  12 items (" + ", ".join(f"item {n}" for n in range(12))
                     + "): answered HTTP 404. fix: run `infprov sandbox up`"]
