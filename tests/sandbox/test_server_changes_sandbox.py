"""A changed setup is applied, and no change restarts nothing (server.yml's environment and model keys).

On an inf2.xlarge sandbox cluster: the server playbook again with nothing changed keeps the container; a new
`infprov_v2_batch` restarts it on the kept environment image and serves a model traced at the new batch; a
changed pin removes the environment image, setup.sh runs again and a new image is committed.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from infprov.provision.cli import app
from tests.hostshell import on_host

pytestmark = pytest.mark.sandbox
runner = CliRunner()
NAME = "chgtest"
MODEL = "rn50-2neuroncores-default"
ENV_IMAGE = "infprov/tritonserver-neuronx:24.04"
PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"


def _on_host(instance_id: str, command: str) -> str:
    return on_host(instance_id, command).strip()


@pytest.fixture()
def inf2_host(sandbox_hosts: list[dict[str, Any]], cluster_home: Path) -> Iterator[dict[str, Any]]:
    try:
        res = runner.invoke(app, ["up", "--sandbox", "--type", "inf2.xlarge", "--name", NAME, "--yes", "--json"])
        assert res.exit_code == 0, res.output
        [host] = json.loads(res.stdout)["server"]["hosts"]
        yield dict(host)
    finally:
        down = runner.invoke(app, ["teardown", "--sandbox", "--name", NAME, "--yes"])
        assert down.exit_code == 0, down.output


def _state(iid: str) -> dict[str, Any]:
    container = json.loads(_on_host(iid, "docker inspect infprov-triton"))[0]
    image = json.loads(_on_host(iid, f"docker image inspect {ENV_IMAGE}"))[0]
    meta = json.loads(_on_host(iid, f"curl -sf http://127.0.0.1:8000/v2/models/{MODEL}"))
    return {"container": container["Id"], "started": container["State"]["StartedAt"], "image": image["Id"],
            "label": image["Config"]["Labels"].get("infprov.setup"), "shape": meta["inputs"][0]["shape"],
            "env": dict(e.split("=", 1) for e in container["Config"]["Env"])}


def _play(book: Path, *extra: str) -> dict[str, Any]:
    # infprov's engine, as `up` runs server.yml (a copy of it elsewhere would otherwise go to ansible-core)
    res = runner.invoke(app, ["play", str(book), "--engine", "infprov", "--name", NAME, "--json", *extra])
    assert res.exit_code == 0, res.output
    doc: dict[str, Any] = json.loads(res.stdout)
    return doc


def test_changes_are_applied_and_no_change_restarts_nothing(inf2_host: dict[str, Any], tmp_path: Path) -> None:
    iid = inf2_host["instance_id"]
    first = _state(iid)
    assert first["shape"] == [8, 3, 224, 224]
    assert first["label"] == first["env"]["INFPROV_SETUP_HASH"], "the environment image carries its setup's key"

    # nothing changed: nothing restarts
    _play(PLAYBOOKS / "server.yml")
    assert _state(iid) == first

    # a new batch: the container restarts on the kept environment, the model is traced again at 4
    _play(PLAYBOOKS / "server.yml", "-e", "infprov_v2_batch=4")
    batch4 = _state(iid)
    assert batch4["shape"] == [4, 3, 224, 224]
    assert batch4["container"] != first["container"] and batch4["image"] == first["image"]
    log = _on_host(iid, "docker logs infprov-triton 2>&1")
    assert "start.sh: the environment from the committed image" in log
    assert "start.sh: the model's settings or scripts changed since it was made: making it again" in log
    # env.sh holds what setup.sh set, never a start's own docker run values
    env_sh = _on_host(iid, "docker exec infprov-triton cat /opt/infprov/env.sh")
    assert "export DEBIAN_FRONTEND=noninteractive" in env_sh, env_sh
    for own in ("MAX_BATCH_SIZE", "MODEL_NAME", "NEURON_CORE_RANGE", "INFPROV_MODEL_HASH", "INFPROV_SETUP_HASH"):
        assert own not in env_sh, env_sh

    # a changed pin: the environment image is made again from the new setup
    copy = tmp_path / "playbooks"
    shutil.copytree(PLAYBOOKS / "files", copy / "files", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(PLAYBOOKS / "server.yml", copy / "server.yml")
    pins = copy / "files" / "sandbox" / "pins-neuronx.env"
    pins.write_text(pins.read_text() + "# a changed pin file (a comment is enough to change its key)\n")
    _play(copy / "server.yml", "-e", "infprov_v2_batch=4")
    rebuilt = _state(iid)
    assert rebuilt["image"] != first["image"] and rebuilt["label"] != first["label"]
    assert rebuilt["label"] == rebuilt["env"]["INFPROV_SETUP_HASH"]
    assert rebuilt["shape"] == [4, 3, 224, 224]
    log = _on_host(iid, "docker logs infprov-triton 2>&1")
    assert "setup.sh: Neuron v2 environment ready" in log and "environment from the committed image" not in log
    assert "making it again" not in log, "the model's own key did not change"

    # and again with nothing changed: nothing restarts
    _play(copy / "server.yml", "-e", "infprov_v2_batch=4")
    assert _state(iid) == rebuilt
