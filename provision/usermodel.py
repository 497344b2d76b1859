"""`up --model SPEC`: the user's own model, checked locally, planned for the instance's Neuron generation."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from infprov.floor.errors import UsageError
from infprov.provision import catalog, savedmodel

DEFAULT = "rn50"
HOST_MODELS = "/home/ubuntu/python_backend/infprov/models"  # on the host: <key>.upload, <key>/src, <key>/compiled-*
# The data types a Triton model configuration names (TYPE_<dtype>, model_config.proto's DataType), as
# gen_triton_model.py takes them (it writes "TYPE_" + the given word). STRING and BF16 are Triton types too,
# but python_backend's Neuron model.py hands tensors to torch through numpy (as_numpy, astype), which has
# neither strings for a traced graph nor bfloat16: infprov refuses them with their own line.
TRITON_DTYPES = ("BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
                 "FP16", "FP32", "FP64", "BF16", "STRING")
NUMPY_DTYPES = tuple(d for d in TRITON_DTYPES if d not in ("BF16", "STRING"))
TASKS = ("text-classification", "feature-extraction", "image-classification")
TENSOR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
INDEXED = re.compile(r"(?P<base>.+)__(?P<index>[0-9]+)")
HF_ID = re.compile(r"hf:(?P<org>[A-Za-z0-9][A-Za-z0-9._-]{0,95})/(?P<name>[A-Za-z0-9][A-Za-z0-9._-]{0,95})")
MAX_DIMS = 8
MAX_DIM = 1 << 20
MAX_ELEMENTS = 1 << 28  # one item of one tensor: 1 GiB of FP32 is far past anything a NeuronCore holds
MAX_SEQ_LEN = 8192
MAX_BATCH = 256
DEFAULT_SEQ_LEN = 128
DEFAULT_BATCH = 8

# A hub folder's parts (the Hugging Face hub layout that transformers' from_pretrained reads).
HUB_WEIGHTS = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json",
               "pytorch_model.bin.index.json")
HUB_TOKENIZER = ("tokenizer.json", "vocab.txt", "tokenizer.model", "vocab.json", "spiece.model")
HUB_IMAGE_PROCESSOR = ("preprocessor_config.json",)


@dataclass(frozen=True)
class Tensor:
    """One declared tensor: its served name, Triton data type and per-item shape (no batch axis)."""

    name: str
    dtype: str
    shape: tuple[int, ...]

    def spec(self, dims: Sequence[int]) -> str:
        """gen_triton_model.py's --triton_input/--triton_output form: NAME,DTYPE,AxBxC."""
        return f"{self.name},{self.dtype},{'x'.join(str(d) for d in dims)}"


def parse_tensor(text: str, option: str) -> tuple[Tensor | None, str]:
    """NAME:DTYPE:SHAPE (SHAPE like 3x224x224) -> (Tensor, "") or (None, the one line saying what is wrong)."""
    parts = text.split(":")
    shown = text if len(text) <= 80 else text[:77] + "..."
    if len(parts) != 3:
        return None, (f"{option} {shown!r} is not NAME:DTYPE:SHAPE: give it like x:FP32:3x224x224 "
                      "(the shape of one item, without the batch axis)")
    name, dtype, shape_text = (p.strip() for p in parts)
    if not TENSOR_NAME.fullmatch(name):
        return None, (f"{option} {shown!r}: the name {name!r} is not a tensor name: use letters, digits and '_', "
                      "starting with a letter or '_' (at most 63)")
    kind = dtype.upper()
    if kind.startswith("TYPE_"):
        kind = kind[len("TYPE_"):]
    if kind == "BYTES":
        kind = "STRING"
    if kind not in TRITON_DTYPES:
        return None, f"{option} {shown!r}: {dtype!r} is not a Triton data type: use one of {', '.join(TRITON_DTYPES)}"
    if kind not in NUMPY_DTYPES:
        return None, (f"{option} {shown!r}: {kind} cannot pass through python_backend's Neuron model (numpy to torch); "
                      f"use one of {', '.join(NUMPY_DTYPES)}")
    dims_text = shape_text.lower().split("x")
    if not shape_text or not all(d.isdigit() for d in dims_text):
        return None, (f"{option} {shown!r}: the shape {shape_text!r} is not dimensions like 3x224x224 "
                      "(positive whole numbers joined by x)")
    dims = tuple(int(d) for d in dims_text)
    if any(d < 1 or d > MAX_DIM for d in dims):
        return None, (f"{option} {shown!r}: every dimension must be from 1 to {MAX_DIM} "
                      "(a traced graph has fixed shapes)")
    if len(dims) > MAX_DIMS:
        return None, f"{option} {shown!r}: at most {MAX_DIMS} dimensions"
    count = 1
    for d in dims:
        count *= d
    if count > MAX_ELEMENTS:
        return None, f"{option} {shown!r}: {count} elements per item is more than {MAX_ELEMENTS}"
    return Tensor(name, kind, dims), ""


def indexed_names(tensors: Sequence[Tensor]) -> tuple[list[Tensor], str]:
    """The names python_backend's torch model.py needs: NAME__INDEX, the index being the argument's position.

    Its _validate_and_get_index refuses any other name (gen_triton_model.py, r22.04 and r24.04): a plain
    name gets `__<position>`; a name that already ends in `__N` must have N equal to its position."""
    out = []
    for i, t in enumerate(tensors):
        m = INDEXED.fullmatch(t.name)
        if m is None:
            out.append(Tensor(f"{t.name}__{i}", t.dtype, t.shape))
        elif int(m.group("index")) != i:
            return [], (f"tensor {t.name!r} is number {i} in its list: name it {m.group('base')}__{i} or drop the "
                        "__N suffix (python_backend's torch model.py passes tensors by that index)")
        else:
            out.append(t)
    return out, ""


# ---------------------------------------------------------------- what the spec names, looked at locally
def torchscript_problem(path: Path) -> str:
    """'' when the file is a TorchScript archive (torch.jit.save): a zip whose entries share one top folder
    holding data.pkl, constants.pkl and code/; else the one line saying what it is instead."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError) as exc:
        return (f"--model {path}: not a TorchScript archive ({type(exc).__name__}: {exc}); save the traced or "
                "scripted model with torch.jit.save")
    tops = {n.split("/", 1)[0] for n in names}
    if len(tops) != 1 or not names:
        return (f"--model {path}: a zip, but not a TorchScript archive (no single top folder); "
                "save it with torch.jit.save")
    top = tops.pop()
    have = set(names)
    if f"{top}/data.pkl" not in have:
        return f"--model {path}: a zip, but not a TorchScript archive (no {top}/data.pkl); save it with torch.jit.save"
    if f"{top}/constants.pkl" not in have or not any(n.startswith(f"{top}/code/") for n in names):
        return (f"--model {path}: a torch.save checkpoint (weights), not TorchScript (no code/ or constants.pkl): "
                "trace or script the model (torch.jit.trace) and save it with torch.jit.save")
    return ""


def savedmodel_problem(path: Path) -> str:
    if not (path / "saved_model.pb").is_file() and not (path / "saved_model.pbtxt").is_file():
        return (f"--model {path}: a folder without saved_model.pb, so not a TensorFlow SavedModel (for a Hugging "
                "Face model the folder needs config.json)")
    return ""


def hub_problems(path: Path, task: str) -> list[str]:
    """What a hub-layout folder lacks for the task; [] when complete."""
    found = []
    config = path / "config.json"
    try:
        doc = json.loads(config.read_text(encoding="utf-8"))
        if not isinstance(doc, dict):
            raise ValueError("not an object")
    except (OSError, ValueError) as exc:
        return [f"--model {path}: config.json cannot be read as a model config ({exc})"]
    if not any((path / w).is_file() for w in HUB_WEIGHTS):
        found.append(f"--model {path}: no weights (one of {', '.join(HUB_WEIGHTS)}): save the model with "
                     "save_pretrained")
    if task == "image-classification":
        if not any((path / f).is_file() for f in HUB_IMAGE_PROCESSOR):
            found.append(f"--model {path}: no preprocessor_config.json, which an image model's folder carries "
                         "(save the image processor with save_pretrained)")
    elif not any((path / f).is_file() for f in HUB_TOKENIZER):
        found.append(f"--model {path}: no tokenizer files (one of {', '.join(HUB_TOKENIZER)}): save the "
                     "tokenizer with save_pretrained into the same folder")
    return found


def hub_config(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        doc = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _labels(config: dict[str, Any]) -> int:
    labels = config.get("id2label")
    if isinstance(labels, dict) and labels:
        return len(labels)
    value = config.get("num_labels")
    return value if isinstance(value, int) and value > 0 else 2


def _positive(config: dict[str, Any], key: str, default: int) -> int:
    value = config.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else default


def task_tensors(task: str, seq_len: int, config: dict[str, Any]) -> tuple[list[Tensor], list[Tensor]]:
    """The inputs and outputs a hub model of this task is traced with (transformers' own names, in the order
    its forward takes them positionally), before python_backend's __INDEX suffix."""
    if task == "image-classification":
        size = config.get("image_size")
        side = size if isinstance(size, int) and size > 0 else 224
        channels = _positive(config, "num_channels", 3)
        return ([Tensor("pixel_values", "FP32", (channels, side, side))],
                [Tensor("logits", "FP32", (_labels(config),))])
    inputs = [Tensor("input_ids", "INT64", (seq_len,)), Tensor("attention_mask", "INT64", (seq_len,))]
    if task == "feature-extraction":
        return inputs, [Tensor("last_hidden_state", "FP32", (seq_len, _positive(config, "hidden_size", 768)))]
    return inputs, [Tensor("logits", "FP32", (_labels(config),))]


# ---------------------------------------------------------------- the plan
@dataclass(frozen=True)
class ModelPlan:
    """A user's model planned for one instance type: what is uploaded, how it is compiled, what is served."""

    kind: str  # torchscript | savedmodel | hub | hf
    source: str  # the local path, or ORG/NAME for hf:
    name: str  # the Triton model's name
    generation: str
    cores: int
    batch: int
    inputs: tuple[Tensor, ...]
    outputs: tuple[Tensor, ...]
    task: str = ""
    seq_len: int = 0
    vocab_size: int = 0
    upload_bytes: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def v2(self) -> bool:
        return self.generation == catalog.NEURON_V2

    @property
    def compiled_name(self) -> str:
        """The compiled artifact's file (v2: relative to the model's folder, as upstream's --inf2 model.py
        joins it to the repository path) or folder (SavedModel)."""
        return "model_neuron" if self.kind == "savedmodel" else "model_neuron.pt"

    def served_dims(self, tensor: Tensor) -> tuple[int, ...]:
        """Neuron v2 traces a fixed batch and serves it whole (max_batch_size 0: the batch is in the shape);
        Inf1 serves a batching model (max_batch_size = batch: dims without the batch axis)."""
        return (self.batch, *tensor.shape) if self.v2 else tensor.shape

    def generator_args(self, compiled_path: str) -> list[str]:
        """python_backend's gen_triton_model.py flags for this model (--triton_model_dir appended by the caller).

        Inf1 (r22.04): a batching model split across the range's cores by one instance (torch.neuron.DataParallel
        or one TF predictor per core), as infprov's ResNet-50. Neuron v2 (r24.04 --inf2): one instance per core,
        each running the traced fixed-batch graph."""
        first, last = 0, self.cores - 1
        args = ["--inf2"] if self.v2 else []
        args += ["--model_type", "tensorflow" if self.kind == "savedmodel" else "pytorch",
                 "--compiled_model", self.compiled_name if self.v2 else compiled_path]
        if not self.v2:
            args += ["--max_batch_size", str(self.batch)]
        for t in self.inputs:
            args += ["--triton_input", t.spec(self.served_dims(t))]
        for t in self.outputs:
            args += ["--triton_output", t.spec(self.served_dims(t))]
        args += ["--neuron_core_range", f"{first}:{last}"]
        if self.v2:
            args += ["--triton_model_instance_count", str(self.cores)]
        return args

    def compile_args(self, src: str, out: str) -> list[str]:
        """The arguments of infprov's compile_model.py on the host (after `python3 compile_model.py`)."""
        args = ["--kind", self.kind, "--generation", self.generation, "--src", src, "--out", out,
                "--batch", str(self.batch)]
        if self.kind in ("hub", "hf"):
            args += ["--task", self.task, "--seq-len", str(self.seq_len)]
        for t in self.inputs:
            args += ["--input", f"{t.name}:{t.dtype}:{'x'.join(str(d) for d in t.shape)}"]
        return args

    def to_dict(self) -> dict[str, Any]:
        def tensors(ts: Sequence[Tensor]) -> list[dict[str, Any]]:
            return [{"name": t.name, "datatype": t.dtype, "shape": list(self.served_dims(t))} for t in ts]

        return {"kind": self.kind, "source": self.source, "name": self.name, "generation": self.generation,
                "batch": self.batch, "task": self.task, "seq_len": self.seq_len, "vocab_size": self.vocab_size,
                "inputs": tensors(self.inputs), "outputs": tensors(self.outputs), "upload_bytes": self.upload_bytes}


def model_name(kind: str, source: str) -> str:
    """The Triton model's name from the spec: the file or folder (or hub model) name, in Triton's letters."""
    base = source.rstrip("/").rsplit("/", 1)[-1]
    if kind == "torchscript":
        base = re.sub(r"\.(pt|pth|ts|torchscript|zip)$", "", base, flags=re.IGNORECASE)
    clean = re.sub(r"[^A-Za-z0-9_-]+", "-", base).strip("-_")[:48].strip("-_")
    return clean or "model"


def tree_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def plan(
    spec: str,
    instance_type: str,
    *,
    task: str | None = None,
    seq_len: int | None = None,
    batch: int | None = None,
    inputs: Sequence[str] = (),
    outputs: Sequence[str] = (),
) -> ModelPlan | None:
    """The plan for `--model SPEC` on this type (None for the default rn50), or a UsageError after every bad
    input has been reported on its own line (ModelSpecError.problems)."""
    itype = catalog.get(instance_type)
    problems: list[str] = []
    spec = spec.strip()
    if spec == DEFAULT:
        extra = [o for o, v in (("--task", task), ("--seq-len", seq_len), ("--batch", batch)) if v is not None]
        extra += ["--input"] if inputs else []
        extra += ["--output"] if outputs else []
        if extra:
            raise ModelSpecError([f"{', '.join(extra)} apply(ies) to your own model, not to the default rn50: "
                                  "drop them, or give --model FILE|FOLDER|hf:ORG/NAME"])
        return None
    v2 = itype.generation == catalog.NEURON_V2
    if batch is not None and not 1 <= batch <= MAX_BATCH:
        problems.append(f"--batch {batch} is out of range: give 1 to {MAX_BATCH}")
    if seq_len is not None and not 1 <= seq_len <= MAX_SEQ_LEN:
        problems.append(f"--seq-len {seq_len} is out of range: give 1 to {MAX_SEQ_LEN}")
    if task is not None and task not in TASKS:
        problems.append(f"--task {task!r} is not one infprov supports: use one of {', '.join(TASKS)}")
    parsed_in = [parse_tensor(t, "--input") for t in inputs]
    parsed_out = [parse_tensor(t, "--output") for t in outputs]
    problems += [p for _, p in parsed_in + parsed_out if p]
    ins = [t for t, _ in parsed_in if t is not None]
    outs = [t for t, _ in parsed_out if t is not None]

    hf = HF_ID.fullmatch(spec)
    path = Path(os.path.expanduser(spec))
    local: Path | None = None
    if spec.startswith("hf:"):
        if hf is None:
            problems.append(f"--model {spec!r} is not a Hugging Face model id: give it as hf:ORG/NAME")
        problem = hub_token()[1]
        if problem:
            problems.append(problem)
        kind, source = "hf", spec[3:]
    elif path.is_file():
        kind, source, local = "torchscript", str(path.resolve()), path.resolve()
        problem = torchscript_problem(path)
        if problem:
            problems.append(problem)
    elif path.is_dir():
        local = path.resolve()
        source = str(local)
        if (path / "config.json").is_file():
            kind = "hub"
            problems += hub_problems(path, task or "text-classification")
        else:
            kind = "savedmodel"
            problem = savedmodel_problem(path)
            if problem:
                problems.append(problem)
    else:
        raise ModelSpecError(problems + [f"--model {spec!r}: no such file or folder: give rn50, a TorchScript file, "
                                         "a SavedModel or hub-layout folder, or hf:ORG/NAME"])

    name = model_name(kind, source)
    vocab = 0
    if kind in ("hub", "hf"):
        if not v2:
            problems.append(f"--model {spec}: Hugging Face models are compiled with torch_neuronx, which needs "
                            f"NeuronCore-v2: use an inf2 or trn1 type (not {itype.name})")
        if task is None:
            problems.append(f"--model {spec}: say what the model does with --task ({', '.join(TASKS)})")
        if ins or outs:
            problems.append("--input/--output are not taken with a Hugging Face model: its tensors follow --task")
        config = hub_config(local)
        vocab = _positive(config, "vocab_size", 0)
        if kind == "hub" and task in ("text-classification", "feature-extraction") and not vocab:
            problems.append(f"--model {spec}: config.json has no vocab_size, so no valid token ids can be sent")
        t_in, t_out = task_tensors(task or "text-classification", seq_len or DEFAULT_SEQ_LEN, config)
        ins, outs = t_in, t_out
    else:
        if task is not None or seq_len is not None:
            problems.append("--task and --seq-len apply to Hugging Face models only: give --input/--output instead")
        if kind == "savedmodel" and v2:
            problems.append(f"--model {spec}: a SavedModel is compiled with tensorflow-neuron "
                            "(tfn.saved_model.compile) on Inf1 only: use an inf1 type, or trace the model with torch "
                            "and give the TorchScript")
        if kind == "torchscript" and (not inputs or not outputs):
            problems.append(f"--model {spec}: TorchScript carries no tensor names: give each input and output, e.g. "
                            "--input x:FP32:3x224x224 --output y:FP32:1000")
        if kind == "savedmodel" and bool(inputs) != bool(outputs):
            problems.append(f"--model {spec}: give the signature's tensors with both --input and --output "
                            "(NAME:DTYPE:SHAPE), or neither to serve the signature read from saved_model.pb")
        elif kind == "savedmodel" and not inputs and not v2 and local is not None:
            # Given --input/--output win; without them the served signature is read from saved_model.pb
            read_in, read_out, found_problems = savedmodel_tensors(local, spec)
            ins += read_in
            outs += read_out
            problems += found_problems
    names = [t.name for t in ins + outs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        problems.append(f"tensor name(s) {', '.join(dupes)} given twice: every input and output needs its own name")
    elif kind != "savedmodel":
        named_in, problem_in = indexed_names(ins)
        named_out, problem_out = indexed_names(outs)
        problems += [p for p in (problem_in, problem_out) if p]
        ins, outs = named_in or ins, named_out or outs
    if problems:
        raise ModelSpecError(problems)
    return ModelPlan(
        kind=kind, source=source, name=name, generation=itype.generation, cores=itype.neuron_cores,
        batch=batch or DEFAULT_BATCH, inputs=tuple(ins), outputs=tuple(outs), task=task or "",
        seq_len=(seq_len or DEFAULT_SEQ_LEN) if kind in ("hub", "hf") else 0, vocab_size=vocab,
        upload_bytes=tree_size(local) if local is not None else 0,
    )


def savedmodel_tensors(folder: Path, spec: str) -> tuple[list[Tensor], list[Tensor], list[str]]:
    """The inputs and outputs of the signature read from folder's saved_model.pb, named by their signature keys
    (savedmodel.py says why) and checked as --input's are, and the lines saying what cannot be served."""
    if not (folder / "saved_model.pb").is_file():
        if (folder / "saved_model.pbtxt").is_file():
            return [], [], [f"--model {spec}: infprov reads the signature from saved_model.pb, not the text form "
                            "saved_model.pbtxt: give --input/--output (NAME:DTYPE:SHAPE)"]
        return [], [], []
    try:
        _, read_in, read_out = savedmodel.read(folder)
    except savedmodel.SignatureError as exc:
        return [], [], [f"--model {spec}: {exc}"]
    problems: list[str] = []
    taken: tuple[list[Tensor], list[Tensor]] = ([], [])
    for role, found, into in (("input", read_in, taken[0]), ("output", read_out, taken[1])):
        for t in found:
            if not TENSOR_NAME.fullmatch(t.name):  # before parse_tensor: a key may hold the ':' it splits on
                problems.append(f"--model {spec}: saved_model.pb's {role} {savedmodel.quoted(t.name)} is not a name "
                                "Triton serves (letters, digits and '_', starting with a letter or '_', at most 63): "
                                "export the signature with such keys")
                continue
            shape = "x".join(str(d) for d in t.shape)
            tensor, problem = parse_tensor(f"{t.name}:{t.dtype}:{shape}", f"--model {spec}: saved_model.pb's {role}")
            if problem:
                problems.append(problem)
            elif tensor is not None:
                into.append(tensor)
    return taken[0], taken[1], problems


class ModelSpecError(UsageError):
    """Bad --model/--input/--output/--task values: each problem is one line (the CLI prints them all)."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        count = len(self.problems)
        hint = "nothing was launched" if count == 1 else f"{count} problems; nothing was launched"
        super().__init__(self.problems[-1], hint)


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"


# ---------------------------------------------------------------- the upload: one content-addressed archive
def pack(plan_: ModelPlan, folder: Path) -> tuple[Path, str]:
    """Write the bytes uploaded to the host into folder as <SHA-256>.upload and return the file and the hash
    (the model's address there). A TorchScript file as it is; a folder as a tar of its files in name order with
    fixed owners, modes and times, so the same files always give the same bytes (and `up` again finds them on
    the host). Written and hashed in chunks: a model of gigabytes is never held in memory."""
    from infprov.floor import paths

    paths.private_dir(folder, role="models folder")
    fd, tmp_name = tempfile.mkstemp(prefix=".pack-", dir=folder)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as raw:
            out = _Hashing(raw)  # hashed as it is written: the upload is never read back
            if plan_.kind == "hf":
                out.write(json.dumps({"hf": plan_.source}, sort_keys=True).encode())
            elif Path(plan_.source).is_file():
                with Path(plan_.source).open("rb") as src:
                    shutil.copyfileobj(src, out, _CHUNK)
            else:
                _tar_folder(Path(plan_.source), out)  # type: ignore[arg-type]
        key = out.digest.hexdigest()
        upload = folder / f"{key}.upload"
        tmp.replace(upload)  # the same key is the same bytes: replacing an older copy changes nothing
        return upload, key
    finally:
        tmp.unlink(missing_ok=True)


_CHUNK = 1 << 20


class _Hashing:
    """A binary file being written, and the SHA-256 of every byte written to it so far."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.digest = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        return self.out.write(data)

    def tell(self) -> int:  # tarfile asks where it is
        return self.out.tell()


# ---------------------------------------------------------------- a token for a gated or private hf: model
HUB_TOKEN_VARIABLES = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")  # as huggingface_hub reads them, first wins
_TOKEN = re.compile(r"[!-~]{1,1024}")  # printable ASCII without spaces


def hub_token(environ: Mapping[str, str] | None = None) -> tuple[str, str]:
    """The Hugging Face token the user's environment holds for an hf: download on the host, and the line
    saying what is wrong with it ('' when nothing is). Never shown: the line names the variable only."""
    env = os.environ if environ is None else environ
    for name in HUB_TOKEN_VARIABLES:
        value = env.get(name, "")
        if value:
            if not _TOKEN.fullmatch(value.strip()):
                return "", (f"{name} does not look like a Hugging Face token (printable characters without spaces, "
                            "at most 1024): set it to the token from your Hugging Face settings, or unset it")
            return value.strip(), ""
    return "", ""


def _tar_folder(root: Path, out: BinaryIO) -> None:
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
            rel = path.relative_to(root).as_posix()
            info = tarfile.TarInfo(rel)
            info.size = path.stat().st_size
            info.mode, info.mtime, info.uid, info.gid, info.uname, info.gname = 0o644, 0, 0, 0, "", ""
            with path.open("rb") as fh:
                tar.addfile(info, fh)


def source_path(plan_: ModelPlan, where: str) -> str:
    """Where the unpacked upload lies on the host: the TorchScript file, or the folder."""
    return f"{where}/src/model.pt" if plan_.kind == "torchscript" else f"{where}/src"


@contextlib.contextmanager
def staged_for_run(plan_: ModelPlan | None, models: Path) -> Iterator[dict[str, Any] | None]:
    """The model staged (stage) in a folder of this run's own under models (INFPROV_HOME/models), removed when
    the run ends however it ends: the hosts keep their copy, and the next `up` packs the model again. A folder
    left by a run that was killed (its lock free) is removed by the next run."""
    if plan_ is None:
        yield None
        return
    from infprov.floor import paths

    paths.private_dir(models, role="models folder")
    for old in models.glob("up-*"):
        _remove_if_abandoned(old)
    folder = Path(tempfile.mkdtemp(prefix="up-", dir=models))
    try:
        with open(folder / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield stage(plan_, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _remove_if_abandoned(folder: Path) -> None:
    try:
        lock = open(folder / ".lock")  # noqa: SIM115 (held until the folder is gone)
    except OSError:
        return  # being made this moment (no lock yet), or not one of ours
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return  # another run of this home is using it
        shutil.rmtree(folder, ignore_errors=True)


def stage(plan_: ModelPlan, folder: Path) -> dict[str, Any]:
    """Write the upload and the plan under folder (INFPROV_HOME/models, private) and return the playbook's
    `infprov_model_*` variables: the local files to copy, the content key, and what start.sh needs."""
    from infprov.floor import paths

    upload, key = pack(plan_, folder)
    # the compiled artifact depends on the upload and on what it is traced for
    compile_key = hashlib.sha256(json.dumps([key, plan_.compile_args("", "")], sort_keys=True).encode()).hexdigest()
    where = f"{HOST_MODELS}/{key}"
    compiled = f"{where}/compiled-{compile_key[:16]}/{plan_.compiled_name}"
    doc = {**plan_.to_dict(), "key": key, "compiled_name": plan_.compiled_name,
           "compiled": compiled, "source_dir": f"{where}/src", "upload": f"{HOST_MODELS}/{key}.upload",
           "generator_args": plan_.generator_args(compiled),
           "compile_args": plan_.compile_args(source_path(plan_, where), compiled)}
    plan_file = folder / f"{key}.plan.json"
    paths.write_private(plan_file, json.dumps(doc, indent=1, sort_keys=True) + "\n")
    staged = {"infprov_model_name": plan_.name, "infprov_model_key": key, "infprov_model_upload": str(upload),
              "infprov_model_plan": str(plan_file),
              "infprov_model_framework": "-t" if plan_.kind == "savedmodel" else "-p"}
    token = hub_token()[0] if plan_.kind == "hf" else ""
    if token:
        # a file of this run's own (0600, gone when the run ends), copied to the host beside the upload, read
        # and removed there by make_model.py: the token is in no variable, command line, plan or key
        token_file = folder / "hub-token"
        paths.write_private(token_file, token)
        staged["infprov_model_token_file"] = str(token_file)
    return staged
