"""Jinja2 as Ansible uses it: lazy variables, native types for lone expressions, Ansible's common filters."""

from __future__ import annotations

import base64
import functools
import hashlib
import itertools
import json
import math
import os
import posixpath
import re
import secrets
import shlex
import subprocess
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jinja2
import jinja2.nativetypes
import jinja2.nodes
import jinja2.runtime
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


def _flatten(value: Any, levels: int | None = None, skip_nulls: bool = True) -> list[Any]:
    """Every level (or `levels` of them); None, 'None' and 'null' dropped unless skip_nulls=False (as Ansible)."""
    out: list[Any] = []
    for element in value:
        if skip_nulls and element in (None, "None", "null"):
            continue
        if isinstance(element, list | tuple):
            if levels is None:
                out.extend(_flatten(element, skip_nulls=skip_nulls))
            elif levels >= 1:
                out.extend(_flatten(element, levels=int(levels) - 1, skip_nulls=skip_nulls))
            else:
                out.append(element)
        else:
            out.append(element)
    return out


def _unique(values: Any) -> list[Any]:
    out: list[Any] = []
    for v in values:
        if v not in out:
            out.append(v)
    return out


def _yaml(value: Any, indent: int | None = None, default_flow_style: bool | None = None) -> str:
    """Ansible's to_yaml/to_nice_yaml: non-ASCII kept, keys sorted (yaml.dump's default)."""
    return str(
        yaml.safe_dump(_plain_data(value), allow_unicode=True, default_flow_style=default_flow_style, indent=indent)
    )


def _plain_data(value: Any) -> Any:
    """Unsafe strings as plain str (yaml's safe dumper knows only the builtin types)."""
    if isinstance(value, str):
        return str(value)
    if isinstance(value, Mapping):
        return {_plain_data(k): _plain_data(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain_data(v) for v in value]
    return value


def _hash(value: Any, kind: str = "sha1") -> str:
    try:
        h = hashlib.new(kind)
    except ValueError as exc:
        raise TemplateError(f"hash: unknown hash type {kind!r}") from exc
    h.update(str(value).encode("utf-8", "surrogateescape"))
    return h.hexdigest()


def _split(value: Any, sep: str | None = None, maxsplit: int = -1) -> list[str]:
    return str(value).split(sep, maxsplit)


def _path_join(paths: Any) -> str:
    if isinstance(paths, str):
        return paths
    return posixpath.join(*[str(p) for p in paths])


@jinja2.pass_environment
def _extract(env: jinja2.Environment, item: Any, container: Any, morekeys: Any = None) -> Any:
    keys = [item] + (morekeys if isinstance(morekeys, list) else ([] if morekeys is None else [morekeys]))
    value = container
    for key in keys:
        value = env.getitem(value, key)
    return value


def _regex_escape(value: Any, re_type: str = "python") -> str:
    if re_type == "python":
        return re.escape(str(value))
    if re_type == "posix_basic":
        return re.sub(r"([].[^$*\\])", r"\\\1", str(value))
    raise TemplateError(f"regex_escape: re_type {re_type!r} is not supported")


def _version_key(text: str) -> list[Any]:
    """distutils' LooseVersion order: numbers as numbers, letters as text, dots dropped."""
    parts = [p for p in re.split(r"(\d+|[a-z]+|\.)", str(text).lower()) if p and p != "."]
    return [int(p) if p.isdigit() else p for p in parts]


_VERSION_OPS = {
    "==": "eq", "=": "eq", "eq": "eq", "<": "lt", "lt": "lt", "<=": "le", "le": "le",
    ">": "gt", "gt": "gt", ">=": "ge", "ge": "ge", "!=": "ne", "<>": "ne", "ne": "ne",
}  # fmt: skip


def _version(value: Any, version: Any, operator: str = "eq", strict: Any = None, version_type: Any = None) -> bool:
    if strict or version_type not in (None, "loose"):
        raise TemplateError("the version test supports only loose comparison (no strict/version_type)")
    if not value or not version:
        raise TemplateError("the version test needs two non-empty versions")
    op = _VERSION_OPS.get(str(operator))
    if op is None:
        raise TemplateError(f"version test: invalid operator {operator!r}")
    a, b = _version_key(str(value)), _version_key(str(version))
    try:
        return {"eq": a == b, "ne": a != b, "lt": a < b, "le": a <= b, "gt": a > b, "ge": a >= b}[op]
    except TypeError as exc:
        raise TemplateError(f"version test: cannot compare {value!r} with {version!r}") from exc


def _bool_strict(value: Any) -> bool:
    """Ansible's `bool` filter: yes/on/true/1 and no/off/false/0 (any case); other values compare to 1."""
    check = str(value).lower() if isinstance(value, str | int) else value
    if check in ("yes", "on", "true", "1"):
        return True
    if check in ("no", "off", "false", "0"):
        return False
    return bool(check == 1)


def _human_readable(size: Any, isbits: bool = False, unit: str | None = None) -> str:
    if unit is not None or isbits:
        raise TemplateError("human_readable: only the default form is supported")
    num = float(size)
    for suffix in ("Bytes", "KB", "MB", "GB", "TB", "PB", "EB", "ZB"):
        limit = 1 << 10
        if abs(num) < limit or suffix == "ZB":
            return f"{num:.2f} {suffix}"
        num /= limit
    return f"{num:.2f} YB"


def _comment(text: Any) -> str:
    lines = str(text).split("\n")
    return "#\n" + "\n".join("# " + ln if ln else "#" for ln in lines) + "\n#"


FILTERS: dict[str, Any] = {
    "bool": _bool_strict,
    "to_json": lambda v, **kw: json.dumps(_plain_data(v), **kw),
    "to_nice_json": lambda v, indent=4, **kw: json.dumps(
        _plain_data(v), indent=indent, sort_keys=True, separators=(",", ": "), **kw
    ),
    "from_json": json.loads,
    "to_yaml": lambda v, **kw: _yaml(v, **kw),
    "to_nice_yaml": lambda v, indent=4, **kw: _yaml(v, indent=indent, default_flow_style=False),
    "from_yaml": lambda v: plain(load_text(str(v))),  # alias bombs in host output are refused
    "regex_replace": lambda v, p, r="", ignorecase=False, count=0: re.sub(
        p, r, str(v), count=count, flags=re.I if ignorecase else 0
    ),
    "regex_search": _regex_search,
    "regex_findall": lambda v, p, ignorecase=False: re.findall(p, str(v), re.I if ignorecase else 0),
    "regex_escape": _regex_escape,
    "basename": lambda v: posixpath.basename(str(v)),
    "dirname": lambda v: posixpath.dirname(str(v)),
    "splitext": lambda v: list(posixpath.splitext(str(v))),
    "path_join": _path_join,
    "b64encode": lambda v: base64.b64encode(str(v).encode()).decode(),
    "b64decode": lambda v: base64.b64decode(str(v)).decode(),
    "quote": lambda v: shlex.quote(str(v)),
    "mandatory": _mandatory,
    "ternary": _ternary,
    "combine": _combine,
    "dict2items": lambda d, key_name="key", value_name="value": [{key_name: k, value_name: v} for k, v in d.items()],
    "items2dict": lambda items, key_name="key", value_name="value": {i[key_name]: i[value_name] for i in items},
    "flatten": _flatten,
    "type_debug": lambda v: {"Unsafe": "str"}.get(type(v).__name__, type(v).__name__),
    "unique": lambda v: _unique(v),
    "union": lambda a, b: _unique([*a, *b]),
    "intersect": lambda a, b: _unique([x for x in a if x in b]),
    "difference": lambda a, b: _unique([x for x in a if x not in b]),
    "symmetric_difference": lambda a, b: _unique([x for x in [*a, *b] if (x in a) != (x in b)]),
    "zip": lambda *lists: [list(t) for t in zip(*lists, strict=False)],
    "zip_longest": lambda *lists, fillvalue=None: [list(t) for t in itertools.zip_longest(*lists, fillvalue=fillvalue)],
    "product": lambda *lists: [list(t) for t in itertools.product(*lists)],
    "split": _split,
    "hash": _hash,
    "md5": lambda v: _hash(v, "md5"),
    "sha1": lambda v: _hash(v, "sha1"),
    "checksum": lambda v: _hash(v, "sha1"),
    "extract": _extract,
    "human_readable": _human_readable,
    "comment": _comment,
    "log": lambda x, base=math.e: math.log10(x) if base == 10 else math.log(x, base),
    "pow": lambda x, y: math.pow(x, y),
    "root": lambda x, base=2: math.sqrt(x) if base == 2 else math.pow(x, 1.0 / float(base)),
}

TESTS: dict[str, Any] = {
    "failed": _result_failed,
    "failure": _result_failed,
    "succeeded": lambda r: not _result_failed(r),
    "success": lambda r: not _result_failed(r),
    "successful": lambda r: not _result_failed(r),
    "changed": lambda r: isinstance(r, Mapping) and bool(r.get("changed")),
    "change": lambda r: isinstance(r, Mapping) and bool(r.get("changed")),
    "skipped": lambda r: isinstance(r, Mapping) and bool(r.get("skipped")),
    "skip": lambda r: isinstance(r, Mapping) and bool(r.get("skipped")),
    "match": lambda v, p, ignorecase=False, multiline=False: (
        re.match(p, str(v), _re_flags(ignorecase, multiline)) is not None
    ),
    "search": lambda v, p, ignorecase=False, multiline=False: (
        re.search(p, str(v), _re_flags(ignorecase, multiline)) is not None
    ),
    "regex": lambda v, p, ignorecase=False, multiline=False, match_type="search": (
        getattr(re, match_type)(p, str(v), _re_flags(ignorecase, multiline)) is not None
    ),
    "version": _version,
    "version_compare": _version,
    "subset": lambda a, b: set(a) <= set(b),
    "issubset": lambda a, b: set(a) <= set(b),
    "superset": lambda a, b: set(a) >= set(b),
    "issuperset": lambda a, b: set(a) >= set(b),
    "contains": lambda seq, value: value in seq,
    "any": any,
    "all": all,
    "truthy": lambda v, convert_bool=False: bool(_bool(v) if convert_bool else v),
    "falsy": lambda v, convert_bool=False: not (_bool(v) if convert_bool else v),
    "abs": lambda p: posixpath.isabs(str(p)),
    "is_abs": lambda p: posixpath.isabs(str(p)),
}


def _re_flags(ignorecase: bool, multiline: bool) -> int:
    return (re.I if ignorecase else 0) | (re.M if multiline else 0)


# Lookups read the controller's files and environment (INFPROV_HOME holds private keys), so only
# templates written in the playbook itself (its tasks, vars and vars files) may call them; a template
# that came from the inventory or from -e may not. Data (host output) is never a template at all.
_lookups = threading.local()


class _Untrusted(dict[str, Any]):
    """A variable layer whose templates may not call lookups (the inventory's vars, -e values)."""


def untrusted(layer: Mapping[str, Any]) -> Mapping[str, Any]:
    return layer if isinstance(layer, _Untrusted) else _Untrusted(layer)


LOOKUPS = ("env", "file", "pipe", "lines", "items", "list", "dict")


@jinja2.pass_context
def _lookup(context: jinja2.runtime.Context, kind: str, *terms: Any, **options: Any) -> Any:
    """lookup(): Ansible's result shape (one value, or the values joined by commas when they are text)."""
    values = _run_lookup(context, kind, terms, options)
    if options.get("wantlist"):
        return values
    if values and all(isinstance(v, str) for v in values):
        return ",".join(values)
    return values[0] if len(values) == 1 else values


@jinja2.pass_context
def _query(context: jinja2.runtime.Context, kind: str, *terms: Any, **options: Any) -> list[Any]:
    """query() / q(): always a list."""
    return _run_lookup(context, kind, terms, options)


def _run_lookup(
    context: jinja2.runtime.Context, kind: str, terms: tuple[Any, ...], options: dict[str, Any]
) -> list[Any]:
    """Control-side lookups (what a provisioning playbook reads locally); never from inventory or -e values."""
    if getattr(_lookups, "denied", 0):
        raise TemplateError(
            f"lookup({kind!r}) is only allowed in the playbook itself, not in inventory or -e values "
            "(it reads the controller's files and environment)"
        )
    kind = kind.removeprefix("ansible.builtin.")
    options = {k: v for k, v in options.items() if k != "wantlist"}
    base = Path(str(context.resolve("playbook_dir") or "."))
    values: list[Any] = []
    if kind in ("items", "list", "dict"):
        if options:
            raise TemplateError(f"lookup({kind!r}) takes no options here: {sorted(options)}")
        if kind == "items":
            return [y for x in terms for y in (x if isinstance(x, list) else [x])]
        if kind == "list":
            return [y for x in terms for y in (x if isinstance(x, list) else [x])] if len(terms) == 1 else list(terms)
        return [{"key": k, "value": v} for d in terms for k, v in dict(d).items()]
    for term in terms:
        if kind == "env":
            default = options.get("default", "")
            values.append(os.environ.get(str(term), default))
        elif kind == "file":
            path = Path(str(term)).expanduser()
            found = [path] if path.is_absolute() else [base / "files" / path, base / path]
            hit = next((c for c in found if c.is_file()), None)
            if hit is None:
                raise TemplateError(
                    f"lookup('file'): could not find {term!r} (looked in the playbook's files/ and its folder)"
                )
            text = hit.read_text(encoding="utf-8")
            values.append(text.rstrip("\n") if options.get("rstrip", True) else text)
        elif kind in ("pipe", "lines"):
            proc = subprocess.run(str(term), shell=True, cwd=base, capture_output=True, stdin=subprocess.DEVNULL)  # noqa: S602
            if proc.returncode != 0:
                raise TemplateError(f"lookup({kind!r}): {term!r} returned {proc.returncode}")
            out = proc.stdout.decode("utf-8", "replace")
            values.extend([out.rstrip()] if kind == "pipe" else out.splitlines())
        else:
            raise TemplateError(f"lookup plugin {kind!r} is not supported (only {', '.join(LOOKUPS)})")
    return values


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
    """None renders as an empty string inside text (as Ansible renders it)."""
    return "" if value is None else value


def _setup(env: jinja2.Environment) -> jinja2.Environment:
    env.filters.update(FILTERS)
    env.tests.update(TESTS)
    env.globals["lookup"] = _lookup
    env.globals["query"] = _query
    env.globals["q"] = _query
    env.globals["omit"] = OMIT
    return env


class _Text(str):
    """Text an expression produced at run time (a variable, a filter's result): never parsed as a literal."""


def _mark_text(value: Any) -> Any:
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


class _NativeSandbox(jinja2.sandbox.SandboxedEnvironment):
    """NativeEnvironment's typed results inside the sandbox (no `__globals__`, no unsafe attributes)."""

    code_generator_class = jinja2.nativetypes.NativeCodeGenerator
    concat = staticmethod(lambda parts: _native_concat(parts))


_Sandbox = jinja2.sandbox.SandboxedEnvironment
_TEXT_ENV = _setup(_Sandbox(undefined=_Undefined, keep_trailing_newline=True, finalize=_finalize))
_NATIVE_ENV = _setup(_NativeSandbox(undefined=_Undefined, finalize=_mark_text))
# The template module renders files as Ansible does: trim_blocks on, the file's last newline kept.
_FILE_ENV = _setup(_Sandbox(undefined=_Undefined, trim_blocks=True, keep_trailing_newline=True, finalize=_finalize))


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
        native = _LONE.match(source) is not None or _is_lone(source)
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
        """A bare expression as `when`/`until` write it (no braces); a whole `{{ }}` that yields text is taken
        as the expression (ansible-core 2.19's rule for conditionals)."""
        if isinstance(expr, bool | int | float) or expr is None:
            return expr
        if isinstance(expr, Unsafe):  # data (host output, a templating result) is a value, never an expression
            raise TemplateError(
                f"conditional {str(expr)!r} is data (not written in the playbook); it cannot be evaluated"
            )
        text = str(expr).strip()
        if not text:
            raise TemplateError("Empty conditional expressions are not allowed.")
        if has_template(text):
            value = self.template(text)
            if not isinstance(value, str):
                return value
            text = str(value).strip()
        return self._string("{{ " + text + " }}")

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


def template_env(*, file: bool = False) -> jinja2.Environment:
    """The environment templates are parsed with (the pre-run check walks their syntax trees)."""
    return _FILE_ENV if file else _TEXT_ENV
