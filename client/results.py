"""Benchmark results: take the client's JSON document, check results, write JSON/CSV."""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from infprov.floor.files import atomic_write

PERCENTILE_KEYS = ("p50", "p75", "p90", "p95", "p99")
LATENCY_KEYS = (*PERCENTILE_KEYS, "mean")
# DESIGN.md's results fields (what the client can know), then the manifest that infprov adds.
RESULT_FIELDS = ("model", "batch_size", "threads", "limit_s", "requests", "images_per_s", "requests_per_s",
                 "latency_ms", "per_thread", "errors", "partial")
MANIFEST_FIELDS = ("host", "instance_type", "region", "image", "python_backend_ref", "infprov_version",
                   "started_at")
# Relative tolerance for "images/s = requests x batch / time": the client prints about 6 decimals.
RATE_TOLERANCE = 1e-3

class ResultsError(ValueError):
    """The output or the results do not hold together; the message says which field and why."""


def results_from_client_json(data: Mapping[str, Any] | str) -> dict[str, Any]:
    """A results dict from the client's --json document (a dict, or its text)."""
    doc = json.loads(data) if isinstance(data, str) else dict(data)
    missing = [k for k in RESULT_FIELDS if k not in doc]
    if missing:
        raise ResultsError(f"the client's JSON lacks {', '.join(missing)}")
    return dict(doc)


def with_manifest(results: Mapping[str, Any], manifest: Mapping[str, Any]) -> dict[str, Any]:
    """Results plus the manifest (host, instance_type, region, image, python_backend_ref, ...).

    Manifest keys missing from the given mapping are recorded as None rather than left out,
    so every results.json has the same shape.
    """
    full = dict(results)
    full["manifest"] = {key: manifest.get(key) for key in MANIFEST_FIELDS}
    full["manifest"].update({k: v for k, v in manifest.items() if k not in MANIFEST_FIELDS})
    return full


def cost_per_million_images(images_per_s: float, hourly_usd: float) -> float | None:
    """USD per 10^6 images at this throughput on an instance billed hourly_usd; None if nothing was served."""
    if hourly_usd < 0:
        raise ValueError(f"hourly price must not be negative, got {hourly_usd}")
    if not images_per_s > 0 or math.isinf(images_per_s):
        return None
    return hourly_usd / (images_per_s * 3600.0) * 1_000_000


def with_cost(results: Mapping[str, Any], hourly_usd: float | None) -> dict[str, Any]:
    """Results plus hourly_usd and usd_per_million_images (None when the price is unknown)."""
    full = dict(results)
    full["hourly_usd"] = hourly_usd
    full["usd_per_million_images"] = (
        None if hourly_usd is None else cost_per_million_images(float(results.get("images_per_s", 0.0)), hourly_usd)
    )
    return full


# What `results --compare` puts side by side, one row per benchmark point of each run (a failed host: one row).
COMPARE_FIELDS = ("run", "host", "instance_type", "tool", "model", "input", "layout", "batch_size", "threads",
                  "images_per_s", "p99_ms", "errors", "status", "best", "hourly_usd", "usd_per_million_images",
                  "images_per_s_x", "usd_per_million_images_x")


def compare_rows(summaries: Sequence[Mapping[str, Any]], budget_ms: float | None = None) -> list[dict[str, Any]]:
    """The runs' points side by side: images/s, p99 and cost per million images, each also as a multiple of
    the first run's best point, so an Inf2 run reads against an Inf1 run.

    A run's best point is its most images/s without errors, among those whose p99 is within budget_ms when one
    is given ("best": True on that row). A host that failed keeps a row of its own (status "failed", no numbers),
    so a failed run shows as failed rather than vanishing. A point without a price has no cost and no cost multiple.
    """
    rows: list[dict[str, Any]] = []
    for summary in summaries:
        mine: list[dict[str, Any]] = []
        for host in summary.get("hosts") or []:
            for point in host.get("points") or []:
                manifest = point.get("manifest") or {}
                p99 = (point.get("latency_ms") or {}).get("p99")
                mine.append({
                    "run": summary.get("run"), "host": host.get("host"),
                    "instance_type": manifest.get("instance_type"), "tool": manifest.get("tool"),
                    "model": point.get("model"), "input": manifest.get("input"), "layout": manifest.get("layout"),
                    "batch_size": point.get("batch_size"), "threads": point.get("threads"),
                    "images_per_s": point.get("images_per_s"), "p99_ms": p99, "errors": point.get("errors") or 0,
                    "status": "partial" if point.get("partial") else "ok", "best": False,
                    "hourly_usd": point.get("hourly_usd"),
                    "usd_per_million_images": point.get("usd_per_million_images"),
                })
            if host.get("error") or not host.get("points"):
                mine.append({**dict.fromkeys(COMPARE_FIELDS), "run": summary.get("run"), "host": host.get("host"),
                             "tool": summary.get("tool"), "instance_type": summary.get("instance_type"),
                             "status": "failed", "best": False})
        fit = [r for r in mine if r["status"] != "failed" and not r["errors"] and r["images_per_s"]
               and (budget_ms is None or (r["p99_ms"] is not None and r["p99_ms"] <= budget_ms))]
        best = max(fit, key=lambda r: float(r["images_per_s"]), default=None)
        if best is not None:
            best["best"] = True
        rows.extend(mine)
    first_run = summaries[0].get("run") if summaries else None
    base = next((r for r in rows if r["run"] == first_run and r["best"]), None)
    for row in rows:
        row["images_per_s_x"] = _ratio(row["images_per_s"], base and base["images_per_s"])
        row["usd_per_million_images_x"] = _ratio(row["usd_per_million_images"],
                                                 base and base["usd_per_million_images"])
    return rows


def compare_warnings(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """What makes the comparison shaky: runs of different tools."""
    tools = sorted({str(r["tool"]) for r in rows if r.get("tool")})
    if len(tools) > 1:
        return [f"these runs were measured with different tools ({', '.join(tools)}): they time and count "
                "requests differently (the client's own windows and threads, perf_analyzer's concurrency windows), "
                "so read the numbers as approximate; compare runs of one tool"]
    return []


def _ratio(value: Any, base: Any) -> float | None:
    if value is None or not base:
        return None
    return float(value) / float(base)


def validate_results(results: Mapping[str, Any], *, require_manifest: bool = False) -> list[str]:
    """Every way the results fail to hold together, as readable problems (empty when they are fine)."""
    problems: list[str] = []
    for key in RESULT_FIELDS:
        if key not in results:
            problems.append(f"missing field '{key}'")
    if require_manifest:
        manifest = results.get("manifest")
        if not isinstance(manifest, Mapping):
            problems.append("missing manifest")
        else:
            problems.extend(f"manifest lacks '{k}'" for k in MANIFEST_FIELDS if k not in manifest)
    if problems:
        return problems
    batch, requests = results["batch_size"], results["requests"]
    if not isinstance(batch, int) or batch < 1:
        problems.append(f"batch_size must be a positive integer, got {batch!r}")
    if not isinstance(requests, int) or requests < 0:
        problems.append(f"requests must be a non-negative integer, got {requests!r}")
    if not isinstance(results["errors"], int) or results["errors"] < 0:
        problems.append(f"errors must be a non-negative integer, got {results['errors']!r}")
    problems.extend(_latency_problems("latency_ms", results["latency_ms"]))
    threads = results["per_thread"]
    if threads:
        if results["threads"] != len(threads):
            problems.append(f"threads is {results['threads']} but per_thread has {len(threads)} entries")
        summed = sum(int(t.get("requests", 0)) for t in threads)
        if summed != requests:
            problems.append(f"requests is {requests} but the threads' requests sum to {summed}")
        errors = sum(int(t.get("errors", 0)) for t in threads)
        if errors > results["errors"]:
            problems.append(f"errors is {results['errors']} but the threads report {errors}")
        for t in threads:
            name = f"per_thread[{t.get('thread')}]"
            problems.extend(_latency_problems(f"{name}.latency_ms", t.get("latency_ms", {})))
            seconds = float(t.get("seconds", 0.0))
            if seconds > 0 and isinstance(batch, int):
                problems.extend(_rate_problem(f"{name}.images_per_s", t.get("images_per_s"),
                                              int(t.get("requests", 0)) * batch / seconds))
    duration = results.get("duration_s")
    if isinstance(duration, (int, float)) and duration > 0 and isinstance(batch, int):
        problems.extend(_rate_problem("images_per_s", results["images_per_s"], requests * batch / duration))
        problems.extend(_rate_problem("requests_per_s", results["requests_per_s"], requests / duration))
    return problems


def _rate_problem(name: str, value: Any, expected: float) -> list[str]:
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return [f"{name} is not a number: {value!r}"]
    if abs(value - expected) > RATE_TOLERANCE * max(abs(expected), 1e-9):
        return [f"{name} is {value:.6g} but requests x batch / time gives {expected:.6g}"]
    return []


def _latency_problems(name: str, latency: Any) -> list[str]:
    if not isinstance(latency, Mapping):
        return [f"{name} is not a mapping"]
    problems = [f"{name} lacks {k}" for k in LATENCY_KEYS if k not in latency]
    values = [latency.get(k) for k in PERCENTILE_KEYS]
    known = [v for v in values if v is not None]
    if any(not isinstance(v, (int, float)) or v < 0 for v in known):
        problems.append(f"{name} has a negative or non-numeric value")
    elif known != sorted(known):
        problems.append(f"{name} percentiles are not ordered: {dict(zip(PERCENTILE_KEYS, values, strict=True))}")
    return problems


def check_results(results: Mapping[str, Any], *, require_manifest: bool = False) -> None:
    """Raise ResultsError listing every problem validate_results finds."""
    problems = validate_results(results, require_manifest=require_manifest)
    if problems:
        raise ResultsError("; ".join(problems))


# ----------------------------------------------------------------------------- CSV and files

CSV_COLUMNS = (
    "started_at", "host", "instance_type", "model", "batch_size", "threads", "limit_s", "duration_s",
    "requests", "errors", "images_per_s", "requests_per_s",
    *(f"latency_{k}_ms" for k in LATENCY_KEYS),
    "hourly_usd", "usd_per_million_images", "partial", "stable", "spread_pct", "host_cpu_busy_pct", "request_rate",
)


def csv_row(results: Mapping[str, Any]) -> dict[str, Any]:
    """One flat row for results.csv (one row per benchmark point; a sweep has several)."""
    manifest = results.get("manifest") or {}
    latency = results.get("latency_ms") or {}
    row: dict[str, Any] = {
        "started_at": manifest.get("started_at"),
        "host": manifest.get("host"),
        "instance_type": manifest.get("instance_type"),
    }
    for key in ("model", "batch_size", "threads", "limit_s", "duration_s", "requests", "errors",
                "images_per_s", "requests_per_s", "hourly_usd", "usd_per_million_images", "partial"):
        row[key] = results.get(key)
    for key in LATENCY_KEYS:
        row[f"latency_{key}_ms"] = latency.get(key)
    row["stable"] = results.get("stable")
    row["spread_pct"] = results.get("spread_pct")
    row["host_cpu_busy_pct"] = (results.get("host_load") or {}).get("cpu_busy_pct")
    load = results.get("load") or {}
    row["request_rate"] = load.get("request_rate") if load.get("mode") == "rate" else None
    return row


def to_csv(rows: Iterable[Mapping[str, Any]]) -> str:
    """CSV text with a header; each item is a results dict (flattened with csv_row)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(CSV_COLUMNS), lineterminator="\n")
    writer.writeheader()
    for results in rows:
        row = csv_row(results)
        writer.writerow({k: "" if row.get(k) is None else row[k] for k in CSV_COLUMNS})
    return buf.getvalue()


def make_private_dir(path: str | os.PathLike[str]) -> Path:
    """Create a folder and any missing parents, each one 0700 whatever the umask; an existing one is left
    as it is. Returns the path."""
    directory = Path(path)
    missing: list[Path] = []
    parent = directory
    while not parent.exists():
        missing.append(parent)
        if parent.parent == parent:
            break
        parent = parent.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:  # made meanwhile by someone else: theirs, left alone
            continue
        os.chmod(folder, 0o700)
    if not directory.is_dir():
        raise NotADirectoryError(f"{directory} is not a folder")
    return directory


def write_results(out_dir: str | os.PathLike[str], results: Mapping[str, Any] | Sequence[Mapping[str, Any]],
                  *, check: bool = True) -> tuple[Path, Path]:
    """Write results.json and results.csv into out_dir; a list of results (a sweep) gives one row each.

    results.json holds the single results dict, or {"points": [...]} for a sweep. Both are written
    atomically and privately (0600); a folder made here is 0700.
    """
    points = [results] if isinstance(results, Mapping) else list(results)
    if check:
        for point in points:
            check_results(point)
    directory = make_private_dir(out_dir)
    json_path, csv_path = directory / "results.json", directory / "results.csv"
    document: Any = dict(points[0]) if isinstance(results, Mapping) else {"points": [dict(p) for p in points]}
    atomic_write(json_path, json.dumps(document, indent=2, allow_nan=False) + "\n")
    atomic_write(csv_path, to_csv(points))
    return json_path, csv_path


def read_results(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The results points in a results.json (or in the run folder holding it)."""
    file = Path(path)
    if file.is_dir():
        file = file / "results.json"
    doc = json.loads(file.read_text(encoding="utf-8"))
    if isinstance(doc, dict) and isinstance(doc.get("points"), list):
        return [dict(p) for p in doc["points"]]
    if isinstance(doc, dict):
        return [doc]
    raise ResultsError(f"{file} is not a results document")
