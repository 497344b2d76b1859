"""The load loop: worker threads sending the shared request over their own connections for a time limit,
checking every answer, and the interruption guard that keeps what was measured."""

from __future__ import annotations

import argparse
import datetime
import math
import resource
import signal
import threading
import time
from typing import Any

import numpy as np

from .protocol import Inference
from .report import print_thread_lines, report_failures, results_dict, write_json
from .transport import EXIT_FAIL, EXIT_INTERRUPTED, EXIT_OK, ClientError, Connection, RequestFailed


def checked_call(inference: Inference, conn: Connection) -> np.ndarray:
    """One request; any failure becomes a RequestFailed that is counted (never a raw traceback)."""
    try:
        return inference.run(conn)
    except RequestFailed:
        raise
    except Exception as exc:  # noqa: BLE001 - counted and reported, the run goes on
        conn.close()
        raise RequestFailed("client", f"{type(exc).__name__}: {exc}") from exc


class Worker(threading.Thread):
    """One connection, requests back to back until the deadline or a stop; records each latency."""

    def __init__(self, index: int, inference: Inference, host: str, port: int, timeout: float,
                 warmup: int, start_gate: threading.Barrier, stop: threading.Event) -> None:
        super().__init__(name=f"worker-{index}", daemon=True)
        self.index = index
        self.inference = inference
        self.conn = Connection(host, port, timeout)
        self.warmup = warmup
        self.start_gate = start_gate
        self.stop = stop
        self.deadline = math.inf
        self.latencies: list[float] = []  # seconds, successful requests only
        self.errors: dict[str, int] = {}
        self.first_error: dict[str, str] = {}
        self.started = 0.0
        self.finished = 0.0

    def _error(self, exc: RequestFailed) -> None:
        self.errors[exc.kind] = self.errors.get(exc.kind, 0) + 1
        self.first_error.setdefault(exc.kind, exc.detail)

    def _call(self) -> None:
        checked_call(self.inference, self.conn)

    def run(self) -> None:
        for _ in range(self.warmup):  # untimed; failures still count as errors
            if self.stop.is_set():
                break
            try:
                self._call()
            except RequestFailed as exc:
                self._error(exc)
        try:
            self.start_gate.wait()
        except threading.BrokenBarrierError:
            return
        clock = time.perf_counter
        call = self._call
        lat = self.latencies
        self.started = clock()
        now = self.started
        while now < self.deadline and not self.stop.is_set():
            try:
                call()
                done = clock()
                lat.append(done - now)
            except RequestFailed as exc:
                done = clock()
                self._error(exc)
                if exc.kind in ("connection", "timeout"):
                    self.stop.wait(0.1)  # do not spin on a server that is gone
                    done = clock()
            self.finished = now = done
        self.conn.close()

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Interrupted:
    """Set by SIGINT/SIGTERM: workers finish the request in hand and stop."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop
        self.signal: int | None = None

    def __call__(self, signum: int, _frame: Any) -> None:
        if self.stop.is_set():
            raise KeyboardInterrupt  # a second signal: stop waiting for the workers
        self.signal = signum
        self.stop.set()


def benchmark(args: argparse.Namespace, threads: int, inference: Inference, host: str, port: int,
              url: str, guard: Interrupted) -> dict[str, Any]:
    stop = guard.stop
    gate = threading.Barrier(threads + 1)
    workers = [Worker(i, inference, host, port, args.timeout, args.warmup, gate, stop) for i in range(threads)]
    print("##### WARMUP COMPLETE, NOW DO BENCHMARK #####")
    print(f"##### Model name: {args.model_name}, Batch size: {args.batch_size}")
    for w in workers:
        print(f"RUN Thread {w.index} for {datetime.timedelta(seconds=args.limit)} seconds")
    print(f">>> Running {threads} threads", flush=True)
    for w in workers:
        w.start()
    # Wait for every worker's warm-up, still answering signals.
    while gate.n_waiting < threads and not stop.is_set() and any(w.is_alive() for w in workers):
        time.sleep(0.01)
    if stop.is_set():
        gate.abort()
        for w in workers:
            w.join(timeout=args.timeout)
        return results_dict(args, url, [], 0.0, 0.0, True, {}, {})
    deadline = time.perf_counter() + args.limit
    for w in workers:
        w.deadline = deadline
    cpu0 = _cpu_seconds()
    start = time.perf_counter()
    gate.wait()
    # Join with a timeout so that a signal is handled while waiting.
    while any(w.is_alive() for w in workers):
        for w in workers:
            w.join(timeout=0.2)
        if stop.is_set():
            grace = time.perf_counter() + min(args.timeout, 10.0)
            while any(w.is_alive() for w in workers) and time.perf_counter() < grace:
                time.sleep(0.05)
            break
    cpu = _cpu_seconds() - cpu0
    start = min((w.started for w in workers if w.started), default=start)
    end = max((w.finished for w in workers if w.finished), default=time.perf_counter())
    duration = max(end - start, 0.0)
    return results_dict(args, url, workers, duration, cpu, stop.is_set(), {}, {})


def measure(args: argparse.Namespace, threads: int, inference: Inference, host: str, port: int, url: str,
            guard: Interrupted) -> int:
    """The first checked request (PASS/FAIL), then the benchmark if asked; the exit code."""
    stop = guard.stop

    # The first request, checked: the seed's PASS line now means something.
    conn = Connection(host, port, args.timeout)
    t0 = time.perf_counter()
    try:
        checked_call(inference, conn)
    except RequestFailed as exc:
        first = results_dict(args, url, [], 0.0, 0.0, stop.is_set(), {exc.kind: 1}, {exc.kind: exc.detail})
        write_json(args.json, first)
        if exc.kind == "connection":
            raise ClientError(f"cannot reach Triton at {url}: {exc.detail}") from None
        print(f"FAIL: {args.model_name}: {exc.kind}: {exc.detail}", flush=True)
        return EXIT_INTERRUPTED if stop.is_set() else EXIT_FAIL
    finally:
        conn.close()
    latency = time.perf_counter() - t0
    print(f"PASS: {args.model_name}")
    print(f"##### Model inference time in ms: {latency * 1000.0!r}", flush=True)
    if not args.benchmark:
        result = results_dict(args, url, [], latency, 0.0, False, {}, {}, single_latency=latency)
        write_json(args.json, result)
        return EXIT_OK
    if stop.is_set():
        write_json(args.json, results_dict(args, url, [], 0.0, 0.0, True, {}, {}))
        return EXIT_INTERRUPTED

    result = benchmark(args, threads, inference, host, port, url, guard)
    if result["per_thread"]:
        print_thread_lines(result)
    write_json(args.json, result)
    if result["errors"]:
        report_failures(args.model_name, result)
    if result["partial"]:
        name = signal.Signals(guard.signal).name if guard.signal else "a signal"
        print(f"INTERRUPTED by {name}: results above cover {result['duration_s']:.1f} s of {args.limit:g} s"
              + (f" (saved to {args.json}, partial)" if args.json else ""), flush=True)
        return EXIT_INTERRUPTED
    return EXIT_FAIL if result["errors"] else EXIT_OK
