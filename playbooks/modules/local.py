"""Modules that run on the control side only: debug, set_fact, assert, fail."""

from __future__ import annotations

import json
from typing import Any

from infprov.playbooks.errors import TemplateError
from infprov.playbooks.modules.base import ModuleArgError, ModuleContext, ModuleResult, boolean, module


@module("debug", args={"msg", "var", "verbosity"}, free_form="msg", remote=False)
def debug(ctx: ModuleContext, args: dict[str, Any]) -> ModuleResult:
    if "var" in args:
        name = str(args["var"])
        try:
            value = ctx.templar.evaluate(name)
        except TemplateError as exc:  # shown as ansible-core 2.19 shows it
            value = f"<< error 1 - {str(exc).split(' (in ', 1)[0]} >>"
        return ModuleResult(msg=json.dumps({name: value}, sort_keys=True, default=str), data={name: value})
    msg = args.get("msg", "Hello world!")
    shown = msg if isinstance(msg, str) else json.dumps(msg, sort_keys=True, default=str)
    return ModuleResult(msg=shown, data={"msg": msg})


@module("set_fact", args=None, remote=False)
def set_fact(ctx: ModuleContext, args: dict[str, Any]) -> ModuleResult:
    facts = {k: v for k, v in args.items() if k != "cacheable"}
    if not facts:
        raise ModuleArgError("set_fact needs at least one name: value")
    return ModuleResult(facts=facts, data={"ansible_facts": facts})


@module("assert", args={"that", "fail_msg", "msg", "success_msg", "quiet"}, remote=False, conditions={"that"})
def assert_(ctx: ModuleContext, args: dict[str, Any]) -> ModuleResult:
    that = args.get("that")
    if that is None:
        raise ModuleArgError("missing required argument `that`")
    conditions = that if isinstance(that, list) else [that]
    for cond in conditions:
        if not ctx.templar.truth(cond):
            msg = args.get("fail_msg") or args.get("msg") or "Assertion failed"
            return ModuleResult(failed=True, msg=str(msg), data={"assertion": cond, "evaluated_to": False})
    quiet = boolean(args.get("quiet", False), "quiet")
    return ModuleResult(msg="" if quiet else str(args.get("success_msg") or "All assertions passed"))


@module("fail", args={"msg"}, free_form="msg", remote=False)
def fail(ctx: ModuleContext, args: dict[str, Any]) -> ModuleResult:
    return ModuleResult(failed=True, msg=str(args.get("msg") or "Failed as requested from task"))
