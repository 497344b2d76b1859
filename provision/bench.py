"""`infprov bench`: run the client (or perf_analyzer) in the SDK container on each host, bring results home."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import shlex
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provision import __version__, catalog
from provision.benchplan import BenchPlan, Point
from provision.errors import InfprovError

SDK_IMAGE = "nvcr.io/nvidia/tritonserver:22.04-py3-sdk"
SERVER_IMAGE = "nvcr.io/nvidia/tritonserver:22.04-py3"
PYTHON_BACKEND_REF = "r22.04"
REMOTE_DIR = "/home/ubuntu/infprov-bench"
CLIENT = Path(__file__).resolve().parents[1] / "client" / "triton-http-client.py"

Line = Callable[[str, str], None]  # (host, line)


@dataclass
class HostRun:
    host: str
    address: str
    points: list[dict[str, Any]]
    partial: bool = False
    error: str = ""


def run(hosts: list[Any], bench: BenchPlan, run_dir: Path, on_line: Line, known_hosts: Path) -> list[HostRun]:
    """Benchmark every host in parallel; a host that fails is reported and never stops the others."""
    stop = threading.Event()
    with ThreadPoolExecutor(max_workers=max(1, len(hosts))) as pool:
        futures = [pool.submit(_one_host, h, bench, run_dir, on_line, known_hosts, stop) for h in hosts]
        try:
            while not all(f.done() for f in futures):
                time.sleep(0.1)
        except KeyboardInterrupt:
            stop.set()
            on_line("-", "interrupted: stopping the clients and keeping what was measured")
        return [f.result() for f in futures]


def _one_host(host: Any, bench: BenchPlan, run_dir: Path, on_line: Line, known_hosts: Path,
              stop: threading.Event) -> HostRun:
    from playbooks.connection import SshConnection

    out = HostRun(host.name, host.address, [])
    hdir = run_dir / host.name
    hdir.mkdir(parents=True, exist_ok=True)
    conn = SshConnection(host, known_hosts)
    try:
        _check_ready(conn, host, bench.model)
        conn.run(f"mkdir -p {REMOTE_DIR}/{run_dir.name}")
        put = conn.run(f"cat > {REMOTE_DIR}/triton-http-client.py", stdin=CLIENT.read_bytes())
        if put.exit_code != 0:
            raise InfprovError(f"{host.address}: could not upload the client: {put.tail(3)}")
        price = catalog.hourly_price(host.instance_type, host.region) if host.instance_type else None
        for i, point in enumerate(bench.points):
            if stop.is_set():  # interrupted before this point began: nothing of it to keep
                out.partial = True
                break
            started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
            name = f"infprov-bench-{run_dir.name}-{i}"[:60]
            remote_json = f"{REMOTE_DIR}/{run_dir.name}/point-{i}.json"
            cmd = _client_command(bench, point, name, remote_json) if bench.tool == "client" else \
                _perf_analyzer_command(bench, point, name, f"{REMOTE_DIR}/{run_dir.name}/perf-{i}.csv")
            raw: list[str] = []

            def keep(line: str, raw: list[str] = raw) -> None:
                raw.append(line)
                on_line(host.address, line)

            code = conn.stream(cmd, keep, stop=stop, on_stop=f"docker kill --signal INT {name} >/dev/null 2>&1")
            (hdir / f"output-{i}.txt").write_text("\n".join(raw) + "\n")
            if bench.tool == "client":
                got = conn.run(f"cat {remote_json}")
                if got.exit_code != 0:
                    raise InfprovError(f"{host.address}: the client wrote no results (exit {code})",
                                       f"see {hdir / f'output-{i}.txt'}")
                from client import results as rs

                result = rs.results_from_client_json(got.out)
            else:
                got = conn.run(f"cat {REMOTE_DIR}/{run_dir.name}/perf-{i}.csv")
                if got.exit_code != 0:
                    raise InfprovError(f"{host.address}: perf_analyzer wrote no CSV (exit {code})",
                                       f"see {hdir / f'output-{i}.txt'}")
                (hdir / f"perf_analyzer-{i}.csv").write_text(got.out)
                result = perf_analyzer_results(got.out, "\n".join(raw), bench, point)
            from client import results as rs

            manifest = {"host": host.address, "instance_id": host.name, "instance_type": host.instance_type,
                        "region": host.region, "image": SDK_IMAGE, "server_image": SERVER_IMAGE,
                        "python_backend_ref": PYTHON_BACKEND_REF, "infprov_version": __version__,
                        "started_at": started, "tool": bench.tool}
            result = rs.with_cost(rs.with_manifest(result, manifest), price)
            out.points.append(result)
            if result.get("partial") or stop.is_set():
                out.partial = True
                result["partial"] = True
                break
            if code != 0 and not result.get("errors"):
                raise InfprovError(f"{host.address}: the benchmark exited {code}", f"see {hdir}")
    except InfprovError as exc:
        out.error = exc.line()
    except Exception as exc:  # one bad host must not hide the others' results
        out.error = f"{type(exc).__name__}: {exc}"
    finally:
        conn.close()
    if out.points:
        from client import results as rs

        rs.write_results(hdir, out.points if len(out.points) > 1 else out.points[0], check=False)
    return out


def _check_ready(conn: Any, host: Any, model: str) -> None:
    base = "http://127.0.0.1:8000"
    probe = conn.run(f"curl -s -o /dev/null -w '%{{http_code}}' {base}/v2/health/ready", timeout=20)
    if probe.out.strip() != "200":
        raise InfprovError(f"{host.address}: the Triton server is not ready (HTTP {probe.out.strip() or 'none'})",
                           "run `infprov up` to (re)start it, `infprov logs` to see why")
    model_probe = conn.run(f"curl -s -o /dev/null -w '%{{http_code}}' {base}/v2/models/{shlex.quote(model)}/ready",
                           timeout=20)
    if model_probe.out.strip() != "200":
        index = conn.run(f"curl -s -X POST {base}/v2/repository/index", timeout=20)
        try:
            names = sorted({m["name"] for m in json.loads(index.out)})
        except (ValueError, KeyError, TypeError):
            names = []
        raise InfprovError(f"{host.address}: model {model!r} is not loaded on the server",
                           f"the server has: {', '.join(names) or 'no models'}; pass --model")


def _client_command(bench: BenchPlan, point: Point, name: str, remote_json: str) -> str:
    client = f"{REMOTE_DIR}/triton-http-client.py"
    args = ["python3", client, "--model_name", bench.model, "--batch_size", str(point.batch_size), "--benchmark",
            "--limit", f"{bench.limit_s:g}", "--num_threads", str(point.threads), "--warmup", str(bench.warmup),
            "--url", "127.0.0.1:8000", "--json", remote_json, "--neuron_cores", str(bench.neuron_cores)]
    if bench.allow_small_batch:
        args.append("--allow_small_batch")
    return _docker(name, args)


def _perf_analyzer_command(bench: BenchPlan, point: Point, name: str, remote_csv: str) -> str:
    args = ["perf_analyzer", "-m", bench.model, "-b", str(point.batch_size), "-i", "http", "-u", "127.0.0.1:8000",
            "--concurrency-range", f"{point.threads}:{point.threads}",
            "--measurement-interval", str(int(max(1000, bench.limit_s * 1000 / 3))),
            # this machine class is noisy: 3 windows within 20 % of each other, looked for over up to 30 windows
            "--stability-percentage", "20", "--max-trials", "30",
            "--shape", "input:224,224,3", "-f", remote_csv]
    return _docker(name, args)


def _docker(name: str, args: list[str]) -> str:
    return (f"docker run --rm --name {name} --net host -v {REMOTE_DIR}:{REMOTE_DIR} {SDK_IMAGE} "
            + " ".join(shlex.quote(a) for a in args) + " 2>&1")


def perf_analyzer_results(text: str, output: str, bench: BenchPlan, point: Point) -> dict[str, Any]:
    """DESIGN.md's results fields from perf_analyzer's CSV (one concurrency row) and its printed summary.

    The CSV has no mean latency and no request count; both come from the printed summary.
    """
    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows:
        raise InfprovError("perf_analyzer's CSV has no rows")
    row = rows[-1]
    infer_s = float(row["Inferences/Second"])
    lat = {k: float(row[f"{k} latency"]) / 1000.0 for k in ("p50", "p90", "p95", "p99")}
    avg = re.findall(r"Avg latency: (\d+) usec", output)
    count = re.findall(r"Request count: (\d+)", output)
    mean = float(avg[-1]) / 1000.0 if avg else None
    return {
        "model": bench.model, "batch_size": point.batch_size, "threads": point.threads, "limit_s": bench.limit_s,
        "requests": int(count[-1]) if count else None, "images_per_s": infer_s,
        "requests_per_s": infer_s / point.batch_size,
        "latency_ms": {"p50": lat["p50"], "p75": None, "p90": lat["p90"], "p95": lat["p95"], "p99": lat["p99"],
                       "mean": mean},
        "per_thread": [], "errors": 0, "partial": False,
    }


def write_fleet(run_dir: Path, runs: list[HostRun], sweep: bool) -> dict[str, Any]:
    """The run's summary.json: every host's points and the fleet total; a sweep also gets its plot."""
    total = sum(float(r.points[-1].get("images_per_s") or 0) for r in runs if r.points and not sweep)
    doc = {
        "run": run_dir.name,
        "path": str(run_dir),
        "partial": any(r.partial for r in runs),
        "hosts": [{"host": r.address, "instance_id": r.host, "error": r.error, "partial": r.partial,
                   "points": r.points} for r in runs],
        "fleet_images_per_s": None if sweep else round(total, 3),
    }
    (run_dir / "summary.json").write_text(json.dumps(doc, indent=2, default=str) + "\n")
    if sweep:
        plot_sweep(run_dir, runs)
    return doc


def plot_sweep(run_dir: Path, runs: list[HostRun]) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    drawn = False
    for r in runs:
        pts = [(p["latency_ms"]["p99"], p["images_per_s"], f"b{p['batch_size']}/t{p['threads']}") for p in r.points
               if p.get("latency_ms", {}).get("p99") is not None]
        if not pts:
            continue
        drawn = True
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=r.address)
        for x, y, label in pts:
            ax.annotate(label, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xlabel("p99 latency (ms)")
    ax.set_ylabel("throughput (images/s)")
    ax.set_title("infprov bench sweep: throughput against p99 latency")
    ax.grid(True, alpha=0.3)
    ax.legend()
    path = run_dir / "sweep.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def list_runs(runs_dir: Path) -> list[dict[str, Any]]:
    out = []
    for d in sorted(runs_dir.glob("bench-*"), reverse=True):
        summary = d / "summary.json"
        if not summary.exists():
            continue
        doc = json.loads(summary.read_text())
        out.append({"run": d.name, "hosts": len(doc["hosts"]), "partial": doc.get("partial", False),
                    "fleet_images_per_s": doc.get("fleet_images_per_s"), "path": str(d)})
    return out


def load_run(runs_dir: Path, run_name: str) -> dict[str, Any]:
    path = Path(run_name)
    if not path.is_dir():
        path = runs_dir / run_name
    summary = path / "summary.json"
    if not summary.exists():
        known = ", ".join(r["run"] for r in list_runs(runs_dir)[:5]) or "none yet"
        raise InfprovError(f"no benchmark run {run_name!r}", f"recent runs: {known}")
    doc: dict[str, Any] = json.loads(summary.read_text())
    return doc
