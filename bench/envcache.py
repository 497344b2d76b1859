"""Time cold `infprov up --sandbox` of 4 hosts against 1 host, with the environment cache empty, warm, and off.

Cold: every run launches fresh instances (the last run's cluster is torn down first). Empty: no repository in the
sandbox's ECR and nothing in its registry before the run. Warm: the cache holds this environment. Off: --no-cache.
Needs root and a sandbox of at least 4 hosts (`infprov sandbox up --hosts 4`; made here if missing). Prints, in one
run, each time, each host's environment source, and the ratio count-4 / count-1 per case.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

CLUSTER = "benchenv"


def _infprov(*args: str) -> tuple[float, str]:
    start = time.monotonic()
    env = {k: v for k, v in os.environ.items() if k != "INFPROV_NO_CACHE"}
    proc = subprocess.run([sys.executable, "-m", "infprov.provision.cli", *args], capture_output=True, text=True,
                          env=env)
    took = time.monotonic() - start
    if proc.returncode != 0:
        sys.exit(f"`infprov {' '.join(args)}` failed:\n{proc.stderr[-2000:]}")
    return took, proc.stdout


def _empty_cache() -> None:
    from infprov.sandbox import core

    _infprov("teardown", "--all", "--cache", "--sandbox", "--yes")
    core.wipe_registry()


def _cold_up(count: int, *extra: str) -> tuple[float, list[str]]:
    took, out = _infprov("up", "--sandbox", "--type", "inf1.xlarge", "--count", str(count), "--name", CLUSTER,
                         "--yes", "--json", *extra)
    hosts = json.loads(out)["server"]["hosts"]
    sources = sorted(h.get("environment", {}).get("source", "built") for h in hosts)
    _infprov("teardown", "--sandbox", "--name", CLUSTER, "--yes")
    return took, sources


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="infprov-bench-envcache-") as home:
        os.environ["INFPROV_HOME"] = home
        _infprov("sandbox", "up", "--hosts", "4")
        rows = []
        try:
            _empty_cache()
            one = _cold_up(1)
            _empty_cache()
            four = _cold_up(4)
            rows.append(("empty cache", one, four))
            rows.append(("warm cache", _cold_up(1), _cold_up(4)))
            rows.append(("cache off (--no-cache)", _cold_up(1, "--no-cache"), _cold_up(4, "--no-cache")))
        finally:
            _empty_cache()
    print("cold `infprov up --sandbox --type inf1.xlarge`, fresh instances each run:")
    for name, (t1, s1), (t4, s4) in rows:
        print(f"  {name:24s} count 1: {t1:6.1f} s {s1}   count 4: {t4:6.1f} s {s4}   count 4 / count 1: {t4 / t1:.2f}")


if __name__ == "__main__":
    main()
