"""`infprov demo` (and ./scripts/demo): on the local sandbox, sandbox up, `up`, `bench`, `results`, `teardown`."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from infprov.provision import ui


def _infprov(*args: str) -> None:
    ui.step("infprov " + " ".join(args))
    proc = subprocess.run([sys.executable, "-m", "infprov.provision.cli", *args])
    if proc.returncode != 0:
        raise SystemExit(proc.returncode)


def main(hosts: int = 2, limit: int = 10) -> int:
    os.environ.setdefault("INFPROV_HOME", os.path.expanduser("~/.infprov-demo"))
    ui.step(f"state for this demo in INFPROV_HOME={os.environ['INFPROV_HOME']}")
    from infprov.floor import paths

    run = f"demo-{time.strftime('%Y%m%d-%H%M%S')}"
    _infprov("sandbox", "up", "--hosts", str(hosts))
    try:
        _infprov("up", "--sandbox", "--type", "inf1.6xlarge", "--count", str(hosts), "--name", "demo", "--yes")
        _infprov("bench", "--name", "demo", "--limit", str(limit), "--out", str(paths.runs_dir() / run))
        _infprov("results", run)  # the run's table: each host's throughput and latency
    finally:
        _infprov("teardown", "--sandbox", "--name", "demo", "--yes")
    ui.ok("demo done: the sandbox stays up for more (`infprov sandbox down` removes it)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
