"""The inventory store: Ansible's YAML format, atomic locked writes, clear errors, host patterns, the CLI."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from infprov.inventory import store
from infprov.inventory.errors import InventoryError
from infprov.inventory.model import Host, Inventory, ssh_config


def host(name: str, cluster: str = "demo", **kw: Any) -> Host:
    defaults: dict[str, Any] = dict(
        address="10.0.0.1", key_file="/keys/k", instance_type="inf1.6xlarge", neuron_devices=4, neuron_cores=16,
        region="us-east-1",
    )  # fmt: skip
    defaults.update(kw)
    return Host(name=name, cluster=cluster, **defaults)


def test_round_trip_keeps_fields_and_extra_vars(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yml"
    h = host("i-0abc", extra={"ansible_ssh_common_args": "-o UserKnownHostsFile=/dev/null"})
    store.upsert_hosts(path, "demo", [h])
    loaded = store.load(path)
    assert loaded.hosts == (h,)
    assert loaded.hosts[0].extra == {"ansible_ssh_common_args": "-o UserKnownHostsFile=/dev/null"}
    text = path.read_text()
    assert "all:\n  children:\n    demo:\n      hosts:\n        i-0abc:\n" in text
    assert "ansible_python_interpreter: /usr/bin/python3" in text
    assert os.stat(path).st_mode & 0o777 == 0o600


def test_upsert_replaces_by_instance_id_and_removals(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yml"
    store.upsert_hosts(path, "a", [host("i-1"), host("i-2")])
    store.upsert_hosts(path, "b", [host("i-3"), host("i-1", address="10.9.9.9")])
    inv = store.load(path)
    assert sorted((h.name, h.cluster) for h in inv.hosts) == [("i-1", "b"), ("i-2", "a"), ("i-3", "b")]
    assert inv.get("i-1") is not None and inv.get("i-1").address == "10.9.9.9"  # type: ignore[union-attr]
    store.remove_hosts(path, ["i-2", "i-404"])
    assert [h.name for h in store.load(path).hosts] == ["i-1", "i-3"]
    store.set_group_vars(path, "b", {"triton_port": 8000})
    assert store.load(path).host_vars(store.load(path).hosts[0])["triton_port"] == 8000
    store.remove_cluster(path, "b")
    assert store.load(path).hosts == ()
    assert store.load(tmp_path / "missing.yml").hosts == ()


def _writer(path: str, worker: int, count: int) -> None:
    for i in range(count):
        store.upsert_hosts(Path(path), f"c{worker}", [host(f"i-{worker}-{i}")])


def _reader(path: str, rounds: int, errors: Any) -> None:
    for _ in range(rounds):
        try:
            store.load(Path(path))
        except InventoryError as exc:  # a half-written file would land here
            errors.put(exc.message)


def test_concurrent_writers_never_lose_hosts_and_readers_never_see_half_a_file(tmp_path: Path) -> None:
    path = str(tmp_path / "inventory.yml")
    ctx = multiprocessing.get_context("fork")
    errors = ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(path, w, 15)) for w in range(4)]
    procs.append(ctx.Process(target=_reader, args=(path, 200, errors)))
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert errors.empty()
    names = {h.name for h in store.load(Path(path)).hosts}
    assert names == {f"i-{w}-{i}" for w in range(4) for i in range(15)}


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("all:\n  children:\n    demo:\n      hosts: [i-1, i-2\n", 5, "not valid YAML"),
        ("all:\n  children:\n    demo:\n      hosts:\n        - i-1\n", 4, "`hosts` of group `demo` must be a mapping"),
        ("all:\n  children:\n    demo:\n      hostz: {}\n", 4, "unknown key `hostz`"),
        ("all:\n  children:\n    demo:\n      hosts:\n        i-1:\n          ansible_port: ssh\n", 5,
         "ansible_port must be a whole number"),
        ("hosts: {}\n", 1, "single `all:` group"),
        ("all:\n  children:\n    a:\n      hosts: {i-1: {}}\n    b:\n      hosts: {i-1: {}}\n", 6, "in both"),
    ],
)  # fmt: skip
def test_malformed_file_names_file_and_line(tmp_path: Path, text: str, line: int, words: str) -> None:
    path = tmp_path / "inventory.yml"
    path.write_text(text)
    with pytest.raises(InventoryError) as err:
        store.load(path)
    assert err.value.message.startswith(f"{path}:{line}: ")
    assert words in err.value.message
    assert err.value.hint


def test_writing_refuses_names_that_break_patterns(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match="cannot be used"):
        store.upsert_hosts(tmp_path / "inv.yml", "bad name", [host("i-1")])


def test_host_patterns() -> None:
    inv = Inventory(
        (host("i-a1", "alpha"), host("i-a2", "alpha", address="10.0.0.7"), host("i-b1", "beta"), host("x-1", "beta"))
    )
    names = lambda pattern: [h.name for h in inv.select(pattern)]  # noqa: E731
    assert names("all") == names("*") == ["i-a1", "i-a2", "i-b1", "x-1"]
    assert names("beta") == ["i-b1", "x-1"]
    assert names("i-a2") == names("10.0.0.7") == ["i-a2"]
    assert names("i-*") == ["i-a1", "i-a2", "i-b1"]
    assert names("alpha:beta:!x-1") == ["i-a1", "i-a2", "i-b1"]
    assert names("all:&beta") == ["i-b1", "x-1"]
    assert names("alpha,x-1") == ["i-a1", "i-a2", "x-1"]
    assert names("nothing") == []
    assert inv.find("10.0.0.7") is inv.hosts[1]


def test_ssh_config_block(tmp_path: Path) -> None:
    text = ssh_config([host("i-0abc", port=2222)], tmp_path / "known_hosts")
    assert text.startswith("Host i-0abc demo-1\n    HostName 10.0.0.1\n    User ubuntu\n    Port 2222\n")
    assert "IdentityFile /keys/k" in text and f"UserKnownHostsFile {tmp_path / 'known_hosts'}" in text
    parsed = subprocess.run(
        ["ssh", "-G", "-F", "/dev/stdin", "i-0abc"], input=text, capture_output=True, text=True, check=False
    )
    if parsed.returncode == 0:  # OpenSSH reads it as we meant it
        assert "hostname 10.0.0.1" in parsed.stdout and "port 2222" in parsed.stdout


def test_ssh_config_aliases_each_clusters_hosts_by_number(tmp_path: Path) -> None:
    """`ssh demo-2` as well as `ssh <instance-id>` (issue 25, item 10)."""
    hosts = [host("i-a1"), host("i-a2", address="10.0.0.2"), host("i-b1", cluster="bench", address="10.0.0.3")]
    text = ssh_config(hosts, tmp_path / "known_hosts")
    assert [line for line in text.splitlines() if line.startswith("Host ")] == [
        "Host i-a1 demo-1", "Host i-a2 demo-2", "Host i-b1 bench-1"]
    parsed = subprocess.run(
        ["ssh", "-G", "-F", "/dev/stdin", "demo-2"], input=text, capture_output=True, text=True, check=False
    )
    if parsed.returncode == 0:
        assert "hostname 10.0.0.2" in parsed.stdout


@pytest.mark.skipif(shutil.which("ansible-inventory") is None, reason="ansible-core is not installed")
def test_ansible_inventory_lists_our_hosts_and_vars(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yml"
    store.upsert_hosts(path, "demo", [host("i-1"), host("i-2", address="10.0.0.2")])
    store.upsert_hosts(path, "other", [host("i-3", region="eu-west-1")])
    proc = subprocess.run(
        ["ansible-inventory", "-i", str(path), "--list"], capture_output=True, text=True, check=True,
        env={**os.environ, "ANSIBLE_HOST_KEY_CHECKING": "False"},
    )  # fmt: skip
    doc = json.loads(proc.stdout)
    assert doc["demo"]["hosts"] == ["i-1", "i-2"] and doc["other"]["hosts"] == ["i-3"]
    hv = doc["_meta"]["hostvars"]
    assert hv["i-2"]["ansible_host"] == "10.0.0.2"
    assert hv["i-1"]["neuron_cores"] == 16 and hv["i-3"]["region"] == "eu-west-1"
    assert hv["i-1"]["ansible_python_interpreter"] == "/usr/bin/python3"


def test_cli_inventory_json_table_and_ssh_config(infprov_home: Path) -> None:
    from infprov.provision.cli import app

    store.upsert_hosts(infprov_home / "inventory.yml", "demo", [host("i-1")])
    runner = CliRunner()
    shown = runner.invoke(app, ["inventory", "--json"])
    assert shown.exit_code == 0, shown.output
    doc = json.loads(shown.stdout)
    assert doc["clusters"]["demo"][0]["name"] == "i-1"
    table = runner.invoke(app, ["inventory"])
    assert "i-1" in table.stdout
    cfg = runner.invoke(app, ["inventory", "--ssh-config"])
    assert cfg.stdout.startswith("Host i-1 demo-1\n")
    (infprov_home / "broken.yml").write_text("all: [\n")
    broken = runner.invoke(app, ["inventory", "--inventory", str(infprov_home / "broken.yml")])
    assert broken.exit_code == 2
