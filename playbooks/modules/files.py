"""Files on the host: copy (a file from the playbook's files/) and file (a folder made, or a path removed). Each
looks, then acts."""

from __future__ import annotations

import hashlib
import os
import posixpath
from pathlib import Path
from typing import Any

from infprov.playbooks.connection import STDIN_CHUNK
from infprov.playbooks.modules.base import (
    ModuleArgError,
    ModuleContext,
    ModuleResult,
    mode_commands,
    module,
    parse_mode,
    quote,
    required,
    write_script,
)
from infprov.playbooks.modules.facts import FileStat, file_stats, gather


def find_local(base_dir: Path, folder: str, src: str) -> Path:
    """A control-side source file, looked up like Ansible: absolute, else <playbook dir>/<folder>/, else beside it."""
    path = Path(os.path.expanduser(src))
    candidates = [path] if path.is_absolute() else [base_dir / folder / path, base_dir / path]
    for candidate in candidates:
        if candidate.exists():
            return candidate
    raise ModuleArgError(f"could not find src {src!r} (looked in {', '.join(str(c) for c in candidates)})")


def put_bytes(ctx: ModuleContext, dest: str, data: bytes | Path, mode: int | None, basename: str) -> ModuleResult:
    """Make `dest` hold `data` (bytes, or a local file's, read in chunks: never whole) with the asked-for mode;
    a directory dest receives `basename`."""
    if dest.endswith("/"):
        raise ModuleArgError("a `dest` ending in '/' is not supported by infprov's engine (name the file)")
    inside = posixpath.join(dest, basename)
    stats, probe = gather(ctx, file_stats([dest, inside]))
    if stats is None:
        return ctx.failed(f"cannot look at {dest}", probe)
    target = dest
    if stats[dest].exists and stats[dest].kind == "directory":
        target = inside
    cur = stats[target]
    sha, sha1, size = _digests(data)
    info = {"dest": target, "checksum": sha1, "sha256": sha, "size": size}
    if cur.exists and cur.kind == "directory":
        return ModuleResult(failed=True, msg=f"destination {target} is a directory", data=info)
    if cur.exists and cur.sha256 == sha:
        cmds = mode_commands(target, cur, mode)
        if not cmds:
            return ModuleResult(data=info)
        if ctx.check:
            return ModuleResult(changed=True, msg="attributes would change", data=info)
        result = ctx.sh("set -e\n" + "\n".join(cmds))
        if result.exit_code != 0:
            return ctx.failed(f"cannot set attributes of {target}", result, "; ".join(cmds))
        return ModuleResult(changed=True, data=info)
    if ctx.check:
        return ModuleResult(changed=True, msg=f"{target} would be written", data=info)
    if isinstance(data, Path):
        with data.open("rb") as fh:
            result = ctx.sh(write_script(target, mode, cur.exists), stdin=fh)
    else:
        result = ctx.sh(write_script(target, mode, cur.exists), stdin=data)
    if result.exit_code != 0:
        return ctx.failed(f"cannot write {target}", result, f"write {target}")
    return ModuleResult(changed=True, data=info)


def _digests(data: bytes | Path) -> tuple[str, str, int]:
    """SHA-256, SHA-1 (Ansible's `checksum`) and size of the bytes, or of the file read in chunks."""
    sha, sha1 = hashlib.sha256(), hashlib.sha1()
    if isinstance(data, bytes):
        sha.update(data)
        sha1.update(data)
        return sha.hexdigest(), sha1.hexdigest(), len(data)
    size = 0
    with data.open("rb") as fh:
        while chunk := fh.read(STDIN_CHUNK):
            sha.update(chunk)
            sha1.update(chunk)
            size += len(chunk)
    return sha.hexdigest(), sha1.hexdigest(), size


@module("copy", args={"src", "dest", "mode"})
def copy(ctx: ModuleContext, args: dict[str, Any]) -> ModuleResult:
    dest = str(required(args, "dest"))
    src = str(required(args, "src"))
    local = find_local(ctx.base_dir, "files", src)
    if local.is_dir():
        raise ModuleArgError(f"src {src!r} is a folder: copying folders is not supported by infprov's engine")
    return put_bytes(ctx, dest, local, parse_mode(args.get("mode")), local.name)


@module("file", args={"path", "state", "mode"}, fixed={"state": ("directory", "absent")})
def file(ctx: ModuleContext, args: dict[str, Any]) -> ModuleResult:
    """A folder (state: directory): made with its missing parents, each given the mode, as Ansible does; or a path
    removed with all it holds (state: absent; bench.yml removes its run's folder from the host)."""
    path = str(required(args, "path"))
    if args["state"] == "absent":
        return _absent(ctx, path, args.get("mode"))
    mode = parse_mode(args.get("mode"))
    stats, probe = gather(ctx, file_stats([path], checksum=False))
    if stats is None:
        return ctx.failed(f"cannot look at {path}", probe)
    cur = stats[path]
    info: dict[str, Any] = {"path": path, "state": "directory"}
    if cur.exists and cur.kind != "directory":
        return ModuleResult(failed=True, msg=f"{path} exists and is a {cur.kind}, not a directory", data=info)
    cmds = []
    if not cur.exists:
        fresh = FileStat(path, True, "directory", -1)
        parts: list[str] = []
        head = path.rstrip("/") or "/"
        while head not in ("/", "", "."):
            parts.insert(0, head)
            head = posixpath.dirname(head)
        for part in parts:
            extra = "".join(f"; {c}" for c in mode_commands(part, fresh, mode))
            # another run may make the same folder meanwhile (as Ansible, an existing folder is no error)
            q = quote(part)
            cmds.append(f"if [ ! -e {q} ]; then mkdir -- {q} 2>/dev/null || [ -d {q} ] || mkdir -- {q}{extra}; fi")
    else:
        cmds += mode_commands(path, cur, mode)
    if not cmds:
        return ModuleResult(data=info)
    if ctx.check:
        return ModuleResult(changed=True, msg=f"{path} would change", data=info)
    result = ctx.sh("set -e\n" + "\n".join(cmds))
    if result.exit_code != 0:
        return ctx.failed(f"{path}: {result.err.strip() or 'failed'}", result, "; ".join(cmds))
    return ModuleResult(changed=True, data=info)


def _absent(ctx: ModuleContext, path: str, mode: Any) -> ModuleResult:
    if mode is not None:
        raise ModuleArgError("`mode` with `state: absent` is not supported by infprov's engine")
    stats, probe = gather(ctx, file_stats([path], checksum=False))
    if stats is None:
        return ctx.failed(f"cannot look at {path}", probe)
    info: dict[str, Any] = {"path": path, "state": "absent"}
    if not stats[path].exists:
        return ModuleResult(data=info)
    if ctx.check:
        return ModuleResult(changed=True, msg=f"{path} would be removed", data=info)
    result = ctx.sh(f"rm -rf -- {quote(path)}")
    if result.exit_code != 0:
        return ctx.failed(f"{path}: {result.err.strip() or 'could not remove it'}", result, f"rm -rf -- {path}")
    return ModuleResult(changed=True, data=info)
