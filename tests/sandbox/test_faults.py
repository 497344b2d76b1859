"""Faults injected on the sandbox: each case ends where `up` run again converges (one instance, one
server container) and `teardown` leaves nothing tagged, nothing in the inventory and no container.

`pytest -m faults` runs these alone; the summary's passed/total is faults survived / tried."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from infprov.provision.cli import app
from tests.ec2_fault_proxy import Fault, FaultProxy
from tests.hostshell import sandbox_ec2
from tests.procs import Child, infprov_argv, served_on_host, wait_until

pytestmark = [pytest.mark.sandbox, pytest.mark.faults]
runner = CliRunner()
TYPE = "inf1.xlarge"
TAG_CLUSTER = "infprov:cluster"
CLIENT_THREADS = 2  # bench's default --threads
MODEL = "rn50-4neuroncores-default"  # what an inf1.xlarge serves
_INSTANCE_RE = re.compile(r"launched (i-[0-9a-f]+)")


# ---------------------------------------------------------------- the machinery


class Run(Child):
    """An infprov command in a process of its own (signals at their defaults), its output read as it comes."""

    def __init__(self, *argv: str) -> None:
        super().__init__(infprov_argv(*argv))

    def instance_id(self) -> str:
        found = _INSTANCE_RE.search(self.err)
        assert found, self.err
        return found.group(1)


def _one_clean_error(run: Run, code: int) -> None:
    """A failure reads as one error line with a hint, never as a traceback."""
    assert code == 1, f"exit {code}:\n{run.err}"
    assert "Traceback" not in run.err, run.err
    assert [line for line in run.err.splitlines() if line.startswith("error:")], run.err


def _tagged(cluster: str) -> dict[str, list[str]]:
    """What EC2 (moto) still holds for the cluster: live instances, security groups, volumes."""
    ec2 = sandbox_ec2()
    tag = [{"Name": f"tag:{TAG_CLUSTER}", "Values": [cluster]}]
    alive = ["pending", "running", "stopping", "stopped", "shutting-down"]
    instances = [i["InstanceId"] for r in ec2.describe_instances(
        Filters=[*tag, {"Name": "instance-state-name", "Values": alive}])["Reservations"] for i in r["Instances"]]
    groups = [g["GroupId"] for g in ec2.describe_security_groups(Filters=tag)["SecurityGroups"]]
    volumes = [v["VolumeId"] for v in ec2.describe_volumes(Filters=tag)["Volumes"]]
    return {"instances": sorted(instances), "security_groups": groups, "volumes": volumes}


def _host_of(instance_id: str) -> str:
    from infprov.sandbox import core

    entry = core.host_for_instance(instance_id)
    assert entry is not None, f"no sandbox host holds {instance_id}"
    return str(entry["name"])


def _containers(host: str) -> list[tuple[str, str]]:
    from infprov.sandbox import core

    proc = subprocess.run(["docker", "-H", core.docker_socket(host), "ps", "-a", "--format", "{{.Names}} {{.State}}"],
                          capture_output=True, text=True, timeout=30, check=True)
    return sorted(tuple(line.split(" ", 1)) for line in proc.stdout.splitlines())  # type: ignore[misc]


def _inventory_hosts(cluster: str) -> list[str]:
    from infprov.floor import paths
    from infprov.inventory import store

    return [h.name for h in store.load(paths.inventory_file()).in_cluster(cluster)]


def _up(cluster: str) -> dict[str, Any]:
    up = runner.invoke(app, ["up", "--sandbox", "--type", TYPE, "--name", cluster, "--yes", "--json"])
    assert up.exit_code == 0, up.output
    doc: dict[str, Any] = json.loads(up.stdout)
    assert doc["server"]["ok"] is True, doc
    return doc


def _converges_then_clean(cluster: str, touched_hosts: tuple[str, ...] = ()) -> dict[str, Any]:
    """`up` again serves with one instance and one container; `teardown` then leaves nothing at all."""
    doc = _up(cluster)
    [host] = doc["server"]["hosts"]
    assert _tagged(cluster)["instances"] == [host["instance_id"]], "a duplicate instance"
    name = _host_of(host["instance_id"])
    assert _containers(name) == [("infprov-triton", "running")], "a duplicate or stopped server container"
    down = runner.invoke(app, ["teardown", "--sandbox", "--name", cluster, "--yes", "--json"])
    assert down.exit_code == 0, down.output
    assert json.loads(down.stdout)["leftovers"] == []
    assert _tagged(cluster) == {"instances": [], "security_groups": [], "volumes": []}
    assert _inventory_hosts(cluster) == []
    for h in {name, *touched_hosts}:
        assert _containers(h) == [], f"{h} still runs containers after teardown"
    return doc


@pytest.fixture()
def home(sandbox_hosts: list[dict[str, Any]], cluster_home: Path) -> Iterator[Path]:
    yield cluster_home


# ---------------------------------------------------------------- a host's faults


def test_sshd_killed_during_the_server_playbook(home: Path) -> None:
    from infprov.sandbox import core

    run = Run("up", "--sandbox", "--type", TYPE, "--name", "f-sshd", "--yes")
    try:
        run.wait_for("python_backend at r22.04 ...")
        host = _host_of(run.instance_id())
        assert core.stop_daemon(host, "sshd"), "no sshd found on the host"
        _one_clean_error(run, run.finish())
        assert "infprov up --type inf1.xlarge --name f-sshd --sandbox` again to continue" in run.err
    finally:
        run.kill()
    core.start_daemon(host, "sshd")  # the host comes back
    _converges_then_clean("f-sshd", (host,))


def test_link_down_for_5_s_mid_run_is_ridden_out(home: Path) -> None:
    from infprov.sandbox import core

    run = Run("up", "--sandbox", "--type", TYPE, "--name", "f-link", "--yes")
    host = ""
    try:
        run.wait_for("python_backend at r22.04 ...")
        host = _host_of(run.instance_id())
        core.set_link(host, up=False)
        try:
            time.sleep(5)
        finally:
            core.set_link(host, up=True)
        assert run.finish() == 0, run.err
    finally:
        run.kill()
        if host:
            core.set_link(host, up=True)
    _converges_then_clean("f-link", (host,))


def test_dockerd_restarted_while_the_server_starts(home: Path) -> None:
    from infprov.sandbox import core

    run = Run("up", "--sandbox", "--type", TYPE, "--name", "f-dockerd", "--yes")
    try:
        run.wait_for("Triton and the model are ready ...")
        host = _host_of(run.instance_id())
        core.restart_daemon(host, "dockerd")
        code = run.finish()
        if code != 0:  # the container stopped with its daemon before it was ready: said so, in one line
            _one_clean_error(run, code)
            assert "stopped" in run.err, run.err
    finally:
        run.kill()
    _converges_then_clean("f-dockerd", (host,))


def test_dockerd_restarted_after_ready_then_up_restarts_the_server(home: Path) -> None:
    from infprov.sandbox import core

    doc = _up("f-dockerd2")
    host = _host_of(doc["server"]["hosts"][0]["instance_id"])
    core.restart_daemon(host, "dockerd")
    assert _containers(host) == [("infprov-triton", "exited")]
    again = _converges_then_clean("f-dockerd2")
    assert again["server"]["changed"] > 0


def test_triton_container_killed_after_ready_is_noticed_and_restarted(home: Path) -> None:
    from infprov.sandbox import core

    doc = _up("f-triton")
    host = _host_of(doc["server"]["hosts"][0]["instance_id"])
    subprocess.run(["docker", "-H", core.docker_socket(host), "kill", "infprov-triton"], check=True,
                   capture_output=True, timeout=30)
    assert _containers(host) == [("infprov-triton", "exited")]
    again = _converges_then_clean("f-triton")
    assert again["server"]["changed"] > 0 and again["server"]["hosts"][0]["ready"] is True


# ---------------------------------------------------------------- the EC2 API's faults


@pytest.fixture()
def proxied(home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[FaultProxy]]:
    """Route this process's sandbox EC2 calls through a FaultProxy (set the rule with proxy.rule)."""
    from infprov.provision import providers
    from infprov.sandbox import core
    from infprov.sandbox.provider import SandboxProvider

    proxy = FaultProxy(core.status()["ec2_endpoint"], lambda form, n: None)
    real = providers.connect

    def through_proxy(region: str | None, sandbox: bool) -> providers.Provider:
        prov = real(region, sandbox)
        if not isinstance(prov, SandboxProvider):
            return prov
        access_key, secret_key = prov.core.ec2_credentials()
        return SandboxProvider(prov.region, endpoint_url=proxy.url, access_key=access_key,
                                         secret_key=secret_key, core=prov.core)

    monkeypatch.setattr(providers, "connect", through_proxy)
    with proxy:
        yield [proxy]


def test_ec2_throttling_and_5xx_for_a_while_are_ridden_out(proxied: list[FaultProxy]) -> None:
    [proxy] = proxied

    def rule(form: dict[str, str], before: int) -> Fault | None:
        # every call is first throttled; RunInstances then also meets a server error
        if before == 0:
            return (503, "RequestLimitExceeded")
        if form.get("Action") == "RunInstances" and before == 1:
            return (500, "InternalError")
        return None

    proxy.rule = rule
    doc = _up("f-throttle")
    assert {a for a, _, _ in proxy.injected} >= {"RunInstances", "DescribeInstances", "CreateSecurityGroup"}
    assert proxy.forwarded.count("RunInstances") == 1  # the retries never launched twice
    assert len(doc["launched"]) == 1
    proxy.rule = lambda form, n: None
    _converges_then_clean("f-throttle")


def test_answers_lost_after_ec2_acted_are_ridden_out(proxied: list[FaultProxy]) -> None:
    """A create that EC2 carried out but whose answer was lost (a 5xx on the way back): the retry
    meets the thing already made."""
    [proxy] = proxied
    lost = {"CreateSecurityGroup", "ImportKeyPair", "AuthorizeSecurityGroupIngress", "RunInstances"}

    def rule(form: dict[str, str], before: int) -> Fault | None:
        return (503, "ServiceUnavailable", True) if form.get("Action") in lost and before == 0 else None

    proxy.rule = rule
    _up("f-lost")
    assert {a for a, _, _ in proxy.injected} == lost
    assert len(_tagged("f-lost")["instances"]) == 1
    proxy.rule = lambda form, n: None
    _converges_then_clean("f-lost")


def test_no_capacity_in_the_first_zone_launches_in_the_next(proxied: list[FaultProxy]) -> None:
    [proxy] = proxied
    ec2 = sandbox_ec2()
    subnets = {s["AvailabilityZone"]: s["SubnetId"] for s in ec2.describe_subnets(
        Filters=[{"Name": "default-for-az", "Values": ["true"]}])["Subnets"]}
    first = subnets["us-east-1a"]

    def rule(form: dict[str, str], before: int) -> Fault | None:
        if form.get("Action") == "RunInstances" and form.get("SubnetId") == first:
            return (500, "InsufficientInstanceCapacity")
        return None

    proxy.rule = rule
    doc = _up("f-capacity")
    [host] = doc["hosts"]
    assert host["availability_zone"] != "us-east-1a"
    assert ("RunInstances", 500, "InsufficientInstanceCapacity") in proxy.injected
    proxy.rule = lambda form, n: None
    _converges_then_clean("f-capacity")


# ---------------------------------------------------------------- Ctrl-C


def test_ctrl_c_while_the_instance_comes_up(home: Path) -> None:
    run = Run("up", "--sandbox", "--type", TYPE, "--name", "f-int-up", "--yes")
    try:
        run.wait_for("launched i-")
        run.send(signal.SIGINT)
        assert run.finish() == 130, run.err
        assert "Traceback" not in run.err
        assert "infprov up --type inf1.xlarge --name f-int-up --sandbox` again to continue" in run.err
    finally:
        run.kill()
    _converges_then_clean("f-int-up")


def test_ctrl_c_during_bench_keeps_partial_results_and_leaves_no_client_running(home: Path, tmp_path: Path) -> None:
    doc = _up("f-int-bench")
    host = _host_of(doc["server"]["hosts"][0]["instance_id"])
    out = tmp_path / "bench"
    run = Run("bench", "--name", "f-int-bench", "--limit", "60", "--warmup", "0", "--out", str(out),
              "--verbose")  # the client's own lines show, among them the one that says its measurement began
    try:
        run.wait_for("Measuring in windows")  # the warm-up is over: the client's measurement has begun
        iid = doc["server"]["hosts"][0]["instance_id"]
        base = served_on_host(iid, MODEL)
        # no warm-up (--warmup 0), so every answer now is measured; more answers than the client has threads: one
        # thread then had two answered, so the client took in the first before it sent the second
        wait_until("requests answered after the measurement began",
                   lambda: served_on_host(iid, MODEL) > base + CLIENT_THREADS)
        run.send(signal.SIGINT)
        assert run.finish(90) == 1, run.err
    finally:
        run.kill()
    assert "partial" in run.err and "Traceback" not in run.err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["partial"] is True
    [point] = summary["hosts"][0]["points"]
    assert point["partial"] is True and point["requests"] > 0
    assert _containers(host) == [("infprov-triton", "running")], "the benchmark client was left on the host"
    _converges_then_clean("f-int-bench")


def test_ctrl_c_during_teardown(home: Path) -> None:
    doc = _up("f-int-down")
    host = _host_of(doc["server"]["hosts"][0]["instance_id"])
    run = Run("teardown", "--sandbox", "--name", "f-int-down", "--yes")
    try:
        run.wait_for("terminating i-")
        run.send(signal.SIGINT)
        assert run.finish() == 130, run.err
        assert "Traceback" not in run.err
    finally:
        run.kill()
    _converges_then_clean("f-int-down", (host,))


# ---------------------------------------------------------------- runs that meet


def test_two_ups_of_one_cluster_at_once(home: Path) -> None:
    runs = [Run("up", "--sandbox", "--type", TYPE, "--name", "f-twice", "--yes", "--json") for _ in range(2)]
    try:
        codes = [r.finish(300) for r in runs]
    finally:
        for r in runs:
            r.kill()
    assert codes == [0, 0], "\n".join(r.err for r in runs)
    docs = [json.loads(r.out) for r in runs]
    assert {d["server"]["hosts"][0]["instance_id"] for d in docs} == set(_tagged("f-twice")["instances"])
    assert sum(len(d["launched"]) for d in docs) == 1
    _converges_then_clean("f-twice")


def test_teardown_while_up_runs_leaves_nothing_running(home: Path) -> None:
    up = Run("up", "--sandbox", "--type", TYPE, "--name", "f-race", "--yes")
    try:
        up.wait_for("provisioning Triton")
        host = _host_of(up.instance_id())
        down = Run("teardown", "--sandbox", "--name", "f-race", "--yes", "--json")
        assert down.finish(300) == 0, down.err
        code = up.finish(300)
    finally:
        up.kill()
    assert code in (0, 1) and "Traceback" not in up.err, up.err
    assert json.loads(down.out)["leftovers"] == []
    assert _tagged("f-race") == {"instances": [], "security_groups": [], "volumes": []}
    assert _inventory_hosts("f-race") == []
    assert _containers(host) == [], "a server container outlived the teardown"
    _converges_then_clean("f-race", (host,))


# ---------------------------------------------------------------- the controller's disk


@pytest.fixture()
def small_home(sandbox_hosts: list[dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """INFPROV_HOME on a tmpfs of 2 MiB of its own, so it can be filled or made read-only."""
    mnt = tmp_path / "small-home"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=700", "infprov-faults", str(mnt)], check=True)
    try:
        home = mnt / "home"
        monkeypatch.setenv("INFPROV_HOME", str(home))
        yield home
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(mnt)], check=False)
        subprocess.run(["umount", str(mnt)], check=True)


def _fill(folder: Path) -> Path:
    filler = folder / "filler"
    with open(filler, "wb") as fh:
        try:
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
        except OSError:
            pass
    return filler


@pytest.mark.parametrize("fault", ["full", "read-only"])
def test_home_full_or_read_only_while_writing_the_inventory_keeps_the_old_one(small_home: Path, fault: str) -> None:
    a = runner.invoke(app, ["up", "--sandbox", "--type", TYPE, "--name", "f-disk-a", "--yes", "--skip-server"])
    assert a.exit_code == 0, a.output
    inventory = small_home / "inventory.yml"
    before = inventory.read_bytes()
    mount = small_home.parent
    filler = None
    if fault == "full":
        filler = _fill(mount)
    else:
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
    try:
        b = runner.invoke(app, ["up", "--sandbox", "--type", TYPE, "--name", "f-disk-b", "--yes", "--skip-server"])
        assert b.exit_code == 1, b.output
        assert b.exception is None or isinstance(b.exception, SystemExit), b.exception
        [error] = [line for line in b.stderr.splitlines() if line.startswith("error:")]
        assert "No space left" in error or "Read-only" in error or "read-only" in error, b.stderr
        assert inventory.read_bytes() == before  # the old inventory, whole
        assert _inventory_hosts("f-disk-a") and not _inventory_hosts("f-disk-b")
    finally:
        if filler is not None:
            filler.unlink()
        else:
            subprocess.run(["mount", "-o", "remount,rw", str(mount)], check=True)
    # room again: `up` of b converges with one instance, and both go away without a trace
    again = runner.invoke(app, ["up", "--sandbox", "--type", TYPE, "--name", "f-disk-b", "--yes", "--skip-server",
                                "--json"])
    assert again.exit_code == 0, again.output
    assert len(_tagged("f-disk-b")["instances"]) == 1
    for cluster in ("f-disk-b", "f-disk-a"):
        down = runner.invoke(app, ["teardown", "--sandbox", "--name", cluster, "--yes", "--json"])
        assert down.exit_code == 0, down.output
        assert json.loads(down.stdout)["leftovers"] == []
        assert _tagged(cluster) == {"instances": [], "security_groups": [], "volumes": []}
        assert _inventory_hosts(cluster) == []
