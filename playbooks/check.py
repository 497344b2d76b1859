"""What the engine refuses before running: template features, filters, tests, lookups and variables it lacks."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jinja2
import jinja2.nodes as nodes

from infprov.playbooks.templating import LOOKUPS, has_template, template_env

# Jinja's own globals that behave the same under ansible-core; the rest (lipsum, cycler, joiner) and
# Ansible's (now, undef) are refused.
_GLOBALS = frozenset({"range", "dict", "namespace", "lookup", "query", "q", "omit"})

# Variables ansible-core defines that this engine does not: a template that reads one is refused rather
# than failing (or differing) at run time.
MISSING_MAGIC = frozenset(
    {
        "inventory_dir", "inventory_file", "role_path", "role_name", "role_names", "ansible_role_names",
        "ansible_parent_role_names", "ansible_parent_role_paths", "ansible_role_name", "ansible_search_path",
        "ansible_config_file", "ansible_forks", "ansible_verbosity", "ansible_inventory_sources", "ansible_limit",
        "ansible_local", "ansible_loop", "ansible_collection_name", "ansible_dependent_role_names",
        "ansible_play_role_names", "ansible_play_batch_all", "ansible_failed_task", "ansible_failed_result",
        "ansible_env", "ansible_date_time", "ansible_hostname", "ansible_fqdn", "ansible_distribution",
        "ansible_os_family", "ansible_user_id", "ansible_user_dir", "ansible_default_ipv4", "ansible_architecture",
    }
)  # fmt: skip

# Tags Ansible gives a meaning of its own when used on a task
SPECIAL_TAGS = frozenset({"always", "never", "all", "tagged", "untagged"})


def template_problem(source: str, *, expression: bool = False) -> str | None:
    """Why this template (or bare conditional expression) cannot run as ansible-core runs it, or None."""
    if not isinstance(source, str):
        return None
    if expression and not has_template(source):
        source = "{{ " + source + " }}"
    elif not has_template(source):
        return None
    env = template_env()
    try:
        tree = env.parse(source)
    except jinja2.TemplateSyntaxError as exc:
        return f"template syntax error: {exc.message}"
    return tree_problem(tree, env)


def tree_problem(tree: nodes.Node, env: jinja2.Environment) -> str | None:
    called = {id(n.node) for n in _walk(tree) if isinstance(n, nodes.Call)}
    for node in _walk(tree):
        if isinstance(node, nodes.Include | nodes.Import | nodes.FromImport | nodes.Extends):
            word = type(node).__name__.lower().replace("fromimport", "from ... import")
            return f"`{{% {word} %}}` is not supported (templates are rendered alone)"
        if isinstance(node, nodes.Macro | nodes.CallBlock | nodes.Block):
            word = {"Macro": "macro", "CallBlock": "call", "Block": "block"}[type(node).__name__]
            return f"`{{% {word} %}}` is not supported"
        if isinstance(node, nodes.Filter) and node.name not in env.filters:
            return f"filter {node.name!r} is not supported"
        if isinstance(node, nodes.Test) and node.name not in env.tests:
            return f"test {node.name!r} is not supported"
        if isinstance(node, nodes.FilterBlock):
            for f in _walk(node.filter):
                if isinstance(f, nodes.Filter) and f.name not in env.filters:
                    return f"filter {f.name!r} is not supported"
        if isinstance(node, nodes.Call) and isinstance(node.node, nodes.Name):
            name = node.node.name
            if name in ("lookup", "query", "q"):
                first = node.args[0] if node.args else None
                if not isinstance(first, nodes.Const) or not isinstance(first.value, str):
                    return f"{name}() with a plugin name that is not a literal string"
                plugin = first.value.removeprefix("ansible.builtin.")
                if plugin not in LOOKUPS:
                    return f"lookup plugin {first.value!r} is not supported (only {', '.join(LOOKUPS)})"
            elif name not in _GLOBALS:
                return f"function {name}() is not supported"
        if isinstance(node, nodes.Name) and node.ctx == "load" and node.name in MISSING_MAGIC:
            return f"variable {node.name!r} is not provided by infprov's engine (no facts, roles or inventory files)"
        if (isinstance(node, nodes.Name) and node.ctx == "load" and id(node) not in called
                and callable(env.globals.get(node.name))):
            # a function not called (`lipsum.__doc__`, `range.__name__`): refused as a call to it would be
            if node.name in _GLOBALS:
                return f"function {node.name}() is supported only as a call, not as a value"
            return f"function {node.name}() is not supported"
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
