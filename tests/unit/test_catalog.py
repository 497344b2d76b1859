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


def test_unknown_neuron_types_are_refused_with_the_list() -> None:
    for name in ("trn2.48xlarge", "inf2.2xlarge", "trn1n.32xlarge"):
        with pytest.raises(UsageError) as err:
            catalog.get(name)
        assert "unknown instance type" in err.value.message
        for listed in ("inf1.6xlarge", "inf2.xlarge", "trn1.32xlarge"):
            assert listed in err.value.hint


@pytest.mark.parametrize(
    ("name", "chips", "cores", "vcpus", "gib", "usd"),
    [
        ("inf2.xlarge", 1, 2, 4, 16, 0.7582),
        ("inf2.8xlarge", 1, 2, 32, 128, 1.9679),
        ("inf2.24xlarge", 6, 12, 96, 384, 6.4906),
        ("inf2.48xlarge", 12, 24, 192, 768, 12.9813),
        ("trn1.2xlarge", 1, 2, 8, 32, 1.3438),
        ("trn1.32xlarge", 16, 32, 128, 512, 21.50),
    ],
)
def test_neuron_v2_types(name: str, chips: int, cores: int, vcpus: int, gib: int, usd: float) -> None:
    t = catalog.get(name)
    assert (t.neuron_devices, t.neuron_cores, t.vcpus, t.memory_gib) == (chips, cores, vcpus, gib)
    assert t.generation == catalog.NEURON_V2 and not t.splits_batch
    assert catalog.hourly_price(name, "us-east-1") == usd
    assert catalog.hourly_price(name, "eu-west-1") is None
    assert catalog.core_range(name) == f"0:{cores - 1}"


def test_inf1_stays_neuron_v1() -> None:
    t = catalog.get("inf1.6xlarge")
    assert t.generation == catalog.NEURON_V1 and t.splits_batch and t.neuron_cores == 16 and t.family == "inf1"


def test_storage_is_priced_only_where_the_catalog_knows_it() -> None:
    """A stopped cluster's cost is its kept EBS (issue 25, item 12): gp3 in us-east-1, nothing guessed elsewhere."""
    from infprov.provision import catalog

    assert catalog.storage_price("gp3", "us-east-1") == 0.08
    assert catalog.storage_price("gp3", "eu-west-3") is None
    assert catalog.storage_price("io2", "us-east-1") is None


def test_instance_storage_sums_each_instances_volumes_and_refuses_odd_sizes() -> None:
    from infprov.provision import cloud

    class Volumes:
        region = "us-east-1"

        def volumes(self, filters: object) -> list[dict[str, object]]:
            return [
                {"Size": 150, "VolumeType": "gp3", "Attachments": [{"InstanceId": "i-1"}]},
                {"Size": 50, "VolumeType": "gp3", "Attachments": [{"InstanceId": "i-1"}]},
                {"Size": 10, "VolumeType": "io2", "Attachments": [{"InstanceId": "i-2"}]},
                {"Size": "9e9", "VolumeType": "gp3", "Attachments": [{"InstanceId": "i-3"}]},
                {"Size": -1, "VolumeType": "gp3", "Attachments": [{"InstanceId": "i-3"}]},
                {"Size": 8, "VolumeType": "gp3", "Attachments": []},
            ]

    found = cloud.instance_storage(Volumes(), {})  # type: ignore[arg-type]
    assert found == {"i-1": (200, 16.0), "i-2": (10, None)}
