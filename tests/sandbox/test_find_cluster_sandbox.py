"""Commands find their cluster in the inventory (its region, and whether it lives in the sandbox), and
`infprov tunnel` brings a host's Triton to this machine."""

from __future__ import annotations

import json
import signal
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from infprov.provision.cli import app
from tests.moto_cloud import _free_port
from tests.procs import Child, wait_until

pytestmark = pytest.mark.sandbox
runner = CliRunner()


def _up(name: str, *extra: str) -> Any:
    return runner.invoke(app, ["up", "--sandbox", "--type", "inf1.xlarge", "--name", name, "--yes", "--json", *extra])


def _inventory_clusters() -> list[str]:
    from infprov.floor import paths
    from infprov.inventory import store

    return store.load(paths.inventory_file()).clusters


def test_plain_teardown_removes_the_sandbox_cluster_the_inventory_records(
    sandbox_hosts: list[dict[str, Any]], cluster_home: Path
) -> None:
    assert _inventory_clusters() == [], "another test left a cluster behind"
    first = _up("findme", "--skip-server")
    assert first.exit_code == 0, first.output
    try:
        status = runner.invoke(app, ["status", "--json"])  # no --sandbox: the inventory says where it is
        assert status.exit_code == 0, status.output
        assert [c["name"] for c in json.loads(status.stdout)["clusters"]] == ["findme"]

        second = _up("findme2", "--skip-server")
        assert second.exit_code == 0, second.output
        both = runner.invoke(app, ["teardown", "--yes"])
        assert both.exit_code == 2
        assert "2 clusters: findme, findme2" in both.stderr and "--name" in both.stderr
        one = runner.invoke(app, ["teardown", "--name", "findme2", "--yes"])
        assert one.exit_code == 0, one.output
    finally:
        down = runner.invoke(app, ["teardown", "--yes", "--json"])  # the one left, found without flags
    assert down.exit_code == 0, down.output
    doc = json.loads(down.stdout)
    assert doc["leftovers"] == [] and len(doc["instances"]) == 1
    assert _inventory_clusters() == []


def test_tunnel_forwards_tritons_port_to_this_machine(sandbox_hosts: list[dict[str, Any]],
                                                      cluster_home: Path) -> None:
    up = _up("tunnel")
    assert up.exit_code == 0, up.output
    port = _free_port()
    tunnel = Child.infprov("tunnel", "--name", "tunnel", "--local-port", str(port))
    try:
        def ready() -> bool:
            assert tunnel.proc.poll() is None, tunnel.err
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=3) as resp:
                    return resp.status == 200
            except OSError:
                return False

        wait_until("Triton's health through the tunnel", ready, timeout=120)
        # a second tunnel on the port the first one holds: one line, nothing of ssh's
        taken = runner.invoke(app, ["tunnel", "--name", "tunnel", "--local-port", str(port)])
        assert taken.exit_code == 1, taken.output
        assert taken.stderr.startswith(f"error: port {port} on 127.0.0.1 is taken here")
        assert len(taken.stderr.strip().splitlines()) == 1 and "--local-port" in taken.stderr
    finally:
        if tunnel.proc.poll() is None:
            tunnel.send(signal.SIGTERM)
        tunnel.finish(60)
        down = runner.invoke(app, ["teardown", "--name", "tunnel", "--yes"])
        assert down.exit_code == 0, down.output


def test_tunnel_refuses_a_bad_port(cluster_home: Path) -> None:
    result = runner.invoke(app, ["tunnel", "--port", "70000"])
    assert result.exit_code == 2 and "--port" in result.stderr
