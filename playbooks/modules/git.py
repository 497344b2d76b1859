"""git: a checkout at a given version; looks at HEAD and the remote ref, fetches only when they differ."""

from __future__ import annotations

import re
from typing import Any

from infprov.playbooks.modules.base import ModuleContext, ModuleResult, boolean, module, quote, required

_SHA = re.compile(r"^[0-9a-f]{7,40}$")
GIT = "git -c safe.directory='*'"


def look_script(repo: str, dest: str, version: str) -> str:
    d = quote(dest)
    lines = [
        f"if [ -e {d}/.git ]; then",
        f'  echo "head $({GIT} -C {d} rev-parse HEAD 2>/dev/null)"',
        f'  echo "url $({GIT} -C {d} config --get remote.origin.url)"',
        f"  {GIT} -C {d} status --porcelain --untracked-files=no 2>/dev/null | head -1 | sed 's/^/dirty /'",
        f'elif [ -e {d} ] && [ -n "$(ls -A {d} 2>/dev/null)" ]; then echo notempty; fi',
    ]
    if not _SHA.match(version) or version == "HEAD":
        refs = "HEAD" if version == "HEAD" else f"{quote(version)} {quote(version + '^{}')}"
        lines.append(f"{GIT} ls-remote {quote(repo)} {refs} | sed 's/^/remote /'")
    return "\n".join(lines)


def parse_look(output: str) -> dict[str, Any]:
    info: dict[str, Any] = {"head": None, "url": None, "dirty": False, "notempty": False, "remote": {}}
    for line in output.splitlines():
        word, _, rest = line.partition(" ")
        if word == "head":
            info["head"] = rest.strip() or None
        elif word == "url":
            info["url"] = rest.strip() or None
        elif word == "dirty":
            info["dirty"] = True
        elif word == "notempty":
            info["notempty"] = True
        elif word == "remote":
            sha, _, ref = rest.partition("\t")
            info["remote"][ref.strip()] = sha.strip()
    return info


def target_sha(version: str, remote: dict[str, str]) -> tuple[str | None, str]:
    """(sha the version points at, kind: branch/tag/head/sha)."""
    if version == "HEAD":
        return remote.get("HEAD"), "head"
    for ref, kind in (
        (f"refs/tags/{version}^{{}}", "tag"),
        (f"refs/tags/{version}", "tag"),
        (f"refs/heads/{version}", "branch"),
    ):
        if ref in remote:
            return remote[ref], kind
    if _SHA.match(version):
        return version, "sha"
    return None, ""


@module("git", args={"repo", "dest", "version", "force", "update", "depth", "clone"}, aliases={"name": "repo"})
def git(ctx: ModuleContext, args: dict[str, Any]) -> ModuleResult:
    repo = str(required(args, "repo"))
    if repo.startswith("/"):  # as Ansible does: path URLs become file:// (depth needs it), so both agree
        repo = "file://" + repo
    dest = str(required(args, "dest"))
    version = str(args.get("version") or "HEAD")
    force = boolean(args.get("force", False), "force")
    update = boolean(args.get("update", True), "update")
    depth = args.get("depth")
    probe = ctx.sh(look_script(repo, dest, version))
    if probe.exit_code != 0:
        return ctx.failed(f"cannot look at {dest} or ask {repo} for {version}", probe)
    info = parse_look(probe.out)
    want, kind = target_sha(version, info["remote"])
    if want is None:
        return ModuleResult(failed=True, msg=f"version {version!r} is not a branch, tag or commit of {repo}")
    d = quote(dest)
    if info["head"] is None:
        if info["notempty"]:
            return ModuleResult(failed=True, msg=f"{dest} exists, is not empty and is not a git checkout")
        if ctx.check:
            return ModuleResult(changed=True, msg=f"{repo} would be cloned", data={"before": None, "after": want})
        depth_flag = f" --depth {int(depth)}" if depth and kind in ("branch", "tag") else ""
        branch_flag = f" --branch {quote(version)}" if kind in ("branch", "tag") else ""
        script = f"set -e\n{GIT} clone --quiet{depth_flag}{branch_flag} {quote(repo)} {d}"
        if kind == "sha":
            script += f"\n{GIT} -C {d} checkout --quiet --detach {quote(version)}"
        script += f"\n{GIT} -C {d} rev-parse HEAD"
        result = ctx.sh(script)
        if result.exit_code != 0:
            return ctx.failed(f"git clone of {repo} failed", result, f"git clone {repo} {dest}")
        after = result.out.strip().splitlines()[-1]
        return ModuleResult(changed=True, data={"before": None, "after": after})
    before = info["head"]
    url_changed = info["url"] != repo
    at_version = before == want or (kind == "sha" and before.startswith(want))
    if not update:
        return ModuleResult(data={"before": before, "after": before})
    # As Ansible does: local modifications stop an update, even one that finds the version in place.
    if info["dirty"] and not force:
        return ModuleResult(failed=True, msg=f"{dest} has local modifications; set force: true to discard them")
    if at_version and not url_changed:
        return ModuleResult(data={"before": before, "after": before})
    if ctx.check:
        return ModuleResult(changed=True, msg=f"{dest} would move to {version}", data={"before": before, "after": want})
    lines = ["set -e", f"{GIT} -C {d} remote set-url origin {quote(repo)}"]
    if not at_version:
        lines.append(f"{GIT} -C {d} fetch --quiet --tags --force origin '+refs/heads/*:refs/remotes/origin/*'")
        if kind == "branch":
            lines.append(f"{GIT} -C {d} checkout --quiet --force -B {quote(version)} {quote('origin/' + version)}")
        else:
            lines.append(f"{GIT} -C {d} checkout --quiet --force --detach {quote(want)}")
    lines.append(f"{GIT} -C {d} rev-parse HEAD")
    result = ctx.sh("\n".join(lines))
    if result.exit_code != 0:
        return ctx.failed(f"git update of {dest} to {version} failed", result, f"git checkout {version}")
    after = result.out.strip().splitlines()[-1]
    return ModuleResult(changed=True, data={"before": before, "after": after, "remote_url_changed": url_changed})
