"""Jinja2 as Ansible uses it: lazy variables, native types for lone expressions, Ansible's common filters."""

from __future__ import annotations

import base64
import functools
import json
import os
import re
import secrets
import shlex
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jinja2
import jinja2.nativetypes
import jinja2.sandbox
import yaml

from infprov.inventory.yamlsrc import load_text, plain
from infprov.playbooks.errors import TemplateError

OMIT = f"__omit_place_holder__{secrets.token_hex(8)}"
_LONE = re.compile(r"\A\{\{(?:(?!\{\{|\}\}|\{%|%\}).)*\}\}\Z", re.S)


class Unsafe(str):
    """Data, never a template: text from a host (command output, a file, a URL) and every templating result.

    Registered results keep it, as Ansible's unsafe strings do, so output that happens to contain `{{`
    (a docker --format string, a log line, an attacker's file) is data, not a template. Whatever a
    template produces is marked too, so a value derived from host output by concatenation or a
    filter (`"x {{ r.stdout }}"`, `| trim`) and stored by `set_fact` is never rendered a second time:
    only text written in the playbook, its vars files, the inventory or `-e` is ever a template
    (ansible-core 2.19's rule: templating results are not trusted as templates).
    """


def unsafe(value: Any) -> Any:
    """Mark every string inside value (dicts and lists recursively) as Unsafe."""
    if isinstance(value, str):
        return value if isinstance(value, Unsafe) else Unsafe(value)
    if isinstance(value, Mapping):
        return {k: unsafe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [unsafe(v) for v in value]
    return value


def has_template(value: str) -> bool:
    if isinstance(value, Unsafe):
        return False
    return "{{" in value or "{%" in value or "{#" in value


# ---------------------------------------------------------------- filters and tests (Ansible's usual ones)
def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value.strip().lower() in ("yes", "on", "1", "true", "y", "t")
    return bool(value)


def _mandatory(value: Any, msg: str | None = None) -> Any:
    if isinstance(value, jinja2.Undefined):
        raise TemplateError(msg or "mandatory variable is not defined")
    return value


def _regex_search(value: str, pattern: str, *groups: str, ignorecase: bool = False) -> Any:
    flags = re.I if ignorecase else 0
    match = re.search(pattern, str(value), flags)
    if match is None:
        return None
    if not groups:
        return match.group(0)
    out = []
    for g in groups:
        g = g.lstrip("\\")
        out.append(match.group(int(g) if g.isdigit() else g))
    return out


def _combine(*dicts: Mapping[str, Any], recursive: bool = False) -> dict[str, Any]:
    def merge(a: dict[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
        for k, v in b.items():
            if recursive and isinstance(v, Mapping) and isinstance(a.get(k), dict):
                a[k] = merge(dict(a[k]), v)
            else:
                a[k] = v
        return a

    out: dict[str, Any] = {}
    for d in dicts:
        out = merge(out, d)
    return out


def _ternary(value: Any, yes: Any, no: Any, none: Any = None) -> Any:
    if value is None and none is not None:
        return none
    return yes if value else no


def _result_failed(r: Any) -> bool:
    return isinstance(r, Mapping) and bool(r.get("failed"))


FILTERS: dict[str, Any] = {
    "bool": _bool,
    "to_json": lambda v, **kw: json.dumps(v, **kw),
    "to_nice_json": lambda v, indent=4: json.dumps(v, indent=indent, sort_keys=True),
    "from_json": json.loads,
    "to_yaml": lambda v: yaml.safe_dump(v, default_flow_style=None),
    "to_nice_yaml": lambda v: yaml.safe_dump(v, default_flow_style=False),
    "from_yaml": lambda v: plain(load_text(str(v))),  # alias bombs in host output are refused
    "regex_replace": lambda v, p, r="", ignorecase=False: re.sub(p, r, str(v), flags=re.I if ignorecase else 0),
    "regex_search": _regex_search,
    "regex_findall": lambda v, p: re.findall(p, str(v)),
    "basename": lambda v: os.path.basename(str(v)),
    "dirname": lambda v: os.path.dirname(str(v)),
    "b64encode": lambda v: base64.b64encode(str(v).encode()).decode(),
    "b64decode": lambda v: base64.b64decode(str(v)).decode(),
    "quote": lambda v: shlex.quote(str(v)),
    "mandatory": _mandatory,
    "ternary": _ternary,
    "combine": _combine,
    "dict2items": lambda d: [{"key": k, "value": v} for k, v in d.items()],
    "items2dict": lambda items: {i["key"]: i["value"] for i in items},
    "flatten": lambda v: [y for x in v for y in (x if isinstance(x, list) else [x])],
    "type_debug": lambda v: type(v).__name__,
}

TESTS: dict[str, Any] = {
    "failed": _result_failed,
    "failure": _result_failed,
    "succeeded": lambda r: not _result_failed(r),
    "success": lambda r: not _result_failed(r),
    "changed": lambda r: isinstance(r, Mapping) and bool(r.get("changed")),
    "skipped": lambda r: isinstance(r, Mapping) and bool(r.get("skipped")),
    "match": lambda v, p: re.match(p, str(v)) is not None,
    "search": lambda v, p: re.search(p, str(v)) is not None,
    "regex": lambda v, p: re.search(p, str(v)) is not None,
}


# Lookups read the controller's files and environment (INFPROV_HOME holds private keys), so only
# templates written in the playbook itself (its tasks, vars and vars files) may call them; a template
# that came from the inventory or from -e may not. Data (host output) is never a template at all.
_lookups = threading.local()


class _Untrusted(dict[str, Any]):
    """A variable layer whose templates may not call lookups (the inventory's vars, -e values)."""


def untrusted(layer: Mapping[str, Any]) -> Mapping[str, Any]:
    return layer if isinstance(layer, _Untrusted) else _Untrusted(layer)


def _lookup(kind: str, *terms: str, default: Any = None) -> Any:
    """Control-side lookups: `env` and `file` (what a provisioning playbook reads locally)."""
    if getattr(_lookups, "denied", 0):
        raise TemplateError(
            f"lookup({kind!r}) is only allowed in the playbook itself, not in inventory or -e values "
            "(it reads the controller's files and environment)"
        )
    values: list[Any] = []
    for term in terms:
        if kind == "env":
            values.append(os.environ.get(term, default if default is not None else ""))
        elif kind == "file":
            values.append(Path(term).expanduser().read_text().rstrip("\n"))
        else:
            raise TemplateError(f"lookup plugin {kind!r} is not supported (only 'env' and 'file')")
    return ",".join(map(str, values)) if len(values) != 1 else values[0]


def _setup(env: jinja2.Environment) -> jinja2.Environment:
    env.filters.update(FILTERS)
    env.tests.update(TESTS)
    env.globals["lookup"] = _lookup
    env.globals["omit"] = OMIT
    return env


class _NativeSandbox(jinja2.sandbox.SandboxedEnvironment):
    """NativeEnvironment's typed results inside the sandbox (no `__globals__`, no unsafe attributes)."""

    code_generator_class = jinja2.nativetypes.NativeCodeGenerator
    concat = staticmethod(jinja2.nativetypes.native_concat)  # type: ignore[assignment]


_Sandbox = jinja2.sandbox.SandboxedEnvironment
_TEXT_ENV = _setup(_Sandbox(undefined=jinja2.StrictUndefined, keep_trailing_newline=True))
_NATIVE_ENV = _setup(_NativeSandbox(undefined=jinja2.StrictUndefined))
# The template module renders files as Ansible does: trim_blocks on, the file's last newline kept.
_FILE_ENV = _setup(_Sandbox(undefined=jinja2.StrictUndefined, trim_blocks=True, keep_trailing_newline=True))


@functools.lru_cache(maxsize=4096)
def _compile(source: str, native: bool) -> jinja2.Template:
    env = _NATIVE_ENV if native else _TEXT_ENV
    return env.from_string(source)


# ---------------------------------------------------------------- lazy variables
_resolving = threading.local()


class LazyVars(Mapping[str, Any]):
    """Variables whose string values are templated when read, so `b: "{{ a }}/x"` sees `a`."""

    def __init__(self, layers: list[Mapping[str, Any]]) -> None:
        self._layers = layers  # highest precedence first
        self._globals = _TEXT_ENV.globals

    def _raw(self, key: str) -> tuple[Any, bool]:
        """The value and whether its layer is trusted to call lookups."""
        for layer in self._layers:
            if key in layer:
                return layer[key], not isinstance(layer, _Untrusted)
        if key in self._globals:
            return self._globals[key], True
        raise KeyError(key)

    def __getitem__(self, key: str) -> Any:
        value, trusted = self._raw(key)
        if not _needs_templating(value):
            return value
        active: set[str] = getattr(_resolving, "keys", None) or set()
        if key in active:
            raise TemplateError(f"recursive loop detected in variable {key!r}")
        _resolving.keys = active | {key}
        denied = getattr(_lookups, "denied", 0)
        _lookups.denied = denied if trusted else denied + 1
        try:
            return Templar(self).template(value)
        finally:
            _resolving.keys = active
            _lookups.denied = denied

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and (any(key in layer for layer in self._layers) or key in self._globals)

    def __iter__(self) -> Iterator[str]:
        seen: set[str] = set()
        for layer in [*self._layers, self._globals]:
            for key in layer:
                if key not in seen:
                    seen.add(key)
                    yield key

    def __len__(self) -> int:
        return sum(1 for _ in self)


def _needs_templating(value: Any) -> bool:
    if isinstance(value, str):
        return has_template(value)
    if isinstance(value, Mapping):
        return any(_needs_templating(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_needs_templating(v) for v in value)
    return False


class Templar:
    """Templates values against one set of variables."""

    def __init__(self, variables: Mapping[str, Any]) -> None:
        if not isinstance(variables, LazyVars):
            variables = LazyVars([variables])
        self.vars = variables

    def template(self, value: Any) -> Any:
        """Template strings inside value (dicts and lists recursively); a lone `{{ x }}` keeps x's type."""
        if isinstance(value, str):
            return self._string(value) if has_template(value) else value
        if isinstance(value, Mapping):
            return {k: self.template(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.template(v) for v in value]
        return value

    def _string(self, source: str) -> Any:
        lone = _LONE.match(source)
        native = lone is not None
        try:
            tmpl = _compile(source, native)
            ctx = tmpl.new_context(self.vars, shared=True)  # type: ignore[arg-type]
            parts = tmpl.root_render_func(ctx)
            if not native:
                return Unsafe("".join(str(p) for p in parts))
            value = jinja2.nativetypes.native_concat(parts)
            if isinstance(value, jinja2.Undefined):
                value._fail_with_undefined_error()
            return unsafe(value)
        except TemplateError:
            raise
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(f"template syntax error in {source!r}: {exc.message}") from None
        except jinja2.UndefinedError as exc:
            raise TemplateError(f"{exc.message} (in {source!r})") from None
        except jinja2.sandbox.SecurityError as exc:
            raise TemplateError(f"refused by the template sandbox: {exc} (in {source!r})") from None
        except Exception as exc:
            raise TemplateError(f"{type(exc).__name__}: {exc} (in {source!r})") from None

    def render_file(self, source: str, name: str = "template") -> str:
        """Render a template file's text (the `template` module)."""
        try:
            tmpl = _FILE_ENV.from_string(source)
            ctx = tmpl.new_context(self.vars, shared=True)  # type: ignore[arg-type]
            return "".join(str(p) for p in tmpl.root_render_func(ctx))
        except TemplateError:
            raise
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(f"{name}:{exc.lineno}: template syntax error: {exc.message}") from None
        except jinja2.UndefinedError as exc:
            raise TemplateError(f"{name}: {exc.message}") from None
        except jinja2.sandbox.SecurityError as exc:
            raise TemplateError(f"{name}: refused by the template sandbox: {exc}") from None
        except Exception as exc:
            raise TemplateError(f"{name}: {type(exc).__name__}: {exc}") from None

    def evaluate(self, expr: Any) -> Any:
        """A bare expression as `when`/`until` write it (no braces); braces are tolerated like Ansible."""
        if isinstance(expr, bool | int | float) or expr is None:
            return expr
        if isinstance(expr, Unsafe):  # data (host output, a templating result) is a value, never an expression
            return _bool(expr)
        text = str(expr).strip()
        if has_template(text):
            value = self.template(text)
            return value if not isinstance(value, str) else _bool(value)
        return self._string("{{ " + text + " }}")

    def truth(self, expr: Any) -> bool:
        value = self.evaluate(expr)
        if isinstance(value, str):
            return _bool(value)
        return bool(value)
