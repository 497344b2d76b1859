"""The inventory's own error: provision maps it onto InfprovError (inventory imports nothing of ours)."""

from __future__ import annotations


class InventoryError(Exception):
    """A bad or unreadable inventory file; carries a hint like InfprovError does."""

    exit_code = 2

    def __init__(self, message: str, hint: str = "", exit_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        if exit_code is not None:
            self.exit_code = exit_code
