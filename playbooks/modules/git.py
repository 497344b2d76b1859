"""git: a checkout at a given version; looks at HEAD and the remote ref, fetches only when they differ."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from infprov.playbooks.modules.base import ModuleContext, ModuleResult, boolean, module, quote, required
from infprov.playbooks.modules.facts import GIT, SHA_RE, GitLook, gather, git_checkout


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
    if SHA_RE.fullmatch(version):
        return version, "sha"
    return None, ""


@dataclass(frozen=True)
class GitPlan:
    """What a git task does, decided from the facts: a result at once, or a script whose last line is the new HEAD."""

    result: ModuleResult | None = None
    script: str | None = None
    failure: str = ""  # the message if the script fails
    command: str = ""  # the failing step as a user would type it
    before: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


def plan_git(look: GitLook, repo: str, dest: str, version: str, *, force: bool, update: bool,
             depth: Any, check: bool) -> GitPlan:
    """The decision, from what the host and the remote said: pure, so tests give it facts and read the plan."""
    want, kind = target_sha(version, look.remote)
    if want is None:
        return GitPlan(ModuleResult(failed=True, msg=f"version {version!r} is not a branch, tag or commit of {repo}"))
    d = quote(dest)
    if look.head is None:
        if look.notempty:
            return GitPlan(ModuleResult(failed=True, msg=f"{dest} exists, is not empty and is not a git checkout"))
        if check:
            return GitPlan(ModuleResult(changed=True, msg=f"{repo} would be cloned",
                                        data={"before": None, "after": want}))
        depth_flag = f" --depth {int(depth)}" if depth and kind in ("branch", "tag") else ""
        branch_flag = f" --branch {quote(version)}" if kind in ("branch", "tag") else ""
        script = f"set -e\n{GIT} clone --quiet{depth_flag}{branch_flag} {quote(repo)} {d}"
        if kind == "sha":
            script += f"\n{GIT} -C {d} checkout --quiet --detach {quote(version)}"
        script += f"\n{GIT} -C {d} rev-parse HEAD"
        return GitPlan(script=script, failure=f"git clone of {repo} failed", command=f"git clone {repo} {dest}")
    before = look.head
    url_changed = look.url != repo
    at_version = before == want or (kind == "sha" and before.startswith(want))
    if not update:
        return GitPlan(ModuleResult(data={"before": before, "after": before}))
    # As Ansible does: local modifications stop an update, even one that finds the version in place.
    if look.dirty and not force:
        return GitPlan(ModuleResult(failed=True,
                                    msg=f"{dest} has local modifications; set force: true to discard them"))
    if at_version and not url_changed:
        return GitPlan(ModuleResult(data={"before": before, "after": before}))
    if check:
        return GitPlan(ModuleResult(changed=True, msg=f"{dest} would move to {version}",
                                    data={"before": before, "after": want}))
    lines = ["set -e", f"{GIT} -C {d} remote set-url origin {quote(repo)}"]
    if not at_version:
        lines.append(f"{GIT} -C {d} fetch --quiet --tags --force origin '+refs/heads/*:refs/remotes/origin/*'")
        if kind == "branch":
            lines.append(f"{GIT} -C {d} checkout --quiet --force -B {quote(version)} {quote('origin/' + version)}")
        else:
            lines.append(f"{GIT} -C {d} checkout --quiet --force --detach {quote(want)}")
    lines.append(f"{GIT} -C {d} rev-parse HEAD")
    return GitPlan(script="\n".join(lines), failure=f"git update of {dest} to {version} failed",
                   command=f"git checkout {version}", before=before, data={"remote_url_changed": url_changed})


@module("git", args={"repo", "dest", "version", "force", "update", "depth", "clone"}, aliases={"name": "repo"})
def git(ctx: ModuleContext, args: dict[str, Any]) -> ModuleResult:
    repo = str(required(args, "repo"))
    if repo.startswith("/"):  # as Ansible does: path URLs become file:// (depth needs it), so both agree
        repo = "file://" + repo
    dest = str(required(args, "dest"))
    version = str(args.get("version") or "HEAD")
    look, probe = gather(ctx, git_checkout(repo, dest, version))
    if look is None:
        return ctx.failed(f"cannot look at {dest} or ask {repo} for {version}", probe)
    plan = plan_git(look, repo, dest, version, force=boolean(args.get("force", False), "force"),
                    update=boolean(args.get("update", True), "update"), depth=args.get("depth"), check=ctx.check)
    if plan.result is not None:
        return plan.result
    assert plan.script is not None
    result = ctx.sh(plan.script)
    if result.exit_code != 0:
        return ctx.failed(plan.failure, result, plan.command)
    after = result.out.strip().splitlines()[-1]
    return ModuleResult(changed=True, data={"before": plan.before, "after": after, **plan.data})
