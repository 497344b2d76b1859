"""What the engine refuses before running: every template feature infprov's own playbooks do not use.

The engine runs `server.yml`, `bench.yml` and `bundle.yml` only; a template (in a playbook, the inventory or
-e) may use exactly what those use, and anything else is refused in one line that names it and points at
ansible-core, which runs every other playbook (`infprov play FILE`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jinja2
import jinja2.nodes as nodes

from infprov.playbooks.filters import FILTERS, TESTS

USE_ANSIBLE = "run it with ansible-core instead: `infprov play FILE` (without `--engine infprov`)"

# Jinja's syntax tree nodes the playbooks use: text, `{{ }}`, `{% for %}`, names, literals, lists, `.x`,
# `[x]`, filters and tests, method calls (METHODS), `a if c else b`, comparisons (`==`, `!=`, `in`, ...),
# `and`/`or`/`not`, `~` and `-`. `{% raw %}` leaves no node of its own.
_NODES: dict[type[nodes.Node], str] = {
    nodes.Template: "", nodes.Output: "", nodes.TemplateData: "", nodes.For: "", nodes.Name: "",
    nodes.Const: "", nodes.List: "", nodes.Getattr: "", nodes.Getitem: "", nodes.Filter: "", nodes.Test: "",
    nodes.Call: "", nodes.CondExpr: "", nodes.Compare: "", nodes.Operand: "", nodes.And: "", nodes.Or: "",
    nodes.Not: "", nodes.Concat: "", nodes.Sub: "",
}  # fmt: skip
# what the refusal calls the nodes most likely met
_WORDS = {
    "If": "{% if %}", "Assign": "{% set %}", "AssignBlock": "{% set %}", "Macro": "{% macro %}",
    "CallBlock": "{% call %}", "Block": "{% block %}", "Include": "{% include %}", "Import": "{% import %}",
    "FromImport": "{% from ... import %}", "Extends": "{% extends %}", "FilterBlock": "{% filter %}",
    "With": "{% with %}", "Add": "`+`", "Mul": "`*`", "Div": "`/`", "FloorDiv": "`//`", "Mod": "`%`",
    "Pow": "`**`", "Neg": "unary `-`", "Pos": "unary `+`", "Dict": "a dict literal", "Tuple": "a tuple",
    "Slice": "a slice", "Keyword": "keyword arguments",
}  # fmt: skip
METHODS = frozenset({"split"})  # `(instance_type | default(...)).split('.')`

# Variables ansible-core defines and this engine does not: a template that reads one is refused rather
# than failing (or differing) at run time.
MISSING_MAGIC = frozenset(
    {
        "hostvars", "play_hosts", "ansible_play_hosts", "ansible_play_batch", "ansible_play_hosts_all",
        "ansible_play_name", "ansible_run_tags", "ansible_skip_tags", "ansible_version", "ansible_facts",
        "ansible_diff_mode", "ansible_loop_var", "ansible_managed", "omit", "inventory_dir", "inventory_file",
        "role_path", "role_name", "role_names", "ansible_role_names", "ansible_search_path", "ansible_config_file",
        "ansible_forks", "ansible_verbosity", "ansible_inventory_sources", "ansible_limit", "ansible_local",
        "ansible_loop", "ansible_collection_name", "ansible_failed_task", "ansible_failed_result", "ansible_env",
        "ansible_date_time", "ansible_hostname", "ansible_fqdn", "ansible_distribution", "ansible_os_family",
        "ansible_user_id", "ansible_user_dir", "ansible_default_ipv4", "ansible_architecture",
    }
)  # fmt: skip


def has_template(value: str) -> bool:
    return "{{" in value or "{%" in value or "{#" in value


def template_problem(source: Any, *, expression: bool = False) -> str | None:
    """Why this template (or bare conditional expression) is not one infprov's engine runs, or None: a syntax
    error ("template syntax error: ...") or a phrase naming the feature it does not support."""
    if not isinstance(source, str):
        return None
    if expression and not has_template(source):
        source = "{{ " + source + " }}"
    elif not has_template(source):
        return None
    try:
        tree = jinja2.Environment().parse(source)
    except jinja2.TemplateSyntaxError as exc:
        return f"template syntax error: {exc.message}"
    return tree_problem(tree)


def tree_problem(tree: nodes.Node) -> str | None:
    """The first thing in a parsed template that infprov's engine does not run (a phrase naming it), or None."""
    for node in _walk(tree):
        kind = type(node)
        if kind not in _NODES:
            return _WORDS.get(kind.__name__, f"Jinja's {kind.__name__}")
        if isinstance(node, nodes.Filter | nodes.Test):
            what, known = ("filter", FILTERS) if isinstance(node, nodes.Filter) else ("test", TESTS)
            if node.name not in known:
                return f"{what} {node.name!r}"
            if node.kwargs or node.dyn_args or node.dyn_kwargs:
                return f"{what} {node.name!r} with keyword arguments"
        elif isinstance(node, nodes.Call):
            if not isinstance(node.node, nodes.Getattr):
                name = node.node.name if isinstance(node.node, nodes.Name) else "a call"
                return f"function {name}()"
            if node.node.attr not in METHODS or node.kwargs or node.dyn_args or node.dyn_kwargs:
                return f"method .{node.node.attr}()"
        elif isinstance(node, nodes.For):
            if node.else_ or node.test is not None or node.recursive:
                return "{% for %} with `else`, `if` or `recursive`"
        elif isinstance(node, nodes.Name) and node.ctx == "load":
            if node.name in MISSING_MAGIC:
                return f"variable {node.name!r}"
            if node.name == "loop":
                return "the `loop` variable of {% for %}"
    return None


def _walk(node: nodes.Node) -> Iterator[nodes.Node]:
    yield node
    for child in node.iter_child_nodes():
        yield from _walk(child)


def strings(value: Any) -> Iterator[str]:
    """Every string inside a value (dict values and keys, list items)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from strings(k)
            yield from strings(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from strings(v)
