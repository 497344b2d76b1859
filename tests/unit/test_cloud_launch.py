"""The real AWS launch path: launch tokens across spent attempts, zone failover without botocore's
retries (against a small EC2 stand-in over HTTP on 127.0.0.1), and the AMI search and Inf1 verdict."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from infprov.floor.errors import InfprovError
from infprov.provision import amis, catalog, ec2, launch, planning, specs
from infprov.provision.ec2 import Ec2ApiError, Ec2Provider, Instance

REGION = "us-east-1"
GROUP = "sg-0123456789abcdef0"
IMAGE = {"ImageId": "ami-0c1f5e2a9d4b70a11", "RootDeviceName": "/dev/sda1"}
TARGETS = [("us-east-1a", "subnet-aaaa"), ("us-east-1b", "subnet-bbbb")]


def _spec(**kwargs: Any) -> specs.UpSpec:
    return specs.UpSpec(**{"instance_type": "inf1.6xlarge", "name": "bench", "ssh_cidr": "198.51.100.7/32",
                           "yes": True, **kwargs})


def _launch(prov: Any, spec: specs.UpSpec | None = None, existing: int = 0,
            targets: list[tuple[str, str]] | None = None) -> list[str]:
    spec = spec or _spec()
    return launch.launch_shortfall(prov, spec, catalog.get(spec.instance_type), IMAGE, "infprov-us-east-1", GROUP,
                         targets or TARGETS[:1], existing, planning.cluster_tags(spec.name))


# ---------------------------------------------------------------- a provider that keeps tokens as EC2 does


class TokenKeepingEc2:
    """Stands in for Ec2Provider where launch tokens matter (moto launches anew on every token).

    Like EC2: a token seen before with the same parameters is answered with the first call's
    instances in their current state, with other parameters by IdempotentParameterMismatch; tokens
    outlive their instances. DescribeInstances shows ended instances until forget_ended().
    """

    region = REGION

    def __init__(self) -> None:
        self.by_token: dict[str, tuple[str, list[str]]] = {}
        self.state: dict[str, str] = {}
        self.token_of: dict[str, str] = {}
        self.tags: dict[str, dict[str, str]] = {}
        self.forgotten: set[str] = set()
        self.calls: list[dict[str, Any]] = []
        self.lose_next_answer = False

    def run_instances(self, **params: Any) -> list[Instance]:
        self.calls.append(params)
        token = params["ClientToken"]
        rest = json.dumps({k: v for k, v in params.items() if k != "ClientToken"}, sort_keys=True)
        if token in self.by_token:
            seen, ids = self.by_token[token]
            if seen != rest:
                raise Ec2ApiError("run_instances", "IdempotentParameterMismatch",
                                  "Arguments on this idempotent request are inconsistent", 400)
        else:
            ids = [f"i-{len(self.state) + n:017x}" for n in range(params["MaxCount"])]
            self.by_token[token] = (rest, ids)
            tags = {t["Key"]: t["Value"] for t in params["TagSpecifications"][0]["Tags"]}
            for iid in ids:
                self.state[iid], self.token_of[iid], self.tags[iid] = "pending", token, tags
        if self.lose_next_answer:  # launched, but the answer never arrives
            self.lose_next_answer = False
            raise InfprovError("EC2 run_instances failed: Read timeout on endpoint URL", "")
        return [Instance.from_api(self._describe(i)) for i in ids]

    def instances(self, filters: dict[str, list[str]]) -> list[Instance]:
        found = []
        for iid in self.state:
            if iid in self.forgotten:
                continue
            inst = self._describe(iid)
            ok = all(
                inst["State"]["Name"] in values if key == "instance-state-name"
                else self.tags[iid].get(key.removeprefix("tag:")) in values
                for key, values in filters.items()
            )
            if ok:
                found.append(Instance.from_api(inst))
        return found

    def terminate(self, *ids: str) -> None:
        for iid in ids:
            self.state[iid] = "terminated"

    def forget_ended(self) -> None:
        """DescribeInstances stops showing terminated instances after about an hour; the token stays."""
        self.forgotten |= {i for i, s in self.state.items() if s == "terminated"}

    def alive(self) -> list[str]:
        return sorted(i for i, s in self.state.items() if s not in launch.ENDED_STATES)

    def _describe(self, iid: str) -> dict[str, Any]:
        return {"InstanceId": iid, "InstanceType": "inf1.6xlarge", "State": {"Name": self.state[iid]},
                "ClientToken": self.token_of[iid],
                "Tags": [{"Key": k, "Value": v} for k, v in self.tags[iid].items()]}


def _state_file(home: Path) -> Path:
    return home / "launch" / f"{REGION}-bench.json"


def test_a_spot_interruption_does_not_bring_the_dead_instance_back(infprov_home: Path) -> None:
    fake = TokenKeepingEc2()
    (first,) = _launch(fake)
    fake.terminate(first)  # spot interruption: the token stays with EC2 for 24 h or more

    (second,) = _launch(fake)  # the next `up`: the same step (nothing exists, count 1, zone a)

    assert second != first and fake.alive() == [second]
    tokens = [c["ClientToken"] for c in fake.calls]
    assert len(tokens) == 2 and tokens[0] != tokens[1]  # the dead instance was seen first: one call only
    assert tokens[0] == planning.client_token(REGION, "bench", GROUP, 1, 0, "us-east-1a")  # attempt 0 as ever
    doc = json.loads(_state_file(infprov_home).read_text())
    assert doc["group_id"] == GROUP and doc["attempts"] == {"1|0|us-east-1a": 1}
    assert stat.S_IMODE(_state_file(infprov_home).stat().st_mode) == 0o600
    assert stat.S_IMODE((infprov_home / "launch").stat().st_mode) == 0o700


def test_an_answer_of_ended_instances_moves_to_a_new_token(infprov_home: Path) -> None:
    fake = TokenKeepingEc2()
    (first,) = _launch(fake)
    fake.terminate(first)
    fake.forget_ended()  # more than an hour later: DescribeInstances no longer shows it, EC2 still keeps the token

    (second,) = _launch(fake)

    assert second != first and fake.alive() == [second]
    assert [c["ClientToken"] for c in fake.calls[1:]] == [
        planning.client_token(REGION, "bench", GROUP, 1, 0, "us-east-1a"),  # answered with the dead instance
        planning.client_token(REGION, "bench", GROUP, 1, 0, "us-east-1a", attempt=1),
    ]
    (third,) = _launch(fake, existing=0)  # the state remembers: attempt 1 straight away, EC2 repeats its answer
    assert third == second and fake.calls[-1]["ClientToken"] == fake.calls[-2]["ClientToken"]


def test_changed_settings_after_the_instances_ended_get_a_new_token(infprov_home: Path) -> None:
    fake = TokenKeepingEc2()
    (first,) = _launch(fake)
    fake.terminate(first)
    fake.forget_ended()

    (second,) = _launch(fake, _spec(disk_gib=300))  # IdempotentParameterMismatch, and nothing alive holds it

    assert fake.alive() == [second] and len(fake.calls) == 3
    assert fake.calls[2]["BlockDeviceMappings"][0]["Ebs"]["VolumeSize"] == 300


def test_a_mismatch_while_the_tokens_instances_live_is_refused_not_relaunched(infprov_home: Path) -> None:
    fake = TokenKeepingEc2()
    (first,) = _launch(fake)
    with pytest.raises(InfprovError) as err:  # a stale view (it did not count `first`) and other settings
        _launch(fake, _spec(disk_gib=300))
    assert "still alive" in err.value.message
    assert fake.alive() == [first] and len(fake.calls) == 2


def test_a_repeated_attempt_sends_the_same_token_and_launches_once(infprov_home: Path) -> None:
    fake = TokenKeepingEc2()
    fake.lose_next_answer = True  # the call launched, then the answer was lost (or infprov was stopped)
    with pytest.raises(InfprovError, match="Read timeout"):
        _launch(fake)
    (iid,) = _launch(fake)  # `up` again before DescribeInstances shows the new instance by its tag
    assert fake.calls[0]["ClientToken"] == fake.calls[1]["ClientToken"]
    assert fake.alive() == [iid]


def test_capacity_errors_never_spend_a_token(infprov_home: Path) -> None:
    class FullZoneA(TokenKeepingEc2):
        def run_instances(self, **params: Any) -> list[dict[str, Any]]:
            if params["SubnetId"] == "subnet-aaaa":
                self.calls.append(params)
                raise Ec2ApiError("run_instances", "InsufficientInstanceCapacity", "no capacity", 500)
            return super().run_instances(**params)

    fake = FullZoneA()
    _launch(fake, targets=TARGETS)
    _launch(fake, targets=TARGETS, existing=0)
    zone_a = [c["ClientToken"] for c in fake.calls if c["SubnetId"] == "subnet-aaaa"]
    assert zone_a[0] == zone_a[1] == planning.client_token(REGION, "bench", GROUP, 1, 0, "us-east-1a")


def test_a_machine_without_the_state_arrives_at_the_same_token(infprov_home: Path) -> None:
    fake = TokenKeepingEc2()
    (first,) = _launch(fake)
    fake.terminate(first)
    (second,) = _launch(fake)
    _state_file(infprov_home).unlink()  # another machine, or a lost INFPROV_HOME, racing the same step

    (again,) = _launch(fake)

    assert again == second and fake.alive() == [second]  # not a second set beside the first


def test_a_cluster_made_again_starts_its_tokens_over(infprov_home: Path) -> None:
    fake = TokenKeepingEc2()
    (first,) = _launch(fake)
    fake.terminate(first)
    _launch(fake)
    tokens = launch.LaunchTokens(fake, "bench", "sg-0fedcba9876543210", 1, 0)  # type: ignore[arg-type]
    assert tokens.token("us-east-1a") == planning.client_token(REGION, "bench", "sg-0fedcba9876543210", 1, 0,
                                                            "us-east-1a")


def test_client_token_attempts_differ_and_attempt_0_is_the_old_token() -> None:
    args = (REGION, "bench", GROUP, 2, 0, "us-east-1a")
    tokens = {planning.client_token(*args, attempt=n) for n in range(5)}
    assert len(tokens) == 5 and all(len(t) <= 64 and t.isascii() for t in tokens)
    assert planning.client_token(*args) == planning.client_token(*args, attempt=0)


# ---------------------------------------------------------------- an EC2 stand-in over real HTTP


EC2_NS = "http://ec2.amazonaws.com/doc/2016-11-15/"


# ---------------------------------------------------------------- AMI search


def _stubbed() -> tuple[Ec2Provider, Stubber]:
    prov = Ec2Provider(REGION, endpoint_url="http://127.0.0.1:9", access_key="testing", secret_key="testing")
    return prov, Stubber(prov.client)


def _image(ami: str, name: str, description: str, **extra: Any) -> dict[str, Any]:
    return {"ImageId": ami, "Name": name, "Description": description, "Architecture": "x86_64",
            "State": "available", "RootDeviceName": "/dev/sda1", **extra}


SEARCH = {
    "Owners": ["amazon"],
    "Filters": [
        {"Name": "name", "Values": list(amis.DLAMI_NAME_PATTERNS)},
        {"Name": "state", "Values": ["available"]},
    ],
    "IncludeDeprecated": True,
    "MaxResults": ec2.IMAGE_PAGE_SIZE,
}
LAST_INF1 = _image("ami-0c1f5e2a9d4b70a11", "Deep Learning AMI Neuron (Ubuntu 22.04) 20250919",
                   "Supported EC2 instances: Inf1, Inf2, Trn1, Trn1n, Trn2. PyTorch Neuron 1.13, Neuron SDK 2.26.0",
                   DeprecationTime="2026-09-19T00:00:00.000Z")
NEWER = _image("ami-0a6b5c4d3e2f10f66", "Deep Learning AMI Neuron (Ubuntu 22.04) 20251220",
               "Supported EC2 instances: Inf2, Trn1, Trn1n, Trn2. PyTorch 2.8, Neuron SDK 2.27.0")
OLDER = _image("ami-0b7e3d6c2a1f90b22", "Deep Learning AMI Neuron (Ubuntu 22.04) 20250731",
               "Supported EC2 instances: Inf1, Inf2, Trn1, Trn1n. PyTorch Neuron 1.13, Neuron SDK 2.25.0",
               DeprecationTime="2026-07-31T00:00:00.000Z")


def test_image_search_includes_deprecated_images_and_reads_every_page() -> None:
    prov, stub = _stubbed()
    stub.add_response("describe_images", {"Images": [NEWER, OLDER], "NextToken": "page-2"}, SEARCH)
    stub.add_response("describe_images", {"Images": [LAST_INF1]}, {**SEARCH, "NextToken": "page-2"})
    with stub:
        image = amis.resolve_image(prov, None)
        stub.assert_no_pending_responses()
    assert image["ImageId"] == LAST_INF1["ImageId"]  # deprecated, on the second page: still the one to use


def test_a_pinned_image_is_found_even_when_deprecated() -> None:
    prov, stub = _stubbed()
    stub.add_response("describe_images", {"Images": [LAST_INF1]},
                      {"ImageIds": [LAST_INF1["ImageId"]], "IncludeDeprecated": True})
    with stub:
        assert prov.image(LAST_INF1["ImageId"]) == LAST_INF1


def test_the_describe_images_model_has_what_the_search_sends() -> None:
    """The installed botocore's EC2 model: DescribeImages takes IncludeDeprecated and is paginated."""
    client = boto3.session.Session().client("ec2", region_name=REGION, aws_access_key_id="x",
                                            aws_secret_access_key="y")
    members = client.meta.service_model.operation_model("DescribeImages").input_shape.members
    assert {"IncludeDeprecated", "MaxResults", "NextToken"} <= set(members)
    assert client.can_paginate("describe_images")


# ---------------------------------------------------------------- the Inf1 verdict


@pytest.mark.parametrize(
    ("name", "description", "release", "verdict"),
    [
        ("Deep Learning AMI Neuron (Ubuntu 22.04) 20250101",
         "Supported EC2 instances: Inf1, Inf2, Trn1, Trn1n. PyTorch Neuron 1.13, Neuron SDK 2.19.1",
         (2, 19, 1), True),
        ("Deep Learning AMI Neuron (Ubuntu 22.04) 20251105",
         "Supported EC2 instances: Inf1, Inf2, Trn1, Trn1n. PyTorch Neuron 1.13, Neuron SDK 2.26.1",
         (2, 26, 1), False),
        ("Deep Learning AMI Neuron (Ubuntu 22.04) 20250919",
         "Deep Learning AMI Neuron (Ubuntu 22.04) with Neuron SDK 2.26.0. Supported EC2 instances: Inf1, Inf2, "
         "Trn1, Trn1n, Trn2.", (2, 26, 0), True),
        ("Deep Learning AMI Neuron (Ubuntu 22.04) 20251220",
         "Supported EC2 instances: Inf2, Trn1, Trn1n, Trn2, Trn3. Neuron SDK version 2.27.0", (2, 27, 0), False),
        ("Deep Learning AMI Neuron PyTorch 1.13 (Ubuntu 20.04)", "PyTorch Neuron 1.13", None, None),
        ("Deep Learning AMI Neuron PyTorch 1.13 (Ubuntu 20.04)", "TensorFlow Neuron 2.10, torch-neuron 1.13.1.2.9.0",
         None, None),
        ("Deep Learning AMI Neuron PyTorch 1.13 (Ubuntu 20.04) 20251105", "PyTorch Neuron version 1.13", None, False),
        ("Deep Learning AMI Neuron PyTorch 1.13 (Ubuntu 20.04) 20240627", "PyTorch Neuron 1.13", None, True),
        ("Deep Learning AMI Neuron PyTorch 1.13 (Ubuntu 20.04)",
         "Supported EC2 instances: Inf1, Inf2. PyTorch Neuron 1.13", None, True),
        ("Deep Learning Base Neuron AMI (Ubuntu 22.04) 20250101", "Neuron SDK: v2.21.1, neuron-cc 1.11.4.0",
         (2, 21, 1), True),
        ("Deep Learning Base Neuron AMI (Ubuntu 22.04) 20251101", "Neuron release 2.26.1", (2, 26, 1), False),
        ("Deep Learning Base Neuron AMI (Ubuntu 22.04)",
         "Neuron SDK 2.25.0 images, updated to Neuron SDK 2.26.1", (2, 26, 1), False),
        ("ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-20250925",
         "Canonical, Ubuntu, 22.04 LTS, amd64 jammy image build on 2025-09-25", None, None),
    ],
)
def test_inf1_verdict_reads_the_sdk_release_never_a_framework_version(
    name: str, description: str, release: tuple[int, ...] | None, verdict: bool | None
) -> None:
    image = {"Name": name, "Description": description}
    assert amis.neuron_release(image) == release
    assert amis.inf1_verdict(image)[0] is verdict


def test_the_verdict_says_which_release_it_read() -> None:
    image = {"Description": "Supported EC2 instances: Inf1, Inf2. PyTorch Neuron 1.13, Neuron SDK 2.19.1"}
    assert amis.inf1_verdict(image) == (True, "Neuron release 2.19.1")
