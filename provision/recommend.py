"""`infprov recommend`: which instance type, batch and concurrency serve within a p99 budget for the least
money. For each type: a cluster that exists, or one launched for the purpose (and torn down at the end, on
Ctrl-C too); a bounded search of batch and concurrency on one of its hosts; one table ranked by $ per
million images at the budget."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infprov.floor.errors import InfprovError, UsageError
from infprov.floor.files import atomic_write
from infprov.provision import catalog

MAX_POINTS = 12  # per type: the search never measures more than this many points
SATURATED = 1.05  # doubling the concurrency gained less than 5 %: the server is saturated at this batch


def parse_budget(text: str) -> float:
    """'200ms', '0.2s' or '200' (ms) -> milliseconds."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s)?\s*", text or "")
    if not m:
        raise UsageError(f"--p99 {text!r} is not a latency", "write it as 200ms, 0.2s or 200 (milliseconds)")
    value = float(m[1]) * (1000.0 if m[2] == "s" else 1.0)
    if not 1 <= value <= 600_000:
        raise UsageError(f"--p99 {text} is out of range", "give 1 ms to 600 s")
    return value


def parse_types(text: str) -> list[str]:
    types = [t.strip().lower() for t in (text or "").split(",") if t.strip()]
    if not types:
        raise UsageError("--types lists no instance type", "e.g. --types inf1.xlarge,inf2.xlarge")
    for t in types:
        catalog.get(t)
    if len(set(types)) != len(types):
        raise UsageError(f"--types {text!r} names a type twice", "name each type once")
    return types


def batches_for(instance_type: str, cores: int) -> list[int]:
    """The batches worth trying: Inf1's model splits each batch over its cores (cores, 2x, 4x, up to 64); a
    Neuron v2 model's fixed shape gives its own batch (0: the model's)."""
    if not catalog.get(instance_type).splits_batch:
        return [0]
    return [b for b in (cores, 2 * cores, 4 * cores) if b <= 64] or [min(cores, 64)]


@dataclass
class Search:
    """The points measured for one type and the best within the budget."""

    tried: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] | None = None


def search(measure: Callable[[int, int], dict[str, Any] | None], batches: list[int], budget_ms: float,
           max_points: int = MAX_POINTS, stop: Callable[[], bool] = lambda: False) -> Search:
    """A bounded search: per batch (smallest first), concurrency 1, 2, 4, ... until the p99 leaves the budget
    or doubling it gains less than 5 %; a batch whose concurrency 1 already misses the budget ends the search
    (a larger batch only takes longer). measure(batch, concurrency) -> a point (None: it failed)."""
    out = Search()
    for batch in batches:
        concurrency, before = 1, 0.0
        while len(out.tried) < max_points and not stop():
            point = measure(batch, concurrency)
            if point is None:
                break
            p99 = (point.get("latency_ms") or {}).get("p99")
            within = p99 is not None and p99 <= budget_ms and not point.get("errors")
            out.tried.append({**point, "within_budget": within})
            ips = float(point.get("images_per_s") or 0.0)
            if within and (out.best is None or ips > float(out.best.get("images_per_s") or 0.0)):
                out.best = point
            if not within:
                if concurrency == 1:
                    return out
                break
            if before and ips < before * SATURATED:
                break
            concurrency, before = concurrency * 2, ips
            if concurrency > 64:
                break
    return out


def usd_per_million(images_per_s: float, hourly: float | None) -> float | None:
    if hourly is None or not images_per_s > 0:
        return None
    return hourly / (images_per_s * 3600.0) * 1e6


def rank(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Cheapest $ per million images first; types with no point within the budget last."""
    return sorted(rows, key=lambda r: (r["usd_per_million_images"] is None, r["usd_per_million_images"] or 0.0))


def cluster_name(instance_type: str) -> str:
    return "rec-" + re.sub(r"[^a-z0-9]+", "-", instance_type.lower()).strip("-")


def run(types: list[str], budget_ms: float, *, model: str | None, limit: float, region: str | None,
        sandbox: bool, yes: bool, on_line: Callable[[str], None], confirm: Callable[[str], bool],
        out_dir: Path | None = None) -> dict[str, Any]:
    """The whole job; launches what is missing and tears down what it launched (also on Ctrl-C)."""
    from infprov.floor import paths
    from infprov.provision import bench as bench_mod
    from infprov.provision import benchplan, lifecycle, specs

    status = lifecycle.status(None, region, sandbox, None)
    region = status.region
    existing = {c.name for c in status.clusters
                if any(i.state in ("pending", "running", "stopping", "stopped") for i in c.instances)}
    missing = [t for t in types if cluster_name(t) not in existing]
    if missing:
        prices = {t: catalog.hourly_price(t, region) for t in missing}
        total = sum(p or 0.0 for p in prices.values())
        listed = ", ".join(f"{t} (${p:.3f}/h)" if p is not None else f"{t} (price unknown)" for t, p in prices.items())
        on_line(f"recommend launches {listed}: ${total:.3f}/h in all while it runs; it tears them down at the end")
        if not yes and not confirm("launch them?"):
            raise InfprovError("nothing launched", "run again with --yes, or launch the clusters yourself "
                               f"(`infprov up --name {cluster_name(missing[0])} --type {missing[0]}`)")
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    root = out_dir or paths.runs_dir() / f"recommend-{stamp}"
    root.mkdir(mode=0o700, parents=True, exist_ok=out_dir is not None)
    launched: list[str] = []
    rows: list[dict[str, Any]] = []
    teardowns: list[dict[str, Any]] = []
    with bench_mod.Interrupts(lambda _h, line: on_line(line)) as interrupts:
        try:
            for t in types:
                if interrupts.stop.is_set():
                    break
                name = cluster_name(t)
                if t in missing:
                    launched.append(name)
                on_line(f"{t}: {'launching' if t in missing else 'using'} cluster {name}")
                spec = specs.UpSpec(instance_type=t, name=name, count=1, region=region, yes=True, sandbox=sandbox)
                try:
                    outcome = lifecycle.up(spec)
                    err = outcome.error()
                except InfprovError as exc:  # this type's failure; the others are still measured
                    err = exc
                if err is not None:
                    on_line(f"{t}: {err.line()}")
                    rows.append(_row(t, region, None, Search(), err.line()))
                    continue
                host = outcome.cloud.hosts[0]
                rows.append(_measure_type(t, host, region, budget_ms, model, limit, root, interrupts, on_line,
                                          bench_mod, benchplan))
        finally:
            for name in launched:
                on_line(f"tearing down {name} (launched for this run)")
                down = lifecycle.teardown(name, False, region, sandbox, True, False, None)
                teardowns.append({"cluster": name, "instances": list(down.instances),
                                  "left": [f"{x.resource_type} {x.resource_id}" for x in down.leftovers]})
    doc = {"budget_p99_ms": budget_ms, "region": region, "sandbox": sandbox, "path": str(root),
           "interrupted": interrupts.stop.is_set(), "ranking": rank(rows), "teardown": teardowns,
           "note": ("on the sandbox every type shares the same CPU, so the throughput barely differs by type "
                    "and the ranking follows the price") if sandbox else ""}
    from infprov.provision import plots

    drawn = plots.plot_recommend(root / "recommend.png", doc)
    doc["plot"] = None if drawn is None else str(drawn.path)
    atomic_write(root / "recommend.json", json.dumps(doc, indent=2, default=str) + "\n")  # 0600
    return doc


def _row(t: str, region: str, best: dict[str, Any] | None, found: Search, error: str = "") -> dict[str, Any]:
    hourly = catalog.hourly_price(t, region)
    ips = float(best["images_per_s"]) if best else None
    return {"instance_type": t, "batch_size": best["batch_size"] if best else None,
            "concurrency": best["threads"] if best else None, "images_per_s": ips,
            "p99_ms": (best.get("latency_ms") or {}).get("p99") if best else None,
            "stable": best.get("stable") if best else None, "hourly_usd": hourly,
            "usd_per_million_images": usd_per_million(ips or 0.0, hourly),
            "points": [{"batch_size": p["batch_size"], "concurrency": p["threads"], "images_per_s": p["images_per_s"],
                        "p99_ms": (p.get("latency_ms") or {}).get("p99"), "within_budget": p["within_budget"]}
                       for p in found.tried],
            "error": error}


def _measure_type(t: str, host: Any, region: str, budget_ms: float, model: str | None, limit: float, root: Path,
                  interrupts: Any, on_line: Callable[[str], None], bench_mod: Any, benchplan: Any) -> dict[str, Any]:
    from infprov.floor import paths

    cores = host.neuron_cores or catalog.get(t).neuron_cores

    def measure(batch: int, concurrency: int) -> dict[str, Any] | None:
        plan = benchplan.plan(t, model=model, batch_size=batch or None, threads=concurrency, limit_s=limit,
                              neuron_cores=cores)
        # one point of the search: not indexed (the run list would fill with them); the search is in root
        run_dir = bench_mod.make_run_dir(str(root / t / f"b{batch or 'model'}-c{concurrency}"), t, index=False)
        shown_batch = batch or "(the model's own)"
        on_line(f"{t}: batch {shown_batch}, concurrency {concurrency}")
        [done] = bench_mod.run([host], plan, run_dir, lambda _h, _l: None, paths.known_hosts(),
                               interrupts=interrupts)
        bench_mod.write_fleet(run_dir, [done], False, plan=plan)
        if done.error or not done.points or done.points[-1].get("partial"):
            if done.error:
                on_line(f"{t}: {done.error}")
            return None
        p = done.points[-1]
        on_line(f"{t}: batch {p['batch_size']}, concurrency {p['threads']}: {p['images_per_s']:.1f} images/s, "
                f"p99 {(p.get('latency_ms') or {}).get('p99') or 0:.1f} ms")
        return p

    found = search(measure, batches_for(t, cores), budget_ms, stop=interrupts.stop.is_set)
    return _row(t, region, found.best, found, "" if found.tried else "no point could be measured")
