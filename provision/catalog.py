"""The Inf1 instance types infprov drives: the one place sizes, Neuron devices and prices live."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from infprov.floor.errors import UsageError

CORES_PER_DEVICE = 4  # each Inferentia chip has four NeuronCore-v1


@dataclass(frozen=True)
class InstanceType:
    """One Inf1 size. prices: on-demand USD per hour by region, only where known."""

    name: str
    vcpus: int
    memory_gib: int
    neuron_devices: int  # Inferentia chips = /dev/neuron0..N-1
    prices: Mapping[str, float] = field(default_factory=dict)

    @property
    def neuron_cores(self) -> int:
        return self.neuron_devices * CORES_PER_DEVICE

    def price(self, region: str) -> float | None:
        """On-demand USD per hour in region, or None where the catalog does not know it."""
        return self.prices.get(region)


def _prices(usd: float) -> Mapping[str, float]:
    # The three big US regions list Inf1 at the same on-demand rate; other regions differ and are
    # left unknown rather than guessed (the Pricing API is the place to look them up).
    return MappingProxyType({"us-east-1": usd, "us-east-2": usd, "us-west-2": usd})


TYPES: Mapping[str, InstanceType] = MappingProxyType(
    {
        t.name: t
        for t in (
            InstanceType("inf1.xlarge", 4, 8, 1, _prices(0.228)),
            InstanceType("inf1.2xlarge", 8, 16, 1, _prices(0.362)),
            InstanceType("inf1.6xlarge", 24, 48, 4, _prices(1.18)),
            InstanceType("inf1.24xlarge", 96, 192, 16, _prices(4.721)),
        )
    }
)


def names() -> list[str]:
    return list(TYPES)


def get(instance_type: str) -> InstanceType:
    """The catalog entry, or a UsageError that lists the valid types."""
    entry = TYPES.get(instance_type.strip().lower())
    if entry is not None:
        return entry
    valid = ", ".join(TYPES)
    if instance_type.lower().startswith(("inf2.", "trn1.", "trn1n.", "trn2.")):
        raise UsageError(
            f"{instance_type} is not an Inf1 type: infprov runs Triton 22.04 on Inferentia 1 only",
            f"choose one of {valid}",
        )
    raise UsageError(f"unknown instance type {instance_type!r}", f"choose one of {valid}")


def core_range(instance_type: str) -> str:
    """The inclusive NeuronCore range gen_triton_model.py takes, e.g. '0:15' for 16 cores."""
    return f"0:{get(instance_type).neuron_cores - 1}"


def model_name(instance_type: str) -> str:
    """The Triton model name for this type, e.g. 'rn50-16neuroncores-default'."""
    return model_for_cores(get(instance_type).neuron_cores)


def model_for_cores(cores: int) -> str:
    """The Triton model name server.yml gives a host with this many NeuronCores."""
    return f"rn50-{cores}neuroncores-default"


def hourly_price(instance_type: str, region: str) -> float | None:
    return get(instance_type).price(region)
