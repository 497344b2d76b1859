"""What the benchmark client prints and saves: latency percentiles, the seed's per-thread lines, the
results document."""

from __future__ import annotations

import argparse
import json
import os
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # the load loop imports this module
    from .load import Worker

CLIENT_NAME = "infprov-triton-http-client"


CLIENT_VERSION = "1.1"


PERCENTILES = (50, 75, 90, 95, 99)


SEED_PERCENTILES = (50, 75, 95, 99)  # the seed printed these per thread (now all five, in order)


def latency_summary(latencies_s: list[float] | np.ndarray) -> dict[str, float | None]:
    """p50/p75/p90/p95/p99 and mean in ms (linear interpolation); None when there is nothing to measure."""
    data = np.asarray(latencies_s, dtype=np.float64) * 1000.0
    if data.size == 0:
        return {**{f"p{p}": None for p in PERCENTILES}, "mean": None}
    values = np.percentile(data, PERCENTILES)
    out: dict[str, float | None] = {f"p{p}": float(values[i]) for i, p in enumerate(PERCENTILES)}
    out["mean"] = float(data.mean())
    return out


def _fmt(value: float | None) -> str:
    """A figure for the text lines: 6 significant digits (the JSON keeps every digit)."""
    return "nan" if value is None else f"{float(value):.6g}"


def results_dict(args: argparse.Namespace, url: str, workers: list[Worker], duration: float, cpu_s: float,
                 partial: bool, extra_errors: dict[str, int], first_errors: dict[str, str],
                 single_latency: float | None = None) -> dict[str, Any]:
    batch = args.batch_size
    per_thread = []
    all_lat: list[float] = []
    errors: dict[str, int] = dict(extra_errors)
    for w in workers:
        n = len(w.latencies)
        seconds = max(w.finished - w.started, 0.0) if n or w.error_count else 0.0
        all_lat.extend(w.latencies)
        for kind, count in w.errors.items():
            errors[kind] = errors.get(kind, 0) + count
        for kind, text in w.first_error.items():
            first_errors.setdefault(kind, text)
        per_thread.append({
            "thread": w.index, "requests": n, "errors": w.error_count, "seconds": seconds,
            "images_per_s": n * batch / seconds if seconds > 0 else 0.0,
            "requests_per_s": n / seconds if seconds > 0 else 0.0,
            "latency_ms": latency_summary(w.latencies),
        })
    if not workers and single_latency is not None:
        all_lat = [single_latency]
    requests = len(all_lat) if workers else (1 if single_latency is not None else 0)
    return {
        "tool": CLIENT_NAME, "tool_version": CLIENT_VERSION,
        "model": args.model_name, "url": url, "batch_size": batch, "threads": len(workers),
        "limit_s": args.limit, "warmup": args.warmup, "shared_memory": args.shared_memory, "duration_s": duration,
        "requests": requests,
        "images_per_s": requests * batch / duration if duration > 0 else 0.0,
        "requests_per_s": requests / duration if duration > 0 else 0.0,
        "latency_ms": latency_summary(all_lat),
        "per_thread": per_thread,
        "errors": sum(errors.values()), "error_kinds": errors, "error_examples": first_errors,
        "cpu_s": cpu_s, "cpu_ms_per_request": 1000.0 * cpu_s / requests if requests else None,
        "partial": partial,
    }


def print_thread_lines(result: dict[str, Any]) -> None:
    for t in result["per_thread"]:
        i = t["thread"]
        print(f"Thread {i}: Completed {t['requests']} http requests in {t['seconds']:.3f} seconds.")
        print(f"Thread {i} Throughput per second: {_fmt(t['images_per_s'])}")
        for p in PERCENTILES:  # the seed's p50, p75, p95, p99 and p90, in order
            print(f"Thread {i} Latency p{p} in ms: {_fmt(t['latency_ms'][f'p{p}'])}")
        print(f"Thread {i} Latency mean in ms: {_fmt(t['latency_ms']['mean'])}")
        print(f"Thread {i} Errors: {t['errors']}")
    lat = result["latency_ms"]
    print(f"Total: Completed {result['requests']} http requests in {result['duration_s']:.3f} seconds "
          f"with {result['threads']} threads.")
    print(f"Total Throughput per second: {_fmt(result['images_per_s'])}")
    print(f"Total Requests per second: {_fmt(result['requests_per_s'])}")
    for key in ("p50", "p75", "p90", "p95", "p99", "mean"):
        print(f"Total Latency {key} in ms: {_fmt(lat[key])}")
    print(f"Total Errors: {result['errors']}")
    if result["cpu_ms_per_request"] is not None:
        print(f"Client CPU per request in ms: {_fmt(result['cpu_ms_per_request'])}")


def write_json(path: str | None, result: dict[str, Any]) -> None:
    if not path:
        return
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(result, fh, indent=2, allow_nan=False)
        fh.write("\n")
    os.replace(tmp, path)


def report_failures(model: str, result: dict[str, Any]) -> None:
    total = result["requests"] + result["errors"]
    for kind, count in sorted(result["error_kinds"].items()):
        example = result["error_examples"].get(kind, "")
        print(f"FAIL: {model}: {count} of {total} requests: {kind}: {example}")
