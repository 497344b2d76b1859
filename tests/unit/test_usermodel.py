"""`up --model`: the spec checked locally (one line per bad input, nothing launched), the plan's flags for
python_backend's own generator (what it wrote for them, as recorded), the compile command lines, the content address."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from infprov.provision import usermodel
from infprov.provision.cli import app
from infprov.sandbox import pbrepo, provenance
from tests import modelfiles

runner = CliRunner()
PLAYBOOK_FILES = Path(__file__).resolve().parents[2] / "playbooks" / "files" / "model"


GENERATOR = provenance.load("python_backend-gen_triton_model")


def generate(ref: str, args: list[str], name: str) -> str:
    """config.pbtxt as python_backend's own gen_triton_model.py writes it for args (the recorded output of
    the flag set with these flags, its folder's name and compiled model's path put in)."""
    return recorded_config(GENERATOR.fact("outputs"), ref, args, name)


def recorded_config(outputs: dict[str, Any], ref: str, args: list[str], name: str) -> str:
    compiled = args[args.index("--compiled_model") + 1]
    pattern = ["COMPILED" if a == compiled else a for a in args]
    for case in outputs.values():
        if case["ref"] == ref and case["args"] == pattern:
            text = str(case["config_pbtxt"])
            return text.replace('name: "MODEL"\n', f'name: "{name}"\n', 1).replace(
                'string_value: "COMPILED"}', f'string_value: "{compiled}"}}', 1)
    raise AssertionError(f"no recorded output of gen_triton_model.py at {ref} for {pattern}: record it "
                         "(sandbox/upstream/python_backend-gen_triton_model.json says how)")


# ---------------------------------------------------------------- the records
def test_the_standin_generator_writes_what_upstreams_wrote(tmp_path: Path) -> None:
    """The sandbox's stand-in gen_triton_model.py, run with each recorded flag set, writes the config.pbtxt
    upstream's generator wrote for it at that ref, byte for byte."""
    outputs = GENERATOR.fact("outputs")
    assert {case["ref"] for case in outputs.values()} == {"r22.04", "r24.04"}
    for key, case in outputs.items():
        gen = tmp_path / key / "inferentia" / "scripts" / "gen_triton_model.py"  # as in the stand-in repository
        gen.parent.mkdir(parents=True)
        gen.write_text(pbrepo.gen_source(pbrepo.BRANCH if case["ref"] == "r22.04" else pbrepo.V2_BRANCH))
        (tmp_path / key / "infprov-standin").mkdir()
        (tmp_path / key / "infprov-standin" / "model.py").write_text(pbrepo.MODEL_SOURCE.read_text())
        args = ["/c/model_neuron.pt" if a == "COMPILED" else a for a in case["args"]]
        out = tmp_path / key / "some-model"
        subprocess.run([sys.executable, str(gen), *args, "--triton_model_dir", str(out)], check=True,
                       capture_output=True, text=True)
        assert (out / "config.pbtxt").read_text() == recorded_config(outputs, case["ref"], args, "some-model"), key
    assert GENERATOR.fact("refs", "r22.04", "commit").startswith("f3ba41c")


def test_the_compile_script_makes_the_recorded_calls() -> None:
    rec = provenance.load("neuron-compile-apis")
    text = (PLAYBOOK_FILES / "compile_model.py").read_text()
    # the calls as the docs at the pinned releases give them; each with nothing but documented arguments
    assert "torch.neuron.trace(model, examples(torch, specs, 1), dynamic_batch_size=True)" in text
    assert "dynamic_batch_size" in rec.fact("torch_neuron_trace", "keywords")
    assert rec.fact("torch_neuron_trace", "signature").startswith("torch_neuron.trace(model, example_inputs")
    assert "torch_neuronx.trace(model, examples(torch, specs, args.batch))" in text
    assert rec.fact("torch_neuronx_trace", "signature").startswith("torch_neuronx.trace(func, example_inputs")
    assert "from_pretrained(source, torchscript=True)" in text
    assert "torchscript=True" in rec.fact("hub_model_trace", "steps")[0]
    assert "tfn.saved_model.compile(args.src, args.out, dynamic_batch_size=True)" in text


# ---------------------------------------------------------------- one line per bad input, nothing launched
def test_a_torchscript_on_inf1_is_planned_for_the_r22_04_generator(tmp_path: Path) -> None:
    model = modelfiles.torchscript(tmp_path / "resnet.pt")
    plan = usermodel.plan(str(model), "inf1.xlarge", inputs=["x:FP32:3x224x224"], outputs=["y:FP32:1000"])
    assert plan is not None
    assert (plan.kind, plan.name, plan.batch, plan.cores) == ("torchscript", "resnet", 8, 4)
    # python_backend's torch model.py takes tensors as NAME__INDEX
    assert [t.name for t in plan.inputs] == ["x__0"] and [t.name for t in plan.outputs] == ["y__0"]
    args = plan.generator_args("/c/model_neuron.pt")
    assert args == ["--model_type", "pytorch", "--compiled_model", "/c/model_neuron.pt", "--max_batch_size", "8",
                    "--triton_input", "x__0,FP32,3x224x224", "--triton_output", "y__0,FP32,1000",
                    "--neuron_core_range", "0:3"]
    config = generate("r22.04", args, "resnet")
    assert config.startswith('name: "resnet"\nbackend: "python"\nmax_batch_size: 8\n')
    assert 'name: "x__0"\n    data_type: TYPE_FP32\n    dims: [3, 224, 224]' in config
    assert 'name: "y__0"\n    data_type: TYPE_FP32\n    dims: [1000]' in config
    assert plan.compile_args("/s/model.pt", "/c/model_neuron.pt") == [
        "--kind", "torchscript", "--generation", "neuron-v1", "--src", "/s/model.pt", "--out", "/c/model_neuron.pt",
        "--batch", "8", "--input", "x__0:FP32:3x224x224"]


def test_a_hub_text_model_on_inf2_serves_int64_batch_by_seq_len(tmp_path: Path) -> None:
    folder = modelfiles.tiny_bert(tmp_path / "tiny-bert")
    plan = usermodel.plan(str(folder), "inf2.xlarge", task="text-classification", seq_len=128)
    assert plan is not None
    assert (plan.kind, plan.name, plan.vocab_size) == ("hub", "tiny-bert", 1000)
    args = plan.generator_args("/c/model_neuron.pt")
    assert args == ["--inf2", "--model_type", "pytorch", "--compiled_model", "model_neuron.pt",
                    "--triton_input", "input_ids__0,INT64,8x128", "--triton_input", "attention_mask__1,INT64,8x128",
                    "--triton_output", "logits__0,FP32,8x2", "--neuron_core_range", "0:1",
                    "--triton_model_instance_count", "2"]
    config = generate("r24.04", args, "tiny-bert")
    assert "max_batch_size: 0\n" in config
    assert 'name: "input_ids__0"\n    data_type: TYPE_INT64\n    dims: [8, 128]' in config
    assert plan.compile_args("/s", "/c/m.pt") == [
        "--kind", "hub", "--generation", "neuron-v2", "--src", "/s", "--out", "/c/m.pt", "--batch", "8",
        "--task", "text-classification", "--seq-len", "128",
        "--input", "input_ids__0:INT64:128", "--input", "attention_mask__1:INT64:128"]


@pytest.mark.parametrize("text, said", [
    ("x:FP32", "is not NAME:DTYPE:SHAPE"),
    ("x:FLOAT:3", "'FLOAT' is not a Triton data type"),
    ("x:STRING:3", "cannot pass through python_backend's Neuron model"),
    ("x:FP32:3x0x2", "every dimension must be from 1"),
    ("x:FP32:3x-1", "is not dimensions like 3x224x224"),
    ("x:FP32:3xa", "is not dimensions like 3x224x224"),
    ("x y:FP32:3", "is not a tensor name"),
    ("x:FP32:1x1x1x1x1x1x1x1x1", "at most 8 dimensions"),
])
def test_a_bad_tensor_spec_is_one_line(text: str, said: str) -> None:
    tensor, problem = usermodel.parse_tensor(text, "--input")
    assert tensor is None and said in problem and "\n" not in problem


def test_triton_dtypes_are_taken_as_triton_names_them() -> None:
    assert usermodel.parse_tensor("ids:int64:128", "--input")[0] == usermodel.Tensor("ids", "INT64", (128,))
    assert usermodel.parse_tensor("x:TYPE_FP16:4x4", "--input")[0] == usermodel.Tensor("x", "FP16", (4, 4))


@pytest.mark.parametrize("make, itype, extra, said", [
    ("checkpoint", "inf1.xlarge", [], "a torch.save checkpoint (weights), not TorchScript"),
    ("text", "inf1.xlarge", [], "not a TorchScript archive (BadZipFile"),
    ("empty-folder", "inf1.xlarge", [], "a folder without saved_model.pb"),
    ("hub-no-weights", "inf2.xlarge", ["--task", "text-classification"], "no weights"),
    ("hub-no-tokenizer", "inf2.xlarge", ["--task", "text-classification"], "no tokenizer files"),
    ("hub", "inf2.xlarge", ["--task", "translation"], "--task 'translation' is not one infprov supports"),
    ("hub", "inf2.xlarge", [], "say what the model does with --task"),
    ("hub", "inf1.xlarge", ["--task", "text-classification"], "use an inf2 or trn1 type"),
    ("torchscript", "inf1.xlarge", ["--input", "x:FP32:3x224x224"], "TorchScript carries no tensor names"),
    ("torchscript", "inf1.xlarge", ["--input", "x__1:FP32:3", "--output", "y:FP32:2"], "name it x__0"),
    ("torchscript", "inf1.xlarge", ["--input", "x:FP32:3", "--input", "x:FP32:3", "--output", "y:FP32:2"],
     "given twice"),
    ("torchscript", "inf1.xlarge", ["--input", "a:FP32:3", "--input", "b__0:FP32:3", "--output", "y:FP32:2"],
     "is number 1 in its list"),
    ("hf:bad id", "inf2.xlarge", ["--task", "text-classification"], "is not a Hugging Face model id"),
    ("missing", "inf1.xlarge", [], "no such file or folder"),
    ("torchscript", "inf1.xlarge", ["--input", "x:FP32:3", "--output", "y:FP32:2", "--batch", "0"],
     "--batch 0 is out of range"),
    ("rn50", "inf1.xlarge", ["--seq-len", "64"], "not to the default rn50"),
])
def test_bad_models_are_refused_before_anything_is_launched(
        tmp_path: Path, infprov_home: Path, make: str, itype: str, extra: list[str], said: str) -> None:
    spec = str(tmp_path / make)
    if make == "checkpoint":
        modelfiles.checkpoint(Path(spec))
    elif make == "torchscript":
        modelfiles.torchscript(Path(spec))
    elif make == "text":
        Path(spec).write_text("not a model")
    elif make == "empty-folder":
        Path(spec).mkdir()
    elif make.startswith("hub"):
        modelfiles.tiny_bert(Path(spec))
        if make == "hub-no-weights":
            (Path(spec) / "model.safetensors").unlink()
        if make == "hub-no-tokenizer":
            (Path(spec) / "vocab.txt").unlink()
    elif make.startswith(("hf:", "rn50")):
        spec = make
    # no sandbox, no credentials: a bad model ends the run before any of them is needed
    res = runner.invoke(app, ["up", "--type", itype, "--model", spec, "--yes", *extra])
    assert res.exit_code == 2, res.output
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert any(said in line for line in lines), res.stderr
    assert all(line.startswith("error:") for line in lines), res.stderr
    assert "Traceback" not in res.output
    assert not infprov_home.exists() or not any(infprov_home.rglob("*.upload"))


def test_every_bad_input_gets_its_own_line(tmp_path: Path) -> None:
    model = modelfiles.torchscript(tmp_path / "m.pt")
    res = runner.invoke(app, ["up", "--type", "inf1.xlarge", "--model", str(model), "--input", "x:FLOAT:3",
                              "--output", "y:FP32:0", "--batch", "999", "--yes"])
    assert res.exit_code == 2
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 3, res.stderr
    assert "--batch 999" in lines[0] and "FLOAT" in lines[1] and "every dimension" in lines[2]
    assert lines[-1].endswith("hint: 3 problems; nothing was launched")


# ---------------------------------------------------------------- the content address
def test_the_same_folder_packs_to_the_same_key_and_a_change_moves_it(tmp_path: Path) -> None:
    folder = modelfiles.tiny_bert(tmp_path / "tiny-bert")
    plan = usermodel.plan(str(folder), "inf2.xlarge", task="text-classification")
    assert plan is not None
    out = tmp_path / "models"
    upload, key = usermodel.pack(plan, out)
    data = upload.read_bytes()
    assert upload == out / f"{key}.upload" and hashlib.sha256(data).hexdigest() == key
    with tarfile.open(upload) as tar:
        assert tar.getnames() == sorted(tar.getnames()) and {m.mtime for m in tar.getmembers()} == {0}
    (folder / "config.json").touch()  # a new time, the same bytes
    assert usermodel.pack(plan, out) == (upload, key) and upload.read_bytes() == data
    (folder / "vocab.txt").write_text("[PAD]\n")
    assert usermodel.pack(plan, out)[1] != key
    assert sorted(p.name for p in out.iterdir()) == sorted([f"{key}.upload", f"{usermodel.pack(plan, out)[1]}.upload"])


def test_a_runs_staging_goes_with_it_and_a_killed_runs_is_swept(tmp_path: Path) -> None:
    import fcntl

    model = modelfiles.torchscript(tmp_path / "m.pt")
    plan = usermodel.plan(str(model), "inf1.xlarge", inputs=["x:FP32:3x224x224"], outputs=["y:FP32:1000"])
    assert plan is not None
    models = tmp_path / "models"
    with usermodel.staged_for_run(None, models) as nothing:
        assert nothing is None and not models.exists()  # no model: nothing made
    killed = models / "up-killed"
    killed.mkdir(parents=True)
    (killed / ".lock").touch()
    (killed / "x.upload").write_bytes(b"left by a run that was killed")
    live = models / "up-live"
    live.mkdir()
    with open(live / ".lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # another run of this home, still going
        with pytest.raises(RuntimeError, match="the run failed"), usermodel.staged_for_run(plan, models) as staged:
            assert staged is not None
            upload = Path(staged["infprov_model_upload"])
            assert upload.read_bytes() == model.read_bytes() and upload.parent.parent == models
            assert not killed.exists() and live.exists()
            raise RuntimeError("the run failed")
    assert not upload.parent.exists() and sorted(p.name for p in models.iterdir()) == ["up-live"]


def test_stage_writes_private_files_and_the_playbooks_variable(tmp_path: Path, infprov_home: Path) -> None:
    model = modelfiles.torchscript(tmp_path / "m.pt")
    plan = usermodel.plan(str(model), "inf1.xlarge", inputs=["x:FP32:3x224x224"], outputs=["y:FP32:1000"])
    assert plan is not None
    staged = usermodel.stage(plan, infprov_home / "models")
    assert staged["infprov_model_key"] == hashlib.sha256(model.read_bytes()).hexdigest()
    assert staged["infprov_model_framework"] == "-p"
    upload, plan_file = Path(staged["infprov_model_upload"]), Path(staged["infprov_model_plan"])
    assert upload.read_bytes() == model.read_bytes()
    assert upload.stat().st_mode & 0o077 == 0 and plan_file.stat().st_mode & 0o077 == 0
    doc = json.loads(plan_file.read_text())
    assert doc["compiled"].startswith(f"{usermodel.HOST_MODELS}/{staged['infprov_model_key']}/compiled-")
    assert doc["generator_args"][doc["generator_args"].index("--compiled_model") + 1] == doc["compiled"]
    assert doc["compile_args"][doc["compile_args"].index("--src") + 1].endswith("/src/model.pt")


# ---------------------------------------------------------------- bench: valid data from the served config
def _served(config: dict[str, Any]) -> Any:
    from infprov.provision import bench

    return bench.ModelConfig.parse(json.dumps(config))


TEXT_V2 = {"max_batch_size": 0,
           "input": [{"name": "input_ids__0", "data_type": "TYPE_INT64", "dims": [8, 128]},
                     {"name": "attention_mask__1", "data_type": "TYPE_INT64", "dims": [8, 128]}],
           "output": [{"name": "logits__0", "data_type": "TYPE_FP32", "dims": [8, 3]}]}


def test_a_text_model_gets_token_ids_within_its_vocabulary_and_masks_of_ones() -> None:
    from infprov.provision import bench

    config = _served(TEXT_V2)
    assert not config.image_model and config.unit == "sequences" and config.fixed_batch == 8
    assert config.batch_for(0) == 8
    doc = bench.input_data(config, 8, vocab=50)
    [entry] = doc["data"]  # a model of fixed shape: one entry holds the whole tensor
    ids, mask = entry["input_ids__0"], entry["attention_mask__1"]
    assert ids["shape"] == [8, 128] and len(ids["content"]) == 1024
    assert all(isinstance(v, int) and 0 <= v < 50 for v in ids["content"]) and len(set(ids["content"])) > 1
    assert mask["content"] == [1] * 1024


def test_a_batching_model_gets_one_entry_per_item_images_and_zeros() -> None:
    from infprov.provision import bench

    config = _served({"max_batch_size": 8,
                      "input": [{"name": "x__0", "data_type": "TYPE_FP32", "dims": [3, 16, 16]},
                                {"name": "k__1", "data_type": "TYPE_INT32", "dims": [4]}],
                      "output": [{"name": "y__0", "data_type": "TYPE_FP32", "dims": [10]}]})
    assert config.unit == "inferences" and config.fixed_batch is None
    doc = bench.input_data(config, 4, vocab=0)
    assert len(doc["data"]) == 4
    x = doc["data"][0]["x__0"]["content"]
    assert len(x) == 3 * 16 * 16 and all(0.0 <= v < 1.0 for v in x)
    assert doc["data"][0]["k__1"] == {"content": [0, 0, 0, 0], "shape": [4]}


def test_an_image_model_keeps_the_random_image_path() -> None:

    single = _served({"max_batch_size": 8,
                      "input": [{"name": "x__0", "data_type": "TYPE_FP32", "dims": [3, 224, 224]}],
                      "output": [{"name": "y__0", "data_type": "TYPE_FP32", "dims": [1000]}]})
    assert single.image_model and single.unit == "images" and single.input_name == "x__0"


def test_both_tools_are_handed_the_data_file() -> None:
    import shlex

    from infprov.provision import bench, benchplan

    config = _served(TEXT_V2)
    plan = benchplan.plan("inf2.xlarge", model="tiny-bert", threads=2, limit_s=5, tool="perf_analyzer",
                          neuron_cores=2)
    point = benchplan.Point(8, 2)
    pa = shlex.split(bench._perf_analyzer_command(plan, point, "n", "/r/p.csv", config, "/r", "/r/input-data.json"))
    assert pa[pa.index("--input-data") + 1] == "/r/input-data.json" and "--shape" not in pa
    assert pa[pa.index("-b") + 1] == "1"  # a fixed-shape model: -b 1, its 8 sequences are in the tensor
    client = shlex.split(bench._client_command(plan, point, "n", "/r/p.json", "/r/c.pyz", config, False, "/r",
                                               "/r/input-data.json"))
    assert client[client.index("--input_data") + 1] == "/r/input-data.json"
    assert client[client.index("--batch_size") + 1] == "8"


def test_bench_input_data_must_be_perf_analyzers_json(tmp_path: Path) -> None:
    from infprov.floor.errors import UsageError
    from infprov.provision import bench

    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    with pytest.raises(UsageError, match='no "data" list'):
        bench.check_input_data(str(bad))
    bad.write_text("{not json")
    with pytest.raises(UsageError, match="cannot be read as JSON"):
        bench.check_input_data(str(bad))
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"data": [{"x": [1, 2]}]}))
    bench.check_input_data(str(good))


def test_the_client_reads_perf_analyzers_input_data(tmp_path: Path) -> None:
    import base64

    import numpy as np

    from infprov.client.tritonbench import protocol
    from infprov.client.tritonbench.transport import ClientError

    path = tmp_path / "data.json"
    path.write_text(json.dumps({"data": [
        {"ids": {"content": [1, 2, 3, 4], "shape": [4]}, "m": [1, 1, 1, 1]},
        {"ids": {"b64": base64.b64encode(np.arange(4, dtype="<i8").tobytes()).decode()}, "m": [0, 0, 0, 0]}]}))
    inputs = [{"name": "ids", "datatype": "INT64", "shape": [-1, 4]},
              {"name": "m", "datatype": "INT32", "shape": [-1, 4]}]
    tensors = protocol.load_input_data(str(path), inputs, max_batch=8, batch=3)  # round-robin over the entries
    (n1, ids, t1), (n2, mask, t2) = tensors
    assert (n1, t1, ids.shape, ids.dtype) == ("ids", "INT64", (3, 4), np.int64)
    assert ids.tolist() == [[1, 2, 3, 4], [0, 1, 2, 3], [1, 2, 3, 4]]
    assert (n2, mask.dtype, mask[:, 0].tolist()) == ("m", np.int32, [1, 0, 1])
    path.write_text(json.dumps({"data": [{"ids": [1, 2, 3]}]}))
    with pytest.raises(ClientError, match="has 3 values"):
        protocol.load_input_data(str(path), inputs[:1], max_batch=8, batch=1)


def test_a_savedmodel_on_inf1_keeps_its_signature_names(tmp_path: Path) -> None:
    folder = tmp_path / "classifier"
    (folder / "variables").mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(b"\x08\x01")
    plan = usermodel.plan(str(folder), "inf1.6xlarge", inputs=["images:FP32:224x224x3"], outputs=["probs:FP32:1000"],
                          batch=64)
    assert plan is not None and plan.kind == "savedmodel" and plan.cores == 16
    args = plan.generator_args("/c/model_neuron")
    assert args[:4] == ["--model_type", "tensorflow", "--compiled_model", "/c/model_neuron"]
    config = generate("r22.04", args, "classifier")
    assert 'name: "images"\n    data_type: TYPE_FP32\n    dims: [224, 224, 3]' in config
    assert "max_batch_size: 64\n" in config and '"NEURON_CORE_END_INDEX", value: {string_value: "15"}' in config
    with pytest.raises(usermodel.ModelSpecError, match="on Inf1 only"):
        usermodel.plan(str(folder), "inf2.xlarge", inputs=["images:FP32:224x224x3"], outputs=["probs:FP32:1000"])


def test_an_image_classifier_from_the_hub_takes_pixel_values(tmp_path: Path) -> None:
    folder = modelfiles.tiny_bert(tmp_path / "vit", labels=5)
    (folder / "vocab.txt").unlink()
    (folder / "preprocessor_config.json").write_text("{}")
    doc = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**doc, "image_size": 32, "num_channels": 3}))
    plan = usermodel.plan(str(folder), "trn1.2xlarge", task="image-classification", batch=4)
    assert plan is not None
    served = [(t.name, t.dtype, plan.served_dims(t)) for t in plan.inputs]
    assert served == [("pixel_values__0", "FP32", (4, 3, 32, 32))]
    assert [(t.name, plan.served_dims(t)) for t in plan.outputs] == [("logits__0", (4, 5))]


def test_the_standin_model_takes_a_savedmodels_names_as_upstreams_tensorflow_model_does() -> None:
    """Upstream's TensorFlow model.py feeds the predictor by the config's names as they are (no __INDEX rule) and
    loads a SavedModel folder; the stand-in tells the two kinds apart by that folder."""
    assert "no <name>__<index> rule" in GENERATOR.fact("tensorflow_tensor_names")
    assert "SavedModel folder" in GENERATOR.fact("tensorflow_compiled_model")
    standin = (PLAYBOOK_FILES / "standin_model.py").read_text()
    assert "if os.path.isdir(compiled):" in standin


def test_the_standin_model_refuses_names_as_upstreams_torch_model_does() -> None:
    """The stand-in's NAME__INDEX rule is the one upstream's generators write into the torch model.py."""
    standin = (PLAYBOOK_FILES / "standin_model.py").read_text()
    assert GENERATOR.fact("torch_tensor_name_error") in standin
    assert "<name>__<index>" in GENERATOR.fact("torch_tensor_names")
