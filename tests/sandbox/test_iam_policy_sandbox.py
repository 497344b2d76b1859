"""The IAM policy in the repository allows every EC2 call infprov makes, names only real actions,
and grants changes only on what infprov tagged."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from infprov.provision import iam
from infprov.provision.cli import app
from tests.conftest import EC2_CALLS

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def _static_calls() -> set[str]:
    """Every EC2 operation the code names in its one call path (Ec2Provider._call/_pages/_invoke)."""
    source = "\n".join(p.read_text() for p in (ROOT / "provision").rglob("*.py"))
    ops = set(re.findall(r'(?:_call|_pages)\(\s*"([a-z_]+)"', source))
    ops |= set(re.findall(r'_invoke\(\s*[\w.]+,\s*"([a-z_]+)"', source))
    return {iam.action_of(op) for op in ops}


def _ec2_calls_of(fn: Any) -> set[str]:
    before = set(EC2_CALLS)
    EC2_CALLS.clear()
    try:
        fn()
        return set(EC2_CALLS)
    finally:
        EC2_CALLS.update(before)


@pytest.mark.sandbox
def test_the_calls_a_real_run_makes_are_in_the_policy(sandbox_hosts: list[dict[str, Any]],
                                                      cluster_home: Path) -> None:
    """Recorded by botocore's before-call hook while `up`, `status` and `teardown` run against the
    sandbox's EC2 endpoint (the conftest checks the whole test run's calls the same way at its end)."""

    def run() -> None:
        for argv in (["up", "--sandbox", "--type", "inf1.xlarge", "--name", "iam", "--yes", "--skip-server"],
                     ["status", "--name", "iam"], ["teardown", "--name", "iam", "--yes"]):
            result = runner.invoke(app, argv)
            assert result.exit_code == 0, result.output

    calls = _ec2_calls_of(run)
    assert {"ec2:RunInstances", "ec2:TerminateInstances", "ec2:DescribeInstances"} <= calls
    assert calls <= iam.actions(), sorted(calls - iam.actions())
    assert calls <= _static_calls(), sorted(calls - _static_calls())  # the static scan misses none of them


# ---------------------------------------------------------------- what RunInstances is allowed to launch
#
# EC2 authorizes RunInstances once per resource the launch uses or makes (the instance, its volumes and
# network interface, the image, subnet, security groups and key pair), each against that resource's ARN
# and condition keys, and the launch goes ahead only if every one is allowed. With TagSpecifications it
# also authorizes ec2:CreateTags on each resource tagged at launch, with ec2:CreateAction = RunInstances.
# Sources: the Service Authorization Reference, "Actions, resources, and condition keys for Amazon EC2"
# (https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonec2.html), and the EC2
# User Guide's "Example policies to control access the Amazon EC2 API"
# (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/ExamplePolicies_EC2.html).
#
# The condition keys the Service Authorization Reference lists for each resource type RunInstances
# authorizes (its resource types table; as cfn-lint 1.51.0's data/AdditionalSpecs/Policies.json, which
# is taken from that reference, records them). A policy key a resource type does not have is never in
# that resource's request context: a condition on it could never hold (or, under Null, always would).
SAR_RESOURCE_KEYS: dict[str, frozenset[str]] = {
    "instance": frozenset({
        "aws:RequestTag/${TagKey}", "aws:ResourceTag/${TagKey}", "aws:TagKeys", "ec2:Attribute",
        "ec2:Attribute/${AttributeName}", "ec2:AvailabilityZone", "ec2:AvailabilityZoneId", "ec2:CpuOptionsAmdSevSnp",
        "ec2:EbsOptimized", "ec2:InstanceAutoRecovery", "ec2:InstanceBandwidthWeighting", "ec2:InstanceID",
        "ec2:InstanceMarketType", "ec2:InstanceMetadataTags", "ec2:InstanceProfile", "ec2:InstanceType",
        "ec2:IsLaunchTemplateResource", "ec2:LaunchTemplate", "ec2:ManagedResourceOperator", "ec2:MetadataHttpEndpoint",
        "ec2:MetadataHttpPutResponseHopLimit", "ec2:MetadataHttpTokens", "ec2:NewInstanceProfile", "ec2:PlacementGroup",
        "ec2:ProductCode", "ec2:Region", "ec2:ResourceTag/${TagKey}", "ec2:RootDeviceType", "ec2:Tenancy",
    }),
    "volume": frozenset({
        "aws:RequestTag/${TagKey}", "aws:ResourceTag/${TagKey}", "aws:TagKeys", "ec2:Attribute",
        "ec2:Attribute/${AttributeName}", "ec2:AvailabilityZone", "ec2:AvailabilityZoneId", "ec2:Encrypted",
        "ec2:IsLaunchTemplateResource", "ec2:KmsKeyId", "ec2:LaunchTemplate", "ec2:ManagedResourceOperator",
        "ec2:ParentSnapshot", "ec2:ParentVolume", "ec2:Region", "ec2:ResourceTag/${TagKey}", "ec2:VolumeID",
        "ec2:VolumeInitializationRate", "ec2:VolumeIops", "ec2:VolumeSize", "ec2:VolumeThroughput", "ec2:VolumeType",
    }),
    "network-interface": frozenset({
        "aws:RequestTag/${TagKey}", "aws:ResourceTag/${TagKey}", "aws:TagKeys", "ec2:AssociatePublicIpAddress",
        "ec2:Attribute", "ec2:Attribute/${AttributeName}", "ec2:AuthorizedService", "ec2:AuthorizedUser",
        "ec2:AvailabilityZone", "ec2:IsLaunchTemplateResource", "ec2:LaunchTemplate", "ec2:ManagedResourceOperator",
        "ec2:NetworkInterfaceID", "ec2:Permission", "ec2:Region", "ec2:ResourceTag/${TagKey}", "ec2:Subnet", "ec2:Vpc",
    }),
    "security-group": frozenset({
        "aws:RequestTag/${TagKey}", "aws:ResourceTag/${TagKey}", "aws:TagKeys", "ec2:IsLaunchTemplateResource",
        "ec2:LaunchTemplate", "ec2:Region", "ec2:ResourceTag/${TagKey}", "ec2:SecurityGroupID", "ec2:Vpc",
    }),
    "subnet": frozenset({
        "aws:RequestTag/${TagKey}", "aws:ResourceTag/${TagKey}", "aws:TagKeys", "ec2:Attribute",
        "ec2:Attribute/${AttributeName}", "ec2:AvailabilityZone", "ec2:AvailabilityZoneId", "ec2:Ipv4IpamPoolId",
        "ec2:Ipv6IpamPoolId", "ec2:IsLaunchTemplateResource", "ec2:LaunchTemplate", "ec2:Region",
        "ec2:ResourceTag/${TagKey}", "ec2:SubnetID", "ec2:Vpc",
    }),
    "key-pair": frozenset({
        "aws:RequestTag/${TagKey}", "aws:ResourceTag/${TagKey}", "aws:TagKeys", "ec2:IsLaunchTemplateResource",
        "ec2:KeyPairName", "ec2:KeyPairType", "ec2:LaunchTemplate", "ec2:Region", "ec2:ResourceTag/${TagKey}",
    }),
    "image": frozenset({
        "aws:RequestTag/${TagKey}", "aws:ResourceTag/${TagKey}", "aws:TagKeys", "ec2:Attribute",
        "ec2:Attribute/${AttributeName}", "ec2:ImageID", "ec2:ImageType", "ec2:IsLaunchTemplateResource",
        "ec2:LaunchTemplate", "ec2:Owner", "ec2:Public", "ec2:Region", "ec2:ResourceTag/${TagKey}",
        "ec2:RootDeviceType",
    }),
    "spot-instances-request": frozenset({
        "aws:RequestTag/${TagKey}", "aws:ResourceTag/${TagKey}", "aws:TagKeys", "ec2:Region",
        "ec2:ResourceTag/${TagKey}",
    }),
}
# Every resource type RunInstances authorizes in infprov's launches; the first six always, the spot
# request with --spot. (The SAR lists more, optional ones: launch templates, placement groups, ...)
LAUNCH_RESOURCE_TYPES = ("instance", "volume", "network-interface", "security-group", "subnet", "key-pair",
                         "image", "spot-instances-request")

ACCOUNT = "123456789012"


Context = dict[str, str | list[str]]


Authorization = tuple[str, str, Context]


