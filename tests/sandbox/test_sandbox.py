"""The sandbox against its real parts: namespaces, sshd, dockerd, the Triton image, teardown."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import fabric
import pytest
from typer.testing import CliRunner

from infprov.provision.cli import app
from infprov.sandbox import core, images, network, nshost, records

pytestmark = pytest.mark.sandbox
runner = CliRunner()


class _Trust:
    def missing_host_key(self, client: object, hostname: str, key: object) -> None:
        return None


def _connect(host: dict[str, Any]) -> fabric.Connection:
    conn = fabric.Connection(host["address"], user=host["user"], port=host["port"],
                             connect_kwargs={"key_filename": host["key_file"]}, connect_timeout=10,
                             config=fabric.Config(overrides={"run": {"in_stream": False}}))
    conn.client.set_missing_host_key_policy(_Trust())
    return conn


def _http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return int(resp.status)
    except OSError:
        return 0


def test_status_json_contract(sandbox_hosts: list[dict[str, Any]]) -> None:
    result = runner.invoke(app, ["sandbox", "status", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["ec2_endpoint"].startswith("http://127.0.0.1:")
    names = [h["name"] for h in doc["hosts"]]
    assert names[: len(sandbox_hosts)] == [h["name"] for h in sandbox_hosts]
    for h in doc["hosts"]:
        assert {"name", "address", "port", "user", "key_file"} <= set(h)
        assert h["user"] == "ubuntu" and h["port"] == 22 and Path(h["key_file"]).exists()
    assert len({h["address"] for h in doc["hosts"]}) == len(doc["hosts"])


def _idle_hosts(count: int) -> list[dict[str, Any]]:
    """Hosts no instance holds (a host is made anew when its instance goes): a fresh machine's state."""
    taken = set(records.read_state().get("assignments", {}).values())
    idle = [h for h in core.status()["hosts"] if h["name"] not in taken]
    assert len(idle) >= count, f"{count} idle sandbox host(s) needed, {len(idle)} idle: {sorted(taken)} are taken"
    return idle[:count]


def test_login_as_ubuntu_with_sudo_and_docker(sandbox_hosts: list[dict[str, Any]]) -> None:
    for host in _idle_hosts(2):
        assert host["neuron_devices"] == core.NEURON_DEVICES == 4
        with _connect(host) as conn:
            assert conn.run("id -un", hide=True).stdout.strip() == "ubuntu"
            assert conn.run("hostname", hide=True).stdout.strip() == "ip-" + host["address"].replace(".", "-")
            assert conn.run("sudo -n id -u", hide=True).stdout.strip() == "0"
            devices = conn.run("ls /dev/neuron*", hide=True).stdout.split()
            assert devices == [f"/dev/neuron{i}" for i in range(4)]
            tags = conn.run("docker images --format '{{.Repository}}:{{.Tag}}'", hide=True).stdout.split()
            assert set(images.STANDIN_IMAGES) <= set(tags), tags


def test_hosts_do_not_see_each_other(sandbox_hosts: list[dict[str, Any]]) -> None:
    a, b = sandbox_hosts[0], sandbox_hosts[1]
    marker = f"marker-{time.time_ns()}"
    with _connect(a) as ca, _connect(b) as cb:
        ca.run(f"echo {marker} > ~/{marker}", hide=True)
        ca.run(f"echo {marker} | sudo tee /etc/{marker} >/dev/null", hide=True)
        assert cb.run(f"test -e ~/{marker}", warn=True, hide=True).exited != 0
        assert cb.run(f"test -e /etc/{marker}", warn=True, hide=True).exited != 0
        # the sandbox's private folder (keys, other hosts' homes) is hidden from a host
        assert cb.run(f"ls {core.private_dir()}/hosts", warn=True, hide=True).stdout.strip() == ""
        # a host sees only its own processes
        assert cb.run("ps -e -o comm= | grep -c dockerd", hide=True).stdout.strip() == "1"
        ca.run(f"rm -f ~/{marker}; sudo rm -f /etc/{marker}", hide=True)
    assert not Path(f"/etc/{marker}").exists()


def test_server_image_serves_health_to_root_namespace(sandbox_hosts: list[dict[str, Any]]) -> None:
    host = sandbox_hosts[0]
    name = "infprov-test-health"
    with _connect(host) as conn:
        conn.run(f"docker rm -f {name} >/dev/null 2>&1; mkdir -p ~/empty-models", hide=True, warn=True)
        conn.run(f"docker run -d --name {name} --device /dev/neuron0 -v /home/ubuntu/empty-models:/models "
                 f"-p 8000:8000 {images.SERVER_IMAGE} tritonserver --model-repository /models", hide=True)
        try:
            url = f"http://{host['address']}:8000/v2/health/ready"
            deadline = time.monotonic() + 60
            while _http_status(url) != 200 and time.monotonic() < deadline:
                time.sleep(0.25)
            assert _http_status(url) == 200
            with urllib.request.urlopen(f"http://{host['address']}:8000/v2", timeout=5) as resp:
                meta = json.load(resp)
            assert meta["name"] == "triton"
            inspect = json.loads(conn.run(f"docker inspect {name}", hide=True).stdout)[0]
            assert [d["PathOnHost"] for d in inspect["HostConfig"]["Devices"]] == ["/dev/neuron0"]
        finally:
            conn.run(f"docker rm -f {name}", hide=True, warn=True)


def test_sdk_image_has_client_and_perf_analyzer(sandbox_hosts: list[dict[str, Any]]) -> None:
    with _connect(sandbox_hosts[1]) as conn:
        out = conn.run(f"docker run --rm {images.SDK_IMAGE} python3 -c "
                       "'import tritonclient.http, numpy; print(\"client-ok\")'", hide=True).stdout
        assert "client-ok" in out
        pa = conn.run(f"docker run --rm {images.SDK_IMAGE} perf_analyzer --version", hide=True, warn=True)
        assert "perf_analyzer" in (pa.stdout + pa.stderr).lower() or "version" in (pa.stdout + pa.stderr).lower()
        assert "error while loading shared libraries" not in pa.stderr


def test_python_backend_repo_is_clonable_from_a_host(sandbox_hosts: list[dict[str, Any]]) -> None:
    from infprov.sandbox import pbrepo

    url = pbrepo.url(core.public_dir())
    with _connect(sandbox_hosts[2]) as conn:
        conn.run("rm -rf ~/pb-clone-test", hide=True)
        conn.run(f"git clone -q -b r22.04 {url} ~/pb-clone-test", hide=True)
        files = conn.run("cd ~/pb-clone-test && git ls-files", hide=True).stdout.split()
        conn.run("rm -rf ~/pb-clone-test", hide=True)
    assert {"inferentia/scripts/setup.sh", "inferentia/scripts/gen_triton_model.py"} <= set(files)
    assert any(f.startswith("models/") for f in files)


def test_up_again_changes_nothing(sandbox_hosts: list[dict[str, Any]]) -> None:
    before = records.read_state()["hosts"]
    result = runner.invoke(app, ["sandbox", "up", "--hosts", str(len(sandbox_hosts)), "--json"])
    assert result.exit_code == 0, result.output
    assert records.read_state()["hosts"] == before
    assert "nothing to change" in result.stderr


def test_up_repairs_a_broken_host(sandbox_hosts: list[dict[str, Any]]) -> None:
    host = sandbox_hosts[-1]
    spec = core.HostSpec(int(host["name"][1:]))
    # break it: kill the host's sshd by PID (found in the host's own cgroup)
    for pid in nshost.cgroup_pids(spec):
        if nshost.comm(pid) == "sshd":
            os.kill(pid, 9)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            socket.create_connection((host["address"], 22), timeout=0.5).close()
            time.sleep(0.1)
        except OSError:
            break
    assert core.status()["hosts"][int(host["name"][1:]) - 1]["healthy"] is False
    core.up(len(sandbox_hosts))
    assert all(h["healthy"] for h in core.status()["hosts"])
    with _connect(host) as conn:
        assert conn.run("id -un", hide=True).stdout.strip() == "ubuntu"


def test_up_rebuilds_a_host_whose_dockerd_runs_with_older_settings(sandbox_hosts: list[dict[str, Any]]) -> None:
    """A host made by an older infprov (its dockerd without the sandbox registry, say) is rebuilt by `up`."""
    host = sandbox_hosts[-1]
    with records.locked():
        state = records.read_state()
        entry = state["hosts"][host["name"]]
        old_pid = entry["init_pid"]
        entry["dockerd"] = "from-an-older-infprov"
        records.write_state(state)
    core.up(len(sandbox_hosts))
    entry = records.read_state()["hosts"][host["name"]]
    assert entry["init_pid"] != old_pid and entry["dockerd"] == nshost.dockerd_key()
    spec = core.HostSpec(int(host["name"][1:]))
    argv = [(Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")) for pid in nshost.cgroup_pids(spec)
            if nshost.comm(pid) == "dockerd"]
    assert argv and b"--insecure-registry" in argv[0]
    assert all(h["healthy"] for h in core.status()["hosts"])


@pytest.mark.parametrize("count", ["0", "99", "-1"])
def test_hosts_out_of_range_is_usage_error(count: str) -> None:
    result = runner.invoke(app, ["sandbox", "up", "--hosts", count])
    assert result.exit_code == 2
    assert "--hosts" in result.stderr and "1 to 8" in result.stderr
    assert "Traceback" not in result.output


def test_not_root_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    result = runner.invoke(app, ["sandbox", "up"])
    assert result.exit_code == 2
    assert "needs root" in result.stderr


def test_missing_system_package_named(monkeypatch: pytest.MonkeyPatch) -> None:
    from infprov.sandbox import system

    real = system.which
    monkeypatch.setattr(system, "which", lambda cmd: None if cmd in ("sshd", "debootstrap") else real(cmd))
    result = runner.invoke(app, ["sandbox", "up"])
    assert result.exit_code == 1
    assert "debootstrap openssh-server" in result.stderr
    assert "apt-get install -y debootstrap openssh-server" in result.stderr


def test_taken_subnet_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFPROV_SANDBOX_SUBNET", "127.0.0.0/24")
    with pytest.raises(core.InfprovError, match="subnet 127.0.0.0/24 is taken: lo"):
        network.check_subnet_free()


def test_full_disk_builds_nothing(sandbox_hosts: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10 << 30, 10 << 30, 100 << 20))
    wanted = len(sandbox_hosts) + 1
    result = runner.invoke(app, ["sandbox", "up", "--hosts", str(wanted)])
    assert result.exit_code == 1
    assert "not enough free disk" in result.stderr
    assert f"h{wanted}" not in records.read_state()["hosts"]
    assert not Path(f"/run/netns/{core.prefix()}-h{wanted}").exists()


def _leftovers(prefix: str, base: Path) -> list[str]:
    found = []
    if any(p.name.startswith(f"{prefix}-") for p in Path("/run/netns").glob("*")):
        found.append("netns")
    if Path(f"/sys/class/net/{prefix}br0").exists() or list(Path("/sys/class/net").glob(f"{prefix}-h*")):
        found.append("links")
    if any(str(base) in line for line in Path("/proc/mounts").read_text().splitlines()):
        found.append("mounts")
    if base.exists():
        found.append("state")
    for root in Path("/sys/fs/cgroup").iterdir():
        if (root / f"infprov-{prefix}").exists():
            found.append(f"cgroup {root.name}")
    out = subprocess.run(["ps", "-eo", "args="], capture_output=True, text=True).stdout
    if str(base) in out or f"{prefix}-h" in out:
        found.append("processes")
    return found


def test_down_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A second, separate sandbox (own names, subnet, port, folder): up 2 hosts under umask 000 (sshd refuses
    world-writable files: the sandbox lays its own out 022), then down twice."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    base = tmp_path / "sbx"
    monkeypatch.setenv("INFPROV_SANDBOX_ID", "infpz")
    monkeypatch.setenv("INFPROV_SANDBOX_DIR", str(base))
    monkeypatch.setenv("INFPROV_SANDBOX_SUBNET", "10.238.0.0/24")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("INFPROV_SANDBOX_EC2_PORT", str(port))
    umask = os.umask(0)
    try:
        try:
            status = core.up(2)
        finally:
            assert os.umask(umask) == 0, "the caller's umask is given back"
        assert [h["address"] for h in status["hosts"]] == ["10.238.0.11", "10.238.0.12"]
        assert status["ec2_endpoint"] == f"http://127.0.0.1:{port}"
        with _connect(status["hosts"][1]) as conn:
            conn.run("docker run -d --name idle nvcr.io/nvidia/tritonserver:22.04-py3 sleep 600", hide=True)
        assert _leftovers("infpz", base)
    finally:
        result = runner.invoke(app, ["sandbox", "down"])
    assert result.exit_code == 0, result.output
    assert _leftovers("infpz", base) == []
    again = runner.invoke(app, ["sandbox", "down"])
    assert again.exit_code == 0, again.output
