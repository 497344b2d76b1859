#!/usr/bin/env python3
"""infprov's client against perf_analyzer on one local Triton server: images/s and CPU per request.

Method (the machine is shared and its load changes from second to second, so the two tools are not
measured one after the other but in alternating windows):

1. A real Triton server (from the nvidia-pytriton wheel) on 127.0.0.1 with the sandbox model.
2. perf_analyzer (batch 16, concurrency 2, HTTP) runs alone until it is past its slow start, then
   infprov's client (batch 16, 2 threads) starts and warms up; from then on one of the two runs at a
   time: the other is paused with SIGSTOP. Each window starts after a settle period, so requests
   in flight at a switch are counted for nobody.
3. In each window: requests = the server's own success count (GET /v2/models/M/stats), CPU = the
   tool's user+system time from /proc/PID/stat. images/s = requests x batch / window length;
   CPU per request = CPU / requests. The same measure for both tools.

Traffic goes only to 127.0.0.1; the server and both tools are ended by their PIDs. Takes ~90 s.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from provision.sandbox import localtriton  # noqa: E402

CLIENT = ROOT / "client" / "triton-http-client.py"
MODEL = localtriton.DEFAULT_MODEL
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a live process (and its reaped children), from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def served(url: str, model: str) -> int:
    """Requests the server has answered successfully for this model so far."""
    with urllib.request.urlopen(f"http://{url}/v2/models/{model}/stats", timeout=5) as resp:
        stats = json.load(resp)["model_stats"][0]
    return int(stats["inference_stats"]["success"]["count"])


@dataclass
class Tool:
    """A load generator this script started: its process and what its windows measured."""

    name: str
    proc: subprocess.Popen[bytes]
    requests: int = 0
    seconds: float = 0.0
    cpu: float = 0.0
    windows: list[tuple[int, float, float]] = field(default_factory=list)

    def pause(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, grace: float = 3.0) -> None:
        """SIGINT (after SIGCONT: a stopped process cannot act on it), then SIGKILL if it lingers.

        perf_analyzer finishes its measurement window before it acts on SIGINT; its figures here
        come from this script's windows, so it is not waited for.
        """
        if self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, signal.SIGINT)
        os.kill(self.proc.pid, signal.SIGCONT)
        try:
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)

    @property
    def images_per_s(self) -> float:
        return self.requests * BATCH / self.seconds if self.seconds else 0.0

    @property
    def cpu_ms_per_request(self) -> float:
        return 1000.0 * self.cpu / self.requests if self.requests else float("nan")


BATCH = 16


def window(tool: Tool, url: str, seconds: float) -> None:
    """Measure one window of the running tool."""
    n0, c0, t0 = served(url, MODEL), cpu_seconds(tool.proc.pid), time.monotonic()
    time.sleep(seconds)
    n1, c1, t1 = served(url, MODEL), cpu_seconds(tool.proc.pid), time.monotonic()
    tool.windows.append((n1 - n0, t1 - t0, c1 - c0))
    tool.requests += n1 - n0
    tool.seconds += t1 - t0
    tool.cpu += c1 - c0


def wait_for(what: str, check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"ERROR: {what} did not happen within {timeout:g} s")
        time.sleep(0.1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=12, help="alternating window pairs (default 12)")
    parser.add_argument("--window", type=float, default=2.5, help="seconds per window (default 2.5)")
    parser.add_argument("--settle", type=float, default=0.5, help="seconds after a switch before measuring")
    parser.add_argument("--pa-warmup", type=float, default=9.0, help="perf_analyzer alone first (its slow start)")
    parser.add_argument("--client-warmup", type=float, default=3.0, help="the client alone before measuring")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    parser.add_argument("--client-arg", action="append", default=[], help="extra argument for the client")
    args = parser.parse_args(argv)

    pa_binary = localtriton.perf_analyzer_binary()
    with tempfile.TemporaryDirectory(prefix="infprov-bench-") as tmp, localtriton.running(MODEL) as server:
        url = server.url
        pa_env = localtriton.perf_analyzer_env(Path(tmp) / "palibs")
        print(f"server: Triton pid {server.pid} at {url}, model {MODEL}", flush=True)
        total = args.pa_warmup + args.client_warmup + args.rounds * 2 * (args.window + args.settle) + 60
        pa_cmd = [
            str(pa_binary), "-m", MODEL, "-u", url, "-i", "http", "-b", str(BATCH),
            "--concurrency-range", "2:2", "--shape", "input:224,224,3",
            # One long window: perf_analyzer keeps sending until this script stops it.
            "--measurement-interval", str(int(total * 1000)), "--max-trials", "1",
        ]
        client_cmd = [
            sys.executable, str(CLIENT), "-m", MODEL, "-b", str(BATCH), "-k", "-t", "2",
            "-l", str(int(total)), "--url", url, "--json", str(Path(tmp) / "client.json"), *args.client_arg,
        ]
        tools: list[Tool] = []
        try:
            pa = Tool("perf_analyzer", subprocess.Popen(pa_cmd, env=pa_env, stdout=subprocess.DEVNULL,
                                                        stderr=subprocess.DEVNULL))
            tools.append(pa)
            base = served(url, MODEL)
            wait_for("perf_analyzer's first request", lambda: served(url, MODEL) > base, 30)
            time.sleep(args.pa_warmup)
            pa.pause()
            client = Tool("client", subprocess.Popen(client_cmd, stdout=subprocess.DEVNULL))
            tools.append(client)
            base = served(url, MODEL)
            wait_for("the client's first request", lambda: served(url, MODEL) > base + 1, 30)
            time.sleep(args.client_warmup)
            client.pause()
            print(f"measuring: {args.rounds} rounds of {args.window:g} s per tool, alternating", flush=True)
            order = [pa, client]
            for r in range(args.rounds):
                for tool in order if r % 2 == 0 else order[::-1]:
                    if not tool.alive():
                        raise SystemExit(f"ERROR: {tool.name} exited early (code {tool.proc.returncode})")
                    tool.resume()
                    time.sleep(args.settle)
                    window(tool, url, args.window)
                    tool.pause()
                    time.sleep(0.2)
        finally:
            t_stop = time.monotonic()
            for tool in tools:
                tool.stop()
            print(f"(stopping the tools took {time.monotonic() - t_stop:.1f} s)", flush=True)

    ratio = client.images_per_s / pa.images_per_s if pa.images_per_s else float("nan")
    cpu_ratio = client.cpu_ms_per_request / pa.cpu_ms_per_request
    print()
    print(f"{'tool':<15}{'requests':>10}{'seconds':>9}{'images/s':>10}{'CPU ms/request':>16}")
    for tool in (pa, client):
        print(f"{tool.name:<15}{tool.requests:>10}{tool.seconds:>9.1f}{tool.images_per_s:>10.1f}"
              f"{tool.cpu_ms_per_request:>16.3f}")
    print()
    print(f"images/s, client / perf_analyzer:       {ratio:.3f}  (target >= 1.0)")
    print(f"CPU per request, client / perf_analyzer: {cpu_ratio:.3f}  (target <= 0.5)")
    if args.json:
        doc = {
            "batch_size": BATCH, "concurrency": 2, "rounds": args.rounds, "window_s": args.window,
            "tools": {t.name: {"requests": t.requests, "seconds": t.seconds, "images_per_s": t.images_per_s,
                               "cpu_ms_per_request": t.cpu_ms_per_request, "windows": t.windows}
                      for t in (pa, client)},
            "images_per_s_ratio": ratio, "cpu_per_request_ratio": cpu_ratio,
        }
        Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
