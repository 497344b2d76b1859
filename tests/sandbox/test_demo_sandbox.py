"""`infprov demo` end to end on the sandbox, and installable shell completion."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

runner = CliRunner()
AS_INFPROV = [sys.executable, "-c", "import sys; from infprov.provision.cli import app; app(prog_name='infprov')"]


@pytest.mark.sandbox
def test_demo_runs_the_main_job_and_leaves_nothing(sandbox_hosts: list[dict[str, Any]], tmp_path: Path) -> None:
    home = tmp_path / "demo-home"
    env = {**os.environ, "INFPROV_HOME": str(home)}
    proc = subprocess.run([sys.executable, "-m", "infprov.provision.cli", "demo", "--hosts", "2", "--limit", "3"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # the results table of the run: one row per host, with throughput and latency columns
    assert "images/s" in proc.stdout and "p99 ms" in proc.stdout, proc.stdout
    [run] = [p for p in (home / "runs").iterdir() if p.name.startswith("demo-")]
    summary = json.loads((run / "summary.json").read_text())
    assert len(summary["hosts"]) == 2 and summary["partial"] is False
    # the run list covers the demo's run (its folder is not a bench-* one: the index names it), as the latest
    listed = subprocess.run([sys.executable, "-m", "infprov.provision.cli", "results", "--json"],
                            capture_output=True, text=True, env=env, timeout=120)
    assert listed.returncode == 0, listed.stderr
    [row] = [r for r in json.loads(listed.stdout) if r["run"] == run.name]
    assert (row["cluster"], row["status"], row["points"]) == ("demo", "ok", 2)
    latest = subprocess.run([sys.executable, "-m", "infprov.provision.cli", "results", "latest", "--json"],
                            capture_output=True, text=True, env=env, timeout=120)
    assert latest.returncode == 0 and json.loads(latest.stdout)["run"] == run.name, latest.stderr
    status = subprocess.run([sys.executable, "-m", "infprov.provision.cli", "status", "--sandbox", "--name", "demo",
                             "--json"],
                            capture_output=True, text=True, env=env, timeout=120)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["clusters"] == []
