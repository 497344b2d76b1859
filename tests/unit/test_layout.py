"""The rooms' import arrows run one way, and the cloud code never asks which provider it holds."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# each room, and the rooms it may import (besides itself)
ALLOWED = {
    "floor": set(),
    "inventory": {"floor"},
    "playbooks": {"floor", "inventory"},
    "client": {"floor"},
    "provision": {"floor", "inventory", "playbooks", "client"},
    # test and sandbox tooling, built on top of the runtime (the runtime reaches it only lazily, see below)
    "sandbox": {"floor", "inventory", "playbooks", "client", "provision"},
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
        if str(path.relative_to(ROOT)) in SANDBOX_DOORS:
            extra -= {"sandbox"}  # lazily, inside the functions named there (checked below)
        if extra:
            wrong[str(path.relative_to(ROOT))] = sorted(extra)
    assert wrong == {}


# The runtime rooms reach the sandbox (test and sandbox tooling) only here, and only inside these functions:
# the provider's one door, the CLI's `sandbox` commands and its two sandbox-only options.
SANDBOX_DOORS = {
    "provision/providers.py": {"sandbox_core"},
    "provision/cli.py": {"_add_sandbox_commands", "demo_cmd"},
}
RUNTIME_ROOMS = sorted(set(ALLOWED) - {"sandbox"})


def _sandbox_imports(path: Path) -> list[tuple[str | None, int]]:
    """(enclosing top-level function or None for module level, line) of each import of infprov.sandbox."""
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for top in tree.body:
        owner = top.name if isinstance(top, (ast.FunctionDef, ast.AsyncFunctionDef)) else None
        for node in ast.walk(top):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            if any(n == "infprov.sandbox" or n.startswith("infprov.sandbox.") for n in names):
                found.append((owner, node.lineno))
    return found


def test_the_runtime_reaches_the_sandbox_only_inside_its_named_doors() -> None:
    reached: dict[str, set[str]] = {}
    at_import = []
    for room in RUNTIME_ROOMS:
        for path in sorted((ROOT / room).rglob("*.py")):
            rel = str(path.relative_to(ROOT))
            for owner, line in _sandbox_imports(path):
                if owner is None:
                    at_import.append(f"{rel}:{line}")
                else:
                    reached.setdefault(rel, set()).add(owner)
    assert at_import == []
    assert reached == SANDBOX_DOORS


def test_the_door_check_sees_a_module_level_import(tmp_path: Path) -> None:
    """The scan above is not blind: an import at module level, or in a class body, counts as at import."""
    probe = tmp_path / "probe.py"
    probe.write_text("import infprov.sandbox.core\n"
                     "class C:\n    from infprov.sandbox import core\n"
                     "def f():\n    from infprov import sandbox\n")
    assert _sandbox_imports(probe) == [(None, 1), (None, 3), ("f", 5)]


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
