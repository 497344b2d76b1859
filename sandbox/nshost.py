"""One sandbox host: make it (network, init, mounts, sshd, dockerd, images), check it, remove it."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from infprov.floor.errors import InfprovError
from infprov.sandbox import hostinit, hostroot, images, network, system
from infprov.sandbox.places import (
    HOST_ID_BASE,
    HOST_ID_COUNT,
    HOST_USER_UID,
    NEURON_DEVICES,
    HostSpec,
    cgroup_root,
    gateway,
    key_file,
    prefix,
    public_dir,
)

# How a command enters a host: all of its namespaces, its user namespace first (as the host's root).
ENTER = ["-U", "-m", "-u", "-n", "-p", "-i"]


def make_host(spec: HostSpec, docker_root: Path | None, lower: Path | None = None) -> dict[str, Any]:
    """Create one host: its own root file system, user namespace, network, sshd, dockerd, images."""
    lower = lower or hostroot.cached()
    if lower is None:
        raise InfprovError("the sandbox hosts' root file system is not built", "run `infprov sandbox up`")
    hdir = spec.dir
    hdir.mkdir(parents=True, exist_ok=True)
    hdir.chmod(0o755)  # the host's init (an unprivileged ID on the machine) starts in it; its parents stay 0700
    for sub in ("home", "upper", "work", "root", "docker", "lower", "public"):
        (hdir / sub).mkdir(exist_ok=True)
    os.chmod(hdir / "docker", 0o710)
    for sub in ("upper", "work", "docker"):
        os.chown(hdir / sub, HOST_ID_BASE, HOST_ID_BASE)
    if docker_root is not None:
        images.clone_docker_root(docker_root, hdir / "docker")
    lay_out_home(spec)
    _seed_upper(spec)
    _delegate_cgroups(spec)
    pid = _start_init(spec, lower)
    network.make_network(spec, pid)
    entry = {"init_pid": pid, "neuron_devices": NEURON_DEVICES, "created": time.time(),
             "images": images.recipe_key() if docker_root is not None else None, "hostroot": hostroot.key(),
             "dockerd": dockerd_key()}
    system.run(["nsenter", "-t", str(pid), *ENTER, "bash", "-es", "--", spec.address, spec.hostname],
               input=hostinit.LAYOUT_SCRIPT, what=f"lay out {spec.name}'s /etc")
    install_power_standin(spec, pid)
    start_sshd(spec, pid)
    start_dockerd(spec, pid)
    sock = f"unix:///proc/{pid}/root/run/docker.sock"
    wait_docker(spec, sock)
    tag_v2(spec, sock)
    wait_ssh(spec)
    return entry


def tag_v2(spec: HostSpec, sock: str) -> None:
    """The stand-in SDK image under the Neuron v2 profile's name as well (images.V2_TAGS); idempotent."""
    for image, tag in images.V2_TAGS.items():
        proc = docker(sock, "tag", image, tag, timeout=30)
        if proc.returncode != 0:
            raise InfprovError(f"{spec.name}: cannot tag {image} as {tag}: {proc.stderr.strip()[-200:]}",
                               "`infprov sandbox up` again repairs the host")


def _seed_upper(spec: HostSpec) -> None:
    """The host's SSH host key and the login key, put into its own upper layer before it starts (owned by the
    host's root), where its /etc will show them."""
    ssh = spec.dir / "upper" / "etc" / "ssh"
    keys = ssh / "infprov_keys"
    keys.mkdir(parents=True, exist_ok=True)
    for d in (spec.dir / "upper" / "etc", ssh, keys):
        d.chmod(0o755)
        os.chown(d, HOST_ID_BASE, HOST_ID_BASE)
    for src, dest, mode in ((spec.dir / "ssh_host_ed25519_key", ssh / "ssh_host_ed25519_key", 0o600),
                            (spec.dir / "ssh_host_ed25519_key.pub", ssh / "ssh_host_ed25519_key.pub", 0o644),
                            (Path(f"{key_file()}.pub"), keys / "ubuntu", 0o644)):
        shutil.copyfile(src, dest)
        dest.chmod(mode)
        os.chown(dest, HOST_ID_BASE, HOST_ID_BASE)


def _delegate_cgroups(spec: HostSpec) -> None:
    """The host's own cgroup in every hierarchy, owned by the host's root, so its dockerd (in the host's user
    namespace) can make its containers' cgroups below it (--cgroup-parent); cpuset's need CPUs and memory
    nodes before anything can join them."""
    top = Path("/sys/fs/cgroup")
    roots = [top] if (top / "cgroup.procs").exists() else sorted(top.iterdir()) if top.is_dir() else []
    for root in roots:
        if not (root / "cgroup.procs").exists():
            continue
        mine = root / f"infprov-{prefix()}" / spec.name
        mine.mkdir(parents=True, exist_ok=True)
        if (root / "cpuset.cpus").exists():
            for level in (mine.parent, mine):
                for knob in ("cpuset.cpus", "cpuset.mems"):
                    if not (level / knob).read_text().strip():
                        (level / knob).write_text((level.parent / knob).read_text())
        if root == cgroup_root():
            continue  # the host's processes are counted and ended through this one: it stays the machine's
        os.chown(mine, HOST_ID_BASE, HOST_ID_BASE)
        for f in mine.iterdir():
            if f.is_file():
                os.chown(f, HOST_ID_BASE, HOST_ID_BASE)


def start_sshd(spec: HostSpec, pid: int) -> None:
    _in_host(spec, pid, ["/usr/sbin/sshd", "-E", "/run/sshd.log"])


def dockerd_argv() -> list[str]:
    """How a host's dockerd runs; a host whose dockerd was started otherwise (by an older infprov) is rebuilt."""
    return ["setsid", "-f", "dockerd", "--data-root", "/var/lib/docker", "--exec-root", "/var/run/docker",
            "--pidfile", "/var/run/docker.pid", "-H", "unix:///var/run/docker.sock",
            "--cgroup-parent", f"/infprov-{prefix()}/{{name}}/docker",
            # containers get no nameserver that answers either (left alone, dockerd hands a bridged
            # container 8.8.8.8 when the host's only nameserver is a loopback address)
            "--dns", "127.0.0.1", "--max-download-attempts", "1",
            # the sandbox's registry (ECR's stand-in) serves plain http on the bridge, inside the seal
            "--insecure-registry", f"{gateway()}:{network.REGISTRY_PORT}"]


def dockerd_key() -> str:
    return hashlib.sha256("\0".join(dockerd_argv()).encode()).hexdigest()[:16]


def start_dockerd(spec: HostSpec, pid: int) -> None:
    with open(spec.dir / "dockerd.log", "ab") as log:
        _in_host(spec, pid, [a.replace("{name}", spec.name) for a in dockerd_argv()], stdout=log)


def install_power_standin(spec: HostSpec, pid: int) -> None:
    """The host's `shutdown`: schedules a power-off that the EC2 endpoint turns into a termination."""
    system.run(["nsenter", "-t", str(pid), *ENTER, "--", "sh", "-ec", hostinit.POWER_INSTALL],
               input=hostinit.SHUTDOWN_STANDIN, what=f"install {spec.name}'s shutdown stand-in", timeout=20)


def lay_out_home(spec: HostSpec) -> None:
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
    owner = HOST_ID_BASE + HOST_USER_UID  # the host's ubuntu, as the machine sees it
    os.chown(home, owner, owner)
    for p in home.rglob("*"):
        os.lchown(p, owner, owner)
    home.chmod(0o750)
    hostkey = spec.dir / "ssh_host_ed25519_key"
    if not hostkey.exists():
        system.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", spec.hostname, "-f", str(hostkey)],
                   what=f"make {spec.name}'s host key")


def _join_cgroup(cg: Path) -> None:
    cg.mkdir(parents=True, exist_ok=True)
    (cg / "cgroup.procs").write_text(str(os.getpid()))


def _user_namespace(cg: Path) -> subprocess.Popen[bytes]:
    """A process holding a new user namespace whose IDs 0..65535 are the machine's HOST_ID_BASE.. (written by
    this root process: no newuidmap, no /etc/subuid entry)."""
    holder = subprocess.Popen(["unshare", "--user", "--", "sleep", "60"], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              preexec_fn=lambda: _join_cgroup(cg))
    mine = os.readlink("/proc/self/ns/user")
    deadline = time.monotonic() + 10
    while os.readlink(f"/proc/{holder.pid}/ns/user") == mine:
        if holder.poll() is not None or time.monotonic() > deadline:
            raise InfprovError("cannot make a user namespace for a sandbox host",
                               "the kernel must allow user namespaces (user.max_user_namespaces > 0)")
        time.sleep(0.005)
    for name in ("uid_map", "gid_map"):
        Path(f"/proc/{holder.pid}/{name}").write_text(f"0 {HOST_ID_BASE} {HOST_ID_COUNT}\n")
    return holder


def _start_init(spec: HostSpec, lower: Path) -> int:
    """The host's PID 1: in a user namespace of its own (root there is HOST_ID_BASE here) with its own mount,
    network, UTS, IPC and PID namespaces, owned by that user namespace (so the host's root may run dockerd and
    change its network), on its own root file system (hostinit.INIT_SCRIPT)."""
    cg = spec.cgroup
    holder = _user_namespace(cg)
    try:
        with open(spec.dir / "init.log", "wb") as log:
            proc = subprocess.Popen(
                ["setsid", "unshare", "--mount", "--propagation", "private", "--",
                 "sh", "-c", hostinit.BIND_SCRIPT, "sh", str(lower), str(public_dir()),
                 "nsenter", f"--user=/proc/{holder.pid}/ns/user", "--",
                 "unshare", "--mount", "--propagation", "private", "--uts", "--ipc", "--net", "--pid", "--fork",
                 "--kill-child", "--", "/bin/bash", "-c", hostinit.INIT_SCRIPT, "init", spec.name,
                 str(NEURON_DEVICES), spec.hostname, str(public_dir())],
                cwd=spec.dir, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                preexec_fn=lambda: _join_cgroup(cg),
            )

        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            children = _children(proc.pid)
            if children and Path(f"/proc/{children[0]}/root/run/infprov-init.ready").exists():
                pid = children[0]
                (spec.dir / "init.pid").write_text(str(pid))
                return pid
            if proc.poll() is not None:
                break
            time.sleep(0.02)
    finally:
        holder.kill()
        holder.wait()
    said = " | ".join((spec.dir / "init.log").read_text(errors="replace").strip().splitlines()[-3:])
    raise InfprovError(f"{spec.name}: the host's init process did not start" + (f": {said}" if said else ""),
                       f"see {spec.dir / 'init.log'}")


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except FileNotFoundError:
        return []
    return [int(p) for p in text.split()]


def _in_host(spec: HostSpec, pid: int, argv: list[str], stdout: Any = None) -> None:
    cg = spec.cgroup
    try:
        subprocess.run(
            ["nsenter", "-t", str(pid), *ENTER, *argv],
            stdin=subprocess.DEVNULL, stdout=stdout or subprocess.PIPE, stderr=subprocess.STDOUT,
            preexec_fn=lambda: _join_cgroup(cg), check=True, timeout=30,
        )
    except subprocess.CalledProcessError as exc:
        said = " | ".join((exc.stdout or b"").decode(errors="replace").strip().splitlines()[-3:])
        if argv[0].endswith("sshd"):  # sshd writes why to its log (-E), not to the terminal
            with contextlib.suppress(OSError):
                log = Path(f"/proc/{pid}/root/run/sshd.log").read_text(errors="replace").strip().splitlines()
                said = " | ".join(log[-3:]) or said
        raise InfprovError(f"{spec.name}: {Path(argv[0]).name} did not start (exit {exc.returncode})"
                           + (f": {said}" if said else ""),
                           "see the logs under the sandbox's private hosts folder; `infprov sandbox up` again "
                           "repairs") from None
    except subprocess.TimeoutExpired:
        raise InfprovError(f"{spec.name}: {Path(argv[0]).name} did not start within 30 s",
                           "`infprov sandbox up` again repairs") from None


def docker(
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


def wait_docker(spec: HostSpec, sock: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if docker(sock, "version", "--format", "{{.Server.Version}}", timeout=10).returncode == 0:
            return
        time.sleep(0.2)
    tail = (spec.dir / "dockerd.log").read_text(errors="replace").strip().splitlines()[-3:]
    raise InfprovError(f"{spec.name}: dockerd did not start in 60 s: {' | '.join(tail)}",
                       f"see {spec.dir / 'dockerd.log'}")


def wait_ssh(spec: HostSpec) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((spec.address, 22), timeout=1) as s:
            if s.recv(4).startswith(b"SSH"):
                return
        time.sleep(0.1)
    raise InfprovError(f"{spec.name}: sshd is not answering on {spec.address}:22",
                       f"see /proc/<init>/root/run/sshd.log of {spec.name}")


def host_problem(spec: HostSpec, entry: dict[str, Any], quick: bool) -> str | None:
    """None when the host is whole; otherwise what is wrong with it."""
    if entry.get("powered_off"):
        return None  # a stopped instance's host: off on purpose, its disk kept
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
    if network.has_default_route(spec):
        return "it has a default route (a sealed host routes only inside the sandbox subnet)"
    if quick:
        return None
    if entry.get("hostroot") != hostroot.key():
        return "its root file system is from an older recipe (or it shares the machine's)"
    if entry.get("images") != images.recipe_key():
        # a host keeps the images it was built with; a newer recipe (what setup.sh needs preinstalled, the
        # stand-in server's apt and pip settings) means a host with those images, or the server step fails
        return "its images were built from an older recipe"
    if entry.get("dockerd") != dockerd_key():
        return "its dockerd runs with older settings (the sandbox's registry, say)"
    sock = f"unix:///proc/{pid}/root/run/docker.sock"
    proc = docker(sock, "image", "inspect", "--format", "{{.Id}}", *images.STANDIN_IMAGES, timeout=20)
    if proc.returncode != 0:
        return "dockerd or its images are missing"
    return None


def cgroup_pids(spec: HostSpec) -> list[int]:
    pids: list[int] = []
    if not spec.cgroup.exists():
        return pids
    for procs in spec.cgroup.rglob("cgroup.procs"):
        with contextlib.suppress(OSError):
            pids += [int(p) for p in procs.read_text().split()]
    return pids


def remove_host(spec: HostSpec, state: dict[str, Any]) -> None:
    """Stop a host's containers and daemons, kill what is left by PID, drop its links and files."""
    pid = state.get("hosts", {}).get(spec.name, {}).get("init_pid")
    if pid is None and (spec.dir / "init.pid").exists():
        pid = int((spec.dir / "init.pid").read_text())
    if pid and Path(f"/proc/{pid}/root/run/docker.sock").exists():
        sock = f"unix:///proc/{pid}/root/run/docker.sock"
        ids = docker(sock, "ps", "-aq", timeout=20).stdout.split()
        if ids:
            docker(sock, "rm", "-f", *ids, timeout=60)
    power_off(spec)
    for instance, name in list(state.get("assignments", {}).items()):
        if name == spec.name:
            del state["assignments"][instance]
    shutil.rmtree(spec.dir, ignore_errors=True)


def power_off(spec: HostSpec) -> None:
    """The host powers off as a stopped instance does: dockerd ends its containers (they stay, exited), every
    process of the host ends, its network goes; its folder (home, /etc and root layer, docker state) stays,
    so `boot` brings the same disk back."""
    for p in cgroup_pids(spec):
        if comm(p) == "dockerd":
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGTERM)
            wait_gone(p, 15)
    for _ in range(50):
        pids = cgroup_pids(spec)
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
    if network.link_exists(spec.veth):
        system.run(["ip", "link", "del", spec.veth], what=f"remove veth {spec.veth}", check=False)
    network.forget_neighbour(spec)
    with contextlib.suppress(OSError):
        (spec.dir / "init.pid").unlink()


def comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def wait_gone(pid: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        time.sleep(0.1)
