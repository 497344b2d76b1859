"""Two INFPROV_HOMEs on one sandbox (one EC2 endpoint, as two people on one AWS account): each `up`s its own
cluster with its own key pair, `teardown --all` and `status` keep to their home (issue 25, item 0)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from infprov.provision.cli import app

runner = CliRunner()


def _in(monkeypatch: pytest.MonkeyPatch, home: Path, args: list[str]) -> Any:
    monkeypatch.setenv("INFPROV_HOME", str(home))
    return runner.invoke(app, args)


@pytest.mark.sandbox
def test_two_homes_share_the_sandbox_without_touching_each_other(sandbox_hosts: list[dict[str, Any]],
                                                                 tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = tmp_path / "alice-home", tmp_path / "bob-home"
    up = ["up", "--sandbox", "--type", "inf1.xlarge", "--yes", "--skip-server", "--json"]
    try:
        first = _in(monkeypatch, a, [*up, "--name", "alice"])
        assert first.exit_code == 0, first.output
        second = _in(monkeypatch, b, [*up, "--name", "bob"])  # before: "key pair ... is in use"
        assert second.exit_code == 0, second.output
        assert json.loads(first.stdout)["key_name"] != json.loads(second.stdout)["key_name"]

        # bob's home logs in to bob's host with its own key (ssh execs: run it as its own process)
        login = subprocess.run([sys.executable, "-m", "infprov.provision.cli", "ssh", "--name", "bob", "--",
                                "printf", "%s|", "bob's host", "$HOME"], capture_output=True, text=True,
                               timeout=120, env={**os.environ, "INFPROV_HOME": str(b)}, check=False)
        assert login.returncode == 0 and login.stdout == "bob's host|$HOME|", login.stderr

        seen = _in(monkeypatch, b, ["status", "--json"])
        assert seen.exit_code == 0, seen.output
        assert {c["name"]: c["mine"] for c in json.loads(seen.stdout)["clusters"]} == {"bob": True, "alice": False}

        refused = _in(monkeypatch, b, ["teardown", "--sandbox", "--name", "alice", "--yes"])
        assert refused.exit_code == 2 and "another infprov home" in refused.stderr

        gone = _in(monkeypatch, b, ["teardown", "--sandbox", "--all", "--yes", "--json"])
        assert gone.exit_code == 0, gone.output
        doc = json.loads(gone.stdout)
        assert len(doc["instances"]) == 1 and doc["leftovers"] == []

        still = _in(monkeypatch, a, ["status", "--json"])
        assert [c["name"] for c in json.loads(still.stdout)["clusters"]] == ["alice"]
    finally:
        for home in (a, b):
            _in(monkeypatch, home, ["teardown", "--sandbox", "--all", "--yes"])
