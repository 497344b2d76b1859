"""`infprov logs --setup`: the setup run's log (setup.sh inside the server container), kept on the host, so it
is there after the container that ran it was replaced by one started from the committed environment image
(whose `docker logs` hold no setup); a host without it says so in one line (issue 25, item 15)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from infprov.provision.cli import app
from infprov.provision.server import SETUP_LOG
from tests.hostshell import on_host
from tests.procs import infprov_argv

pytestmark = pytest.mark.sandbox
runner = CliRunner()
CLUSTER = "setuplog"
UP = ["up", "--sandbox", "--type", "inf1.xlarge", "--name", CLUSTER, "--yes", "--json"]
SETUP_DONE = "setup.sh: environment test_conda_env ready"


def _logs(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(infprov_argv("logs", "--name", CLUSTER, *args), capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)


def test_logs_setup_shows_the_setup_run(sandbox_hosts: list[dict[str, Any]], cluster_home: Path) -> None:
    from infprov.sandbox import core

    up = runner.invoke(app, UP)
    try:
        assert up.exit_code == 0, up.output
        [iid] = json.loads(up.stdout)["launched"]
        setup = _logs("--setup", "--tail", "100000")
        assert setup.returncode == 0, setup.stderr
        assert "start.sh: setup.sh for neuron-v1, started" in setup.stdout and SETUP_DONE in setup.stdout
        assert "start.sh: setup.sh done" in setup.stdout
        assert _logs("--setup", "--tail", "1").stdout.count("\n") == 1

        # the container is replaced; the next one starts from the committed image and runs no setup
        host = core.host_for_instance(iid)
        assert host is not None
        subprocess.run(["docker", "-H", core.docker_socket(host["name"]), "rm", "-f", "infprov-triton"], check=True,
                       capture_output=True, timeout=120)
        again = runner.invoke(app, UP)
        assert again.exit_code == 0, again.output
        server = _logs("--tail", "100000")
        assert server.returncode == 0 and "the environment from the committed image" in server.stdout
        assert SETUP_DONE not in server.stdout
        kept = _logs("--setup", "--tail", "100000")
        assert kept.returncode == 0 and SETUP_DONE in kept.stdout

        on_host(iid, f"rm {SETUP_LOG}")
        missing = _logs("--setup")
        assert missing.returncode == 1 and missing.stdout == ""
        [line] = missing.stderr.strip().splitlines()
        assert line.startswith("error: no setup log on this host") and "hint:" in line
    finally:
        down = runner.invoke(app, ["teardown", "--sandbox", "--name", CLUSTER, "--yes", "--json"])
        assert down.exit_code == 0, down.output
