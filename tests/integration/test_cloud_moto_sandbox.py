"""`--sandbox` over a real moto EC2 server: the endpoint and the host mapping; and the endpoint itself."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from infprov.floor.errors import InfprovError, WaitTimeout
from infprov.provision import access, cloud, planning, reach, specs
from infprov.provision.providers import AwsProvider
from infprov.sandbox import daemon, ec2endpoint
from infprov.sandbox import provider as sandbox_provider
from infprov.sandbox.provider import SandboxProvider
from tests.moto_cloud import FAST, REGION, SshSeen, _cli, _free_port, _live, _managed_everything, _up

# ---------------------------------------------------------------- --sandbox: the endpoint and host mapping


class FakeCore:
    """The sandbox core's contract (status / assign_host / release_host) over a given endpoint."""

    def __init__(self, endpoint: str | None, hosts: list[dict[str, Any]]) -> None:
        self.endpoint = endpoint
        self.hosts = hosts
        self.assigned: dict[str, dict[str, Any]] = {}
        self.released: list[str] = []
        self.off: set[str] = set()

    def status(self) -> dict[str, Any]:
        return {"ec2_endpoint": self.endpoint, "hosts": self.hosts}

    def ec2_credentials(self) -> tuple[str, str]:  # a plain moto takes any
        return "testing", "testing"

    def assign_host(self, instance_id: str, neuron_devices: int | None = None) -> dict[str, Any]:
        if instance_id not in self.assigned:
            free = [h for h in self.hosts if h not in self.assigned.values()]
            self.assigned[instance_id] = free[0]
        if neuron_devices is not None:  # as the real one: the host shows the type's devices
            self.assigned[instance_id]["neuron_devices"] = neuron_devices
        return self.assigned[instance_id]

    def release_host(self, instance_id: str) -> None:
        self.released.append(instance_id)
        self.assigned.pop(instance_id, None)

    def power_off_host(self, instance_id: str) -> None:  # the real one powers the host off, disk kept
        self.off.add(instance_id)

    def boot_host(self, instance_id: str) -> None:
        self.off.discard(instance_id)

    def free_hosts(self) -> int:
        return sum(1 for h in self.hosts if h not in self.assigned.values())

    def reconcile(self, live: set[str]) -> list[str]:
        stale = [i for i in self.assigned if i not in live]
        for instance_id in stale:
            self.release_host(instance_id)
        return stale


def _sandbox_host(name: str, address: str, port: int, key_file: str, devices: int = 4) -> dict[str, Any]:
    return {"name": name, "address": address, "port": port, "user": "ubuntu", "key_file": key_file,
            "neuron_devices": devices}


def test_sandbox_not_up_says_how_to_start_it(prov: AwsProvider, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox_provider, "fleet", lambda: FakeCore(None, []))
    r = _cli(["up", "--skip-server", "--type", "inf1.6xlarge", "--sandbox", "--yes"])
    assert r.exit_code == 1
    assert "sandbox is not up" in r.stderr and "infprov sandbox up" in r.stderr


def test_sandbox_region_is_fixed(prov: AwsProvider, monkeypatch: pytest.MonkeyPatch, moto_url: str) -> None:
    monkeypatch.setattr(sandbox_provider, "fleet", lambda: FakeCore(moto_url, []))
    r = _cli(["status", "--sandbox", "--region", "eu-west-1"])
    assert r.exit_code == 2 and "us-east-1 only" in r.stderr


def test_sandbox_maps_instances_to_hosts_and_teardown_releases_them(
    prov: AwsProvider, no_ssh: SshSeen, monkeypatch: pytest.MonkeyPatch, moto_url: str, tmp_path: Path
) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL")  # --sandbox finds the endpoint through the sandbox itself
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    key = str(tmp_path / "sandbox_key")
    core = FakeCore(moto_url, [_sandbox_host("h1", "10.237.0.11", 22, key),
                               _sandbox_host("h2", "10.237.0.12", 22, key, devices=1)])
    monkeypatch.setattr(sandbox_provider, "fleet", lambda: core)
    r = _cli(["up", "--skip-server", "--type", "inf1.6xlarge", "--count", "3", "--sandbox", "--yes"])
    assert r.exit_code == 2 and "sandbox up --hosts 3" in r.stderr

    r = _cli(["up", "--skip-server", "--type", "inf1.6xlarge", "--count", "2", "--sandbox", "--yes", "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["sandbox"] and doc["ssh_cidr"].endswith("/32")
    by_address = {h["address"]: h for h in doc["hosts"]}
    assert set(by_address) == {"10.237.0.11", "10.237.0.12"}
    # the host that had one device now shows the inf1.6xlarge's four, as the instance would
    assert by_address["10.237.0.12"]["neuron_devices"] == 4 and by_address["10.237.0.12"]["neuron_cores"] == 16
    assert {h.key_file for h in no_ssh.hosts} == {key}

    # a second cluster when no host is free: refused before anything is made for it
    r = _cli(["up", "--skip-server", "--type", "inf1.xlarge", "--name", "second", "--sandbox", "--yes"])
    assert r.exit_code == 2 and "0 of 2 are free" in r.stderr, r.output
    made = prov.client.describe_security_groups(
        Filters=[{"Name": "group-name", "Values": [planning.security_group_name("second")]}])
    assert made["SecurityGroups"] == []
    assert prov.instances({f"tag:{specs.TAG_CLUSTER}": ["second"]}) == []

    # a host still held by an instance the endpoint no longer has (a teardown cut short) is freed
    core.assigned["i-00000000gone00000"] = core.hosts[0]
    r = _cli(["teardown", "--sandbox", "--yes", "--json"])
    assert r.exit_code == 0, r.output
    assert "i-00000000gone00000" in core.released
    assert sorted(i for i in core.released if i != "i-00000000gone00000") == sorted(
        h["instance_id"] for h in doc["hosts"])
    assert _managed_everything(prov) == [] and core.assigned == {}


def test_sandbox_ssh_wait_is_real_against_a_loopback_sshd(
    prov: AwsProvider, monkeypatch: pytest.MonkeyPatch, moto_url: str, infprov_home: Path
) -> None:
    from tests import loopback_sshd

    reason = loopback_sshd.can_run()
    if reason:
        pytest.skip(f"loopback sshd: {reason}")
    # sshd reads the authorized keys as user ubuntu: every folder above them must be traversable.
    workdir = Path(tempfile.mkdtemp(prefix="infprov-cloud-sshd-"))
    workdir.chmod(0o755)
    (sshd,) = loopback_sshd.start_hosts(workdir, 1)
    try:
        core = FakeCore(moto_url, [_sandbox_host("h1", "127.0.0.1", sshd.port, str(sshd.key_file))])
        sandbox = SandboxProvider(REGION, endpoint_url=moto_url, access_key="testing", secret_key="testing", core=core)
        result = cloud.up(specs.UpSpec(instance_type="inf1.6xlarge", sandbox=True, yes=True), provider=sandbox,
                          timeouts=FAST)
        (host,) = result.hosts
        assert (host.address, host.port) == ("127.0.0.1", sshd.port)
        pinned = f"[127.0.0.1]:{sshd.port}"
        known_hosts = infprov_home / "known_hosts"
        assert pinned in known_hosts.read_text()

        sshd.stop()
        with pytest.raises(WaitTimeout) as err:  # the same wait, with nothing listening
            reach.wait_for_ssh(list(result.hosts), FAST)
        assert "SSH port" in err.value.message

        sshd.new_host_key()  # the reused host now shows another key: no waiting, a clear refusal
        sshd.start()
        started = time.monotonic()
        with pytest.raises(InfprovError) as err:
            reach.wait_for_ssh(list(result.hosts), FAST)
        assert "CHANGED" in err.value.message and time.monotonic() - started < FAST.ssh_login

        done = cloud.teardown(sandbox=True, yes=True, provider=sandbox, timeouts=FAST)
        assert done.ok and core.released == [host.instance_id]
        assert pinned not in known_hosts.read_text()  # the gone instance's key is forgotten
    finally:
        sshd.stop()
        shutil.rmtree(workdir, ignore_errors=True)


# ---------------------------------------------------------------- the endpoint itself


def test_endpoint_start_is_idempotent_and_refuses_a_taken_port(tmp_path: Path, moto_url: str) -> None:
    taken = int(moto_url.rsplit(":", 1)[1])
    with pytest.raises(InfprovError) as err:
        ec2endpoint.start(tmp_path / "other", taken)
    assert str(taken) in err.value.message and "INFPROV_SANDBOX_EC2_PORT" in err.value.hint
    assert ec2endpoint.is_running(tmp_path / "other") is None


def test_endpoint_stop_ends_only_its_own_process(tmp_path: Path) -> None:
    state = tmp_path / "ep"
    url = ec2endpoint.start(state, _free_port())
    assert ec2endpoint.start(state, _free_port()) == url  # already running: the same one
    pid = json.loads((state / ec2endpoint.PID_FILE).read_text())["pid"]
    (state / ec2endpoint.PID_FILE).write_text(json.dumps({"pid": os.getpid(), "port": 1, "start": 0}))
    ec2endpoint.stop(state)  # a PID file naming another process: that process is left alone
    assert os.path.exists(f"/proc/{os.getpid()}")
    (state / ec2endpoint.PID_FILE).write_text(
        json.dumps({"pid": pid, "port": int(url.rsplit(":", 1)[1]), "start": daemon.start_ticks(pid)})
    )
    assert ec2endpoint.is_running(state) == url
    ec2endpoint.stop(state)
    assert ec2endpoint.is_running(state) is None
    assert not os.path.exists(f"/proc/{pid}")  # ended and reaped


def test_console_output_is_read_as_text(prov: AwsProvider) -> None:
    result = _up(prov, name="console")
    [iid] = result.launched
    text = prov.console_output(iid)
    assert isinstance(text, str) and text  # moto serves a fixed console text
    assert prov.console_output("i-0000000000000dead") == ""  # an unknown instance: nothing to check against


def test_ctrl_c_while_the_group_is_made_says_how_to_continue(prov: AwsProvider, monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    def interrupted(*args: Any, **kwargs: Any) -> str:
        raise KeyboardInterrupt

    monkeypatch.setattr(access, "ensure_security_group", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _up(prov, name="cut")
    err = capsys.readouterr().err
    assert "interrupted while making the key pair and security group" in err
    assert "infprov up --type inf1.6xlarge --name cut" in err and "infprov teardown --name cut" in err
    assert _live(prov, "cut") == []


def test_an_endpoint_of_an_older_kind_is_replaced_not_reused(tmp_path: Path) -> None:
    state = tmp_path / "ep"
    url = ec2endpoint.start(state, _free_port())  # no power watch: not what a sandbox needs now
    first = json.loads((state / ec2endpoint.PID_FILE).read_text())["pid"]
    try:
        assert ec2endpoint.current(state, watch_hosts=False) == url
        assert ec2endpoint.current(state, watch_hosts=True) is None
        again = ec2endpoint.start(state, _free_port(), watch_hosts=True)
        second = json.loads((state / ec2endpoint.PID_FILE).read_text())["pid"]
        assert second != first and not os.path.exists(f"/proc/{first}")  # the old one ended
        assert ec2endpoint.current(state, watch_hosts=True) == again
    finally:
        ec2endpoint.stop(state)
