"""Command-line values typer would take unchanged, taken without pydantic (a command's start-up time).

typer (0.2x on) converts every option's value through a pydantic TypeAdapter, built on first use; the
first one imports pydantic, about 0.2 s of every `infprov play` before any work. infprov's options are
plain str, int, float, bool and list[str]. A value of those that converts without a question (a str as
it is; digits to an int within the option's bounds; a plain decimal to a float; a list of str) is taken
here with the same result; anything else (a bad number, a bound crossed, another type) goes to typer's
own conversion, so every error message stays typer's. A typer without this machinery is left alone.
"""

from __future__ import annotations

import re
from typing import Any, get_args, get_origin

_INT = re.compile(r"(0|[1-9][0-9]{0,17})\Z")
_FLOAT = re.compile(r"(0|[1-9][0-9]{0,14})(\.[0-9]{1,15})?\Z")
_DECLINE = object()


def quick_value(annotation: Any, info: Any, multi: bool, value: Any) -> Any:
    """The value typer's conversion would return for this one, or _DECLINE when in any doubt."""
    if value is None:
        return () if multi else None
    if getattr(info, "parser", None) is not None or getattr(info, "clamp", False):
        return _DECLINE
    if multi:
        listed = get_origin(annotation) is list and get_args(annotation) == (str,)
        if listed and isinstance(value, (list, tuple)) and all(type(v) is str for v in value):
            return list(value)
        return _DECLINE
    if annotation is str and type(value) is str:
        return value
    if annotation is int:
        number = value if type(value) is int else int(value) if type(value) is str and _INT.match(value) else None
        low, high = getattr(info, "min", None), getattr(info, "max", None)
        if number is None or (low is not None and number < low) or (high is not None and number > high):
            return _DECLINE
        return number
    if annotation is float and getattr(info, "min", None) is None and getattr(info, "max", None) is None:
        if type(value) in (int, float):
            return float(value)
        if type(value) is str and _FLOAT.match(value):
            return float(value)
    return _DECLINE


class _Quick:
    """Stands in for typer's runtime converter of one parameter; builds typer's own only when declining."""

    def __init__(self, build: Any, descriptor: Any) -> None:
        self._build = build
        self._descriptor = descriptor
        self._full: Any = None

    def coerce(self, value: Any, param: Any, ctx: Any) -> Any:
        multi = bool(param.multiple or param.nargs == -1)
        if not (multi and isinstance(value, str)):  # typer's own error for that
            quick = quick_value(self._descriptor.annotation, self._descriptor.parameter_info, multi, value)
            if quick is not _DECLINE:
                return quick
        if self._full is None:
            self._full = self._build(self._descriptor)
        return self._full.coerce(value, param=param, ctx=ctx)


def install(command: Any) -> None:
    """Give every parameter of the command tree (not yet converted) the quick path in front of typer's,
    and the --help option each command makes when first asked for it."""
    try:
        from typer._coercion import build_runtime_param
    except ImportError:  # a typer that converts without pydantic
        return

    def quicken(param: Any) -> None:
        descriptor = getattr(param, "type_descriptor", None)
        if descriptor is not None and getattr(param, "_runtime_param", False) is None:
            param._runtime_param = _Quick(build_runtime_param, descriptor)

    def walk(cmd: Any) -> None:
        for param in getattr(cmd, "params", ()):
            quicken(param)
        made = getattr(cmd, "get_help_option", None)
        if made is not None:

            def get_help_option(ctx: Any, made: Any = made) -> Any:
                option = made(ctx)
                quicken(option)
                return option

            cmd.get_help_option = get_help_option
        for sub in getattr(cmd, "commands", {}).values():
            walk(sub)

    walk(command)
