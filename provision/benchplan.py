"""What a benchmark run will do: defaults per instance type, sweep points, validation, run folders."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from infprov.floor.errors import UsageError
from infprov.provision import catalog

MAX_BATCH = 64  # the server's max_batch_size
MAX_THREADS = 64
MAX_LIMIT_S = 3600
TOOLS = ("client", "perf_analyzer")


@dataclass(frozen=True)
class Point:
    batch_size: int
    threads: int


@dataclass(frozen=True)
class BenchPlan:
    model: str
    points: tuple[Point, ...]
    limit_s: float
    warmup: int
    tool: str
    neuron_cores: int
    allow_small_batch: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    input_data: str | None = None  # a local perf_analyzer JSON input-data file (bench --input-data)
    vocab: int = 0  # a text model's vocabulary size, as `up --model` recorded it (0: not known)

    @property
    def is_sweep(self) -> bool:
        return len(self.points) > 1


def parse_sweep(spec: list[str] | None) -> dict[str, list[int]]:
    """`batch=1,4,16 threads=1,2` -> {"batch": [1, 4, 16], "threads": [1, 2]}."""
    out: dict[str, list[int]] = {}
    for item in spec or []:
        for part in item.split():
            key, sep, values = part.partition("=")
            if not sep or key not in ("batch", "threads"):
                raise UsageError(f"--sweep {part!r} is not understood", "write it as batch=1,4,16 threads=1,2,4")
            try:
                nums = [int(v) for v in values.split(",") if v.strip()]
            except ValueError:
                raise UsageError(f"--sweep {part!r}: values must be whole numbers", "e.g. batch=1,4,16") from None
            if not nums:
                raise UsageError(f"--sweep {part!r} lists no values", "e.g. threads=1,2,4")
            out[key] = nums
    return out


def plan(
    instance_type: str,
    *,
    model: str | None = None,
    batch_size: int | None = None,
    threads: int = 2,
    limit_s: float = 30.0,
    warmup: int = 5,
    tool: str = "client",
    sweep: list[str] | None = None,
    allow_small_batch: bool = False,
    neuron_cores: int | None = None,
    input_data: str | None = None,
    vocab: int = 0,
) -> BenchPlan:
    """Check the options and fill in the defaults (model name, batch = the NeuronCores).

    neuron_cores: what the inventory recorded for the hosts (the devices found there, which named the
    server's model); the instance type's count when not given.
    """
    itype = catalog.get(instance_type)
    cores = neuron_cores or itype.neuron_cores
    of_what = instance_type if cores == itype.neuron_cores else "these hosts"
    if tool not in TOOLS:
        raise UsageError(f"--tool {tool!r} is not known", f"use one of: {', '.join(TOOLS)}")
    if not 1 <= limit_s <= MAX_LIMIT_S:
        raise UsageError(f"--limit {limit_s:g} is out of range", f"give seconds from 1 to {MAX_LIMIT_S}")
    if warmup < 0:
        raise UsageError(f"--warmup {warmup} is negative", "give 0 or more warm-up requests")
    grid = parse_sweep(sweep)
    # 0 is a batch size given (and refused below), not "the default"
    # Neuron v2: no default here; the served model's fixed shape gives the batch (0 = the model's own)
    default = cores if itype.splits_batch else 0
    batches = grid.get("batch") or [default if batch_size is None else batch_size]
    thread_list = grid.get("threads") or [threads]
    for b in batches:
        if b == 0 and batch_size is None and not grid.get("batch"):
            continue
        if not 1 <= b <= MAX_BATCH:
            raise UsageError(f"batch size {b} is out of range", f"give 1 to {MAX_BATCH} (the server's max batch)")
        if itype.splits_batch and b < cores and not allow_small_batch:
            raise UsageError(
                f"batch size {b} is smaller than the {cores} NeuronCores of {of_what}: "
                "the model splits every batch across its cores",
                f"use --batch-size {cores} or more, or --allow-small-batch",
            )
    for t in thread_list:
        if not 1 <= t <= MAX_THREADS:
            raise UsageError(f"threads {t} is out of range", f"give 1 to {MAX_THREADS}")
    points = tuple(Point(b, t) for b, t in itertools.product(batches, thread_list))
    return BenchPlan(
        model=model or catalog.model_for_cores(cores),
        points=points,
        limit_s=float(limit_s),
        warmup=warmup,
        tool=tool,
        neuron_cores=cores,
        allow_small_batch=allow_small_batch,
        input_data=input_data,
        vocab=vocab,
    )
