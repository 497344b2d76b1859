"""Runs on a host (shipped as this file): powers the host off once Triton has served no request for a while.

`infprov up --idle-stop 30m` copies this file to the host and starts it detached. Every few seconds it reads
Triton's own Prometheus metrics on the host's loopback (127.0.0.1:8002/metrics) and sums
nv_inference_request_success over the models; whenever the sum changes (a request was served, or Triton
restarted and its counters began again) the idle clock starts over. When the clock reaches the limit it runs
`sudo -n shutdown -P now`; EC2 then stops or terminates the instance, as its InstanceInitiatedShutdownBehavior
says (infprov sets it). A Triton that does not answer serves nothing: its silence counts as idle time. So the
decision is the host's own, with no machine of the user's involved. Standard library only (the host's
python3, 3.8 or later); it never imports infprov.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.request
from typing import Any

METRIC = "nv_inference_request_success"
METRICS_URL = "http://127.0.0.1:8002/metrics"
POWER_OFF = ["sudo", "-n", "shutdown", "-P", "now"]


def served(text: str) -> int:
    """Triton's successful requests, summed over every model and version in a metrics page."""
    total = 0
    for line in text.splitlines():
        if line.startswith(METRIC + "{") or line.startswith(METRIC + " "):
            try:
                total += int(float(line.rsplit(" ", 1)[1]))
            except (IndexError, ValueError):
                continue
    return total


def read_served(url: str = METRICS_URL, timeout: float = 3.0) -> int | None:
    """The count now, or None when Triton does not answer (it serves nothing then)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as resp:
            return served(resp.read(8 << 20).decode("utf-8", "replace"))
    except Exception:  # noqa: BLE001 - any failure to read means nothing was served
        return None


def step(state: dict[str, Any], value: int | None, now: float, limit: float) -> bool:
    """Take one reading into state ({"requests", "since"}); True once the host has idled for limit seconds."""
    if value is not None and value != state.get("requests"):
        state["requests"] = value
        state["since"] = now
    return now - float(state["since"]) >= limit


def _write(path: str, doc: dict[str, Any]) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(doc, fh)
    os.replace(tmp, path)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--idle", type=float, required=True, help="seconds without a served request")
    parser.add_argument("--every", type=float, default=30.0, help="seconds between readings")
    parser.add_argument("--state", required=True, help="a JSON file this watch keeps its clock in")
    parser.add_argument("--url", default=METRICS_URL)
    args = parser.parse_args(argv)
    state: dict[str, Any] = {"requests": None, "since": time.time()}  # the clock starts when the watch does
    while True:
        now = time.time()
        idle = step(state, read_served(args.url), now, args.idle)
        _write(args.state, {"requests": state["requests"], "idle_s": round(now - state["since"], 1),
                            "limit_s": args.idle, "checked_at": now, "pid": os.getpid()})
        if idle:
            print(f"idle for {now - state['since']:.0f} s (limit {args.idle:.0f} s): powering off", flush=True)
            result = subprocess.run(POWER_OFF, stdin=subprocess.DEVNULL)
            if result.returncode == 0:
                return 0
            print(f"{' '.join(POWER_OFF)} exited {result.returncode}; trying again", flush=True)
        time.sleep(args.every)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
