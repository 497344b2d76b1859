"""Facts as tables: command output in, facts out; facts in, decision and commands out."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from infprov.playbooks.modules.base import ModuleResult, mode_commands
from infprov.playbooks.modules.facts import (
    FactError,
    FileStat,
    GitLook,
    RemoteFile,
    file_stats,
    git_look_script,
    parse_git_look,
    remote_file,
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


GIT_CASES = [
    ("fresh", "", GitLook()),
    ("checkout", f"head {HEAD}\n", GitLook(HEAD)),
    ("not empty", "notempty\n", GitLook(notempty=True)),
    ("remote refs", f"remote {OTHER}\trefs/heads/main\nremote {HEAD}\trefs/tags/v1^{{}}\n",
     GitLook(remote={"refs/heads/main": OTHER, "refs/tags/v1^{}": HEAD})),
]


@pytest.mark.parametrize(("case", "output", "expected"), GIT_CASES, ids=[c[0] for c in GIT_CASES])
def test_git_look_parse(case: str, output: str, expected: GitLook) -> None:
    assert parse_git_look(output) == expected


# ---------------------------------------------------------------- decisions: facts in, plan out


def _plan(look: GitLook, version: str = "main", check: bool = False) -> Any:
    return plan_git(look, "file:///r", "/srv/r", version, check=check)


def _result(plan: Any) -> ModuleResult:
    assert plan.result is not None and plan.script is None
    return plan.result


BRANCH = {"refs/heads/main": OTHER}
GIT_PLANS: list[tuple[str, GitLook, bool, str, list[str]]] = [
    # (case, facts, check mode, expected status or "script", lines the script must hold)
    ("unknown version fails", GitLook(remote={}), False, "failed", []),
    ("fresh clone of a branch", GitLook(remote=BRANCH), False, "script",
     ["clone --quiet --branch main file:///r /srv/r", "rev-parse HEAD"]),
    ("fresh clone in check mode", GitLook(remote=BRANCH), True, "changed", []),
    ("not empty, not a checkout", GitLook(notempty=True, remote=BRANCH), False, "failed", []),
    ("a checkout: left as it is (update: false)", GitLook(HEAD), False, "ok", []),
    ("a checkout in check mode: left as it is", GitLook(HEAD), True, "ok", []),
]


@pytest.mark.parametrize(("case", "look", "check", "status", "lines"), GIT_PLANS, ids=[c[0] for c in GIT_PLANS])
def test_git_decisions(case: str, look: GitLook, check: bool, status: str, lines: list[str]) -> None:
    plan = _plan(look, check=check)
    if status == "script":
        assert plan.result is None and plan.script is not None
        for line in lines:
            assert line in plan.script, (line, plan.script)
        assert plan.script.splitlines()[-1].endswith("rev-parse HEAD")
    else:
        assert _result(plan).status == status


def test_git_decision_for_a_tag_and_a_sha() -> None:
    tag = _plan(GitLook(remote={"refs/tags/v1^{}": OTHER, "refs/tags/v1": "3" * 40}), "v1")
    assert "clone --quiet --branch v1 file:///r /srv/r" in (tag.script or "")
    sha = _plan(GitLook(), HEAD[:8])
    assert f"checkout --quiet --detach {HEAD[:8]}" in (sha.script or "")


def test_git_look_asks_the_remote_only_without_a_checkout() -> None:
    script = git_look_script("file:///r", "/srv/r", "r22.04")
    lines = script.splitlines()
    assert lines[0] == "if [ -e /srv/r/.git ]; then" and "ls-remote" in script
    assert lines.index(next(ln for ln in lines if "ls-remote" in ln)) > lines.index("else")


MODE_CASES = [
    ("nothing to change", FileStat("/f", True, "file", 0o644, "u", "g", 1, 1), 0o644, []),
    ("no mode asked", FileStat("/f", True, "file", 0o600, "u", "g", 1, 1), None, []),
    ("mode", FileStat("/f", True, "file", 0o600, "u", "g", 1, 1), 0o644, ["chmod 644 /f"]),
    ("a name that needs quoting", FileStat("/a b", True, "file", 0o600, "u", "g", 1, 1), 0o640,
     ["chmod 640 '/a b'"]),
]


@pytest.mark.parametrize(("case", "cur", "mode", "commands"), MODE_CASES, ids=[c[0] for c in MODE_CASES])
def test_mode_commands(case: str, cur: FileStat, mode: int | None, commands: list[str]) -> None:
    assert mode_commands(cur.path, cur, mode) == commands


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
