"""`infprov up --sandbox` end to end: cloud, inventory, server playbook, Triton serving the model."""

from __future__ import annotations

import json
import signal
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from infprov.provision.cli import app
from tests.hostshell import on_host
from tests.procs import Child

pytestmark = pytest.mark.sandbox
runner = CliRunner()
CLUSTER = "uptest"
MODEL = "rn50-16neuroncores-default"
# the sandbox EC2 endpoint is us-east-1 only
REGION: tuple[str, ...] = ()


def _up(*extra: str) -> Any:
    argv = ["up", "--sandbox", "--type", "inf1.6xlarge", "--name", CLUSTER, "--yes", "--json", *REGION, *extra]
    return runner.invoke(app, argv)


def _on_host(host: dict[str, Any], command: str) -> str:
    return on_host(host["instance_id"], command)


def _docker_inspect(host: dict[str, Any]) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(_on_host(host, "docker inspect infprov-triton"))[0]
    return doc


def test_up_serves_then_changes_nothing_then_teardown(sandbox_hosts: list[dict[str, Any]], cluster_home: Path) -> None:
    first = _up()
    assert first.exit_code == 0, first.output
    doc = json.loads(first.stdout)
    assert doc["server"]["ok"] is True
    [host] = doc["server"]["hosts"]
    assert host["model"] == MODEL and host["ready"] is True and host["changed"] > 0
    # Triton listens on the host's loopback only: reached over SSH, never from the network
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://{host['address']}:8000/v2/health/ready", timeout=5)
    assert _on_host(host, f"curl -sf -o /dev/null -w '%{{http_code}}' http://127.0.0.1:8000/v2/models/{MODEL}/ready") \
        == "200"
    meta = json.loads(_on_host(host, f"curl -sf http://127.0.0.1:8000/v2/models/{MODEL}"))
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 224, 224, 3]}]
    assert meta["outputs"] == [{"name": "output", "datatype": "FP32", "shape": [-1, 1000]}]

    # the container carries the seed's settings, in ASCII flags
    inspect = _docker_inspect(host)
    hc = inspect["HostConfig"]
    assert [d["PathOnHost"] for d in hc["Devices"]] == [f"/dev/neuron{i}" for i in range(4)]
    assert hc["ShmSize"] == 1 << 30
    ulimits = {u["Name"]: (u["Soft"], u["Hard"]) for u in hc["Ulimits"]}
    assert ulimits["stack"] == (67108864, 67108864)
    assert "memlock" in ulimits
    assert sorted(hc["Binds"]) == ["/home/ubuntu/python_backend:/home/ubuntu/python_backend", "/lib/udev:/mylib/udev"]
    assert sorted(hc["PortBindings"]) == ["8000/tcp", "8001/tcp", "8002/tcp"]
    assert {b["HostIp"] for binds in hc["PortBindings"].values() for b in binds} == {"127.0.0.1"}
    assert inspect["Config"]["Image"] == "nvcr.io/nvidia/tritonserver:22.04-py3"
    # the 22.04 image's CUDA apt source fails `apt-get update` (tests/unit/test_upstream_records.py shows it);
    # setup.sh's apt calls ran without it
    assert "apt leaves out NVIDIA's CUDA repository" in _on_host(host, "docker logs infprov-triton 2>&1")
    # env.sh keeps what setup.sh set (the conda env), none of this start's own settings
    env_sh = _on_host(host, "docker exec infprov-triton cat /opt/infprov/env.sh")
    assert "CONDA_DEFAULT_ENV=test_conda_env" in env_sh and "export PATH=" in env_sh, env_sh
    assert "MAX_BATCH_SIZE" not in env_sh and "MODEL_NAME" not in env_sh and "INFPROV_" not in env_sh, env_sh
    env = dict(e.split("=", 1) for e in inspect["Config"]["Env"])
    assert env["NEURON_RT_VISIBLE_CORES"] == "0-15" and env["NEURON_CORE_RANGE"] == "0:15"
    assert env["MAX_BATCH_SIZE"] == "64"
    assert inspect["State"]["Running"] is True

    # the served config is the one upstream's gen_triton_model.py writes for start.sh's flags
    served = json.loads(_on_host(host, f"curl -sf http://127.0.0.1:8000/v2/models/{MODEL}/config"))
    assert served["max_batch_size"] == 64 and served["backend"] == "python"
    # (Triton's JSON gives int64 dims as strings or numbers depending on its version)
    assert [(i["name"], i["data_type"], [int(d) for d in i["dims"]]) for i in served["input"]] == [
        ("input", "TYPE_FP32", [224, 224, 3])]
    assert served["instance_group"][0]["kind"] == "KIND_MODEL"
    params = {k: v["string_value"] for k, v in served["parameters"].items()}
    assert params["NEURON_CORE_START_INDEX"] == "0" and params["NEURON_CORE_END_INDEX"] == "15"
    # the start script ran setup.sh for real against the stand-in download server: environment built,
    # recorded, and kept in an image for the next start
    _check_setup_ran(host)
    assert _on_host(host, "docker image inspect -f '{{.Id}}' infprov/tritonserver-neuron:22.04").startswith("sha256:")

    # run again: nothing changes, and it says so
    again = runner.invoke(app, ["up", "--sandbox", "--type", "inf1.6xlarge", "--name", CLUSTER, "--yes", *REGION])
    assert again.exit_code == 0, again.output
    assert "nothing changed" in again.stdout
    again_json = _up()
    assert json.loads(again_json.stdout)["server"]["changed"] == 0

    # a new container (as after a reboot or a removed container) starts from the committed image:
    # setup.sh does not run again and nothing is downloaded
    fetched = len(_downloads_from(host["address"]))
    _on_host(host, "docker rm -f infprov-triton >/dev/null")
    restarted = _up()
    assert restarted.exit_code == 0, restarted.output
    assert _docker_inspect(host)["Config"]["Image"] == "infprov/tritonserver-neuron:22.04"
    log = _on_host(host, "docker logs infprov-triton 2>&1")
    assert "start.sh: the environment from the committed image (/opt/infprov/env.sh)" in log
    assert "setup.sh" not in log and "stand-in Miniconda" not in log, log
    assert len(_downloads_from(host["address"])) == fetched
    # the server (PID 1, exec'd by start.sh) runs in the environment setup.sh built
    served_env = _on_host(host, "docker exec infprov-triton cat /proc/1/environ | tr '\\0' '\\n'")
    assert "CONDA_PREFIX=/home/ubuntu/miniconda/envs/test_conda_env" in served_env.splitlines()

    down = runner.invoke(app, ["teardown", "--sandbox", "--name", CLUSTER, "--yes", "--json", *REGION])
    assert down.exit_code == 0, down.output
    assert json.loads(down.stdout)["leftovers"] == []


def _downloads_from(address: str) -> list[str]:
    """The stand-in download server's request lines from one sandbox host (its containers are NATed to it)."""
    from infprov.sandbox import core, downloads

    log = (core.private_dir() / "downloads" / downloads.LOG_FILE).read_text(errors="replace")
    return [line for line in log.splitlines() if line.startswith(address + " ")]


def _check_setup_ran(host: dict[str, Any]) -> None:
    """setup.sh ran in the server container, each of its steps for real, its downloads from the stand-in."""
    from infprov.provision import preflight

    pins = preflight.read_pins(preflight.SANDBOX_PINS)
    log = _on_host(host, "docker logs infprov-triton 2>&1")
    for line in ("stand-in Miniconda installed in /home/ubuntu/miniconda",
                 "stand-in conda: environment test_conda_env as a venv of Python 3.11",
                 "infprov stand-in: common r22.04, core r22.04, backend r22.04",  # setup.sh's cmake flags
                 "Built target triton-python-backend-stub",
                 "Successfully installed neuron-cc-1.13.5.0 protobuf-3.20.3 tensorflow-neuron-1.15.5.2.5.6.0",
                 "setup.sh: environment test_conda_env ready"):
        assert line in log, f"{line!r} not in the container's log:\n{log}"
    # apt ran against the stand-in repository (the packages are in the image)
    assert "infprov-downloads/deb.debian.org/debian bookworm" in log and "build-essential is already" in log
    # cmake<4 from the stand-in PyPI, in the image's Python; the env is a venv with the Neuron stand-ins
    exec_ = "docker exec infprov-triton"
    assert _on_host(host, f"{exec_} cmake --version").startswith("cmake version 3.")
    envs = _on_host(host, f"{exec_} bash -c 'source /opt/infprov/env.sh; echo $CONDA_PREFIX; "
                          f"pip list --format=freeze 2>/dev/null | grep -i neuron; echo $LD_LIBRARY_PATH'")
    assert envs.splitlines()[:3] == ["/home/ubuntu/miniconda/envs/test_conda_env", "neuron-cc==1.13.5.0",
                                     "tensorflow-neuron==1.15.5.2.5.6.0"], envs
    assert envs.splitlines()[3].startswith("/home/ubuntu/miniconda/envs/test_conda_env/lib:")
    # the Boost line sed rewrote, the Boost stand-in unpacked by the stub build, the stub copied over
    pb = "/home/ubuntu/python_backend"
    cmakelists = _on_host(host, f"cat {pb}/CMakeLists.txt")
    assert pins["BOOST_URL"] in cmakelists and pins["BOOST_DEAD_URL"] not in cmakelists
    assert _on_host(host, f"cat {pb}/build/boost/INFPROV-STANDIN.txt").startswith("infprov sandbox stand-in")
    stub = _on_host(host, f"sha256sum {pb}/build/triton_python_backend_stub").split()[0]
    assert _on_host(host, f"{exec_} sha256sum /opt/tritonserver/backends/python/triton_python_backend_stub"
                    ).split()[0] == stub
    # what it fetched, it fetched from the stand-in download server
    fetched = " ".join(_downloads_from(host["address"]))
    for path in ("/repo.anaconda.com/miniconda/Miniconda3-py37_4.10.3-Linux-x86_64.sh",
                 "/deb.debian.org/debian/dists/bookworm/Release", "/pypi.org/simple/cmake/",
                 "/pypi.org/packages/cmake-3.", "/pip.repos.neuron.amazonaws.com/tensorflow-neuron/",
                 "/pip.repos.neuron.amazonaws.com/packages/neuron_cc-1.13.5.0-py3-none-any.whl",
                 "/archives.boost.io/release/1.76.0/source/boost_1_76_0.tar.gz"):
        assert f"GET {path}" in fetched, path


def test_server_failure_names_the_host_and_how_to_continue(sandbox_hosts: list[dict[str, Any]],
                                                          cluster_home: Path) -> None:
    # a server that exits at once (Triton given a model repository that does not exist): never ready
    bad = runner.invoke(app, ["up", "--sandbox", "--type", "inf1.6xlarge", "--name", CLUSTER, "--yes",
                              "--skip-server", *REGION])
    assert bad.exit_code == 0, bad.output
    from infprov.floor import paths
    from infprov.inventory import store
    from infprov.provision import server
    from infprov.sandbox import core

    inv = store.load(paths.inventory_file())
    ids = [h.name for h in inv.in_cluster(CLUSTER)]
    # the container dies at once: the wait notices within seconds, not after its 300 s
    served = server.provision(CLUSTER, ids, group_vars=core.server_group_vars(),
                              extra_vars={"infprov_ready_timeout": 300,
                                          "run_command": "tritonserver --model-repository /nonexistent"})
    try:
        assert not served.ok
        [h] = served.hosts
        assert h.ready is False and "Triton and the model are ready" in h.error
        assert "stopped (exited, exit code 1)" in h.error, h.error
        assert "/nonexistent" in h.error, h.error  # the container log tail: Triton's own complaint
        assert served.elapsed < 120, served.elapsed
    finally:
        down = runner.invoke(app, ["teardown", "--sandbox", "--name", CLUSTER, "--yes", *REGION])
        assert down.exit_code == 0, down.output


def test_logs_and_ssh_reach_the_server(sandbox_hosts: list[dict[str, Any]], cluster_home: Path) -> None:
    import subprocess
    import sys

    up = _up()
    assert up.exit_code == 0, up.output
    try:
        [host] = json.loads(up.stdout)["server"]["hosts"]
        base = [sys.executable, "-m", "infprov.provision.cli"]
        logs = subprocess.run([*base, "logs", "--name", CLUSTER, "--tail", "50"], capture_output=True, text=True,
                              timeout=60)
        assert logs.returncode == 0, logs.stderr
        assert "Started HTTPService at 0.0.0.0:8000" in logs.stdout + logs.stderr
        ssh = subprocess.run([*base, "ssh", "--name", CLUSTER, "--", "docker", "ps", "--format", "{{.Names}}"],
                             capture_output=True, text=True, timeout=60)
        assert ssh.returncode == 0, ssh.stderr
        assert ssh.stdout.split() == ["infprov-triton"]
        two = subprocess.run([*base, "ssh", "--host", host["address"], "--name", CLUSTER], capture_output=True,
                             text=True, timeout=60)
        assert two.returncode == 2 and "cannot be used together" in two.stderr
    finally:
        down = runner.invoke(app, ["teardown", "--sandbox", "--name", CLUSTER, "--yes"])
        assert down.exit_code == 0, down.output


def test_ctrl_c_during_the_server_step_says_how_to_continue_and_up_continues(
    sandbox_hosts: list[dict[str, Any]], cluster_home: Path
) -> None:
    """SIGINT once the playbook has begun: exit 130 with the command that picks up, which then serves."""
    run = Child.infprov("up", "--sandbox", "--type", "inf1.6xlarge", "--name", CLUSTER, "--yes", *REGION)
    try:
        run.wait_for("provisioning Triton")
        run.send(signal.SIGINT)
        assert run.finish(120) == 130, run.err
        assert "interrupted" in run.err
        assert f"infprov up --type inf1.6xlarge --name {CLUSTER} --sandbox` again to continue" in run.err
        again = _up()
        assert again.exit_code == 0, again.output
        [host] = json.loads(again.stdout)["server"]["hosts"]
        assert host["ready"] is True
    finally:
        run.kill()
        down = runner.invoke(app, ["teardown", "--sandbox", "--name", CLUSTER, "--yes", *REGION])
        assert down.exit_code == 0, down.output


def test_the_play_refuses_a_host_with_less_free_disk_than_it_needs(sandbox_hosts: list[dict[str, Any]],
                                                                    cluster_home: Path) -> None:
    """The disk check measures the docker root's free space against min_free_gib: below it the play stops
    at that check, with the figures and the fix; at or above it the play goes on and serves."""
    launched = runner.invoke(app, ["up", "--sandbox", "--type", "inf1.xlarge", "--name", CLUSTER, "--yes",
                                   "--skip-server", *REGION])
    assert launched.exit_code == 0, launched.output
    from infprov.floor import paths
    from infprov.inventory import store
    from infprov.provision import server
    from infprov.sandbox import core

    ids = [h.name for h in store.load(paths.inventory_file()).in_cluster(CLUSTER)]
    try:
        host = {"instance_id": ids[0]}
        free = int(_on_host(host, "df -P -BG /var/lib/docker | awk 'NR==2 {gsub(\"G\",\"\",$4); print $4}'"))
        sandbox_vars = core.server_group_vars()
        short = server.provision(CLUSTER, ids, group_vars=sandbox_vars, extra_vars={"infprov_min_free_gib": free + 20})
        assert not short.ok
        [h] = short.hosts
        assert "Enough free disk for the images" in h.error, h.error
        assert f"GiB free under /var/lib/docker, {free + 20} GiB needed" in h.error
        assert "infprov up --disk" in h.error
        assert _on_host(host, "docker ps -aq") == "", "nothing was started"
        enough = server.provision(CLUSTER, ids, group_vars=sandbox_vars,
                                  extra_vars={"infprov_min_free_gib": max(free - 5, 0)})
        assert enough.ok, enough.hosts
    finally:
        down = runner.invoke(app, ["teardown", "--sandbox", "--name", CLUSTER, "--yes", *REGION])
        assert down.exit_code == 0, down.output
