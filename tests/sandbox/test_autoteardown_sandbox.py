"""`up --auto-teardown`: the deadline parsed, tagged, shown by `status`, moved by `up` again, and in the
sandbox really ending the instance when its host powers itself off."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from infprov.provision import autoteardown
from infprov.provision.cli import app
from tests.hostshell import sandbox_ec2

runner = CliRunner()
CLUSTER = "autotd"


def _ec2_instance(instance_id: str) -> dict[str, Any]:
    ec2 = sandbox_ec2()
    inst: dict[str, Any] = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    return inst


def _scheduled_at(instance_id: str) -> int | None:
    """When the instance's sandbox host will power off (its shutdown's own record), or None."""
    from infprov.sandbox import core, records

    entry = core.host_for_instance(instance_id)
    assert entry is not None
    pid = records.read_state()["hosts"][entry["name"]]["init_pid"]
    path = Path(f"/proc/{pid}/root/run/infprov-power.at")
    return int(path.read_text()) if path.exists() else None


def _status() -> dict[str, Any]:
    result = runner.invoke(app, ["status", "--name", CLUSTER, "--json"])
    assert result.exit_code == 0, result.output
    [cluster] = json.loads(result.stdout)["clusters"]
    return dict(cluster)


@pytest.mark.sandbox
def test_the_deadline_is_shown_moved_and_really_ends_the_instance(sandbox_hosts: list[dict[str, Any]],
                                                                  cluster_home: Path) -> None:
    from infprov.sandbox import core

    argv = ["up", "--sandbox", "--type", "inf1.xlarge", "--name", CLUSTER, "--yes", "--skip-server", "--json"]
    first = runner.invoke(app, [*argv, "--auto-teardown", "3h"])
    assert first.exit_code == 0, first.output
    [iid] = json.loads(first.stdout)["launched"]
    try:
        far = datetime.now(timezone.utc) + timedelta(hours=3)
        [info] = _status()["instances"]
        deadline = autoteardown.read_deadline({autoteardown.TAG: info["auto_teardown"]})
        assert deadline is not None and abs((deadline - far).total_seconds()) < 60
        assert info["cost_so_far"] is not None
        at = _scheduled_at(iid)
        assert at is not None and abs(at - deadline.timestamp()) < 60  # the host's own shutdown agrees
        table = runner.invoke(app, ["status", "--name", CLUSTER])
        assert "auto-teardown" in table.stdout and "(in 2h5" in table.stdout, table.stdout

        # `up` again moves it (here: nearer, to see it happen), on the host and in the tag
        again = runner.invoke(app, [*argv, "--auto-teardown", "1m"])
        assert again.exit_code == 0, again.output
        assert json.loads(again.stdout)["launched"] == []
        soon = autoteardown.read_deadline({autoteardown.TAG: _status()["instances"][0]["auto_teardown"]})
        assert soon is not None and soon < deadline
        assert abs(_scheduled_at(iid) - soon.timestamp()) < 60  # type: ignore[operator]

        # the deadline comes: the host powers off, the EC2 endpoint terminates its instance, the host is freed
        limit = time.monotonic() + 180
        while time.monotonic() < limit and _ec2_instance(iid)["State"]["Name"] not in ("shutting-down", "terminated"):
            time.sleep(2)
        assert _ec2_instance(iid)["State"]["Name"] in ("shutting-down", "terminated")
        assert datetime.now(timezone.utc) >= soon - timedelta(seconds=5)  # not before its time
        limit = time.monotonic() + 30
        while time.monotonic() < limit and core.host_for_instance(iid) is not None:
            time.sleep(1)
        assert core.host_for_instance(iid) is None
        assert runner.invoke(app, ["status", "--name", CLUSTER, "--json"]).exit_code == 0
        assert _inventory_hosts() == []  # status saw it gone
    finally:
        down = runner.invoke(app, ["teardown", "--sandbox", "--name", CLUSTER, "--yes", "--json"])
        assert down.exit_code == 0, down.output
        assert json.loads(down.stdout)["leftovers"] == []


@pytest.mark.sandbox
def test_teardown_cancels_the_hosts_power_off_for_the_next_instance(sandbox_hosts: list[dict[str, Any]],
                                                                   cluster_home: Path) -> None:
    from infprov.sandbox import core, records

    up = runner.invoke(app, ["up", "--sandbox", "--type", "inf1.xlarge", "--name", CLUSTER, "--yes", "--skip-server",
                             "--json", "--auto-teardown", "2h"])
    assert up.exit_code == 0, up.output
    [iid] = json.loads(up.stdout)["launched"]
    name = core.host_for_instance(iid)["name"]  # type: ignore[index]
    pid = records.read_state()["hosts"][name]["init_pid"]
    assert Path(f"/proc/{pid}/root/run/infprov-power.at").exists()
    down = runner.invoke(app, ["teardown", "--sandbox", "--name", CLUSTER, "--yes"])
    assert down.exit_code == 0, down.output
    assert not Path(f"/proc/{pid}/root/run/infprov-power.at").exists()
    assert not Path(f"/proc/{pid}/root/run/infprov-power.pid").exists()


def _inventory_hosts() -> list[str]:
    from infprov.floor import paths
    from infprov.inventory import store

    return [h.name for h in store.load(paths.inventory_file()).in_cluster(CLUSTER)]


@pytest.mark.sandbox
def test_auto_teardown_moves_and_cancels_the_deadline_without_up(sandbox_hosts: list[dict[str, Any]],
                                                                  cluster_home: Path) -> None:
    """`infprov auto-teardown CLUSTER --in D` moves it, `--cancel` cancels it, on the host and in the tag
    (issue 25, item 7)."""
    up = runner.invoke(app, ["up", "--sandbox", "--type", "inf1.xlarge", "--name", CLUSTER, "--yes", "--skip-server",
                             "--json", "--auto-teardown", "3h"])
    assert up.exit_code == 0, up.output
    [iid] = json.loads(up.stdout)["launched"]
    try:
        moved = runner.invoke(app, ["auto-teardown", CLUSTER, "--in", "45m"])
        assert moved.exit_code == 0, moved.output
        deadline = autoteardown.read_deadline({autoteardown.TAG: _status()["instances"][0]["auto_teardown"]})
        soon = datetime.now(timezone.utc) + timedelta(minutes=45)
        assert deadline is not None and abs((deadline - soon).total_seconds()) < 60
        assert abs(_scheduled_at(iid) - deadline.timestamp()) < 60  # type: ignore[operator]

        cancelled = runner.invoke(app, ["auto-teardown", "--name", CLUSTER, "--cancel"])
        assert cancelled.exit_code == 0, cancelled.output
        assert _scheduled_at(iid) is None
        [info] = _status()["instances"]
        assert info["auto_teardown"] == autoteardown.CANCELLED
        table = runner.invoke(app, ["status", "--name", CLUSTER])
        assert table.exit_code == 0 and "none" in table.stdout
    finally:
        down = runner.invoke(app, ["teardown", "--sandbox", "--name", CLUSTER, "--yes", "--json"])
        assert down.exit_code == 0, down.output
