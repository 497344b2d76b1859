"""`infprov stop` against moto (issue 25, item 12): on-demand instances stop and are shown stopped with their
storage, a second stop changes nothing, spot instances and another home's cluster are refused before anything
is stopped, and what `stop` calls is what the IAM policy allows."""

from __future__ import annotations

from pathlib import Path

import pytest

from infprov.floor.errors import UsageError
from infprov.provision import catalog, cloud
from infprov.provision.providers import AwsProvider
from tests.moto_cloud import FAST, _live, _up


def test_stop_stops_and_status_shows_the_kept_storage(prov: AwsProvider) -> None:
    up = _up(prov, name="pause", count=2)
    ids = sorted(up.launched)
    done = cloud.stop(name="pause", provider=prov, timeouts=FAST)
    assert sorted(done.stopped) == ids and done.already_stopped == ()
    assert {i["State"]["Name"] for i in _live(prov, "pause")} == {"stopped"}
    price = catalog.storage_price("gp3", "us-east-1")
    assert price is not None and done.storage_price == price
    gib = sum(int(v["Size"]) for v in prov.volumes({"tag:infprov:cluster": ["pause"]}))
    assert gib > 0 and done.storage_gib == gib and done.storage_monthly_cost == round(gib * price, 2)

    [cluster] = cloud.status(name="pause", provider=prov).clusters
    assert cluster.stopped and cluster.hourly_cost == 0.0 and cluster.storage_gib == gib
    again = cloud.stop(name="pause", provider=prov, timeouts=FAST)
    assert again.stopped == () and sorted(again.already_stopped) == ids


def test_spot_is_refused_before_anything_stops(prov: AwsProvider) -> None:
    _up(prov, name="cheap", spot=True)
    with pytest.raises(UsageError, match="spot instance"):
        cloud.stop(name="cheap", provider=prov, timeouts=FAST)
    assert {i["State"]["Name"] for i in _live(prov, "cheap")} == {"running"}


def test_another_homes_cluster_and_a_missing_one_are_refused(prov: AwsProvider, infprov_home: Path,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             tmp_path: Path) -> None:
    _up(prov, name="alice")
    monkeypatch.setenv("INFPROV_HOME", str(tmp_path / "bob"))
    with pytest.raises(UsageError, match="belongs to another infprov home"):
        cloud.stop(name="alice", provider=prov, timeouts=FAST)
    assert {i["State"]["Name"] for i in _live(prov, "alice")} == {"running"}
    with pytest.raises(UsageError, match="no cluster nosuch in us-east-1"):
        cloud.stop(name="nosuch", provider=prov, timeouts=FAST)


def test_up_refuses_an_idle_watch_that_would_contradict_a_pending_deadline(prov: AwsProvider) -> None:
    """`up --idle-stop` (stop) on a cluster whose auto-teardown deadline is pending is refused before anything
    changes (issue 25, item 13), and so is a deadline on a cluster that stops itself when idle."""
    from datetime import datetime, timedelta, timezone

    from infprov.provision import autoteardown, idlestop
    from tests.moto_cloud import CIDR, _cli

    up = _up(prov, name="mix")
    soon = autoteardown.deadline_tag(datetime.now(timezone.utc) + timedelta(hours=1))
    prov.create_tags(list(up.launched), {autoteardown.TAG: soon})
    argv = ["up", "--type", "inf1.6xlarge", "--name", "mix", "--yes", "--ssh-cidr", CIDR, "--no-preflight"]
    refused = _cli([*argv, "--idle-stop", "30m"])
    assert refused.exit_code == 2, refused.output
    assert "has an auto-teardown deadline" in refused.stderr and "--down" in refused.stderr
    prov.create_tags(list(up.launched), {autoteardown.TAG: autoteardown.CANCELLED, idlestop.TAG: "30m stop"})
    refused = _cli([*argv, "--auto-teardown", "2h"])
    assert refused.exit_code == 2 and "stops itself when idle" in refused.stderr, refused.output
    assert all(i["State"]["Name"] == "running" for i in _live(prov, "mix"))
