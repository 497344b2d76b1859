"""Where infprov keeps its state (INFPROV_HOME) and its caches."""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """INFPROV_HOME, default ~/.infprov; created on first use."""
    path = Path(os.environ.get("INFPROV_HOME") or Path.home() / ".infprov")
    path.mkdir(parents=True, exist_ok=True)
    return path


def inventory_file(override: str | os.PathLike[str] | None = None) -> Path:
    return Path(override) if override else home() / "inventory.yml"


def keys_dir() -> Path:
    path = home() / "keys"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def known_hosts() -> Path:
    return home() / "known_hosts"


def runs_dir() -> Path:
    path = home() / "runs"
    path.mkdir(parents=True, exist_ok=True)
    return path
