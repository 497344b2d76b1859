"""With nothing in the inventory and no region configured, plain `status` and `teardown` say there is nothing
to act on (exit 0), not "no AWS region is configured" (issue 25, item 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from infprov.provision.cli import app


@pytest.fixture()
def no_region(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("INFPROV_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.mark.parametrize("args", [["status"], ["teardown", "--yes"], ["teardown", "--all", "--yes"],
                                  ["teardown", "--dry-run"]])
def test_plain_commands_with_nothing_recorded_say_so(no_region: Path, args: list[str]) -> None:
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "the inventory holds no" in r.stdout and "--sandbox" in r.stdout
    assert "error" not in r.stderr


def test_json_says_nothing_in_one_document(no_region: Path) -> None:
    for args in (["status", "--json"], ["teardown", "--yes", "--json"]):
        r = CliRunner().invoke(app, args)
        assert r.exit_code == 0, r.output
        doc = json.loads(r.stdout)
        assert doc["region"] == ""


def test_a_named_cluster_without_a_region_is_still_a_usage_error(no_region: Path) -> None:
    r = CliRunner().invoke(app, ["teardown", "--name", "x", "--yes"])
    assert r.exit_code == 2 and "no AWS region is configured" in r.stderr
