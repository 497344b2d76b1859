"""Ctrl-C and commands racing on the sandbox: an `up`, a `bench` or a `teardown` interrupted, two `up`s of one
cluster at once, a `teardown` while `up` runs; each ends where `up` again converges and `teardown` leaves nothing
(see tests/sandbox/test_faults.py)."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from tests.faultkit import (
    CLIENT_THREADS,
    MODEL,
    TYPE,
    Run,
    _containers,
    _converges_then_clean,
    _host_of,
    _inventory_hosts,
    _tagged,
    _up,
)
from tests.procs import served_on_host, wait_until

pytestmark = [pytest.mark.sandbox, pytest.mark.faults]


# ---------------------------------------------------------------- Ctrl-C


def test_ctrl_c_while_the_instance_comes_up(home: Path) -> None:
    run = Run("up", "--sandbox", "--type", TYPE, "--name", "f-int-up", "--yes")
    try:
        run.wait_for("launched i-")
        run.send(signal.SIGINT)
        assert run.finish() == 130, run.err
        assert "Traceback" not in run.err
        assert "infprov up --type inf1.xlarge --name f-int-up --sandbox` again to continue" in run.err
    finally:
        run.kill()
    _converges_then_clean("f-int-up")


def test_ctrl_c_during_bench_keeps_partial_results_and_leaves_no_client_running(home: Path, tmp_path: Path) -> None:
    doc = _up("f-int-bench")
    host = _host_of(doc["server"]["hosts"][0]["instance_id"])
    out = tmp_path / "bench"
    run = Run("bench", "--name", "f-int-bench", "--limit", "60", "--warmup", "0", "--out", str(out),
              "--verbose")  # the client's own lines show, among them the one that says its measurement began
    try:
        run.wait_for("Measuring in windows")  # the warm-up is over: the client's measurement has begun
        iid = doc["server"]["hosts"][0]["instance_id"]
        base = served_on_host(iid, MODEL)
        # no warm-up (--warmup 0), so every answer now is measured; more answers than the client has threads: one
        # thread then had two answered, so the client took in the first before it sent the second
        wait_until("requests answered after the measurement began",
                   lambda: served_on_host(iid, MODEL) > base + CLIENT_THREADS)
        run.send(signal.SIGINT)
        assert run.finish(90) == 1, run.err
    finally:
        run.kill()
    assert "partial" in run.err and "Traceback" not in run.err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["partial"] is True
    [point] = summary["hosts"][0]["points"]
    assert point["partial"] is True and point["requests"] > 0
    assert _containers(host) == [("infprov-triton", "running")], "the benchmark client was left on the host"
    _converges_then_clean("f-int-bench")


def test_ctrl_c_during_teardown(home: Path) -> None:
    doc = _up("f-int-down")
    host = _host_of(doc["server"]["hosts"][0]["instance_id"])
    run = Run("teardown", "--sandbox", "--name", "f-int-down", "--yes")
    try:
        run.wait_for("terminating i-")
        run.send(signal.SIGINT)
        assert run.finish() == 130, run.err
        assert "Traceback" not in run.err
    finally:
        run.kill()
    _converges_then_clean("f-int-down", (host,))


# ---------------------------------------------------------------- runs that meet


def test_two_ups_of_one_cluster_at_once(home: Path) -> None:
    runs = [Run("up", "--sandbox", "--type", TYPE, "--name", "f-twice", "--yes", "--json") for _ in range(2)]
    try:
        codes = [r.finish(300) for r in runs]
    finally:
        for r in runs:
            r.kill()
    assert codes == [0, 0], "\n".join(r.err for r in runs)
    docs = [json.loads(r.out) for r in runs]
    assert {d["server"]["hosts"][0]["instance_id"] for d in docs} == set(_tagged("f-twice")["instances"])
    assert sum(len(d["launched"]) for d in docs) == 1
    _converges_then_clean("f-twice")


def test_teardown_while_up_runs_leaves_nothing_running(home: Path) -> None:
    up = Run("up", "--sandbox", "--type", TYPE, "--name", "f-race", "--yes")
    try:
        up.wait_for("provisioning Triton")
        host = _host_of(up.instance_id())
        down = Run("teardown", "--sandbox", "--name", "f-race", "--yes", "--json")
        assert down.finish(300) == 0, down.err
        code = up.finish(300)
    finally:
        up.kill()
    assert code in (0, 1) and "Traceback" not in up.err, up.err
    assert json.loads(down.out)["leftovers"] == []
    assert _tagged("f-race") == {"instances": [], "security_groups": [], "volumes": []}
    assert _inventory_hosts("f-race") == []
    assert _containers(host) == [], "a server container outlived the teardown"
    _converges_then_clean("f-race", (host,))
