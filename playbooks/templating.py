"""Jinja2 as Ansible uses it: lazy variables, native types for lone expressions; only what `check` accepts."""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Iterator, Mapping
from typing import Any

import jinja2
import jinja2.compiler
import jinja2.nativetypes
import jinja2.nodes
import jinja2.runtime
import jinja2.sandbox
import jinja2.utils

from infprov.playbooks import sizecap
from infprov.playbooks.check import tree_problem
from infprov.playbooks.errors import TemplateError
from infprov.playbooks.filters import FILTERS, TESTS

_LONE = re.compile(r"\A\{\{(?:(?!\{\{|\}\}|\{%|%\}).)*\}\}\Z", re.S)


class Unsafe(str):
    """Data, never a template: text from a host (command output, a file, a URL) and every templating result.

    Registered results keep it, as Ansible's unsafe strings do, so output that happens to contain `{{`
    (a docker --format string, a log line, an attacker's file) is data, not a template. Whatever a
    template produces is marked too, so a value derived from host output by concatenation or a
    filter (`"x {{ r.stdout }}"`, `| trim`) is never rendered a second time: only text written in the
    playbook, the inventory or `-e` is ever a template
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


class _Undefined(jinja2.StrictUndefined):
    """StrictUndefined whose attributes and items are undefined too, so `x.y | default(z)` works (as Ansible)."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return self

    def __getitem__(self, key: Any) -> Any:
        return self


def _finalize(value: Any) -> Any:
    """None renders as an empty string inside text (as Ansible renders it); a value over the size cap is
    refused before it is made text."""
    return "" if value is None else sizecap.output(value)


def _setup(env: jinja2.Environment) -> jinja2.Environment:
    """Only the filters and tests infprov's playbooks use (each measured by the size caps), no globals."""
    env.filters.clear()
    env.tests.clear()
    env.globals.clear()
    env.filters.update({name: sizecap.guarded(name, fn) for name, fn in FILTERS.items()})
    env.tests.update({name: sizecap.guarded(name, fn, test=True) for name, fn in TESTS.items()})
    return env


class _Text(str):
    """Text an expression produced at run time (a variable, a filter's result): never parsed as a literal."""


def _mark_text(value: Any) -> Any:
    sizecap.output(value)
    return _Text(value) if type(value) is str else value


def _native_concat(parts: Any) -> Any:
    """A lone expression keeps its value's type. Text it produced stays text, as in ansible-core 2.19 (a
    JSON string from to_nice_json is not turned into a dict); only constants Jinja folded into their repr
    at compile time are read back as the values they were."""
    items = list(parts)
    if len(items) == 1 and isinstance(items[0], str) and type(items[0]) is not str:
        return str(items[0]) if isinstance(items[0], _Text) else items[0]
    return jinja2.nativetypes.native_concat(items)


@functools.lru_cache(maxsize=4096)
def _is_lone(source: str) -> bool:
    """One `{{ expression }}` and nothing else, even when the expression holds `}}` (a dict literal)."""
    if not (source.startswith("{{") and source.endswith("}}")):
        return False
    try:
        body = _TEXT_ENV.parse(source).body
    except jinja2.TemplateSyntaxError:
        return False
    return (
        len(body) == 1
        and isinstance(body[0], jinja2.nodes.Output)
        and len(body[0].nodes) == 1
        and not isinstance(body[0].nodes[0], jinja2.nodes.TemplateData)
    )


@functools.lru_cache(maxsize=1024)
def _lone_name(source: str) -> str | None:
    """The variable of a template that is exactly `{{ name }}`, else None."""
    if not (source.startswith("{{") and source.endswith("}}")):
        return None
    try:
        body = _TEXT_ENV.parse(source).body
    except jinja2.TemplateSyntaxError:
        return None
    if len(body) != 1 or not isinstance(body[0], jinja2.nodes.Output) or len(body[0].nodes) != 1:
        return None
    node = body[0].nodes[0]
    return node.name if isinstance(node, jinja2.nodes.Name) else None


def _brief(value: Any, width: int = 80) -> str:
    """A value for a one-line message: its repr, cut in the middle when long."""
    text = repr(str(value))
    return text if len(text) <= width else text[: width // 2 - 2] + " ... " + text[-(width // 2 - 3):]


class _CappedCode(jinja2.compiler.CodeGenerator):
    """Template code whose `~` and literal output go through the size caps (`sizecap`)."""

    @jinja2.compiler.optimizeconst
    def visit_Concat(self, node: jinja2.nodes.Concat, frame: jinja2.compiler.Frame) -> None:  # noqa: N802
        self.write("environment.capped_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")

    def _output_const_repr(self, group: Any) -> str:
        return f"environment.metered_const({super()._output_const_repr(group)})"


class _CappedNativeCode(_CappedCode, jinja2.nativetypes.NativeCodeGenerator):
    """The native code generator with the same caps; a string constant stays text (`{{ '42' }}` is '42', not 42,
    as in ansible-core 2.19), other constants keep their type (`{{ 42 }}`, `{{ [1, 2] }}`)."""

    def _output_const_repr(self, group: Any) -> str:
        items = list(group)
        if len(items) == 1 and isinstance(items[0], str):
            return f"environment.metered_const(environment.const_text({items[0]!r}))"
        return super()._output_const_repr(items)


class _Sandbox(jinja2.sandbox.SandboxedEnvironment):
    """Jinja's sandbox (no `__globals__`, no unsafe attributes), and a cap on what a template may build: `~`,
    method calls, filters and output are measured (`sizecap`). Operators that multiply (`*`, `%`, ...) never
    reach it: `check` refuses them when the template is compiled."""

    code_generator_class = _CappedCode
    capped_concat = staticmethod(sizecap.concat)
    metered_const = staticmethod(sizecap.metered_const)

    def call(self, context: jinja2.runtime.Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        args, kwargs = sizecap.before_call(obj, args, kwargs)
        return sizecap.built(super().call(context, obj, *args, **kwargs), "a call")


class _NativeSandbox(_Sandbox):
    """NativeEnvironment's typed results inside the capped sandbox."""

    code_generator_class = _CappedNativeCode
    const_text = staticmethod(lambda text: _Text(text))
    concat = staticmethod(lambda parts: _native_concat(parts))


_TEXT_ENV = _setup(_Sandbox(undefined=_Undefined, keep_trailing_newline=True, finalize=_finalize))
_NATIVE_ENV = _setup(_NativeSandbox(undefined=_Undefined, finalize=_mark_text))


@functools.lru_cache(maxsize=4096)
def _compile(source: str, native: bool) -> jinja2.Template:
    """The compiled template, once `check` found nothing in it the engine does not run (a template from the
    inventory or -e meets the same rule as the playbook's own, here and in the run's pre-check)."""
    env = _NATIVE_ENV if native else _TEXT_ENV
    problem = tree_problem(env.parse(source))
    if problem:
        raise TemplateError(f"{problem} is not supported by infprov's engine (in {_brief(source)})")
    return env.from_string(source)


# ---------------------------------------------------------------- lazy variables
_resolving = threading.local()


class LazyVars(Mapping[str, Any]):
    """Variables whose string values are templated when read, so `b: "{{ a }}/x"` sees `a`."""

    def __init__(self, layers: list[Mapping[str, Any]]) -> None:
        self._layers = layers  # highest precedence first
        self._globals = _TEXT_ENV.globals

    def _raw(self, key: str) -> Any:
        for layer in self._layers:
            if key in layer:
                return layer[key]
        if key in self._globals:
            return self._globals[key]
        raise KeyError(key)

    def __getitem__(self, key: str) -> Any:
        value = self._raw(key)
        if not _needs_templating(value):
            return value
        active: set[str] = getattr(_resolving, "keys", None) or set()
        if key in active:
            raise TemplateError(f"recursive loop detected in variable {key!r}")
        _resolving.keys = active | {key}
        try:
            return Templar(self).template(value)
        finally:
            _resolving.keys = active

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
        native = _LONE.match(source) is not None or _is_lone(source)
        try:
            with sizecap.metered():
                return self._render(source, native)
        except sizecap.SizeCapError as exc:  # the innermost template names itself; outer ones pass it on
            raise TemplateError(f"{exc} (in {_brief(source)})") from None

    def _render(self, source: str, native: bool) -> Any:
        try:
            tmpl = _compile(source, native)
            ctx = tmpl.new_context(self.vars, shared=True)  # type: ignore[arg-type]
            parts = tmpl.root_render_func(ctx)
            if not native:
                return Unsafe("".join(str(p) for p in parts))
            value = _native_concat(parts)
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

    def evaluate(self, expr: Any) -> Any:
        """A bare expression as `when`/`until` write it (no braces).

        A conditional wholly in `{{ }}` is ansible-core 2.19's indirection: `{{ flag }}` gives flag's value
        (a boolean stays one), and `{{ cond }}` where cond is an expression written as text in the playbook,
        its vars, the inventory or -e is that expression. Text a template produced (host output, `~`, a
        filter) is never compiled as an expression: it is data, and 2.19 refuses it as untrusted.
        """
        if isinstance(expr, bool | int | float) or expr is None:
            return expr
        if isinstance(expr, Unsafe):  # data (host output, a templating result) is a value, never an expression
            raise TemplateError(
                f"conditional {_brief(expr)} is data (not written in the playbook); it cannot be evaluated"
            )
        text = str(expr).strip()
        if not text:
            raise TemplateError("Empty conditional expressions are not allowed.")
        if not has_template(text):
            return self._string("{{ " + text + " }}")
        expression = self._written_expression(text)
        if expression is not None:
            return self._string("{{ " + expression + " }}")
        value = self.template(text)
        if isinstance(value, str):
            raise TemplateError(
                f"conditional {_brief(text)} gave the text {_brief(value)}, which is data, not an expression "
                "(ansible-core 2.19: untrusted); write the test itself, e.g. `r.stdout == 'yes'`"
            )
        return value

    def _written_expression(self, text: str) -> str | None:
        """For `{{ name }}` (through `a: "{{ b }}"` chains): the expression text a variable holds as written;
        None when the value is not such text."""
        seen: set[str] = set()
        while True:
            name = _lone_name(text)
            if name is None or name in seen:
                return None
            seen.add(name)
            try:
                raw = self.vars._raw(name)
            except KeyError:
                return None
            if not isinstance(raw, str) or isinstance(raw, Unsafe) or not raw.strip():
                return None
            if not has_template(raw):
                return raw.strip()
            text = raw.strip()

    def truth(self, expr: Any) -> bool:
        """A conditional (when, until, changed_when, failed_when, assert): its result must be a boolean, as in
        ansible-core 2.19; a string, number, list or None is an error rather than a guess."""
        if isinstance(expr, bool):
            return expr
        if not isinstance(expr, str):
            raise TemplateError(f"Conditional expressions must be strings, not {type(expr).__name__} ({expr!r}).")
        value = self.evaluate(expr)
        if isinstance(value, bool):
            return value
        kind = {"Unsafe": "str", "NoneType": "NoneType"}.get(type(value).__name__, type(value).__name__)
        raise TemplateError(
            f"Conditional result ({bool(value)}) was derived from value of type {kind!r} ({str(expr)!r}). "
            "Conditionals must have a boolean result."
        )
