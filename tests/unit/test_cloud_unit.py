"""The pure parts of the cloud lifecycle: input checks, AMI choice, plans, tags, filters, cost, tokens."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from infprov.floor.errors import InfprovError, UsageError
from infprov.provision import amis, catalog, cloud, launch, planning, specs
from infprov.provision.ec2 import Ec2ApiError, Instance
from infprov.sandbox import ec2endpoint


def _images() -> list[dict[str, Any]]:
    """The sandbox's injected images, shaped as describe_images returns them."""
    return [
        {
            "ImageId": r["ami_id"],
            "Name": r["name"],
            "Description": r["description"],
            "Architecture": r["architecture"],
            "State": r["state"],
            "RootDeviceName": r["root_device_name"],
        }
        for r in ec2endpoint.ami_records()
    ]


def _by_name(fragment: str) -> dict[str, Any]:
    return next(i for i in _images() if fragment in i["Description"] or fragment in i["Name"])


# ---------------------------------------------------------------- AMI choice


def test_release_is_read_from_the_description() -> None:
    assert amis.neuron_release({"Description": "with Neuron SDK 2.26.0. Supported EC2 instances: Inf1"}) == (2, 26, 0)
    assert amis.neuron_release({"Name": "Deep Learning AMI Neuron PyTorch 1.13 (Ubuntu 20.04) 20250627"}) is None


@pytest.mark.parametrize(
    ("image", "verdict"),
    [
        ({"Description": "Neuron SDK 2.26.0. Supported EC2 instances: Inf1, Inf2"}, True),
        ({"Description": "Neuron SDK 2.26.1. Supported EC2 instances: Inf1, Inf2"}, False),
        ({"Description": "Neuron SDK 2.27.0"}, False),
        ({"Description": "Neuron SDK 2.20.2. Supported EC2 instances: Inf2, Trn1"}, False),
        ({"Name": "Deep Learning AMI Neuron (Ubuntu 22.04) 20241027"}, True),
        ({"Name": "Deep Learning AMI Neuron (Ubuntu 22.04) 20251105"}, False),
        ({"Name": "ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-20250925"}, None),
    ],
)
def test_inf1_verdict(image: dict[str, Any], verdict: bool | None) -> None:
    assert amis.inf1_verdict(image)[0] is verdict


def test_choose_ami_takes_the_newest_inf1_capable_multi_framework_image() -> None:
    chosen = amis.choose_ami(_images())
    assert chosen["Name"] == "Deep Learning AMI Neuron (Ubuntu 22.04) 20250919"
    assert amis.neuron_release(chosen) == (2, 26, 0)


def test_choose_ami_never_picks_a_release_from_2_26_1_on() -> None:
    newer_only = [i for i in _images() if (amis.neuron_release(i) or (0,)) >= (2, 26, 1)]
    assert newer_only
    with pytest.raises(InfprovError) as err:
        amis.choose_ami(newer_only)
    assert "--ami" in err.value.hint


def test_choose_ami_skips_other_architectures() -> None:
    arm = {**_by_name("SDK 2.26.0"), "Architecture": "arm64", "ImageId": "ami-0000000000000aaaa"}
    chosen = amis.choose_ami([arm, _by_name("SDK 2.25.0")])
    assert amis.neuron_release(chosen) == (2, 25, 0)


def test_pinned_ami_of_a_new_release_is_refused_as_usage() -> None:
    with pytest.raises(UsageError) as err:
        amis.check_pinned_ami(_by_name("SDK 2.27.0"), "us-east-1")
    assert "cannot drive Inf1" in err.value.message
    assert "2.26.0 or earlier" in err.value.hint


def test_pinned_plain_ubuntu_is_accepted_with_a_warning(capsys: pytest.CaptureFixture[str]) -> None:
    amis.check_pinned_ami(_by_name("Canonical"), "us-east-1")
    assert "cannot tell whether AMI" in capsys.readouterr().err


# ---------------------------------------------------------------- inputs


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"instance_type": "m5.large"}, "unknown instance type"),
        ({"instance_type": "inf1.xlarge", "count": 0}, "--count 0"),
        ({"instance_type": "inf1.xlarge", "count": 21}, "--count 21"),
        ({"instance_type": "inf1.xlarge", "name": "Bad_Name"}, "cluster name"),
        ({"instance_type": "inf1.xlarge", "name": "-x"}, "cluster name"),
        ({"instance_type": "inf1.xlarge", "region": "useast1"}, "--region"),
        ({"instance_type": "inf1.xlarge", "ami": "ubuntu"}, "--ami"),
        ({"instance_type": "inf1.xlarge", "ssh_cidr": "0.0.0.0/0"}, "whole internet"),
        ({"instance_type": "inf1.xlarge", "ssh_cidr": "::/0"}, "whole internet"),
        ({"instance_type": "inf1.xlarge", "ssh_cidr": "10.0.0.300/32"}, "--ssh-cidr"),
        ({"instance_type": "inf1.xlarge", "ssh_cidr": "0.0.0.0/1"}, "wider than /8"),
        ({"instance_type": "inf1.xlarge", "ssh_cidr": "10.0.0.0/7"}, "33,554,432 addresses"),
        ({"instance_type": "inf1.xlarge", "ssh_cidr": "2001:db8::/16"}, "wider than /32"),
        ({"instance_type": "inf1.xlarge", "disk_gib": 50}, "--disk"),
        ({"instance_type": "inf1.xlarge", "tags": (("aws:x", "1"),)}, "reserved"),
        ({"instance_type": "inf1.xlarge", "tags": (("infprov:cluster", "x"),)}, "infprov's own"),
        ({"instance_type": "inf1.xlarge", "tags": (("a", "1"), ("a", "2"))}, "twice"),
    ],
)
def test_bad_spec_is_a_usage_error_with_a_hint(kwargs: dict[str, Any], fragment: str) -> None:
    with pytest.raises(UsageError) as err:
        specs.UpSpec(**kwargs)
    assert fragment in err.value.message
    assert err.value.hint


def test_spec_normalises_cidr_and_type() -> None:
    spec = specs.UpSpec(instance_type="INF1.6xlarge", ssh_cidr="203.0.113.7")
    assert spec.instance_type == "inf1.6xlarge"
    assert spec.ssh_cidr == "203.0.113.7/32"
    assert specs.UpSpec(instance_type="inf1.xlarge", ssh_cidr="2001:db8::1").ssh_cidr == "2001:db8::1/128"
    assert specs.UpSpec(instance_type="inf1.xlarge", ssh_cidr="10.0.0.0/8").ssh_cidr == "10.0.0.0/8"
    wide = specs.UpSpec(instance_type="inf1.xlarge", ssh_cidr="0.0.0.0/1", allow_wide_ssh=True)
    assert wide.ssh_cidr == "0.0.0.0/1"


@pytest.mark.parametrize("raw", ["novalue", "=x", " =x"])
def test_parse_tags_refuses_malformed(raw: str) -> None:
    with pytest.raises(UsageError, match="KEY=VALUE"):
        specs.parse_tags([raw])


def test_parse_tags_keeps_order_and_allows_empty_values() -> None:
    assert specs.parse_tags(["team=ml", "empty=", "a=b=c"]) == (("team", "ml"), ("empty", ""), ("a", "b=c"))


# ---------------------------------------------------------------- tags, filters, names


def test_cluster_tags_and_user_tags() -> None:
    tags = planning.cluster_tags("bench", (("team", "ml"),))
    assert tags == {"infprov:cluster": "bench", "infprov:managed": "true", "Name": "infprov-bench", "team": "ml"}
    assert planning.cluster_tags(specs.DEFAULT_CLUSTER)["Name"] == "infprov"


def test_filters_select_one_cluster_or_all_managed() -> None:
    assert planning.cluster_filter("bench") == {"tag:infprov:cluster": ["bench"]}
    assert planning.cluster_filter(None) == {"tag:infprov:managed": ["true"]}


# ---------------------------------------------------------------- cost and token


def test_hourly_cost_multiplies_and_knows_when_it_does_not_know() -> None:
    assert planning.hourly_cost("inf1.6xlarge", "us-east-1", 3) == pytest.approx(3.54)
    assert planning.hourly_cost("inf1.6xlarge", "eu-west-3", 1) is None


def test_cost_so_far() -> None:
    now = datetime(2025, 1, 1, 12, tzinfo=timezone.utc)
    assert planning.cost_so_far(now - timedelta(minutes=90), now, 1.18) == pytest.approx(1.77)
    assert planning.cost_so_far(None, now, 1.18) is None
    assert planning.cost_so_far(now, now, None) is None


def test_client_token_is_stable_short_and_changes_with_what_matters() -> None:
    args = ("us-east-1", "bench", "sg-1", 2, 0, "us-east-1a")
    token = planning.client_token(*args)
    assert token == planning.client_token(*args)
    assert len(token) <= 64 and token.isascii()
    for i, other in enumerate(["us-west-2", "other", "sg-2", 3, 1, "us-east-1b"]):
        changed = list(args)
        changed[i] = other
        assert planning.client_token(*changed) != token  # type: ignore[arg-type]


# ---------------------------------------------------------------- plan


def _inst(iid: str, state: str, itype: str = "inf1.6xlarge") -> Instance:
    return Instance(iid, state, itype)


def test_plan_reuses_starts_and_launches_the_shortfall() -> None:
    plan = planning.plan_instances(
        [_inst("i-2", "running"), _inst("i-1", "stopped"), _inst("i-3", "pending"), _inst("i-4", "stopping")],
        "c",
        "inf1.6xlarge",
        6,
    )
    assert plan == planning.InstancePlan(reuse=("i-3", "i-2"), start=("i-1",), stopping=("i-4",), launch=2)


def test_plan_refuses_more_than_asked_as_a_leak() -> None:
    with pytest.raises(InfprovError) as err:
        planning.plan_instances([_inst("i-1", "running"), _inst("i-2", "running")], "c", "inf1.6xlarge", 1)
    assert "looks like a leak" in err.value.message
    assert "infprov teardown --name c" in err.value.hint
    assert not isinstance(err.value, UsageError)


def test_plan_refuses_a_type_change() -> None:
    with pytest.raises(UsageError, match="runs inf1.xlarge"):
        planning.plan_instances([_inst("i-1", "running", "inf1.xlarge")], "c", "inf1.6xlarge", 1)


def test_zone_order_prefers_zones_in_use_then_name_order() -> None:
    subnets = {"us-east-1a": "s-a", "us-east-1b": "s-b", "us-east-1c": "s-c", "us-east-1e": "s-e"}
    offered = ["us-east-1c", "us-east-1a", "us-east-1b", "us-east-1f"]
    assert planning.order_zones(offered, subnets) == [
        ("us-east-1a", "s-a"), ("us-east-1b", "s-b"), ("us-east-1c", "s-c")
    ]
    preferred = planning.order_zones(offered, subnets, ["us-east-1c"])
    assert [z for z, _ in preferred] == ["us-east-1c", "us-east-1a", "us-east-1b"]


# ---------------------------------------------------------------- launch settings and the SSH rule


def test_launch_params_lock_down_the_instance() -> None:
    image = {"ImageId": "ami-0c1f5e2a9d4b70a11", "RootDeviceName": "/dev/sda1",
             "BlockDeviceMappings": [{"DeviceName": "/dev/sda1", "Ebs": {"VolumeSize": 200}}]}
    tags = planning.cluster_tags("c")
    p = planning.launch_params(image=image, instance_type="inf1.6xlarge", count=2, key_name="k", group_id="sg-1",
                            subnet_id="subnet-1", token="t", tags=tags, disk_gib=150, spot=True)
    assert p["MetadataOptions"] == {"HttpTokens": "required", "HttpEndpoint": "enabled", "HttpPutResponseHopLimit": 1}
    assert "IamInstanceProfile" not in p  # no role: the instance metadata holds no credentials at all
    assert p["InstanceInitiatedShutdownBehavior"] == "terminate"
    ebs = p["BlockDeviceMappings"][0]["Ebs"]
    assert ebs == {"VolumeSize": 200, "VolumeType": "gp3", "Encrypted": True, "DeleteOnTermination": True}
    assert {s["ResourceType"] for s in p["TagSpecifications"]} == {"instance", "volume"}
    assert p["MinCount"] == p["MaxCount"] == 2
    assert p["InstanceMarketOptions"]["MarketType"] == "spot"
    assert "InstanceMarketOptions" not in planning.launch_params(
        image=image, instance_type="inf1.6xlarge", count=1, key_name="k", group_id="sg-1",
        subnet_id="subnet-1", token="t", tags=tags, disk_gib=300, spot=False,
    )


def test_nothing_infprov_runs_on_a_host_uses_the_instance_metadata() -> None:
    """Why HttpPutResponseHopLimit 1 is enough: nothing infprov puts on a host asks the instance metadata
    service (IMDS) for anything, and Triton's container, on docker's bridge network, is one hop further
    away than the host, so an IMDSv2 token's PUT answer (IP TTL 1) never reaches it, and IMDSv1 is off
    (HttpTokens required). perf_analyzer's short-lived container runs with --net host, so it could ask as
    the host can; it does not, and the instance has no role whose credentials it could read."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    shipped = [p for p in sorted((root / "playbooks").rglob("*")) if p.is_file() and p.suffix != ".pyc"]
    shipped += [root / "provision" / "bench.py", root / "provision" / "server.py"]
    assert any(p.name == "start.sh" for p in shipped) and any(p.name == "setup.sh" for p in shipped)
    imds = re.compile(r"169\.254\.169\.254|fd00:ec2::254|latest/(?:meta-data|api/token|dynamic|user-data)|"
                      r"ec2-metadata|instance[-_ ]?metadata|\bimds\b", re.IGNORECASE)
    assert [str(p.relative_to(root)) for p in shipped if imds.search(p.read_text(errors="replace"))] == []
    server = (root / "playbooks" / "server.yml").read_text()
    run_args = server[server.index("run_args: >-"):server.index("register: server_container")]
    assert "--device" in run_args and not re.search(r"--net(?:work)?[ =]host", run_args)  # bridge network
    assert "--net\", \"host" in (root / "provision" / "bench.py").read_text()  # perf_analyzer: the host's network


def test_stray_rules_are_everything_but_ssh_from_the_cidr() -> None:
    group = {"IpPermissions": [
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
         "IpRanges": [{"CidrIp": "198.51.100.1/32"}, {"CidrIp": "0.0.0.0/0"}]},
        {"IpProtocol": "tcp", "FromPort": 8000, "ToPort": 8002, "IpRanges": [{"CidrIp": "198.51.100.1/32"}]},
    ]}
    stray = planning.stray_permissions(group, "198.51.100.1/32")
    found = {(s["FromPort"], s["IpRanges"][0]["CidrIp"]) for s in stray}
    assert found == {(22, "0.0.0.0/0"), (8000, "198.51.100.1/32")}
    assert planning.has_permission(group, "198.51.100.1/32")
    assert not planning.has_permission(group, "198.51.100.2/32")
    assert planning.ssh_permission("2001:db8::1/128")["Ipv6Ranges"][0]["CidrIpv6"] == "2001:db8::1/128"


# ---------------------------------------------------------------- confirmation


def test_no_terminal_and_no_yes_refuses_instead_of_hanging(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(launch, "interactive", lambda: False)
    with pytest.raises(UsageError, match="not interactive") as err:
        launch.ask_or_refuse("Launch?", False, None, "launch instances")
    assert err.value.hint == "pass --yes"
    launch.ask_or_refuse("Launch?", True, None, "launch instances")  # --yes: no question at all


def test_a_no_answer_changes_nothing() -> None:
    asked: list[str] = []

    def no(question: str) -> bool:
        asked.append(question)
        return False

    with pytest.raises(InfprovError, match="not confirmed"):
        launch.ask_or_refuse("Launch?", False, no, "launch instances")
    assert asked == ["Launch?"]


def test_continue_hint_repeats_the_options_that_find_the_same_cluster() -> None:
    spec = specs.UpSpec(instance_type="inf1.2xlarge", name="eu", count=3, region="eu-west-1")
    hint = cloud.continue_hint(spec)
    assert "`infprov up --type inf1.2xlarge --name eu --count 3 --region eu-west-1` again" in hint
    assert "`infprov teardown --name eu --region eu-west-1` to remove it" in hint
    sandbox = cloud.continue_hint(specs.UpSpec(instance_type="inf1.xlarge", name="s", sandbox=True))
    assert "`infprov up --type inf1.xlarge --name s --sandbox` again" in sandbox
    assert "`infprov teardown --name s --sandbox`" in sandbox


def test_choose_ami_for_inf2_takes_the_newest_image_that_lists_it() -> None:
    chosen = amis.choose_ami(_images(), "inf2")
    assert amis.neuron_release(chosen) == (2, 27, 0)
    assert chosen["Name"].startswith("Deep Learning AMI Neuron (")
    assert amis.verdict(_by_name("PyTorch 1.13"), "inf2") == (
        False, "its description does not list Inf2 among the supported instances")


def test_pinned_ami_for_trn1_is_refused_when_it_cannot_drive_it() -> None:
    with pytest.raises(UsageError, match="cannot drive Trn1"):
        amis.check_pinned_ami(_by_name("PyTorch 1.13"), "us-east-1", "trn1")
    amis.check_pinned_ami(_by_name("SDK 2.27.0"), "us-east-1", "trn1")


# ---------------------------------------------------------------- EC2's answers, checked on the way in

GOOD = {"InstanceId": "i-0123456789abcdef0", "InstanceType": "inf1.xlarge", "State": {"Name": "running"},
        "Placement": {"AvailabilityZone": "us-east-1a"}, "PublicIpAddress": "203.0.113.7",
        "PrivateIpAddress": "172.31.0.9", "KeyName": "k", "InstanceLifecycle": "spot", "ClientToken": "t",
        "Tags": [{"Key": "infprov:cluster", "Value": "c"}]}


def test_an_instance_record_from_the_api() -> None:
    inst = Instance.from_api(GOOD)
    assert (inst.id, inst.state, inst.instance_type, inst.zone) == ("i-0123456789abcdef0", "running", "inf1.xlarge",
                                                                    "us-east-1a")
    assert (inst.address, inst.private_ip, inst.key_name, inst.spot, inst.client_token) == (
        "203.0.113.7", "172.31.0.9", "k", True, "t")
    assert inst.tags == {"infprov:cluster": "c"}
    bare = Instance.from_api({"InstanceId": "i-00000001", "InstanceType": "inf1.xlarge", "State": {"Name": "pending"}})
    assert bare.address == "" and bare.tags == {} and not bare.spot


@pytest.mark.parametrize(("field", "value"), [
    ("InstanceId", "i-1; rm -rf ~"),
    ("InstanceId", "../i-0123456789abcdef0"),
    ("PublicIpAddress", "203.0.113.7 -oProxyCommand=x"),
    ("PrivateIpAddress", "$(reboot)"),
    ("InstanceType", "inf1.xlarge;id"),
    ("State", {"Name": "exploded"}),
    ("Placement", {"AvailabilityZone": "us-east-1a\nrm"}),
])
def test_an_odd_answer_is_refused_in_one_line(field: str, value: Any) -> None:
    with pytest.raises(InfprovError) as err:
        Instance.from_api({**GOOD, field: value})
    assert "EC2 answered with" in err.value.message and "\n" not in err.value.line()


# ---------------------------------------------------------------- the quota a refused launch names
@pytest.mark.parametrize(("itype", "on_demand", "spot"), [
    ("inf1.6xlarge", "Running On-Demand Inf instances", "All Inf Spot Instance Requests"),
    ("inf2.xlarge", "Running On-Demand Inf instances", "All Inf Spot Instance Requests"),
    ("trn1.2xlarge", "Running On-Demand Trn instances", "All Trn Spot Instance Requests"),
])
def test_a_vcpu_quota_refusal_names_the_family_s_quota(itype: str, on_demand: str, spot: str) -> None:
    """Inf1 and Inf2 count against the Inf vCPU quotas, Trn1 against the Trn ones (EC2 User Guide, On-Demand
    and Spot Instance quotas)."""
    t = catalog.TYPES[itype]
    for use_spot, quota in ((False, on_demand), (True, spot)):
        spec = specs.UpSpec(instance_type=itype, spot=use_spot)
        err = launch.launch_error(Ec2ApiError("RunInstances", "VcpuLimitExceeded", "over"), spec, t, 2, "us-east-1")
        assert f"({2 * t.vcpus} vCPUs)" in err.message
        assert f"'{quota}'" in err.hint, err.hint
        other = "Trn" if "Inf" in quota else "Inf"
        assert f" {other} " not in err.hint
    spot_spec = specs.UpSpec(instance_type=itype, spot=True)
    refused = launch.launch_error(Ec2ApiError("RunInstances", "MaxSpotInstanceCountExceeded", "max"), spot_spec, t, 1,
                                  "us-east-1")
    assert f"'{spot}'" in refused.hint
