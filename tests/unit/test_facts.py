"""Facts as tables: command output in, facts out; facts in, decision and commands out."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from infprov.playbooks.modules.base import ModuleResult, attr_commands
from infprov.playbooks.modules.facts import (
    FactError,
    FileStat,
    GitLook,
    RemoteFile,
    file_stats,
    file_text,
    parse_git_look,
    remote_file,
    tree_differs,
)
from infprov.playbooks.modules.git import plan_git

SHA = "a" * 64
HEAD = "1" * 40
OTHER = "2" * 40

# ---------------------------------------------------------------- parsers: output in, facts out

STAT_CASES: list[tuple[str, list[str], bytes, dict[str, FileStat]]] = [
    ("absent", ["/x"], b"A\n", {"/x": FileStat("/x", False)}),
    ("regular file with checksum", ["/x"], f"E|regular file|644|root|root|0|0|12\n{SHA}  /x\n".encode(),
     {"/x": FileStat("/x", True, "file", 0o644, "root", "root", 0, 0, 12, SHA)}),
    ("empty file", ["/e"], b"E|regular empty file|600|u|g|1000|1000|0\n",
     {"/e": FileStat("/e", True, "file", 0o600, "u", "g", 1000, 1000, 0)}),
    ("directory", ["/d"], b"E|directory|755|root|root|0|0|4096\n",
     {"/d": FileStat("/d", True, "directory", 0o755, "root", "root", 0, 0, 4096)}),
    ("link, not followed", ["/l"], b"E|symbolic link|777|root|root|0|0|2\nL|/t\n",
     {"/l": FileStat("/l", True, "link", 0o777, "root", "root", 0, 0, 2, None, "/t")}),
    ("two paths, one absent", ["/a", "/b"], b"A\nE|fifo|644|root|root|0|0|0\n",
     {"/a": FileStat("/a", False), "/b": FileStat("/b", True, "other", 0o644, "root", "root", 0, 0, 0)}),
    ("a name with a bar", ["/w|x"], b"E|regular file|640|a|b|5|6|1\n",
     {"/w|x": FileStat("/w|x", True, "file", 0o640, "a", "b", 5, 6, 1)}),
]


@pytest.mark.parametrize(("case", "paths", "output", "expected"), STAT_CASES, ids=[c[0] for c in STAT_CASES])
def test_file_stats_parse(case: str, paths: list[str], output: bytes, expected: dict[str, FileStat]) -> None:
    assert file_stats(paths).parse(output) == expected


@pytest.mark.parametrize("output", [b"", b"E|regular file|644\n", b"what\n", b"E|regular file|6x4|a|b|1|2|3\n"])
def test_file_stats_refuses_output_it_does_not_know(output: bytes) -> None:
    with pytest.raises(FactError):
        file_stats(["/x"]).parse(output)


REMOTE_CASES = [
    (b"absent\n", RemoteFile("absent")),
    (b"notfile\n", RemoteFile("notfile")),
    (f"{SHA}\n".encode(), RemoteFile("file", SHA)),
]


@pytest.mark.parametrize(("output", "expected"), REMOTE_CASES)
def test_remote_file_parse(output: bytes, expected: RemoteFile) -> None:
    assert remote_file("/x").parse(output) == expected


def test_remote_file_refuses_a_stray_line() -> None:
    with pytest.raises(FactError):
        remote_file("/x").parse(b"sha256sum: /x: Permission denied\n")


def test_file_text_keeps_bytes_it_cannot_decode() -> None:
    fact = file_text("/x")
    seen = fact.parse(b"E|regular file|644|r|r|0|0|3\n__infprov_content__\na\xffb")
    assert seen.stat.kind == "file" and seen.text == "a\udcffb"
    absent = fact.parse(b"A\n__infprov_content__\n")
    assert not absent.stat.exists and absent.text is None
    with pytest.raises(FactError):
        fact.parse(b"A\n")  # the content mark never came: the script did not run to its end


GIT_CASES = [
    ("fresh", "", GitLook()),
    ("checkout", f"head {HEAD}\nurl file:///r\n", GitLook(HEAD, "file:///r")),
    ("dirty", f"head {HEAD}\nurl u\ndirty  M x\n", GitLook(HEAD, "u", dirty=True)),
    ("not empty", "notempty\n", GitLook(notempty=True)),
    ("remote refs", f"remote {OTHER}\trefs/heads/main\nremote {HEAD}\trefs/tags/v1^{{}}\n",
     GitLook(remote={"refs/heads/main": OTHER, "refs/tags/v1^{}": HEAD})),
]


@pytest.mark.parametrize(("case", "output", "expected"), GIT_CASES, ids=[c[0] for c in GIT_CASES])
def test_git_look_parse(case: str, output: str, expected: GitLook) -> None:
    assert parse_git_look(output) == expected


# ---------------------------------------------------------------- decisions: facts in, plan out


def _plan(look: GitLook, version: str = "main", **kw: Any) -> Any:
    opts = {"force": False, "update": True, "depth": None, "check": False, **kw}
    return plan_git(look, "file:///r", "/srv/r", version, **opts)


def _result(plan: Any) -> ModuleResult:
    assert plan.result is not None and plan.script is None
    return plan.result


BRANCH = {"refs/heads/main": OTHER}
GIT_PLANS: list[tuple[str, GitLook, dict[str, Any], str, list[str]]] = [
    # (case, facts, options, expected status or "script", lines the script must hold)
    ("unknown version fails", GitLook(remote={}), {}, "failed", []),
    ("fresh clone of a branch", GitLook(remote=BRANCH), {}, "script",
     ["clone --quiet --branch main file:///r /srv/r", "rev-parse HEAD"]),
    ("fresh clone, shallow", GitLook(remote=BRANCH), {"depth": 1}, "script", ["clone --quiet --depth 1 --branch main"]),
    ("fresh clone in check mode", GitLook(remote=BRANCH), {"check": True}, "changed", []),
    ("not empty, not a checkout", GitLook(notempty=True, remote=BRANCH), {}, "failed", []),
    ("at the version: nothing", GitLook(OTHER, "file:///r", remote=BRANCH), {}, "ok", []),
    ("behind: fetch and check out", GitLook(HEAD, "file:///r", remote=BRANCH), {}, "script",
     ["fetch --quiet --tags --force origin", "checkout --quiet --force -B main origin/main"]),
    ("behind, update false: nothing", GitLook(HEAD, "file:///r", remote=BRANCH), {"update": False}, "ok", []),
    ("dirty stops even at the version", GitLook(OTHER, "file:///r", dirty=True, remote=BRANCH), {}, "failed", []),
    ("dirty with force moves", GitLook(HEAD, "file:///r", dirty=True, remote=BRANCH), {"force": True}, "script",
     ["checkout --quiet --force -B main"]),
    ("another origin: set-url only", GitLook(OTHER, "file:///old", remote=BRANCH), {}, "script",
     ["remote set-url origin file:///r"]),
    ("behind in check mode", GitLook(HEAD, "file:///r", remote=BRANCH), {"check": True}, "changed", []),
]


@pytest.mark.parametrize(("case", "look", "opts", "status", "lines"), GIT_PLANS, ids=[c[0] for c in GIT_PLANS])
def test_git_decisions(case: str, look: GitLook, opts: dict[str, Any], status: str, lines: list[str]) -> None:
    plan = _plan(look, **opts)
    if status == "script":
        assert plan.result is None and plan.script is not None
        for line in lines:
            assert line in plan.script, (line, plan.script)
        assert plan.script.splitlines()[-1].endswith("rev-parse HEAD")
        if case == "another origin: set-url only":
            assert "fetch" not in plan.script and "checkout" not in plan.script
    else:
        assert _result(plan).status == status


def test_git_decision_for_a_tag_and_a_sha() -> None:
    tag = _plan(GitLook(HEAD, "file:///r", remote={"refs/tags/v1^{}": OTHER, "refs/tags/v1": "3" * 40}), "v1")
    assert f"checkout --quiet --force --detach {OTHER}" in (tag.script or "")  # the commit the tag points at
    short = _plan(GitLook(HEAD, "file:///r"), HEAD[:8])
    assert _result(short).status == "ok"  # HEAD starts with the short sha: already there


ATTR_CASES = [
    ("nothing to change", FileStat("/f", True, "file", 0o644, "u", "g", 1, 1), (0o644, "u", "g"), []),
    ("mode", FileStat("/f", True, "file", 0o600, "u", "g", 1, 1), (0o644, None, None), ["chmod 644 /f"]),
    ("owner by uid matches", FileStat("/f", True, "file", 0o644, "u", "g", 1, 1), (None, "1", None), []),
    ("owner and group", FileStat("/f", True, "file", 0o644, "u", "g", 1, 1), (None, "root", "adm"),
     ["chown root /f", "chgrp adm /f"]),
    ("a name that needs quoting", FileStat("/a b", True, "file", 0o600, "u", "g", 1, 1), (0o640, None, None),
     ["chmod 640 '/a b'"]),
]


@pytest.mark.parametrize(("case", "cur", "want", "commands"), ATTR_CASES, ids=[c[0] for c in ATTR_CASES])
def test_attribute_commands(case: str, cur: FileStat, want: tuple[Any, Any, Any], commands: list[str]) -> None:
    assert attr_commands(cur.path, cur, *want) == commands


# ---------------------------------------------------------------- the commands, run here for real


def _sh(command: str) -> bytes:
    return subprocess.run(["/bin/sh", "-c", command], capture_output=True, check=True).stdout


def test_the_fact_commands_print_what_their_parsers_read(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_text("hello\n")
    f.chmod(0o640)
    (tmp_path / "l").symlink_to(f)
    (tmp_path / "d").mkdir()
    paths = [str(f), str(tmp_path / "l"), str(tmp_path / "d"), str(tmp_path / "missing")]
    stats = file_stats(paths).parse(_sh(file_stats(paths).command))
    assert stats[str(f)].kind == "file" and stats[str(f)].mode == 0o640 and stats[str(f)].size == 6
    import hashlib

    assert stats[str(f)].sha256 == hashlib.sha256(b"hello\n").hexdigest()
    assert stats[str(tmp_path / "l")].kind == "file"  # followed
    assert stats[str(tmp_path / "d")].kind == "directory" and not stats[str(tmp_path / "missing")].exists
    unfollowed = file_stats([str(tmp_path / "l")], follow=False, checksum=False)
    assert unfollowed.parse(_sh(unfollowed.command))[str(tmp_path / "l")].link_target == str(f)
    assert remote_file(str(f)).parse(_sh(remote_file(str(f)).command)).sha256 == stats[str(f)].sha256
    assert remote_file(str(tmp_path / "d")).parse(_sh(remote_file(str(tmp_path / "d")).command)).state == "notfile"
    text = file_text(str(f))
    assert text.parse(_sh(text.command)).text == "hello\n"
    differs = tree_differs(str(tmp_path), 0o640, None, None)
    assert differs.parse(_sh(differs.command)) is True  # the folder itself is not 640
    assert tree_differs(str(tmp_path), None, None, None).parse(b"") is False
