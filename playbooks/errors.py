"""The engine's own errors: provision maps them onto InfprovError (playbooks never imports provision)."""

from __future__ import annotations

from infprov.inventory.errors import HintedError


class PlaybookError(HintedError):
    """A playbook that cannot run as written (exit 2), or a run that cannot start (exit 1)."""


class TemplateError(Exception):
    """A `{{ }}` expression failed: undefined variable, syntax error, recursive variable."""


class HostUnreachable(Exception):
    """SSH to a host failed (refused, timed out, authentication, host key): the host stops, others go on."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class HostKeyChanged(HostUnreachable):
    """The host offered a key other than the pinned one: possibly an impostor, or a rebuilt host."""


class CommandTimeout(Exception):
    """A remote command ran longer than its task's `timeout`."""
