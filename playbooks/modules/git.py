"""git with `update: false` (server.yml's python_backend): clone once at a version; an existing checkout stays."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from infprov.playbooks.modules.base import ModuleContext, ModuleResult, module, quote, required
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
    """What a git task does, decided from the facts: a result at once, or a clone script ending in the new HEAD."""

    result: ModuleResult | None = None
    script: str | None = None
    failure: str = ""  # the message if the script fails
    command: str = ""  # the failing step as a user would type it


def plan_git(look: GitLook, repo: str, dest: str, version: str, *, check: bool) -> GitPlan:
    """The decision, from what the host and the remote said: pure, so tests give it facts and read the plan."""
    if look.head is not None:  # update: false, as Ansible: a checkout already there is left as it is
        return GitPlan(ModuleResult(data={"before": look.head, "after": look.head}))
    want, kind = target_sha(version, look.remote)
    if want is None:
        return GitPlan(ModuleResult(failed=True, msg=f"version {version!r} is not a branch, tag or commit of {repo}"))
    if look.notempty:
        return GitPlan(ModuleResult(failed=True, msg=f"{dest} exists, is not empty and is not a git checkout"))
    if check:
        return GitPlan(ModuleResult(changed=True, msg=f"{repo} would be cloned", data={"before": None, "after": want}))
    d = quote(dest)
    branch_flag = f" --branch {quote(version)}" if kind in ("branch", "tag") else ""
    script = f"set -e\n{GIT} clone --quiet{branch_flag} {quote(repo)} {d}"
    if kind == "sha":
        script += f"\n{GIT} -C {d} checkout --quiet --detach {quote(version)}"
    script += f"\n{GIT} -C {d} rev-parse HEAD"
    return GitPlan(script=script, failure=f"git clone of {repo} failed", command=f"git clone {repo} {dest}")


@module("git", args={"repo", "dest", "version", "update"}, fixed={"update": False})
def git(ctx: ModuleContext, args: dict[str, Any]) -> ModuleResult:
    repo = str(required(args, "repo"))
    if repo.startswith("/"):  # as Ansible does: path URLs become file://, so both agree
        repo = "file://" + repo
    dest = str(required(args, "dest"))
    version = str(args.get("version") or "HEAD")
    look, probe = gather(ctx, git_checkout(repo, dest, version))
    if look is None:
        return ctx.failed(f"cannot look at {dest} or ask {repo} for {version}", probe)
    plan = plan_git(look, repo, dest, version, check=ctx.check)
    if plan.result is not None:
        return plan.result
    assert plan.script is not None
    result = ctx.sh(plan.script)
    if result.exit_code != 0:
        return ctx.failed(plan.failure, result, plan.command)
    after = result.out.strip().splitlines()[-1]
    return ModuleResult(changed=True, data={"before": None, "after": after})
