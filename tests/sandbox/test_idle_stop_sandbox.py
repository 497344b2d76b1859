"""`up --idle-stop` on the sandbox (issue 25, item 13), decided on the host from Triton's own metrics: requests
served start the idle clock over; once none came for the idle time the host powers itself off and the EC2
endpoint stops the instance (its disk kept) or, with --down, terminates it; `start` arms the watch again."""

from __future__ import annotations

import json
import shlex
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from infprov.provision import idlestop
from infprov.provision.cli import app
from tests.hostshell import on_host, sandbox_ec2
from tests.procs import served_on_host, wait_until

pytestmark = pytest.mark.sandbox
runner = CliRunner()
CLUSTER = "idletest"
MODEL = "rn50-4neuroncores-default"
IDLE_S = 60
STATE = f"$HOME/{idlestop.FOLDER}/idle-stop.json"
INFER = ("import json, urllib.request; body = json.dumps({'inputs': [{'name': 'input', 'shape': [4, 224, 224, 3], "
         "'datatype': 'FP32', 'data': [0.0] * (4 * 224 * 224 * 3)}]}).encode(); "
         f"urllib.request.urlopen(urllib.request.Request('http://127.0.0.1:8000/v2/models/{MODEL}/infer', "
         "data=body, headers={'Content-Type': 'application/json'}), timeout=60).read()")


def _state(instance_id: str) -> str:
    inst = sandbox_ec2().describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    return str(inst["State"]["Name"])


def _watch(instance_id: str) -> dict[str, Any]:
    text = on_host(instance_id, f'cat "{STATE}" 2>/dev/null || echo null')
    doc = json.loads(text)
    return doc if isinstance(doc, dict) else {}


def test_an_idle_cluster_stops_itself_and_start_arms_the_watch_again(sandbox_hosts: list[dict[str, Any]],
                                                                     cluster_home: Path) -> None:
    from infprov.sandbox import core

    up = runner.invoke(app, ["up", "--sandbox", "--type", "inf1.xlarge", "--name", CLUSTER, "--yes", "--json",
                             "--idle-stop", "1m"])
    try:
        assert up.exit_code == 0, up.output
        [iid] = json.loads(up.stdout)["launched"]
        host = core.host_for_instance(iid)
        assert host is not None
        [info] = json.loads(runner.invoke(app, ["status", "--name", CLUSTER, "--json"]).stdout)["clusters"][0][
            "instances"]
        assert info["idle_stop"] == "1m stop"
        wait_until("the watch's first reading", lambda: _watch(iid).get("requests") is not None, timeout=60)

        # a request served starts the clock over: the watch sees the count move and its idle time drop
        before = _watch(iid)
        wait_until("some idle time counted", lambda: _watch(iid)["idle_s"] > 0, timeout=60)
        on_host(iid, f"python3 -c {shlex.quote(INFER)}")
        last_request = time.time()
        served = served_on_host(iid, MODEL)
        assert served == before["requests"] + 1
        wait_until("the watch saw the request",
                   lambda: _watch(iid).get("requests") == served and _watch(iid)["idle_s"] < 10, timeout=60)
        assert _state(iid) == "running"

        # then nothing: the host powers itself off, the instance stops (not terminates), its disk is kept
        wait_until("the instance stopped itself", lambda: _state(iid) in ("stopping", "stopped"), timeout=300,
                   every=2)
        assert time.time() - last_request >= IDLE_S - 5  # not before its time
        assert _state(iid) == "stopped"
        assert core.host_for_instance(iid) == host  # kept, powered off, for a start
        assert [h for h in core.status()["hosts"] if h["name"] == host["name"]][0]["powered_off"] is True

        started = runner.invoke(app, ["start", CLUSTER, "--yes", "--json"])
        assert started.exit_code == 0, started.output
        assert json.loads(started.stdout)["server"]["ok"] is True
        wait_until("the watch runs again", lambda: _watch(iid).get("requests") is not None, timeout=60)
        assert _watch(iid)["limit_s"] == IDLE_S
    finally:
        down = runner.invoke(app, ["teardown", "--sandbox", "--name", CLUSTER, "--yes", "--json"])
        assert down.exit_code == 0, down.output
        assert json.loads(down.stdout)["leftovers"] == []


def test_idle_stop_down_terminates(sandbox_hosts: list[dict[str, Any]], cluster_home: Path) -> None:
    """With --down, and with no Triton answering at all (--skip-server): silence is idle time, and the
    instance is terminated, its host freed."""
    from infprov.sandbox import core

    up = runner.invoke(app, ["up", "--sandbox", "--type", "inf1.xlarge", "--name", CLUSTER, "--yes", "--json",
                             "--skip-server", "--idle-stop", "1m", "--down"])
    try:
        assert up.exit_code == 0, up.output
        [iid] = json.loads(up.stdout)["launched"]
        armed = time.time()
        attr = sandbox_ec2().describe_instance_attribute(InstanceId=iid, Attribute="instanceInitiatedShutdownBehavior")
        assert attr["InstanceInitiatedShutdownBehavior"]["Value"] == "terminate"
        wait_until("the instance terminated itself", lambda: _state(iid) in ("shutting-down", "terminated"),
                   timeout=300, every=2)
        assert time.time() - armed >= IDLE_S - 5
        wait_until("its host freed", lambda: core.host_for_instance(iid) is None, timeout=30)
    finally:
        down = runner.invoke(app, ["teardown", "--sandbox", "--name", CLUSTER, "--yes", "--json"])
        assert down.exit_code == 0, down.output
