"""Hostile option values, inventory fields and state folders: refused in one line, never parsed or trusted."""

from __future__ import annotations

import io
import os
import stat
import time
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

from infprov.floor import paths
from infprov.floor.errors import InfprovError
from infprov.inventory import ssh_config, store
from infprov.inventory.errors import InventoryError
from infprov.inventory.model import Host
from infprov.playbooks.errors import PlaybookError
from infprov.playbooks.parsing import parse_extra_vars, parse_playbook
from infprov.provision import ui
from infprov.provision.cli import app
from infprov.provision.server import ssh_argv
from tests.local_engine import run_local

runner = CliRunner()



def _one_error_line(result: Any) -> str:
    assert "Traceback" not in result.output and "MarkupError" not in result.output, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


# ---------------------------------------------------------------- Rich markup in user data
@pytest.mark.parametrize(
    ("argv", "shown"),
    [
        (["up", "--type", "inf1.xlarge", "--name", "[/]"], "'[/]'"),
        (["up", "--type", "inf1.xlarge", "--tag", "infprov:[/x]=1"], "infprov:[/x]"),
        (["up", "--type", "inf1.xlarge", "--tag", "aws:x=1"], "aws:x"),
        (["up", "--type", "[bold]inf9[/]"], "[bold]inf9[/]"),
    ],
)
def test_markup_in_option_values_is_shown_literally(argv: list[str], shown: str, infprov_home: Path) -> None:
    result = runner.invoke(app, argv)
    assert result.exit_code == 2, result.output
    assert shown in _one_error_line(result)


def test_markup_in_bench_model_and_host_data(tmp_path: Path, infprov_home: Path) -> None:
    inv = tmp_path / "inventory.yml"
    host = "i-1: {ansible_host: 127.0.0.1, ansible_port: 1, instance_type: inf1.xlarge}"
    store.write(inv, store.parse(f"all:\n  children:\n    c:\n      hosts:\n        {host}\n"))
    result = runner.invoke(app, ["bench", "--inventory", str(inv), "--model", "[/m]"])
    assert result.exit_code == 2
    assert "Traceback" not in result.output and "MarkupError" not in result.output
    assert any(line.startswith("error: --model") for line in result.stderr.splitlines()), result.stderr


def test_consoles_never_parse_markup_or_emoji() -> None:
    for console in (ui.err, ui.out):
        buf = io.StringIO()
        probe = Console(file=buf, markup=console._markup, emoji=console._emoji, width=200)
        probe.print("Triton: [/opt/tritonserver/backends/python] team[/x] :x: [red]no[/]")
        assert buf.getvalue().strip() == "Triton: [/opt/tritonserver/backends/python] team[/x] :x: [red]no[/]"
    buf = io.StringIO()
    Console(file=buf, width=200).print(ui.styled("error:", "red", "log [/opt/x] line"))
    assert buf.getvalue().strip() == "error: log [/opt/x] line"


# ---------------------------------------------------------------- the state folder
def test_home_and_runs_are_private_whatever_the_umask(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      umask0: None) -> None:
    monkeypatch.setenv("INFPROV_HOME", str(tmp_path / "h" / "state"))
    for folder in (paths.home(), paths.keys_dir(), paths.runs_dir()):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    target = paths.home() / "f"
    paths.write_private(target, "x")
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_an_inventory_in_new_folders_makes_them_private_whatever_the_umask(tmp_path: Path, umask0: None) -> None:
    """Issue 23, item 9: --inventory a/b/c/inventory.yml made a/ and b/ 0777 under umask 000."""
    from infprov.inventory import store

    path = tmp_path / "a" / "b" / "c" / "inventory.yml"
    with store.locked(path):
        pass
    for folder in (tmp_path / "a", tmp_path / "a" / "b", tmp_path / "a" / "b" / "c"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    deep = tmp_path / "x" / "y" / "home"
    paths.private_dir(deep, role="test")
    for folder in (tmp_path / "x", tmp_path / "x" / "y", deep):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder


def test_home_that_is_a_file_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "file"
    home.write_text("")
    monkeypatch.setenv("INFPROV_HOME", str(home))
    result = runner.invoke(app, ["results"])
    assert result.exit_code == 1
    assert "not a folder" in _one_error_line(result)


def test_world_writable_keys_folder_with_a_planted_key_is_refused(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("INFPROV_HOME", str(home))
    keys = paths.keys_dir()
    os.chmod(keys, 0o777)
    (keys / "infprov-us-east-1.pem").write_text("planted")
    with pytest.raises(InfprovError, match="writable by other users") as info:
        paths.keys_dir()
    assert "chmod 700" in info.value.hint


@pytest.mark.skipif(os.geteuid() != 0, reason="handing a file to another user needs root")
def test_key_or_home_owned_by_another_user_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("INFPROV_HOME", str(home))
    key = paths.keys_dir() / "mine.pem"
    paths.write_private(key, "k")
    os.chown(key, 65534, 65534)
    with pytest.raises(InfprovError, match="belongs to another user"):
        paths.check_private_file(key, role="key")
    os.chown(key, 0, 0)
    os.chmod(key, 0o644)
    with pytest.raises(InfprovError, match="readable or writable by other users"):
        paths.check_private_file(key, role="key")
    os.chown(home, 65534, 65534)
    with pytest.raises(InfprovError, match="belongs to another user"):
        paths.home()


# ---------------------------------------------------------------- inventory fields that reach ssh and paths
def _inventory(host: str, hvars: str) -> str:
    return f"all:\n  children:\n    c:\n      hosts:\n        {host}: {hvars}\n"


@pytest.mark.parametrize(
    ("host", "hvars", "said"),
    [
        ("i-1", '{ansible_host: 10.0.0.1, ansible_user: "-oProxyCommand=touch /tmp/x;false"}', "ansible_user"),
        ('"i-1\\n  ProxyCommand touch /tmp/x"', "{ansible_host: 10.0.0.1}", "host name"),
        ('"../../../../tmp/x"', "{ansible_host: 10.0.0.1}", "host name"),
        ("i-1", '{ansible_host: "-oProxyCommand=x"}', "ansible_host"),
        ("i-1", '{ansible_host: "10.0.0.1 -p 1"}', "ansible_host"),
        ("i-1", "{ansible_host: 10.0.0.1, ansible_port: 70000}", "ansible_port"),
        ("i-1", '{ansible_host: 10.0.0.1, ansible_ssh_private_key_file: "-oProxyCommand=x"}', "key_file"),
        ("i-1", '{ansible_host: 10.0.0.1, region: "us-east-1; rm -rf /"}', "region"),
    ],
)
def test_hostile_inventory_fields_are_refused_on_load(host: str, hvars: str, said: str, tmp_path: Path) -> None:
    path = tmp_path / "inventory.yml"
    path.write_text(_inventory(host, hvars))
    with pytest.raises(InventoryError, match=said) as info:
        store.load(path)
    assert info.value.message.startswith(f"{path}:5:")
    result = runner.invoke(app, ["ssh", "--inventory", str(path)])
    assert result.exit_code == 2
    assert str(path) in _one_error_line(result)
    assert not Path("/tmp/x").exists()


def test_ssh_argv_ends_options_before_the_destination(tmp_path: Path) -> None:
    argv = ssh_argv(Host("i-1", "10.0.0.1", user="ubuntu", key_file="/k"), tmp_path / "kh")
    assert argv[-4:] == ["-l", "ubuntu", "--", "10.0.0.1"]
    assert "StrictHostKeyChecking=yes" in argv


def test_ssh_config_pins_and_refuses_a_value_that_would_add_a_line(tmp_path: Path) -> None:
    text = ssh_config([Host("i-1", "10.0.0.1", key_file="/k")], tmp_path / "kh")
    assert "StrictHostKeyChecking yes" in text and "accept-new" not in text
    with pytest.raises(InventoryError):
        ssh_config([Host("i-1\n    ProxyCommand touch /tmp/x", "10.0.0.1")], tmp_path / "kh")


def test_non_utf8_inventory_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yml"
    path.write_bytes(b"all:\n  hosts: {\xff\xfe: {}}\n")
    result = runner.invoke(app, ["inventory", "--inventory", str(path)])
    assert result.exit_code == 2
    assert "not UTF-8" in _one_error_line(result)


# ---------------------------------------------------------------- YAML alias bombs and -e
_BOMB = "\n".join(
    [
        'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
        *(f"{n}: &{n} [{','.join(['*' + p] * 9)}]" for p, n in zip("abcdefgh", "bcdefghi", strict=True)),
    ]
) + "\n"


def test_alias_bombs_are_refused_at_once(tmp_path: Path) -> None:
    assert len(_BOMB) < 600
    bomb_file = tmp_path / "bomb.yml"
    bomb_file.write_text(_BOMB)
    start = time.monotonic()
    with pytest.raises(InventoryError, match="aliases"):
        store.parse(_BOMB, bomb_file)
    with pytest.raises(PlaybookError, match="aliases"):
        parse_playbook("- hosts: all\n  gather_facts: false\n  vars:\n" + "".join("    " + line + "\n" for line in _BOMB.splitlines())  # noqa: E501
                       + "  tasks: []\n", bomb_file)
    with pytest.raises(PlaybookError, match="aliases"):
        parse_extra_vars([f"@{bomb_file}"])
    assert time.monotonic() - start < 5  # the unbounded loader took 52 s and 2.8 GB here


def test_recursive_alias_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match="alias"):
        store.parse("all: &x {vars: {me: *x}}\n", tmp_path / "i.yml")


@pytest.mark.parametrize("bad", ["a='b", 'a="b'])
def test_unbalanced_quote_in_extra_vars_is_a_usage_error(bad: str) -> None:
    with pytest.raises(PlaybookError, match="-e") as info:
        parse_extra_vars([bad])
    assert info.value.exit_code == 2


# ---------------------------------------------------------------- secrets in run logs and output
def test_secret_values_are_masked_and_logs_private(tmp_path: Path, umask0: None) -> None:
    token = "tok-4f9a8b7c"
    book = """
- hosts: all
  gather_facts: false
  tasks:
    - name: "call with {{ api_token }}"
      shell: "echo using {{ api_token }}"
      register: used
    - shell: "echo the password is {{ db_password }}"
    - shell: "echo {{ api_token }} >&2; exit 3"
      failed_when: false
    - shell: "echo hidden-{{ plain }}; exit 4"
      no_log: true
      failed_when: false
"""
    result = run_local(tmp_path, book, extra={"api_token": token, "db_password": "hunter22", "plain": "word"})
    log = Path(str(result.log_path))
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert stat.S_IMODE(log.parent.stat().st_mode) == 0o700
    text = log.read_text()
    everything = text + repr(result.to_dict())
    assert token not in everything and "hunter22" not in everything
    assert "********" in text
    assert "hidden-word" not in everything, "no_log hides a task's output"
    assert result.registered["h1"]["used"]["stdout"] == f"using {token}", "masking is for display only"


def test_the_names_the_readme_promises_and_nested_secrets_are_masked(tmp_path: Path) -> None:
    """Issue 23, item 6: `ngcapikey`, `db_passphrase`, `registry.password` and `tokens[0]` were shown."""
    book = """
- hosts: all
  gather_facts: false
  tasks:
    - name: "ngc {{ ngcapikey }} db {{ db_passphrase }}"
      shell: "echo ngc {{ ngcapikey }} db {{ db_passphrase }}"
    - shell: "echo registry {{ registry.password }} at {{ registry.url }}"
    - shell: "echo first {{ tokens[0] }} of {{ tokens | length }}"
    - shell: "echo {{ registry.password }} >&2; exit 3"
"""
    secrets = {"ngcapikey": "nvapi-planted-0001", "db_passphrase": "planted-phrase-0002",
               "registry": {"url": "https://registry.example", "password": "planted-registry-0003"},
               "tokens": ["planted-token-0004", "planted-token-0005"]}
    result = run_local(tmp_path, book, extra=secrets)
    everything = Path(str(result.log_path)).read_text() + repr(result.to_dict())
    for value in ("nvapi-planted-0001", "planted-phrase-0002", "planted-registry-0003", "planted-token-0004"):
        assert value not in everything, value
    assert "https://registry.example" in everything, "only the secrets are masked"
    assert not result.ok and "********" in everything
    from infprov.playbooks.results import secret_name

    assert [n for n in ("PWD", "OLDPWD", "db_pwd", "ssh_key_file", "registry_id") if secret_name(n)] == ["db_pwd"]
