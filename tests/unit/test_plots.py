"""provision/plots.py: what the sweep, compare and recommend plots hold (lines per batch, the frontier, the best
point within the budget, y from zero, the title), read back from the drawn axes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from infprov.provision import bench, plots
from infprov.provision.cli import app

runner = CliRunner()


def point(batch: int, conc: int, ips: float, p99: float, errors: int = 0, itype: str = "inf1.6xlarge",
          tool: str = "client") -> dict[str, Any]:
    return {"model": "rn50-16neuroncores-default", "batch_size": batch, "threads": conc, "images_per_s": ips,
            "requests_per_s": ips / batch, "errors": errors,
            "latency_ms": {"p50": p99 / 2, "p75": None, "p90": p99 * 0.8, "p95": p99 * 0.9, "p99": p99, "mean": None},
            "manifest": {"host": "10.0.0.5", "instance_type": itype, "tool": tool,
                         "started_at": "2026-12-07T10:00:00+00:00"}}


# batch 16 and 32 at concurrency 1, 2, 4: throughput levels off while p99 grows (in sweep order, not by p99)
SWEEP = [point(16, 1, 400.0, 45.0), point(16, 2, 700.0, 60.0), point(16, 4, 760.0, 110.0),
         point(32, 1, 600.0, 70.0), point(32, 2, 820.0, 95.0), point(32, 4, 840.0, 190.0)]


def test_a_sweep_draws_a_line_per_batch_by_concurrency_from_zero(tmp_path: Path) -> None:
    drawn = plots.plot_sweep(tmp_path / "sweep.png", [("10.0.0.5", SWEEP)])
    assert drawn is not None and (tmp_path / "sweep.png").read_bytes()[:4] == b"\x89PNG"
    assert drawn.lines["batch 16"] == [(45.0, 400.0), (60.0, 700.0), (110.0, 760.0)]
    assert drawn.lines["batch 32"] == [(70.0, 600.0), (95.0, 820.0), (190.0, 840.0)]
    assert sorted(drawn.labels) == sorted(["c1", "c2", "c4"] * 2)
    assert drawn.ylim[0] == 0
    # the frontier: the points no other beats on both p99 and images/s, by p99
    assert drawn.lines["frontier"] == [(45.0, 400.0), (60.0, 700.0), (95.0, 820.0), (190.0, 840.0)]
    assert drawn.title.endswith("inf1.6xlarge, client, rn50-16neuroncores-default, 2026-12-07")
    assert drawn.best == (190.0, 840.0)  # no budget: the most images/s


def test_the_budget_line_and_the_best_point_within_it(tmp_path: Path) -> None:
    drawn = plots.plot_sweep(tmp_path / "sweep.png", [("10.0.0.5", SWEEP)], budget_ms=100.0)
    assert drawn is not None
    assert drawn.best == (95.0, 820.0)  # batch 32 at c4 has more images/s but a p99 of 190 ms
    [budget] = [k for k in drawn.lines if k.startswith("p99 budget")]
    assert budget == "p99 budget 100 ms" and {x for x, _ in drawn.lines[budget]} == {100.0}
    [best] = [k for k in drawn.lines if k.startswith("best within budget")]
    assert drawn.lines[best] == [(95.0, 820.0)] and "batch 32, c2" in best


def test_a_point_with_errors_is_never_the_best_and_a_failed_one_is_not_placed(tmp_path: Path) -> None:
    pts = [point(16, 1, 400.0, 45.0), point(16, 2, 900.0, 50.0, errors=3),
           {**point(16, 4, 0.0, 0.0), "latency_ms": {"p99": None}}]
    drawn = plots.plot_sweep(tmp_path / "s.png", [("h", pts)], budget_ms=100.0)
    assert drawn is not None and drawn.best == (45.0, 400.0)
    assert drawn.lines["batch 16"] == [(45.0, 400.0), (50.0, 900.0)]
    assert plots.plot_sweep(tmp_path / "none.png", [("h", pts[2:])]) is None
    assert not (tmp_path / "none.png").exists()


def test_several_hosts_get_a_line_per_batch_each(tmp_path: Path) -> None:
    drawn = plots.plot_sweep(tmp_path / "s.png", [("10.0.0.5", SWEEP[:3]), ("10.0.0.6", SWEEP[3:])])
    assert drawn is not None and {"batch 16 (10.0.0.5)", "batch 32 (10.0.0.6)"} <= set(drawn.lines)


def test_bench_writes_the_sweep_plot_with_the_budget_it_was_given(tmp_path: Path) -> None:
    run = bench.HostRun("i-1", "10.0.0.5", [dict(p) for p in SWEEP])
    doc = bench.write_fleet(tmp_path, [run], sweep=True, budget_ms=100.0)
    assert doc["budget_p99_ms"] == 100.0 and (tmp_path / "sweep.png").is_file()
    assert oct((tmp_path / "sweep.png").stat().st_mode & 0o777) == "0o600"


def test_compare_draws_each_runs_frontier(tmp_path: Path) -> None:
    other = [point(8, 1, 300.0, 30.0, itype="inf2.xlarge"), point(8, 2, 500.0, 40.0, itype="inf2.xlarge"),
             point(8, 4, 480.0, 80.0, itype="inf2.xlarge")]
    drawn = plots.plot_compare(tmp_path / "c.png", [("run-a", SWEEP), ("run-b", other)], budget_ms=100.0)
    assert drawn is not None
    a, b = "run-a (inf1.6xlarge, client)", "run-b (inf2.xlarge, client)"
    assert drawn.lines[a] == [(45.0, 400.0), (60.0, 700.0), (95.0, 820.0), (190.0, 840.0)]
    assert drawn.lines[b] == [(30.0, 300.0), (40.0, 500.0)]  # c4 is beaten by c2 on both counts
    assert drawn.best == (95.0, 820.0)


def test_results_compare_writes_its_plot(infprov_home: Path) -> None:
    from infprov.floor import paths

    names = []
    for name, pts in (("bench-20260101T000000Z-a", SWEEP), ("bench-20260101T000001Z-b", SWEEP[:2])):
        d = paths.runs_dir() / name
        d.mkdir()
        (d / "summary.json").write_text(json.dumps({
            "run": name, "path": str(d), "partial": False, "fleet_images_per_s": None,
            "hosts": [{"host": "10.0.0.5", "instance_id": "i-1", "error": "", "partial": False, "points": pts}]}))
        names.append(name)
    res = runner.invoke(app, ["results", names[0], "--compare", names[1], "--p99", "100ms"])
    assert res.exit_code == 0, res.output
    [line] = [x for x in res.stdout.splitlines() if x.startswith("plot: ")]
    png = Path(line.removeprefix("plot: ").strip())
    assert png.is_file() and png.read_bytes()[:4] == b"\x89PNG"


def test_recommend_plot_holds_every_point_tried_and_each_pick(tmp_path: Path) -> None:
    doc = {"budget_p99_ms": 200.0, "sandbox": True, "ranking": [
        {"instance_type": "inf1.xlarge", "batch_size": 4, "concurrency": 2, "images_per_s": 150.0, "p99_ms": 120.0,
         "usd_per_million_images": 0.42, "points": [
             {"batch_size": 4, "concurrency": 1, "images_per_s": 90.0, "p99_ms": 80.0, "within_budget": True},
             {"batch_size": 4, "concurrency": 2, "images_per_s": 150.0, "p99_ms": 120.0, "within_budget": True},
             {"batch_size": 4, "concurrency": 4, "images_per_s": 160.0, "p99_ms": 260.0, "within_budget": False}]},
        {"instance_type": "inf2.xlarge", "batch_size": None, "concurrency": None, "images_per_s": None,
         "p99_ms": None, "usd_per_million_images": None, "points": []}]}
    drawn = plots.plot_recommend(tmp_path / "recommend.png", doc)
    assert drawn is not None and (tmp_path / "recommend.png").is_file()
    assert drawn.lines["inf1.xlarge batch 4"] == [(80.0, 90.0), (120.0, 150.0), (260.0, 160.0)]
    assert drawn.best == (120.0, 150.0) and "p99 budget 200 ms" in drawn.lines


def test_request_rate_points_are_labelled_by_their_rate(tmp_path: Path) -> None:
    paced = [{**point(16, 2, 300.0, 30.0), "load": {"mode": "rate", "request_rate": 20.0}},
             {**point(16, 2, 150.0, 20.0), "load": {"mode": "rate", "request_rate": 10.0}}]
    drawn = plots.plot_sweep(tmp_path / "s.png", [("h", paced)])
    assert drawn is not None and drawn.labels == ["r10", "r20"]
    assert drawn.lines["batch 16"] == [(20.0, 150.0), (30.0, 300.0)]  # joined by rate


def test_unstable_points_are_ringed(tmp_path: Path) -> None:
    pts = [{**point(16, 1, 400.0, 45.0), "stable": True}, {**point(16, 2, 700.0, 60.0), "stable": False}]
    drawn = plots.plot_sweep(tmp_path / "s.png", [("h", pts)])
    assert drawn is not None and drawn.lines["unstable (its windows disagreed)"] == [(60.0, 700.0)]
    steady = plots.plot_sweep(tmp_path / "t.png", [("h", pts[:1])])
    assert steady is not None and not any(k.startswith("unstable") for k in steady.lines)
