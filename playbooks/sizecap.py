"""How much a template may build: caps on `*`, `**`, `%`, `+`, `~`, methods, filters and output (templating)."""

from __future__ import annotations

import collections.abc
import contextlib
import functools
import re
import string
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

import jinja2.utils

from infprov.playbooks.errors import TemplateError

# A template comes from the playbook, but also from the inventory and -e (outside data), and it works on host
# output: `{{ 'A' * 300000000 }}` once took 1.1 GB of the controller's memory. Every operation that can
# build more than its inputs is estimated before it runs, and refused over these caps with one error.
MAX_SIZE = 32 << 20  # one value a template builds: about this many bytes
BUDGET = 128 << 20  # all that one template (with the variables it reads) builds and outputs
MAX_INT_BITS = 1 << 16  # one integer: ~19,700 digits (Python will not print more than 4,300 anyway)
_ITEM = 64  # what an item of a list a template builds is counted as (a Python object and its pointer)


class SizeCapError(TemplateError):
    """A template would build more than the caps allow."""


def _refuse(what: str, size: int, cap: int = MAX_SIZE) -> NoReturn:
    raise SizeCapError(
        f"{what} would build about {_mib(size)}, over the {_mib(cap)} a template may build"
    )


def _mib(n: int) -> str:
    return f"{n / (1 << 20):,.0f} MiB" if n >= 1 << 20 else f"{n:,} bytes"


# ---------------------------------------------------------------- how big a value is
def weight(value: Any, stop: int = MAX_SIZE) -> int:
    """About how many bytes `value` takes as text: a string's length, a container's items (8 more each, and
    counted each time they appear, as in the text); counted only until it passes `stop`. Only builtin
    containers are looked into (never the engine's lazy mappings)."""
    if isinstance(value, str):  # non-ASCII text takes 1, 2 or 4 bytes a character
        return len(value) if value.isascii() else max(len(value), sys.getsizeof(value) - 76)
    if isinstance(value, list | tuple | set | frozenset | dict):
        return _weigh(value, stop, {}, 0)
    return _scalar(value)


def _scalar(v: Any) -> int:
    if isinstance(v, bytes | bytearray):
        return len(v)
    if isinstance(v, bool) or v is None:
        return 5
    if isinstance(v, int):
        return v.bit_length() // 3 + 1
    if isinstance(v, range):
        return 8 * len(v)
    return 8


def _weigh(v: Any, stop: int, memo: dict[int, int], depth: int) -> int:
    """A builtin container's weight (each container measured once, by identity)."""
    key = id(v)
    if key in memo:
        return memo[key]
    if depth > 100:  # deeper than any playbook's data (and a list that holds itself)
        return stop + 1
    n = 8
    for item in (x for pair in v.items() for x in pair) if isinstance(v, dict) else v:
        if isinstance(item, str):
            n += 8 + (len(item) if item.isascii() else max(len(item), sys.getsizeof(item) - 76))
        elif isinstance(item, list | tuple | set | frozenset | dict):
            n += 8 + _weigh(item, stop, memo, depth + 1)
        else:
            n += 8 + _scalar(item)
        if n > stop:
            break
    memo[key] = n
    return n


def fits(value: Any, what: str) -> Any:
    """value, when it is within MAX_SIZE (a value given to an operation that would make text of it)."""
    size = weight(value)
    if size > MAX_SIZE:
        raise SizeCapError(f"{what} is about {_mib(size)}, over the {_mib(MAX_SIZE)} a template may build")
    return value


def _need(size: int, what: str) -> None:
    if size > MAX_SIZE:
        _refuse(what, size)


# ---------------------------------------------------------------- one template's budget
_meter = threading.local()


@contextlib.contextmanager
def metered() -> Iterator[None]:
    """One template's rendering (the variables it reads render inside it and share its budget)."""
    depth = getattr(_meter, "depth", 0)
    if depth == 0:
        _meter.used = 0
    _meter.depth = depth + 1
    try:
        yield
    finally:
        _meter.depth = depth


def charge(size: int, what: str) -> None:
    used = getattr(_meter, "used", 0) + size
    _meter.used = used
    if used > BUDGET:
        _refuse(f"{what}: the template in all", used, BUDGET)


def built(value: Any, what: str) -> Any:
    """A value an operation built: within MAX_SIZE, and counted against the template's budget."""
    size = weight(value)
    if size > MAX_SIZE:
        _refuse(what, size)
    charge(size, what)
    return value


def metered_const(text: str) -> str:
    """Literal text a template outputs (counted each time, e.g. in a loop)."""
    charge(len(text), "the template's output")
    return text


def output(value: Any) -> Any:
    """A `{{ }}` value on its way out (before it is made text)."""
    return built(value, "an output")


# ---------------------------------------------------------------- operators
def binop(op: str, left: Any, right: Any, apply: Callable[[Any, Any], Any]) -> Any:
    """`*`, `**`, `%` and `+`, refused before they run when the result would be over the caps."""
    if op == "*":
        times, seq = (right, left) if _is_int(right) else (left, right)
        if _is_int(times) and isinstance(seq, str | bytes | list | tuple):
            if times > 0:
                _need(weight(seq, MAX_SIZE // times + 1) * times, f"`{_kind(seq)} * {times}`")
        elif _is_int(left) and _is_int(right) and left.bit_length() + right.bit_length() > MAX_INT_BITS:
            _refuse_int("`*`")
    elif op == "**":
        if (_is_int(left) and _is_int(right) and right > 0 and abs(left) > 1
                and (abs(left).bit_length() - 1) * right > MAX_INT_BITS):
            _refuse_int("`**`")
    elif op == "+":
        if isinstance(left, str | bytes | list | tuple) and isinstance(right, str | bytes | list | tuple):
            _need(weight(left) + weight(right), "`+`")
    elif op == "%" and isinstance(left, str):
        _need(percent_size(left, right), "`%` formatting")
    return built(apply(left, right), f"`{op}`")


def _is_int(value: Any) -> bool:
    return isinstance(value, int)


def _kind(value: Any) -> str:
    return {"str": "text", "bytes": "bytes", "list": "list", "tuple": "tuple"}.get(type(value).__name__, "text")


def _refuse_int(what: str) -> NoReturn:
    raise SizeCapError(f"{what} would build an integer of more than {MAX_INT_BITS:,} bits, "
                       "over what a template may build")


def concat(parts: tuple[Any, ...]) -> str:
    """`~`: the joined text, refused before it is built when over the cap."""
    texts = []
    total = 0
    for part in parts:
        fits(part, "`~`")
        text = part if isinstance(part, str) else str(part)
        total += len(text)
        _need(total, "`~`")
        texts.append(text)
    return built("".join(texts), "`~`")


# printf-style specs: flags, width, precision (a `*` takes them from the arguments)
_PERCENT = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?(.)", re.S)


def percent_size(fmt: str, args: Any) -> int:
    """About how long `fmt % args` (and the `format` filter) is: the text, the widths, and each spec's value."""
    values = args if isinstance(args, tuple) else (args,)
    if isinstance(args, collections.abc.Mapping):
        values = tuple(args.values()) if isinstance(args, dict) else (None,)
    biggest = max((_arg_weight(v) for v in values), default=0)
    size = len(fmt)
    for m in _PERCENT.finditer(fmt):
        width, precision, conv = m.groups()
        if width == "*" or precision == "*":
            raise SizeCapError("`%` formatting with a `*` width or precision is not supported")
        size += int(width or 0) + int(precision or 0) + (biggest if conv != "%" else 0)
    return size


def format_size(fmt: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    """About how long `fmt.format(*args, **kwargs)` is."""
    biggest = max((_arg_weight(v) for v in (*args, *kwargs.values())), default=0)
    size = 0
    try:
        fields = list(string.Formatter().parse(fmt))
    except ValueError:
        return len(fmt)
    for literal, name, spec, _conv in fields:
        size += len(literal)
        if name is None:
            continue
        spec = spec or ""
        if "{" in spec:
            raise SizeCapError("str.format with a nested field in a format spec is not supported")
        size += sum(int(d) for d in re.findall(r"\d+", spec)) + biggest
    return size


def _arg_weight(value: Any) -> int:
    """A formatting argument's text size; an object it could index into (a lazy mapping) counts as MAX_SIZE."""
    if isinstance(value, str | bytes | int | float | list | tuple | dict | set | frozenset) or value is None:
        return weight(value)
    return MAX_SIZE


# ---------------------------------------------------------------- methods called in a template
def before_call(obj: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Refuse a method call that would build over the cap (str.center(10**9), ''.join(huge), list.extend...);
    an iterator argument is read into a list first, so it can be measured (and is passed on as that list)."""
    owner: Any = getattr(obj, "__self__", None)
    name = str(getattr(obj, "__name__", ""))
    if owner is None or isinstance(owner, type):
        return args, kwargs
    args = tuple(list(a) if isinstance(a, collections.abc.Iterator) else a for a in args)

    def arg(i: int, key: str, default: Any = None) -> Any:
        return args[i] if len(args) > i else kwargs.get(key, default)

    what = f"`.{name}()`"
    if isinstance(owner, str | bytes):
        _need(_method_size(owner, name, arg), what)
    elif isinstance(owner, list | dict | set) and name in ("append", "insert", "extend", "update", "add",
                                                            "setdefault", "copy", "fromkeys"):
        charge(sum(weight(a) + _ITEM for a in (*args, *kwargs.values())), what)
    return args, kwargs


def _method_size(text: Any, name: str, arg: Callable[..., Any]) -> int:
    """About how big a str (or bytes) method's result is; the text's own size for the methods that shrink it."""
    size = weight(text)
    tab = "\t" if isinstance(text, str) else b"\t"
    if name in ("center", "ljust", "rjust", "zfill"):
        width = arg(0, "width", 0)
        return max(size, width if _is_int(width) else 0)
    if name == "expandtabs":
        tabsize = arg(0, "tabsize", 8)
        return size + text.count(tab) * max(tabsize if _is_int(tabsize) else 8, 0)
    if name == "replace":
        old, new, count = arg(0, "old", ""), arg(1, "new", ""), arg(2, "count", -1)
        if not (isinstance(old, str | bytes) and isinstance(new, str | bytes)) or type(old) is not type(text):
            return size
        part: Any = old
        hits = int(text.count(part)) if part else len(text) + 1
        if _is_int(count) and count >= 0:
            hits = min(hits, count)
        return size + hits * max(0, weight(new) - len(old))
    if name == "join":
        items = arg(0, "iterable", ())
        return weight(items) + size * max(_count(items) - 1, 0)
    if name == "translate":
        table = arg(0, "table", {})
        values = table.values() if isinstance(table, dict) else ()
        return size * max([weight(v) for v in values if isinstance(v, str | bytes)] + [1])
    if name == "encode":
        return size * 10
    if name in ("split", "rsplit", "splitlines"):
        return size + _ITEM * _pieces(text, None if name == "splitlines" else arg(0, "sep"))
    return size


_SPACE = re.compile(r"\s+")
_SPACE_BYTES = re.compile(rb"\s+")


def _pieces(text: Any, sep: Any) -> int:
    """How many parts text.split(sep) makes (at most), counted without making them."""
    if isinstance(sep, str | bytes) and sep and type(sep) is type(text):
        part: Any = sep
        return int(text.count(part)) + 1
    most = len(text) // 2 + 1
    if most * _ITEM <= MAX_SIZE:
        return most
    spaces = " \t\n\r\x0b\x0c" if isinstance(text, str) else [bytes([c]) for c in b" \t\n\r\x0b\x0c"]
    if text.isascii():  # ASCII whitespace is all there is to split at
        return sum(int(text.count(c)) for c in spaces) + 1
    space = _SPACE if isinstance(text, str) else _SPACE_BYTES
    return sum(1 for _ in space.finditer(text)) + 1


def _escaped(value: Any) -> int:
    """HTML escaping: five characters grow, to at most 6."""
    if not isinstance(value, str):
        return 6 * weight(value)
    return weight(value) + 5 * sum(value.count(c) for c in "&<>'\"")


# ---------------------------------------------------------------- filters
def _count(value: Any) -> int:
    """How many items iterating value gives (0 for what is not a builtin collection)."""
    return len(value) if isinstance(value, str | bytes | list | tuple | range | dict | set | frozenset) else 0


def _fill(value: Any, count: Any, fill_with: Any) -> int:
    n = _count(value)
    return weight(value) + (_ITEM + weight(fill_with)) * max(int(count) if _is_int(count) else 0, 0) + _ITEM * n


def _lines(s: Any) -> int:
    return str(s).count("\n") + 1 if isinstance(s, str) else 1


def _shape_size(value: Any, indent: Any) -> int:
    """JSON/YAML text of value with `indent`: its text, and per item a new line indented up to its depth."""
    step = int(indent) if _is_int(indent) and not isinstance(indent, bool) else len(indent) if isinstance(
        indent, str) else 0
    size = weight(value)
    return size + (size // 8 + 1) * step * min(_depth(value), 100) if step > 0 else size * 2


def _depth(value: Any, level: int = 0) -> int:
    if level > 100 or not isinstance(value, list | tuple | dict):
        return level
    items = value.values() if isinstance(value, dict) else value
    return max((_depth(v, level + 1) for v in items), default=level + 1)


def _product(*lists: Any, repeat: Any = 1) -> int:
    count, per = 1, 0
    for seq in lists:
        count *= _count(seq) if _count(seq) else 1
        per += _ITEM
        if count * per > MAX_SIZE:
            return count * per
    return count * per * (int(repeat) if _is_int(repeat) else 1)


def _zip_longest(*lists: Any, fillvalue: Any = None) -> int:
    longest = max((_count(s) for s in lists), default=0)
    return longest * (len(lists) + 1) * _ITEM + sum(weight(s) for s in lists)


def _regex_replace(value: Any, pattern: Any = "", replacement: Any = "", ignorecase: Any = False,
                   count: Any = 0) -> int:
    text, repl = str(value), str(replacement)
    try:
        compiled = re.compile(str(pattern), re.I if ignorecase else 0)
    except re.error:
        return len(text)
    hits = 0
    for hits, _ in enumerate(compiled.finditer(text), start=1):
        if _is_int(count) and 0 < count <= hits:
            break
    refs = len(re.findall(r"\\(?:\d|g<[^>]*>)", repl))
    return len(text) + hits * len(repl) + refs * len(text)


def _regex_findall(value: Any, pattern: Any = "", ignorecase: Any = False) -> int:
    text = str(value)
    try:
        compiled = re.compile(str(pattern), re.I if ignorecase else 0)
    except re.error:
        return len(text)
    hits = sum(1 for _ in compiled.finditer(text))
    return len(text) + hits * _ITEM * max(compiled.groups, 1)


ESTIMATES: dict[str, Callable[..., int]] = {
    # Jinja's own
    "center": lambda value, width=80: max(len(str(value)), int(width) if _is_int(width) else 0),
    "indent": lambda s, width=4, first=False, blank=False: len(str(s)) + _lines(s) * (
        len(width) if isinstance(width, str) else max(int(width), 0) if _is_int(width) else 0),
    "join": lambda value, d="", attribute=None: weight(value) + weight(str(d)) * _count(value),
    "replace": lambda s, old, new, count=None: len(str(s)) + (
        (str(s).count(str(old)) if str(old) else len(str(s)) + 1) if count is None or count < 0 else
        min(int(count), str(s).count(str(old)) if str(old) else len(str(s)) + 1)
    ) * max(0, len(str(new)) - len(str(old))),
    "format": lambda value, *args, **kwargs: percent_size(str(value), kwargs or args),
    "wordwrap": lambda s, width=79, break_long_words=True, wrapstring=None, break_on_hyphens=True: len(str(s)) + (
        len(str(s)) // max(int(width) if _is_int(width) else 1, 1) + _lines(s)) * len(str(wrapstring or "\n")),
    "batch": lambda value, linecount, fill_with=None: _fill(value, linecount if fill_with is not None else 0,
                                                            fill_with),
    "slice": lambda value, slices, fill_with=None: _fill(value, slices, fill_with),
    "list": lambda value: weight(value) + _ITEM * _count(value),
    "sum": lambda iterable, attribute=None, start=0: weight(start) + (
        weight(iterable) if attribute is None else 0),
    "tojson": lambda value, indent=None: _shape_size(value, indent),
    "pprint": lambda value: _shape_size(value, 1),
    "urlencode": lambda value: 3 * weight(value),
    "xmlattr": lambda d, autospace=True: 6 * weight(d),
    "escape": _escaped,
    "e": _escaped,
    "forceescape": _escaped,
    "urlize": lambda value, *args, **kwargs: 4 * weight(value),
    # Ansible's (filters.FILTERS)
    "to_json": lambda v, indent=None, **kw: _shape_size(v, indent),
    "to_nice_json": lambda v, indent=4, **kw: _shape_size(v, indent),
    "to_yaml": lambda v, indent=None, **kw: _shape_size(v, indent if indent is not None else 2),
    "to_nice_yaml": lambda v, indent=4, **kw: _shape_size(v, indent),
    "product": _product,
    "zip_longest": _zip_longest,
    "zip": lambda *lists: sum(weight(s) for s in lists) * 2,
    "regex_replace": _regex_replace,
    "regex_findall": _regex_findall,
    "split": lambda value, sep=None, maxsplit=-1: weight(str(value)) + _ITEM * _pieces(str(value), sep),
    "quote": lambda v: 5 * weight(str(v)) + 2,
    "b64encode": lambda v: 2 * weight(str(v)) + 4,
    "comment": lambda text: 3 * weight(str(text)) + 4,
    "combine": lambda *dicts, recursive=False: sum(weight(d) for d in dicts),
    "human_readable": lambda size, isbits=False, unit=None: weight(size),
}


# Filters that neither make text of their input nor build more than references to it: left as they are.
UNGUARDED = frozenset({
    "length", "count", "first", "last", "default", "d", "int", "float", "abs", "round", "type_debug",
    "mandatory", "ternary", "random", "min", "max", "attr", "sort", "dictsort", "unique", "select",
    "reject", "selectattr", "rejectattr", "map", "items", "extract",
})


def guarded(name: str, fn: Callable[..., Any], *, test: bool = False) -> Callable[..., Any]:
    """A filter (or test) that refuses inputs over the cap, outputs it estimates over the cap, and counts
    what it built. Keeps Jinja's pass_context/pass_environment marks (the wrapper gets the same first argument)."""
    if not test and name in UNGUARDED:
        return fn
    skip = 1 if jinja2.utils._PassArg.from_obj(fn) is not None else 0
    estimate = None if test else ESTIMATES.get(name)
    kind = "test" if test else "filter"

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        args = tuple(list(a) if isinstance(a, collections.abc.Iterator) else a for a in args)
        for value in (*args[skip:], *kwargs.values()):
            fits(value, f"the input of {kind} {name!r}")
        if estimate is not None:
            try:
                size = estimate(*args[skip:], **kwargs)
            except (TypeError, ValueError, AttributeError):
                size = 0  # arguments the filter itself will refuse, with its own message
            _need(size, f"{kind} {name!r}")
        result = fn(*args, **kwargs)
        return result if test else built(result, f"{kind} {name!r}")

    return run
