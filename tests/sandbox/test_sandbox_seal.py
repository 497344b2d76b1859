"""The sandbox is sealed (issue 16): nothing on a host, or in a container on it, reaches beyond the
sandbox subnet, names resolve only from /etc/hosts, dockerd never reaches a registry, and the machine
drops whatever a host sends beyond the subnet anyway (iptables chain INFPROV-<prefix>, counted).

Outside addresses are documentation ones only (198.51.100.1, 203.0.113.1), and every test that tries one
first asserts that the host has no default route and that the machine's drop rule is in place.
"""

from __future__ import annotations

import json
import shlex
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fabric
import pytest
from typer.testing import CliRunner

from infprov.provision.cli import app
from infprov.sandbox import core, images, network

pytestmark = pytest.mark.sandbox
runner = CliRunner()
# documentation addresses (RFC 5737), never a real host; not 192.0.2.x, which some of these machines use
OUTSIDE = ("198.51.100.1", "203.0.113.1")

# Run on a host (or in a container): try each address (port 80, give up after TIMEOUT seconds),
# print what happened and how long it took: `python3 -c CONNECT TIMEOUT ADDRESS...`.
CONNECT = """
import errno, json, socket, sys, time
out = []
for addr in sys.argv[2:]:
    t = time.monotonic()
    try:
        socket.create_connection((addr, 80), timeout=float(sys.argv[1])).close()
        out.append([addr, "connected", time.monotonic() - t])
    except OSError as exc:
        out.append([addr, errno.errorcode.get(exc.errno or 0, type(exc).__name__), time.monotonic() - t])
print(json.dumps(out))
"""

# Run on a host: a command's exit status, output and duration, timed on the host itself (no SSH in it).
TIMED = """
import json, subprocess, sys, time
t = time.monotonic()
p = subprocess.run(sys.argv[1:], capture_output=True, text=True, timeout=60)
print(json.dumps({"rc": p.returncode, "out": p.stdout + p.stderr, "seconds": time.monotonic() - t}))
"""


class _Trust:
    def missing_host_key(self, client: object, hostname: str, key: object) -> None:
        return None


@pytest.fixture()
def ssh(sandbox_hosts: list[dict[str, Any]]) -> Iterator[fabric.Connection]:
    """A login as `ubuntu` on the first host, as a playbook would have it."""
    host = sandbox_hosts[0]
    conn = fabric.Connection(host["address"], user=host["user"], port=host["port"],
                             connect_kwargs={"key_filename": host["key_file"]}, connect_timeout=10,
                             config=fabric.Config(overrides={"run": {"in_stream": False}}))
    conn.client.set_missing_host_key_policy(_Trust())
    with conn:
        yield conn


def _python(conn: fabric.Connection, script: str, *args: str, prefix: str = "python3") -> Any:
    cmd = f"{prefix} -c {shlex.quote(script)} {' '.join(shlex.quote(a) for a in args)}"
    return json.loads(conn.run(cmd, hide=True).stdout.strip().splitlines()[-1])


def _iptables_s() -> list[str]:
    proc = subprocess.run(["iptables", "-w", "10", "-S"], capture_output=True, text=True, check=True)
    return proc.stdout.splitlines()


def _assert_sealed(host_names: list[str] | None = None) -> dict[str, Any]:
    """The precondition of every attempt at an outside address: no default route, drop rule in place."""
    seal = core.status()["seal"]
    assert seal["rule"] is True, seal
    assert sorted(seal["jumps"]) == ["FORWARD", "INPUT"], seal
    assert seal["hosts_with_default_route"] == [], seal
    for name in host_names or []:
        spec = core.HostSpec(int(name[1:]))
        assert network.has_default_route(spec) is False
        routes = subprocess.run(["ip", "-n", spec.netns, "-4", "route", "show"], capture_output=True,
                                text=True, check=True).stdout
        assert "default" not in routes and "via" not in routes, routes
    return seal


def test_status_shows_the_seal(sandbox_hosts: list[dict[str, Any]]) -> None:
    result = runner.invoke(app, ["sandbox", "status", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    seal = doc["seal"]
    assert seal["chain"] == f"INFPROV-{core.prefix()}" and len(seal["chain"]) <= 28
    assert seal["rule"] is True and seal["sealed"] is True
    assert isinstance(seal["dropped_packets"], int)
    names = [h["name"] for h in doc["hosts"]]
    assert seal["hosts_without_default_route"] == names and seal["hosts_with_default_route"] == []
    assert all(h["default_route"] is False for h in doc["hosts"])
    text = runner.invoke(app, ["sandbox", "status"])
    assert text.exit_code == 0 and "no default route" in text.stdout
    assert f"seal: iptables chain {seal['chain']} drops" in text.stdout


def test_drop_rule_on_the_machine(sandbox_hosts: list[dict[str, Any]]) -> None:
    chain, net, br = core.seal_chain(), str(core.subnet()), core.bridge()
    mine = [line for line in _iptables_s() if chain in line]
    comment = f'--comment "infprov sandbox {core.prefix()}: nothing leaves {net}"'
    gw = core.gateway()
    at_gw = f'--comment "infprov sandbox {core.prefix()}: at {gw} only the download server, port 80"'
    registry = f'--comment "infprov sandbox {core.prefix()}: at {gw} the registry, port {network.REGISTRY_PORT}"'
    assert mine == [
        f"-N {chain}",
        f"-A INPUT -i {br} -m comment {comment} -j {chain}",
        f"-A FORWARD -i {br} -m comment {comment} -j {chain}",
        f"-A {chain} ! -d {net} -m comment {comment} -j DROP",
        f"-A {chain} -d {gw}/32 -m conntrack --ctstate RELATED,ESTABLISHED -m comment {at_gw} -j RETURN",
        f"-A {chain} -d {gw}/32 -p tcp -m tcp --dport 80 -m comment {at_gw} -j RETURN",
        f"-A {chain} -d {gw}/32 -p tcp -m tcp --dport {network.REGISTRY_PORT} -m comment {registry} -j RETURN",
        f"-A {chain} -d {gw}/32 -m comment {at_gw} -j DROP",
    ]
    assert Path(f"/proc/sys/net/ipv6/conf/{br}/disable_ipv6").read_text().strip() == "1"


def test_drop_counter_is_read(sandbox_hosts: list[dict[str, Any]]) -> None:
    listing = subprocess.run(["iptables", "-w", "10", "-L", core.seal_chain(), "-n", "-v", "-x"],
                             capture_output=True, text=True, check=True).stdout
    drop = [line.split() for line in listing.splitlines() if " DROP " in line and "nothing leaves" in line]
    assert len(drop) == 1
    seal = core.seal_status()
    assert seal["dropped_packets"] == int(drop[0][0]) and seal["dropped_bytes"] == int(drop[0][1])
    [at_gw] = [line.split() for line in listing.splitlines() if " DROP " in line and "only the download" in line]
    assert seal["gateway_dropped_packets"] == int(at_gw[0])
    print(f"{core.seal_chain()}: {seal['dropped_packets']} packet(s) dropped since the sandbox was sealed")


def test_outside_address_is_unreachable_at_once(sandbox_hosts: list[dict[str, Any]], ssh: fabric.Connection) -> None:
    before = _assert_sealed([sandbox_hosts[0]["name"]])["dropped_packets"]
    assert ssh.run("ip -4 route show default", hide=True).stdout.strip() == ""
    results = _python(ssh, CONNECT, "5", *OUTSIDE)
    print("connect from a host:", results)
    for addr, outcome, seconds in results:
        assert outcome in ("ENETUNREACH", "ECONNREFUSED", "EHOSTUNREACH"), (addr, outcome)
        assert seconds < 0.5, (addr, seconds)
    # and the sandbox itself is still there: the gateway address (on-link) and the other hosts
    inside = _python(ssh, CONNECT, "5", core.gateway(), sandbox_hosts[1]["address"])
    # on port 80 the gateway address answers (the stand-in download server); nothing listens on the other host
    assert [r[1] for r in inside] == ["connected", "ECONNREFUSED"]
    # blocked by "no route" on the host, before the machine's rule: nothing was dropped there
    assert core.seal_status()["dropped_packets"] == before


@pytest.fixture()
def machine_listener() -> Iterator[int]:
    """A TCP port listening on every address of the machine (as a user's service on 0.0.0.0 would)."""
    with socket.socket() as srv:
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("0.0.0.0", 0))
        srv.listen(8)
        yield srv.getsockname()[1]


# Run on a host: connect to ADDRESS:PORT (give up after TIMEOUT s): `python3 -c CONNECT_PORT TIMEOUT ADDRESS PORT`.
CONNECT_PORT = """
import errno, socket, sys
try:
    socket.create_connection((sys.argv[2], int(sys.argv[3])), timeout=float(sys.argv[1])).close()
    print("connected")
except OSError as exc:
    print(errno.errorcode.get(exc.errno or 0, type(exc).__name__))
"""


def test_a_host_reaches_only_the_download_server_on_the_machine(sandbox_hosts: list[dict[str, Any]],
                                                                ssh: fabric.Connection, machine_listener: int) -> None:
    """Issue 23, item 12: the gateway address is the machine itself; a host (root there) must not reach the
    machine's other services. The machine still reaches the host (SSH: its answers come back)."""
    seal = _assert_sealed([sandbox_hosts[0]["name"]])
    gw = core.gateway()
    # from this machine the port answers (the listener is real) ...
    socket.create_connection((gw, machine_listener), timeout=5).close()
    # ... from a host it does not: dropped at the machine's INPUT, counted apart from what leaves the subnet
    out = ssh.run(f"python3 -c {shlex.quote(CONNECT_PORT)} 2 {gw} {machine_listener}", hide=True).stdout.strip()
    assert out in ("ETIMEDOUT", "TimeoutError", "timeout"), out
    after = core.seal_status()
    assert after["gateway_dropped_packets"] > seal["gateway_dropped_packets"]
    assert after["dropped_packets"] == seal["dropped_packets"]
    # the download server's port and the registry's (ECR's stand-in) stay open to hosts
    assert ssh.run(f"python3 -c {shlex.quote(CONNECT_PORT)} 5 {gw} 80", hide=True).stdout.strip() == "connected"
    assert ssh.run(f"python3 -c {shlex.quote(CONNECT_PORT)} 5 {gw} {network.REGISTRY_PORT}",
                   hide=True).stdout.strip() == "connected"


@pytest.mark.parametrize("net", ["host", "bridge"])
def test_containers_on_a_host_are_sealed_too(sandbox_hosts: list[dict[str, Any]], ssh: fabric.Connection,
                                             net: str) -> None:
    before = _assert_sealed([sandbox_hosts[0]["name"]])["dropped_packets"]
    docker = f"docker run --rm --net {net} {images.SERVER_IMAGE} python3"
    results = _python(ssh, CONNECT, "5", *OUTSIDE, prefix=docker)
    print(f"connect from a container (--net {net}):", results)
    for addr, outcome, seconds in results:
        assert outcome in ("ENETUNREACH", "ECONNREFUSED", "EHOSTUNREACH"), (addr, outcome)
        assert seconds < 0.5, (addr, seconds)
    lookup = _python(ssh, TIMED, "getent", "hosts", "registry-1.docker.io",
                     prefix=f"docker run --rm --net {net} {images.SERVER_IMAGE} python3")
    assert lookup["rc"] != 0 and lookup["seconds"] < 1, lookup
    resolv = ssh.run(f"docker run --rm --net {net} {images.SERVER_IMAGE} cat /etc/resolv.conf", hide=True).stdout
    assert [line.split() for line in resolv.splitlines() if line.startswith("nameserver")] == [
        ["nameserver", "127.0.0.1"]
    ], resolv
    assert core.seal_status()["dropped_packets"] == before


def test_names_resolve_only_from_etc_hosts(sandbox_hosts: list[dict[str, Any]], ssh: fabric.Connection) -> None:
    _assert_sealed([sandbox_hosts[0]["name"]])
    miss = _python(ssh, TIMED, "getent", "hosts", "registry-1.docker.io")
    print("getent hosts registry-1.docker.io:", miss)
    assert miss["rc"] == 2 and miss["out"] == "", miss  # 2: not found
    assert miss["seconds"] < 1, miss
    hostname = "ip-" + sandbox_hosts[0]["address"].replace(".", "-")
    hit = _python(ssh, TIMED, "getent", "hosts", hostname)
    assert hit["rc"] == 0 and sandbox_hosts[0]["address"] in hit["out"], hit
    assert ssh.run("grep '^hosts:' /etc/nsswitch.conf", hide=True).stdout.split() == ["hosts:", "files"]
    assert ssh.run("grep '^nameserver' /etc/resolv.conf", hide=True).stdout.split() == ["nameserver", "127.0.0.1"]
    # the machine's own files are untouched: the host's /etc is an overlay
    assert "infprov sandbox host" not in Path("/etc/resolv.conf").read_text()


@pytest.mark.parametrize("image", ["busybox:latest", "nvcr.io/nvidia/tritonserver:22.04-absent-py3"])
def test_docker_pull_fails_at_once(sandbox_hosts: list[dict[str, Any]], ssh: fabric.Connection, image: str) -> None:
    before = _assert_sealed([sandbox_hosts[0]["name"]])["dropped_packets"]
    pull = _python(ssh, TIMED, "docker", "pull", image)
    print(f"docker pull {image}:", pull)
    assert pull["rc"] != 0, pull
    assert pull["seconds"] < 1, pull
    registry = image.split("/")[0] if "." in image.split("/")[0] else "registry-1.docker.io"
    assert registry in pull["out"], pull
    assert any(why in pull["out"] for why in ("no suitable address", "no such host", "network is unreachable")), pull
    run = _python(ssh, TIMED, "docker", "run", "--rm", image, "true")
    assert run["rc"] != 0 and run["seconds"] < 1 and registry in run["out"], run
    assert core.seal_status()["dropped_packets"] == before


def test_up_repairs_the_seal(sandbox_hosts: list[dict[str, Any]]) -> None:
    chain = core.seal_chain()
    jump = ["INPUT", "-i", core.bridge(), *network.seal_comment(), "-j", chain]
    subprocess.run(["iptables", "-w", "10", "-D", *jump], check=True)
    try:
        assert core.status()["seal"]["rule"] is False
        text = runner.invoke(app, ["sandbox", "status"])
        assert "seal: MISSING" in text.stdout
    finally:
        core.up(len(sandbox_hosts))
    _assert_sealed()
    core.up(len(sandbox_hosts))  # twice: no duplicates
    assert sum(chain in line for line in _iptables_s()) == 8  # the chain, its 5 rules, 2 jumps


def test_up_rebuilds_a_host_with_a_default_route(sandbox_hosts: list[dict[str, Any]]) -> None:
    host = sandbox_hosts[-1]
    spec = core.HostSpec(int(host["name"][1:]))
    before = core.seal_status()["dropped_packets"]
    # only the route: nothing is sent over it
    subprocess.run(["ip", "-n", spec.netns, "route", "add", "default", "via", core.gateway()], check=True)
    doc = core.status()
    entry = doc["hosts"][int(host["name"][1:]) - 1]
    assert entry["default_route"] is True and entry["healthy"] is False
    assert doc["seal"]["hosts_with_default_route"] == [host["name"]] and doc["seal"]["sealed"] is False
    core.up(len(sandbox_hosts))
    _assert_sealed([h["name"] for h in sandbox_hosts])
    assert all(h["healthy"] for h in core.status()["hosts"])
    assert core.seal_status()["dropped_packets"] == before


def _sandbox_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sid: str, net: str) -> None:
    monkeypatch.setenv("INFPROV_SANDBOX_ID", sid)
    monkeypatch.setenv("INFPROV_SANDBOX_DIR", str(tmp_path / sid))
    monkeypatch.setenv("INFPROV_SANDBOX_SUBNET", net)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        monkeypatch.setenv("INFPROV_SANDBOX_EC2_PORT", str(s.getsockname()[1]))


def test_machine_drops_what_a_rerouted_host_sends_and_down_removes_only_its_own_rule(
    sandbox_hosts: list[dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second sandbox, whose hosts are made to route around the seal; its counter, not the test
    sandbox's, counts what the machine drops; its `down` leaves the test sandbox's rule in place."""
    main_chain, main_gateway = core.seal_chain(), core.gateway()
    main_before = core.seal_status()["dropped_packets"]
    _sandbox_env(monkeypatch, tmp_path, "infpsl", "10.236.0.0/24")
    try:
        status = core.up(2)
        seal = _assert_sealed([h["name"] for h in status["hosts"]])
        assert seal["chain"] == "INFPROV-infpsl" and seal["dropped_packets"] == 0
        h1 = core.HostSpec(1)
        probe = ["ip", "netns", "exec", h1.netns, "python3", "-c", CONNECT, "1.5"]
        # h1 reaches for one of the machine's own addresses outside its subnet (the test sandbox's
        # gateway) through its gateway: the machine's INPUT drops it, so the connect times out
        subprocess.run(["ip", "-n", h1.netns, "route", "add", f"{main_gateway}/32", "via", core.gateway()], check=True)
        out = json.loads(subprocess.run([*probe, main_gateway], capture_output=True, text=True, check=True,
                                        timeout=30).stdout)
        assert out[0][1] in ("ETIMEDOUT", "TimeoutError"), out
        after_input = core.seal_status()["dropped_packets"]
        assert after_input >= 1
        # h1 sends to an outside address through h2 (bridged, so the machine sees it only where
        # br_netfilter hands bridged packets to iptables): FORWARD drops it before h2 gets it
        bridged = Path("/proc/sys/net/bridge/bridge-nf-call-iptables")
        if bridged.exists() and bridged.read_text().strip() == "1":
            subprocess.run(["ip", "-n", h1.netns, "route", "add", "198.51.100.0/24", "via",
                            status["hosts"][1]["address"]], check=True)
            out = json.loads(subprocess.run([*probe, "198.51.100.1"], capture_output=True, text=True, check=True,
                                            timeout=30).stdout)
            assert out[0][1] in ("ETIMEDOUT", "TimeoutError"), out
            assert core.seal_status()["dropped_packets"] > after_input
    finally:
        core.down()
    assert not any("INFPROV-infpsl" in line for line in _iptables_s())
    monkeypatch.undo()  # back to the test sandbox: its rule stays, its counter did not move
    assert core.seal_chain() == main_chain
    assert core.seal_status()["rule"] is True
    assert core.seal_status()["dropped_packets"] == main_before
