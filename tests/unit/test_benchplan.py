"""The benchmark plan: defaults from the hosts' NeuronCores, and out-of-range input refused."""

from __future__ import annotations

import pytest

from infprov.floor.errors import UsageError
from infprov.provision import benchplan


def test_defaults_follow_the_instance_type() -> None:
    plan = benchplan.plan("inf1.6xlarge")
    assert plan.model == "rn50-16neuroncores-default" and plan.neuron_cores == 16
    assert [(p.batch_size, p.threads) for p in plan.points] == [(16, 2)]
    small = benchplan.plan("inf1.xlarge")
    assert small.model == "rn50-4neuroncores-default" and [p.batch_size for p in small.points] == [4]


def test_defaults_follow_the_cores_recorded_for_the_hosts() -> None:
    plan = benchplan.plan("inf1.xlarge", neuron_cores=16)
    assert plan.model == "rn50-16neuroncores-default" and plan.neuron_cores == 16
    assert [p.batch_size for p in plan.points] == [16]
    with pytest.raises(UsageError, match="smaller than the 16 NeuronCores of these hosts") as exc:
        benchplan.plan("inf1.xlarge", neuron_cores=16, batch_size=8)
    assert "--batch-size 16" in exc.value.hint


@pytest.mark.parametrize("batch", [0, -1, 100_000])
def test_batch_out_of_range_is_refused_zero_included(batch: int) -> None:
    with pytest.raises(UsageError, match=f"batch size {batch} is out of range"):
        benchplan.plan("inf1.xlarge", batch_size=batch, allow_small_batch=True)


def test_small_batch_refused_unless_allowed() -> None:
    with pytest.raises(UsageError, match="smaller than the 16 NeuronCores of inf1.6xlarge"):
        benchplan.plan("inf1.6xlarge", batch_size=4)
    allowed = benchplan.plan("inf1.6xlarge", batch_size=4, allow_small_batch=True)
    assert [p.batch_size for p in allowed.points] == [4]


# issue 26, item 1: load control beyond threads in the sweep spec
def test_sweep_ranges_concurrency_and_rates() -> None:
    assert benchplan.parse_sweep(["batch=4:16:4 concurrency=1:3", "rate=50:150:50"]) == {
        "batch": [4, 8, 12, 16], "threads": [1, 2, 3], "rate": [50.0, 100.0, 150.0]}
    plan = benchplan.plan("inf1.xlarge", sweep=["threads=1,2 rate=20,40.5"])
    assert [(p.batch_size, p.threads, p.rate) for p in plan.points] == [
        (4, 1, 20.0), (4, 1, 40.5), (4, 2, 20.0), (4, 2, 40.5)]
    assert plan.points[1].describe() == "batch 4, 1 thread(s), 40.5 requests/s"
    one = benchplan.plan("inf1.xlarge", request_rate=25.0)
    assert [(p.threads, p.rate) for p in one.points] == [(2, 25.0)]
    assert benchplan.plan("inf1.xlarge").points[0].rate is None


@pytest.mark.parametrize(("spec", "rate", "tool", "message"), [
    (["threads=4:2"], None, "client", "START <= END"),
    (["threads=1:2:0"], None, "client", "STEP above 0"),
    (["threads=1:2:3:4"], None, "client", "START:END or START:END:STEP"),
    (["threads=1.5"], None, "client", "whole numbers"),
    (["threads=1 concurrency=2"], None, "client", "given twice"),
    (["threads=1:64 batch=4:64"], None, "client", "makes 3904 points"),
    (["rate=1:100000:1"], None, "client", "makes 100000 values"),
    (["rate=0"], None, "client", "request rate 0 is out of range"),
    ([], 200_000.0, "client", "request rate 200000 is out of range"),
])
def test_bad_load_specs_are_one_clear_line(spec: list[str], rate: float | None, tool: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        benchplan.plan("inf1.xlarge", sweep=spec, request_rate=rate, tool=tool)


def test_the_client_is_told_the_rate() -> None:
    from infprov.provision import bench

    plan = benchplan.plan("inf1.xlarge", request_rate=25.0)
    cmd = bench._client_command(plan, plan.points[0], "n", "/r/p.json")
    assert "--request_rate 25 " in cmd and "--num_threads 2 " in cmd
    assert "--request_rate" not in bench._client_command(plan, benchplan.Point(4, 2), "n", "/r/p.json")
