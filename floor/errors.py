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


class RemoteCommandError(InfprovError):
    """A command on a host failed: carries the command, exit code and output tail."""

    def __init__(self, host: str, command: str, exit_code: int, tail: str, hint: str = "") -> None:
        short = command if len(command) <= 120 else command[:117] + "..."
        last = " | ".join(line for line in tail.strip().splitlines()[-3:] if line.strip())
        msg = f"{host}: `{short}` exited {exit_code}"
        if last:
            msg += f": {last}"
        super().__init__(msg, hint)
        self.host = host
        self.command = command
        self.returncode = exit_code
        self.tail = tail
