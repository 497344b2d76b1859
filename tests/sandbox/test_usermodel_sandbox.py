"""`up --model` on the sandbox: a TorchScript file on inf1.xlarge and a hub-layout text model on inf2.xlarge,
served with the config python_backend's own generator (the recorded file) writes for the plan's flags; the
stand-in model answers with the declared tensors and Triton refuses the wrong shape or data type; `up` again
changes nothing; a changed model replaces the old one on the host."""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from infprov.provision import usermodel
from infprov.provision.cli import app
from infprov.sandbox import provenance
from tests import modelfiles
from tests.hostshell import on_host
from tests.unit.test_usermodel import recorded_config

pytestmark = pytest.mark.sandbox
runner = CliRunner()
PB = "/home/ubuntu/python_backend"
SERVER_YML = Path(__file__).resolve().parents[2] / "playbooks" / "server.yml"

# A request from inside the server container (its python3 and the host's loopback): status and body.
INFER = """
import json, sys, urllib.error, urllib.request
model, specs = sys.argv[1], json.loads(sys.argv[2])
for t in specs:  # each input's data made here, so the command line stays short
    count = 1
    for d in t["shape"]:
        count *= d
    t["data"] = [t.pop("value")] * count
body = json.dumps({"inputs": specs})
req = urllib.request.Request("http://127.0.0.1:8000/v2/models/" + model + "/infer", data=body.encode(),
                             headers={"Content-Type": "application/json"})
try:
    with urllib.request.urlopen(req, timeout=60) as r:
        print(json.dumps({"status": r.status, "body": json.loads(r.read())}))
except urllib.error.HTTPError as e:
    print(json.dumps({"status": e.code, "body": json.loads(e.read() or b"{}")}))
"""


def infer(iid: str, model: str, inputs: list[dict[str, Any]]) -> dict[str, Any]:
    body = json.dumps(inputs)
    cmd = f"docker exec infprov-triton python3 -c {shlex.quote(INFER)} {shlex.quote(model)} {shlex.quote(body)}"
    doc: dict[str, Any] = json.loads(on_host(iid, cmd))
    return doc


def tensor(name: str, dtype: str, shape: list[int], value: float | int) -> dict[str, Any]:
    return {"name": name, "datatype": dtype, "shape": shape, "value": value}


def upstream_config(ref: str, args: list[str], name: str) -> str:
    """What python_backend's generator wrote for these flags at ref (recorded; see tests/unit/test_usermodel.py)."""
    return recorded_config(provenance.load("python_backend-gen_triton_model").fact("outputs"), ref, args, name)


def up(name: str, itype: str, *extra: str) -> dict[str, Any]:
    res = runner.invoke(app, ["up", "--sandbox", "--type", itype, "--name", name, "--yes", "--json", *extra])
    assert res.exit_code == 0, res.output
    doc: dict[str, Any] = json.loads(res.stdout)
    return doc


def bench(name: str, *extra: str) -> dict[str, Any]:
    res = runner.invoke(app, ["bench", "--name", name, "--limit", "2", "--warmup", "1", "--json", *extra])
    assert res.exit_code == 0, res.output
    doc: dict[str, Any] = json.loads(res.stdout)
    return doc


@pytest.fixture()
def clusters(sandbox_hosts: list[dict[str, Any]], cluster_home: Path) -> Iterator[list[str]]:
    made: list[str] = []
    yield made
    for name in made:
        down = runner.invoke(app, ["teardown", "--sandbox", "--name", name, "--yes", "--json"])
        assert down.exit_code == 0, down.output


def test_torchscript_on_inf1_serves_with_the_generators_config(clusters: list[str], tmp_path: Path,
                                                               cluster_home: Path) -> None:
    model = modelfiles.torchscript(tmp_path / "resnet.pt")
    flags = ["--model", str(model), "--input", "x:FP32:3x224x224", "--output", "y:FP32:1000"]
    clusters.append("mdl-ts")
    doc = up("mdl-ts", "inf1.xlarge", *flags)
    [host] = doc["server"]["hosts"]
    iid = host["instance_id"]
    assert host["ready"] and host["model"] == "resnet"

    # the served config is, byte for byte, what upstream's r22.04 generator writes for the plan's flags
    plan = json.loads(on_host(iid, f"cat {PB}/infprov/model.json"))
    served = on_host(iid, f"cat {PB}/models/resnet/config.pbtxt")
    assert served == upstream_config("r22.04", plan["generator_args"], "resnet")
    assert 'name: "x__0"' in served and "max_batch_size: 8" in served
    # the stand-in compile checked the archive and kept it; the container ran setup.sh's torch path
    assert on_host(iid, f"cmp {shlex.quote(plan['compiled'])} {PB}/infprov/models/{plan['key']}.upload && echo same"
                   ).strip() == "same"
    log = on_host(iid, "docker logs infprov-triton 2>&1")
    assert "sandbox stand-in compile: checked" in log
    assert "torch-neuron-1.12.1.2.5.8.0" in log

    # the declared tensors come back; Triton refuses the wrong data type or shape before the model
    ok = infer(iid, "resnet", [tensor("x__0", "FP32", [2, 3, 224, 224], 0.5)])
    assert ok["status"] == 200, ok
    [out] = ok["body"]["outputs"]
    assert (out["name"], out["datatype"], out["shape"]) == ("y__0", "FP32", [2, 1000])
    bad_type = infer(iid, "resnet", [tensor("x__0", "INT32", [1, 3, 224, 224], 1)])
    assert bad_type["status"] == 400 and "data-type" in bad_type["body"]["error"], bad_type
    bad_shape = infer(iid, "resnet", [tensor("x__0", "FP32", [1, 3, 224, 225], 0.5)])
    assert bad_shape["status"] == 400 and "shape" in bad_shape["body"]["error"], bad_shape

    # bench with no flags: the served model's own input (one FP32 image input: random images)
    [point] = bench("mdl-ts")["hosts"][0]["points"]
    assert point["requests"] > 0 and point["errors"] == 0, point
    assert (point["manifest"]["input"], point["manifest"]["unit"]) == ("x__0", "images")

    # up again: nothing changes
    again = up("mdl-ts", "inf1.xlarge", *flags)
    assert again["server"]["changed"] == 0, again["server"]
    # up's staging folder went with its run (the host keeps the model); nothing of it is left in INFPROV_HOME
    assert list((cluster_home / "models").iterdir()) == []
    # nor does ansible-playbook running the same server.yml with the same model change anything (the variables
    # up passes, staged as up stages them)
    staged_plan = usermodel.plan(str(model), "inf1.xlarge", inputs=["x:FP32:3x224x224"], outputs=["y:FP32:1000"])
    assert staged_plan is not None
    given = usermodel.stage(staged_plan, tmp_path / "staged")
    assert given["infprov_model_key"] == plan["key"]
    (tmp_path / "vars.json").write_text(json.dumps(given))
    play = runner.invoke(app, ["play", str(SERVER_YML), "--name", "mdl-ts", "-e", f"@{tmp_path / 'vars.json'}",
                               "--json"])
    assert play.exit_code == 0, play.output
    recap = json.loads(play.stdout)
    assert recap["ok"] and recap["stats"][iid]["changed"] == 0, recap["stats"]

    # a changed model: uploaded, made and served; the old one removed from the host
    modelfiles.torchscript(model, payload=b"other weights")
    changed = up("mdl-ts", "inf1.xlarge", *flags)
    assert changed["server"]["hosts"][0]["ready"] and changed["server"]["changed"] > 0
    new = json.loads(on_host(iid, f"cat {PB}/infprov/model.json"))
    assert new["key"] != plan["key"]
    assert on_host(iid, f"ls {PB}/infprov/models").split() == [new["key"], new["key"] + ".upload"]
    assert infer(iid, "resnet", [tensor("x__0", "FP32", [1, 3, 224, 224], 0.5)])["status"] == 200

    # a SavedModel given without --input/--output: its serving_default signature, read from saved_model.pb on
    # this machine (written by Google's protobuf from the recorded upstream half_plus_two), is what is served
    from tests.unit.test_savedmodel_signature import folder_with, half_plus_two_by_protobuf

    folder = folder_with(tmp_path, half_plus_two_by_protobuf())
    sm = up("mdl-ts", "inf1.xlarge", "--model", str(folder))
    assert sm["server"]["hosts"][0]["ready"] and sm["server"]["hosts"][0]["model"] == "half_plus_two"
    meta = json.loads(on_host(iid, "curl -sf http://127.0.0.1:8000/v2/models/half_plus_two"))
    assert meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 1]}], meta
    assert meta["outputs"] == [{"name": "y", "datatype": "FP32", "shape": [-1, 1]}], meta
    answer = infer(iid, "half_plus_two", [tensor("x", "FP32", [2, 1], 4.0)])
    assert answer["status"] == 200 and answer["body"]["outputs"][0]["shape"] == [2, 1], answer

    # back to the default: ResNet-50 alone is served, the user's model and its uploads are gone
    back = up("mdl-ts", "inf1.xlarge")
    assert back["server"]["hosts"][0]["model"] == "rn50-4neuroncores-default"
    assert on_host(iid, f"ls {PB}/models").split() == ["rn50-4neuroncores-default"]
    assert on_host(iid, f"test -e {PB}/infprov/models && echo kept || echo removed").strip() == "removed"
    [point] = bench("mdl-ts")["hosts"][0]["points"]
    assert point["manifest"]["input"] == "input" and point["errors"] == 0


def test_hub_text_model_on_inf2_serves_int64_8_by_128(clusters: list[str], tmp_path: Path) -> None:
    folder = modelfiles.tiny_bert(tmp_path / "tiny-bert", vocab=1000, labels=3)
    flags = ["--model", str(folder), "--task", "text-classification", "--seq-len", "128"]
    clusters.append("mdl-hub")
    doc = up("mdl-hub", "inf2.xlarge", *flags)
    [host] = doc["server"]["hosts"]
    iid = host["instance_id"]
    assert host["ready"] and host["model"] == "tiny-bert"

    meta = json.loads(on_host(iid, "curl -sf http://127.0.0.1:8000/v2/models/tiny-bert"))
    assert meta["inputs"] == [{"name": "input_ids__0", "datatype": "INT64", "shape": [8, 128]},
                              {"name": "attention_mask__1", "datatype": "INT64", "shape": [8, 128]}]
    assert meta["outputs"] == [{"name": "logits__0", "datatype": "FP32", "shape": [8, 3]}]
    plan = json.loads(on_host(iid, f"cat {PB}/infprov/model.json"))
    served = on_host(iid, f"cat {PB}/models/tiny-bert/config.pbtxt")
    assert served == upstream_config("r24.04", plan["generator_args"], "tiny-bert")

    ok = infer(iid, "tiny-bert", [tensor("input_ids__0", "INT64", [8, 128], 7),
                                  tensor("attention_mask__1", "INT64", [8, 128], 1)])
    assert ok["status"] == 200, ok
    [logits] = ok["body"]["outputs"]
    assert (logits["name"], logits["datatype"], logits["shape"]) == ("logits__0", "FP32", [8, 3])
    short = infer(iid, "tiny-bert", [tensor("input_ids__0", "INT64", [8, 64], 7),
                                     tensor("attention_mask__1", "INT64", [8, 64], 1)])
    assert short["status"] == 400, short

    # bench with no flags: valid token ids and masks from the served config, figures in sequences
    for tool in ("client", "perf_analyzer"):
        [point] = bench("mdl-hub", "--tool", tool)["hosts"][0]["points"]
        assert point["batch_size"] == 8 and point["requests"] > 0 and point["errors"] == 0, point
        assert point["images_per_s"] == pytest.approx(point["requests_per_s"] * 8)
        assert (point["manifest"]["unit"], point["manifest"]["input_data"]) == ("sequences", "generated")
        assert point["latency_ms"]["p99"] > 0
    text = runner.invoke(app, ["bench", "--name", "mdl-hub", "--limit", "2", "--warmup", "1"])
    assert text.exit_code == 0, text.output
    assert "sequences/s" in text.stdout and "images/s" not in text.stdout
    # --input-data: the user's own requests, in perf_analyzer's format
    data = tmp_path / "requests.json"
    data.write_text(json.dumps({"data": [{"input_ids__0": {"content": [101] * 1024, "shape": [8, 128]},
                                          "attention_mask__1": {"content": [1] * 1024, "shape": [8, 128]}}]}))
    [point] = bench("mdl-hub", "--input-data", str(data))["hosts"][0]["points"]
    assert point["requests"] > 0 and point["errors"] == 0 and point["manifest"]["input_data"] == str(data)

    again = up("mdl-hub", "inf2.xlarge", *flags)
    assert again["server"]["changed"] == 0, again["server"]

    # an hf: model with the user's token: the sandbox has no internet, so the stand-in compile refuses it;
    # the token was carried to the host, taken by make_model.py and removed, and is in nothing infprov showed
    # or wrote, on the host or at home
    token = "hf_" + "sandboxToken7" * 3
    os.environ["HF_TOKEN"] = token
    try:
        hf = runner.invoke(app, ["up", "--sandbox", "--type", "inf2.xlarge", "--name", "mdl-hub", "--yes",
                                 "--model", "hf:org/name", "--task", "text-classification"])
    finally:
        del os.environ["HF_TOKEN"]
    assert hf.exit_code != 0 and "a hf: model cannot be downloaded there" in hf.output, hf.output
    assert token not in hf.output
    home = Path(os.environ["INFPROV_HOME"])
    assert not [p for p in home.rglob("*") if p.is_file() and not p.is_symlink() and token.encode() in p.read_bytes()]
    assert on_host(iid, f"sudo grep -rl {token} {PB} /opt 2>/dev/null; "
                        f"docker inspect infprov-triton | grep -c {token}; "
                        f"ls {PB}/infprov/models/hub-token 2>&1 | grep -c 'No such file'") == "0\n1\n"
