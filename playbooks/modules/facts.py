"""What modules look at on a host before they act: facts, each one shell command and a pure parser.

A module gathers the facts it needs (one round trip each), decides from them with pure code what has to
change, and only then runs commands. Facts and decisions are plain data, so their tests are tables:
command output in, facts out; facts in, decision and commands out (tests/unit/test_facts.py).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from infprov.playbooks.connection import CommandResult
    from infprov.playbooks.modules.base import ModuleContext

quote = shlex.quote
T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class FactError(Exception):
    """A fact's command printed something its parser does not know: the host is not what was assumed."""


@dataclass(frozen=True)
class Fact(Generic[T_co]):
    """One thing to know about a host: the command that shows it, and how to read what it printed."""

    what: str  # for messages: "the state of /etc/x"
    command: str
    parse: Callable[[bytes], T_co]


def gather(ctx: ModuleContext, fact: Fact[T]) -> tuple[T | None, CommandResult]:
    """Run the fact's command on the task's host: (parsed fact, or None when the command failed; result)."""
    result = ctx.sh(fact.command)
    if result.exit_code != 0:
        return None, result
    try:
        return fact.parse(result.stdout), result
    except FactError:
        return None, result


# ---------------------------------------------------------------- files
@dataclass(frozen=True)
class FileStat:
    path: str
    exists: bool
    kind: str = ""  # file, directory, link, other
    mode: int = 0
    owner: str = ""
    group: str = ""
    uid: int = -1
    gid: int = -1
    size: int = 0
    sha256: str | None = None
    link_target: str | None = None


_STAT_FMT = "E|%F|%a|%U|%G|%u|%g|%s"


def stat_script(paths: list[str], *, follow: bool = True, checksum: bool = True) -> str:
    """Per path: `A` (absent), or `E|type|mode|owner|group|uid|gid|size`, then `sha256  path` for a readable
    regular file and `L|target` for a link. Few processes per path: the hosts' CPU is the bench's bottleneck."""
    parts = []
    for p in paths:
        q = quote(p)
        stat = f'stat -L -c "{_STAT_FMT}" -- {q} 2>/dev/null || ' if follow else ""
        stat += f'stat -c "{_STAT_FMT}" -- {q} 2>/dev/null || echo A'  # gone between the test and the stat
        digest = f"[ -f {q} ] && [ -r {q} ] && sha256sum -- {q}; " if checksum else ""
        parts.append(
            f"if [ -e {q} ] || [ -L {q} ]; then {stat}; {digest}"
            f"if [ -L {q} ]; then printf 'L|'; readlink -- {q}; fi; else echo A; fi"
        )
    return "\n".join(parts)


def parse_stat(paths: list[str], output: str) -> dict[str, FileStat]:
    """stat_script's output, path by path."""
    lines = output.splitlines()
    out: dict[str, FileStat] = {}
    i = 0
    for path in paths:
        if i >= len(lines):
            raise FactError(f"unexpected stat output for {paths}: {output!r}")
        line = lines[i]
        i += 1
        if line == "A":
            out[path] = FileStat(path, False)
            continue
        if not line.startswith("E|") or line.count("|") < 7:
            raise FactError(f"unexpected stat output for {path}: {line!r}")
        _, ftype, mode, owner, group, uid, gid, size = line.split("|", 7)
        sha = link = None
        if i < len(lines) and len(lines[i]) > 66 and lines[i][64:66] == "  ":
            sha = lines[i][:64]
            i += 1
        if i < len(lines) and lines[i].startswith("L|"):
            link = lines[i][2:]
            i += 1
        kind = {"directory": "directory", "symbolic link": "link"}.get(ftype, "")
        if not kind:
            kind = "file" if "regular" in ftype else "other"
        try:
            out[path] = FileStat(path, True, kind, int(mode, 8), owner, group, int(uid), int(gid), int(size), sha,
                                 link)
        except ValueError:
            raise FactError(f"unexpected stat output for {path}: {line!r}") from None
    return out


def file_stats(paths: list[str], *, follow: bool = True, checksum: bool = True) -> Fact[dict[str, FileStat]]:
    """Type, mode, owner, size, SHA-256 and link target of each path (absent ones say so)."""
    return Fact(f"the state of {', '.join(paths)}", stat_script(paths, follow=follow, checksum=checksum),
                lambda out: parse_stat(paths, out.decode("utf-8", "replace")))


@dataclass(frozen=True)
class RemoteFile:
    state: str  # file, absent, notfile
    sha256: str | None = None


_SHA256 = re.compile(r"[0-9a-f]{64}")


def remote_file(path: str) -> Fact[RemoteFile]:
    """Whether path is a regular file, and its SHA-256."""
    q = quote(path)

    def parse(out: bytes) -> RemoteFile:
        word = out.decode("utf-8", "replace").strip()
        if word in ("absent", "notfile"):
            return RemoteFile(word)
        if _SHA256.fullmatch(word):
            return RemoteFile("file", word)
        raise FactError(f"unexpected answer about {path}: {word!r}")

    return Fact(f"the checksum of {path}",
                f"if [ -f {q} ]; then sha256sum -- {q} | cut -d' ' -f1; elif [ -e {q} ]; then echo notfile; "
                "else echo absent; fi", parse)


# ---------------------------------------------------------------- git
SHA_RE = re.compile(r"[0-9a-f]{7,40}")
GIT = "git -c safe.directory='*'"


@dataclass(frozen=True)
class GitLook:
    head: str | None = None
    notempty: bool = False
    remote: dict[str, str] = field(default_factory=dict)


def git_look_script(repo: str, dest: str, version: str) -> str:
    """A checkout's HEAD; with none, whether dest is a non-empty folder and what the remote says version is
    (`update: false`: an existing checkout is left as it is, the remote not asked, as Ansible does)."""
    d = quote(dest)
    lines = [
        f"if [ -e {d}/.git ]; then",
        f'  echo "head $({GIT} -C {d} rev-parse HEAD 2>/dev/null)"',
        "else",
        f'  if [ -e {d} ] && [ -n "$(ls -A {d} 2>/dev/null)" ]; then echo notempty; fi',
    ]
    if not SHA_RE.fullmatch(version) or version == "HEAD":
        refs = "HEAD" if version == "HEAD" else f"{quote(version)} {quote(version + '^{}')}"
        lines.append(f"  {GIT} ls-remote {quote(repo)} {refs} | sed 's/^/remote /'")
    lines.append("fi")
    return "\n".join(lines)


def parse_git_look(output: str) -> GitLook:
    head = None
    notempty = False
    remote: dict[str, str] = {}
    for line in output.splitlines():
        word, _, rest = line.partition(" ")
        if word == "head":
            head = rest.strip() or None
        elif word == "notempty":
            notempty = True
        elif word == "remote":
            sha, _, ref = rest.partition("\t")
            remote[ref.strip()] = sha.strip()
    return GitLook(head, notempty, remote)


def git_checkout(repo: str, dest: str, version: str) -> Fact[GitLook]:
    """The checkout at dest (its HEAD) or, with none, what the remote says version is."""
    return Fact(f"{dest} and {repo} at {version}", git_look_script(repo, dest, version),
                lambda out: parse_git_look(out.decode("utf-8", "replace")))
