"""Build, check, repair and remove the sandbox fleet: hosts in their own namespaces plus an EC2 endpoint."""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infprov.floor.errors import InfprovError
from infprov.provision import ui
from infprov.sandbox import downloads, hostinit, images, pbrepo, system
from infprov.sandbox.downloads import standin_url as standin_url  # the runtime's preflight asks the sandbox

MAX_HOSTS = 8
NEURON_DEVICES = 4  # an inf1.6xlarge: four chips, /dev/neuron0..3
USER = "ubuntu"
DEFAULT_SUBNET = "10.237.0.0/24"
DEFAULT_EC2_PORT = 5055


def prefix() -> str:
    """Names this sandbox's links, namespaces and cgroups; another prefix is another sandbox."""
    value = os.environ.get("INFPROV_SANDBOX_ID", "infp")
    if not (value.isalnum() and value.islower() and 1 <= len(value) <= 6):
        raise InfprovError(f"INFPROV_SANDBOX_ID={value!r} is not usable", "use 1 to 6 lowercase letters or digits")
    return value


def bridge() -> str:
    return f"{prefix()}br0"


def base_dir() -> Path:
    return Path(os.environ.get("INFPROV_SANDBOX_DIR", "/var/lib/infprov-sandbox"))


def private_dir() -> Path:
    """Hosts' backing folders, the login key and state: hidden from inside every host."""
    return base_dir() / "private"


def public_dir() -> Path:
    """What every host may read: the python_backend stand-in repository."""
    return base_dir() / "public"


def downloads_dir() -> Path:
    """What the stand-in download server serves (the sandbox's pins name its files)."""
    return base_dir() / "downloads"


def key_file() -> Path:
    return private_dir() / "keys" / "id_ed25519"


def subnet() -> ipaddress.IPv4Network:
    return ipaddress.IPv4Network(os.environ.get("INFPROV_SANDBOX_SUBNET", DEFAULT_SUBNET))


def gateway() -> str:
    return str(subnet().network_address + 1)


def ec2_port() -> int:
    return int(os.environ.get("INFPROV_SANDBOX_EC2_PORT", DEFAULT_EC2_PORT))


def seal_chain() -> str:
    """The machine's iptables chain that drops what this sandbox's hosts send beyond its subnet.

    At most 14 characters (the prefix has 1 to 6): iptables allows 28.
    """
    return f"INFPROV-{prefix()}"


@dataclass(frozen=True)
class HostSpec:
    """Names and address of sandbox host number `index` (1-based)."""

    index: int

    @property
    def name(self) -> str:
        return f"h{self.index}"

    @property
    def address(self) -> str:
        return str(subnet().network_address + 10 + self.index)

    @property
    def netns(self) -> str:
        return f"{prefix()}-{self.name}"

    @property
    def veth(self) -> str:
        return f"{prefix()}-{self.name}"

    @property
    def hostname(self) -> str:
        return "ip-" + self.address.replace(".", "-")

    @property
    def dir(self) -> Path:
        return private_dir() / "hosts" / self.name

    @property
    def cgroup(self) -> Path:
        return cgroup_root() / f"infprov-{prefix()}" / self.name


def cgroup_root() -> Path:
    """The cgroup v2 tree: a hybrid machine mounts it at /sys/fs/cgroup/unified."""
    unified = Path("/sys/fs/cgroup/unified")
    if (unified / "cgroup.procs").exists():
        return unified
    return Path("/sys/fs/cgroup")


def server_group_vars() -> dict[str, Any]:
    """What the sandbox's hosts need instead of the Inf1 defaults of server.yml."""
    hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)[1]
    return {
        "infprov_profile": "sandbox",
        "infprov_python_backend_repo": pbrepo.url(public_dir()),
        # This machine's root cannot raise memlock (no CAP_SYS_RESOURCE): keep the hard limit.
        "infprov_memlock": "-1" if hard == resource.RLIM_INFINITY else str(hard),
        "infprov_ready_timeout": 90,
        "infprov_min_free_gib": 1,
        # the server container reaches the stand-in download server by this name (the sandbox's pins use it)
        "infprov_downloads_address": gateway(),
    }


# ---------------------------------------------------------------- state


def _state_file() -> Path:
    return private_dir() / "state.json"


def _read_state() -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(_state_file().read_text())
        return data
    except (FileNotFoundError, json.JSONDecodeError):
        return {"hosts": {}, "assignments": {}, "made": []}


def _write_state(state: dict[str, Any]) -> None:
    _state_file().parent.mkdir(parents=True, exist_ok=True)
    tmp = _state_file().with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(_state_file())


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    """One sandbox operation at a time on this machine."""
    private_dir().mkdir(parents=True, exist_ok=True)
    os.chmod(private_dir(), 0o700)
    with open(private_dir() / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# ---------------------------------------------------------------- public API


def status() -> dict[str, Any]:
    """The hosts and the EC2 endpoint, as `infprov sandbox status --json` prints them."""
    from infprov.sandbox import ec2endpoint

    system.require_linux_root()  # its state and login key are root's
    state = _read_state()
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
                "healthy": _host_problem(spec, state["hosts"][name], quick=True) is None,
                "default_route": _has_default_route(spec),
            }
        )
    seal = seal_status()
    seal["hosts_without_default_route"] = [h["name"] for h in hosts if h["default_route"] is False]
    seal["hosts_with_default_route"] = [h["name"] for h in hosts if h["default_route"]]
    seal["sealed"] = bool(seal["rule"]) and not seal["hosts_with_default_route"]
    served = (downloads.url(gateway()) if private_dir().exists()
              and downloads.is_running(private_dir() / "downloads", gateway()) else None)
    return {"ec2_endpoint": endpoint, "downloads": served, "hosts": hosts, "seal": seal}


def up(count: int) -> dict[str, Any]:
    """Make sure hosts h1..hN exist and are healthy; build what is missing, repair what is broken."""
    system.require_linux_root()
    system.require_tools()
    with _locked():
        state = _read_state()
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
    if not base_dir().exists() and not _link_exists(bridge()) and not _seal_chain_exists():
        return
    with _locked():
        _down_locked()


def assign_host(instance_id: str, neuron_devices: int | None = None) -> dict[str, Any]:
    """Give a launched instance a free sandbox host (the same one on every call for that id).

    With neuron_devices (the instance type's chips), the host's /dev shows exactly that many
    /dev/neuronN, as the instance would: an inf1.xlarge gets neuron0, an inf1.24xlarge neuron0..15.
    """
    with _locked():
        state = _read_state()
        assignments: dict[str, str] = state.setdefault("assignments", {})
        name = assignments.get(instance_id)
        if name is not None and neuron_devices is not None:
            _set_devices(name, state, neuron_devices)
        if name is None:
            taken = set(assignments.values())
            free = [n for n in sorted(state.get("hosts", {}), key=lambda n: int(n[1:])) if n not in taken]
            if not free:
                raise InfprovError(
                    f"no free sandbox host for instance {instance_id}: all "
                    f"{len(state.get('hosts', {}))} are in use",
                    "run `infprov sandbox up --hosts N` with more hosts, or tear a cluster down",
                )
            name = free[0]
            with contextlib.suppress(InfprovError):  # a host built before the stand-in existed gets it now
                _install_power_standin(HostSpec(int(name[1:])), int(state["hosts"][name]["init_pid"]))
            assignments[instance_id] = name
            if neuron_devices is not None:
                _set_devices(name, state, neuron_devices)
            _write_state(state)
    return _host_entry(name, state)


def _set_devices(name: str, state: dict[str, Any], count: int) -> None:
    """Make the host's /dev hold /dev/neuron0..count-1 and no other Neuron device (under the lock)."""
    entry = state.get("hosts", {}).get(name)
    if entry is None or entry.get("neuron_devices") == count:
        return
    if not 0 <= count <= 16:
        raise InfprovError(f"{count} Neuron devices cannot be laid out on a sandbox host", "0 to 16")
    pid = entry.get("init_pid")
    script = ('rm -f /dev/neuron*; i=0; while [ "$i" -lt "$1" ]; do mknod -m 666 "/dev/neuron$i" c 1 3; '
              'i=$((i + 1)); done')
    system.run(["nsenter", "-t", str(pid), "-m", "--", "sh", "-c", script, "sh", str(count)],
               what=f"lay out {count} Neuron device(s) on {name}")
    entry["neuron_devices"] = count
    _write_state(state)


def release_host(instance_id: str) -> None:
    """The instance is gone: wipe what it left on its host, as termination would, and free the host."""
    with _locked():
        state = _read_state()
        name = state.get("assignments", {}).pop(instance_id, None)
        if name is None:
            return
        entry = state.get("hosts", {}).get(name)
        if entry is not None:
            _wipe_host(HostSpec(int(name[1:])), entry)
            with contextlib.suppress(InfprovError):  # a host whose init is gone is rebuilt by `sandbox up`
                _set_devices(name, state, NEURON_DEVICES)  # back to the devices it was built with
        _write_state(state)


def _wipe_host(spec: HostSpec, entry: dict[str, Any]) -> None:
    """Remove containers, images other than the two stand-ins, the login user's files, and any power-off
    the instance scheduled (the next instance on this host must not inherit its deadline)."""
    pid = entry.get("init_pid")
    if pid and Path(f"/proc/{pid}").exists():
        system.run(["nsenter", "-t", str(pid), "-m", "-p", "--", "sh", "-c", hostinit.POWER_CANCEL],
                   what=f"cancel {spec.name}'s scheduled power-off", check=False, timeout=20)
    if pid and Path(f"/proc/{pid}/root/run/docker.sock").exists():
        sock = f"unix:///proc/{pid}/root/run/docker.sock"
        ids = _docker(sock, "ps", "-aq", timeout=20).stdout.split()
        if ids:
            _docker(sock, "rm", "-f", *ids, timeout=60)
        tags = _docker(sock, "images", "--format", "{{.Repository}}:{{.Tag}}", timeout=20).stdout.split()
        keep = (images.SERVER_IMAGE, images.SDK_IMAGE, *images.V2_TAGS.values())
        extra = [t for t in tags if t not in keep]
        if extra:
            _docker(sock, "rmi", "-f", *extra, timeout=60)
        _tag_v2(spec, sock)
    home = spec.dir / "home"
    if home.is_dir():
        for child in home.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)
        _home(spec)


def free_hosts() -> int:
    """How many hosts no instance holds now."""
    state = _read_state()
    taken = set(state.get("assignments", {}).values())
    return sum(1 for name in state.get("hosts", {}) if name not in taken)


def reconcile(live_instance_ids: set[str]) -> list[str]:
    """Free the hosts of instances the EC2 endpoint no longer has alive (a teardown cut short by Ctrl-C,
    an endpoint that was reset), wiping them as termination would. Returns the instance ids released."""
    stale = [i for i in _read_state().get("assignments", {}) if i not in live_instance_ids]
    for instance_id in stale:
        release_host(instance_id)
    return stale


def host_for_instance(instance_id: str) -> dict[str, Any] | None:
    state = _read_state()
    name = state.get("assignments", {}).get(instance_id)
    return _host_entry(name, state) if name else None


def docker_socket(name: str) -> str:
    """The host's dockerd as seen from the machine's root namespaces."""
    state = _read_state()
    pid = state.get("hosts", {}).get(name, {}).get("init_pid")
    if not pid:
        raise InfprovError(f"sandbox host {name} does not exist", "run `infprov sandbox up`")
    return f"unix:///proc/{pid}/root/run/docker.sock"


def _host_entry(name: str, state: dict[str, Any]) -> dict[str, Any]:
    spec = HostSpec(int(name[1:]))
    return {
        "name": name,
        "address": spec.address,
        "port": 22,
        "user": USER,
        "key_file": str(key_file()),
        "neuron_devices": state.get("hosts", {}).get(name, {}).get("neuron_devices", NEURON_DEVICES),
    }


# ---------------------------------------------------------------- up


def _up_locked(count: int, state: dict[str, Any]) -> None:
    from infprov.sandbox import ec2endpoint

    specs = [HostSpec(i) for i in range(1, count + 1)]
    hosts: dict[str, Any] = state.setdefault("hosts", {})
    todo = []
    for spec in specs:
        entry = hosts.get(spec.name)
        problem = "missing" if entry is None else _host_problem(spec, entry, quick=False)
        if problem is None and entry is not None:
            _tag_v2(spec, f"unix:///proc/{entry['init_pid']}/root/run/docker.sock")  # a host made before them
            continue
        if entry is not None:
            ui.step(f"{spec.name}: {problem}; rebuilding it")
        todo.append(spec)

    endpoint = ec2endpoint.current(private_dir() / "ec2", watch_hosts=True)
    sealed = seal_status()["rule"]
    serving = (_link_exists(bridge()) and downloads.complete(downloads_dir())
               and downloads.is_running(private_dir() / "downloads", gateway()))
    if not todo and endpoint and _link_exists(bridge()) and pbrepo.exists(public_dir()) and sealed and serving:
        ui.ok(f"sandbox is healthy ({len(hosts)} hosts); nothing to change")
        return
    if not sealed and hosts:
        ui.step(f"the machine's drop rule (iptables chain {seal_chain()}) is missing; adding it")

    if todo:
        system.check_free_space(base_dir().parent, (1 << 30) * len(todo), f"hold {len(todo)} sandbox host(s)")
    template = None
    if todo:
        bundle = images.ensure_built(private_dir() / "images.log", progress=ui.step)
        template = images.ensure_docker_root(bundle, private_dir() / "images.log", progress=ui.step)
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
    _write_state(state)

    if not todo:
        return
    for spec in todo:
        _remove_host(spec, state)
        hosts.pop(spec.name, None)
    ui.step(f"starting {len(todo)} host(s): {', '.join(s.name for s in todo)}")
    errors: list[str] = []
    with ThreadPoolExecutor(max_workers=len(todo)) as pool:
        futures = {pool.submit(_make_host, spec, template): spec for spec in todo}
        for future, spec in futures.items():
            try:
                hosts[spec.name] = future.result()
                ui.ok(f"{spec.name}: {spec.address} sshd + dockerd up, images loaded")
            except Exception as exc:
                errors.append(f"{spec.name}: {exc}")
                with contextlib.suppress(Exception):
                    _remove_host(spec, state)
    _write_state(state)
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
    if not _link_exists(bridge()):
        _check_subnet_free()
        net = subnet()
        system.run(["ip", "link", "add", bridge(), "type", "bridge"], what="create the sandbox bridge")
        system.run(["ip", "addr", "add", f"{gateway()}/{net.prefixlen}", "dev", bridge()], what="address the bridge")
        system.run(["ip", "link", "set", bridge(), "up"], what="bring the bridge up")
    _seal()
    (cgroup_root() / f"infprov-{prefix()}").mkdir(exist_ok=True)


def _check_subnet_free() -> None:
    """Refuse a subnet that another interface already uses: routes would clash."""
    net = subnet()
    out = system.run(["ip", "-o", "-4", "addr", "show"], what="list addresses").stdout
    for line in out.splitlines():
        parts = line.split()
        if "inet" not in parts:
            continue
        iface = parts[1]
        addr = ipaddress.IPv4Interface(parts[parts.index("inet") + 1])
        if iface != bridge() and addr.network.overlaps(net):
            raise InfprovError(
                f"the sandbox subnet {net} is taken: {iface} has {addr}",
                "choose another with INFPROV_SANDBOX_SUBNET=10.x.y.0/24",
            )


def _link_exists(name: str) -> bool:
    return Path(f"/sys/class/net/{name}").exists()


def _make_host(spec: HostSpec, docker_root: Path | None) -> dict[str, Any]:
    """Create one host: network, init process, private mounts, sshd, dockerd, images."""
    hdir = spec.dir
    for sub in ("home", "etc-upper", "etc-work", "docker", "dev"):
        (hdir / sub).mkdir(parents=True, exist_ok=True)
    os.chmod(hdir / "docker", 0o710)
    if docker_root is not None:
        images.clone_docker_root(docker_root, hdir / "docker")
    _network(spec)
    _home(spec)
    pid = _start_init(spec)
    entry = {"init_pid": pid, "neuron_devices": NEURON_DEVICES, "created": time.time(),
             "images": images.recipe_key() if docker_root is not None else None}
    system.run(
        ["nsenter", "-t", str(pid), "-m", "-u", "-n", "-p", "bash", "-es", "--", spec.name, spec.address,
         str(NEURON_DEVICES), spec.hostname, str(hdir), f"{key_file()}.pub", str(private_dir())],
        input=hostinit.LAYOUT_SCRIPT, what=f"lay out {spec.name}'s file system",
    )
    _install_power_standin(spec, pid)
    _start_sshd(spec, pid)
    _start_dockerd(spec, pid)
    sock = f"unix:///proc/{pid}/root/run/docker.sock"
    _wait_docker(spec, sock)
    _tag_v2(spec, sock)
    _wait_ssh(spec)
    return entry


def _tag_v2(spec: HostSpec, sock: str) -> None:
    """The stand-in images under the Neuron v2 profile's names as well (images.V2_TAGS); idempotent."""
    for image, tag in images.V2_TAGS.items():
        proc = _docker(sock, "tag", image, tag, timeout=30)
        if proc.returncode != 0:
            raise InfprovError(f"{spec.name}: cannot tag {image} as {tag}: {proc.stderr.strip()[-200:]}",
                               "`infprov sandbox up` again repairs the host")


def _start_sshd(spec: HostSpec, pid: int) -> None:
    _in_host(spec, pid, ["/usr/sbin/sshd", "-E", "/run/sshd.log"])


def _start_dockerd(spec: HostSpec, pid: int) -> None:
    with open(spec.dir / "dockerd.log", "ab") as log:
        _in_host(
            spec, pid,
            ["setsid", "-f", "dockerd", "--data-root", "/var/lib/docker", "--exec-root", "/var/run/docker",
             "--pidfile", "/var/run/docker.pid", "-H", "unix:///var/run/docker.sock",
             "--cgroup-parent", f"/infprov-{prefix()}/{spec.name}/docker",
             # containers get no nameserver that answers either (left alone, dockerd hands a bridged
             # container 8.8.8.8 when the host's only nameserver is a loopback address)
             "--dns", "127.0.0.1", "--max-download-attempts", "1"],
            stdout=log,
        )


# ---------------------------------------------------------------- faults (what the fault tests do to a host)


def host_processes(name: str, comm: str) -> list[int]:
    """PIDs of the host's processes named comm (e.g. sshd, dockerd), found through its cgroup."""
    return [p for p in _cgroup_pids(HostSpec(int(name[1:]))) if _comm(p) == comm]


def restart_daemon(name: str, comm: str, stop_signal: int = signal.SIGTERM) -> None:
    """Stop the host's sshd or dockerd (every process of that name, by PID) and start it again, as a
    crash and a restart by the host's init would."""
    if comm not in ("sshd", "dockerd"):
        raise ValueError(comm)
    stop_daemon(name, comm, stop_signal)
    start_daemon(name, comm)


def stop_daemon(name: str, comm: str, stop_signal: int = signal.SIGKILL) -> list[int]:
    pids = host_processes(name, comm)
    for p in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, stop_signal)
    for p in pids:
        _wait_gone(p, 20)
    return pids


def start_daemon(name: str, comm: str) -> None:
    spec = HostSpec(int(name[1:]))
    pid = int(_read_state()["hosts"][name]["init_pid"])
    if comm == "sshd":
        _start_sshd(spec, pid)
        _wait_ssh(spec)
    else:
        _start_dockerd(spec, pid)
        _wait_docker(spec, f"unix:///proc/{pid}/root/run/docker.sock")


def _install_power_standin(spec: HostSpec, pid: int) -> None:
    """The host's `shutdown`: schedules a power-off that the EC2 endpoint turns into a termination."""
    system.run(["nsenter", "-t", str(pid), "-m", "--", "sh", "-ec", hostinit.POWER_INSTALL],
               input=hostinit.SHUTDOWN_STANDIN, what=f"install {spec.name}'s shutdown stand-in", timeout=20)


def powered_off() -> list[str]:
    """The instances whose sandbox host has powered itself off (its scheduled shutdown came due)."""
    state = _read_state()
    found = []
    for instance_id, name in state.get("assignments", {}).items():
        pid = state.get("hosts", {}).get(name, {}).get("init_pid")
        if pid and Path(f"/proc/{pid}/root{hostinit.POWER_STATE}.off").exists():
            found.append(instance_id)
    return found


def set_link(name: str, up: bool) -> None:
    """Take the host's link to the sandbox bridge down or bring it back (a network outage)."""
    spec = HostSpec(int(name[1:]))
    system.run(["ip", "link", "set", spec.veth, "up" if up else "down"], what=f"set {spec.name}'s link")


def _forget_neighbour(spec: HostSpec) -> None:
    """Drop the bridge's ARP entry for a host's address: a rebuilt host has a new MAC address,
    and a stale entry would black-hole its traffic for half a minute."""
    if _link_exists(bridge()):
        system.run(["ip", "neigh", "flush", "to", spec.address, "dev", bridge()], what="flush ARP", check=False)


def _network(spec: HostSpec) -> None:
    net = subnet()
    ns = spec.netns
    _forget_neighbour(spec)
    system.run(["ip", "netns", "add", ns], what=f"create netns {ns}")
    system.run(["ip", "link", "add", spec.veth, "type", "veth", "peer", "name", "eth0", "netns", ns],
               what=f"create veth {spec.veth}")
    system.run(["ip", "link", "set", spec.veth, "master", bridge(), "up"], what=f"attach {spec.veth}")
    system.run(["ip", "-n", ns, "addr", "add", f"{spec.address}/{net.prefixlen}", "dev", "eth0"],
               what=f"address {spec.name}")
    system.run(["ip", "-n", ns, "link", "set", "lo", "up"], what=f"{spec.name} lo up")
    system.run(["ip", "-n", ns, "link", "set", "eth0", "up"], what=f"{spec.name} eth0 up")
    # No default route: the host reaches its subnet (the other hosts, the gateway address) on-link and
    # nothing else; anything else fails at once with "network is unreachable". (The machine's side of the
    # seal, `_seal`, drops whatever a host sends beyond the subnet should it add a route of its own.)


def _has_default_route(spec: HostSpec) -> bool | None:
    """Whether the host's network namespace has a default route (IPv4 or IPv6); None if it is gone."""
    if not Path(f"/run/netns/{spec.netns}").exists():
        return None
    out = ""
    for family in ("-4", "-6"):
        proc = system.run(["ip", "-n", spec.netns, family, "route", "show", "default"],
                          what=f"read {spec.name}'s routes", check=False, timeout=10)
        out += proc.stdout.strip()
    return bool(out)


def _home(spec: HostSpec) -> None:
    home = spec.dir / "home"
    with contextlib.suppress(FileNotFoundError):
        for item in Path("/etc/skel").iterdir():
            dest = home / item.name
            if not dest.exists() and item.is_file():
                shutil.copy2(item, dest)
    ssh = home / ".ssh"
    ssh.mkdir(mode=0o700, exist_ok=True)
    shutil.copy2(f"{key_file()}.pub", ssh / "authorized_keys")
    (ssh / "authorized_keys").chmod(0o600)
    shutil.chown(home, USER, USER)
    for p in home.rglob("*"):
        shutil.chown(p, USER, USER)
    home.chmod(0o750)
    hostkey = spec.dir / "ssh_host_ed25519_key"
    if not hostkey.exists():
        system.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", spec.hostname, "-f", str(hostkey)],
                   what=f"make {spec.name}'s host key")


def _join_cgroup(cg: Path) -> None:
    cg.mkdir(parents=True, exist_ok=True)
    (cg / "cgroup.procs").write_text(str(os.getpid()))


def _start_init(spec: HostSpec) -> int:
    ready = spec.dir / "init.ready"
    ready.unlink(missing_ok=True)
    cg = spec.cgroup
    proc = subprocess.Popen(
        ["setsid", "nsenter", f"--net=/run/netns/{spec.netns}", "unshare", "--mount", "--uts",
         "--propagation", "private", "--pid", "--fork", "--mount-proc", "--kill-child",
         "/bin/bash", "-c", hostinit.INIT_LOOP.format(ready=ready)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        preexec_fn=lambda: _join_cgroup(cg),
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if ready.exists():
            children = _children(proc.pid)
            if children:
                pid = children[0]
                (spec.dir / "init.pid").write_text(str(pid))
                return pid
        if proc.poll() is not None:
            break
        time.sleep(0.02)
    raise InfprovError(f"{spec.name}: the host's init process did not start")


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except FileNotFoundError:
        return []
    return [int(p) for p in text.split()]


def _in_host(spec: HostSpec, pid: int, argv: list[str], stdout: Any = None) -> None:
    cg = spec.cgroup
    subprocess.run(
        ["nsenter", "-t", str(pid), "-m", "-u", "-n", "-p", *argv],
        stdin=subprocess.DEVNULL, stdout=stdout or subprocess.DEVNULL, stderr=subprocess.STDOUT,
        preexec_fn=lambda: _join_cgroup(cg), check=True, timeout=30,
    )


def _docker(
    sock: str, *args: str, timeout: float = 120, input_file: Path | None = None
) -> subprocess.CompletedProcess[str]:
    stdin = open(input_file, "rb") if input_file else subprocess.DEVNULL  # noqa: SIM115
    try:
        proc = subprocess.run(["docker", "-H", sock, *args], stdin=stdin, capture_output=True, timeout=timeout)
    finally:
        if input_file:
            stdin.close()  # type: ignore[union-attr]
    return subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout.decode(errors="replace"),
                                       proc.stderr.decode(errors="replace"))


def _wait_docker(spec: HostSpec, sock: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if _docker(sock, "version", "--format", "{{.Server.Version}}", timeout=10).returncode == 0:
            return
        time.sleep(0.2)
    tail = (spec.dir / "dockerd.log").read_text(errors="replace").strip().splitlines()[-3:]
    raise InfprovError(f"{spec.name}: dockerd did not start in 60 s: {' | '.join(tail)}",
                       f"see {spec.dir / 'dockerd.log'}")


def _wait_ssh(spec: HostSpec) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((spec.address, 22), timeout=1) as s:
            if s.recv(4).startswith(b"SSH"):
                return
        time.sleep(0.1)
    raise InfprovError(f"{spec.name}: sshd is not answering on {spec.address}:22",
                       f"see /proc/<init>/root/run/sshd.log of {spec.name}")


# ---------------------------------------------------------------- health


def _host_problem(spec: HostSpec, entry: dict[str, Any], quick: bool) -> str | None:
    """None when the host is whole; otherwise what is wrong with it."""
    pid = entry.get("init_pid")
    if not pid or not Path(f"/proc/{pid}").exists():
        return "its init process is gone"
    if not Path(f"/run/netns/{spec.netns}").exists():
        return "its network namespace is gone"
    try:
        with socket.create_connection((spec.address, 22), timeout=1) as s:
            if not s.recv(4).startswith(b"SSH"):
                return "sshd does not answer"
    except OSError:
        return "sshd does not answer"
    if _has_default_route(spec):
        return "it has a default route (a sealed host routes only inside the sandbox subnet)"
    if quick:
        return None
    if entry.get("images") != images.recipe_key():
        # a host keeps the images it was built with; a newer recipe (what setup.sh needs preinstalled, the
        # stand-in server's apt and pip settings) means a host with those images, or the server step fails
        return "its images were built from an older recipe"
    sock = f"unix:///proc/{pid}/root/run/docker.sock"
    proc = _docker(sock, "image", "inspect", "--format", "{{.Id}}", images.SERVER_IMAGE, images.SDK_IMAGE,
                   timeout=20)
    if proc.returncode != 0:
        return "dockerd or its images are missing"
    return None


# ---------------------------------------------------------------- down


def _down_locked() -> None:
    from infprov.sandbox import ec2endpoint

    state = _read_state()
    names = set(state.get("hosts", {}))
    hosts_dir = private_dir() / "hosts"
    if hosts_dir.exists():
        names |= {p.name for p in hosts_dir.iterdir() if p.is_dir()}
    if Path("/run/netns").exists():
        names |= {p.name[len(prefix()) + 1:] for p in Path("/run/netns").glob(f"{prefix()}-h*")}
    for name in sorted(names):
        if name.startswith("h") and name[1:].isdigit():
            _remove_host(HostSpec(int(name[1:])), state)
    with contextlib.suppress(Exception):
        ec2endpoint.stop(private_dir() / "ec2")
    with contextlib.suppress(Exception):
        downloads.stop(private_dir() / "downloads")
    if _link_exists(bridge()):
        system.run(["ip", "link", "del", bridge()], what="remove the sandbox bridge", check=False)
    _unseal()
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


def _cgroup_pids(spec: HostSpec) -> list[int]:
    pids: list[int] = []
    if not spec.cgroup.exists():
        return pids
    for procs in spec.cgroup.rglob("cgroup.procs"):
        with contextlib.suppress(OSError):
            pids += [int(p) for p in procs.read_text().split()]
    return pids


def _remove_host(spec: HostSpec, state: dict[str, Any]) -> None:
    """Stop a host's containers and daemons, kill what is left by PID, drop its links and files."""
    pid = state.get("hosts", {}).get(spec.name, {}).get("init_pid")
    if pid is None and (spec.dir / "init.pid").exists():
        pid = int((spec.dir / "init.pid").read_text())
    if pid and Path(f"/proc/{pid}/root/run/docker.sock").exists():
        sock = f"unix:///proc/{pid}/root/run/docker.sock"
        ids = _docker(sock, "ps", "-aq", timeout=20).stdout.split()
        if ids:
            _docker(sock, "rm", "-f", *ids, timeout=60)
    for p in _cgroup_pids(spec):
        if _comm(p) == "dockerd":
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGTERM)
            _wait_gone(p, 15)
    for _ in range(50):
        pids = _cgroup_pids(spec)
        if not pids:
            break
        for p in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)
        time.sleep(0.1)
    for root in Path("/sys/fs/cgroup").iterdir():
        cg = root / f"infprov-{prefix()}" / spec.name
        if cg.is_dir():
            for d in sorted((p for p in cg.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
                with contextlib.suppress(OSError):
                    d.rmdir()
            with contextlib.suppress(OSError):
                cg.rmdir()
    if Path(f"/run/netns/{spec.netns}").exists():
        system.run(["ip", "netns", "del", spec.netns], what=f"remove netns {spec.netns}", check=False)
    if _link_exists(spec.veth):
        system.run(["ip", "link", "del", spec.veth], what=f"remove veth {spec.veth}", check=False)
    _forget_neighbour(spec)
    for instance, name in list(state.get("assignments", {}).items()):
        if name == spec.name:
            del state["assignments"][instance]
    shutil.rmtree(spec.dir, ignore_errors=True)


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _wait_gone(pid: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        time.sleep(0.1)


# ---------------------------------------------------------------- seal


def _seal_comment() -> list[str]:
    return ["-m", "comment", "--comment", f"infprov sandbox {prefix()}: nothing leaves {subnet()}"]


def _seal_rules() -> list[tuple[str, list[str]]]:
    """(chain, rule) pairs: whatever comes in on the sandbox bridge, forwarded or addressed to the machine,
    is dropped unless it is addressed to the sandbox subnet itself (the hosts and the gateway address)."""
    chain = seal_chain()
    return [
        (chain, ["!", "-d", str(subnet()), *_seal_comment(), "-j", "DROP"]),
        ("FORWARD", ["-i", bridge(), *_seal_comment(), "-j", chain]),
        ("INPUT", ["-i", bridge(), *_seal_comment(), "-j", chain]),
    ]


def _iptables(*args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    return system.run(["iptables", "-w", "10", *args], what="change the machine's iptables rules",
                      check=check, timeout=30)


def _seal_chain_exists() -> bool:
    if system.which("iptables") is None:
        return False
    return _iptables("-S", seal_chain()).returncode == 0


def _seal() -> None:
    """Add the machine's drop rule for this sandbox; adds only what is missing (up twice adds nothing)."""
    if not _seal_chain_exists():
        _iptables("-N", seal_chain(), check=True)
    for chain, rule in _seal_rules():
        if _iptables("-C", chain, *rule).returncode != 0:
            # first in FORWARD and INPUT, ahead of any ACCEPT another tool (docker) puts there
            op = ["-A", chain] if chain == seal_chain() else ["-I", chain, "1"]
            _iptables(*op, *rule, check=True)
    # IPv6 is off on the bridge: the machine neither answers nor routes anything the hosts send over it
    sysctl = Path(f"/proc/sys/net/ipv6/conf/{bridge()}/disable_ipv6")
    if sysctl.exists() and sysctl.read_text().strip() != "1":
        sysctl.write_text("1")


def _unseal() -> None:
    """Remove this sandbox's jumps and chain (another sandbox's, under another prefix, stay)."""
    if system.which("iptables") is None:
        return
    for chain, rule in _seal_rules()[1:]:
        for _ in range(20):  # also duplicates, should any have been added by hand
            if _iptables("-D", chain, *rule).returncode != 0:
                break
    if _seal_chain_exists():
        _iptables("-F", seal_chain())
        _iptables("-X", seal_chain())


def seal_status() -> dict[str, Any]:
    """The machine's side of the seal: is the drop rule in place (chain, rule, both jumps) and how many
    packets has it dropped since the chain was made (should stay 0: nothing tries to leave)."""
    result: dict[str, Any] = {"chain": seal_chain(), "rule": False, "jumps": [], "dropped_packets": None,
                              "dropped_bytes": None}
    if system.which("iptables") is None or not _seal_chain_exists():
        return result
    drop, *jumps = _seal_rules()
    result["jumps"] = [chain for chain, rule in jumps if _iptables("-C", chain, *rule).returncode == 0]
    has_drop = _iptables("-C", drop[0], *drop[1]).returncode == 0
    result["rule"] = has_drop and len(result["jumps"]) == len(jumps)
    listing = _iptables("-L", seal_chain(), "-n", "-v", "-x").stdout
    packets = octets = 0
    for line in listing.splitlines()[2:]:
        fields = line.split()
        if len(fields) > 2 and fields[2] == "DROP":
            packets += int(fields[0])
            octets += int(fields[1])
    if has_drop:
        result["dropped_packets"], result["dropped_bytes"] = packets, octets
    return result
