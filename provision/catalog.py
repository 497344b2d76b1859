"""The Neuron instance types infprov drives (Inf1; Inf2 and Trn1): the one place sizes, devices and prices live."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from infprov.floor.errors import UsageError

CORES_PER_DEVICE = 4  # each Inferentia chip has four NeuronCore-v1
# Inferentia2 and Trainium chips carry two NeuronCore-v2 each (AWS Neuron docs, "Inferentia2 architecture"
# and "Trainium architecture"); one /dev/neuronN per chip, as on Inf1.
CORES_PER_DEVICE_V2 = 2

# The two Neuron generations: what the server playbook and bench choose from the instance type.
NEURON_V1 = "neuron-v1"  # Inf1: Inferentia, NeuronCore-v1, neuron-cc / tensorflow-neuron, python_backend r22.04
NEURON_V2 = "neuron-v2"  # Inf2, Trn1: Inferentia2 / Trainium, NeuronCore-v2, neuronx-cc / torch-neuronx


@dataclass(frozen=True)
class InstanceType:
    """One Neuron instance size. prices: on-demand USD per hour by region, only where known."""

    name: str
    vcpus: int
    memory_gib: int
    neuron_devices: int  # Neuron chips = /dev/neuron0..N-1
    prices: Mapping[str, float] = field(default_factory=dict)
    generation: str = NEURON_V1

    @property
    def family(self) -> str:
        """inf1, inf2 or trn1: the word AMI descriptions list under "Supported EC2 instances"."""
        return self.name.split(".")[0]

    def vcpu_quota(self, spot: bool = False) -> str:
        """The EC2 vCPU quota (Service Quotas) a launch of this type counts against: Inf1 and Inf2 share the
        Inf quotas, Trn1 has its own (EC2 User Guide, "On-Demand Instance quotas" and "Spot Instance quotas")."""
        letters = {"inf": "Inf", "trn": "Trn"}[self.family.rstrip("0123456789")]
        return f"All {letters} Spot Instance Requests" if spot else f"Running On-Demand {letters} instances"

    @property
    def cores_per_device(self) -> int:
        return CORES_PER_DEVICE if self.generation == NEURON_V1 else CORES_PER_DEVICE_V2

    @property
    def neuron_cores(self) -> int:
        return self.neuron_devices * self.cores_per_device

    @property
    def splits_batch(self) -> bool:
        """Inf1's generated model splits every batch across its cores (so a batch needs one image per
        core); the Neuron v2 model gives each core its own model instance and whole requests."""
        return self.generation == NEURON_V1

    def price(self, region: str) -> float | None:
        """On-demand USD per hour in region, or None where the catalog does not know it."""
        return self.prices.get(region)


def _prices(usd: float) -> Mapping[str, float]:
    # The three big US regions list Inf1 at the same on-demand rate; other regions differ and are
    # left unknown rather than guessed (the Pricing API is the place to look them up).
    return MappingProxyType({"us-east-1": usd, "us-east-2": usd, "us-west-2": usd})


def _us_east_1(usd: float) -> Mapping[str, float]:
    return MappingProxyType({"us-east-1": usd})


TYPES: Mapping[str, InstanceType] = MappingProxyType(
    {
        t.name: t
        for t in (
            InstanceType("inf1.xlarge", 4, 8, 1, _prices(0.228)),
            InstanceType("inf1.2xlarge", 8, 16, 1, _prices(0.362)),
            InstanceType("inf1.6xlarge", 24, 48, 4, _prices(1.18)),
            InstanceType("inf1.24xlarge", 96, 192, 16, _prices(4.721)),
            # Inf2 and Trn1. Chips, vCPUs and host memory (GiB): the Neuron documentation's architecture pages
            # (awsdocs-neuron.readthedocs-hosted.com, general/arch/neuron-hardware/inf2-arch.html: 1/4/16,
            # 1/32/128, 6/96/384, 12/192/768; trn1-arch.html: 1/8/32, 16/128/512), checked this session.
            # On-demand USD per hour in us-east-1: the EC2 On-Demand pricing page (Linux), as remembered, NOT
            # checked this session (no pricing source was reachable); other regions are left unknown.
            InstanceType("inf2.xlarge", 4, 16, 1, _us_east_1(0.7582), NEURON_V2),
            InstanceType("inf2.8xlarge", 32, 128, 1, _us_east_1(1.9679), NEURON_V2),
            InstanceType("inf2.24xlarge", 96, 384, 6, _us_east_1(6.4906), NEURON_V2),
            InstanceType("inf2.48xlarge", 192, 768, 12, _us_east_1(12.9813), NEURON_V2),
            InstanceType("trn1.2xlarge", 8, 32, 1, _us_east_1(1.3438), NEURON_V2),
            InstanceType("trn1.32xlarge", 128, 512, 16, _us_east_1(21.50), NEURON_V2),
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
    raise UsageError(f"unknown instance type {instance_type!r}", f"choose one of {valid}")


def generation(instance_type: str) -> str:
    """NEURON_V1 (Inf1) or NEURON_V2 (Inf2, Trn1) for a catalog type."""
    return get(instance_type).generation


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


# EBS storage, USD per GB-month of provisioned size, by volume type and region (a stopped instance keeps
# billing for its volumes). gp3 (infprov's root volume) in us-east-1: $0.08, from AWS's EBS pricing page
# (aws.amazon.com/ebs/pricing/) as quoted, with that address, by several public repositories' cost code and
# docs found with the search tool on 2026-12-07; the AWS page itself was not read this session. AWS's European
# page (aws.eu/ebs/pricing) confirms the unit: gp3 storage is charged per GB provisioned per month. Other
# regions and types are left unknown rather than guessed.
STORAGE_PRICES: Mapping[str, Mapping[str, float]] = MappingProxyType({
    "gp3": MappingProxyType({"us-east-1": 0.08}),
})
HOURS_PER_MONTH = 730  # AWS's pricing pages count a month as 730 hours


def storage_price(volume_type: str, region: str) -> float | None:
    """USD per GB-month for a volume of this type in region, or None where the catalog does not know it."""
    return STORAGE_PRICES.get(volume_type, {}).get(region)
