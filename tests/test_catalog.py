"""The Inf1 catalog: sizes, Neuron devices, NeuronCore ranges, model names, prices and refusals."""

from __future__ import annotations

import pytest

from infprov.floor.errors import UsageError
from infprov.provision import catalog


@pytest.mark.parametrize(
    ("name", "vcpus", "gib", "devices", "cores", "usd"),
    [
        ("inf1.xlarge", 4, 8, 1, 4, 0.228),
        ("inf1.2xlarge", 8, 16, 1, 4, 0.362),
        ("inf1.6xlarge", 24, 48, 4, 16, 1.18),
        ("inf1.24xlarge", 96, 192, 16, 64, 4.721),
    ],
)
def test_types_match_the_published_table(
    name: str, vcpus: int, gib: int, devices: int, cores: int, usd: float
) -> None:
    t = catalog.get(name)
    assert (t.vcpus, t.memory_gib, t.neuron_devices, t.neuron_cores) == (vcpus, gib, devices, cores)
    assert t.price("us-east-1") == usd


def test_core_range_is_inclusive_over_all_cores() -> None:
    assert catalog.core_range("inf1.6xlarge") == "0:15"
    assert catalog.core_range("inf1.xlarge") == "0:3"
    assert catalog.core_range("inf1.24xlarge") == "0:63"


def test_model_name_counts_the_cores() -> None:
    assert catalog.model_name("inf1.6xlarge") == "rn50-16neuroncores-default"
    assert catalog.model_name("inf1.2xlarge") == "rn50-4neuroncores-default"


def test_unknown_region_price_is_none_not_a_guess() -> None:
    assert catalog.hourly_price("inf1.6xlarge", "ap-south-2") is None
    assert catalog.hourly_price("inf1.6xlarge", "us-west-2") == 1.18


def test_lookup_tolerates_case_and_spaces() -> None:
    assert catalog.get(" INF1.xlarge ").name == "inf1.xlarge"


def test_unknown_type_lists_the_valid_ones() -> None:
    with pytest.raises(UsageError) as err:
        catalog.get("m5.large")
    assert err.value.exit_code == 2
    assert "m5.large" in err.value.message
    for name in catalog.names():
        assert name in err.value.hint


def test_other_neuron_generations_are_refused_by_name() -> None:
    with pytest.raises(UsageError) as err:
        catalog.get("inf2.xlarge")
    assert "not an Inf1 type" in err.value.message
    assert "inf1.6xlarge" in err.value.hint
