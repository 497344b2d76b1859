"""The plots a performance engineer reads: throughput against p99, a line per batch size, the frontier, the best
point within the latency budget; several runs' frontiers in one plot; recommend's ranking."""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infprov.floor.files import atomic_write

# matplotlib is imported inside the functions that draw (a --json run or `results` never loads it).


@dataclass(frozen=True)
class Dot:
    """One measured point as a plot sees it."""

    p99_ms: float
    images_per_s: float
    batch_size: int
    concurrency: int
    host: str = ""
    errors: int = 0
    rate: float | None = None  # request-rate mode: the requests a second asked
    stable: bool | None = None  # whether its windows agreed (None: not known, e.g. an older run)

    @property
    def load(self) -> str:
        """How the point's label names its load: c2 (concurrency 2) or r100 (100 requests a second)."""
        return f"r{self.rate:g}" if self.rate is not None else f"c{self.concurrency}"


@dataclass
class Drawn:
    """What a plot holds, read back from its axes after drawing (the tests check this, not pixels)."""

    path: Path
    title: str
    lines: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # legend label -> (x, y) drawn
    labels: list[str] = field(default_factory=list)  # the point annotations, in drawing order
    best: tuple[float, float] | None = None
    budget_ms: float | None = None
    ylim: tuple[float, float] = (0.0, 0.0)


def dots(points: Iterable[Mapping[str, Any]], host: str = "") -> list[Dot]:
    """The points that can be placed: a p99 and a throughput both known (a failed point has neither)."""
    out: list[Dot] = []
    for p in points:
        p99 = (p.get("latency_ms") or {}).get("p99")
        ips = p.get("images_per_s")
        if p99 is None or ips is None:
            continue
        load = p.get("load") or {}
        rate = load.get("request_rate") if load.get("mode") == "rate" else None
        out.append(Dot(float(p99), float(ips), int(p.get("batch_size") or 0), int(p.get("threads") or 0),
                       host or str((p.get("manifest") or {}).get("host") or ""), int(p.get("errors") or 0),
                       None if rate is None else float(rate),
                       None if p.get("stable") is None else bool(p.get("stable"))))
    return out


def frontier(points: Sequence[Dot]) -> list[Dot]:
    """The points no other beats on both counts (lower or equal p99 and more images/s), by p99."""
    out: list[Dot] = []
    for d in sorted(points, key=lambda d: (d.p99_ms, -d.images_per_s)):
        if d.errors:
            continue
        if not out or d.images_per_s > out[-1].images_per_s:
            out.append(d)
    return out


def best_within(points: Sequence[Dot], budget_ms: float | None) -> Dot | None:
    """The most images/s among error-free points whose p99 is within the budget (any p99 when no budget)."""
    fit = [d for d in points if not d.errors and (budget_ms is None or d.p99_ms <= budget_ms)]
    return max(fit, key=lambda d: (d.images_per_s, -d.p99_ms), default=None)


def sweep_title(points: Sequence[Mapping[str, Any]]) -> str:
    """'inf1.6xlarge, client, rn50-16neuroncores-default, 2026-12-07': what the points share."""
    def shared(get: Any) -> str:
        seen = sorted({str(v) for v in (get(p) for p in points) if v})
        return "/".join(seen) if seen else "?"

    date = shared(lambda p: str((p.get("manifest") or {}).get("started_at") or "")[:10])
    return ", ".join((shared(lambda p: (p.get("manifest") or {}).get("instance_type")),
                      shared(lambda p: (p.get("manifest") or {}).get("tool")),
                      shared(lambda p: p.get("model")), date))


def plot_sweep(path: Path, hosts: Sequence[tuple[str, Sequence[Mapping[str, Any]]]],
               budget_ms: float | None = None) -> Drawn | None:
    """Throughput (y, from zero) against p99 (x): a line per batch size (and host, when there are several),
    joining its points by concurrency and labelled with it; the frontier; the budget; the best point within it.

    hosts: (address, points) per host. None when no point can be placed."""
    placed = [(addr, dots(pts, addr)) for addr, pts in hosts]
    every = [d for _, ds in placed for d in ds]
    if not every:
        return None
    several = len([1 for _, ds in placed if ds]) > 1
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    markers = "osD^v<>"
    for k, (addr, ds) in enumerate(p for p in placed if p[1]):
        for batch in sorted({d.batch_size for d in ds}):
            line = sorted((d for d in ds if d.batch_size == batch), key=lambda d: (d.rate or 0.0, d.concurrency))
            label = f"batch {batch}" + (f" ({addr})" if several else "")
            ax.plot([d.p99_ms for d in line], [d.images_per_s for d in line], marker=markers[k % len(markers)],
                    linestyle="-", label=label)
            for d in line:
                ax.annotate(d.load, (d.p99_ms, d.images_per_s), textcoords="offset points",
                            xytext=(5, -10), fontsize=8)
    shaky = [d for d in every if d.stable is False]
    if shaky:  # hollow rings over the points whose windows did not agree
        ax.plot([d.p99_ms for d in shaky], [d.images_per_s for d in shaky], marker="o", markersize=11,
                markerfacecolor="none", markeredgecolor="red", markeredgewidth=1.5, linestyle="none", zorder=6,
                label="unstable (its windows disagreed)")
    edge = frontier(every)
    if len(edge) > 1:
        # a wide pale band under the lines: it stays visible where it runs along a batch's line
        ax.plot([d.p99_ms for d in edge], [d.images_per_s for d in edge], linestyle="-", color="grey",
                linewidth=8, alpha=0.3, solid_capstyle="round", label="frontier", zorder=1)
    best = best_within(every, budget_ms)
    _mark_budget_and_best(ax, budget_ms, best, "best within budget" if budget_ms is not None else "most images/s")
    title = f"throughput against p99: {sweep_title([p for _, pts in hosts for p in pts])}"
    return _finish(plt, fig, ax, path, title, budget_ms, best)


def plot_compare(path: Path, runs: Sequence[tuple[str, Sequence[Mapping[str, Any]]]],
                 budget_ms: float | None = None) -> Drawn | None:
    """Each run's frontier (its best throughput at each p99) in one plot, with each run's best point within the
    budget. runs: (label, points) per run."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    drawn = False
    best_all: Dot | None = None
    for label, pts in runs:
        ds = dots(pts)
        edge = frontier(ds)
        if not edge:
            continue
        drawn = True
        what = ", ".join(sweep_title(pts).split(", ")[:2])  # its type and tool
        [line] = ax.plot([d.p99_ms for d in edge], [d.images_per_s for d in edge], marker="o",
                         label=f"{label} ({what})")
        for d in edge:
            ax.annotate(f"b{d.batch_size} {d.load}", (d.p99_ms, d.images_per_s), textcoords="offset points",
                        xytext=(5, -10), fontsize=8)
        best = best_within(ds, budget_ms)
        if best is not None:
            ax.plot([best.p99_ms], [best.images_per_s], marker="*", markersize=16, color=line.get_color(),
                    linestyle="none", zorder=5)
            if best_all is None or best.images_per_s > best_all.images_per_s:
                best_all = best
    if not drawn:
        plt.close(fig)
        return None
    _mark_budget_and_best(ax, budget_ms, None, "")
    star = "star: each run's best within the budget" if budget_ms is not None else "star: each run's most images/s"
    title = f"frontiers compared (best images/s at each p99; {star})"
    return _finish(plt, fig, ax, path, title, budget_ms, best_all)


def plot_recommend(path: Path, doc: Mapping[str, Any]) -> Drawn | None:
    """recommend's picture: every point tried per type (throughput against p99) with the budget and each type's
    pick, and beside it the $ per million images at the budget, cheapest first."""
    rows = list(doc.get("ranking") or [])
    budget = float(doc["budget_p99_ms"])
    tried = [(r, [p for p in r.get("points") or [] if p.get("p99_ms") is not None]) for r in rows]
    if not any(ps for _, ps in tried):
        return None
    plt = _pyplot()
    fig, (ax, bars) = plt.subplots(1, 2, figsize=(11, 4.8), gridspec_kw={"width_ratios": [3, 2]})
    for r, ps in tried:
        if not ps:
            continue
        by_batch: dict[Any, list[Mapping[str, Any]]] = {}
        for p in ps:
            by_batch.setdefault(p.get("batch_size"), []).append(p)
        for batch, line in by_batch.items():
            line = sorted(line, key=lambda p: int(p.get("concurrency") or 0))
            ax.plot([p["p99_ms"] for p in line], [p["images_per_s"] for p in line], marker="o",
                    label=f"{r['instance_type']} batch {batch}")
            for p in line:
                ax.annotate(f"c{p['concurrency']}", (p["p99_ms"], p["images_per_s"]), textcoords="offset points",
                            xytext=(5, -10), fontsize=8)
        if r.get("images_per_s") is not None:
            ax.plot([r["p99_ms"]], [r["images_per_s"]], marker="*", markersize=16, color="black", linestyle="none",
                    zorder=5)
    ax.axvline(budget, color="red", linestyle=":", label=f"p99 budget {budget:g} ms")
    ax.set_xlabel("p99 latency (ms)")
    ax.set_ylabel("throughput (images/s)")
    _from_zero(ax, budget)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="best")  # where it hides the fewest points
    ax.set_title("points tried (star: each type's pick)", fontsize=10)
    costs = [r.get("usd_per_million_images") for r in rows][::-1]  # rows come ranked: cheapest at the top
    bars.barh([r["instance_type"] for r in rows][::-1], [c or 0.0 for c in costs], color="tab:green")
    for y, (r, cost) in enumerate(zip(rows[::-1], costs, strict=True)):
        why = "no price" if r.get("images_per_s") is not None else "none within the budget"
        bars.annotate(f"${cost:.2f}" if cost is not None else why, (cost or 0.0, y), textcoords="offset points",
                      xytext=(4, -3), fontsize=9)
    bars.set_xlabel("$ per million images at the budget")
    bars.set_title("cheapest first (top)", fontsize=10)
    bars.set_xlim(left=0, right=max([c for c in costs if c is not None] or [1.0]) * 1.4)
    fig.suptitle(f"infprov recommend: p99 within {budget:g} ms" + (" (sandbox)" if doc.get("sandbox") else ""))
    best = next(((float(r["p99_ms"]), float(r["images_per_s"])) for r in rows if r.get("images_per_s") is not None),
                None)
    drawn = _read_back(ax, path, fig._suptitle.get_text() if fig._suptitle else "", budget)  # noqa: SLF001
    drawn.best = best
    _save(plt, fig, path)
    return drawn


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _from_zero(ax: Any, budget_ms: float | None) -> None:
    """Both axes from zero, with room above the highest point and right of the budget line."""
    xs = [float(x) for line in ax.get_lines() if not str(line.get_label()).startswith("p99 budget")
          for x in line.get_xdata()]
    ys = [float(y) for line in ax.get_lines() if not str(line.get_label()).startswith("p99 budget")
          for y in line.get_ydata()]
    ax.set_xlim(0, max([*xs, budget_ms or 0.0, 1e-3]) * 1.1)
    ax.set_ylim(0, max([*ys, 1e-3]) * 1.12)


def _mark_budget_and_best(ax: Any, budget_ms: float | None, best: Dot | None, what: str) -> None:
    if budget_ms is not None:
        ax.axvline(budget_ms, color="red", linestyle=":", label=f"p99 budget {budget_ms:g} ms")
    if best is not None:
        ax.plot([best.p99_ms], [best.images_per_s], marker="*", markersize=18, color="gold",
                markeredgecolor="black", linestyle="none", zorder=5,
                label=f"{what}: batch {best.batch_size}, {best.load}, {best.images_per_s:.4g} images/s")


def _finish(plt: Any, fig: Any, ax: Any, path: Path, title: str, budget_ms: float | None,
            best: Dot | None) -> Drawn:
    ax.set_xlabel("p99 latency (ms)")
    ax.set_ylabel("throughput (images/s)")
    _from_zero(ax, budget_ms)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="best")  # where it hides the fewest points
    ax.set_title(title, fontsize=10)
    drawn = _read_back(ax, path, title, budget_ms)
    drawn.best = None if best is None else (best.p99_ms, best.images_per_s)
    _save(plt, fig, path)
    return drawn


def _read_back(ax: Any, path: Path, title: str, budget_ms: float | None) -> Drawn:
    """What the axes hold: each labelled line's points and the annotations."""
    drawn = Drawn(path=path, title=title, budget_ms=budget_ms, ylim=tuple(ax.get_ylim()))
    for line in ax.get_lines():
        label = str(line.get_label())
        if label.startswith("_"):
            continue
        xs, ys = line.get_data()
        drawn.lines[label] = [(float(x), float(y)) for x, y in zip(xs, ys, strict=True)]
    drawn.labels = [t.get_text() for t in ax.texts]
    return drawn


def _save(plt: Any, fig: Any, path: Path) -> None:
    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=110)
    plt.close(fig)
    atomic_write(path, png.getvalue())
