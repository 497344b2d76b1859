"""What the fault tests on the sandbox share (tests/sandbox/test_faults*.py): an infprov command in a process of
its own, what EC2, the hosts and the inventory still hold of a cluster, and the check that `up` again converges
and `teardown` then leaves nothing."""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any

from typer.testing import CliRunner

from infprov.provision.cli import app
from tests.hostshell import sandbox_ec2
from tests.procs import Child, infprov_argv

runner = CliRunner()
TYPE = "inf1.xlarge"
TAG_CLUSTER = "infprov:cluster"
CLIENT_THREADS = 2  # bench's default --threads
MODEL = "rn50-4neuroncores-default"  # what an inf1.xlarge serves
_INSTANCE_RE = re.compile(r"launched (i-[0-9a-f]+)")


# ---------------------------------------------------------------- the machinery


class Run(Child):
    """An infprov command in a process of its own (signals at their defaults), its output read as it comes."""

    def __init__(self, *argv: str) -> None:
        super().__init__(infprov_argv(*argv))

    def instance_id(self) -> str:
        found = _INSTANCE_RE.search(self.err)
        assert found, self.err
        return found.group(1)


def _one_clean_error(run: Run, code: int) -> None:
    """A failure reads as one error line with a hint, never as a traceback."""
    assert code == 1, f"exit {code}:\n{run.err}"
    assert "Traceback" not in run.err, run.err
    assert [line for line in run.err.splitlines() if line.startswith("error:")], run.err


def _tagged(cluster: str) -> dict[str, list[str]]:
    """What EC2 (moto) still holds for the cluster: live instances, security groups, volumes."""
    ec2 = sandbox_ec2()
    tag = [{"Name": f"tag:{TAG_CLUSTER}", "Values": [cluster]}]
    alive = ["pending", "running", "stopping", "stopped", "shutting-down"]
    instances = [i["InstanceId"] for r in ec2.describe_instances(
        Filters=[*tag, {"Name": "instance-state-name", "Values": alive}])["Reservations"] for i in r["Instances"]]
    groups = [g["GroupId"] for g in ec2.describe_security_groups(Filters=tag)["SecurityGroups"]]
    volumes = [v["VolumeId"] for v in ec2.describe_volumes(Filters=tag)["Volumes"]]
    return {"instances": sorted(instances), "security_groups": groups, "volumes": volumes}


def _host_of(instance_id: str) -> str:
    from infprov.sandbox import core

    entry = core.host_for_instance(instance_id)
    assert entry is not None, f"no sandbox host holds {instance_id}"
    return str(entry["name"])


def _containers(host: str) -> list[tuple[str, str]]:
    from infprov.sandbox import core

    proc = subprocess.run(["docker", "-H", core.docker_socket(host), "ps", "-a", "--format", "{{.Names}} {{.State}}"],
                          capture_output=True, text=True, timeout=30, check=True)
    return sorted(tuple(line.split(" ", 1)) for line in proc.stdout.splitlines())  # type: ignore[misc]


def _inventory_hosts(cluster: str) -> list[str]:
    from infprov.floor import paths
    from infprov.inventory import store

    return [h.name for h in store.load(paths.inventory_file()).in_cluster(cluster)]


def _up(cluster: str) -> dict[str, Any]:
    up = runner.invoke(app, ["up", "--sandbox", "--type", TYPE, "--name", cluster, "--yes", "--json"])
    assert up.exit_code == 0, up.output
    doc: dict[str, Any] = json.loads(up.stdout)
    assert doc["server"]["ok"] is True, doc
    return doc


def _converges_then_clean(cluster: str, touched_hosts: tuple[str, ...] = ()) -> dict[str, Any]:
    """`up` again serves with one instance and one container; `teardown` then leaves nothing at all."""
    doc = _up(cluster)
    [host] = doc["server"]["hosts"]
    assert _tagged(cluster)["instances"] == [host["instance_id"]], "a duplicate instance"
    name = _host_of(host["instance_id"])
    assert _containers(name) == [("infprov-triton", "running")], "a duplicate or stopped server container"
    down = runner.invoke(app, ["teardown", "--sandbox", "--name", cluster, "--yes", "--json"])
    assert down.exit_code == 0, down.output
    assert json.loads(down.stdout)["leftovers"] == []
    assert _tagged(cluster) == {"instances": [], "security_groups": [], "volumes": []}
    assert _inventory_hosts(cluster) == []
    for h in {name, *touched_hosts}:
        assert _containers(h) == [], f"{h} still runs containers after teardown"
    return doc
