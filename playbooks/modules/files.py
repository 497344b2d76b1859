"""Files on the host: copy, template, file, lineinfile, replace, stat. Each looks (one command), then acts."""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import re
from pathlib import Path
from typing import Any

from infprov.playbooks.errors import TemplateError
from infprov.playbooks.modules.base import (
    ModuleArgError,
    ModuleContext,
    ModuleResult,
    attr_commands,
    boolean,
    module,
    parse_mode,
    quote,
    required,
    write_script,
)
from infprov.playbooks.modules.facts import FileStat, file_stats, file_text, gather, tree_differs
from infprov.playbooks.templating import LazyVars, Templar

_ATTRS = {"mode", "owner", "group"}


def find_local(base_dir: Path, folder: str, src: str) -> Path:
    """A control-side source file, looked up like Ansible: absolute, else <playbook dir>/<folder>/, else beside it."""
    path = Path(os.path.expanduser(src))
    candidates = [path] if path.is_absolute() else [base_dir / folder / path, base_dir / path]
    for candidate in candidates:
        if candidate.exists():
            return candidate
    raise ModuleArgError(f"could not find src {src!r} (looked in {', '.join(str(c) for c in candidates)})")


def _attrs(args: dict[str, Any]) -> tuple[int | None, str | None, str | None]:
    owner = args.get("owner")
    group = args.get("group")
    return parse_mode(args.get("mode")), None if owner is None else str(owner), None if group is None else str(group)


def put_bytes(
    ctx: ModuleContext,
    dest: str,
    data: bytes,
    args: dict[str, Any],
    *,
    basename: str | None = None,
    force: bool = True,
) -> ModuleResult:
    """Make `dest` hold `data` with the asked-for attributes; a directory dest receives `basename`."""
    mode, owner, group = _attrs(args)
    make_parent = dest.endswith("/")
    if make_parent:
        if not basename:
            raise ModuleArgError("`dest` ends with '/' but there is no file name to put there (use src)")
        target = dest + basename
        looks = [target]
    else:
        target = dest
        looks = [dest] + ([posixpath.join(dest, basename)] if basename else [])
    stats, probe = gather(ctx, file_stats(looks))
    if stats is None:
        return ctx.failed(f"cannot look at {dest}", probe)
    if not make_parent and stats[dest].exists and stats[dest].kind == "directory":
        if not basename:
            return ModuleResult(failed=True, msg=f"destination {dest} is a directory; content needs a file path")
        target = posixpath.join(dest, basename)
    cur = stats[target]
    sha = hashlib.sha256(data).hexdigest()
    info = {"dest": target, "checksum": hashlib.sha1(data).hexdigest(), "sha256": sha, "size": len(data)}
    if cur.exists and cur.kind == "directory":
        return ModuleResult(failed=True, msg=f"destination {target} is a directory", data=info)
    if cur.exists and not force:  # Ansible: force: false leaves an existing file alone, attributes included
        return ModuleResult(data=info)
    if cur.exists and cur.sha256 == sha:
        cmds = attr_commands(target, cur, mode, owner, group)
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
    script = write_script(target, mode, owner, group, cur.exists)
    if make_parent:
        script = f"mkdir -p {quote(posixpath.dirname(target))}\n" + script
    result = ctx.sh(script, stdin=data)
    if result.exit_code != 0:
        return ctx.failed(f"cannot write {target}", result, f"write {target}")
    return ModuleResult(changed=True, data=info)


def _put_tree(ctx: ModuleContext, local: Path, dest: str, args: dict[str, Any], src: str) -> ModuleResult:
    """Copy a local folder: `dir` lands as dest/dir, `dir/` spreads its contents into dest (Ansible's rule)."""
    base = dest if src.endswith("/") else posixpath.join(dest, local.name)
    files = sorted(p for p in local.rglob("*") if p.is_file())
    dirs = sorted({base} | {posixpath.join(base, str(p.parent.relative_to(local))) for p in files})
    dirs = [posixpath.normpath(d) for d in dirs]
    stats, probe = gather(ctx, file_stats(dirs, checksum=False))
    if stats is None:
        return ctx.failed(f"cannot look at {dest}", probe)
    missing = [d for d in dirs if not stats[d].exists]
    changed = False
    if missing:
        changed = True
        if not ctx.check:
            dmode = parse_mode(args.get("directory_mode"))
            flag = f"-m {dmode:o} " if dmode is not None else ""
            result = ctx.sh("mkdir -p " + flag + " ".join(quote(d) for d in missing))
            if result.exit_code != 0:
                return ctx.failed(f"cannot create folders under {dest}", result)
    written = []
    for path in files:
        target = posixpath.join(base, str(path.relative_to(local)))
        if ctx.check and missing and any(target.startswith(d + "/") for d in missing):
            written.append(target)
            continue
        res = put_bytes(ctx, target, path.read_bytes(), args)
        if res.failed:
            return res
        if res.changed:
            changed = True
            written.append(target)
    return ModuleResult(changed=changed, data={"dest": base, "files": written})


@module("copy", args={"src", "content", "dest", "force", "directory_mode"} | _ATTRS)
def copy(ctx: ModuleContext, args: dict[str, Any]) -> ModuleResult:
    dest = str(required(args, "dest"))
    src, content = args.get("src"), args.get("content")
    if (src is None) == (content is None):
        raise ModuleArgError("give exactly one of `src` or `content`")
    force = boolean(args.get("force", True), "force")
    if content is not None:
        if isinstance(content, dict | list):
            content = json.dumps(content)
        data = content if isinstance(content, bytes) else str(content).encode()
        return put_bytes(ctx, dest, data, args, force=force)
    local = find_local(ctx.base_dir, "files", str(src))
    if local.is_dir():
        return _put_tree(ctx, local, dest, args, str(src))
    return put_bytes(ctx, dest, local.read_bytes(), args, basename=local.name, force=force)


@module("template", args={"src", "dest", "force"} | _ATTRS)
def template(ctx: ModuleContext, args: dict[str, Any]) -> ModuleResult:
    dest = str(required(args, "dest"))
    local = find_local(ctx.base_dir, "templates", str(required(args, "src")))
    try:
        # ansible_managed exists for templates only (as in ansible-core)
        templar = Templar(LazyVars([{"ansible_managed": "Ansible managed"}, ctx.templar.vars]))
        text = templar.render_file(local.read_text(encoding="utf-8"), name=str(local))
    except TemplateError as exc:
        return ModuleResult(failed=True, msg=str(exc))
    force = boolean(args.get("force", True), "force")
    return put_bytes(ctx, dest, text.encode(), args, basename=local.name, force=force)


# ---------------------------------------------------------------- file
_STATES = ("file", "directory", "absent", "touch", "link")


@module(
    "file",
    args={"path", "state", "src", "recurse", "force", "follow"} | _ATTRS,
    aliases={"dest": "path", "name": "path"},
)
def file(ctx: ModuleContext, args: dict[str, Any]) -> ModuleResult:
    path = str(required(args, "path"))
    state = args.get("state")
    if state is not None and state not in _STATES:
        raise ModuleArgError(f"argument `state` must be one of {', '.join(_STATES)}, not {state!r}")
    mode, owner, group = _attrs(args)
    recurse = boolean(args.get("recurse", False), "recurse")
    stats, probe = gather(ctx, file_stats([path], follow=state != "link", checksum=False))
    if stats is None:
        return ctx.failed(f"cannot look at {path}", probe)
    cur = stats[path]
    info: dict[str, Any] = {"path": path}
    if state is None:
        state = ("directory" if cur.kind == "directory" else "file") if cur.exists else "file"
    info["state"] = state
    if state == "absent":
        if not cur.exists:
            return ModuleResult(data={**info, "state": "absent"})
        return _act(ctx, [f"rm -rf -- {quote(path)}"], info, f"{path} would be removed")
    if state == "link":
        src = str(required(args, "src"))
        force = boolean(args.get("force", False), "force")
        if cur.exists and cur.kind == "link" and cur.link_target == src:
            return ModuleResult(data=info)
        if not force:  # Ansible: a link to a missing source fails unless force (relative to the link's folder)
            rel = path if cur.exists and cur.kind == "directory" else (posixpath.dirname(path) or ".")
            source = src if src.startswith("/") else posixpath.join(rel, src)
            seen, look = gather(ctx, file_stats([source], checksum=False))
            if seen is None:
                return ctx.failed(f"cannot look at {source}", look)
            if not seen[source].exists:
                return ModuleResult(
                    failed=True,
                    msg=f"src file does not exist, use 'force=yes' if you really want to create the link: {source}",
                    data=info,
                )
        if cur.exists and cur.kind not in ("link",) and not force:
            return ModuleResult(failed=True, msg=f"refusing to replace {path} ({cur.kind}) by a link; set force: true")
        return _act(ctx, [f"ln -sfn -- {quote(src)} {quote(path)}"], info, f"link {path} would be made")
    if state == "file":
        if not cur.exists:
            return ModuleResult(failed=True, msg=f"file {path} is absent, cannot continue", data=info)
        return _act(ctx, attr_commands(path, cur, mode, owner, group), info, "attributes would change")
    if state == "touch":
        cmds = [f"touch -- {quote(path)}"]
        fake = cur if cur.exists else FileStat(path, True, "file", -1, "", "", -2, -2)
        cmds += (
            attr_commands(path, fake, mode, owner, group)
            if not cur.exists
            else attr_commands(path, cur, mode, owner, group)
        )
        return _act(ctx, cmds, info, f"{path} would be touched")
    # directory
    if cur.exists and cur.kind != "directory":
        return ModuleResult(failed=True, msg=f"{path} exists and is a {cur.kind}, not a directory", data=info)
    cmds = []
    if not cur.exists:
        # as Ansible: each folder it creates on the way gets mode/owner/group, not only the last one
        fresh = FileStat(path, True, "directory", -1, "", "", -2, -2)
        parts: list[str] = []
        head = path.rstrip("/") or "/"
        while head not in ("/", "", "."):
            parts.insert(0, head)
            head = posixpath.dirname(head)
        for part in parts:
            made = attr_commands(part, fresh, mode, owner, group)
            extra = "".join(f"; {c}" for c in made)
            # another run may make the same folder meanwhile (as Ansible, an existing folder is no error)
            q = quote(part)
            cmds.append(f"if [ ! -e {q} ]; then mkdir -- {q} 2>/dev/null || [ -d {q} ] || mkdir -- {q}{extra}; fi")
    elif recurse:
        if mode is not None or owner is not None or group is not None:
            differs, probe = gather(ctx, tree_differs(path, mode, owner, group))
            if differs is None:
                return ctx.failed(f"cannot look into {path}", probe)
            if differs:
                if mode is not None:
                    cmds.append(f"chmod -R {mode:o} -- {quote(path)}")
                if owner is not None or group is not None:
                    spec = (owner or "") + (f":{group}" if group is not None else "")
                    cmds.append(f"chown -R -- {quote(spec)} {quote(path)}")
    else:
        cmds += attr_commands(path, cur, mode, owner, group)
    return _act(ctx, cmds, info, f"{path} would change")


def _act(ctx: ModuleContext, cmds: list[str], info: dict[str, Any], check_msg: str) -> ModuleResult:
    if not cmds:
        return ModuleResult(data=info)
    if ctx.check:
        return ModuleResult(changed=True, msg=check_msg, data=info)
    result = ctx.sh("set -e\n" + "\n".join(cmds))
    if result.exit_code != 0:
        return ctx.failed(f"{info.get('path')}: {result.err.strip() or 'failed'}", result, "; ".join(cmds))
    return ModuleResult(changed=True, data=info)


# ---------------------------------------------------------------- editing text in place
def read_text(ctx: ModuleContext, path: str) -> tuple[FileStat | None, str | None, ModuleResult | None]:
    """(stat, content or None if absent, failure) in one round trip."""
    seen, result = gather(ctx, file_text(path))
    if seen is None:
        return None, None, ctx.failed(f"cannot read {path}", result)
    cur = seen.stat
    if cur.exists and cur.kind != "file":
        return cur, None, ModuleResult(failed=True, msg=f"{path} is a {cur.kind}, not a file")
    return cur, seen.text, None


def _save(
    ctx: ModuleContext, path: str, cur: FileStat, old: str | None, new: str, args: dict[str, Any], msg: str
) -> ModuleResult:
    mode, owner, group = _attrs(args)
    info = {"path": path}
    if old == new:
        cmds = attr_commands(path, cur, mode, owner, group) if cur.exists else []
        return _act(ctx, cmds, info, "attributes would change") if cmds else ModuleResult(data=info)
    if ctx.check:
        return ModuleResult(changed=True, msg=msg, data=info)
    result = ctx.sh(write_script(path, mode, owner, group, cur.exists), stdin=new.encode("utf-8", "surrogateescape"))
    if result.exit_code != 0:
        return ctx.failed(f"cannot write {path}", result, f"write {path}")
    return ModuleResult(changed=True, msg=msg, data=info)


def lineinfile_edit(
    content: str,
    *,
    line: str | None,
    regexp: str | None = None,
    state: str = "present",
    insertafter: str | None = None,
    insertbefore: str | None = None,
    backrefs: bool = False,
    firstmatch: bool = False,
) -> tuple[str, str]:
    """Pure lineinfile: (new content, message). Follows Ansible's rules for where a line goes."""
    lines = content.splitlines(keepends=True)
    pattern = re.compile(regexp) if regexp is not None else None
    if state == "absent":
        kept = [ln for ln in lines if not (pattern.search(ln) if pattern is not None else ln.rstrip("\r\n") == line)]
        removed = len(lines) - len(kept)
        return "".join(kept), (f"{removed} line(s) removed" if removed else "")
    if line is None:
        raise ModuleArgError("argument `line` is required with state=present")
    ins_pattern = None
    if insertafter not in (None, "BOF", "EOF"):
        ins_pattern = re.compile(str(insertafter))
    elif insertbefore not in (None, "BOF"):
        ins_pattern = re.compile(str(insertbefore))
    match_index, insert_index = -1, -1
    match: re.Match[str] | None = None
    for i, cur in enumerate(lines):
        found: Any = pattern.search(cur) if pattern is not None else line == cur.rstrip("\r\n")
        if found:
            match_index = i
            match = found if isinstance(found, re.Match) else None
            if firstmatch:
                break
        elif ins_pattern is not None and ins_pattern.search(cur):
            insert_index = i + 1 if insertafter not in (None, "BOF", "EOF") else i
            if firstmatch:
                break
    if match_index != -1:
        new_line = match.expand(line) if backrefs and match is not None else line
        new_line += "\n"
        if lines[match_index] != new_line:  # as Ansible: a last line without its newline gets one
            lines[match_index] = new_line
            return "".join(lines), "line replaced"
        return content, ""
    if backrefs:
        return content, ""
    if any(cur.rstrip("\r\n") == line for cur in lines):  # already there verbatim: never add twice
        return content, ""
    if insertbefore == "BOF" or insertafter == "BOF":
        return line + "\n" + content, "line added"
    if insertafter == "EOF" or insert_index == -1:
        if lines and not lines[-1].endswith(("\n", "\r")):
            lines.append("\n")
        lines.append(line + "\n")
        return "".join(lines), "line added"
    lines.insert(insert_index, line + "\n")
    return "".join(lines), "line added"


@module(
    "lineinfile",
    args={"path", "line", "regexp", "state", "insertafter", "insertbefore", "create", "backrefs", "firstmatch"}
    | _ATTRS,
    aliases={"dest": "path", "name": "path", "value": "line", "regex": "regexp"},
)
def lineinfile(ctx: ModuleContext, args: dict[str, Any]) -> ModuleResult:
    path = str(required(args, "path"))
    state = args.get("state", "present")
    if state not in ("present", "absent"):
        raise ModuleArgError(f"argument `state` must be present or absent, not {state!r}")
    cur, content, failure = read_text(ctx, path)
    if failure is not None or cur is None:
        return failure or ModuleResult(failed=True, msg=f"cannot read {path}")
    if content is None:
        if state == "absent":
            return ModuleResult(data={"path": path}, msg="file not present")
        if not boolean(args.get("create", False), "create"):
            return ModuleResult(failed=True, rc=257, msg=f"Destination {path} does not exist !")
    new, msg = lineinfile_edit(
        content or "",
        line=None if args.get("line") is None else str(args["line"]),
        regexp=args.get("regexp"),
        state=state,
        insertafter=args.get("insertafter"),
        insertbefore=args.get("insertbefore"),
        backrefs=boolean(args.get("backrefs", False), "backrefs"),
        firstmatch=boolean(args.get("firstmatch", False), "firstmatch"),
    )
    return _save(ctx, path, cur, content, new, args, msg)


def replace_edit(
    content: str, regexp: str, replacement: str, after: str | None = None, before: str | None = None
) -> tuple[str, int]:
    """Pure replace: (new content, number of replacements), only between `after` and `before` when given."""
    start, end = 0, len(content)
    if after:
        m = re.search(after, content, re.M | re.S)
        if m is None:
            return content, 0
        start = m.end()
    if before:
        m = re.search(before, content[start:], re.M | re.S)
        if m is None:
            return content, 0
        end = start + m.start()
    section, count = re.subn(regexp, replacement, content[start:end], flags=re.M)
    return content[:start] + section + content[end:], count


@module(
    "replace", args={"path", "regexp", "replace", "after", "before"} | _ATTRS, aliases={"dest": "path", "name": "path"}
)
def replace(ctx: ModuleContext, args: dict[str, Any]) -> ModuleResult:
    path = str(required(args, "path"))
    regexp = str(required(args, "regexp"))
    cur, content, failure = read_text(ctx, path)
    if failure is not None or cur is None:
        return failure or ModuleResult(failed=True, msg=f"cannot read {path}")
    if content is None:
        return ModuleResult(failed=True, rc=257, msg=f"Path {path} does not exist !")
    new, count = replace_edit(content, regexp, str(args.get("replace", "")), args.get("after"), args.get("before"))
    return _save(ctx, path, cur, content, new, args, f"{count} replacements made" if count else "")


@module(
    "stat",
    args={"path", "follow", "get_checksum", "checksum_algorithm"},
    aliases={"dest": "path", "name": "path", "checksum": "checksum_algorithm", "checksum_algo": "checksum_algorithm"},
)
def stat(ctx: ModuleContext, args: dict[str, Any]) -> ModuleResult:
    path = str(required(args, "path"))
    checksum = boolean(args.get("get_checksum", True), "get_checksum")
    algorithm = str(args.get("checksum_algorithm", "sha1"))
    if algorithm not in ("sha1", "sha224", "sha256", "sha384", "sha512", "md5"):
        raise ModuleArgError("argument `checksum_algorithm` must be sha1, sha224, sha256, sha384, sha512 or md5")
    follow = boolean(args.get("follow", False), "follow")
    stats, probe = gather(ctx, file_stats([path], follow=follow, checksum=checksum))
    if stats is None:
        return ctx.failed(f"cannot look at {path}", probe)
    cur = stats[path]
    if not cur.exists:
        return ModuleResult(data={"stat": {"exists": False, "path": path}})
    info: dict[str, Any] = {
        "exists": True,
        "path": path,
        "isdir": cur.kind == "directory",
        "isreg": cur.kind == "file",
        "islnk": cur.link_target is not None,
        "mode": f"{cur.mode:04o}",
        "pw_name": cur.owner,
        "gr_name": cur.group,
        "uid": cur.uid,
        "gid": cur.gid,
        "size": cur.size,
    }
    if cur.link_target is not None:
        info["lnk_target"] = cur.link_target
    if cur.sha256:
        info["checksum"] = cur.sha256
        if algorithm != "sha256":  # Ansible's default is SHA-1
            q = quote(path)
            digest = ctx.sh(f"{algorithm}sum -- {q} | cut -d' ' -f1")
            if digest.exit_code != 0:
                return ctx.failed(f"cannot checksum {path}", digest)
            info["checksum"] = digest.out.strip()
    return ModuleResult(data={"stat": info})
