"""The benchmark client's command line: the seed's flags, checked, then the run."""

from __future__ import annotations

import argparse
import re
import signal
import sys
import threading

from .load import Interrupted, measure
from .protocol import Inference, Server, SharedInput, TensorInference, input_spec, load_input_data, make_images
from .transport import CONTROL_TIMEOUT, EXIT_FAIL, EXIT_INTERRUPTED, EXIT_USAGE, ClientError, split_url


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="triton-http-client.py",
        description="Benchmark an image classifier on Triton over HTTP (seed-compatible flags and output).",
    )
    p.add_argument("-m", "--model_name", required=True, help="model to query")
    p.add_argument("-b", "--batch_size", type=int, default=1, help="images per request (default 1)")
    p.add_argument("-k", "--benchmark", action="store_true",
                   help="run the timed benchmark after the first checked request")
    p.add_argument("-l", "--limit", type=float, default=60.0, help="benchmark length in seconds (default 60)")
    p.add_argument("-t", "--num_threads", type=int, default=None,
                   help="workers, each with one connection and one request in flight (required unless "
                        "--concurrency is given)")
    p.add_argument("--concurrency", type=int, default=None,
                   help="requests in flight, perf_analyzer's word for the same thing as --num_threads")
    p.add_argument("--url", default="localhost:8000", help="Triton HTTP endpoint host:port (default localhost:8000)")
    p.add_argument("--input_name", default="input", help="input tensor name (default input)")
    p.add_argument("--output_name", default="output", help="output tensor name (default output)")
    p.add_argument("--warmup", type=int, default=1, metavar="N",
                   help="untimed requests per worker before the clock starts (default 1)")
    p.add_argument("--json", metavar="PATH", default=None,
                   help="also write the results as JSON here (written on interruption too, partial: true)")
    p.add_argument("--neuron_cores", type=int, default=None, metavar="N",
                   help="NeuronCores the model spans (default: read from a name like rn50-16neuroncores-*)")
    p.add_argument("--allow_small_batch", action="store_true",
                   help="allow a batch smaller than the NeuronCore count")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for any one answer (default 60)")
    p.add_argument("--shared_memory", choices=("none", "system"), default="none",
                   help="system: pass the images through /dev/shm instead of HTTP (client on the server's "
                        "host sharing its /dev/shm only; as perf_analyzer's --shared-memory system)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random input images (default 0)")
    p.add_argument("--input_data", metavar="FILE", default=None,
                   help="send the tensors in this perf_analyzer JSON input-data file (any model's inputs) "
                        "instead of random images")
    p.add_argument("--stability_percentage", type=float, default=10.0, metavar="P",
                   help="measure in windows of limit/N seconds until the last N agree within P %% in throughput "
                        "and mean latency (default 10, as perf_analyzer; 0: one window of --limit seconds)")
    p.add_argument("--stability_windows", type=int, default=3, metavar="N",
                   help="windows that must agree, and that the result covers (default 3)")
    p.add_argument("--max_trials", type=int, default=10, metavar="M",
                   help="windows at most before the point is reported unstable (default 10)")
    p.add_argument("--concurrency_range", default=None, metavar="START:END[:STEP]",
                   help="measure each concurrency from START to END by STEP (default 1) in turn, as perf_analyzer's "
                        "--concurrency-range; --json then holds {\"points\": [...]}")
    p.add_argument("--request_rate", type=float, default=None, metavar="R",
                   help="send R requests a second whatever the answers (over --num_threads connections) instead of "
                        "keeping each connection busy, as perf_analyzer's --request-rate-range")
    p.add_argument("--request_distribution", choices=("constant", "poisson"), default="constant",
                   help="gaps between the sends in --request_rate mode (default constant)")
    return p


def concurrency_levels(text: str) -> list[int]:
    """'1:8:2' -> [1, 3, 5, 7]; '2:4' -> [2, 3, 4] (perf_analyzer's START:END:STEP, END included)."""
    parts = text.split(":")
    try:
        nums = [int(x) for x in parts]
    except ValueError:
        nums = []
    if len(nums) not in (2, 3):
        raise ClientError(f"--concurrency_range {text!r}: write START:END or START:END:STEP, e.g. 1:8:2", EXIT_USAGE)
    start, end, step = nums[0], nums[1], nums[2] if len(nums) == 3 else 1
    if not (1 <= start <= end <= 512 and step >= 1):
        raise ClientError(f"--concurrency_range {text!r}: need 1 <= START <= END <= 512 and STEP >= 1", EXIT_USAGE)
    return list(range(start, end + 1, step))


def check_args(args: argparse.Namespace) -> int:
    """Validate the arguments; return the number of workers."""
    threads = args.num_threads
    if args.concurrency_range is not None:
        if args.request_rate is not None:
            raise ClientError("--concurrency_range and --request_rate are two ways to set the load; give one",
                              EXIT_USAGE)
        if threads is not None or args.concurrency is not None:
            raise ClientError("--concurrency_range sets the workers itself; leave out --num_threads/--concurrency",
                              EXIT_USAGE)
        threads = concurrency_levels(args.concurrency_range)[0]
    if args.request_rate is not None and not 0 < args.request_rate <= 100000:
        raise ClientError(f"--request_rate must be above 0 and at most 100000 a second, got {args.request_rate:g}",
                          EXIT_USAGE)
    if args.concurrency is not None:
        if threads is not None and threads != args.concurrency:
            raise ClientError(f"--num_threads {threads} and --concurrency {args.concurrency} disagree; give one",
                              EXIT_USAGE)
        threads = args.concurrency
    if threads is None:
        raise ClientError("-t/--num_threads (or --concurrency) is required", EXIT_USAGE)
    if not 1 <= threads <= 512:
        raise ClientError(f"--num_threads must be between 1 and 512, got {threads}", EXIT_USAGE)
    if args.batch_size < 1:
        raise ClientError(f"--batch_size must be at least 1, got {args.batch_size}", EXIT_USAGE)
    if not args.limit > 0:
        raise ClientError(f"--limit must be a positive number of seconds, got {args.limit:g}", EXIT_USAGE)
    if args.warmup < 0:
        raise ClientError(f"--warmup must be 0 or more, got {args.warmup}", EXIT_USAGE)
    if not 0 <= args.stability_percentage <= 100:
        raise ClientError(f"--stability_percentage must be 0 to 100, got {args.stability_percentage:g}", EXIT_USAGE)
    if not 1 <= args.stability_windows <= 20:
        raise ClientError(f"--stability_windows must be 1 to 20, got {args.stability_windows}", EXIT_USAGE)
    if not 1 <= args.max_trials <= 100:
        raise ClientError(f"--max_trials must be 1 to 100, got {args.max_trials}", EXIT_USAGE)
    if not args.timeout > 0:
        raise ClientError(f"--timeout must be positive, got {args.timeout:g}", EXIT_USAGE)
    cores, source = args.neuron_cores, "--neuron_cores"
    if cores is None:
        match = re.search(r"(\d+)neuroncores", args.model_name)
        cores, source = (int(match.group(1)), "the model name") if match else (0, "")
    if cores < 0:
        raise ClientError(f"--neuron_cores must be 0 or more, got {cores}", EXIT_USAGE)
    if cores and args.batch_size < cores and not args.allow_small_batch:
        raise ClientError(
            f"batch size {args.batch_size} is smaller than the {cores} NeuronCores (from {source}): the model "
            f"splits each batch across its cores, so every core needs at least one image; use --batch_size "
            f"{cores} or more, or --allow_small_batch",
            EXIT_USAGE,
        )
    return int(threads)


def run(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    stop = threading.Event()
    guard = Interrupted(stop)
    signal.signal(signal.SIGINT, guard)
    signal.signal(signal.SIGTERM, guard)
    print(f"Model name = {args.model_name}, batch size = {args.batch_size}", flush=True)
    threads = check_args(args)
    host, port = split_url(args.url)
    url = f"{host}:{port}"
    server = Server(host, port, CONTROL_TIMEOUT)
    try:
        server.check_ready()
        meta, config = server.model(args.model_name)
        if args.input_data is not None:
            return _run_tensors(args, threads, meta, config, host, port, url, guard)
        datatype, dims, classes = input_spec(meta, config, args)
    finally:
        server.close()  # reopened on demand (shared-memory registration)
    images = make_images(args.batch_size, dims, datatype, args.seed)
    shared = SharedInput(server, images) if args.shared_memory == "system" else None
    try:
        inference = Inference(args.model_name, args.input_name, args.output_name, images, datatype, classes,
                              host, port, region=shared.name if shared else None)
        return measure(args, threads, inference, host, port, url, guard)
    finally:
        if shared is not None:
            shared.close()


def _run_tensors(args: argparse.Namespace, threads: int, meta: dict, config: dict, host: str, port: int,
                 url: str, guard: Interrupted) -> int:
    """Any model's tensors from an input-data file; every declared output checked."""
    max_batch = int(config.get("max_batch_size", 0) or 0)
    if max_batch and args.batch_size > max_batch:
        raise ClientError(f"batch size {args.batch_size} is above the model's max_batch_size {max_batch}", EXIT_USAGE)
    inputs = list(meta.get("inputs", []))
    tensors = load_input_data(args.input_data, inputs, max_batch, args.batch_size)
    outputs = []
    for out in meta.get("outputs", []):
        dims = [int(d) for d in out.get("shape", [])]
        shape = [args.batch_size] + dims[1:] if max_batch > 0 else dims
        outputs.append((str(out.get("name")), str(out.get("datatype")), shape))
    inference = TensorInference(args.model_name, tensors, outputs, args.batch_size, host, port)
    return measure(args, threads, inference, host, port, url, guard)


def main(argv: list[str] | None = None) -> int:
    try:
        return run(argv)
    except ClientError as exc:
        sys.stdout.flush()
        sys.stderr.write(f"ERROR: {exc.message}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("ERROR: interrupted\n")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_FAIL
