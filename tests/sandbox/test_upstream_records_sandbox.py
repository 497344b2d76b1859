"""Every fact a stand-in presents is traced to a record of upstream (sandbox/upstream/, with its provenance).

The unit tests here read what the stand-ins are generated from; the sandbox tests read what the running
stand-ins present (the download server's files over HTTP, the server images' apt behaviour on a host).
"""

from __future__ import annotations

import subprocess
import urllib.request
from typing import Any

import pytest

from infprov.provision import preflight
from infprov.sandbox import cudaapt, downloads, provenance

PINS = preflight.read_pins()
SANDBOX_PINS = preflight.read_pins(preflight.SANDBOX_PINS)


# ---------------------------------------------------------------- git refs: preflight's and the stand-in's


# ---------------------------------------------------------------- the server images' apt sources


# ---------------------------------------------------------------- what the running stand-ins present
@pytest.mark.sandbox
def test_the_running_download_server_serves_the_recorded_refs(sandbox_status: dict[str, Any]) -> None:
    base = sandbox_status["downloads"]
    for repo in downloads.recorded_repos(SANDBOX_PINS):
        with urllib.request.urlopen(f"{base}/github.com/{repo}/info/refs", timeout=10) as resp:
            served = dict(reversed(line.split("\t")) for line in resp.read().decode().splitlines())
        assert served == provenance.git_refs(repo), repo


def _docker_on(host: dict[str, Any], status: dict[str, Any], image: str,
               command: str) -> subprocess.CompletedProcess[str]:
    address = status["downloads"].removeprefix("http://")
    ssh = ["ssh", "-i", host["key_file"], "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
           "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-p", str(host["port"]),
           f"{host['user']}@{host['address']}",
           f"docker run --rm --add-host infprov-downloads:{address} {image} bash -c '{command}' 2>&1"]
    return subprocess.run(ssh, capture_output=True, text=True, timeout=300)


@pytest.mark.sandbox
def test_apt_get_update_fails_in_the_22_04_stand_in_as_in_the_real_image(sandbox_hosts: list[dict[str, Any]],
                                                                           sandbox_status: dict[str, Any]) -> None:
    host = sandbox_hosts[0]
    stale = _docker_on(host, sandbox_status, "nvcr.io/nvidia/tritonserver:22.04-py3", "apt-get update -q")
    assert stale.returncode != 0, stale.stdout
    assert f"NO_PUBKEY {cudaapt.fingerprint('current')}" in stale.stdout
    assert "ubuntu2004/x86_64" in stale.stdout and "is not signed" in stale.stdout
    current = _docker_on(host, sandbox_status, "nvcr.io/nvidia/tritonserver:24.04-py3", "apt-get update -q")
    assert current.returncode == 0, current.stdout
    assert "ubuntu2204/x86_64" in current.stdout and "NO_PUBKEY" not in current.stdout


# ---------------------------------------------------------------- what r22.04's CMake fetches: pins and stand-in
