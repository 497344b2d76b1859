"""`infprov stop` / `infprov start` on the sandbox (issue 25, item 12): the instance stops in EC2 and its host
powers off keeping its disk; `status` shows the cluster stopped with what its kept volumes cost; `start` boots
the same disk and brings Triton back from the committed environment image, without running setup.sh again;
a stopped cluster is torn down like any other."""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from infprov.provision import catalog
from infprov.provision.cli import app
from infprov.provision.server import SETUP_LOG
from tests.hostshell import on_host, sandbox_ec2

pytestmark = pytest.mark.sandbox
runner = CliRunner()
CLUSTER = "stopstart"
DISK_GIB = 150  # up's default root volume


def _state(instance_id: str) -> str:
    inst = sandbox_ec2().describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    return str(inst["State"]["Name"])


def _sshd_answers(address: str) -> bool:
    try:
        with socket.create_connection((address, 22), timeout=2) as s:
            return s.recv(4).startswith(b"SSH")
    except OSError:
        return False


def _host_entry(name: str) -> dict[str, Any]:
    from infprov.sandbox import core

    [entry] = [h for h in core.status()["hosts"] if h["name"] == name]
    return dict(entry)


def _cluster(*extra: str) -> dict[str, Any]:
    result = runner.invoke(app, ["status", "--name", CLUSTER, "--json", *extra])
    assert result.exit_code == 0, result.output
    [cluster] = json.loads(result.stdout)["clusters"]
    return dict(cluster)


def test_stop_keeps_the_disk_and_start_serves_again_without_setup(sandbox_hosts: list[dict[str, Any]],
                                                                  cluster_home: Path) -> None:
    from infprov.sandbox import core

    up = runner.invoke(app, ["up", "--sandbox", "--type", "inf1.xlarge", "--name", CLUSTER, "--yes", "--json"])
    try:
        assert up.exit_code == 0, up.output
        [iid] = json.loads(up.stdout)["launched"]
        host = core.host_for_instance(iid)
        assert host is not None
        setup_before = on_host(iid, f"cat {SETUP_LOG}")
        assert "setup.sh: environment test_conda_env ready" in setup_before

        stopped = runner.invoke(app, ["stop", CLUSTER, "--json"])
        assert stopped.exit_code == 0, stopped.output
        doc = json.loads(stopped.stdout)
        assert doc["stopped"] == [iid] and doc["already_stopped"] == [] and doc["sandbox"] is True
        price = catalog.storage_price("gp3", "us-east-1")
        assert price is not None
        assert doc["storage_gib"] == DISK_GIB and doc["storage_monthly_cost"] == round(DISK_GIB * price, 2)
        assert _state(iid) == "stopped"
        assert _host_entry(host["name"])["powered_off"] is True
        assert not _sshd_answers(host["address"])  # the host is off, not just its server

        cluster = _cluster()
        assert cluster["stopped"] is True and cluster["hourly_cost"] == 0
        assert cluster["storage_gib"] == DISK_GIB and cluster["storage_monthly_cost"] == round(DISK_GIB * price, 2)
        [info] = cluster["instances"]
        assert info["state"] == "stopped" and info["triton"] is None
        table = runner.invoke(app, ["status", "--name", CLUSTER])
        assert f"{CLUSTER}: stopped; its {DISK_GIB} GiB of EBS volumes are kept: ${DISK_GIB * price:.2f}/month" \
            in table.stdout, table.stdout

        again = runner.invoke(app, ["stop", "--name", CLUSTER, "--json"])
        assert again.exit_code == 0, again.output
        assert json.loads(again.stdout)["stopped"] == [] and json.loads(again.stdout)["already_stopped"] == [iid]

        started = runner.invoke(app, ["start", CLUSTER, "--yes", "--json"])
        assert started.exit_code == 0, started.output
        sdoc = json.loads(started.stdout)
        assert sdoc["started"] == [iid] and sdoc["launched"] == [] and sdoc["server"]["ok"] is True
        assert _state(iid) == "running" and _host_entry(host["name"])["powered_off"] is False
        assert core.host_for_instance(iid) == host  # the same host, the same disk
        assert on_host(iid, f"cat {SETUP_LOG}") == setup_before  # setup.sh did not run again
        logs = subprocess.run(["docker", "-H", core.docker_socket(host["name"]), "logs", "infprov-triton"],
                              capture_output=True, text=True, timeout=60)
        assert "the environment from the committed image" in logs.stdout + logs.stderr
        [info] = _cluster()["instances"]
        assert info["triton"]["server_ready"] and info["triton"]["model_ready"], info
    finally:
        down = runner.invoke(app, ["teardown", "--sandbox", "--name", CLUSTER, "--yes", "--json"])
        assert down.exit_code == 0, down.output
        assert json.loads(down.stdout)["leftovers"] == []


def test_a_stopped_cluster_is_torn_down_and_its_host_made_anew(sandbox_hosts: list[dict[str, Any]],
                                                               cluster_home: Path) -> None:
    from infprov.sandbox import core

    up = runner.invoke(app, ["up", "--sandbox", "--type", "inf1.xlarge", "--name", CLUSTER, "--yes", "--json",
                             "--skip-server"])
    assert up.exit_code == 0, up.output
    [iid] = json.loads(up.stdout)["launched"]
    host = core.host_for_instance(iid)
    assert host is not None
    try:
        stopped = runner.invoke(app, ["stop", CLUSTER])
        assert stopped.exit_code == 0, stopped.output
        assert f"start it again with `infprov start {CLUSTER}` --sandbox" in stopped.stdout
        assert _host_entry(host["name"])["powered_off"] is True
    finally:
        down = runner.invoke(app, ["teardown", "--sandbox", "--name", CLUSTER, "--yes", "--json"])
        assert down.exit_code == 0, down.output
        assert json.loads(down.stdout)["leftovers"] == []
    assert core.host_for_instance(iid) is None
    entry = _host_entry(host["name"])
    assert entry["powered_off"] is False and entry["healthy"] is True  # released: made anew for the next tenant
    assert _sshd_answers(host["address"])
