"""`up` against a real moto EC2 server over HTTP (the sandbox's endpoint): launch and read back, zones and
quotas, AMIs."""

from __future__ import annotations

import stat
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest
import yaml

from infprov.floor import paths
from infprov.floor.errors import InfprovError, UsageError, WaitTimeout
from infprov.inventory.model import Host
from infprov.provision import cloud, specs
from infprov.provision.ec2 import tag_map
from infprov.provision.providers import AwsProvider
from tests.moto_cloud import (
    CHOSEN_AMI,
    CIDR,
    NEW_AMI,
    REGION,
    UBUNTU_AMI,
    SshSeen,
    _fail,
    _key,
    _live,
    _managed_everything,
    _up,
)

# ---------------------------------------------------------------- launch and read back


def test_up_launches_locked_down_tagged_instances(prov: AwsProvider, infprov_home: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    ssh = SshSeen()
    result = _up(prov, ssh, name="bench", count=2, tags=(("team", "ml"),))

    assert len(result.launched) == 2 and not result.reused and not result.started
    assert result.ami == CHOSEN_AMI
    assert result.hourly_cost == pytest.approx(2.36)
    assert sorted(h.instance_id for h in ssh.hosts) == sorted(result.launched)
    for host in result.hosts:
        assert (host.user, host.port, host.neuron_devices, host.neuron_cores) == ("ubuntu", 22, 4, 16)
        assert host.key_file == str(infprov_home / "keys" / f"{_key()}.pem")

    instances = _live(prov, "bench")
    assert len(instances) == 2
    for inst in instances:
        assert inst["State"]["Name"] == "running"
        assert inst["ImageId"] == CHOSEN_AMI
        assert inst["MetadataOptions"]["HttpTokens"] == "required"  # moto takes RunInstances' MetadataOptions
        assert inst["MetadataOptions"]["HttpPutResponseHopLimit"] == 1
        assert tag_map(inst) == {"infprov:cluster": "bench", "infprov:managed": "true", "Name": "infprov-bench",
                                 "infprov:home": paths.home_id(),
                                 "team": "ml"}
        attr = prov.client.describe_instance_attribute(InstanceId=inst["InstanceId"],
                                                       Attribute="instanceInitiatedShutdownBehavior")
        assert attr["InstanceInitiatedShutdownBehavior"]["Value"] == "terminate"
        assert inst["KeyName"] == _key()
    volumes = prov.volumes({"attachment.instance-id": [i["InstanceId"] for i in instances]})
    assert len(volumes) == 2
    for vol in volumes:
        assert (vol["Size"], vol["VolumeType"], vol["Encrypted"]) == (150, "gp3", True)
        assert tag_map(vol)["infprov:cluster"] == "bench" and tag_map(vol)["team"] == "ml"

    (group,) = prov.security_groups({"group-id": [result.security_group]})
    assert tag_map(group)["infprov:cluster"] == "bench"
    assert [(p["IpProtocol"], p["FromPort"], p["ToPort"], [r["CidrIp"] for r in p["IpRanges"]], p["Ipv6Ranges"])
            for p in group["IpPermissions"]] == [("tcp", 22, 22, [CIDR], [])]

    key = prov.key_pair(_key())
    assert key is not None and tag_map(key)["infprov:managed"] == "true"
    key_file = infprov_home / "keys" / f"{_key()}.pem"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    out = capsys.readouterr()
    assert "PRIVATE KEY" not in out.out + out.err

    inv = yaml.safe_load((infprov_home / "inventory.yml").read_text())
    hosts = inv["all"]["children"]["bench"]["hosts"]
    assert sorted(hosts) == sorted(result.launched)
    first = hosts[result.launched[0]]
    assert first["ansible_user"] == "ubuntu" and first["neuron_cores"] == 16 and first["region"] == REGION
    assert first["ansible_ssh_private_key_file"] == str(key_file)


def test_second_up_reuses_and_launches_nothing(prov: AwsProvider) -> None:
    first = _up(prov, count=2)
    again = _up(prov, count=2)
    assert again.launched == () and sorted(again.reused) == sorted(first.launched)
    assert again.security_group == first.security_group
    assert len(_live(prov)) == 2


def test_count_growth_launches_only_the_shortfall(prov: AwsProvider) -> None:
    first = _up(prov, count=1)
    grown = _up(prov, count=3)
    assert grown.reused == first.launched and len(grown.launched) == 2
    assert len(_live(prov)) == 3


def test_stopped_instances_are_started_not_replaced(prov: AwsProvider) -> None:
    first = _up(prov, count=2)
    stopped = first.launched[0]
    prov.client.stop_instances(InstanceIds=[stopped])
    again = _up(prov, count=2)
    assert again.started == (stopped,) and again.launched == ()
    assert {i["State"]["Name"] for i in _live(prov)} == {"running"}


def test_more_instances_than_asked_is_refused_as_a_leak(prov: AwsProvider) -> None:
    _up(prov, name="big", count=2)
    with pytest.raises(InfprovError) as err:
        _up(prov, name="big", count=1)
    assert "looks like a leak" in err.value.message
    assert "infprov teardown --name big" in err.value.hint
    assert len(_live(prov, "big")) == 2


def test_another_type_for_the_same_cluster_is_refused(prov: AwsProvider) -> None:
    _up(prov, count=1)
    with pytest.raises(UsageError, match="runs inf1.6xlarge"):
        _up(prov, count=1, instance_type="inf1.xlarge")


def test_the_type_conflict_is_found_before_preflight_runs(prov: AwsProvider, monkeypatch: pytest.MonkeyPatch) -> None:
    from infprov.provision import lifecycle
    from infprov.provision import preflight as pf

    _up(prov, count=1)
    ran: list[object] = []
    monkeypatch.setattr(pf, "run", lambda *a, **k: ran.append(a) or [])
    monkeypatch.delenv("INFPROV_NO_PREFLIGHT", raising=False)
    spec = specs.UpSpec(instance_type="inf1.xlarge", ssh_cidr=CIDR, yes=True)
    with pytest.raises(UsageError, match="runs inf1.6xlarge"):
        lifecycle.up(spec, skip_server=True)
    assert ran == []


def test_two_concurrent_ups_make_one_set_of_instances(prov: AwsProvider, moto_url: str) -> None:
    results: list[specs.UpResult] = []
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def run() -> None:
        own = AwsProvider(REGION, endpoint_url=moto_url, access_key="testing", secret_key="testing")
        start.wait()
        try:
            results.append(_up(own, name="twin", count=2))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert len(_live(prov, "twin")) == 2
    assert sorted(len(r.launched) for r in results) == [0, 2]
    assert len(prov.security_groups({"group-name": ["infprov-twin"]})) == 1


def test_failure_after_launch_says_how_to_continue_and_up_continues(prov: AwsProvider) -> None:
    def no_ssh(hosts: Sequence[Host], timeouts: specs.Timeouts) -> None:
        raise WaitTimeout("gave up waiting for an SSH login as ubuntu on 2 host(s) after 5 s", "")

    with pytest.raises(InfprovError) as err:
        _up(prov, no_ssh, name="half", count=2)
    assert "SSH login" in err.value.message
    assert "run `infprov up --type inf1.6xlarge --name half --count 2" in err.value.hint
    assert "again to continue" in err.value.hint and "`infprov teardown --name half" in err.value.hint
    assert len(_live(prov, "half")) == 2
    again = _up(prov, name="half", count=2)
    assert again.launched == () and len(again.reused) == 2


def test_ssh_rule_follows_the_operator_and_nothing_else_stays_open(prov: AwsProvider) -> None:
    first = _up(prov, name="moving")
    prov.client.authorize_security_group_ingress(  # someone opens Triton's port by hand
        GroupId=first.security_group,
        IpPermissions=[{"IpProtocol": "tcp", "FromPort": 8000, "ToPort": 8000, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}],
    )
    _up(prov, name="moving", ssh_cidr="203.0.113.9")
    (group,) = prov.security_groups({"group-id": [first.security_group]})
    rules = [(p["FromPort"], r["CidrIp"]) for p in group["IpPermissions"] for r in p["IpRanges"]]
    assert rules == [(22, "203.0.113.9/32")]


def test_a_no_at_the_prompt_creates_nothing(prov: AwsProvider) -> None:
    asked: list[str] = []

    def say_no(question: str) -> bool:
        asked.append(question)
        return False

    with pytest.raises(InfprovError, match="not confirmed"):
        _up(prov, confirm=say_no, yes=False)
    assert asked and _managed_everything(prov) == []


def test_spot_launch_is_marked_spot(prov: AwsProvider) -> None:
    _up(prov, name="cheap", spot=True)
    (inst,) = _live(prov, "cheap")
    assert inst.get("InstanceLifecycle") == "spot"
    assert cloud.status(provider=prov).clusters[0].instances[0].spot


def test_up_after_a_spot_interruption_launches_with_a_new_token(prov: AwsProvider, infprov_home: Path) -> None:
    """EC2 keeps a launch token for 24 h after its instances end; the same token would bring the dead
    instance back (moto does not keep tokens: tests/unit/test_cloud_launch.py covers EC2's answer)."""
    calls = _fail(prov, "RunInstances", "never", when=lambda p: False)  # records the calls only
    first = _up(prov, name="spot", spot=True)
    prov.terminate_instances(list(first.launched))  # the spot instance is interrupted
    again = _up(prov, name="spot", spot=True)
    assert len(again.launched) == 1 and again.launched != first.launched and not again.reused
    assert len(calls) == 2 and calls[0]["ClientToken"] != calls[1]["ClientToken"]
    assert [i["InstanceId"] for i in _live(prov, "spot")] == list(again.launched)
    assert (infprov_home / "launch" / f"{REGION}-spot.json").exists()


# ---------------------------------------------------------------- zones and quotas


def test_capacity_error_fails_over_to_the_next_zone(prov: AwsProvider) -> None:
    first_zone = _subnet(prov, "us-east-1a")
    calls = _fail(prov, "RunInstances", "InsufficientInstanceCapacity", when=lambda p: p["SubnetId"] == first_zone)
    result = _up(prov, count=2)
    assert [_zone_of(prov, c["SubnetId"]) for c in calls] == ["us-east-1a", "us-east-1b"]
    assert calls[0]["ClientToken"] != calls[1]["ClientToken"]
    assert {i["Placement"]["AvailabilityZone"] for i in _live(prov)} == {"us-east-1b"}
    assert len(result.launched) == 2


def test_unsupported_everywhere_names_the_zones_and_how_to_clean_up(prov: AwsProvider) -> None:
    calls = _fail(prov, "RunInstances", "Unsupported")
    with pytest.raises(InfprovError) as err:
        _up(prov, name="nocap", count=1)
    assert len(calls) == 5  # us-east-1a, b, c, d, f offer inf1; e does not
    assert "no capacity" in err.value.message and "us-east-1f (Unsupported)" in err.value.message
    assert "infprov teardown --name nocap" in err.value.hint
    assert _live(prov) == []


def test_vcpu_quota_names_the_quota_to_raise(prov: AwsProvider) -> None:
    _fail(prov, "RunInstances", "VcpuLimitExceeded")
    with pytest.raises(InfprovError) as err:
        _up(prov, count=2)
    assert "48 vCPUs" in err.value.message
    assert "Running On-Demand Inf instances" in err.value.hint


def test_a_launch_the_iam_policy_refuses_says_what_the_policy_allows(prov: AwsProvider) -> None:
    """EC2 refuses a RunInstances that a condition of the policy does not allow (type, IMDSv2, untagged
    group or key pair) with UnauthorizedOperation: that is no credentials problem, and the hint says so."""
    _fail(prov, "RunInstances", "UnauthorizedOperation")
    with pytest.raises(InfprovError) as err:
        _up(prov, name="denied", count=1)
    assert "refused the launch of 1 x inf1.6xlarge" in err.value.message
    assert "injected UnauthorizedOperation" in err.value.message  # EC2's (encoded) message is kept
    assert "iam-policy.json" in err.value.hint and "infprov:managed=true" in err.value.hint
    assert "decode-authorization-message" in err.value.hint and "credentials" not in err.value.hint
    assert _live(prov) == []


def _subnet(prov: AwsProvider, zone: str) -> str:
    vpc = prov.default_vpc()
    assert vpc is not None
    return prov.default_subnets(vpc)[zone]


def _zone_of(prov: AwsProvider, subnet: str) -> str:
    vpc = prov.default_vpc()
    assert vpc is not None
    return next(z for z, s in prov.default_subnets(vpc).items() if s == subnet)


# ---------------------------------------------------------------- AMIs


def test_pinned_ami_that_cannot_drive_inf1_is_refused_before_anything_is_made(prov: AwsProvider) -> None:
    with pytest.raises(UsageError, match="cannot drive Inf1"):
        _up(prov, ami=NEW_AMI)
    assert _managed_everything(prov) == []


def test_pinned_ami_missing_in_the_region_is_a_usage_error(prov: AwsProvider) -> None:
    with pytest.raises(UsageError, match="not found in us-east-1"):
        _up(prov, ami="ami-0123456789abcdef0")
    assert _managed_everything(prov) == []


def test_pinned_plain_image_wins_over_the_choice(prov: AwsProvider) -> None:
    result = _up(prov, ami=UBUNTU_AMI)
    assert result.ami == UBUNTU_AMI
    assert _live(prov)[0]["ImageId"] == UBUNTU_AMI
