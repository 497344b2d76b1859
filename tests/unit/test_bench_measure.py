"""Issue 26, items 1 and 5: how a run's points show: stable or not (with their spread and the host's load),
numbers with sensible precision, percentiles in order."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from infprov.provision.cli import app
from tests.unit.test_bench_security import client_json

runner = CliRunner()


def _run(infprov_home: Path, points: list[dict[str, Any]]) -> str:
    from infprov.floor import paths

    name = "bench-20260101T000000Z-m"
    d = paths.runs_dir() / name
    d.mkdir()
    doc = {"run": name, "path": str(d), "partial": False, "fleet_images_per_s": None,
           "hosts": [{"host": "10.0.0.5", "instance_id": "i-1", "error": "", "partial": False, "points": points}]}
    (d / "summary.json").write_text(json.dumps(doc))
    return name


def test_an_unstable_point_is_flagged_with_its_spread_and_load(infprov_home: Path) -> None:
    steady = {**client_json(), "stable": True, "spread_pct": 3.2, "host_load": {"cpu_busy_pct": 41.0, "cpus": 2}}
    shaky = {**client_json(threads=1), "stable": False, "spread_pct": 37.4,
             "host_load": {"cpu_busy_pct": 97.6, "cpus": 2}}
    name = _run(infprov_home, [steady, shaky])
    res = runner.invoke(app, ["results", name])
    assert res.exit_code == 0, res.output
    assert "3 %" in res.stdout and "37 % unstable" in res.stdout and "98 %" in res.stdout
    [warning] = [line for line in res.stderr.splitlines() if "unstable" in line]
    assert "point 2 (batch 16, 1 thread(s)): spread 37 %, host CPU 98 % busy" in warning
