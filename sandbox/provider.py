"""The sandbox as a provider: moto runs the EC2 API, each instance stands on a namespace host.

The runtime never imports this module: `infprov.provision.providers.connect(region, sandbox=True)` finds
`connect` below through the `infprov.providers` entry point (pyproject.toml), so the sandbox plugs into
the runtime from above, as tooling built on top of it.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, Protocol

from infprov.floor.errors import InfprovError, UsageError
from infprov.provision import catalog, ui
from infprov.provision.ec2 import Instance
from infprov.provision.preflight import Standin
from infprov.provision.providers import Provider, Reach
from infprov.provision.specs import NOT_GONE_STATES, SANDBOX_REGION, SANDBOX_VAR, SSH_PORT


class Fleet(Protocol):
    """What the provider asks of the sandbox's hosts (infprov.sandbox.core answers; tests give a fake)."""

    def status(self) -> dict[str, Any]: ...

    def ec2_credentials(self) -> tuple[str, str]: ...

    def assign_host(self, instance_id: str, neuron_devices: int | None = None, /) -> dict[str, Any]: ...

    def release_host(self, instance_id: str, /) -> None: ...

    def power_off_host(self, instance_id: str, /) -> None: ...

    def boot_host(self, instance_id: str, /) -> None: ...

    def free_hosts(self) -> int: ...

    def reconcile(self, live_instance_ids: set[str], /) -> list[str]: ...


def fleet() -> Fleet:
    """The sandbox's hosts (imported on first use: the sandbox core pulls in much of the sandbox)."""
    from infprov.sandbox import core

    return core


def connect(region: str | None) -> SandboxProvider:
    """The sandbox's provider, on its own EC2 endpoint and with its own credentials (never the user's)."""
    if region is not None and region != SANDBOX_REGION:
        raise UsageError(f"the sandbox is {SANDBOX_REGION} only, not {region}", "drop --region with --sandbox")
    hosts = fleet()
    endpoint = hosts.status().get("ec2_endpoint")
    if not endpoint:
        raise InfprovError("the sandbox is not up", "run `infprov sandbox up`")
    access_key, secret_key = hosts.ec2_credentials()
    return SandboxProvider(SANDBOX_REGION, endpoint_url=endpoint, access_key=access_key, secret_key=secret_key,
                           core=hosts)


class SandboxProvider(Provider):
    """Instances in the local sandbox: moto runs the EC2 API, each instance stands on a namespace host."""

    sandbox = True
    billed = False

    def __init__(self, *args: Any, core: Fleet | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.core: Fleet = core if core is not None else fleet()

    def prepare(self) -> None:
        live = {str(i.id) for i in self.instances({"instance-state-name": list(NOT_GONE_STATES)})}
        released = self.forget(live)
        if released:
            ui.step(f"sandbox: freed the host(s) of {', '.join(released)} (no such instance is alive any more)")

    def forget(self, live: Collection[str]) -> list[str]:
        return self.core.reconcile(set(live))

    def check_room(self, cluster: str, launch: int) -> None:
        free = self.core.free_hosts()
        if launch > free:
            total = len(self.core.status().get("hosts", []))
            raise UsageError(
                f"cluster {cluster} needs {launch} more sandbox host(s) but {free} of {total} are free",
                f"run `infprov sandbox up --hosts {total + launch - free}`, or tear another cluster down",
            )

    def caller_cidr(self) -> str:
        hosts = self.core.status().get("hosts", [])
        if hosts:
            # The kernel's source address towards a sandbox host; a UDP connect sends nothing.
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.connect((hosts[0]["address"], SSH_PORT))
                return f"{sock.getsockname()[0]}/32"
        return "127.0.0.1/32"

    def reach(self, inst: Instance, itype: catalog.InstanceType, key_file: Callable[[str], str],
              user_key: str | None, managed_key: str) -> Reach:
        devices = itype.neuron_devices
        entry = self.core.assign_host(inst.id, devices)  # the host shows the type's chips
        host_devices = int(entry.get("neuron_devices") or devices)
        if host_devices != devices:
            ui.warn(
                f"{inst.id} ({itype.name}, {devices} Neuron devices) stands on sandbox host "
                f"{entry.get('name')} with {host_devices}; recording the host's"
            )
        return Reach(str(entry["address"]), int(entry["port"]), str(entry["user"]), str(entry["key_file"]),
                     host_devices)

    def host_key_source(self) -> Callable[[str], str] | None:
        return None  # moto's console output holds no host keys; the sandbox's keys are pinned on first use

    def needs_key_file(self) -> bool:
        return False

    def inventory_extra(self) -> dict[str, Any]:
        return {SANDBOX_VAR: True}

    def holds(self, extra: Mapping[str, Any]) -> bool:
        return bool(extra.get(SANDBOX_VAR, False))

    def cost_note(self) -> str:
        return " (sandbox: nothing is billed)"

    def address(self, inst: Instance) -> tuple[str, int] | None:
        with contextlib.suppress(InfprovError):  # no host for it: nothing was pinned for it either
            entry = self.core.assign_host(inst.id)  # idempotent: the host it already has
            return str(entry["address"]), int(entry["port"])
        return None

    def shown_address(self, inst: Instance) -> str:
        if inst.state == "running":
            return str(self.core.assign_host(inst.id)["address"])
        return super().shown_address(inst)

    def stop_instances(self, ids: Sequence[str]) -> None:
        """EC2 stops them; their hosts power off and keep their disks (moto stops at once, as a stopped
        instance's volume stays)."""
        super().stop_instances(ids)
        for instance_id in ids:
            self.core.power_off_host(instance_id)

    def start_instances(self, ids: Sequence[str]) -> None:
        """EC2 starts them; their hosts boot on the disks they kept."""
        super().start_instances(ids)
        for instance_id in ids:
            self.core.boot_host(instance_id)

    def release(self, instance_ids: Collection[str]) -> None:
        for instance_id in instance_ids:
            self.core.release_host(instance_id)

    def standin(self) -> Standin:
        """The stand-in download server on the sandbox bridge, which serves every pinned URL."""
        from infprov.sandbox import downloads, places

        address = places.gateway()
        return Standin(address, lambda url: downloads.standin_url(url, address))

    def server_vars(self) -> dict[str, Any]:
        from infprov.sandbox import core

        return core.server_group_vars()

    def registry_address(self, endpoint: str) -> str:
        """moto names ECR's registry (https://ACCOUNT.dkr.ecr.REGION.amazonaws.com); the hosts reach the sandbox's
        registry on the bridge instead, its stand-in."""
        from infprov.sandbox import places, registry

        super().registry_address(endpoint)  # still refuses an address no registry could have
        return registry.address(places.gateway())

    def cache_pushed(self, repository: str, tag: str) -> None:
        """A push to ECR makes the image known to ECR's API; the sandbox's registry is not moto, so the manifest
        it now holds is handed to moto (PutImage, as the sandbox's own call: no user of infprov makes it)."""
        from infprov.sandbox import core, places, registry

        body, kind = registry.manifest(places.gateway(), *core.registry_login(), repository, tag)
        self.ecr_client().put_image(repositoryName=repository, imageManifest=body, imageTag=tag,
                                    imageManifestMediaType=kind)

    def cache_removed(self, repository: str) -> None:
        from infprov.sandbox import core

        core.wipe_registry()
