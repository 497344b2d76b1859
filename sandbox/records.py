"""The sandbox's bookkeeping: which hosts exist and which instance holds which host, kept in one state
file under one lock; giving a host to an instance and wiping it when the instance is gone."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from infprov.floor.errors import InfprovError
from infprov.sandbox import hostinit, hostroot, images, nshost, system
from infprov.sandbox.places import NEURON_DEVICES, USER, HostSpec, key_file, private_dir


def _state_file() -> Path:
    return private_dir() / "state.json"


def read_state() -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(_state_file().read_text())
        return data
    except (FileNotFoundError, json.JSONDecodeError):
        return {"hosts": {}, "assignments": {}, "made": []}


def write_state(state: dict[str, Any]) -> None:
    _state_file().parent.mkdir(parents=True, exist_ok=True)
    tmp = _state_file().with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(_state_file())


@contextlib.contextmanager
def locked() -> Iterator[None]:
    """One sandbox operation at a time on this machine."""
    private_dir().mkdir(parents=True, exist_ok=True)
    os.chmod(private_dir(), 0o700)
    with system.flocked(private_dir() / ".lock"):
        yield


def assign_host(instance_id: str, neuron_devices: int | None = None) -> dict[str, Any]:
    """Give a launched instance a free sandbox host (the same one on every call for that id).

    With neuron_devices (the instance type's chips), the host's /dev shows exactly that many
    /dev/neuronN, as the instance would: an inf1.xlarge gets neuron0, an inf1.24xlarge neuron0..15.
    """
    with locked():
        state = read_state()
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
                nshost.install_power_standin(HostSpec(int(name[1:])), int(state["hosts"][name]["init_pid"]))
            assignments[instance_id] = name
            if neuron_devices is not None:
                _set_devices(name, state, neuron_devices)
            write_state(state)
    return _host_entry(name, state)


def _set_devices(name: str, state: dict[str, Any], count: int) -> None:
    """Make the host's /dev hold /dev/neuron0..count-1 and no other Neuron device (under the lock)."""
    entry = state.get("hosts", {}).get(name)
    if entry is None or entry.get("neuron_devices") == count:
        return
    if not 0 <= count <= 16:
        raise InfprovError(f"{count} Neuron devices cannot be laid out on a sandbox host", "0 to 16")
    pid = entry.get("init_pid")
    system.run(["nsenter", "-t", str(pid), *nshost.ENTER, "--", "sh", "-c", hostinit.NEURON_DEVICES_SCRIPT, "sh",
                str(count)],
               what=f"lay out {count} Neuron device(s) on {name}")
    entry["neuron_devices"] = count
    write_state(state)


def release_host(instance_id: str) -> None:
    """The instance is gone: its host is made anew, as the next instance would get a new machine on EC2."""
    with system.sane_umask(), locked():
        state = read_state()
        name = state.get("assignments", {}).pop(instance_id, None)
        if name is None:
            return
        if name in state.get("hosts", {}):
            renew_host(HostSpec(int(name[1:])), state)
        write_state(state)


def power_off_host(instance_id: str) -> None:
    """The instance stopped: its host powers off and keeps its disk (nothing if it is off already)."""
    with system.sane_umask(), locked():
        state = read_state()
        name = state.get("assignments", {}).get(instance_id)
        entry = state.get("hosts", {}).get(name or "")
        if entry is None or entry.get("powered_off"):
            return
        nshost.power_off(HostSpec(int(str(name)[1:])))
        entry["powered_off"] = True
        entry["init_pid"] = None
        write_state(state)


def boot_host(instance_id: str) -> None:
    """The instance started again: its host boots on the disk it kept (sshd, dockerd, its containers and
    images as they were), with the Neuron devices it had."""
    with system.sane_umask(), locked():
        state = read_state()
        name = state.get("assignments", {}).get(instance_id)
        entry = state.get("hosts", {}).get(name or "")
        if name is None or entry is None or not entry.get("powered_off"):
            return
        spec = HostSpec(int(name[1:]))
        try:
            made = nshost.make_host(spec, None)  # no docker root: the host's own stays as it was
        except InfprovError:
            nshost.power_off(spec)
            raise
        made["images"], made["hostroot"] = entry.get("images"), entry.get("hostroot")
        state["hosts"][name] = made
        write_state(state)
        _set_devices(name, state, int(entry.get("neuron_devices") or NEURON_DEVICES))


def renew_host(spec: HostSpec, state: dict[str, Any]) -> None:
    """Remove the host wholly (every process of its cgroup, root ones too, and its /etc overlay, /run,
    /dev/shm, docker state and home with it) and make it again from the cached images: nothing a tenant
    did or left running, a scheduled power-off included, reaches the next one. Without the image cache
    (deleted by hand) the host stays removed and `infprov sandbox up` makes it again."""
    hosts = state.setdefault("hosts", {})
    nshost.remove_host(spec, state)
    hosts.pop(spec.name, None)
    template = images.cached_docker_root()
    if template is None or hostroot.cached() is None:
        return
    try:
        hosts[spec.name] = nshost.make_host(spec, template)
    except InfprovError:
        nshost.remove_host(spec, state)  # half made: `sandbox up` makes it again
        raise


def free_hosts() -> int:
    """How many hosts no instance holds now."""
    state = read_state()
    taken = set(state.get("assignments", {}).values())
    return sum(1 for name in state.get("hosts", {}) if name not in taken)


def reconcile(live_instance_ids: set[str]) -> list[str]:
    """Free the hosts of instances the EC2 endpoint no longer has alive (a teardown cut short by Ctrl-C,
    an endpoint that was reset), wiping them as termination would. Returns the instance ids released."""
    stale = [i for i in read_state().get("assignments", {}) if i not in live_instance_ids]
    for instance_id in stale:
        release_host(instance_id)
    return stale


def host_for_instance(instance_id: str) -> dict[str, Any] | None:
    state = read_state()
    name = state.get("assignments", {}).get(instance_id)
    return _host_entry(name, state) if name else None


def docker_socket(name: str) -> str:
    """The host's dockerd as seen from the machine's root namespaces."""
    state = read_state()
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


def powered_off() -> list[str]:
    """The instances whose sandbox host has powered itself off (its scheduled shutdown came due)."""
    state = read_state()
    found = []
    for instance_id, name in state.get("assignments", {}).items():
        pid = state.get("hosts", {}).get(name, {}).get("init_pid")
        if pid and Path(f"/proc/{pid}/root{hostinit.POWER_STATE}.off").exists():
            found.append(instance_id)
    return found
