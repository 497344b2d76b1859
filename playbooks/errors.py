"""The engine's errors: a playbook that cannot run joins the floor's family; the per-host ones stay local."""

from __future__ import annotations

from infprov.floor.errors import InfprovError, UsageError


class PlaybookError(UsageError):
    """A playbook that cannot run as written (exit 2), or a run that cannot start (exit 1)."""


class TemplateError(Exception):
    """A `{{ }}` expression failed: undefined variable, syntax error, recursive variable."""


class HostUnreachable(InfprovError):
    """SSH to a host failed (refused, timed out, authentication, host key): the host stops, others go on."""


class HostKeyChanged(HostUnreachable):
    """The host offered a key other than the pinned one: possibly an impostor, or a rebuilt host."""


class FileTooLarge(InfprovError):
    """A file asked of a host is larger than the caller allows."""


class CommandTimeout(Exception):
    """A remote command ran longer than its task's `timeout`."""
