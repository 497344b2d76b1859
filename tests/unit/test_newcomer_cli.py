"""What a new user met on the command line (issue 25): items 4 (bench over mixed types), 5 (a failed bench's
error whole), 6 (`ssh -- cmd` keeps its words)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from infprov.inventory import store
from infprov.inventory.model import Host
from infprov.provision import lifecycle, render
from infprov.provision.cli import app


def _host(name: str, cluster: str, itype: str, address: str) -> Host:
    return Host(name=name, address=address, key_file="/keys/k", instance_type=itype, neuron_devices=1,
                neuron_cores=4, region="us-east-1", cluster=cluster)


@pytest.fixture()
def two_types(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("INFPROV_HOME", str(tmp_path / "home"))
    inv = tmp_path / "home" / "inventory.yml"
    store.set_cluster_hosts(inv, "small", [_host("i-1", "small", "inf1.xlarge", "10.0.0.1")])
    store.set_cluster_hosts(inv, "big", [_host("i-2", "big", "inf1.6xlarge", "10.0.0.2")])
    return inv


def test_bench_over_two_types_names_them_and_the_commands(two_types: Path) -> None:
    r = CliRunner().invoke(app, ["bench"])
    assert r.exit_code == 2
    (line,) = [x for x in r.stderr.splitlines() if x.startswith("error:")]
    assert "{" not in line and "'" not in line.split("hint:")[0]
    assert "2 instance types (inf1.6xlarge: big; inf1.xlarge: small)" in line
    assert "`infprov bench --name big`, `infprov bench --name small`" in line


def test_a_failed_hosts_error_is_shown_whole(capsys: pytest.CaptureFixture[str]) -> None:
    error = ("the server did not answer /v2/models/rn50/config within 30 s: connection refused by 127.0.0.1:8000 "
             "[bold]not markup[/bold] and the end of it")
    summary: dict[str, Any] = {"run": "r1", "path": "/tmp/r1", "partial": False, "fleet_images_per_s": None,
                               "hosts": [{"host": "10.0.0.1", "points": [], "error": error}]}
    render.render_run(summary)
    out = capsys.readouterr().out
    assert f"failed: 10.0.0.1: {error}\n" in out  # whole, and markup shown as written


@pytest.mark.parametrize("words, expected", [
    (["printf", "%s\\n", "a b", "$(echo hi)", "it's"], "a b\n$(echo hi)\nit's\n"),
    (["echo one | tr o 0"], "0ne\n"),  # one word: a command line, as ssh takes it
])
def test_ssh_command_words_keep_their_boundaries(words: list[str], expected: str) -> None:
    sent = lifecycle.remote_command(words)
    assert len(sent) <= 1
    # what sshd does with it on the host: the login shell runs the joined words
    done = subprocess.run(["sh", "-c", " ".join(sent)], capture_output=True, text=True, check=True)
    assert done.stdout == expected


def test_ssh_argv_ends_with_one_quoted_command(two_types: Path) -> None:
    argv = lifecycle.ssh_argv(None, "i-1", None, ["ls", "a b"])
    assert argv[-3:] == ["--", "10.0.0.1", "ls 'a b'"]


# ---------------------------------------------------------------- item 16: the cluster as a positional argument
@pytest.fixture()
def exec_seen(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    import os

    seen: list[list[str]] = []

    def fake_exec(prog: str, argv: list[str]) -> None:
        seen.append(list(argv))

    monkeypatch.setattr(os, "execvp", fake_exec)
    return seen


@pytest.mark.parametrize(("args", "address", "remote"), [
    (["ssh", "small"], "10.0.0.1", []),
    (["ssh", "big", "--", "ls", "a b"], "10.0.0.2", ["ls 'a b'"]),
    (["ssh", "--name", "big", "--", "uptime"], "10.0.0.2", ["uptime"]),
    (["ssh", "--host", "i-1", "--", "big", "-l"], "10.0.0.1", ["big -l"]),  # after --: never the cluster
    (["ssh", "small", "big"], "10.0.0.1", ["big"]),
])
def test_ssh_takes_the_cluster_as_its_first_word(two_types: Path, exec_seen: list[list[str]], args: list[str],
                                                  address: str, remote: list[str]) -> None:
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    [argv] = exec_seen
    at = argv.index("--")
    assert argv[at + 1] == address and argv[at + 2:] == remote


@pytest.mark.parametrize(("args", "fragment"), [
    (["ssh", "small", "--name", "big"], "disagree"),
    (["ssh", "nosuch"], "no hosts in cluster 'nosuch'"),
    (["bench", "small", "--name", "big"], "disagree"),
    (["bench", "Bad;Name"], "cluster name"),
    (["teardown", "Bad;Name", "--yes"], "cluster name"),
    (["teardown", "a", "--name", "b", "--yes"], "disagree"),
    (["teardown", "small", "--all", "--yes"], "exclude each other"),
])
def test_a_positional_cluster_and_its_option_are_checked(two_types: Path, exec_seen: list[list[str]],
                                                        args: list[str], fragment: str) -> None:
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 2, r.output
    [line] = r.stderr.strip().splitlines()
    assert line.startswith("error:") and fragment in line
    assert exec_seen == []


def test_bench_and_teardown_take_the_cluster_as_an_argument(two_types: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from infprov.provision import targets

    asked: list[Any] = []
    monkeypatch.setattr(targets, "select_hosts", lambda name, host, inv: asked.append(("bench", name)) or [])
    monkeypatch.setattr(lifecycle, "teardown", lambda name, *a: asked.append(("teardown", name)) or _Stop())
    CliRunner().invoke(app, ["bench", "small"])
    CliRunner().invoke(app, ["teardown", "big", "--dry-run"])
    assert asked == [("bench", "small"), ("teardown", "big")]


class _Stop:
    def __getattr__(self, name: str) -> Any:
        raise RuntimeError("stop here")
