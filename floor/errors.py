"""One error family: every failure carries what went wrong, how to fix it, and its exit code."""

from __future__ import annotations


class InfprovError(Exception):
    """A failure the user can act on: one line with a hint; exit code 1 unless said otherwise."""

    exit_code = 1

    def __init__(self, message: str, hint: str = "", exit_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        if exit_code is not None:
            self.exit_code = exit_code

    def line(self) -> str:
        """The one line shown to the user."""
        text = self.message.rstrip(".")
        return f"{text}. hint: {self.hint}" if self.hint else text


class UsageError(InfprovError):
    """Bad usage or bad input: exit code 2."""

    exit_code = 2


class WaitTimeout(InfprovError):
    """A bounded wait ran out; the message says what was awaited and for how long."""
