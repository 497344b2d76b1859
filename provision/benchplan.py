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


MAX_RATE = 100_000.0  # requests a second the client's --request_rate takes
MAX_POINTS = 256  # a sweep's grid at most (a typo such as threads=1:640 would otherwise run for days)


@dataclass(frozen=True)
class Point:
    """One benchmark point: the batch, the concurrency (threads: the client's connections), and in request-rate
    mode the requests a second sent over them (None: each connection keeps one request in flight)."""

    batch_size: int
    threads: int
    rate: float | None = None

    def describe(self) -> str:
        return (f"batch {self.batch_size}, {self.threads} thread(s)"
                + (f", {self.rate:g} requests/s" if self.rate is not None else ""))


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


SWEEP_KEYS = {"batch": "batch", "threads": "threads", "concurrency": "threads", "rate": "rate"}
SWEEP_HINT = "write it as batch=1,4,16 threads=1,2,4 (or threads=1:8:2, concurrency=1:4, rate=50,100 or rate=50:200:50)"


def parse_sweep(spec: list[str] | None) -> dict[str, list[float]]:
    """`batch=1,4,16 threads=1:4 rate=50:150:50` -> {"batch": [1, 4, 16], "threads": [1, 2, 3, 4],
    "rate": [50, 100, 150]}. A range is START:END[:STEP] with END included (perf_analyzer's --concurrency-range);
    concurrency is another word for threads; rate (requests a second) puts the client in request-rate mode."""
    out: dict[str, list[float]] = {}
    for item in spec or []:
        for part in item.split():
            word, sep, values = part.partition("=")
            key = SWEEP_KEYS.get(word)
            if not sep or key is None:
                raise UsageError(f"--sweep {part!r} is not understood", SWEEP_HINT)
            if key in out:
                raise UsageError(f"--sweep {part!r}: {word} is given twice", "give each of batch, threads, rate once")
            nums: list[float] = []
            for piece in (v.strip() for v in values.split(",") if v.strip()):
                nums.extend(_values(part, piece, whole=key != "rate"))
            if not nums:
                raise UsageError(f"--sweep {part!r} lists no values", "e.g. threads=1,2,4")
            out[key] = nums
    return out


def _values(part: str, piece: str, whole: bool) -> list[float]:
    kind = "whole numbers" if whole else "numbers"
    try:
        bounds = [int(x) if whole else float(x) for x in piece.split(":")]
    except ValueError:
        raise UsageError(f"--sweep {part!r}: values must be {kind}", SWEEP_HINT) from None
    if len(bounds) == 1:
        return [bounds[0]]
    if len(bounds) not in (2, 3):
        raise UsageError(f"--sweep {part!r}: a range is START:END or START:END:STEP", SWEEP_HINT)
    start, end = bounds[0], bounds[1]
    step = bounds[2] if len(bounds) == 3 else 1
    if not (start <= end and step > 0):
        raise UsageError(f"--sweep {part!r}: a range needs START <= END and a STEP above 0", SWEEP_HINT)
    count = int((end - start) / step + 1e-9) + 1
    if count > MAX_POINTS:
        raise UsageError(f"--sweep {part!r} makes {count} values", f"a sweep takes at most {MAX_POINTS} points")
    return [start + k * step for k in range(count)]


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
    request_rate: float | None = None,
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
    batches = [int(b) for b in grid.get("batch") or [default if batch_size is None else batch_size]]
    thread_list = [int(t) for t in grid.get("threads") or [threads]]
    rates: list[float | None] = [*grid["rate"]] if grid.get("rate") else [request_rate]
    for r in rates:
        if r is not None and not 0 < r <= MAX_RATE:
            raise UsageError(f"request rate {r:g} is out of range", f"give above 0 to {MAX_RATE:g} requests a second")
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
    points = tuple(Point(b, t, r) for b, t, r in itertools.product(batches, thread_list, rates))
    if len(points) > MAX_POINTS:
        raise UsageError(f"--sweep makes {len(points)} points", f"a sweep takes at most {MAX_POINTS}: narrow it")
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
