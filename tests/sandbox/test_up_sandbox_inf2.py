"""Inf2 on the sandbox end to end: `up --type inf2.xlarge` -> `bench` (no model, batch or tensor flags) ->
`results --compare` with an Inf1 run -> `teardown`.

The Neuron v2 path runs as on a real Inf2 host (the same server.yml, start.sh and setup-neuronx.sh, the
24.04 image names, python_backend r24.04); only the Neuron layer (the runtime packages, the wheels, the
trace, the model's arithmetic) and the downloads are stand-ins.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from infprov.provision.cli import app
from tests.hostshell import on_host

pytestmark = pytest.mark.sandbox
runner = CliRunner()
MIRROR = Path("/work/.mirror/triton-inference-server+python_backend/repo")
V2, V1 = "inf2test", "inf1test"
MODEL_V2, MODEL_V1 = "rn50-2neuroncores-default", "rn50-4neuroncores-default"
PB = "/home/ubuntu/python_backend"


def _on_host(instance_id: str, command: str, raw: bool = False) -> str:
    out = on_host(instance_id, command)
    return out if raw else out.strip()


def _up(itype: str, name: str) -> dict[str, Any]:
    res = runner.invoke(app, ["up", "--sandbox", "--type", itype, "--name", name, "--yes", "--json"])
    assert res.exit_code == 0, res.output
    [host] = json.loads(res.stdout)["server"]["hosts"]
    assert host["ready"] is True
    return dict(host)


def _upstream_config(tmp_path: Path, model: str) -> str:
    """config.pbtxt as python_backend r24.04's own gen_triton_model.py writes it for start.sh's v2 flags."""
    gen = tmp_path / "gen_triton_model.py"
    show = ["git", "-C", str(MIRROR), "show", "r24.04:inferentia/scripts/gen_triton_model.py"]
    gen.write_text(subprocess.run(show, capture_output=True, text=True, check=True).stdout)
    out = tmp_path / model
    subprocess.run([sys.executable, str(gen), "--inf2", "--model_type", "pytorch",
                    "--compiled_model", "rn50_neuronx.pt",
                    "--triton_input", "INPUT__0,FP32,8x3x224x224", "--triton_output", "OUTPUT__0,FP32,8x1000",
                    "--neuron_core_range", "0:1", "--triton_model_instance_count", "2", "--triton_model_dir", str(out)],
                   check=True, capture_output=True, text=True)
    return (out / "config.pbtxt").read_text()


def _bench(name: str) -> dict[str, Any]:
    res = runner.invoke(app, ["bench", "--name", name, "--limit", "3", "--json"])
    assert res.exit_code == 0, res.output
    doc: dict[str, Any] = json.loads(res.stdout)
    return doc


def test_inf2_up_bench_compare_with_inf1_teardown(sandbox_hosts: list[dict[str, Any]], cluster_home: Path,
                                                  tmp_path: Path) -> None:
    from infprov.provision import catalog

    host = _up("inf2.xlarge", V2)
    iid = host["instance_id"]
    assert host["model"] == MODEL_V2

    # the container: the 24.04 image, the type's one device, the v2 profile's settings
    inspect = json.loads(_on_host(iid, "docker inspect infprov-triton"))[0]
    assert inspect["Config"]["Image"] == "nvcr.io/nvidia/tritonserver:24.04-py3"
    assert [d["PathOnHost"] for d in inspect["HostConfig"]["Devices"]] == ["/dev/neuron0"]
    env = dict(e.split("=", 1) for e in inspect["Config"]["Env"])
    assert (env["NEURON_GENERATION"], env["SETUP_TARGET"], env["MAX_BATCH_SIZE"]) == ("neuron-v2", "-inf2", "8")
    assert (env["NEURON_CORE_RANGE"], env["NEURON_RT_VISIBLE_CORES"]) == ("0:1", "0-1")
    assert _on_host(iid, f"git -C {PB} rev-parse --abbrev-ref HEAD") == "r24.04"

    # the served model: the names, layout and shape of the traced torch model, as Triton reports them
    meta = json.loads(_on_host(iid, f"curl -sf http://127.0.0.1:8000/v2/models/{MODEL_V2}"))
    assert meta["inputs"] == [{"name": "INPUT__0", "datatype": "FP32", "shape": [8, 3, 224, 224]}]
    assert meta["outputs"] == [{"name": "OUTPUT__0", "datatype": "FP32", "shape": [8, 1000]}]
    served = json.loads(_on_host(iid, f"curl -sf http://127.0.0.1:8000/v2/models/{MODEL_V2}/config"))
    assert served["max_batch_size"] == 0 and served["backend"] == "python"
    assert [(g["kind"], g["count"]) for g in served["instance_group"]] == [("KIND_MODEL", 2)]
    params = {k: v["string_value"] for k, v in served["parameters"].items()}
    assert params["COMPILED_MODEL"] == "rn50_neuronx.pt"
    assert (params["NEURON_CORE_START_INDEX"], params["NEURON_CORE_END_INDEX"]) == ("0", "1")
    # and the file, byte for byte what upstream r24.04's generator writes for the same flags
    assert _on_host(iid, f"cat {PB}/models/{MODEL_V2}/config.pbtxt", raw=True) == _upstream_config(tmp_path, MODEL_V2)

    # setup-neuronx.sh ran for real against the stand-in Neuron apt repository and pip index
    log = _on_host(iid, "docker logs infprov-triton 2>&1")
    for line in ("setup.sh: Neuron v2 environment for inf2 (torch-neuronx)",
                 "Setting up aws-neuronx-runtime-lib (2.20.22.0-infprov1) ...",
                 "Setting up aws-neuronx-collectives (2.20.22.0-infprov1) ...",
                 "Successfully installed neuronx-cc-2.13.68.0 torch-neuronx-2.1.2.2.1.0 torchvision-0.16.2",
                 "setup.sh: Neuron v2 environment ready"):
        assert line in log, f"{line!r} not in the container's log:\n{log}"
    assert _on_host(iid, "docker exec infprov-triton cat /etc/apt/sources.list.d/neuron.list") == \
        "deb [trusted=yes] http://infprov-downloads/apt.repos.neuron.amazonaws.com bookworm main"
    assert _on_host(iid, "docker image inspect -f '{{.Id}}' infprov/tritonserver-neuronx:24.04").startswith("sha256:")

    # an Inf1 cluster beside it, on the v1 path
    v1 = _up("inf1.xlarge", V1)
    assert v1["model"] == MODEL_V1 and v1["address"] != host["address"]

    # bench with no model, batch or tensor flags: each follows its served model
    b2, b1 = _bench(V2), _bench(V1)
    [p2] = b2["hosts"][0]["points"]
    [p1] = b1["hosts"][0]["points"]
    assert p2["batch_size"] == 8 and p2["requests"] > 0 and p2["errors"] == 0
    m2 = p2["manifest"]
    assert (m2["input"], m2["output"], m2["layout"], m2["datatype"]) == ("INPUT__0", "OUTPUT__0", "NCHW", "FP32")
    assert (m2["instance_type"], m2["server_image"], m2["python_backend_ref"]) == (
        "inf2.xlarge", "nvcr.io/nvidia/tritonserver:24.04-py3", "r24.04")
    assert p1["requests"] > 0 and p1["errors"] == 0
    assert (p1["manifest"]["input"], p1["manifest"]["layout"]) == ("input", "NHWC")

    # results --compare: the Inf1 run beside the Inf2 run
    res = runner.invoke(app, ["results", b1["run"], "--compare", b2["run"], "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)["compare"]
    assert [(r["run"], r["instance_type"]) for r in rows] == [(b1["run"], "inf1.xlarge"), (b2["run"], "inf2.xlarge")]
    for row, point in zip(rows, (p1, p2), strict=True):
        assert row["images_per_s"] == point["images_per_s"] > 0
        assert row["p99_ms"] == point["latency_ms"]["p99"] > 0
        price = catalog.get(row["instance_type"]).prices["us-east-1"]
        assert row["hourly_usd"] == price
        assert row["usd_per_million_images"] == pytest.approx(price / (row["images_per_s"] * 3600) * 1e6)
    assert rows[0]["images_per_s_x"] == 1.0
    assert rows[1]["images_per_s_x"] == pytest.approx(p2["images_per_s"] / p1["images_per_s"])
    assert rows[1]["usd_per_million_images_x"] == pytest.approx(
        rows[1]["usd_per_million_images"] / rows[0]["usd_per_million_images"])
    text = runner.invoke(app, ["results", b1["run"], "--compare", b2["run"]])
    assert text.exit_code == 0, text.output
    for word in ("images/s", "p99 ms", "$/M images", "Neuron v1", "Neuron v2", "INPUT__0 NCHW", "input NHWC",
                 f"{rows[1]['usd_per_million_images']:.2f}", f"{rows[1]['images_per_s_x']:.2f}x"):
        assert word in text.stdout, (word, text.stdout)

    # teardown: nothing of either cluster is left
    from infprov.floor import paths
    from infprov.inventory import store
    from infprov.sandbox import records

    for name in (V2, V1):
        down = runner.invoke(app, ["teardown", "--sandbox", "--name", name, "--yes", "--json"])
        assert down.exit_code == 0, down.output
        assert json.loads(down.stdout)["leftovers"] == []
        assert not store.load(paths.inventory_file()).in_cluster(name)
    assert records.read_state().get("assignments", {}) == {}
    status = runner.invoke(app, ["status", "--sandbox", "--json"])
    assert status.exit_code == 0, status.output
    assert V2 not in status.stdout and V1 not in status.stdout
