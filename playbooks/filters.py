"""The filters and tests infprov's own playbooks use, and nothing else (check.py refuses the rest).

Jinja's own: `default`, `capitalize`, `int`, `string`, `length`, `trim`, `replace`; Ansible's: the `quote`
filter and the `match` test (written here, as Ansible documents them).
"""

from __future__ import annotations

import re
import shlex
from typing import Any

import jinja2.defaults

_JINJA = jinja2.defaults.DEFAULT_FILTERS
JINJA_FILTERS = ("default", "capitalize", "int", "string", "length", "trim", "replace")

FILTERS: dict[str, Any] = {
    **{name: _JINJA[name] for name in JINJA_FILTERS},
    "quote": lambda value: shlex.quote(str(value)),  # a string fit for a POSIX shell word
}

TESTS: dict[str, Any] = {
    # Ansible's `match`: the pattern matches at the start of the value (re.match)
    "match": lambda value, pattern: re.match(pattern, str(value)) is not None,
}
