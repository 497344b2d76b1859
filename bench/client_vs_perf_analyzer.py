#!/usr/bin/env python3
"""infprov's client against perf_analyzer on one local Triton server: images/s and CPU per request.

Method (the machine is shared and its load changes from second to second, so the tools are not
measured one after the other but in alternating windows):

1. A real Triton server (from the nvidia-pytriton wheel) on 127.0.0.1 with the sandbox model.
2. perf_analyzer (batch 16, concurrency 2, HTTP) runs alone until it is past its slow start, then
   infprov's client (batch 16, 2 threads) starts and warms up (then, with --seed-style, a
   reconstruction of the seed's client, and a bytes-only sender that does nothing but send the
   prepared request and read the answer: the CPU floor of any HTTP client); from then on one tool
   runs at a time, the others are paused with SIGSTOP. Each window starts after a settle period,
   so requests in flight at a switch are counted for nobody; the order of the tools alternates
   from round to round.
3. In each window: requests = the server's own success count (GET /v2/models/M/stats), CPU = the
   tool's user+system time from /proc/PID/stat (what its rusage will say). images/s = requests x
   batch / window length; CPU per request = CPU / requests. The same measure for every tool.
   "user share" is the part of that CPU spent outside the kernel.

Traffic goes only to 127.0.0.1; the server and the tools are ended by their PIDs. Takes ~2 min
(~1.5 min with --no-floor, ~2.5 min with --seed-style).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from infprov.client import build

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from infprov.sandbox import localtriton  # noqa: E402

CLIENT = build.write_zipapp(Path(tempfile.mkdtemp(prefix="infprov-client-")))
MODEL = localtriton.DEFAULT_MODEL
BATCH = 16
CONCURRENCY = 2
TICK = os.sysconf("SC_CLK_TCK")
SHM = Path("/dev/shm")


def cpu_times(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of a live process, from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICK, int(fields[12]) / TICK


def served(url: str, model: str = MODEL) -> int:
    """Requests the server has answered successfully for this model so far."""
    with urllib.request.urlopen(f"http://{url}/v2/models/{model}/stats", timeout=5) as resp:
        stats = json.load(resp)["model_stats"][0]
    return int(stats["inference_stats"]["success"]["count"])


Window = tuple[int, float, float]  # requests, seconds, CPU seconds


@dataclass
class Tool:
    """A load generator this script started: its process and what its windows measured."""

    name: str
    proc: subprocess.Popen[bytes]
    requests: int = 0
    seconds: float = 0.0
    cpu: float = 0.0
    user: float = 0.0
    windows: list[Window] = field(default_factory=list)

    def pause(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, grace: float = 3.0) -> None:
        """SIGINT (and SIGCONT: a stopped process cannot act on it), then SIGKILL if it lingers.

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

    def measure(self, url: str, seconds: float) -> None:
        """One window of this tool, running alone."""
        n0, (u0, s0), t0 = served(url), cpu_times(self.proc.pid), time.monotonic()
        time.sleep(seconds)
        n1, (u1, s1), t1 = served(url), cpu_times(self.proc.pid), time.monotonic()
        cpu = (u1 - u0) + (s1 - s0)
        self.windows.append((n1 - n0, t1 - t0, cpu))
        self.requests += n1 - n0
        self.seconds += t1 - t0
        self.cpu += cpu
        self.user += u1 - u0

    @property
    def user_share(self) -> float:
        """The part of the CPU spent in the tool's own code rather than in the kernel."""
        return self.user / self.cpu if self.cpu else float("nan")

    @property
    def images_per_s(self) -> float:
        return self.requests * BATCH / self.seconds if self.seconds else 0.0

    @property
    def cpu_ms_per_request(self) -> float:
        return 1000.0 * self.cpu / self.requests if self.requests else float("nan")


def _images_rate(w: Window) -> float:
    return w[0] / w[1]


def _cpu_per_request(w: Window) -> float:
    return w[2] / w[0]


def round_spread(tool: Tool, reference: Tool, metric: Callable[[Window], float] = _images_rate) -> tuple[float, float]:
    """95% interval (normal approximation) of the mean of per-round ratios of a metric, tool / reference.

    Rounds pair a window of each tool taken seconds apart, so the machine's slow drifts cancel
    within a round; the spread across rounds shows how far the overall ratio can be trusted.
    """
    ratios = [
        metric(a) / metric(b)
        for a, b in zip(tool.windows, reference.windows, strict=True)
        if a[0] and a[1] and b[0] and b[1] and metric(b)
    ]
    if len(ratios) < 2:
        return float("nan"), float("nan")
    mean = sum(ratios) / len(ratios)
    sd = (sum((r - mean) ** 2 for r in ratios) / (len(ratios) - 1)) ** 0.5
    half = 1.96 * sd / len(ratios) ** 0.5
    return mean - half, mean + half


def wait_for(what: str, check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"ERROR: {what} did not happen within {timeout:g} s")
        time.sleep(0.1)


def start_tool(name: str, cmd: list[str], url: str, warmup: float, env: dict[str, str] | None = None) -> Tool:
    """Start a tool alone, wait for its first answered requests and its warm-up, then pause it."""
    tool = Tool(name, subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    base = served(url)
    try:
        wait_for(f"{name}'s first requests", lambda: served(url) > base + 1 or not tool.alive(), 60)
        if not tool.alive():
            raise SystemExit(f"ERROR: {name} exited at once (code {tool.proc.returncode}): {' '.join(cmd)}")
        time.sleep(warmup)
    except BaseException:
        tool.stop()
        raise
    tool.pause()
    return tool


def _mapped_shm() -> set[str]:
    """Names under /dev/shm that some live process has mapped."""
    names: set[str] = set()
    for maps in Path("/proc").glob("[0-9]*/maps"):
        with contextlib.suppress(OSError):
            names.update(line.rsplit("/dev/shm/", 1)[1].split(" (deleted)")[0]
                          for line in maps.read_text().splitlines() if "/dev/shm/" in line)
    return names


def remove_shm_leftovers(before: set[str]) -> list[str]:
    """perf_analyzer killed mid-run leaves its shared-memory objects: remove the ones that appeared
    during this run and that no live process maps."""
    if not SHM.is_dir():
        return []
    new = {p.name for p in SHM.iterdir()} - before
    stale = sorted(new - _mapped_shm())
    for name in stale:
        with contextlib.suppress(FileNotFoundError):
            (SHM / name).unlink()
    return stale


# ----------------------------------------------------------------------------- the seed's way, rebuilt


def seed_style_load(url: str, model: str, batch: int, threads: int) -> None:
    """Load as the seed's client makes it: a new HTTP client and new random images for each request.

    Used only as a baseline (started with --seed-style); runs until it is killed.
    """
    import numpy as np
    import tritonclient.http as httpclient

    def loop() -> None:
        while True:
            client = httpclient.InferenceServerClient(url)
            images = np.random.rand(batch, 224, 224, 3).astype(np.float32)
            tensor = httpclient.InferInput("input", list(images.shape), "FP32")
            tensor.set_data_from_numpy(images, binary_data=True)
            client.infer(model, [tensor], outputs=[httpclient.InferRequestedOutput("output", binary_data=True)])
            client.close()

    workers = [threading.Thread(target=loop, daemon=True) for _ in range(threads)]
    for w in workers:
        w.start()
    signal.sigwait({signal.SIGINT, signal.SIGTERM})


def bytes_only_load(url: str, model: str, batch: int, threads: int) -> None:
    """The least a sender can do per request over HTTP: send the prepared request, read the answer.

    No checks, no parsing beyond Content-Length. Its CPU per request is what moving the images
    through the loopback TCP stack costs the sending process: a floor for any HTTP client.
    Runs until it is killed.
    """
    import socket

    host, port = url.rsplit(":", 1)
    shape = [batch, 224, 224, 3]
    tensor = os.urandom(batch * 224 * 224 * 3 * 4)
    header = json.dumps({"inputs": [{"name": "input", "shape": shape, "datatype": "FP32",
                                     "parameters": {"binary_data_size": len(tensor)}}],
                         "outputs": [{"name": "output", "parameters": {"binary_data": True}}]}).encode()
    head = (f"POST /v2/models/{model}/infer HTTP/1.1\r\nHost: {url}\r\n"
            f"Inference-Header-Content-Length: {len(header)}\r\n"
            f"Content-Length: {len(header) + len(tensor)}\r\n\r\n").encode()
    request = head + header + tensor

    def loop() -> None:
        sock = socket.create_connection((host, int(port)))
        buf = bytearray(1 << 20)
        view = memoryview(buf)
        while True:
            sock.sendall(request)
            have = 0
            while (end := buf.find(b"\r\n\r\n", 0, have)) < 0:
                have += sock.recv_into(view[have:])
            length = int(buf[:end].lower().split(b"content-length:")[1].split(b"\r\n")[0])
            while have < end + 4 + length:
                have += sock.recv_into(view[have:])

    workers = [threading.Thread(target=loop, daemon=True) for _ in range(threads)]
    for w in workers:
        w.start()
    signal.sigwait({signal.SIGINT, signal.SIGTERM})


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--rounds", type=int, default=12, help="rounds of one window per tool (default 12)")
    parser.add_argument("--window", type=float, default=2.5, help="seconds per window (default 2.5)")
    parser.add_argument("--settle", type=float, default=0.5, help="seconds after a switch before measuring")
    parser.add_argument("--pa-warmup", type=float, default=9.0, help="perf_analyzer alone first (its slow start)")
    parser.add_argument("--client-warmup", type=float, default=3.0, help="the client alone before measuring")
    parser.add_argument("--shared-memory", action="store_true",
                        help="both tools pass the images through /dev/shm (system shared memory) instead of HTTP")
    parser.add_argument("--seed-style", action="store_true",
                        help="also measure a rebuild of the seed's client (new connection and images per request)")
    parser.add_argument("--no-floor", dest="floor", action="store_false",
                        help="skip the bytes-only sender (the CPU floor of any HTTP client)")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    parser.add_argument("--client-arg", action="append", default=[], help="extra argument for the client")
    parser.add_argument("--seed-style-load", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--bytes-only-load", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.bytes_only_load:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        bytes_only_load(args.bytes_only_load, MODEL, BATCH, CONCURRENCY)
        return 0
    if args.seed_style_load:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        seed_style_load(args.seed_style_load, MODEL, BATCH, CONCURRENCY)
        return 0
    if args.shared_memory and args.seed_style:
        parser.error("--seed-style measures the seed's HTTP way; it does not combine with --shared-memory")
    floor = args.floor and not args.shared_memory

    pa_binary = localtriton.perf_analyzer_binary()
    shm_before = {p.name for p in SHM.iterdir()} if SHM.is_dir() else set()
    tools: list[Tool] = []
    with tempfile.TemporaryDirectory(prefix="infprov-bench-") as tmp, localtriton.running(MODEL) as server:
        url = server.url
        pa_env = localtriton.perf_analyzer_env(Path(tmp) / "palibs")
        transport = "system shared memory" if args.shared_memory else "the HTTP body"
        print(f"server: Triton pid {server.pid} at {url}, model {MODEL}; images via {transport}", flush=True)
        n_tools = 2 + int(args.seed_style) + int(floor)
        total = args.pa_warmup + args.client_warmup + args.rounds * n_tools * (args.window + args.settle) + 60
        pa_cmd = [
            str(pa_binary), "-m", MODEL, "-u", url, "-i", "http", "-b", str(BATCH),
            "--concurrency-range", f"{CONCURRENCY}:{CONCURRENCY}", "--shape", "input:224,224,3",
            # One long window: perf_analyzer keeps sending until this script stops it.
            "--measurement-interval", str(int(total * 1000)), "--max-trials", "1",
            *(["--shared-memory", "system"] if args.shared_memory else []),
        ]
        client_cmd = [
            sys.executable, str(CLIENT), "-m", MODEL, "-b", str(BATCH), "-k", "-t", str(CONCURRENCY),
            "-l", str(int(total)), "--url", url, "--json", str(Path(tmp) / "client.json"),
            *(["--shared_memory", "system"] if args.shared_memory else []), *args.client_arg,
        ]
        try:
            tools.append(start_tool("perf_analyzer", pa_cmd, url, args.pa_warmup, pa_env))
            tools.append(start_tool("client", client_cmd, url, args.client_warmup))
            if args.seed_style:
                seed_cmd = [sys.executable, str(Path(__file__).resolve()), "--seed-style-load", url]
                tools.append(start_tool("seed-style", seed_cmd, url, args.client_warmup))
            if floor:
                floor_cmd = [sys.executable, str(Path(__file__).resolve()), "--bytes-only-load", url]
                tools.append(start_tool("bytes-only", floor_cmd, url, args.client_warmup))
            print(f"measuring: {args.rounds} rounds of {args.window:g} s per tool, alternating", flush=True)
            for r in range(args.rounds):
                for tool in tools if r % 2 == 0 else tools[::-1]:
                    if not tool.alive():
                        raise SystemExit(f"ERROR: {tool.name} exited early (code {tool.proc.returncode})")
                    tool.resume()
                    time.sleep(args.settle)
                    tool.measure(url, args.window)
                    tool.pause()
                    time.sleep(0.2)
        finally:
            for tool in tools:
                tool.stop()
    removed = remove_shm_leftovers(shm_before)
    if removed:
        print(f"(removed shared memory left by perf_analyzer: {', '.join(removed)})")

    pa, client = tools[0], tools[1]
    print()
    print(f"{'tool':<15}{'requests':>10}{'seconds':>9}{'images/s':>10}{'CPU ms/request':>16}{'user share':>12}"
          f"{'vs perf_analyzer':>18}")
    for tool in tools:
        vs = tool.images_per_s / pa.images_per_s if pa.images_per_s else float("nan")
        print(f"{tool.name:<15}{tool.requests:>10}{tool.seconds:>9.1f}{tool.images_per_s:>10.1f}"
              f"{tool.cpu_ms_per_request:>16.3f}{tool.user_share:>12.0%}{vs:>17.2f}x")
    ratio = client.images_per_s / pa.images_per_s if pa.images_per_s else float("nan")
    cpu_ratio = client.cpu_ms_per_request / pa.cpu_ms_per_request
    print()
    low, high = round_spread(client, pa)
    print(f"images/s, client / perf_analyzer:        {ratio:.3f}  (target >= 1.0; "
          f"per-round ratios: 95% interval of their mean {low:.3f}..{high:.3f})")
    low, high = round_spread(client, pa, _cpu_per_request)
    print(f"CPU per request, client / perf_analyzer: {cpu_ratio:.3f}  (target <= 0.5; "
          f"per-round ratios: 95% interval of their mean {low:.3f}..{high:.3f})")
    floor_tool = next((t for t in tools if t.name == "bytes-only"), None)
    floor_ratio = floor_tool.cpu_ms_per_request / pa.cpu_ms_per_request if floor_tool else None
    if floor_tool:
        print(f"CPU per request, bytes-only / perf_analyzer: {floor_ratio:.3f}  "
              "(the least any HTTP sender pays here: sending the images, reading the answer)")
    if args.json:
        doc = {
            "batch_size": BATCH, "concurrency": CONCURRENCY, "rounds": args.rounds, "window_s": args.window,
            "shared_memory": args.shared_memory,
            "tools": {t.name: {"requests": t.requests, "seconds": t.seconds, "images_per_s": t.images_per_s,
                               "cpu_ms_per_request": t.cpu_ms_per_request,
                               "user_share": t.user_share, "windows": t.windows}
                      for t in tools},
            "images_per_s_ratio": ratio, "cpu_per_request_ratio": cpu_ratio,
            "bytes_only_cpu_per_request_ratio": floor_ratio,
        }
        Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
