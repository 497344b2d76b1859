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
