"""The rooms' import arrows run one way, and the cloud code never asks which provider it holds."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# each room, and the rooms it may import (besides itself)
ALLOWED = {
    "floor": set(),
    "inventory": {"floor"},
    "playbooks": {"floor", "inventory"},
    "client": {"floor"},
    "provision": {"floor", "inventory", "playbooks", "client"},
}
CLOUD_MODULES = ("cloud", "specs", "planning", "amis", "launch", "access", "reach", "ec2")


def _imported_rooms(path: Path) -> set[str]:
    rooms = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "infprov" and len(parts) > 1:
                rooms.add(parts[1])
            elif parts[0] in ALLOWED:  # the old top-level names would bypass the namespace
                rooms.add(f"top-level {parts[0]}")
    return rooms


@pytest.mark.parametrize("room", sorted(ALLOWED))
def test_rooms_import_only_the_rooms_below_them(room: str) -> None:
    files = sorted((ROOT / room).rglob("*.py"))
    assert files
    wrong = {}
    for path in files:
        extra = _imported_rooms(path) - ALLOWED[room] - {room}
        if extra:
            wrong[str(path.relative_to(ROOT))] = sorted(extra)
    assert wrong == {}


def test_the_cloud_code_never_branches_on_the_sandbox() -> None:
    """Only provision/providers.py knows AWS from the sandbox; the cloud modules ask the provider."""
    found = []
    for name in CLOUD_MODULES:
        path = ROOT / "provision" / f"{name}.py"
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, (ast.If, ast.IfExp, ast.While)):
                words = {n.id for n in ast.walk(node.test) if isinstance(n, ast.Name)}
                words |= {n.attr for n in ast.walk(node.test) if isinstance(n, ast.Attribute)}
                if any("sandbox" in w.lower() for w in words):
                    found.append(f"{path.name}:{node.lineno}")
    # the one exception: the hint that repeats the user's own --sandbox flag
    assert found == ["cloud.py:" + str(_continue_hint_line())]


def _continue_hint_line() -> int:
    path = ROOT / "provision" / "cloud.py"
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if '" --sandbox" if spec.sandbox' in line:
            return number
    raise AssertionError("continue_hint no longer repeats --sandbox")
