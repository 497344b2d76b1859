"""The host model and the Ansible-format inventory store."""

from infprov.inventory.errors import InventoryError
from infprov.inventory.model import Host, Inventory, ssh_config

__all__ = ["Host", "Inventory", "InventoryError", "ssh_config"]
