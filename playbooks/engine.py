"""Playbooks: run one task on one host (conditions, loops, retries); `parsing` reads the playbook first."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infprov.playbooks.connection import Connection
from infprov.playbooks.errors import CommandTimeout, HostUnreachable, TemplateError
from infprov.playbooks.modules import MODULES, ModuleArgError, ModuleContext, ModuleResult, ModuleSpec
from infprov.playbooks.parsing import Play, Playbook, Task, _as_list, load_playbook, parse_extra_vars
from infprov.playbooks.templating import OMIT, LazyVars, Templar

# the reading side, for the modules that import it from here (runner, the CLI)
__all__ = ["Play", "Playbook", "Task", "TaskOutcome", "load_playbook", "parse_extra_vars", "run_task"]


# ---------------------------------------------------------------- running one task on one host
@dataclass
class TaskOutcome:
    """What a task did on one host, after loops, retries and changed_when/failed_when."""

    status: str  # ok, changed, failed, skipped
    result: ModuleResult
    registered: dict[str, Any]
    ignored: bool = False
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
    play: Play,
    base_dir: Path,
    sleep: Callable[[float], None] = time.sleep,
) -> TaskOutcome:
    """Run a task for one host. `variables` are layers, highest precedence first.

    Raises HostUnreachable when the host cannot be reached; every other problem is a failed outcome.
    """
    kw = task.keywords
    # extra vars, then set_fact/registered values, then the task's vars, then play vars... (Ansible's order)
    layers = [*variables[:2], dict(kw.get("vars") or {}), *variables[2:]] if kw.get("vars") else list(variables)
    templar = Templar(_layers(*layers))
    try:
        loop = kw.get("loop", kw.get("with_items"))
        if loop is None:
            result = _run_single(task, templar, layers, host_name, conn, check, play, base_dir, sleep)
            return _finish(task, result, None)
        items = templar.template(loop)
        if "with_items" in kw:
            if isinstance(items, str):  # with_items: "text" is one item
                items = [items]
            if isinstance(items, list):
                items = [y for x in items for y in (x if isinstance(x, list) else [x])]
        if not isinstance(items, list):
            return _finish(
                task, ModuleResult(failed=True, msg=f"loop must be a list, got {type(items).__name__}"), None
            )
    except TemplateError as exc:
        return _finish(task, ModuleResult(failed=True, msg=str(exc)), None)
    control = kw.get("loop_control") or {}
    loop_var = str(control.get("loop_var", "item"))
    results: list[ModuleResult] = []
    loop_facts: dict[str, Any] = {}  # set_fact in a loop: each item sees the facts set by the ones before
    for index, item in enumerate(items):
        item_vars: dict[str, Any] = {loop_var: item, "ansible_loop_var": loop_var}
        if control.get("index_var"):
            item_vars[str(control["index_var"])] = index
        item_layers = [item_vars, *layers] if not layers else [layers[0], item_vars, loop_facts, *layers[1:]]
        item_templar = Templar(_layers(*item_layers))
        try:
            one = _run_single(task, item_templar, item_layers, host_name, conn, check, play, base_dir, sleep)
        except TemplateError as exc:
            one = ModuleResult(failed=True, msg=str(exc))
        one.data[loop_var] = item
        if one.facts and not one.failed:
            loop_facts.update(one.facts)
        results.append(one)
        if control.get("pause"):
            sleep(float(control["pause"]))
    merged = _merge_items(results)
    merged.facts = dict(loop_facts) or None
    return _finish(task, merged, results)


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


def _finish(task: Task, result: ModuleResult, items: list[ModuleResult] | None) -> TaskOutcome:
    registered = result.as_var()
    if items is not None:
        registered["results"] = [r.as_var() for r in items]
    ignored = result.failed and _truthy_keyword(task.keywords.get("ignore_errors"))
    return TaskOutcome(result.status, result, registered, ignored=ignored, items=len(items or []))


def _keyword_truth(templar: Templar, value: Any) -> bool:
    """A boolean keyword (become): a YAML bool, Ansible's boolean strings ("yes", "true", "1", "on"), or a
    template; a plain string is not an expression to evaluate."""
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, str) and "{{" not in value and "{%" not in value:
        return _truthy_keyword(value)
    return _truthy_keyword(templar.template(value))


def _truthy_keyword(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("yes", "true", "1", "on")
    return bool(value)


def _run_single(
    task: Task,
    templar: Templar,
    layers: list[Mapping[str, Any]],
    host_name: str,
    conn: Connection,
    check: bool,
    play: Play,
    base_dir: Path,
    sleep: Callable[[float], None],
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
    args = _drop_omit(templar.template({k: v for k, v in task.args.items() if k not in spec.conditions}))
    args.update({k: v for k, v in task.args.items() if k in spec.conditions})
    become = kw.get("become", play.become)
    become_user = kw.get("become_user", play.become_user) or "root"
    env = {**play.environment, **(kw.get("environment") or {})}
    task_check = check
    if "check_mode" in kw:
        task_check = _truthy_keyword(templar.template(kw["check_mode"]))
    ctx = ModuleContext(
        conn=conn,
        host_name=host_name,
        check=task_check,
        become=_keyword_truth(templar, become),
        become_user=str(templar.template(become_user)),
        environment={str(k): str(v) for k, v in templar.template(env).items()},
        base_dir=base_dir,
        templar=templar,
        timeout=float(templar.template(kw["timeout"])) if kw.get("timeout") else None,
    )
    until = kw.get("until")
    # Ansible's count: one run plus `retries` (3 when only `until` is given); `retries` alone retries until
    # the task does not fail; `attempts` is the run's number, and retries - 1 ... as Ansible reports when all fail
    total = 1
    if kw.get("retries") is not None:
        total += max(0, int(templar.template(kw["retries"])))
    elif until is not None:
        total += 3
    delay = float(templar.template(kw.get("delay", 5)))
    register = kw.get("register")
    attempt = 0
    while True:
        attempt += 1
        result = _call(spec, ctx, args)
        if total > 1:
            result.data["attempts"] = attempt
        result = _apply_conditions(task, result, templar, layers, register)
        if total <= 1 or result.skipped:
            return result
        check_vars = {register: result.as_var()} if register else {}
        try:
            judge = Templar(_layers(*layers[:1], check_vars, *layers[1:]))
            done = judge.truth(until) if until is not None else not result.failed
        except TemplateError as exc:
            return ModuleResult(failed=True, msg=f"until: {exc}")
        if done:
            return result
        if attempt >= total:
            result.failed = True
            result.data["attempts"] = total - 1
            result.msg = f"still not done after {attempt} attempts: {result.msg}".rstrip(": ")
            return result
        sleep(delay)


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


def _drop_omit(args: Any) -> Any:
    if isinstance(args, dict):
        return {k: _drop_omit(v) for k, v in args.items() if v != OMIT}
    if isinstance(args, list):
        return [_drop_omit(v) for v in args if v != OMIT]
    return args
