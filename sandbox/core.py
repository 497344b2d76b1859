"""Build, check, repair and remove the sandbox fleet: hosts in their own namespaces plus an EC2 endpoint.

This module is the sandbox's face: `infprov sandbox up|status|down` and the sandbox's provider
(sandbox/provider.py, which the runtime finds through an entry point) call what is named here. The
pieces live beside it: `places` (names, subnet, folders), `network` (bridge, links, the seal), `nshost`
(one host made, checked, removed), `records` (the state file: hosts and who holds them), `faults`.
"""

from __future__ import annotations

import contextlib
import resource
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from infprov.floor.errors import InfprovError
from infprov.provision import ui
from infprov.provision.specs import SANDBOX_REGION
from infprov.sandbox import downloads, hostroot, images, network, nshost, pbrepo, places, records, registry, system
from infprov.sandbox.downloads import standin_url
from infprov.sandbox.faults import host_processes, restart_daemon, start_daemon, stop_daemon
from infprov.sandbox.network import seal_status, set_link
from infprov.sandbox.places import (
    DEFAULT_EC2_PORT,
    DEFAULT_SUBNET,
    MAX_HOSTS,
    NEURON_DEVICES,
    USER,
    HostSpec,
    base_dir,
    bridge,
    cgroup_root,
    downloads_dir,
    ec2_port,
    gateway,
    key_file,
    prefix,
    private_dir,
    public_dir,
    seal_chain,
    subnet,
)
from infprov.sandbox.records import (
    assign_host,
    boot_host,
    docker_socket,
    free_hosts,
    host_for_instance,
    power_off_host,
    powered_off,
    reconcile,
    release_host,
)

__all__ = [
    "DEFAULT_EC2_PORT", "DEFAULT_SUBNET", "MAX_HOSTS", "NEURON_DEVICES", "USER", "HostSpec",
    "assign_host", "base_dir", "boot_host", "power_off_host",
    "bridge", "cgroup_root", "docker_socket", "down", "downloads_dir", "ec2_credentials",
    "ec2_port",
    "free_hosts", "gateway", "host_for_instance", "host_processes", "key_file", "powered_off", "prefix",
    "private_dir", "public_dir", "reconcile", "release_host", "restart_daemon", "seal_chain", "seal_status",
    "server_group_vars", "set_link", "standin_url", "start_daemon", "status", "stop_daemon", "subnet", "up",
]


def server_group_vars() -> dict[str, Any]:
    """What the sandbox's hosts need instead of the Inf1 defaults of server.yml."""
    hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)[1]
    return {
        "infprov_profile": "sandbox",
        "infprov_python_backend_repo": pbrepo.url(public_dir()),
        # This machine's root cannot raise memlock (no CAP_SYS_RESOURCE): keep the hard limit.
        "infprov_memlock": "-1" if hard == resource.RLIM_INFINITY else str(hard),
        # The CPU stand-in model loads in ~10 s on an idle 2-core machine; at a load average of 15-30 it has
        # taken over 90 s, so the sandbox waits up to 240 s (a dead container is noticed at once anyway).
        "infprov_ready_timeout": 240,
        "infprov_min_free_gib": 1,
        # the server container reaches the stand-in download server by this name (the sandbox's pins use it)
        "infprov_downloads_address": gateway(),
    }


def status() -> dict[str, Any]:
    """The hosts and the EC2 endpoint, as `infprov sandbox status --json` prints them."""
    from infprov.sandbox import ec2endpoint

    system.require_linux_root()  # its state and login key are root's
    state = records.read_state()
    endpoint = ec2endpoint.is_running(private_dir() / "ec2") if private_dir().exists() else None
    hosts = []
    for name in sorted(state.get("hosts", {}), key=lambda n: int(n[1:])):
        spec = HostSpec(int(name[1:]))
        hosts.append(
            {
                "name": name,
                "address": spec.address,
                "port": 22,
                "user": USER,
                "key_file": str(key_file()),
                "neuron_devices": state["hosts"][name].get("neuron_devices", NEURON_DEVICES),
                "healthy": nshost.host_problem(spec, state["hosts"][name], quick=True) is None,
                "powered_off": bool(state["hosts"][name].get("powered_off")),
                "default_route": network.has_default_route(spec),
            }
        )
    seal = network.seal_status()
    seal["hosts_without_default_route"] = [h["name"] for h in hosts if h["default_route"] is False]
    seal["hosts_with_default_route"] = [h["name"] for h in hosts if h["default_route"]]
    seal["sealed"] = bool(seal["rule"]) and not seal["hosts_with_default_route"]
    served = (downloads.url(gateway()) if private_dir().exists()
              and downloads.is_running(private_dir() / "downloads", gateway()) else None)
    stored = (registry.address(gateway()) if private_dir().exists()
              and registry.is_running(private_dir() / "registry", gateway()) else None)
    return {"ec2_endpoint": endpoint, "downloads": served, "registry": stored, "hosts": hosts, "seal": seal}


def registry_login() -> tuple[str, str]:
    """(user, password) of ECR's login as the sandbox's EC2 endpoint (moto) hands it out: the registry takes it."""
    from infprov.provision.ec2 import Ec2Provider
    from infprov.sandbox import ec2endpoint

    url = ec2endpoint.is_running(private_dir() / "ec2")
    if url is None:
        raise InfprovError("the sandbox's EC2 endpoint is not running", "run `infprov sandbox up`")
    access, secret = ec2_credentials()
    _, user, password = Ec2Provider(SANDBOX_REGION, endpoint_url=url, access_key=access,
                                    secret_key=secret).registry_token()
    return user, password


def wipe_registry() -> None:
    """The registry's images gone (the environment cache's repository was deleted)."""
    registry.wipe(private_dir() / "registry", gateway(), *registry_login())


def ec2_credentials() -> tuple[str, str]:
    """The credentials the sandbox's EC2 endpoint takes (made at its start; root only)."""
    from infprov.sandbox import ec2endpoint

    found = ec2endpoint.credentials(private_dir() / "ec2") if private_dir().exists() else None
    if found is None:
        raise InfprovError("the sandbox is not up (its EC2 endpoint has no credentials)", "run `infprov sandbox up`")
    return found


def up(count: int) -> dict[str, Any]:
    """Make sure hosts h1..hN exist and are healthy; build what is missing, repair what is broken."""
    system.require_linux_root()
    places.check_settings()
    system.require_tools()
    with system.sane_umask(), records.locked():
        state = records.read_state()
        fresh = not state.get("hosts")
        try:
            _up_locked(count, state)
        except BaseException:
            if fresh:
                ui.warn("sandbox up failed: removing what this run made")
                with contextlib.suppress(Exception):
                    _down_locked()
            raise
    return status()


def down() -> None:
    """Remove every host, the bridge, the EC2 endpoint and all state; safe to run twice."""
    system.require_linux_root()
    if not base_dir().exists() and not network.link_exists(bridge()) and not network.seal_chain_exists():
        return
    with records.locked():
        _down_locked()


def _up_locked(count: int, state: dict[str, Any]) -> None:
    from infprov.sandbox import ec2endpoint

    specs = [HostSpec(i) for i in range(1, count + 1)]
    hosts: dict[str, Any] = state.setdefault("hosts", {})
    todo = []
    for spec in specs:
        entry = hosts.get(spec.name)
        if entry is not None and entry.get("powered_off"):
            continue  # a stopped instance's host: left off, its disk kept, until the instance starts
        problem = "missing" if entry is None else nshost.host_problem(spec, entry, quick=False)
        if problem is None and entry is not None:
            nshost.tag_v2(spec, f"unix:///proc/{entry['init_pid']}/root/run/docker.sock")  # a host made before them
            continue
        if entry is not None:
            ui.step(f"{spec.name}: {problem}; rebuilding it")
        todo.append(spec)

    endpoint = ec2endpoint.current(private_dir() / "ec2", watch_hosts=True)
    sealed = network.seal_status()["rule"]
    serving = (network.link_exists(bridge()) and downloads.complete(downloads_dir())
               and downloads.is_running(private_dir() / "downloads", gateway())
               and registry.is_running(private_dir() / "registry", gateway()))
    if not todo and endpoint and network.link_exists(bridge()) and pbrepo.exists(public_dir()) and sealed and serving:
        ui.ok(f"sandbox is healthy ({len(hosts)} hosts); nothing to change")
        return
    if not sealed and hosts:
        ui.step(f"the machine's drop rule (iptables chain {seal_chain()}) is missing; adding it")

    if todo:
        system.check_free_space(base_dir().parent, (1 << 30) * len(todo), f"hold {len(todo)} sandbox host(s)")
    template = lower = None
    # The image cache and the machine's user, group and sudoers are shared by every sandbox on the machine:
    # another sandbox coming up at the same time (the test tier's shards) waits rather than builds them twice.
    with images.cache_locked():
        if todo:
            bundle = images.ensure_built(private_dir() / "images.log", progress=ui.step)
            template = images.ensure_docker_root(bundle, private_dir() / "images.log", progress=ui.step)
            lower = hostroot.ensure_built(private_dir() / "images.log", progress=ui.step)
        _prerequisites(state)
    fresh_repo = not pbrepo.exists(public_dir())
    if fresh_repo:
        ui.step("python_backend stand-in repository (branch r22.04)")
        pbrepo.create(public_dir(), USER)
    if fresh_repo or not downloads.complete(downloads_dir()):
        ui.step("stand-in download server's files (apt, PyPI, conda, Neuron and Boost stand-ins)")
        downloads.build(downloads_dir(), pbrepo.repo_path(public_dir()), private_dir() / "images.log")
    if not downloads.is_running(private_dir() / "downloads", gateway()):
        served = downloads.start(private_dir() / "downloads", downloads_dir(), gateway())
        ui.ok(f"stand-in download server at {served} ({downloads.NAME} in the server container)")
    if not endpoint:
        endpoint = ec2endpoint.start(private_dir() / "ec2", ec2_port(), watch_hosts=True)
        ui.ok(f"EC2 endpoint at {endpoint}")
    if not registry.is_running(private_dir() / "registry", gateway()):
        stored = registry.start(private_dir() / "registry", gateway(), *registry_login())
        ui.ok(f"registry (ECR's data plane) at {stored}")
    records.write_state(state)

    if not todo:
        return
    for spec in todo:
        nshost.remove_host(spec, state)
        hosts.pop(spec.name, None)
    ui.step(f"starting {len(todo)} host(s): {', '.join(s.name for s in todo)}")
    errors: list[str] = []
    with ThreadPoolExecutor(max_workers=len(todo)) as pool:
        futures = {pool.submit(nshost.make_host, spec, template, lower): spec for spec in todo}
        for future, spec in futures.items():
            try:
                hosts[spec.name] = future.result()
                ui.ok(f"{spec.name}: {spec.address} sshd + dockerd up, images loaded")
            except Exception as exc:
                errors.append(f"{spec.name}: {exc}")
                with contextlib.suppress(Exception):
                    nshost.remove_host(spec, state)
    records.write_state(state)
    if errors:
        raise InfprovError(
            "sandbox host(s) failed to start: " + "; ".join(errors),
            f"see the logs under {private_dir() / 'hosts'}; `infprov sandbox up` again repairs",
        )


def _prerequisites(state: dict[str, Any]) -> None:
    """Machine-wide pieces every host shares: the login user, sudo, the key, the bridge."""
    made: list[str] = state.setdefault("made", [])
    if subprocess.run(["id", USER], capture_output=True).returncode != 0:
        system.run(["useradd", "-m", "-s", "/bin/bash", USER], what=f"create user {USER}")
        made.append("user")
    # useradd leaves the account locked ("!"); sshd refuses a locked account even for keys.
    system.run(["usermod", "-p", "*", USER], what=f"unlock {USER} for key logins")
    sudoers = Path("/etc/sudoers.d/90-infprov-ubuntu")
    if not sudoers.exists():
        sudoers.write_text(f"{USER} ALL=(ALL) NOPASSWD:ALL\n")
        sudoers.chmod(0o440)
        made.append("sudoers")
    if subprocess.run(["getent", "group", "docker"], capture_output=True).returncode != 0:
        system.run(["groupadd", "-r", "docker"], what="create group docker")
    if "docker" not in subprocess.run(["id", "-nG", USER], capture_output=True, text=True).stdout.split():
        system.run(["usermod", "-aG", "docker", USER], what=f"add {USER} to group docker")
    Path("/var/lib/docker").mkdir(parents=True, exist_ok=True)
    key = key_file()
    if not key.exists():
        key.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        system.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "infprov-sandbox", "-f", str(key)],
                   what="make the sandbox login key")
    if not network.link_exists(bridge()):
        network.check_subnet_free()
        net = subnet()
        system.run(["ip", "link", "add", bridge(), "type", "bridge"], what="create the sandbox bridge")
        system.run(["ip", "addr", "add", f"{gateway()}/{net.prefixlen}", "dev", bridge()], what="address the bridge")
        system.run(["ip", "link", "set", bridge(), "up"], what="bring the bridge up")
    network.seal()
    (cgroup_root() / f"infprov-{prefix()}").mkdir(exist_ok=True)


def _down_locked() -> None:
    from infprov.sandbox import ec2endpoint

    state = records.read_state()
    names = set(state.get("hosts", {}))
    hosts_dir = private_dir() / "hosts"
    if hosts_dir.exists():
        names |= {p.name for p in hosts_dir.iterdir() if p.is_dir()}
    if Path("/run/netns").exists():
        names |= {p.name[len(prefix()) + 1:] for p in Path("/run/netns").glob(f"{prefix()}-h*")}
    for name in sorted(names):
        if name.startswith("h") and name[1:].isdigit():
            nshost.remove_host(HostSpec(int(name[1:])), state)
    with contextlib.suppress(Exception):
        ec2endpoint.stop(private_dir() / "ec2")
    with contextlib.suppress(Exception):
        downloads.stop(private_dir() / "downloads")
    with contextlib.suppress(Exception):
        registry.stop(private_dir() / "registry")
    if network.link_exists(bridge()):
        system.run(["ip", "link", "del", bridge()], what="remove the sandbox bridge", check=False)
    network.unseal()
    for root in Path("/sys/fs/cgroup").iterdir():
        with contextlib.suppress(OSError):
            (root / f"infprov-{prefix()}").rmdir()
    # The user, its home and /var/lib/docker are shared with any other sandbox on this machine; removing
    # a mountpoint here would detach it inside the other sandbox's hosts too.
    if not _other_sandboxes():
        made = state.get("made", [])
        if "sudoers" in made:
            Path("/etc/sudoers.d/90-infprov-ubuntu").unlink(missing_ok=True)
        if "user" in made:
            subprocess.run(["userdel", "-r", USER], capture_output=True)
        with contextlib.suppress(OSError):
            Path("/var/lib/docker").rmdir()  # only if empty: the mountpoint the hosts bind over
    shutil.rmtree(base_dir(), ignore_errors=True)


def _other_sandboxes() -> list[str]:
    """Prefixes of other sandboxes on this machine: each keeps a cgroup tree from its first host to its down."""
    found = set()
    for tree in cgroup_root().glob("infprov-*"):
        other = tree.name[len("infprov-"):]
        if other != prefix() and any(tree.rglob("cgroup.procs")):
            found.add(other)
    return sorted(found)
