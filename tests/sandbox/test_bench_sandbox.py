"""`infprov bench` on the sandbox: the client in the SDK container, results that come home consistent."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from infprov.provision.cli import app
from tests.procs import Child, served_on_host, wait_until

pytestmark = pytest.mark.sandbox
runner = CliRunner()
CLUSTER = "benchtest"
CLIENT_THREADS = 2  # bench's default --threads
MODEL = "rn50-16neuroncores-default"  # what an inf1.6xlarge serves


@pytest.fixture(scope="module")
def cluster(sandbox_hosts: list[dict[str, Any]], _shared_home: Path) -> Iterator[Any]:
    """One inf1.6xlarge cluster for this module's benchmarks, which only read it (each run leaves the server as it
    found it); torn down after the last of them, on failure too."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("INFPROV_HOME", str(_shared_home))
        try:
            up = runner.invoke(app, ["up", "--sandbox", "--type", "inf1.6xlarge", "--name", CLUSTER, "--yes",
                                     "--json"])
            assert up.exit_code == 0, up.output
            yield json.loads(up.stdout)
        finally:
            down = runner.invoke(app, ["teardown", "--sandbox", "--name", CLUSTER, "--yes"])
            assert down.exit_code == 0, down.output


def test_bench_results_consistent(cluster: Any, tmp_path: Path) -> None:
    out = tmp_path / "run"
    res = runner.invoke(app, ["bench", "--name", CLUSTER, "--limit", "3", "--threads", "2", "--out", str(out),
                              "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    [host] = summary["hosts"]
    assert host["error"] == ""
    [point] = host["points"]
    assert point["model"] == "rn50-16neuroncores-default" and point["batch_size"] == 16 and point["threads"] == 2
    assert point["errors"] == 0 and point["requests"] > 0
    assert point["requests"] == sum(t["requests"] for t in point["per_thread"])
    lat = point["latency_ms"]
    assert lat["p50"] <= lat["p75"] <= lat["p90"] <= lat["p95"] <= lat["p99"]
    expected = point["requests"] * point["batch_size"] / point["duration_s"]
    assert point["images_per_s"] == pytest.approx(expected, rel=0.01)
    m = point["manifest"]
    assert m["instance_type"] == "inf1.6xlarge" and m["python_backend_ref"] == "r22.04"
    assert m["image"] == "nvcr.io/nvidia/tritonserver:22.04-py3-sdk" and m["started_at"]
    assert point["usd_per_million_images"] == pytest.approx(1.18 / (point["images_per_s"] * 3600) * 1e6, rel=1e-6)
    hdir = out / host["instance_id"]
    on_disk = json.loads((hdir / "results.json").read_text())
    assert on_disk["requests"] == point["requests"]
    rows = list(csv.DictReader((hdir / "results.csv").open()))
    assert len(rows) == 1 and int(rows[0]["requests"]) == point["requests"]
    raw = (hdir / "output-0.txt").read_text()
    assert "##### WARMUP COMPLETE, NOW DO BENCHMARK #####" in raw and "Thread 0 Throughput per second:" in raw
    # the run's folder on the host is gone once its results are home: runs do not pile up (issue 25, item 9)
    from tests.hostshell import on_host

    assert on_host(host["instance_id"], "ls -A ~/infprov-bench 2>/dev/null || true") == ""


def test_bench_sweep_writes_rows_and_plot(cluster: Any, tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    res = runner.invoke(app, ["bench", "--name", CLUSTER, "--limit", "2", "--sweep", "batch=16,32 threads=1,2",
                              "--out", str(out), "--p99", "10s", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    [host] = doc["hosts"]
    assert doc["budget_p99_ms"] == 10_000 and doc["plot"] == str(out / "sweep.png")
    assert [(p["batch_size"], p["threads"]) for p in host["points"]] == [(16, 1), (16, 2), (32, 1), (32, 2)]
    rows = list(csv.DictReader((out / host["instance_id"] / "results.csv").open()))
    assert len(rows) == 4
    png = out / "sweep.png"
    assert png.exists() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_bad_inputs(cluster: Any) -> None:
    small = runner.invoke(app, ["bench", "--name", CLUSTER, "--batch-size", "4"])
    assert small.exit_code == 2 and "16 NeuronCores" in small.stderr
    zero = runner.invoke(app, ["bench", "--name", CLUSTER, "--batch-size", "0"])
    assert zero.exit_code == 2 and "batch size 0 is out of range" in zero.stderr
    threads = runner.invoke(app, ["bench", "--name", CLUSTER, "--threads", "0"])
    assert threads.exit_code == 2 and "threads 0 is out of range" in threads.stderr
    unknown = runner.invoke(app, ["bench", "--name", CLUSTER, "--model", "nope", "--limit", "1"])
    assert unknown.exit_code == 1
    assert "model 'nope' is not loaded" in unknown.stderr and "rn50-16neuroncores-default" in unknown.stderr
    nohost = runner.invoke(app, ["bench", "--host", "10.9.9.9"])
    assert nohost.exit_code == 2 and "no host '10.9.9.9'" in nohost.stderr


def test_interrupted_bench_keeps_what_was_measured(cluster: Any, tmp_path: Path) -> None:
    out = tmp_path / "interrupted"
    iid = cluster["server"]["hosts"][0]["instance_id"]
    # --verbose: the client's own lines show, among them the one that says its measurement began
    run = Child.infprov("bench", "--name", CLUSTER, "--limit", "60", "--warmup", "0", "--out", str(out), "--verbose")
    try:
        run.wait_for("Measuring in windows")  # the client's warm-up is over: its measurement has begun
        base = served_on_host(iid, MODEL)
        # no warm-up (--warmup 0), so every answer now is measured; more answers than the client has threads: one
        # thread then had two answered, so the client took in the first before it sent the second
        wait_until("requests answered after the measurement began",
                   lambda: served_on_host(iid, MODEL) > base + CLIENT_THREADS)
        run.send(signal.SIGINT)
        code = run.finish(120)
    finally:
        run.kill()
    assert code == 1, run.out + run.err
    assert "interrupted" in run.err and "partial" in run.err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["partial"] is True
    [host] = summary["hosts"]
    [point] = host["points"]
    assert point["partial"] is True and point["requests"] > 0 and point["duration_s"] < 60
    assert json.loads((out / host["instance_id"] / "results.json").read_text())["partial"] is True


def test_bench_with_perf_analyzer_keeps_its_csv(cluster: Any, tmp_path: Path) -> None:
    out = tmp_path / "pa"
    res = runner.invoke(app, ["bench", "--name", CLUSTER, "--tool", "perf_analyzer", "--limit", "4", "--out", str(out),
                              "--json"])
    assert res.exit_code == 0, res.output
    [host] = json.loads(res.stdout)["hosts"]
    [point] = host["points"]
    assert point["manifest"]["tool"] == "perf_analyzer"
    assert point["images_per_s"] > 0 and point["requests"] > 0
    assert point["images_per_s"] == pytest.approx(point["requests_per_s"] * 16)
    lat = point["latency_ms"]
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p95"] <= lat["p99"] and lat["mean"] > 0
    kept = (out / host["instance_id"] / "perf_analyzer-0.csv").read_text()
    assert kept.startswith("Concurrency,Inferences/Second")


def test_an_inf1_xlarge_shows_one_device_and_bench_follows_it(sandbox_hosts: list[dict[str, Any]],
                                                               cluster_home: Path, tmp_path: Path) -> None:
    """An inf1.xlarge on a sandbox host: the host shows its one /dev/neuron0, as the instance would, the
    server names its model after 4 cores, and bench's defaults (model, batch) follow."""
    up = runner.invoke(app, ["up", "--sandbox", "--type", "inf1.xlarge", "--name", "benchxl", "--yes", "--json"])
    try:
        assert up.exit_code == 0, up.output
        [ready] = json.loads(up.stdout)["server"]["hosts"]
        assert ready["model"] == "rn50-4neuroncores-default"
        devices = subprocess.run([sys.executable, "-m", "infprov.provision.cli", "ssh", "--name", "benchxl", "--",
                                  "ls", "/dev/"], capture_output=True, text=True, timeout=60)
        assert devices.returncode == 0, devices.stderr
        assert [d for d in devices.stdout.split() if d.startswith("neuron")] == ["neuron0"]
        res = runner.invoke(app, ["bench", "--name", "benchxl", "--limit", "2", "--out", str(tmp_path / "r"), "--json"])
        assert res.exit_code == 0, res.output
        [host] = json.loads(res.stdout)["hosts"]
        [point] = host["points"]
        assert point["model"] == "rn50-4neuroncores-default" and point["batch_size"] == 4
        assert point["manifest"]["instance_type"] == "inf1.xlarge" and point["requests"] > 0
    finally:
        down = runner.invoke(app, ["teardown", "--sandbox", "--name", "benchxl", "--yes"])
        assert down.exit_code == 0, down.output
    from infprov.sandbox import core

    # a freed host is back to the devices it was built with, as a fresh instance would find it
    assert {h["neuron_devices"] for h in core.status()["hosts"]} == {core.NEURON_DEVICES}


def _interrupted_sweep(out: Path, iid: str, at_point: int, signals: int, mid_point: bool) -> tuple[int, Child, int]:
    """A 4-point sweep (batch 16, threads 1-4), SIGINT once or twice as point `at_point` runs (mid_point:
    after its client has had answers; else as soon as infprov announces the point). Returns the exit code,
    the run, and how many points had finished when the first SIGINT went."""
    run = Child.infprov("bench", "--name", CLUSTER, "--limit", "2", "--sweep", "batch=16 threads=1,2,3,4",
                        "--out", str(out), "--verbose")  # --verbose: the client's "Measuring in windows" shows
    try:
        run.wait_for(f"point {at_point}/4")
        if mid_point:
            run.wait_for("Measuring in windows", count=at_point)  # this point's warm-up is over
            base = served_on_host(iid, MODEL)
            wait_until("answers in this point", lambda: served_on_host(iid, MODEL) > base + at_point)
        run.send(signal.SIGINT)
        if signals > 1:
            run.wait_for("Ctrl-C: stopping the clients")
            run.send(signal.SIGINT)
        code = run.finish(180)
    finally:
        run.kill()
    return code, run, at_point - 1


@pytest.mark.parametrize("at_point,signals,mid_point", [(1, 1, True), (3, 1, True), (2, 2, False), (4, 2, True)])
def test_ctrl_c_during_a_sweep_keeps_every_finished_point(cluster: Any, tmp_path: Path, at_point: int,
                                                          signals: int, mid_point: bool) -> None:
    """Issue 26, item 2: a sweep interrupted at several moments, synchronised on the points it announces
    and on the answers the server counts: summary.json holds every finished point (marked partial), one
    "interrupted" line says where, and the table and "saved in" line survive a second Ctrl-C."""
    iid = cluster["server"]["hosts"][0]["instance_id"]
    out = tmp_path / f"sweep-{at_point}-{signals}"
    code, run, finished = _interrupted_sweep(out, iid, at_point, signals, mid_point)
    assert code == 1, run.out + run.err
    said = [line for line in run.err_lines if "interrupted" in line]
    assert len(said) == 1 and str(out) in said[0] and "partial" in said[0], run.err
    assert "Traceback" not in run.err
    assert f"saved in {out}" in run.out and "(partial)" in run.out, run.out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["partial"] is True and summary["running"] is False
    [host] = summary["hosts"]
    assert host["error"] == "" and host["partial"] is True
    points = host["points"]
    assert [p["threads"] for p in points[:finished]] == list(range(1, finished + 1))
    assert all(p["partial"] is False and p["requests"] > 0 for p in points[:finished])
    # the point in flight: kept (partial) if its client measured something, else left out
    assert len(points) in (finished, finished + 1)
    if mid_point:
        assert len(points) == finished + 1 and points[-1]["partial"] is True and points[-1]["requests"] > 0
    assert not any(f"point {n}/4" in run.err for n in range(at_point + 1, 5))
    on_disk = json.loads((out / host["instance_id"] / "results.json").read_text())
    assert len(on_disk.get("points", [on_disk])) == len(points)


def test_bench_request_rate_points(cluster: Any, tmp_path: Path) -> None:
    """Issue 26, item 1: rate= in the sweep puts the client in request-rate mode on the host: each point says
    the rate asked, and a paced client never sends ahead of its schedule."""
    out = tmp_path / "rate"
    res = runner.invoke(app, ["bench", "--name", CLUSTER, "--limit", "2", "--threads", "2", "--sweep", "rate=10,20",
                              "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    [host] = json.loads(res.stdout)["hosts"]
    assert [(p["load"]["mode"], p["load"]["request_rate"]) for p in host["points"]] == [("rate", 10), ("rate", 20)]
    for p in host["points"]:
        assert p["requests_per_s"] > 0, p
        # paced from the measurement's start: over all its windows, never more answers than the schedule sent
        # (+1 for the first send). The reported windows alone may hold more, on a busy host: sends that went
        # late in an earlier window catch up with their schedule in a later one.
        total_s = len(p["windows"]) * p["stability"]["window_s"]
        assert sum(w["requests"] for w in p["windows"]) <= p["load"]["request_rate"] * total_s + 1, p
    rows = list(csv.DictReader((out / host["instance_id"] / "results.csv").open()))
    assert [float(r["request_rate"]) for r in rows] == [10.0, 20.0]
    assert [e["request_rate"] for e in map(json.loads, res.stderr.splitlines()) if e["event"] == "point"] == [10, 20]
