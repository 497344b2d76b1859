"""Where instances come from: AWS itself, or a provider that plugs in from above (the sandbox's).

Both speak the EC2 API (Ec2Provider); what differs between them is answered by the Provider's methods
and nowhere else in the cloud code, which never asks which one it holds: whether instances cost money,
whether there is room, which address the hosts see this machine at, how an instance is reached over SSH,
what is done with the host an instance leaves, where the hosts download from, and what the server
playbook must know of them. `connect` is the one place a provider is picked; the sandbox's class lives in
sandbox/provider.py and is found through an entry point, so nothing here imports the sandbox.
"""

from __future__ import annotations

import ipaddress
import urllib.request
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from infprov.floor.errors import InfprovError, UsageError
from infprov.provision import catalog
from infprov.provision.ec2 import Ec2Provider, Instance, default_region
from infprov.provision.preflight import Standin
from infprov.provision.specs import SANDBOX_VAR, SSH_PORT, SSH_USER, validate_region

CHECKIP_URL = "https://checkip.amazonaws.com"
PROVIDERS_GROUP = "infprov.providers"  # entry points: name -> connect(region) -> Provider


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

    def standin(self) -> Standin | None:
        """Where the hosts download the pinned files from, when not the internet (preflight checks there)."""
        return None

    def server_vars(self) -> dict[str, Any]:
        """What this provider's hosts need instead of server.yml's Inf1 defaults (the cluster's group vars)."""
        return {}

    def forget(self, live: Collection[str]) -> list[str]:
        """Hosts of instances that are gone are released (nothing to release on AWS)."""
        return []

    def registry_address(self, endpoint: str) -> str:
        """Where the hosts' docker reaches the registry ECR names (its proxyEndpoint, https://HOST)."""
        host = endpoint.split("://", 1)[-1].rstrip("/")
        if not host or "/" in host or any(c.isspace() for c in host):
            raise InfprovError(f"ECR answered with a registry address {endpoint[:80]!r} infprov cannot use",
                               "check the endpoint infprov talks to (AWS_ENDPOINT_URL)")
        return host

    def cache_pushed(self, repository: str, tag: str) -> None:
        """After a host pushed an image to the cache (on AWS the push itself is all ECR needs)."""

    def cache_removed(self, repository: str) -> None:
        """After the cache's repository was deleted (on AWS its images went with it)."""


class AwsProvider(Provider):
    """Instances on AWS."""


def connect(region: str | None, sandbox: bool) -> Provider:
    """The provider for this run: EC2 as boto3 is configured, or the sandbox, which plugs in from above
    through the `infprov.providers` entry point (the runtime never imports it)."""
    if sandbox:
        return _plugged("sandbox")(region)
    region = region or default_region()
    if not region:
        raise UsageError("no AWS region is configured", "pass --region us-east-1 or set AWS_REGION")
    return AwsProvider(validate_region(region))


def _plugged(name: str) -> Callable[[str | None], Provider]:
    """A provider that installed itself under the `infprov.providers` entry points (the sandbox does)."""
    from importlib.metadata import entry_points

    found = list(entry_points(group=PROVIDERS_GROUP, name=name))
    if not found:
        raise InfprovError(f"no {name} provider is installed",
                           "install infprov itself (`pip install -e .`), which registers it")
    connect_to: Callable[[str | None], Provider] = found[0].load()
    return connect_to
