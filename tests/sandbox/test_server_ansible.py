"""infprov's own playbooks (server.yml, bundle.yml, bench.yml) run unmodified under ansible-playbook, and leave a
converged sandbox host as infprov's engine does: the same recap per host, the same files on the host, the same
files fetched home. (The inventory `infprov up` writes is read by ansible-inventory too.)"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from infprov.provision.cli import app

pytestmark = [pytest.mark.sandbox,
              pytest.mark.skipif(shutil.which("ansible-playbook") is None, reason="ansible-core is not installed")]
runner = CliRunner()
CLUSTER = "ansitest"
BOOKS = Path(__file__).resolve().parents[2] / "playbooks"
COUNTS = ("ok", "changed", "failed", "skipped")


@pytest.fixture(scope="module")
def converged(sandbox_hosts: list[dict[str, Any]], _shared_home: Path) -> Iterator[dict[str, Any]]:
    """One inf1.6xlarge that `infprov up` converged (server.yml on infprov's engine); torn down at the end."""
    mp = pytest.MonkeyPatch()
    mp.setenv("INFPROV_HOME", str(_shared_home))
    try:
        up = runner.invoke(app, ["up", "--sandbox", "--type", "inf1.6xlarge", "--name", CLUSTER, "--yes", "--json"])
        assert up.exit_code == 0, up.output
        [host] = json.loads(up.stdout)["server"]["hosts"]
        assert host["ready"] is True
        yield {**host, "inventory": _shared_home / "inventory.yml", "home": _shared_home}
    finally:
        down = runner.invoke(app, ["teardown", "--sandbox", "--name", CLUSTER, "--yes"])
        mp.undo()
        assert down.exit_code == 0, down.output


def _env() -> dict[str, str]:
    return {**os.environ, "ANSIBLE_HOST_KEY_CHECKING": "False", "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_RETRY_FILES_ENABLED": "False", "ANSIBLE_PIPELINING": "True"}


def _ansible(host: dict[str, Any], book: str, *args: str) -> dict[str, int]:
    """ansible-playbook itself on the cluster's inventory: the host's recap."""
    proc = subprocess.run(["ansible-playbook", "-i", str(host["inventory"]), str(BOOKS / book), "--limit",
                           host["instance_id"], *args], capture_output=True, text=True, env=_env(), timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    line = next(ln for ln in proc.stdout[proc.stdout.index("PLAY RECAP"):].splitlines()
                if ln.startswith(host["instance_id"]))
    counts = {k: int(v) for k, v in (w.split("=") for w in line.partition(":")[2].split())}
    return {"failed" if k == "failures" else k: v for k, v in counts.items() if k in COUNTS}


def _infprov(host: dict[str, Any], book: str, *args: str) -> dict[str, int]:
    """infprov's engine on the same host (`infprov play NAME`: the built-in playbooks run on it): its recap."""
    env = {**os.environ, "INFPROV_HOME": str(host["home"])}
    proc = subprocess.run([sys.executable, "-m", "infprov.provision.cli", "play", book, "--engine", "infprov",
                           "--host", host["instance_id"], "--json", *args],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    stats = json.loads(proc.stdout)["stats"][host["instance_id"]]
    return {k: stats[k] for k in COUNTS}


def _on_host(host: dict[str, Any], command: str) -> str:
    from infprov.inventory import store
    from infprov.playbooks.connection import SshConnection

    found = store.load(host["inventory"]).find(host["instance_id"])
    assert found is not None
    conn = SshConnection(found, host["home"] / "known_hosts")
    try:
        res = conn.run(command)
    finally:
        conn.close()
    assert res.exit_code == 0, res.err
    return str(res.out)


# What the playbooks make on the host: python_backend's files (names, types, modes) and the server container
# (its id and whether it runs). Sizes, times and the image list are left out: the running server's own work
# moves them whatever a playbook does.
STATE = ("find /home/ubuntu/python_backend -printf '%P %y %m\\n' | sort | sha256sum; "
         "docker ps -a --no-trunc --format '{{.ID}} {{.Names}} {{.State}}'")


def test_server_yml_on_ansible_playbook_finds_the_host_infprov_converged(converged: dict[str, Any]) -> None:
    listed = subprocess.run(["ansible-inventory", "-i", str(converged["inventory"]), "--list"], capture_output=True,
                            text=True, env=_env(), timeout=120)
    assert listed.returncode == 0, listed.stderr
    hostvars = json.loads(listed.stdout)["_meta"]["hostvars"][converged["instance_id"]]
    assert hostvars["infprov_profile"] == "sandbox" and hostvars["neuron_cores"] == 16
    before = _on_host(converged, STATE)
    theirs = _ansible(converged, "server.yml")
    assert theirs["failed"] == 0 and theirs["changed"] == 0, theirs  # Ansible agrees nothing is left to do
    ours = _infprov(converged, "server")
    assert ours == theirs, (ours, theirs)
    assert _on_host(converged, STATE) == before, "a converged host stays as it was under both engines"


def test_bundle_yml_reads_the_same_and_changes_nothing(converged: dict[str, Any]) -> None:
    before = _on_host(converged, STATE)
    theirs = _ansible(converged, "bundle.yml")
    ours = _infprov(converged, "bundle")
    assert ours == theirs == {"ok": 1, "changed": 0, "failed": 0, "skipped": 0}, (ours, theirs)
    assert _on_host(converged, STATE) == before


def test_bench_yml_probe_and_run_leave_the_same_files(converged: dict[str, Any], tmp_path: Path) -> None:
    """Both of bench.yml's passes, with a plan of two cheap points in place of the client's runs: the same recap,
    the same files fetched home and the run's folder removed from the host afterwards, engine by engine."""
    iid = converged["instance_id"]
    ident = uuid.uuid4().hex[:8]
    client = tmp_path / "client.py"
    client.write_text("print('client')\n")
    probe = ["-e", json.dumps({"bench_model": "rn50-16neuroncores-default"}), "--tags", "probe"]
    assert _infprov(converged, "bench", *probe) == _ansible(converged, "bench.yml", *probe)
    got: dict[str, Any] = {}
    for engine in ("infprov", "ansible"):
        remote = f"/home/ubuntu/infprov-benchcmp-{ident}/{engine}"
        points = [{"index": i, "batch_size": 1, "threads": i + 1, "kill": "true",
                   "command": f"echo point {i}; printf '{{\"point\": {i}}}' > {remote}/point-{i}.json",
                   "result": f"{remote}/point-{i}.json", "fetch_to": str(tmp_path / engine / f"point-{i}")}
                  for i in range(2)]
        plan = {"bench_hosts": {iid: {"remote_dir": remote, "client": f"{remote}/client.py", "points": points}},
                "bench_client": str(client), "bench_tool": "client"}
        args = ["-e", f"@{tmp_path / 'plan.json'}", "--tags", "run"]
        (tmp_path / "plan.json").write_text(json.dumps(plan))
        recap = _infprov(converged, "bench", *args) if engine == "infprov" else _ansible(converged, "bench.yml", *args)
        tree = _on_host(converged, f"test -e {remote} && echo kept || echo removed")
        fetched = {p.name: p.read_text() for p in sorted((tmp_path / engine).iterdir())}
        got[engine] = (recap, tree, fetched)
    try:
        assert got["infprov"] == got["ansible"], got
        assert got["infprov"][2] == {"point-0": '{"point": 0}', "point-1": '{"point": 1}'}
        assert got["infprov"][1] == "removed\n"
    finally:
        _on_host(converged, f"rm -rf /home/ubuntu/infprov-benchcmp-{ident}")
