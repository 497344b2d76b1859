"""`infprov bench`: run the client (or perf_analyzer) in the SDK container on each host, bring results home."""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
import itertools
import json
import math
import os
import re
import secrets
import shlex
import signal
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infprov.client import build as client_build
from infprov.client import results as rs
from infprov.floor import paths
from infprov.floor.errors import InfprovError, UsageError
from infprov.floor.files import atomic_write
from infprov.playbooks import report
from infprov.playbooks.connection import Connection
from infprov.playbooks.results import HostOutcome
from infprov.playbooks.templating import unsafe
from infprov.provision import __version__, catalog
from infprov.provision.benchplan import BenchPlan, Point

SDK_IMAGE = "nvcr.io/nvidia/tritonserver:22.04-py3-sdk"
SERVER_IMAGE = "nvcr.io/nvidia/tritonserver:22.04-py3"
PYTHON_BACKEND_REF = "r22.04"
# Inf2/Trn1 (playbooks/files/pins-neuronx.env); the client keeps the 22.04 SDK image: it speaks Triton's
# HTTP/REST v2 protocol, which the 24.04 server serves unchanged.
SERVER_IMAGE_V2 = "nvcr.io/nvidia/tritonserver:24.04-py3"
PYTHON_BACKEND_REF_V2 = "r24.04"
REMOTE_DIR = "/home/ubuntu/infprov-bench"
BOOK = "bench"  # playbooks/bench.yml

Line = Callable[[str, str], None]  # (host, line)
Progress = Callable[[dict[str, Any]], None]  # one progress event (see run())
RAW_LOG = "output.log"  # in the run folder: every line the hosts printed, as it came ("<address>: <line>")
# what the client prints as its measurement goes (client/tritonbench/load.py)
WINDOW_LINE = re.compile(r"Window (\d+): ([0-9.]+) images/s, p99 ([0-9.]+) ms")

# What may name things. A remote folder and container names come from a run id of [a-z0-9-] only (never
# from the local --out path); a host's results folder needs a plain file name; a model, Triton's rules.
RUN_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,59}")
SAFE_NAME = re.compile(r"[A-Za-z0-9._-]{1,128}")
MODEL_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
def shown(text: str, limit: int = 300) -> str:
    """A value fit to echo in a one-line message: control characters (newlines, escape sequences) become
    '?', and it is cut to `limit` characters."""
    text = printable(str(text))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def printable(line: str) -> str:
    """A line of a host's output fit for the terminal: no escape sequences or other control characters."""
    return report.printable(line, keep_newlines=False)


def served_model(hosts: list[Any], inventory: str | None) -> tuple[str, int]:
    """What `up --model` recorded for these hosts' cluster (the model's name, a text model's vocabulary size);
    ("", 0) for ResNet-50 or a cluster infprov did not record it for."""
    from infprov.inventory import store

    inv = store.load(paths.inventory_file(inventory))
    names, vocab = set(), 0
    for host in hosts:
        found = inv.find(host.name)
        got = inv.host_vars(found) if found is not None else {}
        names.add(str(got.get("infprov_served_model") or ""))
        value = got.get("infprov_model_vocab")
        vocab = max(vocab, value if isinstance(value, int) and not isinstance(value, bool) else 0)
    name = names.pop() if len(names) == 1 else ""
    return (name if name and MODEL_NAME.fullmatch(name) else ""), vocab


def check_input_data(path: str) -> None:
    """--input-data: a readable JSON file in perf_analyzer's form ({"data": [...]}), else a usage error."""
    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
    except (OSError, ValueError) as exc:
        raise UsageError(f"--input-data {shown(path, 120)}: cannot be read as JSON ({shown(str(exc), 120)})",
                         "give perf_analyzer's JSON input-data file: {\"data\": [{\"INPUT\": [...]}, ...]}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), list) or not doc["data"]:
        raise UsageError(f"--input-data {shown(path, 120)}: no \"data\" list of requests",
                         "give perf_analyzer's JSON input-data file: {\"data\": [{\"INPUT\": [...]}, ...]}")


def check_model(model: str) -> str:
    """The model name, if Triton could have a model of that name (letters, digits, _ . -); else a usage error."""
    if not MODEL_NAME.fullmatch(model):
        raise UsageError(f"--model {shown(model, 80)!r} is not a model name",
                         "Triton model names have letters, digits, '_', '.' and '-' (e.g. rn50-16neuroncores-default)")
    return model


def make_run_id(run_dir: Path) -> str:
    """The run's name on the hosts: the folder's name cut down to [a-z0-9-], plus a random suffix so two
    runs never share a remote folder or container names."""
    base = re.sub(r"[^a-z0-9-]+", "-", run_dir.name.lower()).strip("-")[:40].strip("-") or "run"
    return f"{base}-{secrets.token_hex(3)}"


def make_run_dir(out: str | None, label: str, *, index: bool = True) -> Path:
    """A fresh, private (0700) folder for one run: --out (new, or existing and empty), or
    INFPROV_HOME/runs/bench-<UTC time>-<label>. Never one that holds files already.

    index: note it in INFPROV_HOME's index of runs (benchruns.INDEX), so `infprov results` lists it wherever
    it is (an --out folder, a demo's run)."""
    if out:
        path = _out_dir(out)
    else:
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", label).strip("-.")[:60] or "run"
        path = _new_dir(paths.runs_dir() / f"bench-{stamp}-{safe}")
    if index:
        from infprov.provision import benchruns

        benchruns.index_run(path)
    return path


def _new_dir(base: Path) -> Path:
    path = base
    for n in itertools.count(2):
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:
            path = Path(f"{base}-{n}")
            continue
        os.chmod(path, 0o700)
        return path
    raise AssertionError("unreachable")


def _out_dir(out: str) -> Path:
    path = Path(out)
    where = shown(out, 120)
    try:
        if path.is_symlink() or path.exists():
            if not path.is_dir():
                raise UsageError(f"--out {where} is a file, not a folder", "give a new folder, or an empty one")
            if any(path.iterdir()):
                raise UsageError(f"--out {where} already holds files",
                                 "give a new folder, or an empty one: a run never writes over what is there")
            if not os.access(path, os.W_OK | os.X_OK):
                raise InfprovError(f"--out {where} is not writable", "give a folder you can write to")
            return path
        return rs.make_private_dir(path)
    except NotADirectoryError:
        raise UsageError(f"--out {where}: part of that path is a file, not a folder",
                         "give a new folder, or an empty one") from None
    except PermissionError:
        raise InfprovError(f"--out {where}: permission denied", "give a folder you can write to") from None
    except OSError as exc:
        raise InfprovError(f"--out {where}: {shown(exc.strerror or str(exc), 120)}",
                           "give a new folder, or an empty one") from None


def host_dir(run_dir: Path, name: str) -> Path:
    """The host's results folder, run_dir/<name>, made private; refused unless the name is a plain file name
    (letters, digits, '.', '_', '-'; not '.' or '..') and the folder is new and right inside run_dir."""
    if not isinstance(name, str) or name in (".", "..") or not SAFE_NAME.fullmatch(name):
        raise InfprovError(f"host name {shown(str(name), 80)!r} cannot name a results folder",
                           "host names are instance ids such as i-0123456789abcdef0: fix the inventory")
    root = run_dir.resolve()
    path = run_dir / name
    if path.resolve().parent != root:
        raise InfprovError(f"{shown(str(path), 120)} leads outside the run folder", "fix the inventory")
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        raise InfprovError(f"{shown(str(path), 120)} exists already",
                           "two hosts of one name in the inventory? bench them one --host at a time") from None
    os.chmod(path, 0o700)
    if path.resolve().parent != root or not path.is_dir() or path.is_symlink():
        raise InfprovError(f"{shown(str(path), 120)} leads outside the run folder", "fix the inventory")
    return path


@dataclass
class HostRun:
    """One host's part in a bench run: its points, and the fleet's shape (ok, error, output tail, time)."""

    host: str
    address: str
    points: list[dict[str, Any]]
    partial: bool = False
    error: str = ""
    tail: str = ""
    seconds: float = 0.0
    cluster: str = ""
    instance_type: str = ""

    def outcome(self) -> HostOutcome:
        return HostOutcome(host=self.host, ok=not self.error, changed=len(self.points), error=self.error,
                           tail=self.tail, seconds=round(self.seconds, 3))


class Interrupts:
    """Ctrl-C during a bench run, as a flag and never as an exception: the first SIGINT stops the clients
    (what was measured is kept), a later one says once that the results are being saved, and nothing that
    writes or shows them (summary.json, the table, the "saved in" line) is cut short by it.

    Used as a context manager in the main thread; elsewhere (no signals there) it is only the flag."""

    def __init__(self, on_line: Line | None = None) -> None:
        self.stop = threading.Event()
        self.count = 0
        self.on_line = on_line
        self._old: Any = None

    def __call__(self, _signum: int, _frame: Any) -> None:
        self.count += 1
        if self.count == 1:
            self.stop.set()
            if self.on_line:
                self.on_line("-", "Ctrl-C: stopping the clients; every finished point is kept")
        elif self.count == 2 and self.on_line:
            self.on_line("-", "Ctrl-C again: saving what was measured, a moment")

    def __enter__(self) -> Interrupts:
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self)
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
            self._old = None


def run(hosts: list[Any], bench: BenchPlan, run_dir: Path, on_line: Line, known_hosts: Path,
        run_id: str | None = None, *, connector: Callable[[Any], Connection] | None = None,
        remote_root: str | None = None, interrupts: Interrupts | None = None,
        on_progress: Progress | None = None) -> list[HostRun]:
    """Benchmark every host in parallel through the engine (playbooks/bench.yml); a host that fails is
    reported and never stops the others. Ctrl-C stops the clients and keeps what was measured.

    Each point is one pass of the playbook over the hosts still going, and what it measured comes home as
    the pass ends: the host's results.json and the run's summary.json (partial until the run ends) hold
    every finished point, so an interruption, or a crash of this process, loses only the point in flight.

    run_id names the run's folder and containers on the hosts ([a-z0-9-]; default: from run_dir's name).
    connector: how to reach a host (default SSH with the pinned keys in known_hosts).
    remote_root: the folder on the hosts that holds each run's folder (default REMOTE_DIR).
    interrupts: the caller's Ctrl-C flag (it keeps the saving after the run safe too); default: one of its own.
    on_progress: events as the run goes, each a dict with "event": "point" (index, of, batch_size, threads),
    "measuring" (host: its client's measurement began), "window" (host, window, images_per_s, p99_ms), "result"
    (host, index, status ok/partial/failed/skipped, and the point's figures or the error). Every line the hosts
    print also goes to the run folder's output.log as it comes.
    """
    check_model(bench.model)
    rid = run_id or make_run_id(run_dir)
    if not RUN_ID.fullmatch(rid):
        raise UsageError(f"run id {shown(rid, 80)!r} is not [a-z0-9-]", "leave it to infprov")
    runs: list[HostRun] = []
    ready: list[tuple[Any, HostRun, Path]] = []
    for h in hosts:
        out = HostRun(h.name, h.address, [], cluster=str(getattr(h, "cluster", "") or ""),
                      instance_type=str(getattr(h, "instance_type", "") or ""))
        runs.append(out)
        try:
            ready.append((h, out, host_dir(run_dir, h.name)))
        except InfprovError as exc:  # nothing of this host is written anywhere
            out.error = exc.line()
    if not ready:
        return runs

    def saved() -> None:  # after each pass: every finished point is on disk here
        for _, out, hdir in ready:
            if out.points:
                rs.write_results(hdir, out.points if len(out.points) > 1 else out.points[0], check=False)
        write_fleet(run_dir, runs, bench.is_sweep, running=True, plan=bench)

    guard = interrupts or Interrupts(on_line)
    progress = on_progress or (lambda _event: None)
    with tempfile.TemporaryDirectory(prefix="infprov-bench-") as tmp, \
            (contextlib.nullcontext(guard) if interrupts else guard), _RawLog(run_dir / RAW_LOG) as log:
        def raw(host: str, line: str) -> None:
            log.write(host, line)
            if host != "-":
                _line_event(host, line, progress)
            on_line(host, line)

        _run_fleet(ready, bench, rid, raw, known_hosts, connector, remote_root or REMOTE_DIR, Path(tmp),
                   guard, saved, progress)
    return runs


class _RawLog:
    """output.log: each host line as it streams in (private, appended; engine threads write it concurrently)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.fd = -1

    def __enter__(self) -> _RawLog:
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.fchmod(self.fd, 0o600)
        return self

    def write(self, host: str, line: str) -> None:
        with self.lock:
            os.write(self.fd, f"{host}: {line}\n".encode("utf-8", errors="replace"))

    def __exit__(self, *_exc: object) -> None:
        os.close(self.fd)


def _line_event(host: str, line: str, progress: Progress) -> None:
    """The client's lines that mark its progress, as events: its measurement began, a window ended."""
    if line.startswith("Measuring in windows") or line.startswith("Measuring for "):
        progress({"event": "measuring", "host": host})
        return
    m = WINDOW_LINE.match(line)
    if m:
        progress({"event": "window", "host": host, "window": int(m[1]), "images_per_s": float(m[2]),
                  "p99_ms": float(m[3])})


def result_event(out: HostRun, index: int, before: int) -> dict[str, Any]:
    """What point `index` came to on one host (its points numbered `before` until it ran)."""
    event: dict[str, Any] = {"event": "result", "host": out.address, "index": index}
    if len(out.points) > before:
        p = out.points[-1]
        event.update(status="partial" if p.get("partial") else "ok", batch_size=p.get("batch_size"),
                     threads=p.get("threads"), images_per_s=p.get("images_per_s"),
                     p99_ms=(p.get("latency_ms") or {}).get("p99"), errors=p.get("errors") or 0,
                     stable=p.get("stable"), spread_pct=p.get("spread_pct"),
                     host_cpu_busy_pct=(p.get("host_load") or {}).get("cpu_busy_pct"))
    else:
        event["status"] = "partial" if out.partial and not out.error else "failed"
    if out.error:
        event["error"] = out.error
    return event


@dataclass
class _HostPlan:
    host: Any
    out: HostRun
    hdir: Path
    points: list[Point]
    config: ModelConfig
    items: list[dict[str, Any]]


def _run_fleet(ready: list[tuple[Any, HostRun, Path]], bench: BenchPlan, rid: str, on_line: Line,
               known_hosts: Path, connector: Callable[[Any], Connection] | None, remote_root: str,
               tmp: Path, guard: Interrupts, saved: Callable[[], None], progress: Progress) -> None:
    from infprov.inventory.model import Host, Inventory

    inv = Inventory(hosts=tuple(
        h if isinstance(h, Host) else
        Host(name=h.name, address=h.address, user=getattr(h, "user", "ubuntu"), key_file=getattr(h, "key_file", None),
             port=getattr(h, "port", 22)) for h, _, _ in ready))
    engine: dict[str, Any] = {"known_hosts": known_hosts, "connector": connector, "runs_dir": paths.runs_dir()}
    stop = guard.stop
    probe = _pass(guard, dict(playbook=BOOK, inventory=inv, extra_vars=unsafe({"bench_model": bench.model}),
                              tags=["probe"], **engine))
    if probe is None:  # Ctrl-C pressed three times: nothing to keep yet
        for _, out, _ in ready:
            out.partial = True
        return
    remote = f"{remote_root}/{rid}"
    todo: list[_HostPlan] = []
    for h, out, hdir in ready:
        try:
            config = _probed_config(probe, h, bench.model)
            # the batch, tensor names and layout follow the served model (a batch of 0: the model's own)
            points = [Point(config.batch_for(p.batch_size), p.threads, p.rate) for p in bench.points]
            for point in points:
                check_batch(config, point.batch_size, h.address)
        except InfprovError as exc:
            out.error = exc.line()
            continue
        splits = _splits_batch(h)
        incoming = tmp / h.name
        incoming.mkdir(mode=0o700)
        client = f"{remote}/{client_build.NAME}"
        data_remote = None
        if bench.input_data or not config.image_model:
            # any other model gets valid requests from a data file (perf_analyzer's format, read by both tools)
            local = incoming / "input-data.json"
            if bench.input_data:
                atomic_write(local, Path(bench.input_data).read_text(encoding="utf-8"))
            else:
                atomic_write(local, json.dumps(input_data(config, points[0].batch_size, bench.vocab or DEFAULT_VOCAB)))
            data_remote = f"{remote}/input-data.json"
        items = []
        for i, point in enumerate(points):
            name = f"infprov-bench-{rid}-{i}"
            result = f"{remote}/point-{i}.json" if bench.tool == "client" else f"{remote}/perf-{i}.csv"
            cmd = _client_command(bench, point, name, result, client, config, splits, remote_root, data_remote) \
                if bench.tool == "client" else \
                _perf_analyzer_command(bench, point, name, result, config, remote_root, data_remote)
            items.append({"index": i, "batch_size": point.batch_size, "threads": point.threads, "command": cmd,
                          "kill": _kill_command(name), "result": result, "fetch_to": str(incoming / f"point-{i}"),
                          "input_data": data_remote or "", "input_data_src": str(incoming / "input-data.json")})
        todo.append(_HostPlan(h, out, hdir, points, config, items))
    if not todo:
        return
    zipapp = tmp / client_build.NAME
    atomic_write(zipapp, client_build.zipapp_bytes())
    address = {h.name: h.address for h, _, _ in ready}

    def on_event(event: Any) -> None:
        if event.kind == "output":
            on_line(address.get(event.host, event.host), event.line)

    total = max(len(t.points) for t in todo)
    for i in range(total):
        going = [t for t in todo if i < len(t.points) and not t.out.error and not t.out.partial]
        if not going:
            break
        if stop.is_set():
            for t in going:
                t.out.partial = True
            break
        first = going[0].points[i]
        same = all(t.points[i] == first for t in going)
        on_line("-", f"point {i + 1}/{total}: {first.describe()}" if same else f"point {i + 1}/{total}")
        progress({"event": "point", "index": i + 1, "of": total, "hosts": len(going),
                  "batch_size": first.batch_size if same else None, "threads": first.threads if same else None,
                  "request_rate": first.rate if same else None})
        plans = {t.host.name: {"remote_dir": remote, "client": f"{remote}/{client_build.NAME}",
                               "points": [t.items[i]]} for t in going}
        result = _pass(guard, dict(playbook=BOOK, inventory=inv, limit=sorted(plans), tags=["run"], stop=stop,
                                   on_event=on_event, extra_vars=unsafe({"bench_hosts": plans,
                                                                         "bench_client": str(zipapp),
                                                                         "bench_tool": bench.tool}),
                                   **engine))
        if result is None:  # given up on: the point in flight is lost, the finished ones are kept
            for t in going:
                t.out.partial = True
            break
        for t in going:
            before = len(t.out.points)
            _collect(result, t.host, t.out, t.hdir, i, t.points[i], t.config, t.items[i], bench, remote,
                     stop.is_set())
            progress(result_event(t.out, i + 1, before))
        saved()


def _pass(guard: Interrupts, kwargs: dict[str, Any]) -> Any:
    """One pass of the playbook, run in a worker so that Ctrl-C only sets the stop flag while this thread
    waits (not Thread.join: a join that a signal interrupts can report a live thread as ended). A third
    Ctrl-C gives up waiting (None)."""
    from infprov.playbooks.runner import run_playbook

    finished = threading.Event()
    done: dict[str, Any] = {}

    def go() -> None:
        try:
            done["result"] = run_playbook(kwargs.pop("playbook"), kwargs.pop("inventory"), **kwargs)
        except BaseException as exc:  # handed to the waiting thread
            done["error"] = exc
        finally:
            finished.set()

    threading.Thread(target=go, name="infprov-bench", daemon=True).start()
    while not finished.wait(0.1):
        if guard.count >= 3:
            return None
    if "error" in done:
        raise done["error"]
    return done["result"]


def _splits_batch(host: Any) -> bool:
    """Whether the host's model splits every batch across its NeuronCores (Inf1; an unknown type: as Inf1)."""
    return catalog.get(host.instance_type).splits_batch if host.instance_type in catalog.TYPES else True


def _probed_config(probe: Any, host: Any, model: str) -> ModelConfig:
    """What the probe pass learnt of a host's server, or why it cannot be benchmarked."""
    seen = probe.outcome(host.name)
    if not seen.ok:
        raise InfprovError(f"{host.address}: {seen.error}", "check the host with `infprov status`")
    reg = probe.registered.get(host.name, {})

    def said(name: str) -> str:
        return str((reg.get(name) or {}).get("stdout", "")).strip()

    if said("bench_health") != "200":
        code = shown(said("bench_health"), 40) or "none"
        raise InfprovError(f"{host.address}: the Triton server is not ready (HTTP {code})",
                           "run `infprov up` to (re)start it, `infprov logs` to see why")
    if said("bench_model_ready") != "200":
        try:
            names = sorted({str(m["name"]) for m in json.loads(said("bench_index"))})
        except (ValueError, KeyError, TypeError):
            names = []
        raise InfprovError(f"{host.address}: model {model!r} is not loaded on the server",
                           f"the server has: {shown(', '.join(names)) or 'no models'}; pass --model")
    text = said("bench_config")
    try:
        return ModelConfig.parse(text)
    except (ValueError, KeyError, TypeError, IndexError):
        raise InfprovError(f"{host.address}: the server's config of model {model!r} cannot be read "
                           f"({shown(text, 120)})", "check the server with `infprov logs`") from None


def _collect(result: Any, host: Any, out: HostRun, hdir: Path, i: int, point: Point, config: ModelConfig,
             item: dict[str, Any], bench: BenchPlan, remote: str, stopped: bool) -> None:
    """Turn what one pass did on one host into point i's results: its output, numbers and manifest."""
    seen = result.outcome(host.name)
    out.seconds += seen.seconds
    out.tail = seen.tail
    price = catalog.hourly_price(host.instance_type, host.region) if host.instance_type else None
    splits = _splits_batch(host)
    ran = (result.registered.get(host.name, {}).get("bench_points") or {}).get("results") or []
    got = ran[0] if ran else None
    if got is None or got.get("skipped"):
        out.partial = out.partial or stopped
        if not out.partial and not seen.ok:
            out.error = f"{host.address}: {seen.error}"
        return
    raw = [str(line) for line in got.get("stdout_lines") or []]
    code = got.get("rc")
    atomic_write(hdir / f"output-{i}.txt", "\n".join(raw) + "\n")
    fetched = Path(item["fetch_to"])
    text = fetched.read_text(encoding="utf-8", errors="replace") if fetched.is_file() else None
    if text is None:
        if stopped or got.get("stopped"):  # stopped before the client wrote anything: nothing measured
            out.partial = True
            return
        what = "the client wrote no results" if bench.tool == "client" else "perf_analyzer wrote no CSV"
        hint = f"see {hdir / f'output-{i}.txt'}"
        if bench.tool != "client" and any(line.lstrip().startswith(PA_UNSTABLE) for line in raw):
            what = "perf_analyzer found no stable measurement (no 3 windows in a row agreed) and wrote no CSV"
            hint = (f"give a longer --limit (its windows are --limit/3 long), or --tool client, which keeps an "
                    f"unstable point and marks it; {hint}")
        out.error = InfprovError(f"{host.address}: {what} (exit {code})", hint).line()
        return
    if bench.tool != "client":
        atomic_write(hdir / f"perf_analyzer-{i}.csv", text)
    try:  # what a host sent: a malformed result is that host's error, never the fleet's
        if bench.tool == "client":
            data = rs.results_from_client_json(text)
        else:
            data = perf_analyzer_results(text, "\n".join(raw), bench, point, config)
        _check_numbers(data)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, InfprovError) as exc:
        why = exc.message if isinstance(exc, InfprovError) else f"{type(exc).__name__}: {exc}"
        out.error = InfprovError(f"{host.address}: point {i + 1}'s results cannot be read ({shown(why, 160)})",
                                 f"see {hdir / f'output-{i}.txt'}").line()
        return
    manifest = {"host": host.address, "instance_id": host.name, "instance_type": host.instance_type,
                "region": host.region, "image": SDK_IMAGE,
                "server_image": SERVER_IMAGE if splits else SERVER_IMAGE_V2,
                "python_backend_ref": PYTHON_BACKEND_REF if splits else PYTHON_BACKEND_REF_V2,
                "infprov_version": __version__,
                "started_at": got.get("start", ""), "tool": bench.tool, "remote_dir": remote,
                "input": config.input_name, "output": config.output_name, "layout": config.layout,
                "datatype": config.datatype, "unit": config.unit,
                "input_data": bench.input_data or ("generated" if not config.image_model else None)}
    data = rs.with_cost(rs.with_manifest(data, manifest), price)
    if data.get("partial") or got.get("stopped"):
        out.partial = True
        data["partial"] = True
        if data.get("requests"):  # stopped before it measured anything (e.g. in its warm-up): left out
            out.points.append(data)
        return
    out.points.append(data)
    if code != 0 and not data.get("errors"):
        out.error = InfprovError(f"{host.address}: the benchmark exited {code}", f"see {hdir}").line()
        return
    if not seen.ok:
        out.error = f"{host.address}: {seen.error}"


def _check_numbers(data: Any) -> None:
    """The numbers a summary carries are finite numbers (a host's NaN or text would make the run unreadable)."""
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")

    def finite(value: Any, what: str, optional: bool = False) -> None:
        if value is None and optional:
            return
        if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
            raise ValueError(f"{what} is {shown(repr(value), 40)}, not a finite number")

    for key in ("images_per_s", "requests_per_s", "batch_size", "threads"):
        finite(data.get(key), key)
    latency = data.get("latency_ms")
    if not isinstance(latency, dict):
        raise ValueError("latency_ms is not a mapping")
    for key, value in latency.items():
        finite(value, f"latency {key}", optional=True)


@dataclass(frozen=True)
class ModelConfig:
    """What bench needs of the config the server reports at /v2/models/M/config."""

    max_batch_size: int
    input_name: str
    dims: tuple[int, ...]  # without the batch axis when max_batch_size > 0, as Triton writes them
    output_name: str = "output"
    datatype: str = "FP32"
    # every input (name, data type, dims), for models other than one image input (infprov up --model)
    inputs: tuple[tuple[str, str, tuple[int, ...]], ...] = ()

    @classmethod
    def parse(cls, text: str) -> ModelConfig:
        doc = json.loads(text)
        first = doc["input"][0]
        dims = tuple(int(d) for d in first["dims"])
        outputs = doc.get("output") or [{}]
        dtype = str(first.get("data_type", "TYPE_FP32")).removeprefix("TYPE_")
        inputs = tuple((str(i["name"]), str(i.get("data_type", "TYPE_FP32")).removeprefix("TYPE_"),
                        tuple(int(d) for d in i["dims"])) for i in doc["input"])
        return cls(int(doc.get("max_batch_size") or 0), str(first["name"]), dims,
                   str(outputs[0].get("name", "output")), dtype, inputs)

    @property
    def image_model(self) -> bool:
        """One FP32 input of image dimensions (H,W,3 or 3,H,W per item): what the random-image path sends."""
        if len(self.inputs) > 1 or self.datatype != "FP32":
            return False
        item = self.dims if self.max_batch_size > 0 or len(self.dims) == 3 else self.dims[1:]
        return len(item) == 3 and 3 in (item[0], item[-1])

    @property
    def unit(self) -> str:
        """What one batch element is: images, or sequences for a text model (token ids)."""
        if self.image_model:
            return "images"
        return "sequences" if any(_token_ids(n, t) for n, t, _ in self.inputs) else "inferences"

    @property
    def fixed_batch(self) -> int | None:
        """The batch a model of fixed shape takes (max_batch_size 0, a leading dimension > 0), else None."""
        if self.max_batch_size == 0 and len(self.dims) >= 2 and self.dims[0] > 0 and (
                len(self.dims) == 4 or not self.image_model):
            return self.dims[0]
        return None

    @property
    def layout(self) -> str:
        """NCHW (the traced torch model), NHWC (Inf1's TF model) or '?' from the image dimensions."""
        image = self.dims[-3:]
        if len(image) == 3 and image[0] == 3:
            return "NCHW"
        if len(image) == 3 and image[-1] == 3:
            return "NHWC"
        return "?"

    def batch_for(self, asked: int) -> int:
        """The batch to send: the model's own when its shape fixes it and none was asked (0)."""
        return asked or self.fixed_batch or 1

    def shape_for(self, batch: int) -> tuple[int, tuple[int, ...]]:
        """perf_analyzer's -b and --shape for `batch` images: a batching model takes -b; one that does
        not (max_batch_size 0) takes batch 1 with the images in its own leading -1 dimension."""
        if self.max_batch_size > 0:
            return batch, self.dims
        if not self.dims or self.dims[0] != -1:
            return 1, self.dims  # a fixed shape: the images are in it already
        return 1, (batch, *self.dims[1:])


# token ids when the cluster's record has no vocabulary size (a model served before infprov recorded it)
DEFAULT_VOCAB = 1000


def _token_ids(name: str, datatype: str) -> bool:
    return datatype.startswith(("INT", "UINT")) and "input_ids" in name


def input_data(config: ModelConfig, batch: int, vocab: int, seed: int = 0) -> dict[str, Any]:
    """Valid requests for a model's inputs in perf_analyzer's JSON input-data format (both tools read it):
    token ids within the vocabulary, attention masks of ones, FP32 images in [0, 1), zeros otherwise. A
    batching model gets one entry per batch element; one of fixed shape, one entry of the whole tensor."""
    import numpy as np

    rng = np.random.default_rng(seed)
    count = batch if config.max_batch_size > 0 else 1
    entries = []
    for _ in range(count):
        entry: dict[str, Any] = {}
        for name, dtype, dims in config.inputs:
            size = 1
            for d in dims:
                size *= max(d, 1)
            if _token_ids(name, dtype):
                values = rng.integers(0, max(vocab, 1), size).tolist()
            elif "mask" in name and dtype.startswith(("INT", "UINT", "BOOL")):
                values = [1] * size
            elif dtype.startswith("FP"):
                values = [round(float(v), 4) for v in rng.random(size)] if len(dims) >= 3 else [0.0] * size
            elif dtype == "BOOL":
                values = [False] * size
            else:
                values = [0] * size
            entry[name] = {"content": values, "shape": list(dims)}
        entries.append(entry)
    return {"data": entries}


def check_batch(config: ModelConfig, batch: int, where: str) -> None:
    if config.fixed_batch is not None:
        if batch != config.fixed_batch:
            raise UsageError(f"{where}: the model takes exactly {config.fixed_batch} images per request "
                             f"(input dims {list(config.dims)}), not {batch}",
                             f"give --batch-size {config.fixed_batch}, or leave it out")
        return
    if config.max_batch_size > 0 and batch > config.max_batch_size:
        raise UsageError(f"{where}: batch size {batch} is above the model's max_batch_size {config.max_batch_size}",
                         f"give --batch-size {config.max_batch_size} or less")
    if config.max_batch_size == 0 and batch > 1 and (not config.dims or config.dims[0] != -1):
        raise UsageError(f"{where}: the model takes no batches (max_batch_size 0, input dims {list(config.dims)})",
                         "give --batch-size 1")


def _client_command(bench: BenchPlan, point: Point, name: str, remote_json: str,
                    client: str = f"{REMOTE_DIR}/{client_build.NAME}", config: ModelConfig | None = None,
                    splits_batch: bool = True, remote_root: str = REMOTE_DIR, data: str | None = None) -> str:
    """The client's flags; tensor names from the served config, and the NeuronCore check only where the
    model splits every batch across its cores (Inf1)."""
    config = config or ModelConfig(64, "input", (224, 224, 3))
    args = ["python3", client, "--model_name", check_model(bench.model), "--batch_size", str(point.batch_size),
            "--benchmark", "--limit", f"{bench.limit_s:g}", "--num_threads", str(point.threads),
            "--warmup", str(bench.warmup), "--url", "127.0.0.1:8000", "--json", remote_json,
            "--input_name", config.input_name, "--output_name", config.output_name,
            "--neuron_cores", str(bench.neuron_cores if splits_batch else 0)]
    if bench.allow_small_batch:
        args.append("--allow_small_batch")
    if point.rate is not None:
        args += ["--request_rate", f"{point.rate:g}"]
    if data:
        args += ["--input_data", data]
    return _docker(name, args, remote_root)


def _perf_analyzer_command(bench: BenchPlan, point: Point, name: str, remote_csv: str,
                           config: ModelConfig | None = None, remote_root: str = REMOTE_DIR,
                           data: str | None = None) -> str:
    """perf_analyzer's flags follow the served config. Checked against perf_analyzer at r22.04
    (triton-inference-server/client, src/c++/perf_analyzer): perf_analyzer.cc refuses -b > 1 for a model
    with max_batch_size 0; model_parser.cc drops the batch dimension from the metadata's shape only when
    max_batch_size > 0, and --shape then replaces the whole shape of an input with a -1 dimension."""
    config = config or ModelConfig(64, "input", (224, 224, 3))
    b, shape = config.shape_for(point.batch_size)
    if point.rate is None:
        load = ["--concurrency-range", f"{point.threads}:{point.threads}"]
    else:  # one request rate, evenly spaced as the client's constant default, kept by up to --threads threads
        load = ["--request-rate-range", f"{point.rate:g}:{point.rate:g}", "--request-distribution", "constant",
                "--max-threads", str(point.threads)]
    args = ["perf_analyzer", "-m", check_model(bench.model), "-b", str(b), "-i", "http",
            "-u", "127.0.0.1:8000", *load,
            "--measurement-interval", str(int(max(1000, bench.limit_s * 1000 / 3))),
            # this machine class is noisy: 3 windows within 20 % of each other, looked for over up to 30 windows
            "--stability-percentage", "20", "--max-trials", "30",
            "-f", remote_csv]
    if data:
        args += ["--input-data", data]  # the tensors' shapes are in the file and the config
    else:
        args += ["--shape", f"{config.input_name}:{','.join(str(d) for d in shape)}"]
    return _docker(name, args, remote_root)


def _docker(name: str, args: list[str], remote_root: str = REMOTE_DIR) -> str:
    """`docker run` of the SDK image, every word quoted; stderr joins stdout so one stream carries both."""
    return shlex.join(["docker", "run", "--rm", "--name", name, "--net", "host",
                       "-v", f"{remote_root}:{remote_root}", SDK_IMAGE, *args]) + " 2>&1"


def _kill_command(name: str) -> str:
    return shlex.join(["docker", "kill", "--signal", "INT", name]) + " >/dev/null 2>&1"


# What infprov reads of perf_analyzer's CSV (-f) and how it turns its count into images: perf_analyzer
# r22.04 as recorded in sandbox/upstream/perf-analyzer-r22.04.json (tests/unit/test_perf_analyzer_counting.py ties
# these to it).
PA_THROUGHPUT = "Inferences/Second"  # valid requests x max(-b, 1) / the window's length
PA_LATENCY = {"p50": "p50 latency", "p90": "p90 latency", "p95": "p95 latency", "p99": "p99 latency"}  # in us
PA_UNSTABLE = "Failed to obtain stable measurement"  # its line when no 3 windows in a row agreed (then exit, no CSV)


def perf_analyzer_rates(inferences_per_s: float, batch_flag: int, images_per_request: int) -> tuple[float, float]:
    """(images/s, requests/s) from perf_analyzer's inferences/s. perf_analyzer counts each request as -b
    inferences (at least 1), whatever the request's tensor holds; a request carries images_per_request images
    (-b of them for a batching model, its leading dimension for one with max_batch_size 0, e.g. Inf2's 8)."""
    requests_per_s = inferences_per_s / max(batch_flag, 1)
    return requests_per_s * images_per_request, requests_per_s


def perf_analyzer_results(text: str, output: str, bench: BenchPlan, point: Point,
                          config: ModelConfig) -> dict[str, Any]:
    """DESIGN.md's results fields from perf_analyzer's CSV (one concurrency row) and its printed summary.

    The CSV has no mean latency and no request count; both come from the printed summary. images/s and
    requests/s count as the client does: point.batch_size images per request, in -b or in the shape.
    """
    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows:
        raise InfprovError("perf_analyzer's CSV has no rows")
    row = rows[-1]
    missing = [c for c in (PA_THROUGHPUT, *PA_LATENCY.values()) if c not in row]
    if missing:
        raise InfprovError(f"perf_analyzer's CSV has no column {shown(', '.join(missing), 120)}",
                           "is the SDK image's perf_analyzer the 22.04 one? see the CSV kept beside the results")
    batch_flag, _ = config.shape_for(point.batch_size)
    images_s, requests_s = perf_analyzer_rates(float(row[PA_THROUGHPUT]), batch_flag, point.batch_size)
    lat = {k: float(row[col]) / 1000.0 for k, col in PA_LATENCY.items()}
    avg = re.findall(r"Avg latency: (\d+) usec", output)
    count = re.findall(r"Request count: (\d+)", output)
    mean = float(avg[-1]) / 1000.0 if avg else None
    if point.rate is None:
        load: dict[str, Any] = {"mode": "concurrency", "concurrency": point.threads}
    else:  # behind as the client says it: requests missed their schedule, or the rate answered fell 10 % short
        delayed = re.findall(r"Delayed Request Count: (\d+)", output)
        late = int(delayed[-1]) if delayed else 0
        load = {"mode": "rate", "request_rate": point.rate, "distribution": "constant", "connections": point.threads,
                "send_delay_p99_ms": None, "delayed_requests": late,
                "behind": bool(late or requests_s < 0.9 * point.rate)}
    return {
        "model": bench.model, "batch_size": point.batch_size, "threads": point.threads, "limit_s": bench.limit_s,
        "requests": int(count[-1]) if count else None, "images_per_s": images_s, "requests_per_s": requests_s,
        "latency_ms": {"p50": lat["p50"], "p75": None, "p90": lat["p90"], "p95": lat["p95"], "p99": lat["p99"],
                       "mean": mean},
        "per_thread": [], "errors": 0, "partial": False,
        # perf_analyzer's own stability check (--stability-percentage, --max-trials)
        "stable": "Failed to obtain stable measurement" not in output,
        "load": load,
    }


def write_fleet(run_dir: Path, runs: list[HostRun], sweep: bool, running: bool = False,
                budget_ms: float | None = None, plan: BenchPlan | None = None) -> dict[str, Any]:
    """The run's summary.json: every host's points and the fleet total; a sweep also gets its plot.

    running: written while the run goes on (after each point): partial, and no plot yet.
    budget_ms: the p99 budget given (--p99): kept in the summary, drawn in the plot with the best point within it.
    plan: what was asked (tool, model, points planned), for the run list."""
    total = sum(float(r.points[-1].get("images_per_s") or 0) for r in runs if r.points and not sweep)
    started = sorted(str((p.get("manifest") or {}).get("started_at") or "") for r in runs for p in r.points)

    def one(values: set[str]) -> str | None:
        values.discard("")
        return "/".join(sorted(values)) if values else None

    doc = {
        "run": run_dir.name,
        "path": str(run_dir),
        "partial": running or any(r.partial for r in runs),
        "running": running,
        "budget_p99_ms": budget_ms,
        "started_at": next((t for t in started if t), None),
        "cluster": one({r.cluster for r in runs}),
        "instance_type": one({r.instance_type for r in runs}),
        "tool": plan.tool if plan else one({str((p.get("manifest") or {}).get("tool") or "") for r in runs
                                            for p in r.points}),
        "model": plan.model if plan else None,
        "points_planned": len(plan.points) * len(runs) if plan else None,
        "hosts": [{"host": r.address, "instance_id": r.host, "error": r.error, "partial": r.partial,
                   "points": r.points} for r in runs],
        "fleet_images_per_s": None if sweep or not any(r.points for r in runs) else round(total, 3),
    }
    if sweep and not running:
        plot = plot_sweep(run_dir, runs, budget_ms)
        doc["plot"] = None if plot is None else str(plot)
    atomic_write(run_dir / "summary.json", json.dumps(doc, indent=2, default=str) + "\n")
    return doc


def plot_sweep(run_dir: Path, runs: list[HostRun], budget_ms: float | None = None) -> Path | None:
    """sweep.png in the run folder (see plots.plot_sweep); None when no point could be placed."""
    from infprov.provision import plots

    drawn = plots.plot_sweep(run_dir / "sweep.png", [(r.address, r.points) for r in runs], budget_ms)
    return None if drawn is None else drawn.path
