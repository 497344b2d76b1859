"""The cloud lifecycle against moto: the constants, the SSH wait stand-in, and helpers that read EC2 back."""

from __future__ import annotations

import socket
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any

from typer.testing import CliRunner

from infprov.inventory.model import Host
from infprov.provision import cloud, planning, specs
from infprov.provision.cli import app
from infprov.provision.providers import AwsProvider

REGION = "us-east-1"
CIDR = "198.51.100.7/32"
FAST = specs.Timeouts(
    running=5, status_ok=5, ssh_port=5, ssh_login=5, terminated=5, sg_delete=2, lock=20, interval=0.02
)
CHOSEN_AMI = "ami-0c1f5e2a9d4b70a11"  # Neuron 2.26.0 multi-framework: the newest that drives Inf1
NEW_AMI = "ami-0a6b5c4d3e2f10f66"  # Neuron 2.27.0: cannot drive Inf1
UBUNTU_AMI = "ami-04b70fa74e45c3917"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SshSeen:
    """Stands in for the SSH wait: plain moto has no hosts behind its addresses."""

    def __init__(self) -> None:
        self.hosts: list[Host] = []
        self.consoles: list[str] = []

    def __call__(self, hosts: Sequence[Host], timeouts: specs.Timeouts,
                 console: Callable[[str], str] | None = None) -> None:
        self.hosts.extend(hosts)
        if console is not None:
            self.consoles.extend(console(h.instance_id) for h in hosts)


def _up(prov: AwsProvider, ssh: specs.SshWait | None = None, confirm: specs.Confirm | None = None,
        **kwargs: Any) -> specs.UpResult:
    spec = specs.UpSpec(**{"instance_type": "inf1.6xlarge", "ssh_cidr": CIDR, "yes": True, **kwargs})
    return cloud.up(spec, provider=prov, ssh_wait=ssh or SshSeen(), confirm=confirm, timeouts=FAST)


def _key(region: str = REGION) -> str:
    """This home's key pair in region (INFPROV_HOME as the test set it)."""
    from infprov.provision import access

    return access.this_home_key(region)


def _live(prov: AwsProvider, cluster: str | None = None) -> list[dict[str, Any]]:
    """The cluster's live instances as EC2 itself describes them (raw, every field)."""
    filters = {**planning.cluster_filter(cluster), "instance-state-name": list(specs.NOT_GONE_STATES)}
    answer = prov.client.describe_instances(Filters=[{"Name": k, "Values": list(v)} for k, v in filters.items()])
    return [i for r in answer["Reservations"] for i in r["Instances"]]


def _managed_everything(prov: AwsProvider) -> list[str]:
    """Every infprov-made resource still there, as 'type id' strings."""
    left = [f"instance {i['InstanceId']}" for i in _live(prov)]
    left += [f"sg {g['GroupId']}" for g in prov.security_groups({"tag:infprov:managed": ["true"]})]
    left += [f"volume {v['VolumeId']}" for v in prov.volumes({"tag:infprov:managed": ["true"]})]
    left += [f"key {k['KeyName']}" for k in prov.key_pairs({"tag:infprov:managed": ["true"]})]
    return left


def _fail(prov: AwsProvider, operation: str, code: str, when: Callable[[dict[str, Any]], bool] = lambda p: True,
          times: int | None = None) -> list[dict[str, Any]]:
    """Make EC2 answer `operation` with error `code`, at the API layer before any HTTP is sent.

    Returns the serialized parameters of every call (failed or not), e.g. {"SubnetId": ..., "ClientToken": ...}.
    """
    calls: list[dict[str, Any]] = []
    failed = [0]

    class Http:
        status_code = 400

    def hook(params: dict[str, Any], **_: Any) -> Any:
        body = params.get("body")
        sent = dict(body) if isinstance(body, dict) else dict(urllib.parse.parse_qsl(body or ""))
        calls.append(sent)
        if when(sent) and (times is None or failed[0] < times):
            failed[0] += 1
            return Http(), {"Error": {"Code": code, "Message": f"injected {code}"}}
        return None

    for client in (prov.client, prov.launch_client):  # RunInstances goes through a client of its own
        client.meta.events.register(f"before-call.ec2.{operation}", hook)
    return calls


def _cli(args: list[str]) -> Any:
    return CliRunner().invoke(app, args)
