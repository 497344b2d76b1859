"""How much a template may build: caps on `~`, `.split()`, filters and output (templating).

The operators that multiply (`*`, `**`, `%`, `+`) and the functions that generate (range, lipsum) are refused
before a template compiles (check.py); what is left can still grow text: `~` and `replace` on long values,
a `{% for %}` over a long list, variables that join other variables.
"""

from __future__ import annotations

import collections.abc
import contextlib
import functools
import re
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

import jinja2.utils

from infprov.playbooks.errors import TemplateError

# A template comes from the playbook, but also from the inventory and -e (outside data), and it works on host
# output. Every operation that can build more than its inputs is estimated before it runs, and refused over
# these caps with one error.
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


# ---------------------------------------------------------------- methods called in a template
def before_call(obj: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Refuse a method call that would build over the cap (`.split()` of long text into many small parts)."""
    owner: Any = getattr(obj, "__self__", None)
    name = str(getattr(obj, "__name__", ""))
    if isinstance(owner, str) and name in ("split", "rsplit"):
        sep = args[0] if args else kwargs.get("sep")
        _need(weight(owner) + _ITEM * _pieces(owner, sep), f"`.{name}()`")
    return args, kwargs


_SPACE = re.compile(r"\s+")


def _pieces(text: str, sep: Any) -> int:
    """How many parts text.split(sep) makes (at most), counted without making them."""
    if isinstance(sep, str) and sep:
        return text.count(sep) + 1
    most = len(text) // 2 + 1
    if most * _ITEM <= MAX_SIZE:
        return most
    if text.isascii():  # ASCII whitespace is all there is to split at
        return sum(text.count(c) for c in " \t\n\r\x0b\x0c") + 1
    return sum(1 for _ in _SPACE.finditer(text)) + 1


# ---------------------------------------------------------------- filters
ESTIMATES: dict[str, Callable[..., int]] = {
    "replace": lambda s, old, new, count=None: len(str(s)) + (
        (str(s).count(str(old)) if str(old) else len(str(s)) + 1) if count is None or count < 0 else
        min(int(count), str(s).count(str(old)) if str(old) else len(str(s)) + 1)
    ) * max(0, len(str(new)) - len(str(old))),
    "quote": lambda v: 5 * weight(str(v)) + 2,
}


# Filters that neither make text of their input nor build more than references to it: left as they are.
UNGUARDED = frozenset({"length", "default", "int"})
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
