"""Past benchmark runs: each run folder's summary.json, read back and checked (for `infprov results`)."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import re
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
    for key in ("started_at", "cluster", "instance_type", "tool", "model"):
        if not (doc.get(key) is None or isinstance(doc[key], str)):
            return f"{key} is not text"
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


INDEX = "index.jsonl"  # in INFPROV_HOME/runs: one line per run folder bench made, wherever it is
INDEX_MAX = 16 << 20


def index_run(path: Path) -> None:
    """Note a run folder in the index (a line {"path", "created_at"}), so the run list finds it even outside
    INFPROV_HOME/runs (--out, the demo's runs). Appended under a lock; the file is private (0600)."""
    from infprov.floor import paths
    from infprov.floor.files import file_lock

    runs = paths.runs_dir()
    line = json.dumps({"path": str(path.resolve()),
                       "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")})
    with file_lock(runs / ".index.lock"):
        fd = os.open(runs / INDEX, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)


def indexed(runs_dir: Path) -> dict[Path, str]:
    """The index's run folders and when each was made; a line that is not one of ours is passed over."""
    file = runs_dir / INDEX
    try:
        if file.stat().st_size > INDEX_MAX:
            return {}
        text = file.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return {}
    out: dict[Path, str] = {}
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and isinstance(entry.get("path"), str) and entry["path"].startswith("/"):
            out[Path(entry["path"])] = str(entry.get("created_at") or "")
    return out


def list_runs(runs_dir: Path, budget_ms: float | None = None) -> list[dict[str, Any]]:
    """Every run infprov wrote (under runs_dir, and those in its index: --out and demo runs), newest first; one
    whose summary.json cannot be read is listed as unreadable (with why) rather than hiding the others.

    budget_ms: 'best' is the most images/s among the points within this p99 (default: the run's own --p99)."""
    found: dict[Path, str] = {d: "" for d in runs_dir.glob("bench-*")} if runs_dir.is_dir() else {}
    for d, created in indexed(runs_dir).items():
        found[d] = created
    seen: set[Path] = set()
    out: list[dict[str, Any]] = []
    for d, created in found.items():
        summary = d / "summary.json"
        try:
            key = d.resolve()
            if key in seen or not summary.is_file():
                continue
        except OSError:
            continue
        seen.add(key)
        try:
            doc = read_summary(summary)
        except SummaryUnreadable as exc:
            out.append({"run": d.name, "date": created or _stamp(d.name), "hosts": None, "partial": None,
                        "fleet_images_per_s": None, "path": str(d), "unreadable": True, "error": str(exc)})
            continue
        out.append(run_row(doc, d, created, budget_ms))
    return sorted(out, key=lambda r: (r["date"] or "", r["run"]), reverse=True)


def run_row(doc: dict[str, Any], folder: Path, created: str = "", budget_ms: float | None = None) -> dict[str, Any]:
    """One line of the run list: when, where, what, how many points, how it ended, its best images/s."""
    from infprov.provision import plots

    points = [p for h in doc["hosts"] for p in h.get("points") or []]
    manifests = [p.get("manifest") or {} for p in points]

    def shared(key: str) -> str | None:
        if isinstance(doc.get(key), str):
            return str(doc[key])
        values = sorted({str(m.get(key)) for m in manifests if m.get(key)})
        return "/".join(values) if values else None

    budget = budget_ms if budget_ms is not None else doc.get("budget_p99_ms")
    status = run_status(doc)
    best = plots.best_within([d for h in doc["hosts"] for d in plots.dots(h.get("points") or [], h["host"])],
                             budget)
    planned = doc.get("points_planned")
    return {"run": folder.name, "date": _date(shared("started_at") or created or _stamp(folder.name)),
            "cluster": doc.get("cluster") if isinstance(doc.get("cluster"), str) else None,
            "instance_type": shared("instance_type"), "tool": shared("tool"), "hosts": len(doc["hosts"]),
            "points": len(points), "points_planned": planned if isinstance(planned, int) else None,
            "partial": bool(doc.get("partial", False)), "status": status,
            "fleet_images_per_s": doc.get("fleet_images_per_s"), "budget_p99_ms": budget,
            "best_images_per_s": None if best is None or status == "failed" else best.images_per_s,
            "best_p99_ms": None if best is None or status == "failed" else best.p99_ms,
            "path": str(folder), "unreadable": False}


def _stamp(name: str) -> str:
    """The UTC time in a run folder's name (bench-20261207T105935Z-x, demo-20261207-105935), as ISO text."""
    m = re.search(r"(\d{8})T?-?(\d{6})", name)
    if not m:
        return ""
    d, t = m[1], m[2]
    return f"{d[:4]}-{d[4:6]}-{d[6:]}T{t[:2]}:{t[2:4]}:{t[4:]}"


def _date(text: str) -> str:
    """'2026-12-07 10:59' from an ISO time (what the list shows and sorts by)."""
    return text.replace("T", " ")[:16]


def newest(runs_dir: Path) -> str:
    """The newest readable run's folder (for `infprov results latest`)."""
    for r in list_runs(runs_dir):
        if not r["unreadable"]:
            return str(r["path"])
    raise UsageError("no benchmark runs yet, so none is the latest", "run `infprov bench` first")


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
    """A run by its folder, its name under runs_dir or in the index, or 'latest'."""
    path = Path(run_name)
    if not path.is_dir():
        path = runs_dir / run_name
    if not path.is_dir() and run_name == "latest":
        path = Path(newest(runs_dir))
    if not path.is_dir():
        path = next((d for d in indexed(runs_dir) if d.name == run_name), path)
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
