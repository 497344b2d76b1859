"""The inventory's error, one of the floor's family (an unreadable or invalid inventory: exit 2 unless said)."""

from __future__ import annotations

from infprov.floor.errors import UsageError


class InventoryError(UsageError):
    """A bad or unreadable inventory file."""
