"""The IAM policy in the repository allows every EC2 call infprov makes, names only real actions,
and grants changes only on what infprov tagged."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from infprov.provision import iam
from infprov.provision.cli import app
from tests.conftest import EC2_CALLS
from tests.unit.test_iam_policy import (
    _static_calls,
    runner,
)


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
        for argv in (["up", "--sandbox", "--type", "inf1.xlarge", "--name", "iam", "--yes", "--skip-server",
                      "--idle-stop", "30m"],
                     ["status", "--name", "iam"], ["stop", "iam"], ["start", "iam", "--yes", "--skip-server"],
                     ["teardown", "--name", "iam", "--yes"]):
            result = runner.invoke(app, argv)
            assert result.exit_code == 0, result.output

    calls = _ec2_calls_of(run)
    assert {"ec2:RunInstances", "ec2:TerminateInstances", "ec2:DescribeInstances", "ec2:StopInstances",
            "ec2:StartInstances", "ec2:ModifyInstanceAttribute"} <= calls
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
# Every resource type RunInstances authorizes in infprov's launches; the first six always, the spot
# request with --spot. (The SAR lists more, optional ones: launch templates, placement groups, ...)


