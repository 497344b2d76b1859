"""Playbooks: run one task on one host (conditions, loops); `parsing` reads the playbook first."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infprov.playbooks.connection import Connection
from infprov.playbooks.errors import CommandTimeout, HostUnreachable, TemplateError
from infprov.playbooks.modules import MODULES, ModuleArgError, ModuleContext, ModuleResult, ModuleSpec
from infprov.playbooks.parsing import Play, Playbook, Task, _as_list, load_playbook, parse_extra_vars
from infprov.playbooks.templating import LazyVars, Templar

# the reading side, for the modules that import it from here (runner, the CLI)
__all__ = ["Play", "Playbook", "Task", "TaskOutcome", "load_playbook", "parse_extra_vars", "run_task"]


# ---------------------------------------------------------------- running one task on one host
@dataclass
class TaskOutcome:
    """What a task did on one host, after its loop and changed_when/failed_when."""

    status: str  # ok, changed, failed, skipped
    result: ModuleResult
    registered: dict[str, Any]
    items: int = 0


def _layers(*maps: Mapping[str, Any] | None) -> LazyVars:
    return LazyVars([m for m in maps if m])


def run_task(
    task: Task,
    *,
    host_name: str,
    variables: list[Mapping[str, Any]],
    conn: Connection,
    check: bool,
    base_dir: Path,
) -> TaskOutcome:
    """Run a task for one host. `variables` are layers, highest precedence first.

    Raises HostUnreachable when the host cannot be reached; every other problem is a failed outcome.
    """
    kw = task.keywords
    # extra vars, then registered values, then the task's vars, then play vars... (Ansible's order)
    layers = [*variables[:2], dict(kw.get("vars") or {}), *variables[2:]] if kw.get("vars") else list(variables)
    templar = Templar(_layers(*layers))
    try:
        loop = kw.get("loop")
        if loop is None:
            result = _run_single(task, templar, layers, host_name, conn, check, base_dir)
            return _finish(result, None)
        items = templar.template(loop)
        if not isinstance(items, list):
            return _finish(ModuleResult(failed=True, msg=f"loop must be a list, got {type(items).__name__}"), None)
    except TemplateError as exc:
        return _finish(ModuleResult(failed=True, msg=str(exc)), None)
    results: list[ModuleResult] = []
    for item in items:
        item_vars: dict[str, Any] = {"item": item}
        item_layers = [item_vars, *layers] if not layers else [layers[0], item_vars, *layers[1:]]
        item_templar = Templar(_layers(*item_layers))
        try:
            one = _run_single(task, item_templar, item_layers, host_name, conn, check, base_dir)
        except TemplateError as exc:
            one = ModuleResult(failed=True, msg=str(exc))
        one.data["item"] = item
        results.append(one)
    return _finish(_merge_items(results), results)


def _merge_items(results: list[ModuleResult]) -> ModuleResult:
    if not results:  # Ansible: an empty loop is skipped
        return ModuleResult(skipped=True, msg="No items in the list", data={"skipped_reason": "No items in the list"})
    failed = [r for r in results if r.failed]
    merged = ModuleResult(
        changed=any(r.changed for r in results),
        failed=bool(failed),
        skipped=all(r.skipped for r in results),
        msg="One or more items failed" if failed else "All items completed",
    )
    if failed:
        merged.command, merged.rc, merged.tail = failed[0].command, failed[0].rc, failed[0].tail
    return merged


def _finish(result: ModuleResult, items: list[ModuleResult] | None) -> TaskOutcome:
    registered = result.as_var()
    if items is not None:
        registered["results"] = [r.as_var() for r in items]
    return TaskOutcome(result.status, result, registered, items=len(items or []))


def _run_single(
    task: Task,
    templar: Templar,
    layers: list[Mapping[str, Any]],
    host_name: str,
    conn: Connection,
    check: bool,
    base_dir: Path,
) -> ModuleResult:
    kw = task.keywords
    for cond in _as_list(kw.get("when")):
        try:
            holds = templar.truth(cond)
        except TemplateError as exc:
            raise TemplateError(f"when: {exc}") from None
        if not holds:
            return ModuleResult(skipped=True, msg="Conditional result was False", data={"false_condition": cond})
    spec = MODULES[task.module]
    # a conditional argument (assert's `that`) is evaluated as `when` is, so its `{{ }}` is not filled in first
    args = templar.template({k: v for k, v in task.args.items() if k not in spec.conditions})
    args.update({k: v for k, v in task.args.items() if k in spec.conditions})
    ctx = ModuleContext(
        conn=conn,
        host_name=host_name,
        check=check,
        base_dir=base_dir,
        templar=templar,
        timeout=float(templar.template(kw["timeout"])) if kw.get("timeout") else None,
    )
    result = _call(spec, ctx, args)
    return _apply_conditions(task, result, templar, layers, kw.get("register"))


def _call(spec: ModuleSpec, ctx: ModuleContext, args: dict[str, Any]) -> ModuleResult:
    try:
        return spec.run(ctx, args)
    except ModuleArgError as exc:
        return ModuleResult(failed=True, msg=f"{spec.name}: {exc}")
    except TemplateError as exc:
        return ModuleResult(failed=True, msg=str(exc))
    except CommandTimeout as exc:
        return ModuleResult(failed=True, msg=str(exc))
    except HostUnreachable:
        raise
    except Exception as exc:  # a bug in a module fails this task on this host, never the whole run
        return ModuleResult(failed=True, msg=f"internal error in module {spec.name}: {type(exc).__name__}: {exc}")


def _apply_conditions(
    task: Task, result: ModuleResult, templar: Templar, layers: list[Mapping[str, Any]], register: str | None
) -> ModuleResult:
    kw = task.keywords
    if "changed_when" not in kw and "failed_when" not in kw:
        return result
    scope = {register: result.as_var()} if register else {}
    judge = Templar(_layers(*layers[:1], scope, *layers[1:])) if scope else templar
    try:
        if "changed_when" in kw and not result.skipped:
            result.changed = all(judge.truth(c) for c in _as_list(kw["changed_when"]))
            scope_update = result.as_var()
            if register:
                scope[register] = scope_update
        if "failed_when" in kw and not result.skipped:
            # a list of conditions is ANDed, as Ansible does for failed_when (and changed_when, when)
            should_fail = all(judge.truth(c) for c in _as_list(kw["failed_when"]))
            if should_fail and not result.failed:
                result.failed = True
                result.msg = result.msg or "failed_when condition was true"
            elif not should_fail and result.failed:
                result.failed = False
    except TemplateError as exc:
        # as ansible-core: the task fails, and keeps what the module said of `changed`
        return ModuleResult(changed=result.changed, failed=True, msg=f"changed_when/failed_when: {exc}",
                            data=result.data)
    return result
