"""Issue 26, item 5: the run list covers every run infprov wrote (an index in INFPROV_HOME), with date, cluster,
type, tool, points, status and the best images/s within a budget; `results latest`; `--compare` with threads and
tool, a warning across tools, failed runs kept as failed, "best" under a p99 budget."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from infprov.client import results
from infprov.provision import bench
from infprov.provision.cli import app
from tests.unit.test_plots import point

runner = CliRunner()


def _write(folder: Path, pts: list[dict[str, Any]], *, error: str = "", tool: str = "client",
           budget: float | None = None, index: bool = True) -> Path:
    """A run folder as bench leaves it: made (and indexed) by make_run_dir, summary by write_fleet."""
    from infprov.provision.benchplan import BenchPlan, Point

    run_dir = bench.make_run_dir(str(folder), "x", index=index)
    plan = BenchPlan(model="rn50-16neuroncores-default", points=tuple(Point(p["batch_size"], p["threads"])
                                                                      for p in pts) or (Point(16, 1),),
                     limit_s=10.0, warmup=0, tool=tool, neuron_cores=16)
    host = bench.HostRun("i-1", "10.0.0.5", [dict(p) for p in pts], error=error, cluster="demo",
                         instance_type="inf1.6xlarge")
    bench.write_fleet(run_dir, [host], len(plan.points) > 1, budget_ms=budget, plan=plan)
    return run_dir


def test_the_list_covers_out_and_demo_runs_through_the_index(infprov_home: Path, tmp_path: Path) -> None:
    from infprov.floor import paths

    own = _write(paths.runs_dir() / "bench-20261201T100000Z-a", [point(16, 1, 400.0, 45.0)])
    out = _write(tmp_path / "elsewhere" / "my-run", [point(16, 1, 410.0, 40.0), point(16, 2, 700.0, 60.0)])
    demo = _write(paths.runs_dir() / "demo-20261203-090000", [point(16, 2, 300.0, 20.0)])
    index = paths.runs_dir() / "index.jsonl"
    assert stat.S_IMODE(index.stat().st_mode) == 0o600
    assert [json.loads(line)["path"] for line in index.read_text().splitlines()] == [str(own), str(out), str(demo)]
    listed = json.loads(runner.invoke(app, ["results", "--json"]).stdout)
    assert {r["run"] for r in listed} == {own.name, out.name, demo.name}
    mine = next(r for r in listed if r["run"] == "my-run")
    assert (mine["cluster"], mine["instance_type"], mine["tool"], mine["points"], mine["status"]) == (
        "demo", "inf1.6xlarge", "client", 2, "ok")
    assert mine["best_images_per_s"] == 700.0 and mine["date"] == "2026-12-07 10:00"
    text = runner.invoke(app, ["results"])
    assert text.exit_code == 0, text.output
    for word in ("date (UTC)", "cluster", "type", "tool", "points", "status", "best images/s", "my-run", "demo-2026"):
        assert word in text.stdout, (word, text.stdout)


def test_best_within_a_budget_and_failed_runs(infprov_home: Path, tmp_path: Path) -> None:
    from infprov.floor import paths

    sweep = [point(16, 1, 400.0, 45.0), point(16, 2, 700.0, 60.0), point(16, 4, 760.0, 110.0)]
    _write(paths.runs_dir() / "bench-20261201T100000Z-s", sweep)
    _write(paths.runs_dir() / "bench-20261201T110000Z-f", [], error="10.0.0.5: the Triton server is not ready")
    listed = {r["run"]: r for r in json.loads(runner.invoke(app, ["results", "--json", "--p99", "100ms"]).stdout)}
    assert listed["bench-20261201T100000Z-s"]["best_images_per_s"] == 700.0
    failed = listed["bench-20261201T110000Z-f"]
    assert failed["status"] == "failed" and failed["best_images_per_s"] is None
    text = runner.invoke(app, ["results", "--p99", "100ms"]).stdout
    assert "best images/s (p99 <= 100 ms)" in text
    [row] = [line for line in text.splitlines() if "-f " in line]
    assert "failed" in row and "0.0" not in row


def test_latest_is_the_newest_run(infprov_home: Path, tmp_path: Path) -> None:
    none = runner.invoke(app, ["results", "latest"])
    assert none.exit_code == 2 and "no benchmark runs yet" in none.stderr
    from infprov.floor import paths

    _write(paths.runs_dir() / "bench-20261201T100000Z-old", [point(16, 1, 400.0, 45.0)])
    new = _write(tmp_path / "new", [point(32, 1, 640.0, 55.0, itype="inf1.6xlarge")])
    res = runner.invoke(app, ["results", "latest", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["path"] == str(new)


def _doc(run: str, pts: list[dict[str, Any]], error: str = "") -> dict[str, Any]:
    return {"run": run, "tool": None, "hosts": [{"host": "10.0.0.5", "error": error, "points": pts}]}


def test_compare_best_under_the_budget_threads_tool_and_failed_kept() -> None:
    a = _doc("a", [point(16, 1, 400.0, 45.0), point(16, 4, 900.0, 150.0)])
    b = _doc("b", [point(16, 2, 500.0, 50.0, tool="perf_analyzer")])
    failed = _doc("c", [], error="10.0.0.5: the Triton server is not ready")
    rows = results.compare_rows([a, b, failed], budget_ms=100.0)
    assert [(r["run"], r["threads"], r["tool"], r["status"], r["best"]) for r in rows] == [
        ("a", 1, "client", "ok", True), ("a", 4, "client", "ok", False),
        ("b", 2, "perf_analyzer", "ok", True), ("c", None, None, "failed", False)]
    assert rows[2]["images_per_s_x"] == 500.0 / 400.0  # against a's best within 100 ms, not its 900
    assert results.compare_rows([a], None)[1]["best"] is True  # no budget: the most images/s
    [warning] = results.compare_warnings(rows)
    assert "client, perf_analyzer" in warning


def test_compare_shows_threads_tool_status_and_warns(infprov_home: Path, tmp_path: Path) -> None:
    one = _write(tmp_path / "one", [point(16, 1, 400.0, 45.0), point(16, 4, 900.0, 150.0)])
    two = _write(tmp_path / "two", [point(16, 2, 500.0, 50.0, tool="perf_analyzer")], tool="perf_analyzer")
    gone = _write(tmp_path / "gone", [], error="10.0.0.5: the Triton server is not ready")
    res = runner.invoke(app, ["results", str(one), "--compare", str(two), "--p99", "100ms"])
    assert res.exit_code == 0, res.output
    for word in ("threads", "tool", "perf_analyzer", "within p99 100 ms", "400 *", "1.25x"):
        assert word in res.stdout, (word, res.stdout)
    assert "different tools (client, perf_analyzer)" in res.stderr
    with_failed = runner.invoke(app, ["results", str(one), "--compare", str(gone), "--json"])
    rows = json.loads(with_failed.stdout)["compare"]
    assert [r["status"] for r in rows if r["run"] == "gone"] == ["failed"]
