"""A SavedModel's serving signature read from saved_model.pb without TensorFlow (provision/savedmodel.py):
upstream's half_plus_two read exactly, a plan made from a folder with no --input/--output, given tensors
winning, and every hostile or unservable file one line with nothing launched.

No upstream file is read or kept here. half_plus_two's saved_model.pb is written by an encoder independent of
infprov's decoder: Google's protobuf package, with message types built at run time from the field numbers and
types of the record sandbox/upstream/tensorflow-savedmodel-protos.json, holding the signatures as
tensorflow/serving's own test expects that model's metadata to be (the record's fact half_plus_two). The other
files, the hostile ones among them, are written by a small encoder of the wire format below, with the same
record's field numbers.
"""

from __future__ import annotations

import os
import random
import re
import sys
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from typer.testing import CliRunner

from infprov.provision import savedmodel, usermodel
from infprov.provision.cli import app
from infprov.sandbox import provenance
from tests.nocloud import without_cloud

RECORD = provenance.load("tensorflow-savedmodel-protos")
FIELDS = RECORD.fact("fields")
DT = RECORD.fact("data_types")
HALF_PLUS_TWO = RECORD.fact("half_plus_two")


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


# ---------------------------------------------------------------- half_plus_two, written by Google's protobuf
def protobuf_modules() -> tuple[ModuleType, ModuleType, ModuleType]:
    """google.protobuf's descriptor_pb2, descriptor_pool and message_factory. Without them the test fails:
    protobuf is part of the test environment (infprov[test]), and an encoder that is not infprov's is the point."""
    try:
        from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    except ImportError as exc:
        missing = str(exc)
    else:
        return descriptor_pb2, descriptor_pool, message_factory
    pytest.fail(f"google.protobuf cannot be imported ({missing}): these tests write half_plus_two's saved_model.pb "
                "with Google's protobuf package, part of the test environment: pip install -e '.[test]'", pytrace=False)


@cache
def message_types() -> dict[str, Any]:
    """The message classes of the record's messages (SavedModel, MetaGraphDef, ... TensorShapeProto.Dim), built
    by protobuf from a FileDescriptorProto made of the record's field numbers, types and oneofs (proto3)."""
    descriptor_pb2, descriptor_pool, message_factory = protobuf_modules()
    field_proto: Any = descriptor_pb2.FieldDescriptorProto
    scalars = {"int64": field_proto.TYPE_INT64, "string": field_proto.TYPE_STRING, "bool": field_proto.TYPE_BOOL}
    file = descriptor_pb2.FileDescriptorProto(name="infprov_test_saved_model.proto", package="tensorflow",
                                              syntax=RECORD.fact("syntax").split()[0])
    data_type = file.enum_type.add(name="DataType")
    data_type.value.add(name=RECORD.fact("data_type_zero"), number=0)  # proto3: an enum's first value is 0
    for name, number in sorted(DT.items(), key=lambda item: item[1]):
        data_type.value.add(name=name, number=number)
    messages: dict[str, Any] = {}
    for path in sorted(FIELDS, key=lambda p: p.count(".")):  # MetaGraphDef before MetaGraphDef.MetaInfoDef
        parent, _, leaf = path.rpartition(".")
        messages[path] = (messages[parent].nested_type if parent else file.message_type).add(name=leaf)

    def declare(message: Any, name: str, number: int, type_text: str, label: int) -> None:
        field = message.field.add(name=name, number=number, label=label)
        if type_text in scalars:
            field.type = scalars[type_text]
        elif type_text == "DataType":
            field.type, field.type_name = field_proto.TYPE_ENUM, ".tensorflow.DataType"
        else:
            [path] = [p for p in FIELDS if p.rpartition(".")[2] == type_text]
            field.type, field.type_name = field_proto.TYPE_MESSAGE, f".tensorflow.{path}"

    one, many = field_proto.LABEL_OPTIONAL, field_proto.LABEL_REPEATED
    for where, type_text in RECORD.fact("types").items():
        path, _, name = where.rpartition(".")
        message, number = messages[path], FIELDS[path][name]
        mapped = re.fullmatch(r"map<(\w+), (\w+)>", type_text)
        if mapped:  # a repeated {key = 1; value = 2} entry message, flagged as a map's (the record's map_encoding)
            entry = message.nested_type.add(name="".join(w.title() for w in name.split("_")) + "Entry")
            entry.options.map_entry = True
            declare(entry, "key", 1, mapped[1], one)
            declare(entry, "value", 2, mapped[2], one)
            message.field.add(name=name, number=number, label=many, type=field_proto.TYPE_MESSAGE,
                              type_name=f".tensorflow.{path}.{entry.name}")
        elif type_text.startswith("repeated "):
            declare(message, name, number, type_text.removeprefix("repeated "), many)
        else:
            declare(message, name, number, type_text, one)
    for where, members in RECORD.fact("oneofs").items():
        path, _, oneof = where.rpartition(".")
        message = messages[path]
        message.oneof_decl.add(name=oneof)
        for field in message.field:
            if field.name in members:
                field.oneof_index = len(message.oneof_decl) - 1
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return {path: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"tensorflow.{path}"))
            for path in FIELDS}


def half_plus_two_by_protobuf() -> bytes:
    """half_plus_two's saved_model.pb as protobuf writes it from the record's fact: its MetaGraph's tags and
    the five signatures of upstream's metadata, every tensor's key, name, dtype and shape."""
    types = message_types()
    model = types["SavedModel"](saved_model_schema_version=HALF_PLUS_TWO["saved_model_schema_version"])
    graph = model.meta_graphs.add()
    graph.meta_info_def.tags.extend(HALF_PLUS_TWO["meta_graph_tags"])
    for key, sig in HALF_PLUS_TWO["signatures"].items():
        written = graph.signature_def[key]
        written.method_name = sig["method_name"]
        for role in ("inputs", "outputs"):
            for tensor_key, tensor in sig[role].items():
                info = getattr(written, role)[tensor_key]
                info.name = tensor["name"]
                info.dtype = DT[tensor["dtype"]]
                if tensor["tensor_shape"]["unknown_rank"]:
                    info.tensor_shape.unknown_rank = True
                for size in tensor["tensor_shape"]["dim"]:
                    info.tensor_shape.dim.add(size=size)
    data: bytes = model.SerializeToString()
    # protobuf parses back what it wrote
    assert types["SavedModel"].FromString(data) == model
    return data


def upstream_signatures() -> dict[str, savedmodel.Signature]:
    """The record's half_plus_two signatures as the decoder's values (tensors in key order, as it gives them)."""
    def tensor(key: str, t: dict[str, Any]) -> savedmodel.SignatureTensor:
        shape = t["tensor_shape"]
        return savedmodel.SignatureTensor(key, t["name"], DT[t["dtype"]],
                                          None if shape["unknown_rank"] else tuple(shape["dim"]))

    def tensors(role: dict[str, Any]) -> tuple[savedmodel.SignatureTensor, ...]:
        return tuple(tensor(key, t) for key, t in sorted(role.items()))
    return {key: savedmodel.Signature(key, tensors(sig["inputs"]), tensors(sig["outputs"]), sig["method_name"])
            for key, sig in HALF_PLUS_TWO["signatures"].items()}


def test_the_upstream_half_plus_two_signatures_are_read_exactly() -> None:
    """Every signature, key, TensorInfo name, dtype, shape and method of upstream's metadata, as the decoder
    reads them from protobuf's file."""
    found = savedmodel.signatures(half_plus_two_by_protobuf())
    assert found == upstream_signatures()
    assert sorted(found) == ["classify_x_to_y", "regress_x2_to_y3", "regress_x_to_y", "regress_x_to_y2",
                             "serving_default"]
    x = savedmodel.SignatureTensor("x", "x:0", DT["DT_FLOAT"], (-1, 1))
    y = savedmodel.SignatureTensor("y", "y:0", DT["DT_FLOAT"], (-1, 1))
    assert found["serving_default"] == savedmodel.Signature("serving_default", (x,), (y,), "tensorflow/serving/predict")
    example = savedmodel.SignatureTensor("inputs", "tf_example:0", DT["DT_STRING"], None)
    assert found["classify_x_to_y"].inputs == (example,)
    # the hand encoder the other tests use writes serving_default as protobuf does
    hand = savedmodel.signatures(saved_model(meta_graph({"serving_default": half_plus_two_serving()})))
    assert hand["serving_default"] == found["serving_default"]


def test_the_record_holds_upstreams_metadata_of_half_plus_two() -> None:
    """The fact is what tensorflow/serving 2.20.0's half_plus_two_model_metadata.json says, in its words."""
    sigs = HALF_PLUS_TWO["signatures"]
    assert len(sigs) == 5 and HALF_PLUS_TWO["meta_graph_tags"] == ["serve"]
    for sig in sigs.values():
        for tensor in [*sig["inputs"].values(), *sig["outputs"].values()]:
            assert tensor["dtype"] in DT
            shape = tensor["tensor_shape"]
            assert shape == {"dim": [], "unknown_rank": True} or (shape["unknown_rank"] is False and shape["dim"])
    for file in (HALF_PLUS_TWO["saved_model"], HALF_PLUS_TWO["metadata"]):
        assert re.fullmatch(r"[0-9a-f]{40}", file["git_blob"]) and re.fullmatch(r"[0-9a-f]{64}", file["sha256"])
    # the upstream file is described, not kept
    assert not list(Path(__file__).resolve().parents[1].rglob("saved_model.pb"))


def test_a_plan_from_the_upstream_folder_needs_no_input_or_output(tmp_path: Path, no_cloud: None) -> None:
    folder = folder_with(tmp_path, half_plus_two_by_protobuf())
    plan = usermodel.plan(str(folder), "inf1.xlarge")
    assert plan is not None and plan.kind == "savedmodel"
    assert plan.inputs == (usermodel.Tensor("x", "FP32", (1,)),)
    assert plan.outputs == (usermodel.Tensor("y", "FP32", (1,)),)
    args = plan.generator_args("/c/model_neuron")
    assert args[args.index("--triton_input") + 1] == "x,FP32,1"
    assert args[args.index("--triton_output") + 1] == "y,FP32,1"
    res = CliRunner().invoke(app, ["up", "--type", "inf1.xlarge", "--model", str(folder), "--yes"])
    assert res.exit_code == 2 and "no AWS region is configured" in res.stderr, res.output
    assert "model half_plus_two: savedmodel" in res.stderr and "serves x FP32 [1] -> y FP32 [1]" in res.stderr


def test_without_protobuf_the_upstream_tests_fail_not_skip(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "google.protobuf", None)  # an import of it now raises ImportError
    with pytest.raises(pytest.fail.Exception, match="google.protobuf cannot be imported .* the test environment"):
        protobuf_modules()


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
    assert "{key = 1; value = 2}" in RECORD.fact("map_encoding")
    assert (savedmodel.MAP_KEY, savedmodel.MAP_VALUE) == (1, 2)


def test_protobufs_message_types_have_the_decoders_numbers() -> None:
    """The types the independent encoder is built from number each field the decoder reads as it does."""
    types = message_types()
    used = {
        ("SavedModel", "meta_graphs"): savedmodel.SAVED_MODEL_META_GRAPHS,
        ("MetaGraphDef", "meta_info_def"): savedmodel.META_GRAPH_INFO,
        ("MetaGraphDef", "signature_def"): savedmodel.META_GRAPH_SIGNATURES,
        ("MetaGraphDef.MetaInfoDef", "tags"): savedmodel.META_INFO_TAGS,
        ("SignatureDef", "inputs"): savedmodel.SIGNATURE_INPUTS,
        ("SignatureDef", "outputs"): savedmodel.SIGNATURE_OUTPUTS,
        ("SignatureDef", "method_name"): savedmodel.SIGNATURE_METHOD,
        ("TensorInfo", "name"): savedmodel.INFO_NAME,
        ("TensorInfo", "dtype"): savedmodel.INFO_DTYPE,
        ("TensorInfo", "tensor_shape"): savedmodel.INFO_SHAPE,
        ("TensorShapeProto", "dim"): savedmodel.SHAPE_DIM,
        ("TensorShapeProto", "unknown_rank"): savedmodel.SHAPE_UNKNOWN_RANK,
        ("TensorShapeProto.Dim", "size"): savedmodel.DIM_SIZE,
    }
    for (path, name), decoders in used.items():
        assert types[path].DESCRIPTOR.fields_by_name[name].number == decoders == FIELDS[path][name], (path, name)
    for path, name in [("MetaGraphDef", "signature_def"), ("SignatureDef", "inputs"), ("SignatureDef", "outputs")]:
        entry = types[path].DESCRIPTOR.fields_by_name[name].message_type
        assert entry.GetOptions().map_entry, (path, name)
        assert (entry.fields_by_name["key"].number, entry.fields_by_name["value"].number) == (
            savedmodel.MAP_KEY, savedmodel.MAP_VALUE)
    data_type = types["TensorInfo"].DESCRIPTOR.fields_by_name["dtype"].enum_type
    assert {v.number: v.name for v in data_type.values if v.number} == savedmodel.DATA_TYPES


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


def test_a_savedmodel_without_serving_default_is_refused_before_the_launch(tmp_path: Path) -> None:
    """python_backend's TensorFlow model.py loads serving_default whatever the model holds: an only signature of
    another name would fail on the host, after the money is spent."""
    folder = folder_with(tmp_path, saved_model(meta_graph({"predict": half_plus_two_serving()})))
    [line] = problems(folder)
    assert "signatures ('predict') do not include serving_default" in line and "export the model with" in line


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
     "signatures ('a', 'b') do not include serving_default, the one python_backend's TensorFlow model loads"),
    ({}, "has no signature to serve: export it with a serving_default signature"),
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
    without_cloud(monkeypatch, tmp_path)


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
