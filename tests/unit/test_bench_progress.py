"""Issue 26, item 5: bench's progress. The compact view (a line per point, one per host when its point ends,
the clients' lines in the run folder's output.log), `--verbose`, and `--json` progress as JSON lines on stderr."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from infprov.provision import bench, render
from infprov.provision.cli import app
from tests.unit.test_bench_security import LocalHost, fake_host, fake_ssh, own_home, plan  # noqa: F401  (fixtures)

runner = CliRunner()


@pytest.mark.usefixtures("fake_ssh")
def test_run_reports_each_point_and_each_hosts_result_and_logs_every_line(tmp_path: Path) -> None:
    run_dir = bench.make_run_dir(str(tmp_path / "r"), "all")
    events: list[dict] = []
    lines: list[tuple[str, str]] = []
    runs = bench.run([fake_host()], plan(sweep=["batch=16,32"]), run_dir, lambda h, x: lines.append((h, x)),
                     tmp_path / "kh", on_progress=events.append)
    assert [e["event"] for e in events if e["event"] in ("point", "result")] == ["point", "result"] * 2
    points = [e for e in events if e["event"] == "point"]
    assert [(e["index"], e["of"], e["batch_size"]) for e in points] == [(1, 2, 16), (2, 2, 32)]
    results = [e for e in events if e["event"] == "result"]
    assert [(r["host"], r["index"], r["status"]) for r in results] == [("10.0.0.5", 1, "ok"), ("10.0.0.5", 2, "ok")]
    for r, p in zip(results, runs[0].points, strict=True):  # the point's own figures (the fake client's)
        assert (r["batch_size"], r["images_per_s"], r["p99_ms"]) == (p["batch_size"], p["images_per_s"],
                                                                     p["latency_ms"]["p99"])
    log = run_dir / bench.RAW_LOG
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    host_lines = [f"{h}: {x}" for h, x in lines if h != "-"]
    assert host_lines and log.read_text().splitlines() == [f"{h}: {x}" for h, x in lines]


def test_the_clients_progress_lines_become_events() -> None:
    got: list[dict] = []
    bench._line_event("10.0.0.5", "Measuring in windows of 2 s until the last 3 agree within 10 % (at most 10)",
                      got.append)
    bench._line_event("10.0.0.5", "Window 2: 1056.0 images/s, p99 16.2 ms", got.append)
    bench._line_event("10.0.0.5", "Thread 0 Latency p99 in ms: 18.0672", got.append)
    assert got == [{"event": "measuring", "host": "10.0.0.5"},
                   {"event": "window", "host": "10.0.0.5", "window": 2, "images_per_s": 1056.0, "p99_ms": 16.2}]


def test_a_result_line_says_what_a_point_came_to() -> None:
    ok = {"event": "result", "host": "10.0.0.5", "index": 1, "status": "ok", "images_per_s": 1166.67,
          "p99_ms": 6.04, "stable": True, "spread_pct": 7.6, "host_cpu_busy_pct": 74.2, "errors": 0}
    assert render.result_line(ok) == "10.0.0.5: 1167 images/s, p99 6.0 ms, stable (spread 8 %), host CPU 74 %"
    shaky = {**ok, "stable": False, "spread_pct": 31.0, "errors": 2}
    assert "UNSTABLE (spread 31 %)" in render.result_line(shaky) and "2 errors" in render.result_line(shaky)
    failed = {"event": "result", "host": "10.0.0.6", "index": 1, "status": "failed",
              "error": "10.0.0.6: the client wrote no results (exit 1)"}
    assert render.result_line(failed) == "10.0.0.6: failed: 10.0.0.6: the client wrote no results (exit 1)"


def _bench(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, *args: str) -> tuple[int, str, str, Path]:
    from infprov.provision import targets

    monkeypatch.setattr(targets, "select_hosts", lambda *a: [fake_host()])
    out = tmp_path / "run"
    res = runner.invoke(app, ["bench", "--limit", "1", "--sweep", "batch=16,32", "--out", str(out), *args])
    return res.exit_code, res.stdout, res.stderr, out


@pytest.mark.usefixtures("fake_ssh")
def test_the_compact_view_is_a_line_per_point_and_per_host(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    code, _, err, out = _bench(monkeypatch, tmp_path)
    assert code == 0, err
    lines = err.splitlines()
    assert [x for x in lines if x.startswith("point ")] == ["point 1/2: batch 16, 2 thread(s)",
                                                           "point 2/2: batch 32, 2 thread(s)"]
    assert len([x for x in lines if x.startswith("  10.0.0.5: ") and "images/s" in x]) == 2
    assert not any(x.startswith("10.0.0.5: ") for x in lines)  # the client's own lines are in output.log
    assert "10.0.0.5: " in (out / bench.RAW_LOG).read_text()
    verbose = _bench(monkeypatch, tmp_path / "v", "--verbose")
    assert verbose[0] == 0 and any(x.startswith("10.0.0.5: ") for x in verbose[2].splitlines())


@pytest.mark.usefixtures("fake_ssh")
def test_json_progress_is_json_lines_on_stderr(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    code, stdout, err, out = _bench(monkeypatch, tmp_path, "--json")
    assert code == 0, err
    events = [json.loads(line) for line in err.splitlines()]  # every line of stderr is one JSON document
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and events[0]["run_dir"] == str(out) and events[0]["points"] == 2
    assert [e["index"] for e in events if e["event"] == "point"] == [1, 2]
    assert [(e["index"], e["status"]) for e in events if e["event"] == "result"] == [(1, "ok"), (2, "ok")]
    assert json.loads(stdout)["path"] == str(out)  # stdout: the one document, as before
