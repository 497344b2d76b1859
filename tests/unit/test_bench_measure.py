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


def test_limit_bounds_are_enforced_as_the_help_states() -> None:
    from infprov.floor.errors import UsageError
    from infprov.provision import benchplan

    for bad in (0.5, 0, -1, 3601):
        try:
            benchplan.plan("inf1.6xlarge", limit_s=bad)
        except UsageError as exc:
            assert "from 1 to 3600" in exc.line()
        else:
            raise AssertionError(f"--limit {bad} accepted")
    assert benchplan.plan("inf1.6xlarge", limit_s=1).limit_s == 1
    import typer

    [limit] = [o for o in typer.main.get_command(app).commands["bench"].params if o.name == "limit"]  # type: ignore[attr-defined]
    assert "1 to 3600" in str(limit.help)


def test_compare_without_a_first_run_is_a_usage_error(infprov_home: Path) -> None:
    res = runner.invoke(app, ["results", "--compare", "bench-x"])
    assert res.exit_code == 2 and "needs a first run" in res.stderr and "infprov results RUN --compare" in res.stderr


def test_a_failed_run_is_listed_as_failed_not_zero(infprov_home: Path) -> None:
    from infprov.floor import paths
    from infprov.provision import bench

    run_dir = paths.runs_dir() / "bench-20260101T000000Z-f"
    run_dir.mkdir()
    failed = bench.HostRun("i-1", "10.0.0.5", [], error="10.0.0.5: the Triton server is not ready (HTTP 000)")
    doc = bench.write_fleet(run_dir, [failed], sweep=False)
    assert doc["fleet_images_per_s"] is None
    ok = _run(infprov_home, [client_json()])
    listed = runner.invoke(app, ["results"])
    assert listed.exit_code == 0, listed.output
    rows = {line.split()[1]: line for line in listed.stdout.splitlines() if "bench-2026" in line}
    assert "failed" in rows[run_dir.name] and "0.0" not in rows[run_dir.name]
    assert "ok" in rows[ok]
    statuses = {r["run"]: r["status"] for r in json.loads(runner.invoke(app, ["results", "--json"]).stdout)}
    assert statuses == {run_dir.name: "failed", ok: "ok"}
