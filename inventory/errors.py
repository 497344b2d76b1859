"""The inventory's own error: provision maps it onto InfprovError (inventory imports nothing of ours)."""

from __future__ import annotations


class HintedError(Exception):
    """An error with a hint and an exit code, like InfprovError: the base of the inventory's and the
    engine's own errors (neither may import provision), so the CLI maps both in one place."""

    exit_code = 2

    def __init__(self, message: str, hint: str = "", exit_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        if exit_code is not None:
            self.exit_code = exit_code


class InventoryError(HintedError):
    """A bad or unreadable inventory file."""
