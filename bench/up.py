"""Time `infprov up --sandbox`: from nothing to model-ready (images already built), and a re-run.

Needs root and a sandbox (`infprov sandbox up`; made here if missing). Targets on a 2-core machine:
cold <= 30 s, re-run <= 3 s. Tears its cluster down at the end.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

CLUSTER = "benchup"


def _infprov(*args: str) -> float:
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "infprov.provision.cli", *args], capture_output=True, text=True)
    took = time.monotonic() - start
    if proc.returncode != 0:
        sys.exit(f"`infprov {' '.join(args)}` failed:\n{proc.stderr[-2000:]}")
    return took


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="infprov-bench-up-") as home:
        os.environ["INFPROV_HOME"] = home
        _infprov("sandbox", "up", "--hosts", "1")
        up = ["up", "--sandbox", "--type", "inf1.6xlarge", "--name", CLUSTER, "--yes"]
        try:
            cold = _infprov(*up)
            again = _infprov(*up)
        finally:
            _infprov("teardown", "--sandbox", "--name", CLUSTER, "--yes")
    print(f"up --sandbox, nothing -> model ready: {cold:5.1f} s  (target <= 30 s)")
    print(f"up --sandbox again, ready cluster:   {again:5.1f} s  (target <= 3 s)")
    print(f"ratio re-run / cold: {again / cold:.2f}")


if __name__ == "__main__":
    main()
