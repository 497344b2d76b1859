"""Time `infprov sandbox up --hosts 4`: cold (images built from scratch) and warm (image cache present).

Runs a separate sandbox (its own names, subnet, port and folders) so it never touches the main one,
and removes it at the end. Needs root. Target: warm <= 15 s, cold <= 240 s on a 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _timed(args: list[str], env: dict[str, str]) -> float:
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "infprov.provision.cli",
                           *args], env=env, capture_output=True, text=True)
    took = time.monotonic() - start
    if proc.returncode != 0:
        sys.exit(f"`infprov {' '.join(args)}` failed:\n{proc.stderr[-2000:]}")
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hosts", type=int, default=4)
    parser.add_argument("--skip-cold", action="store_true", help="only the warm figure (reuses the main cache)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="infprov-bench-") as tmp:
        env = {**os.environ, "INFPROV_SANDBOX_ID": "infpb", "INFPROV_SANDBOX_DIR": f"{tmp}/sandbox",
               "INFPROV_SANDBOX_SUBNET": "10.239.0.0/24", "INFPROV_SANDBOX_EC2_PORT": str(_free_port())}
        up = ["sandbox", "up", "--hosts", str(args.hosts), "--json"]
        try:
            if not args.skip_cold:
                cold_env = {**env, "INFPROV_CACHE": f"{tmp}/cache"}
                cold = _timed(up, cold_env)
                print(f"cold  sandbox up --hosts {args.hosts}: {cold:6.1f} s  (target <= 240 s)")
                _timed(["sandbox", "down"], cold_env)
            else:
                # make sure the main cache holds the images, so the warm run measures hosts only
                _timed(up[:2] + ["--hosts", "1"], env)
                _timed(["sandbox", "down"], env)
            warm = _timed(up, env)
            print(f"warm  sandbox up --hosts {args.hosts}: {warm:6.1f} s  (target <= 15 s)")
            again = _timed(up, env)
            print(f"again sandbox up --hosts {args.hosts} (healthy, no change): {again:6.2f} s")
            down_took = _timed(["sandbox", "down"], env)
            print(f"down  ({args.hosts} hosts): {down_took:6.1f} s")
        finally:
            subprocess.run([sys.executable, "-m", "infprov.provision.cli",
                            "sandbox", "down"], env=env, capture_output=True)


if __name__ == "__main__":
    main()
