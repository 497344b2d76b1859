"""A TensorFlow SavedModel's serving signature, read from saved_model.pb on this machine without TensorFlow.

saved_model.pb is a SavedModel protocol buffer. Only the path to the signature is decoded (wire format, by
hand): SavedModel.meta_graphs -> MetaGraphDef (meta_info_def.tags, signature_def map) -> SignatureDef (inputs,
outputs maps) -> TensorInfo (name, dtype, tensor_shape) -> TensorShapeProto (dim.size, unknown_rank). The field
numbers and DataType values are TensorFlow's (sandbox/upstream/tensorflow-savedmodel-protos.json says where
they were read); everything else in the file (the graph, the saver, collections) is skipped unread.

The file is the user's, so it is treated as hostile: its size, the number of fields visited, every length,
count and varint are bounded, nothing recurses past the schema, and whatever is wrong is one SignatureError
line, never a traceback.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

MAX_FILE = 256 << 20  # a SavedModel whose graph holds its weights can be large; the signature is a few KB of it
MAX_FIELDS = 1_000_000  # fields decoded in all (the big ones, like the graph, are skipped as one field each)
MAX_DEPTH = 8  # SavedModel > MetaGraphDef > map entry > SignatureDef > map entry > TensorInfo > shape > dim
MAX_META_GRAPHS = 64
MAX_SIGNATURES = 4096
MAX_TENSORS = 256  # inputs or outputs of one signature
MAX_RANK = 64
MAX_TEXT = 4096  # bytes of one key, tag or tensor name
SERVE_TAG = "serve"
DEFAULT_SIGNATURE = "serving_default"
ASK = "give --input/--output (NAME:DTYPE:SHAPE)"

# Field numbers (tensorflow/core/protobuf/saved_model.proto, meta_graph.proto; framework/tensor_shape.proto).
SAVED_MODEL_META_GRAPHS = 2
META_GRAPH_INFO = 1  # MetaInfoDef
META_INFO_TAGS = 4
META_GRAPH_SIGNATURES = 5  # map<string, SignatureDef>
MAP_KEY, MAP_VALUE = 1, 2  # a map is a repeated entry message {key = 1; value = 2}
SIGNATURE_INPUTS, SIGNATURE_OUTPUTS, SIGNATURE_METHOD = 1, 2, 3
INFO_NAME, INFO_DTYPE, INFO_SHAPE = 1, 2, 3  # TensorInfo
INFO_COO_SPARSE, INFO_COMPOSITE = 4, 5  # the other members of TensorInfo's `encoding` oneof
SHAPE_DIM, SHAPE_UNKNOWN_RANK = 2, 3
DIM_SIZE = 1

# DataType values (tensorflow/core/framework/types.proto) and the Triton type each is served as. BF16 and
# STRING are read as what they are; the plan refuses them as it refuses them in --input.
DATA_TYPES = {
    1: "DT_FLOAT", 2: "DT_DOUBLE", 3: "DT_INT32", 4: "DT_UINT8", 5: "DT_INT16", 6: "DT_INT8", 7: "DT_STRING",
    8: "DT_COMPLEX64", 9: "DT_INT64", 10: "DT_BOOL", 11: "DT_QINT8", 12: "DT_QUINT8", 13: "DT_QINT32",
    14: "DT_BFLOAT16", 15: "DT_QINT16", 16: "DT_QUINT16", 17: "DT_UINT16", 18: "DT_COMPLEX128", 19: "DT_HALF",
    20: "DT_RESOURCE", 21: "DT_VARIANT", 22: "DT_UINT32", 23: "DT_UINT64",
}
TRITON = {
    "DT_FLOAT": "FP32", "DT_HALF": "FP16", "DT_DOUBLE": "FP64", "DT_BFLOAT16": "BF16",
    "DT_INT8": "INT8", "DT_INT16": "INT16", "DT_INT32": "INT32", "DT_INT64": "INT64",
    "DT_UINT8": "UINT8", "DT_UINT16": "UINT16", "DT_UINT32": "UINT32", "DT_UINT64": "UINT64",
    "DT_BOOL": "BOOL", "DT_STRING": "STRING",
}


class SignatureError(ValueError):
    """The signature cannot be taken from the file: the one line that says why and what to give instead."""


class _Malformed(Exception):
    """The bytes are not a SavedModel protocol buffer (turned into one SignatureError line)."""


@dataclass(frozen=True)
class SignatureTensor:
    """One tensor of a SignatureDef: its key in the inputs/outputs map, TensorInfo's graph tensor name
    (like x:0), its DataType value and its dims (None: unknown rank; -1: an unknown dimension)."""

    key: str
    name: str
    dtype: int
    dims: tuple[int, ...] | None
    encoding: str = "name"  # or coo_sparse, composite_tensor

    @property
    def dtype_name(self) -> str:
        return DATA_TYPES.get(self.dtype, f"DataType {self.dtype}")


@dataclass(frozen=True)
class Signature:
    key: str
    inputs: tuple[SignatureTensor, ...]
    outputs: tuple[SignatureTensor, ...]
    method: str = ""


# Which name Triton sees: the signature's map key ("x"), not TensorInfo.name ("x:0"). python_backend r22.04,
# inferentia/scripts/gen_triton_model.py: the TensorFlow model.py it writes loads
# tf.contrib.predictor.from_saved_model(COMPILED_MODEL) (tag "serve", signature serving_default) and calls the
# predictor with {config input name: array}, reading results[config output name]; TensorFlow's
# contrib/predictor/saved_model_predictor.py keys its feed and fetch tensors by signature_def.inputs/outputs
# keys, and predictor.py refuses any other key. So the config.pbtxt names must be the map keys. (The same
# generator's parse_tf_tensors, used only without --triton_input/--triton_output, names them by TensorInfo.name;
# infprov always passes the flags.)
@dataclass(frozen=True)
class Served:
    """A signature tensor as Triton serves it: NAME (the map key), Triton DTYPE, the shape of one item."""

    name: str
    dtype: str
    shape: tuple[int, ...]


# ---------------------------------------------------------------- the wire format
class _Budget:
    def __init__(self) -> None:
        self.fields = 0

    def spend(self) -> None:
        self.fields += 1
        if self.fields > MAX_FIELDS:
            raise _Malformed(f"more than {MAX_FIELDS} fields on the way to the signature")


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    """A base-128 varint at pos: (value, next pos). At most 10 bytes, and the value fits in 64 bits."""
    value = 0
    for i in range(10):
        if pos + i >= len(buf):
            raise _Malformed("the file ends inside a number")
        byte = buf[pos + i]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            if value >> 64:
                raise _Malformed("a number wider than 64 bits")
            return value, pos + i + 1
    raise _Malformed("a number longer than 10 bytes")


def _fields(buf: memoryview, budget: _Budget, depth: int) -> Iterator[tuple[int, int, int | memoryview]]:
    """(field number, wire type, value) of each field of one message: a varint's int, or the bytes of a
    fixed-width or length-delimited value (a view, not a copy)."""
    if depth > MAX_DEPTH:
        raise _Malformed(f"nested deeper than {MAX_DEPTH} messages")
    pos = 0
    end = len(buf)
    while pos < end:
        budget.spend()
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if field == 0:
            raise _Malformed("a field numbered 0")
        value: int | memoryview
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            if size > end - pos:
                raise _Malformed(f"field {field} runs past the end of its message")
            value, pos = buf[pos:pos + size], pos + size
        elif wire == 2:
            size, pos = _varint(buf, pos)
            if size > end - pos:
                raise _Malformed(f"field {field} says {size} bytes, past the end of its message")
            value, pos = buf[pos:pos + size], pos + size
        else:  # 3, 4: groups, which no proto3 message (TensorFlow's are all proto3) writes; 6, 7: not wire types
            raise _Malformed(f"field {field} has wire type {wire}, which a SavedModel does not use")
        yield field, wire, value


def _message(value: int | memoryview, what: str) -> memoryview:
    if isinstance(value, int):
        raise _Malformed(f"{what} is a number where a message belongs")
    return value


def _number(value: int | memoryview, what: str) -> int:
    if not isinstance(value, int):
        raise _Malformed(f"{what} is not a number")
    return value


def _text(value: int | memoryview, what: str) -> str:
    data = _message(value, what)
    if len(data) > MAX_TEXT:
        raise _Malformed(f"{what} is {len(data)} bytes long (at most {MAX_TEXT})")
    try:
        return bytes(data).decode("utf-8")
    except UnicodeDecodeError:
        raise _Malformed(f"{what} is not UTF-8 text") from None


def _int64(raw: int) -> int:
    return raw - (1 << 64) if raw >> 63 else raw


def quoted(text: str) -> str:
    """A name from the file, quoted for a message: control characters escaped, at most about 60 characters."""
    quoted = repr(text)
    return quoted if len(quoted) <= 60 else quoted[:56] + "...'"


# ---------------------------------------------------------------- the messages on the way to the signature
def _shape(buf: memoryview, budget: _Budget, depth: int, what: str) -> tuple[int, ...] | None:
    dims: list[int] = []
    unknown_rank = False
    for field, _, value in _fields(buf, budget, depth):
        if field == SHAPE_DIM:
            if len(dims) >= MAX_RANK:
                raise _Malformed(f"{what} has more than {MAX_RANK} dimensions")
            size = 0
            for f, _, v in _fields(_message(value, f"a dim of {what}"), budget, depth + 1):
                if f == DIM_SIZE:
                    size = _int64(_number(v, f"a dim size of {what}"))
            if size < -1:
                raise _Malformed(f"{what} has a dimension of {size}")
            dims.append(size)
        elif field == SHAPE_UNKNOWN_RANK:
            unknown_rank = bool(_number(value, f"the unknown_rank of {what}"))
    return None if unknown_rank else tuple(dims)


def _tensor(key: str, buf: memoryview, budget: _Budget, depth: int, what: str) -> SignatureTensor:
    name, dtype, encoding = "", 0, "name"
    dims: tuple[int, ...] | None = ()  # no tensor_shape: a proto3 default, zero dimensions
    for field, _, value in _fields(buf, budget, depth):
        if field == INFO_NAME:
            name, encoding = _text(value, f"the name of {what}"), "name"
        elif field == INFO_DTYPE:
            dtype = _number(value, f"the dtype of {what}")
        elif field == INFO_SHAPE:
            dims = _shape(_message(value, f"the shape of {what}"), budget, depth + 1, what)
        elif field == INFO_COO_SPARSE:
            encoding = "coo_sparse"
        elif field == INFO_COMPOSITE:
            encoding = "composite_tensor"
    return SignatureTensor(key, name, dtype, dims, encoding)


def _map_entry(buf: memoryview, budget: _Budget, depth: int, what: str) -> tuple[str, memoryview]:
    key, value_buf = "", memoryview(b"")
    for field, _, value in _fields(buf, budget, depth):
        if field == MAP_KEY:
            key = _text(value, f"a key of {what}")
        elif field == MAP_VALUE:
            value_buf = _message(value, f"the value of {quoted(key)} in {what}")
    return key, value_buf


def _tensor_map(entries: list[memoryview], budget: _Budget, depth: int, role: str,
                signature: str) -> tuple[SignatureTensor, ...]:
    if len(entries) > MAX_TENSORS:
        raise _Malformed(f"signature {quoted(signature)} has {len(entries)} {role}s (at most {MAX_TENSORS})")
    tensors: dict[str, SignatureTensor] = {}
    for entry in entries:
        key, value = _map_entry(entry, budget, depth, f"the {role}s of signature {quoted(signature)}")
        # a repeated key: the last wins, as protocol buffers' maps have it
        what = f"{role} {quoted(key)} of signature {quoted(signature)}"
        tensors[key] = _tensor(key, value, budget, depth + 1, what)
    return tuple(tensors[k] for k in sorted(tensors))


def _signature(key: str, buf: memoryview, budget: _Budget, depth: int) -> Signature:
    ins: list[memoryview] = []
    outs: list[memoryview] = []
    method = ""
    for field, _, value in _fields(buf, budget, depth):
        if field == SIGNATURE_INPUTS:
            ins.append(_message(value, f"an input of signature {quoted(key)}"))
        elif field == SIGNATURE_OUTPUTS:
            outs.append(_message(value, f"an output of signature {quoted(key)}"))
        elif field == SIGNATURE_METHOD:
            method = _text(value, f"the method_name of signature {quoted(key)}")
    return Signature(key, _tensor_map(ins, budget, depth + 1, "input", key),
                     _tensor_map(outs, budget, depth + 1, "output", key), method)


def _meta_graph(buf: memoryview, budget: _Budget, depth: int) -> tuple[frozenset[str], list[memoryview]]:
    """A MetaGraphDef's tags and its signature_def entries (undecoded)."""
    tags: list[str] = []
    entries: list[memoryview] = []
    for field, _, value in _fields(buf, budget, depth):
        if field == META_GRAPH_INFO:
            for f, _, v in _fields(_message(value, "meta_info_def"), budget, depth + 1):
                if f == META_INFO_TAGS:
                    if len(tags) >= MAX_SIGNATURES:
                        raise _Malformed(f"a MetaGraph has more than {MAX_SIGNATURES} tags")
                    tags.append(_text(v, "a MetaGraph tag"))
        elif field == META_GRAPH_SIGNATURES:
            if len(entries) >= MAX_SIGNATURES:
                raise _Malformed(f"a MetaGraph has more than {MAX_SIGNATURES} signatures")
            entries.append(_message(value, "a signature_def entry"))
    return frozenset(tags), entries


def signatures(data: bytes | memoryview) -> dict[str, Signature]:
    """The signatures of the MetaGraph tagged exactly {serve} (the first such, as TensorFlow's loaders take
    it) in a serialized SavedModel. Raises SignatureError (malformed bytes, no such MetaGraph)."""
    budget = _Budget()
    buf = memoryview(data)
    try:
        graphs: list[memoryview] = []
        for field, _, value in _fields(buf, budget, 1):
            if field == SAVED_MODEL_META_GRAPHS:
                if len(graphs) >= MAX_META_GRAPHS:
                    raise _Malformed(f"more than {MAX_META_GRAPHS} MetaGraphs")
                graphs.append(_message(value, "a MetaGraph"))
        if not graphs:
            raise _Malformed("no MetaGraph in it")
        found_tags: list[str] = []
        for graph in graphs:
            tags, entries = _meta_graph(graph, budget, 2)
            if tags == {SERVE_TAG}:
                out: dict[str, Signature] = {}
                for entry in entries:
                    key, value = _map_entry(entry, budget, 3, "signature_def")
                    out[key] = _signature(key, value, budget, 4)
                return out
            found_tags.append(",".join(quoted(t) for t in sorted(tags)) or "(none)")
    except _Malformed as exc:
        raise SignatureError(f"cannot read the signature of saved_model.pb: {exc}; {ASK}") from None
    raise SignatureError(f"saved_model.pb has no MetaGraph tagged just {SERVE_TAG!r}, the one served "
                         f"(tags found: {'; '.join(found_tags)}): save it with tags [{SERVE_TAG!r}], or {ASK}")


def read_file(path: Path) -> bytes:
    """saved_model.pb's bytes: a regular file of at most MAX_FILE bytes (opened without blocking, so a FIFO
    or device put in its place is refused, not waited on)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise SignatureError(f"cannot read the signature of saved_model.pb: {exc.strerror or exc}; {ASK}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SignatureError(f"cannot read the signature of saved_model.pb: not a regular file; {ASK}")
        if info.st_size > MAX_FILE:
            raise SignatureError(f"cannot read the signature of saved_model.pb: it is {info.st_size} bytes, more "
                                 f"than the {MAX_FILE >> 20} MiB infprov reads; {ASK}")
        chunks: list[bytes] = []
        total = 0
        while chunk := os.read(fd, min(1 << 20, MAX_FILE + 1 - total)):
            chunks.append(chunk)
            total += len(chunk)
            if total > MAX_FILE:
                raise SignatureError(f"cannot read the signature of saved_model.pb: it grew past "
                                     f"{MAX_FILE >> 20} MiB while read; {ASK}")
        return b"".join(chunks)
    except OSError as exc:
        raise SignatureError(f"cannot read the signature of saved_model.pb: {exc.strerror or exc}; {ASK}") from None
    finally:
        os.close(fd)


# ---------------------------------------------------------------- the signature Triton serves
def choose(found: dict[str, Signature]) -> Signature:
    """serving_default: the one signature python_backend's TensorFlow model.py loads (see below), so a
    SavedModel without it would fail on the host after the launch; its absence is one line, here."""
    if DEFAULT_SIGNATURE in found:
        return found[DEFAULT_SIGNATURE]
    if not found:
        raise SignatureError(f"saved_model.pb has no signature to serve: export it with a {DEFAULT_SIGNATURE} "
                             "signature")
    names = [quoted(k) for k in sorted(found)]
    shown = ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")
    raise SignatureError(f"saved_model.pb's signatures ({shown}) do not include {DEFAULT_SIGNATURE}, the one "
                         "python_backend's TensorFlow model loads: export the model with a "
                         f"{DEFAULT_SIGNATURE} signature")


def served(signature: Signature) -> tuple[list[Served], list[Served]]:
    """The signature's inputs and outputs as Triton serves them on Inf1 (a batching model: the leading -1
    batch axis dropped). A tensor that cannot be served as read is one line naming it."""
    where = f"saved_model.pb's signature {quoted(signature.key)}"
    if not signature.inputs or not signature.outputs:
        raise SignatureError(f"{where} has no {'inputs' if not signature.inputs else 'outputs'}: {ASK}")

    def what(role: str, t: SignatureTensor) -> str:
        return f"the {role} {quoted(t.key)}{f' ({quoted(t.name)[1:-1]})' if t.name else ''} of {where}"

    return ([_served(t, what("input", t)) for t in signature.inputs],
            [_served(t, what("output", t)) for t in signature.outputs])


def _served(t: SignatureTensor, what: str) -> Served:
    if t.encoding != "name":
        raise SignatureError(f"{what} is a {t.encoding.replace('_', ' ')} tensor, which a Triton tensor cannot "
                             f"carry: {ASK}")
    dtype = TRITON.get(t.dtype_name)
    if dtype is None:
        raise SignatureError(f"{what} is {t.dtype_name}, which Triton has no type for: {ASK}")
    if t.dims is None:
        raise SignatureError(f"{what} has an unknown rank: {ASK} for it")
    if not t.dims:
        raise SignatureError(f"{what} is a scalar, with no batch axis to serve it batched: {ASK}")
    if t.dims[0] != -1:
        raise SignatureError(f"{what} has shape {list(t.dims)}: its first axis is {t.dims[0]}, not a batch axis of "
                             f"any size (-1), and infprov serves it batched: {ASK}")
    item = t.dims[1:]
    if not item:
        raise SignatureError(f"{what} has shape [-1]: one number per item, which infprov does not serve (it needs "
                             f"an axis after the batch): {ASK}")
    unknown = [str(i) for i, d in enumerate(t.dims) if d == -1 and i > 0]
    if unknown:
        raise SignatureError(f"{what} has shape {list(t.dims)}: axis {', '.join(unknown)} of unknown size: "
                             f"{ASK} for it")
    return Served(t.key, dtype, item)


def read(folder: Path) -> tuple[Signature, list[Served], list[Served]]:
    """The served signature of the SavedModel in folder and its tensors as Triton serves them."""
    signature = choose(signatures(read_file(folder / "saved_model.pb")))
    ins, outs = served(signature)
    return signature, ins, outs
