"""Two INFPROV_HOMEs (two people) sharing one AWS account (moto): each home's key pair, tags and reach are its
own (issue 25, item 0)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from infprov.floor import paths
from infprov.floor.errors import InfprovError, UsageError
from infprov.provision import cloud
from infprov.provision.ec2 import tag_map
from infprov.provision.providers import AwsProvider
from tests.moto_cloud import FAST, REGION, _cli, _key, _live, _managed_everything, _up


@pytest.fixture()
def homes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prov: AwsProvider) -> dict[str, Path]:
    return {"a": tmp_path / "home-a", "b": tmp_path / "home-b"}


def _as(monkeypatch: pytest.MonkeyPatch, home: Path) -> str:
    monkeypatch.setenv("INFPROV_HOME", str(home))
    return paths.home_id()


def test_two_homes_get_their_own_key_pair_and_tags(prov: AwsProvider, homes: dict[str, Path],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    id_a = _as(monkeypatch, homes["a"])
    key_a = _key()
    alice = _up(prov, name="alice")
    id_b = _as(monkeypatch, homes["b"])
    key_b = _key()
    bob = _up(prov, name="bob")  # the teammate's `up` no longer meets alice's key pair
    assert id_a != id_b and key_a != key_b
    assert key_a == f"infprov-{REGION}-{id_a}" and alice.key_name == key_a and bob.key_name == key_b
    assert (homes["a"] / "home-id").read_text().strip() == id_a
    assert oct((homes["a"] / "home-id").stat().st_mode & 0o777) == "0o600"
    for cluster, home in (("alice", id_a), ("bob", id_b)):
        (inst,) = _live(prov, cluster)
        assert tag_map(inst)["infprov:home"] == home
    (group,) = prov.security_groups({"group-id": [bob.security_group]})
    assert tag_map(group)["infprov:home"] == id_b
    key = prov.key_pair(key_b)
    assert key is not None and tag_map(key)["infprov:home"] == id_b
    assert paths.home_id() == id_b  # kept, not made again


def test_teardown_all_status_and_names_stay_within_the_home(prov: AwsProvider, homes: dict[str, Path],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    id_a = _as(monkeypatch, homes["a"])
    key_a = _key()
    _up(prov, name="alice")
    id_b = _as(monkeypatch, homes["b"])
    _up(prov, name="bob")

    st = cloud.status(provider=prov)
    shown = {c.name: (c.mine, c.home) for c in st.clusters}
    assert shown == {"bob": (True, id_b), "alice": (False, id_a)}
    inv = yaml.safe_load((homes["b"] / "inventory.yml").read_text())
    assert list(inv["all"]["children"]) == ["bob"]  # another home's hosts are never recorded here

    with pytest.raises(UsageError, match="belongs to another infprov home") as info:
        cloud.teardown(name="alice", yes=True, provider=prov, timeouts=FAST)
    assert "--any-home" in info.value.hint
    with pytest.raises(UsageError, match="belongs to another infprov home"):
        _up(prov, name="alice")
    assert len(_live(prov, "alice")) == 1

    result = cloud.teardown(all_clusters=True, yes=True, provider=prov, timeouts=FAST)
    assert result.ok and "this infprov home" in result.scope
    assert len(result.instances) == 1 and result.key_pairs == (_key(),)
    assert _live(prov, "bob") == [] and len(_live(prov, "alice")) == 1
    assert prov.key_pair(key_a) is not None

    _as(monkeypatch, homes["a"])
    assert cloud.teardown(name="alice", yes=True, provider=prov, timeouts=FAST).key_pairs == (key_a,)
    assert _managed_everything(prov) == []


def test_a_lost_private_key_names_only_this_homes_clusters(prov: AwsProvider, homes: dict[str, Path],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    _as(monkeypatch, homes["a"])
    _up(prov, name="alice")
    _as(monkeypatch, homes["b"])
    _up(prov, name="bob")
    (homes["b"] / "keys" / f"{_key()}.pem").unlink()
    with pytest.raises(InfprovError, match="in use by 1 instance") as info:
        _up(prov, name="bob2")
    line = info.value.line()
    assert "bob" in line and "alice" not in line and "--all" not in line
    assert "infprov teardown --name bob --region us-east-1" in info.value.hint


def test_any_home_reaches_every_home_when_asked(prov: AwsProvider, homes: dict[str, Path],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    _as(monkeypatch, homes["a"])
    _up(prov, name="alice")
    _as(monkeypatch, homes["b"])
    _up(prov, name="bob")
    dry = cloud.teardown(all_clusters=True, any_home=True, dry_run=True, provider=prov, timeouts=FAST)
    assert len(dry.instances) == 2 and "every infprov home" in dry.scope
    result = cloud.teardown(all_clusters=True, any_home=True, yes=True, provider=prov, timeouts=FAST)
    assert result.ok and len(result.key_pairs) == 2
    assert _managed_everything(prov) == []


def test_status_on_the_cli_marks_other_homes_clusters(prov: AwsProvider, homes: dict[str, Path],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    id_a = _as(monkeypatch, homes["a"])
    _up(prov, name="alice")
    _as(monkeypatch, homes["b"])
    _up(prov, name="bob")
    shown = _cli(["status", "--region", REGION, "--no-health"])
    assert shown.exit_code == 0, shown.output
    assert f"alice (another home's: {id_a})" in shown.stdout
    doc = json.loads(_cli(["status", "--region", REGION, "--json", "--no-health"]).stdout)
    assert {c["name"]: c["mine"] for c in doc["clusters"]} == {"alice": False, "bob": True}
    refused = _cli(["teardown", "--name", "alice", "--region", REGION, "--yes"])
    assert refused.exit_code == 2 and "another infprov home" in refused.stderr
    assert len(_live(prov, "alice")) == 1

