"""Past benchmark runs: each run folder's summary.json, read back and checked (for `infprov results`)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from infprov.floor.errors import InfprovError, UsageError
from infprov.provision.bench import shown


class SummaryUnreadable(ValueError):
    """A run's summary.json cannot be read or is not what bench writes."""


def read_summary(path: Path) -> dict[str, Any]:
    """A run's summary.json, checked to have what `infprov results` shows; SummaryUnreadable if not."""
    try:
        if path.stat().st_size > SUMMARY_MAX:
            raise SummaryUnreadable(f"larger than {SUMMARY_MAX >> 20} MiB")
        doc = json.loads(path.read_text(encoding="utf-8"), parse_constant=_no_constant)
    except (OSError, ValueError) as exc:  # ValueError: bad JSON, bad UTF-8, NaN or Infinity
        raise SummaryUnreadable(shown(f"{type(exc).__name__}: {exc}", 160)) from None
    except RecursionError:  # nested deeper than the parser goes
        raise SummaryUnreadable("nested too deeply to be a summary") from None
    problem = _summary_problem(doc)
    if problem:
        raise SummaryUnreadable(problem)
    return doc


SUMMARY_MAX = 64 << 20  # bench writes kilobytes; a summary this large was not written by it


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number a summary holds")


def _summary_problem(doc: Any) -> str:
    def number(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    if not isinstance(doc, dict):
        return "not a JSON object"
    if not isinstance(doc.get("run"), str) or not isinstance(doc.get("path"), str):
        return "no run name or path"
    if not isinstance(doc.get("hosts"), list):
        return "no list of hosts"
    if not (doc.get("fleet_images_per_s") is None or number(doc["fleet_images_per_s"])):
        return "fleet_images_per_s is not a number"
    if not (doc.get("budget_p99_ms") is None or number(doc["budget_p99_ms"])):
        return "budget_p99_ms is not a number"
    for h in doc["hosts"]:
        if not isinstance(h, dict) or not isinstance(h.get("host"), str) or not isinstance(h.get("points"), list):
            return "a host without address or points"
        if not isinstance(h.get("error", ""), str):
            return "a host's error is not text"
        for p in h["points"]:
            if not isinstance(p, dict) or not all(number(p.get(k)) for k in
                                                  ("batch_size", "threads", "images_per_s", "requests_per_s")):
                return "a point without batch size, threads or rates"
            lat = p.get("latency_ms")
            if not (lat is None or (isinstance(lat, dict) and all(v is None or number(v) for v in lat.values()))):
                return "a point's latencies are not numbers"
            if not (p.get("usd_per_million_images") is None or number(p["usd_per_million_images"])):
                return "a point's cost is not a number"
            if not (p.get("hourly_usd") is None or number(p["hourly_usd"])):
                return "a point's price is not a number"
            manifest = p.get("manifest")
            if not (manifest is None or (isinstance(manifest, dict)
                                         and all(v is None or isinstance(v, str | int | float | bool)
                                                 for v in manifest.values()))):
                return "a point's manifest is not a mapping of plain values"
    return ""


def list_runs(runs_dir: Path) -> list[dict[str, Any]]:
    """Every run under runs_dir, newest first; one whose summary.json cannot be read is listed as unreadable
    (with why) rather than hiding the others."""
    out: list[dict[str, Any]] = []
    for d in sorted(runs_dir.glob("bench-*"), reverse=True):
        summary = d / "summary.json"
        if not summary.exists():
            continue
        try:
            doc = read_summary(summary)
        except SummaryUnreadable as exc:
            out.append({"run": d.name, "hosts": None, "partial": None, "fleet_images_per_s": None, "path": str(d),
                        "unreadable": True, "error": str(exc)})
            continue
        out.append({"run": d.name, "hosts": len(doc["hosts"]), "partial": bool(doc.get("partial", False)),
                    "fleet_images_per_s": doc.get("fleet_images_per_s"), "path": str(d), "unreadable": False,
                    "status": run_status(doc)})
    return out


def run_status(doc: dict[str, Any]) -> str:
    """failed (no host measured a point), partial (interrupted, or a host failed), unfinished (still
    running, or its process ended without finishing the summary: every point it lists was measured), or ok."""
    hosts = doc.get("hosts") or []
    if doc.get("running"):
        return "unfinished"
    if not any(h.get("points") for h in hosts if isinstance(h, dict)):
        return "failed"
    if doc.get("partial") or any(h.get("error") for h in hosts if isinstance(h, dict)):
        return "partial"
    return "ok"


def load_run(runs_dir: Path, run_name: str) -> dict[str, Any]:
    path = Path(run_name)
    if not path.is_dir():
        path = runs_dir / run_name
    summary = path / "summary.json"
    if not summary.exists():
        known = ", ".join(r["run"] for r in list_runs(runs_dir)[:5]) or "none yet"
        raise UsageError(f"no benchmark run {shown(run_name, 120)!r}", f"recent runs: {shown(known)}")
    try:
        return read_summary(summary)
    except SummaryUnreadable as exc:
        raise InfprovError(f"run {shown(run_name, 120)!r} is unreadable: its summary.json: {exc}",
                           f"its files are in {shown(str(path), 160)}; `infprov results` lists the other runs",
                           ) from None
