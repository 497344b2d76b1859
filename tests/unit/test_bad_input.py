"""Bad input over every command, as a table: one error line with a hint, the contract's exit code, no
traceback, and nothing created or changed (inventory, runs, keys)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from infprov.provision.cli import app

runner = CliRunner()
INVENTORY = """all:
  children:
    c:
      hosts:
        i-0123456789abcdef0: {ansible_host: 127.0.0.1, ansible_port: 1, instance_type: inf1.xlarge,
                              neuron_devices: 1, neuron_cores: 4, region: us-east-1}
"""


@pytest.fixture()
def home(infprov_home: Path, tmp_path: Path) -> Path:
    infprov_home.mkdir(mode=0o700)
    (infprov_home / "inventory.yml").write_text(INVENTORY)
    (tmp_path / "a-file").write_text("x")
    (tmp_path / "bad.yml").write_text("- hosts: all\n  gather_facts: false\n  tasks:\n    - nosuchmodule: {}\n")
    (tmp_path / "broken.yml").write_text("- hosts: all\n  gather_facts: false\n  tasks: [\n")
    (tmp_path / "bad-inventory.yml").write_text("all:\n  children:\n    x: [1, 2\n")
    (tmp_path / "latin1.yml").write_bytes(b"all:\n  vars: {name: caf\xe9}\n")
    return infprov_home


def _state(home: Path) -> dict[str, Any]:
    """What a refused command must leave as it was."""
    files = sorted(str(p.relative_to(home)) for p in home.rglob("*") if not p.name.endswith(".lock"))
    return {"files": files, "inventory": (home / "inventory.yml").read_text()}


T = "--type"
CASES: list[tuple[list[str], int, str]] = [
    # up: types, counts, names, regions, disks, tags, CIDRs, AMIs
    (["up", T, "inf9.xlarge"], 2, "inf1.xlarge"),
    (["up", T, "inf1.xlarge", "--count", "0"], 2, "--count 0"),
    (["up", T, "inf1.xlarge", "--count", "21"], 2, "--count 21"),
    (["up", T, "inf1.xlarge", "--count", "two"], 2, "--count"),
    (["up", T, "inf1.xlarge", "--name", "Bad_Name"], 2, "cluster name"),
    (["up", T, "inf1.xlarge", "--name", "-x"], 2, "cluster name"),
    (["up", T, "inf1.xlarge", "--region", "useast1"], 2, "--region"),
    (["up", T, "inf1.xlarge", "--disk", "50"], 2, "--disk"),
    (["up", T, "inf1.xlarge", "--disk", "lots"], 2, "--disk"),
    (["up", T, "inf1.xlarge", "--tag", "novalue"], 2, "--tag"),
    (["up", T, "inf1.xlarge", "--tag", "aws:x=1"], 2, "reserved by AWS"),
    (["up", T, "inf1.xlarge", "--tag", "a=1", "--tag", "a=2"], 2, "twice"),
    (["up", T, "inf1.xlarge", "--ssh-cidr", "0.0.0.0/0"], 2, "whole internet"),
    (["up", T, "inf1.xlarge", "--ssh-cidr", "0.0.0.0/1"], 2, "wider than /8"),
    (["up", T, "inf1.xlarge", "--ssh-cidr", "nowhere"], 2, "--ssh-cidr"),
    (["up", T, "inf1.xlarge", "--ami", "ubuntu"], 2, "--ami"),
    (["up", T, "inf1.xlarge", "--sandbox", "--region", "eu-west-1"], 2, "us-east-1 only"),
    (["up"], 2, "--type"),
    # teardown / status
    (["teardown", "--name", "x", "--all"], 2, "exclude each other"),
    (["teardown", "--name", "Bad_Name"], 2, "cluster name"),
    # issue 25: the cluster as an argument, --any-home, auto-teardown without up
    (["teardown", "Bad;Name", "--yes"], 2, "cluster name"),
    (["teardown", "c", "--name", "d", "--yes"], 2, "disagree"),
    (["teardown", "c", "--all", "--any-home", "--yes"], 2, "exclude each other"),
    (["bench", "$(touch x)"], 2, "cluster name"),
    (["ssh", "c", "--name", "d", "--", "id"], 2, "disagree"),
    (["ssh", "c", "--host", "i-0123456789abcdef0"], 2, "cannot be used together"),
    (["auto-teardown", "c"], 2, "--in DURATION or --cancel"),
    (["auto-teardown", "c", "--in", "soon"], 2, "not a duration"),
    (["auto-teardown", "c", "--in", "8d"], 2, "out of range"),
    (["auto-teardown", "nosuch", "--cancel"], 2, "no hosts in cluster 'nosuch'"),
    (["status", "--region", "nowhere"], 2, "--region"),
    # bench: sizes, tools, sweeps, models, hosts, clusters, paths
    (["bench", "--batch-size", "0"], 2, "batch size 0"),
    (["bench", "--batch-size", "100000"], 2, "batch size"),
    (["bench", "--threads", "0"], 2, "threads 0"),
    (["bench", "--limit", "0"], 2, "--limit"),
    (["bench", "--tool", "wrk"], 2, "--tool"),
    (["bench", "--sweep", "batch=x"], 2, "--sweep"),
    (["bench", "--sweep", "colour=1"], 2, "--sweep"),
    (["bench", "--model", "../../etc"], 2, "--model"),
    (["bench", "--host", "i-nosuch"], 2, "i-nosuch"),
    (["bench", "--name", "nosuchcluster"], 2, "nosuchcluster"),
    (["bench", "--out", "{tmp}/a-file"], 2, "--out"),
    # results, play, inventory, logs, ssh, tunnel, sandbox
    (["results", "nosuch-run"], 2, "nosuch-run"),
    (["play", "nosuch"], 2, "no playbook"),
    (["play", "{tmp}/bad.yml"], 2, "nosuchmodule"),
    (["play", "{tmp}/bad.yml", "--engine", "infprov"], 2, "nosuchmodule"),
    (["play", "{tmp}/broken.yml"], 2, "YAML parsing failed"),  # a playbook file: ansible-core's words
    (["play", "{tmp}/broken.yml", "--engine", "infprov"], 2, "not valid YAML"),
    (["play", "server", "-e", "a='b"], 2, "-e"),
    (["play", "server", "-e", "@{tmp}/missing.yml"], 2, "cannot read"),
    (["play", "server", "-e", "1bad=x"], 2, "-e"),
    (["inventory", "--inventory", "{tmp}/bad-inventory.yml"], 2, "bad-inventory.yml:"),
    (["inventory", "--inventory", "{tmp}/latin1.yml"], 2, "not UTF-8"),
    (["logs", "--host", "i-nosuch"], 2, "i-nosuch"),
    (["stop", "bad/name"], 2, "bad/name"),
    (["up", "--type", "inf1.xlarge", "--idle-stop", "0m"], 2, "--idle-stop 0m is out of range"),
    (["up", "--type", "inf1.xlarge", "--idle-stop", "30s"], 2, "--idle-stop '30s' is not a duration"),
    (["up", "--type", "inf1.xlarge", "--down"], 2, "--down goes with --idle-stop"),
    (["up", "--type", "inf1.xlarge", "--idle-stop", "30m", "--auto-teardown", "4h"], 2, "--auto-teardown must"),
    (["start", "bad/name"], 2, "bad/name"),
    (["logs", "--setup", "--host", "i-nosuch"], 2, "i-nosuch"),
    (["logs", "--setup", "--bundle", "{tmp}"], 2, "--setup"),
    (["logs", "--tail", "-3"], 2, "--tail -3"),
    (["ssh", "--host", "i-x", "--name", "c"], 2, "cannot be used together"),
    (["tunnel", "--port", "0"], 2, "--port"),
    (["sandbox", "up", "--hosts", "0"], 2, "--hosts 0"),
    (["sandbox", "up", "--hosts", "9"], 2, "--hosts 9"),
    (["preflight", "--region", "x;y"], 2, "--region 'x;y'"),  # before anything is asked of the network
    (["preflight", "--region", "us-east-1\n", "--no-ami"], 2, "--region"),
    (["nosuchcommand"], 2, "nosuchcommand"),
]


@pytest.mark.parametrize(("env", "said"), [
    ({"INFPROV_SANDBOX_SUBNET": "10.0.0.0/33"}, "INFPROV_SANDBOX_SUBNET='10.0.0.0/33' is not an IPv4 network"),
    ({"INFPROV_SANDBOX_SUBNET": "8.8.8.0/24"}, "must be a private network of /16 to /26"),
    ({"INFPROV_SANDBOX_SUBNET": "10.0.0.0/8"}, "must be a private network of /16 to /26"),
    ({"INFPROV_SANDBOX_EC2_PORT": "99x"}, "INFPROV_SANDBOX_EC2_PORT='99x' is not a port"),
    ({"INFPROV_SANDBOX_ID": "Bad-Id"}, "INFPROV_SANDBOX_ID='Bad-Id' is not usable"),
])
def test_bad_sandbox_settings_are_usage_errors_that_make_nothing(env: dict[str, str], said: str,
                                                                  tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("sandbox up needs root before it reads its settings")
    folder = tmp_path / "sbx"
    result = runner.invoke(app, ["sandbox", "up", "--hosts", "1"],
                           env={"INFPROV_SANDBOX_ID": "infpbd", "INFPROV_SANDBOX_DIR": str(folder), **env})
    assert result.exit_code == 2, result.output
    [line] = [line for line in result.stderr.splitlines() if line.strip()]
    assert line.startswith("error: ") and said in line and "hint:" in line, line
    assert not folder.exists() and "Traceback" not in result.output


@pytest.mark.parametrize(("argv", "code", "said"), CASES, ids=[" ".join(c[0])[:60] for c in CASES])
def test_bad_input_is_one_line_with_a_hint_and_changes_nothing(argv: list[str], code: int, said: str,
                                                               home: Path, tmp_path: Path) -> None:
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    before = _state(home)
    result = runner.invoke(app, argv, env={"AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing",
                                           "AWS_SECRET_ACCESS_KEY": "testing",
                                           "AWS_ENDPOINT_URL": "http://127.0.0.1:9"})
    assert "Traceback" not in result.output, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines, result.output
    last = lines[-1]
    assert result.exit_code == code, result.output
    assert last.startswith("error: ") and said in last, last
    assert "hint:" in last or "expected" in last, last
    assert _state(home) == before, "a refused command changed the state"


def test_a_home_that_is_a_file_is_a_failure_not_a_crash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "home").write_text("")
    monkeypatch.setenv("INFPROV_HOME", str(tmp_path / "home"))
    for argv in (["results"], ["bench"], ["status"], ["inventory"]):
        result = runner.invoke(app, argv)
        assert result.exit_code == 1, (argv, result.output)
        assert result.stderr.strip().splitlines()[-1].startswith("error: ") and "Traceback" not in result.output


def test_the_table_covers_every_command() -> None:
    commands = {argv[0] for argv, _, _ in CASES}
    assert {"up", "teardown", "status", "bench", "results", "play", "inventory", "logs", "ssh", "tunnel",
            "sandbox"} <= commands
    assert len(CASES) >= 40
    assert os.environ.get("INFPROV_NO_PREFLIGHT") == "1"  # `up` cases never reach the internet
