"""fetch: bring a file from the host to the control side, only when the local copy differs."""

from __future__ import annotations

import hashlib
import os
import posixpath
import tempfile
from pathlib import Path
from typing import Any

from infprov.playbooks.connection import get_file_command
from infprov.playbooks.modules.base import ModuleArgError, ModuleContext, ModuleResult, boolean, module, required
from infprov.playbooks.modules.facts import gather, remote_file

FETCH_LIMIT = 256 << 20  # as get_file: a host's file larger than this is refused, never read


def local_path(dest: str, src: str, host: str, flat: bool, base_dir: Path) -> Path:
    """Where Ansible puts it: dest/<host>/<src path>, or dest itself (dest/<name> for a folder) with flat.

    `src` may come from the host (a file it listed), so the place is normalised and must stay inside
    dest/<host> (dest with flat), symlinks already in that path included; otherwise the task fails
    (Ansible's CVE-2019-3828: a `..` in src made fetch write anywhere the user can)."""
    root = Path(os.path.expanduser(dest))
    if not root.is_absolute():
        root = base_dir / root
    if flat and not dest.endswith("/"):
        return Path(os.path.normpath(root))  # the playbook names the file itself
    base = root if flat else root / host
    target = Path(os.path.normpath(base / posixpath.basename(src) if flat else base / src.lstrip("/")))
    real_root, real_base, real_target = (os.path.realpath(p) for p in (root, base, target))
    if not (_below(target, Path(os.path.normpath(base))) and _below(Path(real_target), Path(real_base))
            and (real_base == real_root or _below(Path(real_base), Path(real_root)))):
        raise ModuleArgError(f"src {src!r} would be written outside {base} (at {real_target}); refused")
    return target


def _below(path: Path, folder: Path) -> bool:
    """path is inside folder (not folder itself)."""
    return folder in path.parents


@module("fetch", args={"src", "dest", "flat", "fail_on_missing"})
def fetch(ctx: ModuleContext, args: dict[str, Any]) -> ModuleResult:
    if ctx.check:  # as Ansible: fetch does not run in check mode
        return ModuleResult(skipped=True, msg="check mode not (yet) supported for this module")
    src = str(required(args, "src"))
    dest = str(required(args, "dest"))
    flat = boolean(args.get("flat", False), "flat")
    target = local_path(dest, src, ctx.host_name, flat, ctx.base_dir)
    seen, probe = gather(ctx, remote_file(src))
    if seen is None:
        return ctx.failed(f"cannot look at {src}", probe)
    remote = seen.sha256 or ""
    info: dict[str, Any] = {"src": src, "dest": str(target)}
    if seen.state != "file":
        what = "does not exist" if seen.state == "absent" else "is not a regular file"
        if boolean(args.get("fail_on_missing", True), "fail_on_missing"):
            return ModuleResult(failed=True, msg=f"the remote file {src} {what}", data=info)
        return ModuleResult(msg=f"the remote file {src} {what}, not transferring", data=info)
    info["checksum"] = remote
    if target.is_file() and hashlib.sha256(target.read_bytes()).hexdigest() == remote:
        return ModuleResult(data=info)
    if ctx.check:
        return ModuleResult(changed=True, msg=f"{src} would be fetched to {target}", data=info)
    result = ctx.sh(get_file_command(src, FETCH_LIMIT), keep=FETCH_LIMIT)
    if result.exit_code == 27 or (result.exit_code == 0 and result.dropped):
        return ModuleResult(failed=True, msg=f"{src} on the host is over {FETCH_LIMIT} bytes; not fetched", data=info)
    if result.exit_code != 0:
        return ctx.failed(f"cannot read {src}", result, f"cat {src}")
    if hashlib.sha256(result.stdout).hexdigest() != remote:
        return ModuleResult(failed=True, msg=f"{src} changed while it was fetched (checksum mismatch)", data=info)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    with os.fdopen(fd, "wb") as fh:
        fh.write(result.stdout)
    os.chmod(tmp, 0o644)  # as Ansible leaves fetched files (mkstemp made it 0600)
    os.replace(tmp, target)
    return ModuleResult(changed=True, data=info)
