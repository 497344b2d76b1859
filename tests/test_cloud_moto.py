"""The cloud lifecycle against a real moto EC2 server over HTTP (the sandbox's endpoint), and the CLI's exits."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from infprov.floor.errors import InfprovError, UsageError, WaitTimeout
from infprov.provision import access, cloud, planning, providers, reach, specs
from infprov.provision.cli import app
from infprov.provision.ec2 import tag_map
from infprov.provision.providers import AwsProvider, SandboxProvider
from infprov.sandbox import ec2endpoint

REGION = "us-east-1"
CIDR = "198.51.100.7/32"
FAST = specs.Timeouts(
    running=5, status_ok=5, ssh_port=5, ssh_login=5, terminated=5, sg_delete=2, lock=20, interval=0.02
)
CHOSEN_AMI = "ami-0c1f5e2a9d4b70a11"  # Neuron 2.26.0 multi-framework: the newest that drives Inf1
NEW_AMI = "ami-0a6b5c4d3e2f10f66"  # Neuron 2.27.0: cannot drive Inf1
UBUNTU_AMI = "ami-04b70fa74e45c3917"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def moto_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    state = tmp_path_factory.mktemp("moto")
    url = ec2endpoint.start(state, _free_port())
    try:
        yield url
    finally:
        ec2endpoint.stop(state)
        assert ec2endpoint.is_running(state) is None


@pytest.fixture()
def prov(moto_url: str, infprov_home: Path, monkeypatch: pytest.MonkeyPatch) -> AwsProvider:
    """A fresh moto, a private INFPROV_HOME, and the environment a CLI run would see."""
    req = urllib.request.Request(f"{moto_url}/moto-api/reset", method="POST")
    with urllib.request.urlopen(req, timeout=10):
        pass
    for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_EC2"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)  # boto3 honours it natively
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(infprov_home.parent / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(infprov_home.parent / "no-aws-credentials"))
    return AwsProvider(REGION, endpoint_url=moto_url, access_key="testing", secret_key="testing")


class SshSeen:
    """Stands in for the SSH wait: plain moto has no hosts behind its addresses."""

    def __init__(self) -> None:
        self.hosts: list[specs.Host] = []
        self.consoles: list[str] = []

    def __call__(self, hosts: Sequence[specs.Host], timeouts: specs.Timeouts,
                 console: Callable[[str], str] | None = None) -> None:
        self.hosts.extend(hosts)
        if console is not None:
            self.consoles.extend(console(h.instance_id) for h in hosts)


def _up(prov: AwsProvider, ssh: specs.SshWait | None = None, confirm: specs.Confirm | None = None,
        **kwargs: Any) -> specs.UpResult:
    spec = specs.UpSpec(**{"instance_type": "inf1.6xlarge", "ssh_cidr": CIDR, "yes": True, **kwargs})
    return cloud.up(spec, provider=prov, ssh_wait=ssh or SshSeen(), confirm=confirm, timeouts=FAST)


def _live(prov: AwsProvider, cluster: str | None = None) -> list[dict[str, Any]]:
    """The cluster's live instances as EC2 itself describes them (raw, every field)."""
    filters = {**planning.cluster_filter(cluster), "instance-state-name": list(specs.NOT_GONE_STATES)}
    answer = prov.client.describe_instances(Filters=[{"Name": k, "Values": list(v)} for k, v in filters.items()])
    return [i for r in answer["Reservations"] for i in r["Instances"]]


def _managed_everything(prov: AwsProvider) -> list[str]:
    """Every infprov-made resource still there, as 'type id' strings."""
    left = [f"instance {i['InstanceId']}" for i in _live(prov)]
    left += [f"sg {g['GroupId']}" for g in prov.security_groups({"tag:infprov:managed": ["true"]})]
    left += [f"volume {v['VolumeId']}" for v in prov.volumes({"tag:infprov:managed": ["true"]})]
    left += [f"key {k['KeyName']}" for k in prov.key_pairs({"tag:infprov:managed": ["true"]})]
    return left


def _fail(prov: AwsProvider, operation: str, code: str, when: Callable[[dict[str, Any]], bool] = lambda p: True,
          times: int | None = None) -> list[dict[str, Any]]:
    """Make EC2 answer `operation` with error `code`, at the API layer before any HTTP is sent.

    Returns the serialized parameters of every call (failed or not), e.g. {"SubnetId": ..., "ClientToken": ...}.
    """
    calls: list[dict[str, Any]] = []
    failed = [0]

    class Http:
        status_code = 400

    def hook(params: dict[str, Any], **_: Any) -> Any:
        body = params.get("body")
        sent = dict(body) if isinstance(body, dict) else dict(urllib.parse.parse_qsl(body or ""))
        calls.append(sent)
        if when(sent) and (times is None or failed[0] < times):
            failed[0] += 1
            return Http(), {"Error": {"Code": code, "Message": f"injected {code}"}}
        return None

    for client in (prov.client, prov.launch_client):  # RunInstances goes through a client of its own
        client.meta.events.register(f"before-call.ec2.{operation}", hook)
    return calls


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
        assert host.key_file == str(infprov_home / "keys" / "infprov-us-east-1.pem")

    instances = _live(prov, "bench")
    assert len(instances) == 2
    for inst in instances:
        assert inst["State"]["Name"] == "running"
        assert inst["ImageId"] == CHOSEN_AMI
        assert inst["MetadataOptions"]["HttpTokens"] == "required"
        assert tag_map(inst) == {"infprov:cluster": "bench", "infprov:managed": "true", "Name": "infprov-bench",
                                 "team": "ml"}
        attr = prov.client.describe_instance_attribute(InstanceId=inst["InstanceId"],
                                                       Attribute="instanceInitiatedShutdownBehavior")
        assert attr["InstanceInitiatedShutdownBehavior"]["Value"] == "terminate"
        assert inst["KeyName"] == "infprov-us-east-1"
    volumes = prov.volumes({"attachment.instance-id": [i["InstanceId"] for i in instances]})
    assert len(volumes) == 2
    for vol in volumes:
        assert (vol["Size"], vol["VolumeType"], vol["Encrypted"]) == (150, "gp3", True)
        assert tag_map(vol)["infprov:cluster"] == "bench" and tag_map(vol)["team"] == "ml"

    (group,) = prov.security_groups({"group-id": [result.security_group]})
    assert tag_map(group)["infprov:cluster"] == "bench"
    assert [(p["IpProtocol"], p["FromPort"], p["ToPort"], [r["CidrIp"] for r in p["IpRanges"]], p["Ipv6Ranges"])
            for p in group["IpPermissions"]] == [("tcp", 22, 22, [CIDR], [])]

    key = prov.key_pair("infprov-us-east-1")
    assert key is not None and tag_map(key)["infprov:managed"] == "true"
    key_file = infprov_home / "keys" / "infprov-us-east-1.pem"
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
    def no_ssh(hosts: Sequence[specs.Host], timeouts: specs.Timeouts) -> None:
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
    instance back (moto does not keep tokens: tests/test_cloud_launch.py covers EC2's answer)."""
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


# ---------------------------------------------------------------- status


def test_status_reports_state_uptime_cost_and_refreshes_the_inventory(prov: AwsProvider, infprov_home: Path) -> None:
    result = _up(prov, name="s1", count=2)
    gone = result.launched[1]
    prov.client.terminate_instances(InstanceIds=[gone])  # behind infprov's back
    later = datetime.now(timezone.utc) + timedelta(hours=2)
    st = cloud.status(provider=prov, now=later)
    (cluster,) = st.clusters
    assert cluster.name == "s1"
    (inst,) = cluster.instances
    assert inst.instance_id == result.launched[0] and inst.state == "running"
    assert inst.instance_type == "inf1.6xlarge" and inst.address
    assert inst.uptime_s is not None and inst.uptime_s >= 7200
    assert inst.cost_so_far == pytest.approx(2.36, abs=0.05)
    inv = yaml.safe_load((infprov_home / "inventory.yml").read_text())
    assert list(inv["all"]["children"]["s1"]["hosts"]) == [result.launched[0]]


# ---------------------------------------------------------------- teardown


def test_teardown_leaves_nothing_tagged_and_can_run_again(prov: AwsProvider, infprov_home: Path) -> None:
    _up(prov, name="gone", count=2, tags=(("team", "ml"),))
    assert _managed_everything(prov)
    result = cloud.teardown(name="gone", yes=True, provider=prov, timeouts=FAST)
    assert result.ok and len(result.instances) == 2 and len(result.security_groups) == 1
    assert result.key_pairs == ("infprov-us-east-1",)
    assert _managed_everything(prov) == []
    assert not (infprov_home / "keys" / "infprov-us-east-1.pem").exists()
    assert cloud.sweep(prov, "gone") == []
    inv = yaml.safe_load((infprov_home / "inventory.yml").read_text())
    assert "gone" not in (inv["all"].get("children") or {})
    again = cloud.teardown(name="gone", yes=True, provider=prov, timeouts=FAST)
    assert again.ok and again.nothing


def test_teardown_keeps_the_region_key_while_another_cluster_uses_it(prov: AwsProvider) -> None:
    _up(prov, name="a", count=1)
    _up(prov, name="b", count=1)
    first = cloud.teardown(name="a", yes=True, provider=prov, timeouts=FAST)
    assert first.ok and first.key_pairs == ()
    assert prov.key_pair("infprov-us-east-1") is not None and len(_live(prov, "b")) == 1
    second = cloud.teardown(name="b", yes=True, provider=prov, timeouts=FAST)
    assert second.key_pairs == ("infprov-us-east-1",)
    assert _managed_everything(prov) == []


def test_teardown_all_removes_every_cluster(prov: AwsProvider) -> None:
    _up(prov, name="a", count=1)
    _up(prov, name="b", count=2)
    result = cloud.teardown(all_clusters=True, yes=True, provider=prov, timeouts=FAST)
    assert result.ok and len(result.instances) == 3 and len(result.security_groups) == 2
    assert _managed_everything(prov) == []


def test_teardown_dry_run_changes_nothing(prov: AwsProvider) -> None:
    up = _up(prov, name="dry", count=1)
    result = cloud.teardown(name="dry", dry_run=True, provider=prov, timeouts=FAST)
    assert result.dry_run and result.instances == up.launched and result.security_groups == (up.security_group,)
    assert len(_live(prov, "dry")) == 1 and prov.key_pair("infprov-us-east-1") is not None


def test_teardown_retries_the_group_while_it_is_still_in_use(prov: AwsProvider) -> None:
    _up(prov, name="dep", count=1)
    calls = _fail(prov, "DeleteSecurityGroup", "DependencyViolation", times=3)
    result = cloud.teardown(name="dep", yes=True, provider=prov, timeouts=FAST)
    assert len(calls) == 4 and result.ok
    assert _managed_everything(prov) == []


def test_teardown_reports_what_it_could_not_delete(prov: AwsProvider) -> None:
    up = _up(prov, name="stuck", count=1)
    _fail(prov, "DeleteSecurityGroup", "DependencyViolation")
    result = cloud.teardown(name="stuck", yes=True, provider=prov, timeouts=FAST)
    assert not result.ok
    assert [(x.resource_type, x.resource_id) for x in result.leftovers] == [("security-group", up.security_group)]
    assert _live(prov, "stuck") == []


# ---------------------------------------------------------------- the CLI: results, exit codes, nothing half-made


def _cli(args: list[str]) -> Any:
    return CliRunner().invoke(app, args)


@pytest.fixture()
def no_ssh(monkeypatch: pytest.MonkeyPatch) -> SshSeen:
    seen = SshSeen()
    monkeypatch.setattr(reach, "wait_for_ssh", seen)
    monkeypatch.setattr(specs, "DEFAULT_TIMEOUTS", FAST)
    return seen


def test_cli_up_json_status_and_teardown(prov: AwsProvider, no_ssh: SshSeen) -> None:
    r = _cli(["up", "--skip-server", "--type", "inf1.xlarge", "--name", "cli", "--count", "2", "--ssh-cidr", CIDR,
              "--tag", "team=ml", "--yes", "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["cluster"] == "cli" and len(doc["hosts"]) == 2 and doc["hourly_cost"] == pytest.approx(0.456)
    assert {h["neuron_devices"] for h in doc["hosts"]} == {1}
    assert len(no_ssh.hosts) == 2
    assert len(no_ssh.consoles) == 2  # on EC2 the wait gets each instance's console to check host keys

    r = _cli(["status", "--json"])
    assert r.exit_code == 0, r.output
    st = json.loads(r.stdout)
    assert [c["name"] for c in st["clusters"]] == ["cli"] and len(st["clusters"][0]["instances"]) == 2

    r = _cli(["teardown", "--name", "cli", "--yes", "--json"])
    assert r.exit_code == 0, r.output
    td = json.loads(r.stdout)
    assert td["ok"] and len(td["instances"]) == 2 and td["leftovers"] == []
    assert _managed_everything(prov) == []


def test_cli_teardown_with_leftovers_exits_1(
    prov: AwsProvider, no_ssh: SshSeen, monkeypatch: pytest.MonkeyPatch
) -> None:
    _up(prov, name="left", count=1)
    _fail(prov, "DeleteSecurityGroup", "DependencyViolation")
    monkeypatch.setattr(providers, "connect", lambda region, sandbox: prov)
    r = _cli(["teardown", "--name", "left", "--yes", "--json"])
    assert r.exit_code == 1
    assert json.loads(r.stdout)["leftovers"][0]["resource_type"] == "security-group"
    assert "still left after teardown" in r.stderr and "hint:" in r.stderr


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["up", "--type", "inf9.huge"], "unknown instance type"),
        (["up", "--type", "trn2.48xlarge"], "unknown instance type"),
        (["up", "--type", "inf1.xlarge", "--count", "0"], "--count 0"),
        (["up", "--type", "inf1.xlarge", "--count", "-3"], "--count -3"),
        (["up", "--type", "inf1.xlarge", "--tag", "novalue"], "KEY=VALUE"),
        (["up", "--type", "inf1.xlarge", "--tag", "aws:owner=me"], "reserved"),
        (["up", "--type", "inf1.xlarge", "--ssh-cidr", "not-an-ip"], "--ssh-cidr"),
        (["up", "--type", "inf1.xlarge", "--ssh-cidr", "0.0.0.0/0"], "whole internet"),
        (["up", "--type", "inf1.xlarge", "--name", "My Cluster"], "cluster name"),
        (["up", "--type", "inf1.xlarge", "--ami", "latest"], "--ami"),
        (["up", "--type", "inf1.xlarge", "--region", "mars-1"], "--region"),
        (["up", "--type", "inf1.xlarge", "--disk", "20"], "--disk"),
        (["up", "--type", "inf1.xlarge", "--ssh-cidr", CIDR, "--ami", NEW_AMI, "--yes"], "cannot drive Inf1"),
        (["up", "--type", "inf1.xlarge", "--ssh-cidr", CIDR, "--key-name", "nokey", "--yes"], "key pair nokey"),
        (["up", "--type", "inf1.xlarge", "--ssh-cidr", CIDR], "not interactive"),
        (["teardown", "--name", "x", "--all"], "exclude each other"),
        (["status", "--name", "UPPER"], "cluster name"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line_and_makes_nothing(
    prov: AwsProvider, no_ssh: SshSeen, args: list[str], fragment: str
) -> None:
    r = _cli(args)
    assert r.exit_code == 2, r.output
    assert r.stdout == ""
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and fragment in errors[0] and "hint:" in errors[0], r.stderr
    assert r.stderr.rstrip().endswith(errors[0].rstrip())  # the error is the last word
    assert _managed_everything(prov) == []
    assert no_ssh.hosts == []


def test_cli_teardown_without_yes_in_a_pipe_refuses_and_keeps_everything(prov: AwsProvider, no_ssh: SshSeen) -> None:
    _up(prov, name="keep", count=1)
    r = _cli(["teardown", "--name", "keep"])
    assert r.exit_code == 2 and "pass --yes" in r.stderr
    assert len(_live(prov, "keep")) == 1


def test_cli_missing_region_is_a_usage_error(prov: AwsProvider, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    r = _cli(["status"])
    assert r.exit_code == 2 and "--region" in r.stderr


# ---------------------------------------------------------------- --sandbox: the endpoint and host mapping


class FakeCore:
    """The sandbox core's contract (status / assign_host / release_host) over a given endpoint."""

    def __init__(self, endpoint: str | None, hosts: list[dict[str, Any]]) -> None:
        self.endpoint = endpoint
        self.hosts = hosts
        self.assigned: dict[str, dict[str, Any]] = {}
        self.released: list[str] = []

    def status(self) -> dict[str, Any]:
        return {"ec2_endpoint": self.endpoint, "hosts": self.hosts}

    def assign_host(self, instance_id: str, neuron_devices: int | None = None) -> dict[str, Any]:
        if instance_id not in self.assigned:
            free = [h for h in self.hosts if h not in self.assigned.values()]
            self.assigned[instance_id] = free[0]
        if neuron_devices is not None:  # as the real one: the host shows the type's devices
            self.assigned[instance_id]["neuron_devices"] = neuron_devices
        return self.assigned[instance_id]

    def release_host(self, instance_id: str) -> None:
        self.released.append(instance_id)
        self.assigned.pop(instance_id, None)

    def free_hosts(self) -> int:
        return sum(1 for h in self.hosts if h not in self.assigned.values())

    def reconcile(self, live: set[str]) -> list[str]:
        stale = [i for i in self.assigned if i not in live]
        for instance_id in stale:
            self.release_host(instance_id)
        return stale


def _sandbox_host(name: str, address: str, port: int, key_file: str, devices: int = 4) -> dict[str, Any]:
    return {"name": name, "address": address, "port": port, "user": "ubuntu", "key_file": key_file,
            "neuron_devices": devices}


def test_sandbox_not_up_says_how_to_start_it(prov: AwsProvider, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(providers, "sandbox_core", lambda: FakeCore(None, []))
    r = _cli(["up", "--skip-server", "--type", "inf1.6xlarge", "--sandbox", "--yes"])
    assert r.exit_code == 1
    assert "sandbox is not up" in r.stderr and "infprov sandbox up" in r.stderr


def test_sandbox_region_is_fixed(prov: AwsProvider, monkeypatch: pytest.MonkeyPatch, moto_url: str) -> None:
    monkeypatch.setattr(providers, "sandbox_core", lambda: FakeCore(moto_url, []))
    r = _cli(["status", "--sandbox", "--region", "eu-west-1"])
    assert r.exit_code == 2 and "us-east-1 only" in r.stderr


def test_sandbox_maps_instances_to_hosts_and_teardown_releases_them(
    prov: AwsProvider, no_ssh: SshSeen, monkeypatch: pytest.MonkeyPatch, moto_url: str, tmp_path: Path
) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL")  # --sandbox finds the endpoint through the sandbox itself
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    key = str(tmp_path / "sandbox_key")
    core = FakeCore(moto_url, [_sandbox_host("h1", "10.237.0.11", 22, key),
                               _sandbox_host("h2", "10.237.0.12", 22, key, devices=1)])
    monkeypatch.setattr(providers, "sandbox_core", lambda: core)
    r = _cli(["up", "--skip-server", "--type", "inf1.6xlarge", "--count", "3", "--sandbox", "--yes"])
    assert r.exit_code == 2 and "sandbox up --hosts 3" in r.stderr

    r = _cli(["up", "--skip-server", "--type", "inf1.6xlarge", "--count", "2", "--sandbox", "--yes", "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["sandbox"] and doc["ssh_cidr"].endswith("/32")
    by_address = {h["address"]: h for h in doc["hosts"]}
    assert set(by_address) == {"10.237.0.11", "10.237.0.12"}
    # the host that had one device now shows the inf1.6xlarge's four, as the instance would
    assert by_address["10.237.0.12"]["neuron_devices"] == 4 and by_address["10.237.0.12"]["neuron_cores"] == 16
    assert {h.key_file for h in no_ssh.hosts} == {key}

    # a second cluster when no host is free: refused before anything is made for it
    r = _cli(["up", "--skip-server", "--type", "inf1.xlarge", "--name", "second", "--sandbox", "--yes"])
    assert r.exit_code == 2 and "0 of 2 are free" in r.stderr, r.output
    made = prov.client.describe_security_groups(
        Filters=[{"Name": "group-name", "Values": [planning.security_group_name("second")]}])
    assert made["SecurityGroups"] == []
    assert prov.instances({f"tag:{specs.TAG_CLUSTER}": ["second"]}) == []

    # a host still held by an instance the endpoint no longer has (a teardown cut short) is freed
    core.assigned["i-00000000gone00000"] = core.hosts[0]
    r = _cli(["teardown", "--sandbox", "--yes", "--json"])
    assert r.exit_code == 0, r.output
    assert "i-00000000gone00000" in core.released
    assert sorted(i for i in core.released if i != "i-00000000gone00000") == sorted(
        h["instance_id"] for h in doc["hosts"])
    assert _managed_everything(prov) == [] and core.assigned == {}


def test_sandbox_ssh_wait_is_real_against_a_loopback_sshd(
    prov: AwsProvider, monkeypatch: pytest.MonkeyPatch, moto_url: str, infprov_home: Path
) -> None:
    from tests import loopback_sshd

    reason = loopback_sshd.can_run()
    if reason:
        pytest.skip(f"loopback sshd: {reason}")
    # sshd reads the authorized keys as user ubuntu: every folder above them must be traversable.
    workdir = Path(tempfile.mkdtemp(prefix="infprov-cloud-sshd-"))
    workdir.chmod(0o755)
    (sshd,) = loopback_sshd.start_hosts(workdir, 1)
    try:
        core = FakeCore(moto_url, [_sandbox_host("h1", "127.0.0.1", sshd.port, str(sshd.key_file))])
        sandbox = SandboxProvider(REGION, endpoint_url=moto_url, access_key="testing", secret_key="testing", core=core)
        result = cloud.up(specs.UpSpec(instance_type="inf1.6xlarge", sandbox=True, yes=True), provider=sandbox,
                          timeouts=FAST)
        (host,) = result.hosts
        assert (host.address, host.port) == ("127.0.0.1", sshd.port)
        pinned = f"[127.0.0.1]:{sshd.port}"
        known_hosts = infprov_home / "known_hosts"
        assert pinned in known_hosts.read_text()

        sshd.stop()
        with pytest.raises(WaitTimeout) as err:  # the same wait, with nothing listening
            reach.wait_for_ssh(list(result.hosts), FAST)
        assert "SSH port" in err.value.message

        sshd.new_host_key()  # the reused host now shows another key: no waiting, a clear refusal
        sshd.start()
        started = time.monotonic()
        with pytest.raises(InfprovError) as err:
            reach.wait_for_ssh(list(result.hosts), FAST)
        assert "CHANGED" in err.value.message and time.monotonic() - started < FAST.ssh_login

        done = cloud.teardown(sandbox=True, yes=True, provider=sandbox, timeouts=FAST)
        assert done.ok and core.released == [host.instance_id]
        assert pinned not in known_hosts.read_text()  # the gone instance's key is forgotten
    finally:
        sshd.stop()
        shutil.rmtree(workdir, ignore_errors=True)


# ---------------------------------------------------------------- the endpoint itself


def test_endpoint_start_is_idempotent_and_refuses_a_taken_port(tmp_path: Path, moto_url: str) -> None:
    taken = int(moto_url.rsplit(":", 1)[1])
    with pytest.raises(InfprovError) as err:
        ec2endpoint.start(tmp_path / "other", taken)
    assert str(taken) in err.value.message and "INFPROV_SANDBOX_EC2_PORT" in err.value.hint
    assert ec2endpoint.is_running(tmp_path / "other") is None


def test_endpoint_stop_ends_only_its_own_process(tmp_path: Path) -> None:
    state = tmp_path / "ep"
    url = ec2endpoint.start(state, _free_port())
    assert ec2endpoint.start(state, _free_port()) == url  # already running: the same one
    pid = json.loads((state / ec2endpoint.PID_FILE).read_text())["pid"]
    (state / ec2endpoint.PID_FILE).write_text(json.dumps({"pid": os.getpid(), "port": 1, "start": 0}))
    ec2endpoint.stop(state)  # a PID file naming another process: that process is left alone
    assert os.path.exists(f"/proc/{os.getpid()}")
    (state / ec2endpoint.PID_FILE).write_text(
        json.dumps({"pid": pid, "port": int(url.rsplit(":", 1)[1]), "start": ec2endpoint._start_ticks(pid)})
    )
    assert ec2endpoint.is_running(state) == url
    ec2endpoint.stop(state)
    assert ec2endpoint.is_running(state) is None
    assert not os.path.exists(f"/proc/{pid}")  # ended and reaped


def test_console_output_is_read_as_text(prov: AwsProvider) -> None:
    result = _up(prov, name="console")
    [iid] = result.launched
    text = prov.console_output(iid)
    assert isinstance(text, str) and text  # moto serves a fixed console text
    assert prov.console_output("i-0000000000000dead") == ""  # an unknown instance: nothing to check against


def test_ctrl_c_while_the_group_is_made_says_how_to_continue(prov: AwsProvider, monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    def interrupted(*args: Any, **kwargs: Any) -> str:
        raise KeyboardInterrupt

    monkeypatch.setattr(access, "ensure_security_group", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _up(prov, name="cut")
    err = capsys.readouterr().err
    assert "interrupted while making the key pair and security group" in err
    assert "infprov up --type inf1.6xlarge --name cut" in err and "infprov teardown --name cut" in err
    assert _live(prov, "cut") == []


def test_an_endpoint_of_an_older_kind_is_replaced_not_reused(tmp_path: Path) -> None:
    state = tmp_path / "ep"
    url = ec2endpoint.start(state, _free_port())  # no power watch: not what a sandbox needs now
    first = json.loads((state / ec2endpoint.PID_FILE).read_text())["pid"]
    try:
        assert ec2endpoint.current(state, watch_hosts=False) == url
        assert ec2endpoint.current(state, watch_hosts=True) is None
        again = ec2endpoint.start(state, _free_port(), watch_hosts=True)
        second = json.loads((state / ec2endpoint.PID_FILE).read_text())["pid"]
        assert second != first and not os.path.exists(f"/proc/{first}")  # the old one ended
        assert ec2endpoint.current(state, watch_hosts=True) == again
    finally:
        ec2endpoint.stop(state)
