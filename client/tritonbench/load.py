"""The load loop: worker threads sending the shared request over their own connections for a time limit,
checking every answer, and the interruption guard that keeps what was measured."""

from __future__ import annotations

import argparse
import datetime
import math
import os
import random
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


class Pacer:
    """Request-rate mode (perf_analyzer's --request-rate-range): the send times of every worker, `rate` a second,
    evenly spaced (constant) or with exponential gaps (poisson), from the first request on. Workers take the next
    send time in turn; one that finds it past sends at once, and how late it was is recorded."""

    def __init__(self, rate: float, distribution: str = "constant", seed: int = 0) -> None:
        self.rate = rate
        self.poisson = distribution == "poisson"
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.next_at: float | None = None

    def take(self) -> float:
        with self.lock:
            if self.next_at is None:
                self.next_at = time.perf_counter()
            slot = self.next_at
            self.next_at += self.rng.expovariate(self.rate) if self.poisson else 1.0 / self.rate
            return slot


class Worker(threading.Thread):
    """One connection, requests back to back (or at the pacer's times) until the deadline or a stop; records
    each latency."""

    def __init__(self, index: int, inference: Inference, host: str, port: int, timeout: float,
                 warmup: int, start_gate: threading.Barrier, stop: threading.Event,
                 pacer: Pacer | None = None) -> None:
        super().__init__(name=f"worker-{index}", daemon=True)
        self.index = index
        self.inference = inference
        self.conn = Connection(host, port, timeout)
        self.warmup = warmup
        self.start_gate = start_gate
        self.stop = stop
        self.deadline = math.inf
        self.latencies: list[float] = []  # seconds, successful requests only
        self.ends: list[float] = []  # when each of those requests was answered (perf_counter)
        self.errors: dict[str, int] = {}
        self.first_error: dict[str, str] = {}
        self.started = 0.0
        self.finished = 0.0
        self.pacer = pacer
        self.late: list[float] = []  # rate mode: how long after its send time each request went (s)

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
        ends = self.ends
        self.started = clock()
        now = self.started
        if self.pacer is not None:
            self._paced(self.pacer)
            return
        while now < self.deadline and not self.stop.is_set():
            try:
                call()
                done = clock()
                lat.append(done - now)
                ends.append(done)
            except RequestFailed as exc:
                done = clock()
                self._error(exc)
                if exc.kind in ("connection", "timeout"):
                    self.stop.wait(0.1)  # do not spin on a server that is gone
                    done = clock()
            self.finished = now = done
        self.conn.close()

    def _paced(self, pacer: Pacer) -> None:
        """Rate mode: each request at the next send time; its latency counts from when it went."""
        clock = time.perf_counter
        while not self.stop.is_set():
            slot = pacer.take()
            wait = slot - clock()
            if wait > 0 and self.stop.wait(wait):
                break
            sent = clock()
            if sent >= self.deadline:
                break
            self.late.append(max(sent - slot, 0.0))
            try:
                self._call()
                done = clock()
                self.latencies.append(done - sent)
                self.ends.append(done)
            except RequestFailed as exc:
                done = clock()
                self._error(exc)
                if exc.kind in ("connection", "timeout"):
                    self.stop.wait(0.1)
                    done = clock()
            self.finished = done
        self.conn.close()

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def answered(self) -> tuple[list[float], list[float]]:
        """(latencies, answer times) so far, of equal length (the worker may be appending)."""
        n = min(len(self.latencies), len(self.ends))
        return self.latencies[:n], self.ends[:n]

    def keep_only(self, begin: float, end: float) -> None:
        """Keep the requests answered in [begin, end): the measurement reported (the stable windows)."""
        lat, ends = self.answered()
        kept = [(x, t) for x, t in zip(lat, ends) if begin <= t < end]
        self.latencies = [x for x, _ in kept]
        self.ends = [t for _, t in kept]
        self.started, self.finished = begin, end


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


def _cpu_ticks() -> tuple[int, int] | None:
    """(busy, total) jiffies of the machine from /proc/stat (the host's: a container shares its kernel)."""
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            fields = [int(v) for v in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def _loadavg() -> float | None:
    try:
        with open("/proc/loadavg", encoding="ascii") as fh:
            return float(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


class Windows:
    """The measurement in windows, as perf_analyzer measures: windows of one length follow each other until
    the last `count` agree within `percentage` % (throughput and mean latency; each window within that much
    of their average) or `max_trials` windows were measured; the result covers the last `count` windows.
    percentage 0: one window of --limit seconds, as the seed measured."""

    def __init__(self, limit: float, percentage: float, count: int, max_trials: int) -> None:
        self.percentage = percentage
        self.count = count if percentage > 0 else 1
        self.max_trials = max(max_trials, self.count) if percentage > 0 else 1
        self.length = limit / self.count
        self.seen: list[dict[str, float | None]] = []
        self.marks: list[tuple[float, float, tuple[int, int] | None]] = []  # (time, own CPU s, host ticks)

    def mark(self, when: float) -> None:
        self.marks.append((when, _cpu_seconds(), _cpu_ticks()))

    def add(self, workers: list[Worker], begin: float, end: float, batch: int) -> dict[str, float | None]:
        lat: list[float] = []
        for w in workers:
            got, ends = w.answered()
            lat.extend(x for x, t in zip(got, ends) if begin <= t < end)
        seconds = end - begin
        window: dict[str, float | None] = {
            "images_per_s": len(lat) * batch / seconds if seconds > 0 else 0.0,
            "requests": float(len(lat)),
            "p99_ms": float(np.percentile(lat, 99)) * 1000.0 if lat else None,
            "mean_ms": float(np.mean(lat)) * 1000.0 if lat else None,
        }
        self.seen.append(window)
        return window

    def spread(self) -> tuple[float | None, float | None]:
        """The last `count` windows' spread in % (the largest distance from their average): throughput, latency."""
        last = self.seen[-self.count:]

        def of(key: str) -> float | None:
            values = [w[key] for w in last]
            if len(values) < self.count or any(v is None for v in values):
                return None
            nums = [float(v) for v in values if v is not None]
            mean = sum(nums) / len(nums)
            return 0.0 if mean == 0 else max(abs(v - mean) for v in nums) / mean * 100.0
        return of("images_per_s"), of("mean_ms")

    def stable(self) -> bool:
        if self.percentage <= 0:
            return True
        thr, lat = self.spread()
        return thr is not None and lat is not None and thr <= self.percentage and lat <= self.percentage

    def report(self, stable: bool, begin_mark: int, end_mark: int) -> dict[str, Any]:
        thr, lat = self.spread() if len(self.seen) >= self.count else (None, None)
        out: dict[str, Any] = {
            "stable": stable, "spread_pct": thr, "latency_spread_pct": lat,
            "stability": {"percentage": self.percentage, "windows": self.count, "max_trials": self.max_trials,
                          "window_s": self.length},
            "windows": self.seen,
        }
        t0, _, ticks0 = self.marks[begin_mark]
        t1, _, ticks1 = self.marks[end_mark]
        busy = None
        if ticks0 and ticks1 and ticks1[1] > ticks0[1]:
            busy = 100.0 * (ticks1[0] - ticks0[0]) / (ticks1[1] - ticks0[1])
        out["host_load"] = {"cpus": os.cpu_count(), "cpu_busy_pct": busy, "loadavg_1m": _loadavg()}
        return out


def benchmark(args: argparse.Namespace, threads: int, inference: Inference, host: str, port: int,
              url: str, guard: Interrupted) -> dict[str, Any]:
    stop = guard.stop
    gate = threading.Barrier(threads + 1)
    rate = getattr(args, "request_rate", None)
    pacer = Pacer(rate, args.request_distribution, args.seed) if rate else None
    workers = [Worker(i, inference, host, port, args.timeout, args.warmup, gate, stop, pacer)
               for i in range(threads)]
    print("##### WARMUP COMPLETE, NOW DO BENCHMARK #####")
    print(f"##### Model name: {args.model_name}, Batch size: {args.batch_size}")
    for w in workers:
        print(f"RUN Thread {w.index} for {datetime.timedelta(seconds=args.limit)} seconds")
    print(f">>> Running {threads} threads", flush=True)
    if pacer is not None:
        print(f">>> Request rate {rate:g}/s ({args.request_distribution}) over {threads} connections", flush=True)
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
    win = Windows(args.limit, args.stability_percentage, args.stability_windows, args.max_trials)
    start = time.perf_counter()
    win.mark(start)
    gate.wait()
    if win.percentage > 0:  # the warm-up is over: what follows is measured
        print(f"Measuring in windows of {win.length:.3g} s until the last {win.count} agree within "
              f"{win.percentage:g} % (at most {win.max_trials})", flush=True)
    stable = False
    while True:  # one window after the other, until stable, the last one, a stop, or no worker left
        end = start + len(win.seen) * win.length + win.length
        while not stop.is_set() and any(w.is_alive() for w in workers):
            left = end - time.perf_counter()
            if left <= 0:
                break
            stop.wait(min(left, 0.2))
        if stop.is_set() or not any(w.is_alive() for w in workers):
            break
        win.mark(end)
        got = win.add(workers, end - win.length, end, args.batch_size)
        if win.percentage > 0:
            p99 = got["p99_ms"]
            print(f"Window {len(win.seen)}: {got['images_per_s']:.1f} images/s, p99 "
                  + ("-" if p99 is None else f"{p99:.1f}") + " ms", flush=True)
        stable = win.stable()
        if (stable and len(win.seen) >= win.count) or len(win.seen) >= win.max_trials:
            break
    for w in workers:
        w.deadline = -math.inf  # no new request; the one in flight is answered and not counted
    interrupted = stop.is_set()
    if interrupted or len(win.seen) < win.count:  # what was measured: from the start to now
        now = time.perf_counter()
        win.mark(now)
        begin, finish, first = start, now, 0
        stable = False
    else:
        first = len(win.seen) - win.count
        begin, finish = start + first * win.length, start + len(win.seen) * win.length
    grace = time.perf_counter() + min(args.timeout, 10.0)
    while any(w.is_alive() for w in workers) and time.perf_counter() < grace:
        for w in workers:
            w.join(timeout=0.05)
    for w in workers:
        w.keep_only(begin, finish)
    cpu = win.marks[-1][1] - win.marks[first][1]
    result = results_dict(args, url, workers, max(finish - begin, 0.0), cpu, interrupted, {}, {})
    result.update(win.report(stable, first, len(win.marks) - 1))
    if pacer is not None:
        result["load"] = rate_report(pacer, workers, result)
        if result["load"]["behind"]:
            print(f"BEHIND: the client sent {result['requests_per_s']:.4g} requests/s of the {pacer.rate:g} asked "
                  f"(send delay p99 {result['load']['send_delay_p99_ms']:.4g} ms): give more --num_threads",
                  flush=True)
    else:
        result["load"] = {"mode": "concurrency", "concurrency": threads}
    if win.percentage > 0 and not interrupted:
        spread = result["spread_pct"]
        print(("Stable" if stable else "UNSTABLE") + f": the last {win.count} windows of {win.length:.3g} s "
              f"agree within " + ("-" if spread is None else f"{spread:.1f}") + f" % (wanted {win.percentage:g} %)",
              flush=True)
    return result


def rate_report(pacer: Pacer, workers: list[Worker], result: dict[str, Any]) -> dict[str, Any]:
    """How well the asked rate was kept: the rate sent, how late requests went; behind when the send delay's
    p99 passed two intervals or the rate answered fell more than 10 % short."""
    late = [x for w in workers for x in w.late]
    p99 = float(np.percentile(late, 99)) * 1000.0 if late else 0.0
    interval_ms = 1000.0 / pacer.rate
    short = result["requests"] > 0 and result["requests_per_s"] < 0.9 * pacer.rate
    return {"mode": "rate", "request_rate": pacer.rate, "distribution": "poisson" if pacer.poisson else "constant",
            "connections": len(workers), "send_delay_p99_ms": p99,
            "behind": bool(short or p99 > 2 * interval_ms)}


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
    print(f"##### Model inference time in ms: {latency * 1000.0:.6g}", flush=True)
    if not args.benchmark:
        result = results_dict(args, url, [], latency, 0.0, False, {}, {}, single_latency=latency)
        write_json(args.json, result)
        return EXIT_OK
    if stop.is_set():
        write_json(args.json, results_dict(args, url, [], 0.0, 0.0, True, {}, {}))
        return EXIT_INTERRUPTED

    if args.concurrency_range:
        return measure_range(args, inference, host, port, url, guard)
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


def measure_range(args: argparse.Namespace, inference: Inference, host: str, port: int, url: str,
                  guard: Interrupted) -> int:
    """Each concurrency of --concurrency_range in turn, each a point as one run measures it; the JSON holds
    {"points": [...]}, rewritten after each so a stop keeps the finished ones."""
    from .cli import concurrency_levels

    points: list[dict[str, Any]] = []
    for level in concurrency_levels(args.concurrency_range):
        print(f">>> Concurrency {level}", flush=True)
        result = benchmark(args, level, inference, host, port, url, guard)
        if result["per_thread"]:
            print_thread_lines(result)
        if result["requests"] or not result["partial"]:  # a level stopped before it measured: left out
            points.append(result)
        write_json(args.json, {"points": points})
        if result["errors"]:
            report_failures(args.model_name, result)
        if result["partial"]:
            print(f"INTERRUPTED: {len(points)} concurrency level(s) measured", flush=True)
            return EXIT_INTERRUPTED
    return EXIT_FAIL if any(p["errors"] for p in points) else EXIT_OK
