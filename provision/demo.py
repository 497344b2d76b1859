"""The README's demo on the local sandbox: bring the sandbox up and show a host serving Triton."""

from __future__ import annotations

import sys
import time
import urllib.request

from provision import ui
from provision.errors import InfprovError
from provision.sandbox import core, images
from provision.wait import wait_until


def main() -> int:
    try:
        return _run()
    except InfprovError as exc:
        ui.err.print(f"[red]error:[/] {exc.line()}")
        return exc.exit_code


def _run() -> int:
    import fabric

    ui.step("infprov sandbox up --hosts 1")
    status = core.up(1)
    host = status["hosts"][0]
    ui.step(f"on {host['name']} ({host['address']}): docker run {images.SERVER_IMAGE} over SSH")
    conn = fabric.Connection(
        host["address"], user=host["user"], connect_kwargs={"key_filename": host["key_file"]},
        connect_timeout=10, config=fabric.Config(overrides={"run": {"in_stream": False}}),
    )
    # The sandbox's host keys change with every rebuild; the product pins keys, this demo does not need to.
    conn.client.set_missing_host_key_policy(_AcceptOnce())
    name = "infprov-demo-triton"
    conn.run(f"docker rm -f {name} >/dev/null 2>&1; mkdir -p ~/demo-models", hide=True, warn=True)
    devices = conn.run("ls /dev/neuron*", hide=True).stdout.split()
    flags = " ".join(f"--device {d}" for d in devices)
    conn.run(
        f"docker run -d --name {name} {flags} -v /home/ubuntu/demo-models:/models -p 8000:8000 "
        f"{images.SERVER_IMAGE} tritonserver --model-repository /models",
        hide=True,
    )
    url = f"http://{host['address']}:8000"
    start = time.monotonic()
    try:
        wait_until(lambda: _get(f"{url}/v2/health/ready") == 200, what=f"{url}/v2/health/ready", timeout=60,
                   interval=0.25)
        ui.ok(f"Triton on {host['address']} is ready after {time.monotonic() - start:.1f} s: "
              f"GET {url}/v2/health/ready -> 200")
    finally:
        conn.run(f"docker rm -f {name}", hide=True, warn=True)
        conn.close()
    ui.out.print("demo done; `infprov sandbox down` removes the sandbox")
    return 0


def _get(url: str) -> int:
    with urllib.request.urlopen(url, timeout=2) as resp:
        return int(resp.status)


class _AcceptOnce:
    def missing_host_key(self, client: object, hostname: str, key: object) -> None:
        return None


if __name__ == "__main__":
    sys.exit(main())
