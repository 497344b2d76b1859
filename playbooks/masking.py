"""Secrets masked in text that leaves infprov's hands whole (a support bundle): what a host printed, an
inventory entry, a run log. The run's Redactor (results.py) masks the values of variables it knows; this
masks what text itself shows to be secret, with the same names rule (results.secret_name) and mark:

- AWS access key ids (AKIA..., ASIA...) and AWS session tokens (their fixed prefixes);
- private keys (`-----BEGIN ... PRIVATE KEY-----`, and PGP's `... PRIVATE KEY BLOCK-----`, to its END line),
  header included;
- the value of any `NAME=value` or `name: value` whose name looks secret (*token*, *password*, *secret*,
  *_key but not *_key_file ...), as in `docker inspect`'s Env, an env file, YAML or JSON;
- the password part of a URL (`scheme://user:password@host`) and an `Authorization:` header's credentials;
- and, everywhere, every value a Masker learnt from secret-named variables (so a secret echoed later in a
  log, without its name, is masked too).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

from infprov.playbooks.results import MASK, secret_name

PRIVATE_KEY_MASK = "[private key masked by infprov]"

_ACCESS_KEY = re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Z0-9])")
# STS session tokens start with the base64 of their fixed header ("\x17\n\x06..aws" and "IQoJb3JpZ2lu...")
_SESSION_TOKEN = re.compile(r"(?:FwoGZXIvYXdz|IQoJb3JpZ2lu)[A-Za-z0-9/+=]{16,}")
# A private key: BEGIN to END, across lines (docker's timestamps between them too); one cut short (a log's
# last bytes) loses its header or its END: then the header and the key-like lines after it, or the key-like
# lines before the END, are masked (a line: base64, an armor header such as `Version: x`, or empty; with
# docker's timestamp in front, or joined by a JSON string's \n).
_KEY_KIND = r"[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----"
_KEY_LINE = r"(?:\d{4}-\d\d-\d\dT[\d:.]+Z )?[ \t]*(?:[A-Za-z0-9+/=]+|[A-Za-z-]+: [^\n\"'\\]*)?"
_EOL = r"(?:\r?\n|\\n)"
_PRIVATE_KEY = re.compile(rf"-----BEGIN{_KEY_KIND}.*?-----END{_KEY_KIND}", re.S)
_KEY_LINES = 400  # the most lines a cut key is followed back or forth (a 4096-bit RSA key has about 50)
_PRIVATE_KEY_HEAD = re.compile(rf"-----BEGIN{_KEY_KIND}(?:{_EOL}{_KEY_LINE}){{0,{_KEY_LINES}}}")
_KEY_END = re.compile(rf"-----END{_KEY_KIND}")
_KEY_LINE_ONLY = re.compile(_KEY_LINE)
# NAME=value, NAME: value, "name": "value", 'name': 'value' (the value up to its closing quote, or a word)
_ASSIGN = re.compile(
    r"""(?<![A-Za-z0-9_])(?P<name>[A-Za-z_][A-Za-z0-9_.-]*)(?P<close>["']?)
        (?P<sep>[ \t]*(?:=|:(?!//))[ \t]*)
        (?P<value>"(?:[^"\\\n]|\\.)*"|'[^'\n]*'|(?![{\[])[^\s"',;&|)}\]]+)""",
    re.X,
)
_URL_PASSWORD = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@\"']+:)(?P<pw>[^\s@/\"']+)(?=@)")
_AUTHORIZATION = re.compile(r"(?P<head>\bauthorization[\"']?[ \t]*[:=][ \t]*[\"']?(?:bearer|basic|token)?[ \t]*)"
                            r"(?P<cred>[A-Za-z0-9._~+/=-]{4,})", re.I)
# a learnt value shorter than this is not hunted for elsewhere in the text (its own NAME=value still is)
MIN_LEARNT = 6
_PLAIN = {"true", "false", "none", "null", "yes", "no", MASK}


def _unquote(value: str) -> str:
    return value[1:-1] if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'" else value


class Masker:
    """Masks secrets in text; `learn` teaches it values to mask wherever they appear."""

    def __init__(self) -> None:
        self._values: set[str] = set()

    @property
    def values(self) -> tuple[str, ...]:
        """The learnt values, longest first (so a secret inside another is masked whole)."""
        return tuple(sorted(self._values, key=lambda v: (-len(v), v)))

    def learn_value(self, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            return
        text = str(value).strip()
        if len(text) >= MIN_LEARNT and text.lower() not in _PLAIN:
            self._values.add(text)

    def learn_vars(self, variables: Mapping[str, Any]) -> None:
        """The values of secret-named variables, at any depth of a mapping (inventory vars, group vars)."""
        for key, value in variables.items():
            if isinstance(value, Mapping):
                self.learn_vars(value)
            elif isinstance(value, list | tuple):
                for entry in value:
                    if isinstance(entry, Mapping):
                        self.learn_vars(entry)
                    elif isinstance(key, str) and secret_name(key):
                        self.learn_value(entry)
            elif isinstance(key, str) and secret_name(key):
                self.learn_value(value)

    def learn_environ(self, environ: Mapping[str, str] | None = None) -> None:
        """This machine's secret-named environment variables (AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, ...),
        and its AWS access key id, in case a host or a file echoes them."""
        env = os.environ if environ is None else environ
        for key, value in env.items():
            if secret_name(key) or key == "AWS_ACCESS_KEY_ID":
                self.learn_value(value)

    def learn_text(self, text: str) -> None:
        """The values that text itself assigns to secret-named variables."""
        for match in _ASSIGN.finditer(text):
            if secret_name(match.group("name")):
                self.learn_value(_unquote(match.group("value")))

    def learn_texts(self, texts: Iterable[str]) -> None:
        for text in texts:
            self.learn_text(text)

    def __call__(self, text: str) -> str:
        return self.mask(text)

    def mask(self, text: str) -> str:
        if not text:
            return text
        if "PRIVATE KEY" in text:
            text = _PRIVATE_KEY.sub(PRIVATE_KEY_MASK, text)
            text = _PRIVATE_KEY_HEAD.sub(PRIVATE_KEY_MASK, text)
            text = _mask_key_tails(text)
        for value in self.values:
            if value in text:
                text = text.replace(value, MASK)
        text = _ACCESS_KEY.sub(MASK, text)
        text = _SESSION_TOKEN.sub(MASK, text)
        text = _URL_PASSWORD.sub(lambda m: m.group("head") + MASK, text)
        text = _AUTHORIZATION.sub(lambda m: m.group("head") + MASK, text)
        return _ASSIGN.sub(_mask_assignment, text)


def _line_start(text: str, end: int) -> int:
    """Where the line that ends at `end` begins: after the newline (or a JSON string's \\n) before it."""
    floor = max(0, end - 8192)  # (no key line is longer: a search never walks the whole text back)
    escaped = text.rfind("\\n", floor, end)
    return max(text.rfind("\n", floor, end) + 1, escaped + 2 if escaped >= 0 else 0, floor)


def _mask_key_tails(text: str) -> str:
    """An END line left after the whole keys were masked: the key-like lines before it, and it, masked (a key
    whose beginning a log cut off). Walked back line by line (a regex that looks back is quadratic)."""
    spans = []
    for match in _KEY_END.finditer(text):
        first = _line_start(text, match.start())
        if _KEY_LINE_ONLY.fullmatch(text, first, match.start()):
            for _ in range(_KEY_LINES):
                if first == 0:
                    break
                sep = 2 if text[first - 2:first] == "\\n" else 1
                end = first - sep - (1 if sep == 1 and text[first - 2:first - 1] == "\r" else 0)
                start = _line_start(text, end)
                if not _KEY_LINE_ONLY.fullmatch(text, start, end):
                    break
                first = start
        else:
            first = match.start()
        spans.append((first, match.end()))
    for start, end in reversed(spans):
        text = text[:start] + PRIVATE_KEY_MASK + text[end:]
    return text


def _mask_assignment(match: re.Match[str]) -> str:
    if not secret_name(match.group("name")):
        return match.group(0)
    value = match.group("value")
    quote = value[0] if value[:1] in ("'", '"') and len(value) >= 2 and value[-1] == value[0] else ""
    # a quoted key (JSON) takes a quoted mask even where the value was a number: the document stays valid
    quote = quote or ('"' if match.group("close") else "")
    return f"{match.group('name')}{match.group('close')}{match.group('sep')}{quote}{MASK}{quote}"


def mask_vars(variables: Any) -> Any:
    """A copy of a mapping (at any depth) with the values of secret-named keys masked."""
    if isinstance(variables, Mapping):
        return {k: (MASK if isinstance(k, str) and secret_name(k) and not isinstance(v, Mapping) else mask_vars(v))
                for k, v in variables.items()}
    if isinstance(variables, list | tuple):
        return [mask_vars(v) for v in variables]
    return variables


def mask_text(text: str, *, learn: bool = True) -> str:
    """One text masked on its own: the patterns, and (learn) every value it assigns to a secret name."""
    masker = Masker()
    if learn:
        masker.learn_text(text)
    return masker.mask(text)
