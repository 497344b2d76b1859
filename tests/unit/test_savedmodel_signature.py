"""A SavedModel's serving signature read from saved_model.pb without TensorFlow (provision/savedmodel.py):
upstream's half_plus_two read exactly, a plan made from a folder with no --input/--output, given tensors
winning, and every hostile or unservable file one line with nothing launched.

The real file is tensorflow/serving's test SavedModel (tests/data/savedmodel/PROVENANCE): fetched public data
stays out of this repository, so it is read from shared/ beside the checkout (or INFPROV_SAVEDMODEL_TESTDATA).
The other files are written here by a small encoder of the protocol buffer wire format, with the field numbers
of the record sandbox/upstream/tensorflow-savedmodel-protos.json.
"""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from infprov.provision import savedmodel, usermodel
from infprov.provision.cli import app
from infprov.sandbox import provenance

RECORD = provenance.load("tensorflow-savedmodel-protos")
FIELDS = RECORD.fact("fields")
DT = RECORD.fact("data_types")
REPO_ROOT = Path(__file__).resolve().parents[2]

# tensorflow/serving 2.20.0, tensorflow_serving/servables/tensorflow/testdata/saved_model_half_plus_two_cpu/00000123
REAL_GIT_BLOB = "8aca300f0f7c330aa4695a1a4beacfb3876769ff"
REAL_SHA256 = "e233fdf986e74feba2329fd68f5fc18ebbde977a35e32080eb81a9a19ce0e02f"
REAL_FOLDER = "testdata/savedmodel/half_plus_two_cpu/00000123"


# ---------------------------------------------------------------- a wire-format encoder for the test files
def varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # negative int64 values go out as 10 bytes, as protocol buffers write them
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def num(field: int, value: int) -> bytes:
    return varint(field << 3) + varint(value)


def ld(field: int, data: bytes | str) -> bytes:
    raw = data.encode() if isinstance(data, str) else data
    return varint(field << 3 | 2) + varint(len(raw)) + raw


def tensor_info(name: str, dtype: str, dims: list[int] | None) -> bytes:
    ti = FIELDS["TensorInfo"]
    shape = FIELDS["TensorShapeProto"]
    if dims is None:
        shape_bytes = num(shape["unknown_rank"], 1)
    else:
        shape_bytes = b"".join(ld(shape["dim"], num(FIELDS["TensorShapeProto.Dim"]["size"], d)) for d in dims)
    return ld(ti["name"], name) + num(ti["dtype"], DT[dtype]) + ld(ti["tensor_shape"], shape_bytes)


def tensor_map(field: int, tensors: dict[str, bytes]) -> bytes:
    return b"".join(ld(field, ld(1, key) + ld(2, value)) for key, value in tensors.items())


def signature(inputs: dict[str, bytes], outputs: dict[str, bytes], method: str = "tensorflow/serving/predict") -> bytes:
    sd = FIELDS["SignatureDef"]
    return tensor_map(sd["inputs"], inputs) + tensor_map(sd["outputs"], outputs) + ld(sd["method_name"], method)


def meta_graph(sigs: dict[str, bytes], tags: tuple[str, ...] = ("serve",), graph: bytes = b"\x0a\x00") -> bytes:
    mg = FIELDS["MetaGraphDef"]
    info = b"".join(ld(FIELDS["MetaGraphDef.MetaInfoDef"]["tags"], t) for t in tags)
    body = ld(mg["meta_info_def"], info) + ld(mg["graph_def"], graph)
    return body + b"".join(ld(mg["signature_def"], ld(1, k) + ld(2, v)) for k, v in sigs.items())


def saved_model(*graphs: bytes) -> bytes:
    sm = FIELDS["SavedModel"]
    return num(sm["saved_model_schema_version"], 1) + b"".join(ld(sm["meta_graphs"], g) for g in graphs)


def half_plus_two_serving() -> bytes:
    """half_plus_two's serving_default as upstream's metadata describes it: x (x:0) -> y (y:0), DT_FLOAT [-1, 1]."""
    return signature({"x": tensor_info("x:0", "DT_FLOAT", [-1, 1])}, {"y": tensor_info("y:0", "DT_FLOAT", [-1, 1])})


def folder_with(tmp_path: Path, data: bytes, name: str = "half_plus_two") -> Path:
    folder = tmp_path / name
    (folder / "variables").mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(data)
    return folder


def problems(folder: Path, itype: str = "inf1.xlarge", **kw: Any) -> list[str]:
    with pytest.raises(usermodel.ModelSpecError) as err:
        usermodel.plan(str(folder), itype, **kw)
    return err.value.problems


# ---------------------------------------------------------------- the real file, from upstream
@pytest.fixture()
def real_folder(tmp_path: Path) -> Path:
    """A copy of upstream's half_plus_two SavedModel folder (its saved_model.pb, checked byte for byte)."""
    given = os.environ.get("INFPROV_SAVEDMODEL_TESTDATA")
    src = Path(given) if given else REPO_ROOT.parent / "shared" / REAL_FOLDER
    pb = src / "saved_model.pb" if src.is_dir() else src
    if not pb.is_file():
        pytest.skip(f"upstream's half_plus_two saved_model.pb is not at {pb}: put it there as "
                    "tests/data/savedmodel/PROVENANCE says")
    data = pb.read_bytes()
    assert hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest() == REAL_GIT_BLOB, pb
    assert hashlib.sha256(data).hexdigest() == REAL_SHA256
    return folder_with(tmp_path, data)


def test_the_real_half_plus_two_signatures_are_read_exactly(real_folder: Path) -> None:
    """What tensorflow/serving's own test expects this model's metadata to be (testdata/
    half_plus_two_model_metadata.json, served from saved_model_half_plus_two_cpu by
    tensorflow_model_server_test.py's testGetModelMetadataREST), signature by signature."""
    found = savedmodel.signatures(savedmodel.read_file(real_folder / "saved_model.pb"))

    def t(key: str, name: str, dtype: str, dims: tuple[int, ...] | None) -> savedmodel.SignatureTensor:
        return savedmodel.SignatureTensor(key, name, DT[dtype], dims)

    example = t("inputs", "tf_example:0", "DT_STRING", None)
    assert found == {
        "serving_default": savedmodel.Signature(
            "serving_default", (t("x", "x:0", "DT_FLOAT", (-1, 1)),), (t("y", "y:0", "DT_FLOAT", (-1, 1)),),
            "tensorflow/serving/predict"),
        "classify_x_to_y": savedmodel.Signature(
            "classify_x_to_y", (example,), (t("scores", "y:0", "DT_FLOAT", (-1, 1)),), "tensorflow/serving/classify"),
        "regress_x_to_y": savedmodel.Signature(
            "regress_x_to_y", (example,), (t("outputs", "y:0", "DT_FLOAT", (-1, 1)),), "tensorflow/serving/regress"),
        "regress_x_to_y2": savedmodel.Signature(
            "regress_x_to_y2", (example,), (t("outputs", "y2:0", "DT_FLOAT", (-1, 1)),),
            "tensorflow/serving/regress"),
        "regress_x2_to_y3": savedmodel.Signature(
            "regress_x2_to_y3", (t("inputs", "x2:0", "DT_FLOAT", (-1, 1)),),
            (t("outputs", "y3:0", "DT_FLOAT", (-1, 1)),), "tensorflow/serving/regress"),
    }
    # the files this test writes describe half_plus_two's serving signature as the real file does
    written = savedmodel.signatures(saved_model(meta_graph({"serving_default": half_plus_two_serving()})))
    assert written["serving_default"] == found["serving_default"]


def test_a_plan_from_the_real_folder_needs_no_input_or_output(real_folder: Path) -> None:
    plan = usermodel.plan(str(real_folder), "inf1.xlarge")
    assert plan is not None and plan.kind == "savedmodel"
    assert plan.inputs == (usermodel.Tensor("x", "FP32", (1,)),)
    assert plan.outputs == (usermodel.Tensor("y", "FP32", (1,)),)
    args = plan.generator_args("/c/model_neuron")
    assert args[args.index("--triton_input") + 1] == "x,FP32,1"
    assert args[args.index("--triton_output") + 1] == "y,FP32,1"


# ---------------------------------------------------------------- the record and the decoder agree
def test_the_decoders_numbers_are_the_recorded_ones() -> None:
    assert FIELDS["SavedModel"]["meta_graphs"] == savedmodel.SAVED_MODEL_META_GRAPHS
    assert FIELDS["MetaGraphDef"]["meta_info_def"] == savedmodel.META_GRAPH_INFO
    assert FIELDS["MetaGraphDef"]["signature_def"] == savedmodel.META_GRAPH_SIGNATURES
    assert FIELDS["MetaGraphDef.MetaInfoDef"]["tags"] == savedmodel.META_INFO_TAGS
    sd = FIELDS["SignatureDef"]
    assert (sd["inputs"], sd["outputs"], sd["method_name"]) == (
        savedmodel.SIGNATURE_INPUTS, savedmodel.SIGNATURE_OUTPUTS, savedmodel.SIGNATURE_METHOD)
    ti = FIELDS["TensorInfo"]
    assert (ti["name"], ti["dtype"], ti["tensor_shape"], ti["coo_sparse"], ti["composite_tensor"]) == (
        savedmodel.INFO_NAME, savedmodel.INFO_DTYPE, savedmodel.INFO_SHAPE, savedmodel.INFO_COO_SPARSE,
        savedmodel.INFO_COMPOSITE)
    assert (FIELDS["TensorShapeProto"]["dim"], FIELDS["TensorShapeProto"]["unknown_rank"]) == (
        savedmodel.SHAPE_DIM, savedmodel.SHAPE_UNKNOWN_RANK)
    assert FIELDS["TensorShapeProto.Dim"]["size"] == savedmodel.DIM_SIZE
    assert {value: name for name, value in DT.items()} == savedmodel.DATA_TYPES
    assert RECORD.fact("serving", "default_signature_key") == savedmodel.DEFAULT_SIGNATURE
    assert RECORD.fact("serving", "serving_tag") == savedmodel.SERVE_TAG


def test_each_data_type_maps_to_the_triton_type_the_plan_takes() -> None:
    expected = {"DT_FLOAT": "FP32", "DT_HALF": "FP16", "DT_DOUBLE": "FP64", "DT_INT8": "INT8",
                "DT_INT16": "INT16", "DT_INT32": "INT32", "DT_INT64": "INT64", "DT_UINT8": "UINT8",
                "DT_UINT16": "UINT16", "DT_UINT32": "UINT32", "DT_UINT64": "UINT64", "DT_BOOL": "BOOL",
                "DT_STRING": "STRING", "DT_BFLOAT16": "BF16"}
    assert expected == savedmodel.TRITON
    assert set(expected.values()) <= set(usermodel.TRITON_DTYPES)


# ---------------------------------------------------------------- plans from written SavedModels
def test_a_plan_needs_no_tensors_when_the_signature_can_be_read(tmp_path: Path) -> None:
    folder = folder_with(tmp_path, saved_model(meta_graph({
        "serving_default": signature(
            {"pixels": tensor_info("input_1:0", "DT_FLOAT", [-1, 224, 224, 3]),
             "mask": tensor_info("m:0", "DT_INT64", [-1, 7])},
            {"probs": tensor_info("dense/Softmax:0", "DT_HALF", [-1, 1000])}),
        "other": signature({"a": tensor_info("a:0", "DT_FLOAT", [-1, 1])}, {"b": tensor_info("b:0", "DT_FLOAT",
                                                                                                [-1, 1])}),
    })))
    plan = usermodel.plan(str(folder), "inf1.6xlarge", batch=16)
    assert plan is not None
    # the signature's keys, in key order; the batch axis dropped (Inf1 serves a batching model)
    assert plan.inputs == (usermodel.Tensor("mask", "INT64", (7,)), usermodel.Tensor("pixels", "FP32", (224, 224, 3)))
    assert plan.outputs == (usermodel.Tensor("probs", "FP16", (1000,)),)
    assert plan.generator_args("/c/m")[4:6] == ["--max_batch_size", "16"]


def test_given_tensors_win_over_the_file(tmp_path: Path) -> None:
    folder = folder_with(tmp_path, saved_model(meta_graph({"serving_default": half_plus_two_serving()})))
    plan = usermodel.plan(str(folder), "inf1.xlarge", inputs=["images:FP32:3x4"], outputs=["probs:FP32:10"])
    assert plan is not None
    assert plan.inputs == (usermodel.Tensor("images", "FP32", (3, 4)),)
    assert plan.outputs == (usermodel.Tensor("probs", "FP32", (10,)),)
    # given, they are all there is: a file that cannot be read is not read
    (folder / "saved_model.pb").write_bytes(b"\xff" * 64)
    assert usermodel.plan(str(folder), "inf1.xlarge", inputs=["a:FP32:3"], outputs=["b:FP32:2"]) is not None


def test_one_side_given_asks_for_both_or_neither(tmp_path: Path) -> None:
    folder = folder_with(tmp_path, saved_model(meta_graph({"serving_default": half_plus_two_serving()})))
    [line] = problems(folder, inputs=["x:FP32:1"])
    assert "both --input and --output" in line and "or neither" in line


def test_the_only_signature_is_served_when_it_is_not_serving_default(tmp_path: Path) -> None:
    folder = folder_with(tmp_path, saved_model(meta_graph({"predict": half_plus_two_serving()})))
    plan = usermodel.plan(str(folder), "inf1.xlarge")
    assert plan is not None and [t.name for t in plan.inputs + plan.outputs] == ["x", "y"]


def test_the_meta_graph_tagged_serve_is_the_one_read(tmp_path: Path) -> None:
    train = meta_graph({"serving_default": signature({"t": tensor_info("t:0", "DT_FLOAT", [-1, 5])},
                                                     {"u": tensor_info("u:0", "DT_FLOAT", [-1, 5])})}, ("train",))
    serve = meta_graph({"serving_default": half_plus_two_serving()})
    plan = usermodel.plan(str(folder_with(tmp_path, saved_model(train, serve))), "inf1.xlarge")
    assert plan is not None and [t.name for t in plan.inputs] == ["x"]
    [line] = problems(folder_with(tmp_path, saved_model(train), "train-only"))
    assert "no MetaGraph tagged just 'serve'" in line and "tags found: 'train'" in line


# ---------------------------------------------------------------- what cannot be served as read: one line each
@pytest.mark.parametrize("sigs, said", [
    ({"a": half_plus_two_serving(), "b": half_plus_two_serving()},
     "has 2 signatures ('a', 'b') and none is serving_default: give --input/--output (NAME:DTYPE:SHAPE) for the one"),
    ({}, "has no signature to serve"),
    ({"serving_default": signature({"x": tensor_info("x:0", "DT_FLOAT", [-1, 28, -1])},
                                   {"y": tensor_info("y:0", "DT_FLOAT", [-1, 10])})},
     "the input 'x' (x:0) of saved_model.pb's signature 'serving_default' has shape [-1, 28, -1]: axis 2 of "
     "unknown size: give --input/--output (NAME:DTYPE:SHAPE) for it"),
    ({"serving_default": signature({"x": tensor_info("x:0", "DT_FLOAT", [-1, 1])},
                                   {"y": tensor_info("y:0", "DT_FLOAT", None)})},
     "the output 'y' (y:0) of saved_model.pb's signature 'serving_default' has an unknown rank"),
    ({"serving_default": signature({"x": tensor_info("x:0", "DT_FLOAT", [1, 224])},
                                   {"y": tensor_info("y:0", "DT_FLOAT", [-1, 10])})},
     "its first axis is 1, not a batch axis of any size (-1)"),
    ({"serving_default": signature({"x": tensor_info("x:0", "DT_FLOAT", [-1])},
                                   {"y": tensor_info("y:0", "DT_FLOAT", [-1, 10])})},
     "has shape [-1]: one number per item"),
    ({"serving_default": signature({"x": tensor_info("x:0", "DT_COMPLEX64", [-1, 2])},
                                   {"y": tensor_info("y:0", "DT_FLOAT", [-1, 10])})},
     "the input 'x' (x:0) of saved_model.pb's signature 'serving_default' is DT_COMPLEX64, which Triton has no "
     "type for"),
    ({"serving_default": signature({"x": tensor_info("x:0", "DT_FLOAT", [-1, 2])}, {})}, "has no outputs"),
    # read as what it is, then refused as --input refuses it
    ({"serving_default": signature({"text": tensor_info("t:0", "DT_STRING", [-1, 1])},
                                   {"y": tensor_info("y:0", "DT_FLOAT", [-1, 10])})},
     "saved_model.pb's input 'text:STRING:1': STRING cannot pass through python_backend's Neuron model"),
    ({"serving_default": signature({"in/x": tensor_info("x:0", "DT_FLOAT", [-1, 2])},
                                   {"y": tensor_info("y:0", "DT_FLOAT", [-1, 10])})},
     "saved_model.pb's input 'in/x' is not a name Triton serves"),
    ({"serving_default": signature({"in:x": tensor_info("x:0", "DT_FLOAT", [-1, 2])},
                                   {"y": tensor_info("y:0", "DT_FLOAT", [-1, 10])})},
     "saved_model.pb's input 'in:x' is not a name Triton serves"),
])
def test_a_signature_that_cannot_be_served_as_read_is_one_line(tmp_path: Path, sigs: dict[str, bytes],
                                                               said: str) -> None:
    folder = folder_with(tmp_path, saved_model(meta_graph(sigs)))
    [line] = problems(folder)
    assert line.startswith(f"--model {folder}: ") and said in line and "\n" not in line, line


def test_an_input_and_an_output_of_one_key_are_refused_as_given_ones_are(tmp_path: Path) -> None:
    folder = folder_with(tmp_path, saved_model(meta_graph({"serving_default": signature(
        {"x": tensor_info("x:0", "DT_FLOAT", [-1, 2])}, {"x": tensor_info("y:0", "DT_FLOAT", [-1, 10])})})))
    assert problems(folder) == ["tensor name(s) x given twice: every input and output needs its own name"]


def test_names_from_the_file_are_quoted_and_cut_in_the_line(tmp_path: Path) -> None:
    key = "a\nb" + "c" * 500
    folder = folder_with(tmp_path, saved_model(meta_graph({"serving_default": signature(
        {key: tensor_info("x\n:0", "DT_FLOAT", [-1, -1])}, {"y": tensor_info("y:0", "DT_FLOAT", [-1, 1])})})))
    [line] = problems(folder)
    assert "\n" not in line and "the input 'a\\nbccc" in line and "...' (x\\n:0) of" in line and len(line) < 400


def test_a_sparse_tensor_is_named(tmp_path: Path) -> None:
    sparse = ld(FIELDS["TensorInfo"]["coo_sparse"], ld(1, "v:0")) + num(FIELDS["TensorInfo"]["dtype"], DT["DT_FLOAT"])
    folder = folder_with(tmp_path, saved_model(meta_graph({"serving_default": signature(
        {"x": sparse}, {"y": tensor_info("y:0", "DT_FLOAT", [-1, 1])})})))
    [line] = problems(folder)
    assert "the input 'x' of saved_model.pb's signature 'serving_default' is a coo sparse tensor" in line


def test_the_text_form_alone_asks_for_the_tensors(tmp_path: Path) -> None:
    folder = tmp_path / "text-only"
    folder.mkdir()
    (folder / "saved_model.pbtxt").write_text("saved_model_schema_version: 1\n")
    [line] = problems(folder)
    assert "not the text form saved_model.pbtxt: give --input/--output" in line
    assert usermodel.plan(str(folder), "inf1.xlarge", inputs=["x:FP32:1"], outputs=["y:FP32:1"]) is not None


def test_neuron_v2_is_refused_for_a_savedmodel_without_reading_it(tmp_path: Path) -> None:
    folder = folder_with(tmp_path, b"\xff" * 16)
    [line] = problems(folder, "inf2.xlarge")
    assert "on Inf1 only" in line


# ---------------------------------------------------------------- hostile files: one line, no traceback
def _hostile() -> dict[str, tuple[bytes, str]]:
    """name -> (file, what its line says is wrong)."""
    good = saved_model(meta_graph({"serving_default": half_plus_two_serving()}))
    rng = random.Random(7)

    def one_input(info: bytes) -> bytes:
        return saved_model(meta_graph({"serving_default": signature(
            {"x": info}, {"y": tensor_info("y:0", "DT_FLOAT", [-1, 1])})}))

    return {
        "truncated": (good[: len(good) - 5], "past the end of its message"),
        "garbage": (bytes(rng.randrange(256) for _ in range(4096)), "which a SavedModel does not use"),
        "huge-varint": (b"\x08" + b"\xff" * 11 + b"\x01", "a number longer than 10 bytes"),
        "wide-varint": (b"\x08" + b"\xff" * 9 + b"\x7f", "a number wider than 64 bits"),
        "huge-length": (b"\x12" + varint(1 << 62) + b"\x00", f"says {1 << 62} bytes, past the end"),
        # field 2, wire type 3 (start group) 100,000 times: nesting a decoder that followed it would recurse into
        "deep-nesting": (b"\x13" * 100_000, "field 2 has wire type 3"),
        "many-fields": (b"\x08\x01" * (savedmodel.MAX_FIELDS + 1), f"more than {savedmodel.MAX_FIELDS} fields"),
        "field-zero": (b"\x02\x00", "a field numbered 0"),
        "empty": (b"", "no MetaGraph in it"),
        "not-utf8-key": (good.replace(b"serving_default", b"serving_\xffefault"),
                         "a key of signature_def is not UTF-8 text"),
        "long-name": (one_input(tensor_info("x" * (savedmodel.MAX_TEXT + 1), "DT_FLOAT", [-1, 1])),
                      f"is {savedmodel.MAX_TEXT + 1} bytes long"),
        "deep-rank": (one_input(tensor_info("x:0", "DT_FLOAT", [-1] + [1] * savedmodel.MAX_RANK)),
                      f"more than {savedmodel.MAX_RANK} dimensions"),
        "dim-below-minus-one": (one_input(tensor_info("x:0", "DT_FLOAT", [-1, -7])), "has a dimension of -7"),
        "message-as-number": (num(FIELDS["SavedModel"]["meta_graphs"], 5), "a MetaGraph is a number"),
        "many-meta-graphs": (saved_model(*[b""] * (savedmodel.MAX_META_GRAPHS + 1)),
                             f"more than {savedmodel.MAX_META_GRAPHS} MetaGraphs"),
    }


HOSTILE = _hostile()


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_file_is_one_line(tmp_path: Path, name: str) -> None:
    data, reason = HOSTILE[name]
    folder = folder_with(tmp_path, data)
    [line] = problems(folder)
    assert line.startswith(f"--model {folder}: cannot read the signature of saved_model.pb: "), line
    assert reason in line and line.endswith("; give --input/--output (NAME:DTYPE:SHAPE)") and "\n" not in line, line


def test_every_truncation_of_a_good_file_is_one_line_or_a_plan(tmp_path: Path) -> None:
    good = saved_model(meta_graph({"serving_default": half_plus_two_serving()}))
    for end in range(len(good)):
        try:
            savedmodel.read(folder_with(tmp_path, good[:end], f"cut-{end}"))
        except savedmodel.SignatureError as exc:
            assert "\n" not in str(exc) and "give --input/--output" in str(exc)
    assert savedmodel.read(folder_with(tmp_path, good, "whole"))[1] == [savedmodel.Served("x", "FP32", (1,))]


def test_nesting_in_a_skipped_field_is_skipped_not_followed(tmp_path: Path) -> None:
    deep = b""
    for _ in range(2000):  # 2,000 messages inside one another in the graph_def the decoder skips
        deep = ld(1, deep)
    data = saved_model(meta_graph({"serving_default": half_plus_two_serving()}, graph=deep))
    assert [t.name for t in savedmodel.read(folder_with(tmp_path, data))[1]] == ["x"]


def test_an_oversized_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    folder = tmp_path / "big"
    folder.mkdir()
    with (folder / "saved_model.pb").open("wb") as fh:
        fh.truncate(savedmodel.MAX_FILE + 1)  # sparse: no disk, and not read
    [line] = problems(folder)
    assert f"it is {savedmodel.MAX_FILE + 1} bytes, more than the 256 MiB infprov reads" in line


def test_a_fifo_in_place_of_the_file_is_refused_without_waiting(tmp_path: Path) -> None:
    fifo = tmp_path / "saved_model.pb"
    os.mkfifo(fifo)
    with pytest.raises(savedmodel.SignatureError, match="not a regular file"):
        savedmodel.read_file(fifo)


# ---------------------------------------------------------------- the CLI
@pytest.fixture()
def no_cloud(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No region, no credentials, no sandbox: `up` stops at the region, after the local model check."""
    for var in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "INFPROV_NO_PREFLIGHT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("INFPROV_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("INFPROV_SANDBOX_DIR", str(tmp_path / "no-sandbox"))


def test_up_takes_a_savedmodel_without_input_or_output(tmp_path: Path, no_cloud: None) -> None:
    folder = folder_with(tmp_path, saved_model(meta_graph({"serving_default": half_plus_two_serving()})))
    res = CliRunner().invoke(app, ["up", "--type", "inf1.xlarge", "--model", str(folder), "--yes"])
    # past the model check (it says what it serves), stopped where the cloud begins
    assert res.exit_code == 2, res.output
    assert "model half_plus_two: savedmodel" in res.stderr and "serves x FP32 [1] -> y FP32 [1]" in res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "no AWS region is configured" in errors[0], res.stderr
    assert "Traceback" not in res.output


@pytest.mark.parametrize("name", ["garbage", "huge-length", "deep-nesting"])
def test_up_refuses_a_hostile_savedmodel_in_one_line(tmp_path: Path, no_cloud: None, name: str) -> None:
    folder = folder_with(tmp_path, HOSTILE[name][0])
    res = CliRunner().invoke(app, ["up", "--type", "inf1.xlarge", "--model", str(folder), "--yes"])
    assert res.exit_code == 2, res.output
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), res.stderr
    assert "cannot read the signature of saved_model.pb" in lines[0] and "nothing was launched" in lines[0]
    assert "Traceback" not in res.output and not (tmp_path / "home").exists()


def test_the_real_folder_passes_the_cli_check(real_folder: Path, no_cloud: None, tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["up", "--type", "inf1.xlarge", "--model", str(real_folder), "--yes"])
    assert res.exit_code == 2 and "no AWS region is configured" in res.stderr, res.output
    assert "serves x FP32 [1] -> y FP32 [1]" in res.stderr


def test_the_provenance_note_names_the_real_file() -> None:
    note = (REPO_ROOT / "tests" / "data" / "savedmodel" / "PROVENANCE").read_text()
    for fact in ("https://github.com/tensorflow/serving", "2.20.0", REAL_GIT_BLOB, REAL_SHA256, REAL_FOLDER,
                 "saved_model_half_plus_two_cpu/00000123/saved_model.pb", "2026-12-07"):
        assert fact in note, fact
    # the note lives in the repository; the file itself does not
    assert not list((REPO_ROOT / "tests" / "data" / "savedmodel").rglob("*.pb"))
