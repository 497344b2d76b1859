"""The IAM policy in the repository allows every EC2 call infprov makes, names only real actions,
and grants changes only on what infprov tagged."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from typer.testing import CliRunner

from infprov.provision import iam
from infprov.provision.cli import app
from tests.conftest import EC2_CALLS

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()


def _static_calls() -> set[str]:
    """Every EC2 operation the code names in its one call path (Ec2Provider._call/_pages/_invoke)."""
    source = "\n".join(p.read_text() for p in (ROOT / "provision").rglob("*.py"))
    ops = set(re.findall(r'(?:_call|_pages)\(\s*"([a-z_]+)"', source))
    ops |= set(re.findall(r'_invoke\(\s*[\w.]+,\s*"([a-z_]+)"', source))
    return {iam.action_of(op) for op in ops}


def test_boto3_is_used_through_the_one_provider_only() -> None:
    """The static scan sees every call only if no other module makes its own EC2 client."""
    makers = [p.relative_to(ROOT) for room in ("provision", "sandbox") for p in sorted((ROOT / room).rglob("*.py"))
              if re.search(r"\.client\(\s*[\"']ec2|boto3\.client\(", p.read_text())]
    # the sandbox's endpoint talks to itself (a host that powered off is terminated), never to AWS
    assert makers == [Path("provision/ec2.py"), Path("sandbox/ec2server.py")]
    assert 'endpoint_url=f"http://127.0.0.1:{port}"' in (ROOT / "sandbox/ec2server.py").read_text()
    raw = re.findall(r"self\.(?:launch_)?client\.(\w+)\(", (ROOT / "provision/ec2.py").read_text())
    assert raw == [], raw  # every call goes through _invoke, where the scan finds its name


def test_every_ec2_call_in_the_code_is_in_the_policy() -> None:
    called = _static_calls()
    assert len(called) >= 20 and "ec2:RunInstances" in called
    assert called <= iam.actions(), sorted(called - iam.actions())


def test_the_policy_names_only_real_ec2_actions_and_no_wildcards() -> None:
    model = botocore.session.get_session().get_service_model("ec2")
    actions = iam.actions()
    assert all(a.startswith("ec2:") and "*" not in a for a in actions), actions
    unknown = sorted(a for a in actions if a.split(":", 1)[1] not in model.operation_names)
    assert unknown == []


def test_the_policy_is_least_privilege() -> None:
    """Reads on everything; every change only on resources tagged infprov:managed=true, or made with
    that tag; nothing the code never calls."""
    doc = iam.policy()
    assert doc["Version"] == "2012-10-17"
    needed = _static_calls() | {"ec2:CreateTags"}  # tags are set with TagSpecifications (CreateTags on create)
    assert iam.actions() == needed, sorted(iam.actions() ^ needed)
    for st in doc["Statement"]:
        listed = [st["Action"]] if isinstance(st["Action"], str) else st["Action"]
        reads = all(a.split(":")[1].startswith("Describe") for a in listed)
        tagged = json.dumps(st.get("Condition", {}))
        if reads:
            continue
        if "infprov:managed" in tagged or "ec2:CreateAction" in tagged:
            continue
        # what remains: the things a launch or a group only uses (image, subnet, vpc...), never makes
        resources = [st["Resource"]] if isinstance(st["Resource"], str) else st["Resource"]
        assert all(":instance/" not in r and ":volume/" not in r and r != "*" for r in resources), st


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
