"""`status` and `teardown` against a real moto EC2 server over HTTP, and the CLI's results and exit codes."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from infprov.provision import cloud, providers
from infprov.provision.providers import AwsProvider
from tests.moto_cloud import CIDR, FAST, NEW_AMI, SshSeen, _cli, _fail, _key, _live, _managed_everything, _up

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
    assert result.key_pairs == (_key(),)
    assert _managed_everything(prov) == []
    assert not (infprov_home / "keys" / f"{_key()}.pem").exists()
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
    assert prov.key_pair(_key()) is not None and len(_live(prov, "b")) == 1
    second = cloud.teardown(name="b", yes=True, provider=prov, timeouts=FAST)
    assert second.key_pairs == (_key(),)
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
    assert len(_live(prov, "dry")) == 1 and prov.key_pair(_key()) is not None


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




def test_cli_up_json_status_and_teardown(prov: AwsProvider, no_ssh: SshSeen) -> None:
    r = _cli(["up", "--skip-server", "--type", "inf1.xlarge", "--name", "cli", "--count", "2", "--ssh-cidr", CIDR,
              "--tag", "team=ml", "--yes", "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["cluster"] == "cli" and len(doc["hosts"]) == 2 and doc["hourly_cost"] == pytest.approx(0.456)
    assert {h["neuron_devices"] for h in doc["hosts"]} == {1}
    assert len(no_ssh.hosts) == 2
    assert len(no_ssh.consoles) == 2  # on EC2 the wait gets each instance's console to check host keys

    r = _cli(["status", "--json", "--no-health"])  # moto has no hosts behind its addresses
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
    r = _cli(["status", "--name", "x"])  # a cluster named, but no region to look in
    assert r.exit_code == 2 and "--region" in r.stderr
    r = _cli(["teardown", "--name", "x", "--yes"])
    assert r.exit_code == 2 and "--region" in r.stderr
