"""Faults injected on the sandbox: each case ends where `up` run again converges (one instance, one
server container) and `teardown` leaves nothing tagged, nothing in the inventory and no container.

`pytest -m faults` runs these alone; the summary's passed/total is faults survived / tried."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infprov.provision.cli import app
from tests.faultkit import (
    TYPE,
    Run,
    _containers,
    _converges_then_clean,
    _host_of,
    _inventory_hosts,
    _one_clean_error,
    _tagged,
    _up,
    runner,
)

pytestmark = [pytest.mark.sandbox, pytest.mark.faults]


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
