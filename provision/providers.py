"""Where instances come from: AWS itself, or the sandbox (moto's EC2 API with namespace hosts behind it).

Both speak the EC2 API (Ec2Provider); what differs between them is answered here and nowhere else in
the cloud code, which never asks which one it holds: whether instances cost money, whether there is room,
which address the hosts see this machine at, how an instance is reached over SSH, and what is done with
the host an instance leaves.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import urllib.request
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from infprov.floor.errors import InfprovError, UsageError
from infprov.provision import catalog, ui
from infprov.provision.ec2 import Ec2Provider, Instance, default_region
from infprov.provision.specs import NOT_GONE_STATES, SANDBOX_REGION, SANDBOX_VAR, SSH_PORT, SSH_USER, validate_region

CHECKIP_URL = "https://checkip.amazonaws.com"


def sandbox_core() -> Any:
    """The sandbox's face (infprov.sandbox.core: its hosts for the provider, the server's group vars,
    preflight's stand-in URLs), imported only when a sandbox is used: the runtime's one door to it."""
    from infprov.sandbox import core

    return core


@dataclass(frozen=True)
class Reach:
    """How an instance is logged into, and how many Neuron devices its host shows."""

    address: str
    port: int
    user: str
    key_file: str
    neuron_devices: int


class Provider(Ec2Provider):
    """Where instances come from, as the cloud code sees it. The answers here are AWS's: instances are
    billed, reached at their public address with the cluster's key, and leave nothing behind."""

    sandbox = False
    billed = True

    def prepare(self) -> None:
        """Before a lifecycle reads the instances (nothing to do on AWS)."""

    def check_room(self, cluster: str, launch: int) -> None:
        """Before anything is created: can this many more instances be placed? (AWS answers at launch.)"""

    def caller_cidr(self) -> str:
        """This machine's address as the hosts see it, as a /32 (or /128)."""
        try:
            with urllib.request.urlopen(CHECKIP_URL, timeout=10) as resp:
                text = resp.read(64).decode().strip()
            addr = ipaddress.ip_address(text)
        except (OSError, ValueError) as exc:
            raise InfprovError(
                f"could not learn this machine's public address from {CHECKIP_URL} ({exc})",
                "pass --ssh-cidr A.B.C.D/32 with the address you connect from",
            ) from None
        return f"{addr}/{addr.max_prefixlen}"

    def reach(self, inst: Instance, itype: catalog.InstanceType, key_file: Callable[[str], str],
              user_key: str | None, managed_key: str) -> Reach:
        address = inst.address
        if not address:
            raise InfprovError(f"{inst.id} has no IP address", "check the default subnet's settings")
        key_name = str(inst.key_name or user_key or managed_key)
        return Reach(str(address), SSH_PORT, SSH_USER, key_file(key_name), itype.neuron_devices)

    def host_key_source(self) -> Callable[[str], str] | None:
        """Where the hosts' key fingerprints can be read before the first login (the console output)."""
        return self.console_output

    def needs_key_file(self) -> bool:
        """Whether a user's own key pair must have its private key here (hosts are logged into with it)."""
        return True

    def inventory_extra(self) -> dict[str, Any]:
        """What the inventory records beside each of this provider's hosts."""
        return {}

    def holds(self, extra: Mapping[str, Any]) -> bool:
        """Whether an inventory host (by what was recorded beside it) came from this provider."""
        return not extra.get(SANDBOX_VAR, False)

    def cost_note(self) -> str:
        return ""

    def address(self, inst: Instance) -> tuple[str, int] | None:
        """Where SSH reaches an instance (None: nowhere yet)."""
        public = inst.public_ip
        return (str(public), SSH_PORT) if public else None

    def shown_address(self, inst: Instance) -> str:
        """The address `status` shows for an instance."""
        return str(inst.address)

    def release(self, instance_ids: Collection[str]) -> None:
        """After instances terminated: what stood for them is given back (nothing to give back on AWS)."""

    def forget(self, live: Collection[str]) -> list[str]:
        """Hosts of instances that are gone are released (nothing to release on AWS)."""
        return []


class AwsProvider(Provider):
    """Instances on AWS."""


class SandboxProvider(Provider):
    """Instances in the local sandbox: moto runs the EC2 API, each instance stands on a namespace host."""

    sandbox = True
    billed = False

    def __init__(self, *args: Any, core: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.core = core if core is not None else sandbox_core()

    def prepare(self) -> None:
        live = {str(i.id) for i in self.instances({"instance-state-name": list(NOT_GONE_STATES)})}
        released = self.forget(live)
        if released:
            ui.step(f"sandbox: freed the host(s) of {', '.join(released)} (no such instance is alive any more)")

    def forget(self, live: Collection[str]) -> list[str]:
        released: list[str] = self.core.reconcile(set(live))
        return released

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

    def release(self, instance_ids: Collection[str]) -> None:
        for instance_id in instance_ids:
            self.core.release_host(instance_id)


def connect(region: str | None, sandbox: bool) -> Provider:
    """The provider for this run: the sandbox's moto endpoint, or EC2 as boto3 is configured."""
    if sandbox:
        if region is not None and region != SANDBOX_REGION:
            raise UsageError(f"the sandbox is {SANDBOX_REGION} only, not {region}", "drop --region with --sandbox")
        core = sandbox_core()
        endpoint = core.status().get("ec2_endpoint")
        if not endpoint:
            raise InfprovError("the sandbox is not up", "run `infprov sandbox up`")
        # the sandbox's own credentials (its endpoint takes no others), never the user's real ones
        access_key, secret_key = core.ec2_credentials()
        return SandboxProvider(SANDBOX_REGION, endpoint_url=endpoint, access_key=access_key, secret_key=secret_key,
                               core=core)
    region = region or default_region()
    if not region:
        raise UsageError("no AWS region is configured", "pass --region us-east-1 or set AWS_REGION")
    return AwsProvider(validate_region(region))


