"""assert: the one module that runs on the control side only."""

from __future__ import annotations

from typing import Any

from infprov.playbooks.modules.base import ModuleArgError, ModuleContext, ModuleResult, boolean, module


@module("assert", args={"that", "fail_msg", "quiet"}, remote=False, conditions={"that"})
def assert_(ctx: ModuleContext, args: dict[str, Any]) -> ModuleResult:
    that = args.get("that")
    if that is None:
        raise ModuleArgError("missing required argument `that`")
    conditions = that if isinstance(that, list) else [that]
    for cond in conditions:
        if not ctx.templar.truth(cond):
            msg = args.get("fail_msg") or "Assertion failed"
            return ModuleResult(failed=True, msg=str(msg), data={"assertion": cond, "evaluated_to": False})
    quiet = boolean(args.get("quiet", False), "quiet")
    return ModuleResult(msg="" if quiet else "All assertions passed")
