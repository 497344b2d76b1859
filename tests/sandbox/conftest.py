"""Fixtures the sandbox tier's files share (the session-wide ones are in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture()
def home(sandbox_hosts: list[dict[str, Any]], cluster_home: Path) -> Iterator[Path]:
    """The sandbox up and the session's shared INFPROV_HOME (a file may define its own `home` instead)."""
    yield cluster_home
