"""Security as tests, on a cluster `infprov up --sandbox` made: what EC2 records for it, the keys,
pinned host keys, and no credentials in any output, log or result.

(Already covered elsewhere and not repeated: plain `--ssh-cidr 0.0.0.0/0` in test_bad_input.py, the
RunInstances arguments in test_cloud_unit.py, stray rules revoked in test_cloud_moto.py, the engine
refusing a changed key in test_playbooks_ssh.py, secret variables masked in test_security_cli.py.)"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.hostshell import sandbox_ec2

pytestmark = pytest.mark.sandbox
CLUSTER = "sec"
TYPE = "inf1.xlarge"
# Recognisable stand-ins for real credentials: whatever infprov prints or writes is scanned for them.
ACCESS_KEY = "AKIAINFPROVLEAKTEST7"
SECRET_KEY = "infprovLeak/TestSecretKey+DoNotPrint0123"
AWS_KEY_PATTERNS = [re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), re.compile(re.escape(SECRET_KEY)),
                    re.compile(r"(?i)aws_secret_access_key\s*[=:]\s*\S")]


def _cli(*argv: str, check: bool = True, timeout: float = 300, debug: bool = True) -> subprocess.CompletedProcess[str]:
    """infprov in a process of its own with recognisable AWS credentials set, under --debug by default
    (tracebacks and all): every output is kept for the credential scan."""
    env = {**os.environ, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
    proc = subprocess.run([sys.executable, "-m", "infprov.provision.cli", *(["--debug"] if debug else []), *argv],
                          capture_output=True, text=True, env=env, timeout=timeout)
    _SEEN.append(f"$ infprov {' '.join(argv)}\n{proc.stdout}\n{proc.stderr}")
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


_SEEN: list[str] = []  # every output of every command this module ran


@pytest.fixture(scope="module")
def cluster(sandbox_hosts: list[dict[str, Any]], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    home = tmp_path_factory.mktemp("sec-home") / "home"
    old = os.environ.get("INFPROV_HOME")
    os.environ["INFPROV_HOME"] = str(home)
    try:
        _cli("up", "--sandbox", "--type", TYPE, "--name", CLUSTER, "--yes")
        from infprov.floor import paths
        from infprov.inventory import store

        [host] = store.load(paths.inventory_file()).in_cluster(CLUSTER)
        yield {"home": home, "host": host}
    finally:
        _cli("teardown", "--name", CLUSTER, "--yes", check=False)
        if old is None:
            os.environ.pop("INFPROV_HOME", None)
        else:
            os.environ["INFPROV_HOME"] = old


def _instance(cluster: dict[str, Any]) -> dict[str, Any]:
    [res] = sandbox_ec2().describe_instances(InstanceIds=[cluster["host"].name])["Reservations"]
    inst: dict[str, Any] = res["Instances"][0]
    return inst


def test_no_security_group_rule_is_open_to_the_internet(cluster: dict[str, Any]) -> None:
    groups = sandbox_ec2().describe_security_groups(Filters=[{"Name": "tag:infprov:cluster", "Values": [CLUSTER]}])
    [group] = groups["SecurityGroups"]
    opened = [(p.get("IpProtocol"), p.get("FromPort"), r.get("CidrIp") or r.get("CidrIpv6"))
              for p in group["IpPermissions"] for r in [*p.get("IpRanges", []), *p.get("Ipv6Ranges", [])]]
    assert len(opened) == 1, opened
    [(proto, port, cidr)] = opened
    assert (proto, port) == ("tcp", 22) and cidr.endswith("/32") and cidr not in ("0.0.0.0/0", "::/0")
    assert not [p for p in group["IpPermissions"] if p.get("UserIdGroupPairs") or p.get("PrefixListIds")]


@pytest.mark.parametrize("cidr", ["0.0.0.0/0", "::/0", "0.0.0.0/1"])
def test_the_whole_internet_is_refused_even_with_allow_wide_ssh(cluster: dict[str, Any], cidr: str) -> None:
    before = sandbox_ec2().describe_security_groups()["SecurityGroups"]
    proc = _cli("up", "--sandbox", "--type", TYPE, "--name", "sec-wide", "--yes", "--ssh-cidr", cidr,
                "--allow-wide-ssh", check=False, debug=False)
    if cidr == "0.0.0.0/1":  # wide but not everything: --allow-wide-ssh lets it through (made, then removed)
        assert proc.returncode == 0, proc.stderr
        assert _cli("teardown", "--name", "sec-wide", "--yes").returncode == 0
        return
    assert proc.returncode == 2, proc.stderr
    [error] = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert "whole internet" in error and "Traceback" not in proc.stderr
    assert sandbox_ec2().describe_security_groups()["SecurityGroups"] == before  # nothing made


def test_imdsv2_required_root_encrypted_and_shutdown_terminates(cluster: dict[str, Any]) -> None:
    inst = _instance(cluster)
    assert inst["MetadataOptions"]["HttpTokens"] == "required"
    assert inst["MetadataOptions"]["HttpPutResponseHopLimit"] == 1
    vols = sandbox_ec2().describe_volumes(Filters=[{"Name": "attachment.instance-id", "Values": [inst["InstanceId"]]}])
    assert vols["Volumes"] and all(v["Encrypted"] for v in vols["Volumes"])
    attr = sandbox_ec2().describe_instance_attribute(InstanceId=inst["InstanceId"],
                                              Attribute="instanceInitiatedShutdownBehavior")
    assert attr["InstanceInitiatedShutdownBehavior"]["Value"] == "terminate"


def test_private_keys_are_0600_in_a_0700_folder_and_never_printed_or_logged(cluster: dict[str, Any]) -> None:
    keys = cluster["home"] / "keys"
    assert stat.S_IMODE(keys.stat().st_mode) == 0o700
    pems = list(keys.iterdir())
    assert pems
    bodies = []
    for pem in pems:
        assert stat.S_IMODE(pem.stat().st_mode) == 0o600, pem
        text = pem.read_text()
        if "PRIVATE KEY" in text:
            bodies += [line for line in text.splitlines() if line and "PRIVATE KEY" not in line]
    assert bodies
    _cli("inventory", "--json")
    _cli("inventory", "--ssh-config")
    _cli("status", "--json")
    _cli("logs", "--name", CLUSTER, "--tail", "5")
    written = _written(cluster["home"])
    for body_line in bodies:
        for text in [*_SEEN, *written.values()]:
            assert body_line not in text
    assert not [t for t in [*_SEEN, *written.values()] if "PRIVATE KEY-----" in t]


def _written(home: Path) -> dict[str, str]:
    """Every file infprov wrote under INFPROV_HOME except the keys themselves."""
    found = {}
    for path in home.rglob("*"):
        if path.is_file() and path.parent.name != "keys" and not path.name.endswith(".lock"):
            found[str(path)] = path.read_text(errors="replace")
    return found


def test_a_changed_host_key_is_refused(cluster: dict[str, Any], tmp_path: Path) -> None:
    from infprov.sandbox import core, records

    name = core.host_for_instance(cluster["host"].name)["name"]  # type: ignore[index]
    pid = records.read_state()["hosts"][name]["init_pid"]
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "impostor")], check=True)

    def install(key: Path) -> None:
        # read here (the sandbox's private folder is masked inside the host), written there
        for src, mode in ((key, "600"), (Path(f"{key}.pub"), "644")):
            dest = "/etc/ssh/ssh_host_ed25519_key" + (".pub" if src.suffix == ".pub" else "")
            subprocess.run(["nsenter", "-t", str(pid), "-m", "sh", "-c", 'cat > "$1" && chmod "$2" "$1"', "sh",
                            dest, mode], input=src.read_bytes(), check=True)
        core.restart_daemon(name, "sshd")

    install(tmp_path / "impostor")
    try:
        ssh = _cli("ssh", "--name", CLUSTER, "--", "true", check=False, debug=False)
        assert ssh.returncode != 0
        assert "Host key verification failed" in ssh.stderr or "CHANGED" in ssh.stderr, ssh.stderr
        up = _cli("up", "--sandbox", "--type", TYPE, "--name", CLUSTER, "--yes", check=False, debug=False)
        assert up.returncode == 1 and "Traceback" not in up.stderr, up.stderr
        [error] = [line for line in up.stderr.splitlines() if line.startswith("error:")]
        assert "host key" in error.lower(), error
        assert up.stderr.rstrip().splitlines()[-1] == error  # nothing after it (paramiko's own log once was)
    finally:
        install(core.HostSpec(int(name[1:])).dir / "ssh_host_ed25519_key")
    assert _cli("ssh", "--name", CLUSTER, "--", "true").returncode == 0  # the real key is admitted again


def test_no_credentials_in_outputs_logs_results_or_debug_output(cluster: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "bench"
    _cli("bench", "--name", CLUSTER, "--limit", "2", "--out", str(out))
    _cli("results", str(out))
    _cli("status")
    _cli("up", "--sandbox", "--type", TYPE, "--name", CLUSTER, "--yes", "--json")  # converged: nothing changes
    failed = _cli("bench", "--name", CLUSTER, "--model", "no-such-model", check=False)  # a failure, under --debug
    assert failed.returncode != 0
    texts = {**_written(cluster["home"]), **{str(p): p.read_text(errors="replace") for p in out.rglob("*")
                                             if p.is_file() and p.suffix != ".png"}}
    texts.update({f"output {i}": t for i, t in enumerate(_SEEN)})
    assert len(texts) > 10
    leaks = [(where, pat.pattern) for where, text in texts.items() for pat in AWS_KEY_PATTERNS if pat.search(text)]
    assert leaks == []
