"""`infprov logs --bundle`: one archive per cluster with what a support thread asks for from each host.

The hosts are read through the engine (playbooks/bundle.yml, read only, all hosts in parallel); what they
return, the inventory entries and infprov's own record are masked (playbooks.masking) and written as one
tar.gz: private (0600) whatever the umask, whole or not at all, with plain relative member names. A host
that cannot be read leaves its error in the bundle; the others are kept.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import io
import json
import os
import platform
import re
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infprov.floor.errors import InfprovError, UsageError
from infprov.playbooks import report
from infprov.playbooks.masking import Masker, mask_vars
from infprov.provision import __version__

BOOK = "bundle"  # playbooks/bundle.yml
REGISTER = "bundle_out"
LOG_CAP = 8 << 20  # the most of a local log that goes in (its end)
# a member's name: plain words joined by '/', none of them '.' or '..' and none absolute
_MEMBER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*")
_FILE = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


def shown(text: str, limit: int = 300) -> str:
    """A host's or a path's text fit for one line of the terminal: no control characters, cut to limit."""
    text = report.printable(str(text), keep_newlines=False)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass
class HostPart:
    """One host's part in a bundle."""

    host: str
    address: str
    ok: bool = True
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"host": self.host, "address": self.address, "ok": self.ok, "error": self.error}


@dataclass
class Bundle:
    """One cluster's archive: where it is, what it holds, and each host's part."""

    cluster: str
    path: Path
    bytes: int
    members: list[str]
    hosts: list[HostPart] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(h.ok for h in self.hosts)

    def to_dict(self) -> dict[str, Any]:
        return {"cluster": self.cluster, "path": str(self.path), "bytes": self.bytes, "ok": self.ok,
                "members": list(self.members), "hosts": [h.to_dict() for h in self.hosts]}


@dataclass
class _Member:
    name: str  # below the bundle's top folder
    text: str
    what: str
    how: str
    host: str | None = None
    exit_code: int | None = None


# ---------------------------------------------------------------- the folder and the archive
def check_folder(path: str) -> Path:
    """--bundle PATH: an existing folder this user may write into (nothing is made here)."""
    folder = Path(path)
    where = shown(path, 120)
    if not path.strip():
        raise UsageError("--bundle needs a folder", "e.g. --bundle . for this one")
    try:
        if not folder.exists():
            raise UsageError(f"--bundle {where}: no such folder", "give an existing folder (mkdir -p it first)")
        if not folder.is_dir():
            raise UsageError(f"--bundle {where} is not a folder", "give the folder the archive should go in")
    except OSError as exc:
        raise InfprovError(f"--bundle {where}: {shown(exc.strerror or str(exc), 120)}",
                           "give a folder you can write to") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InfprovError(f"--bundle {where} is not writable", "give a folder you can write to")
    return folder


def check_member(name: str) -> str:
    if not _MEMBER.fullmatch(name) or ".." in name.split("/"):
        raise ValueError(f"unsafe archive member name {name!r}")
    return name


@contextlib.contextmanager
def pending_archive(folder: Path) -> Iterator[tuple[int, str]]:
    """A hidden temporary file in folder (0600), made first so an unwritable folder fails before any host
    is asked; removed unless `publish` renamed it, whatever ends the block (an error, Ctrl-C)."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=".infprov-bundle-", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise InfprovError(f"--bundle {shown(str(folder), 120)}: cannot write there: "
                           f"{shown(exc.strerror or str(exc), 120)}", "give a folder you can write to") from None
    try:
        os.fchmod(fd, 0o600)
        yield fd, tmp
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def write_archive(fd: int, top: str, members: Sequence[tuple[str, bytes]], mtime: float | None = None) -> int:
    """Write members (name below `top`, bytes) as a tar.gz to fd; each a regular file of mode 0600 with a
    plain relative name. Returns the archive's size."""
    check_member(top)
    when = int(mtime if mtime is not None else time.time())
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    with os.fdopen(os.dup(fd), "wb") as raw:
        with tarfile.open(fileobj=raw, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
            seen: set[str] = set()
            for name, data in members:
                full = check_member(f"{top}/{name}")
                if full in seen:
                    raise ValueError(f"archive member {full!r} twice")
                seen.add(full)
                info = tarfile.TarInfo(full)
                info.size, info.mode, info.mtime, info.type = len(data), 0o600, when, tarfile.REGTYPE
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                tar.addfile(info, io.BytesIO(data))
        raw.flush()
        os.fsync(raw.fileno())
        return raw.tell()


def publish(tmp: str, folder: Path, stem: str) -> Path:
    """Give the finished temporary file its name, never over an existing file (stem.tar.gz, stem-2.tar.gz ...)."""
    for n in range(1, 1000):
        path = folder / (f"{stem}.tar.gz" if n == 1 else f"{stem}-{n}.tar.gz")
        try:
            os.link(tmp, path)
        except FileExistsError:
            continue
        except OSError as exc:  # a file system without hard links: rename, after a look
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
                raise
            if os.path.lexists(path):
                continue
            os.replace(tmp, path)
            return path
        os.unlink(tmp)
        with contextlib.suppress(OSError):
            dirfd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(dirfd)
            finally:
                os.close(dirfd)
        return path
    raise InfprovError(f"{shown(str(folder), 120)} holds 999 bundles named {stem}", "clean the folder up")


# ---------------------------------------------------------------- collecting
def _collect(hosts: Sequence[Any], connector: Callable[[Any], Any] | None, known_hosts: Path | None,
             runs_dir: Path | None) -> Any:
    """Run bundle.yml on the hosts in a worker thread, so that Ctrl-C is handled here at once (the hosts'
    commands only read; a command left running ends with its SSH session)."""
    from infprov.inventory.model import Inventory
    from infprov.playbooks.runner import run_playbook

    inv = Inventory(hosts=tuple(hosts))
    done: dict[str, Any] = {}
    finished = threading.Event()

    def go() -> None:
        try:
            done["result"] = run_playbook(BOOK, inv, connector=connector, known_hosts=known_hosts, runs_dir=runs_dir)
        except BaseException as exc:  # handed to the waiting thread
            done["error"] = exc
        finally:
            finished.set()

    threading.Thread(target=go, name="infprov-bundle", daemon=True).start()
    while not finished.wait(0.1):
        pass
    if "error" in done:
        raise done["error"]
    return done["result"]


def _host_members(result: Any, host: Any) -> tuple[list[_Member], HostPart]:
    part = HostPart(host.name, host.address)
    folder = f"hosts/{host.name}"
    members: list[_Member] = []
    seen = result.outcome(host.name)
    items = (result.registered.get(host.name, {}).get(REGISTER) or {}).get("results") or []
    names: set[str] = set()
    for got in items:
        item = got.get("item") or {}
        file = str(item.get("file", ""))
        if not _FILE.fullmatch(file) or file in names or file == "error.txt":
            continue  # (bundle.yml names its files; nothing else may)
        names.add(file)
        command = str(got.get("cmd") or item.get("cmd") or "")
        if "stdout" in got:
            text = str(got.get("stdout") or "")
            text = text if text.endswith("\n") or not text else text + "\n"
        else:
            text = f"not collected: {got.get('msg') or 'no output'}\n"
        members.append(_Member(f"{folder}/{file}", text, str(item.get("what", "")),
                               f"on the host, over SSH (playbooks/bundle.yml): {command}", host.name,
                               got.get("rc") if isinstance(got.get("rc"), int) else None))
    if not seen.ok or not items:
        part.ok = False
        part.error = f"{host.address}: {seen.error or 'nothing was collected'}"
        members.append(_Member(f"{folder}/error.txt", part.error + "\n" + (seen.tail + "\n" if seen.tail else ""),
                               "why this host's part is missing or incomplete", "infprov's engine", host.name))
    return members, part


def _inventory_member(inv: Any, host: Any) -> _Member:
    import yaml

    doc = {
        "host": host.name,
        "cluster": host.cluster,
        "vars": mask_vars(host.vars()),
        "group_vars": {g: mask_vars(dict(inv.group_vars.get(g, {}))) for g in ("all", host.cluster)
                       if inv.group_vars.get(g)},
    }
    text = yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)
    return _Member(f"hosts/{host.name}/inventory.yml", text,
                   "the host's inventory entry and its groups' variables (the key file is named, never read)",
                   f"from the inventory {inv.path or '-'}", host.name)


def _server_log(runs_dir: Path | None, hosts: Sequence[Any]) -> _Member | None:
    """The newest server playbook run log (`up`'s server step) that names a host of the cluster."""
    if runs_dir is None or not runs_dir.is_dir():
        return None
    logs = sorted(runs_dir.glob("*-play-server-*.log"), key=lambda p: p.stat().st_mtime, reverse=True)
    names = [h.name for h in hosts]
    for path in logs[:50]:
        try:
            with path.open("rb") as fh:
                size = fh.seek(0, os.SEEK_END)
                fh.seek(max(0, size - LOG_CAP))
                text = fh.read().decode("utf-8", "replace")
        except OSError:
            continue
        if any(n in text for n in names):
            return _Member("infprov/server-play.log", text,
                           "infprov's log of the newest server playbook run (up's server step) on these hosts"
                           + (f" (its last {LOG_CAP} bytes)" if size > LOG_CAP else ""),
                           f"from this machine: {path}")
    return None


def _about(cluster: str, argv: Sequence[str], started: dt.datetime) -> _Member:
    doc = {"infprov_version": __version__, "python": sys.version.split()[0],
           "platform": platform.platform(), "cluster": cluster, "command": " ".join(argv),
           "collected_at": started.strftime("%Y-%m-%dT%H:%M:%SZ")}
    return _Member("infprov/version.json", json.dumps(doc, indent=2) + "\n", "infprov's version and this machine's",
                   "from infprov itself")


def make(
    cluster: str,
    hosts: Sequence[Any],
    inv: Any,
    folder: Path,
    *,
    connector: Callable[[Any], Any] | None = None,
    known_hosts: Path | None = None,
    runs_dir: Path | None = None,
    argv: Sequence[str] = ("infprov", "logs", "--bundle"),
    environ: dict[str, str] | None = None,
) -> Bundle:
    """Collect one cluster's bundle from its hosts into folder; nothing is left there unless it is whole."""
    started = dt.datetime.now(dt.timezone.utc)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    stem = f"infprov-bundle-{cluster}-{stamp}"
    check_member(stem)
    with pending_archive(folder) as (fd, tmp):
        result = _collect(hosts, connector, known_hosts, runs_dir)
        members: list[_Member] = [_about(cluster, argv, started)]
        parts = []
        for host in hosts:
            got, part = _host_members(result, host)
            members.append(_inventory_member(inv, host))
            members.extend(got)
            parts.append(part)
        log = _server_log(runs_dir, hosts)
        if log is not None:
            members.append(log)
        masker = Masker()
        masker.learn_environ(environ)
        for host in hosts:
            masker.learn_vars(inv.host_vars(host))
        masker.learn_texts(m.text for m in members)
        entries = [(m.name, masker(m.text).encode("utf-8")) for m in members]
        manifest = {
            "bundle": stem, "cluster": cluster, "infprov_version": __version__,
            "collected_at": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "masking": "masked as ******** (AWS keys and tokens, private keys, values of variables whose names "
                       "look secret); private keys as " + "'[private key masked by infprov]'",
            "hosts": [p.to_dict() for p in parts],
            "files": [{"path": m.name, "host": m.host, "what": m.what, "how": m.how, "exit_code": m.exit_code,
                       "bytes": len(data)} for m, (_, data) in zip(members, entries, strict=True)],
        }
        entries.insert(0, ("manifest.json", masker(json.dumps(manifest, indent=2) + "\n").encode("utf-8")))
        size = write_archive(fd, stem, entries, started.timestamp())
        path = publish(tmp, folder, stem)
    return Bundle(cluster, path, size, [f"{stem}/{n}" for n, _ in entries], parts)
