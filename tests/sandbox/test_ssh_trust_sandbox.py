"""First contact with a new instance: its host key is checked against what it printed on its console."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

import pytest

from infprov.floor.errors import InfprovError
from infprov.inventory.model import Host
from infprov.provision import reach, specs
from infprov.sandbox import core

pytestmark = pytest.mark.sandbox
FAST = specs.Timeouts(ssh_port=10, ssh_login=4, interval=0.2)


def _host(h: dict[str, Any]) -> Host:
    return Host(name=f"i-trust{h['name']}", address=h["address"], user=h["user"],
                      key_file=h["key_file"], port=h["port"], instance_type="inf1.6xlarge", neuron_devices=4,
                      neuron_cores=16, region="us-east-1", cluster="trust")


def _console(fingerprint: str) -> str:
    """What cloud-init prints on an EC2 console, around the host keys."""
    return (
        "[   12.3] cloud-init[901]: Cloud-init v. 23.1 running 'modules:final'\n"
        "ec2: #############################################################\n"
        "ec2: -----BEGIN SSH HOST KEY FINGERPRINTS-----\n"
        f"ec2: 256 {fingerprint} root@ip-10-0-0-1 (ED25519)\n"
        "ec2: -----END SSH HOST KEY FINGERPRINTS-----\n"
        "ec2: #############################################################\n"
    )


def _real_fingerprint(name: str) -> str:
    pub = (core.HostSpec(int(name[1:])).dir / "ssh_host_ed25519_key.pub").read_text().split()[1]
    digest = hashlib.sha256(base64.b64decode(pub)).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def test_console_fingerprint_admits_the_real_host(sandbox_hosts: list[dict[str, Any]], infprov_home: Path) -> None:
    h = sandbox_hosts[0]
    seen: list[str] = []

    def console(instance_id: str) -> str:
        seen.append(instance_id)
        return _console(_real_fingerprint(h["name"]))

    reach.wait_for_ssh([_host(h)], FAST, console=console)
    assert seen == [f"i-trust{h['name']}"]
    assert h["address"] in (infprov_home / "known_hosts").read_text()  # pinned after the check


def test_console_fingerprint_refuses_an_impostor(sandbox_hosts: list[dict[str, Any]], infprov_home: Path) -> None:
    h = sandbox_hosts[1]
    wrong = "SHA256:" + base64.b64encode(hashlib.sha256(b"someone else").digest()).decode().rstrip("=")
    with pytest.raises(InfprovError, match="not among the 1 fingerprint"):
        reach.wait_for_ssh([_host(h)], FAST, console=lambda _id: _console(wrong))
    known = infprov_home / "known_hosts"
    assert not known.exists() or h["address"] not in known.read_text()


def test_no_fingerprints_on_the_console_means_first_contact_is_pinned_with_a_warning(
    sandbox_hosts: list[dict[str, Any]], infprov_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    h = sandbox_hosts[2]
    reach.wait_for_ssh([_host(h)], FAST, console=lambda _id: "no cloud-init output yet\n")
    assert h["address"] in (infprov_home / "known_hosts").read_text()
    err = capsys.readouterr().err
    assert "shows no SSH host key fingerprints" in err and "trust on first use" in err
