"""The filters and tests templates may use: Jinja's own, and Ansible's usual ones (README lists them)."""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import math
import posixpath
import re
import shlex
from collections.abc import Mapping
from typing import Any

import jinja2
import yaml

from infprov.inventory.yamlsrc import load_text, plain
from infprov.playbooks.errors import TemplateError


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
