"""Faults of the EC2 API on the sandbox (throttling, 5xx, answers lost after EC2 acted, no capacity in a zone):
each is ridden out, and `up` again converges (see tests/sandbox/test_faults.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ec2_fault_proxy import Fault, FaultProxy
from tests.faultkit import (
    _converges_then_clean,
    _tagged,
    _up,
)
from tests.hostshell import sandbox_ec2

pytestmark = [pytest.mark.sandbox, pytest.mark.faults]


# ---------------------------------------------------------------- the EC2 API's faults


@pytest.fixture()
def proxied(home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[FaultProxy]]:
    """Route this process's sandbox EC2 calls through a FaultProxy (set the rule with proxy.rule)."""
    from infprov.provision import providers
    from infprov.sandbox import core
    from infprov.sandbox.provider import SandboxProvider

    proxy = FaultProxy(core.status()["ec2_endpoint"], lambda form, n: None)
    real = providers.connect

    def through_proxy(region: str | None, sandbox: bool) -> providers.Provider:
        prov = real(region, sandbox)
        if not isinstance(prov, SandboxProvider):
            return prov
        access_key, secret_key = prov.core.ec2_credentials()
        return SandboxProvider(prov.region, endpoint_url=proxy.url, access_key=access_key,
                                         secret_key=secret_key, core=prov.core)

    monkeypatch.setattr(providers, "connect", through_proxy)
    with proxy:
        yield [proxy]


def test_ec2_throttling_and_5xx_for_a_while_are_ridden_out(proxied: list[FaultProxy]) -> None:
    [proxy] = proxied

    def rule(form: dict[str, str], before: int) -> Fault | None:
        # every call is first throttled; RunInstances then also meets a server error
        if before == 0:
            return (503, "RequestLimitExceeded")
        if form.get("Action") == "RunInstances" and before == 1:
            return (500, "InternalError")
        return None

    proxy.rule = rule
    doc = _up("f-throttle")
    assert {a for a, _, _ in proxy.injected} >= {"RunInstances", "DescribeInstances", "CreateSecurityGroup"}
    assert proxy.forwarded.count("RunInstances") == 1  # the retries never launched twice
    assert len(doc["launched"]) == 1
    proxy.rule = lambda form, n: None
    _converges_then_clean("f-throttle")


def test_answers_lost_after_ec2_acted_are_ridden_out(proxied: list[FaultProxy]) -> None:
    """A create that EC2 carried out but whose answer was lost (a 5xx on the way back): the retry
    meets the thing already made."""
    [proxy] = proxied
    lost = {"CreateSecurityGroup", "ImportKeyPair", "AuthorizeSecurityGroupIngress", "RunInstances"}

    def rule(form: dict[str, str], before: int) -> Fault | None:
        return (503, "ServiceUnavailable", True) if form.get("Action") in lost and before == 0 else None

    proxy.rule = rule
    _up("f-lost")
    assert {a for a, _, _ in proxy.injected} == lost
    assert len(_tagged("f-lost")["instances"]) == 1
    proxy.rule = lambda form, n: None
    _converges_then_clean("f-lost")


def test_no_capacity_in_the_first_zone_launches_in_the_next(proxied: list[FaultProxy]) -> None:
    [proxy] = proxied
    ec2 = sandbox_ec2()
    subnets = {s["AvailabilityZone"]: s["SubnetId"] for s in ec2.describe_subnets(
        Filters=[{"Name": "default-for-az", "Values": ["true"]}])["Subnets"]}
    first = subnets["us-east-1a"]

    def rule(form: dict[str, str], before: int) -> Fault | None:
        if form.get("Action") == "RunInstances" and form.get("SubnetId") == first:
            return (500, "InsufficientInstanceCapacity")
        return None

    proxy.rule = rule
    doc = _up("f-capacity")
    [host] = doc["hosts"]
    assert host["availability_zone"] != "us-east-1a"
    assert ("RunInstances", 500, "InsufficientInstanceCapacity") in proxy.injected
    proxy.rule = lambda form, n: None
    _converges_then_clean("f-capacity")
