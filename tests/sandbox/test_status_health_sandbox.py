"""`infprov status` shows what Triton says on each running host beside EC2's state (issue 25, item 14): server
ready, model ready and requests served on a serving host, the count following a real request, "not serving"
once the container stops, and "unreachable" (at once, not a hang) when the host's sshd is gone."""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from infprov.provision.cli import app
from tests.hostshell import on_host
from tests.procs import served_on_host

pytestmark = pytest.mark.sandbox
runner = CliRunner()
CLUSTER = "healthtest"
MODEL = "rn50-4neuroncores-default"

# one request of 4 zero images (inf1.xlarge: 4 NeuronCores, so 4 images a batch), sent on the host
INFER = ("import json, urllib.request; body = json.dumps({'inputs': [{'name': 'input', 'shape': [4, 224, 224, 3], "
         "'datatype': 'FP32', 'data': [0.0] * (4 * 224 * 224 * 3)}]}).encode(); "
         f"urllib.request.urlopen(urllib.request.Request('http://127.0.0.1:8000/v2/models/{MODEL}/infer', "
         "data=body, headers={'Content-Type': 'application/json'}), timeout=60).read()")


def _triton() -> dict[str, Any]:
    result = runner.invoke(app, ["status", "--name", CLUSTER, "--json"])
    assert result.exit_code == 0, result.output
    [cluster] = json.loads(result.stdout)["clusters"]
    [instance] = cluster["instances"]
    assert instance["state"] == "running"
    triton: dict[str, Any] = instance["triton"]
    return triton


def test_status_shows_each_hosts_triton(sandbox_hosts: list[dict[str, Any]], cluster_home: Path) -> None:
    from infprov.sandbox import core

    up = runner.invoke(app, ["up", "--sandbox", "--type", "inf1.xlarge", "--name", CLUSTER, "--yes", "--json"])
    try:
        assert up.exit_code == 0, up.output
        [iid] = json.loads(up.stdout)["launched"]
        host = core.host_for_instance(iid)
        assert host is not None

        before = _triton()
        assert before["reachable"] and before["server_ready"] and before["model_ready"], before
        assert before["model"] == MODEL
        assert before["requests"] == served_on_host(iid, MODEL)  # Triton's metrics agree with its own stats
        on_host(iid, f"python3 -c {shlex.quote(INFER)}")
        after = _triton()
        assert after["requests"] == before["requests"] + 1 == served_on_host(iid, MODEL)
        table = runner.invoke(app, ["status", "--name", CLUSTER])
        assert table.exit_code == 0, table.output
        assert f"ready, {after['requests']} req" in table.stdout, table.stdout

        no_probe = runner.invoke(app, ["status", "--name", CLUSTER, "--json", "--no-health"])
        assert json.loads(no_probe.stdout)["clusters"][0]["instances"][0]["triton"] is None

        subprocess.run(["docker", "-H", core.docker_socket(host["name"]), "stop", "infprov-triton"], check=True,
                       capture_output=True, timeout=120)
        stopped = _triton()
        assert stopped["reachable"] and stopped["server_ready"] is False and stopped["requests"] is None, stopped
        assert "not serving" in runner.invoke(app, ["status", "--name", CLUSTER]).stdout

        assert core.stop_daemon(host["name"], "sshd"), "no sshd found on the host"
        try:
            gone = _triton()
            assert gone["reachable"] is False and gone["server_ready"] is None and gone["error"], gone
            shown = runner.invoke(app, ["status", "--name", CLUSTER])
            assert shown.exit_code == 0 and "unreachable" in shown.stdout, shown.stdout
        finally:
            core.start_daemon(host["name"], "sshd")
    finally:
        down = runner.invoke(app, ["teardown", "--sandbox", "--name", CLUSTER, "--yes", "--json"])
        assert down.exit_code == 0, down.output
