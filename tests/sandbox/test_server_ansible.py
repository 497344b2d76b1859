"""server.yml and the inventory `infprov up` writes also run, unmodified, under ansible-playbook."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from infprov.provision.cli import app

pytestmark = [pytest.mark.sandbox,
              pytest.mark.skipif(shutil.which("ansible-playbook") is None, reason="ansible-core is not installed")]
runner = CliRunner()
CLUSTER = "ansitest"
SERVER = Path(__file__).resolve().parents[2] / "playbooks" / "server.yml"


def test_ansible_playbook_runs_server_yml_on_a_converged_host(sandbox_hosts: list[dict[str, Any]],
                                                              cluster_home: Path) -> None:
    up = runner.invoke(app, ["up", "--sandbox", "--type", "inf1.6xlarge", "--name", CLUSTER, "--yes", "--json"])
    assert up.exit_code == 0, up.output
    try:
        [host] = json.loads(up.stdout)["server"]["hosts"]
        assert host["ready"] is True
        inv = cluster_home / "inventory.yml"
        env = {**os.environ, "ANSIBLE_HOST_KEY_CHECKING": "False", "ANSIBLE_NOCOLOR": "1",
               "ANSIBLE_RETRY_FILES_ENABLED": "False", "ANSIBLE_PIPELINING": "True"}
        listed = subprocess.run(["ansible-inventory", "-i", str(inv), "--list"], capture_output=True, text=True,
                                env=env, timeout=120)
        assert listed.returncode == 0, listed.stderr
        hostvars = json.loads(listed.stdout)["_meta"]["hostvars"][host["instance_id"]]
        assert hostvars["infprov_profile"] == "sandbox" and hostvars["neuron_cores"] == 16
        proc = subprocess.run(["ansible-playbook", "-i", str(inv), str(SERVER), "--limit", host["instance_id"]],
                              capture_output=True, text=True, env=env, timeout=600)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
        recap = proc.stdout[proc.stdout.index("PLAY RECAP"):]
        assert "failed=0" in recap and "unreachable=0" in recap
        assert "changed=0" in recap, recap  # our engine converged it; Ansible agrees nothing is left to do
    finally:
        down = runner.invoke(app, ["teardown", "--sandbox", "--name", CLUSTER, "--yes"])
        assert down.exit_code == 0, down.output
