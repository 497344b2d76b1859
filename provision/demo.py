"""The README's demo on the local sandbox: sandbox up, then `infprov up`, `bench`, `teardown`."""

from __future__ import annotations

import os
import subprocess
import sys

from infprov.provision import ui


def _infprov(*args: str) -> None:
    ui.step("infprov " + " ".join(args))
    proc = subprocess.run([sys.executable, "-m", "infprov.provision.cli", *args])
    if proc.returncode != 0:
        raise SystemExit(proc.returncode)


def main() -> int:
    os.environ.setdefault("INFPROV_HOME", os.path.expanduser("~/.infprov-demo"))
    ui.step(f"state for this demo in INFPROV_HOME={os.environ['INFPROV_HOME']}")
    _infprov("sandbox", "up", "--hosts", "2")
    try:
        _infprov("up", "--sandbox", "--type", "inf1.6xlarge", "--count", "2", "--name", "demo", "--yes")
        _infprov("bench", "--name", "demo", "--limit", "10")
        _infprov("results")
    finally:
        _infprov("teardown", "--sandbox", "--name", "demo", "--yes")
    ui.ok("demo done: the sandbox stays up for more (`infprov sandbox down` removes it)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
