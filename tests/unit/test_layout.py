"""The rooms' import arrows run one way (the runtime never reaches the sandbox), and the cloud code never asks
which provider it holds."""

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
    # test and sandbox tooling, built on top of the runtime (which finds it only through entry points, see below)
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
    """At module level or inside a function alike: a lazy import is an import."""
    files = sorted((ROOT / room).rglob("*.py"))
    assert files
    wrong = {}
    for path in files:
        extra = _imported_rooms(path) - ALLOWED[room] - {room}
        if extra:
            wrong[str(path.relative_to(ROOT))] = sorted(extra)
    assert wrong == {}


def test_no_import_loop_between_the_rooms() -> None:
    """The rooms as they really import each other (not as ALLOWED says) form no cycle."""
    graph = {room: set().union(*(_imported_rooms(p) for p in (ROOT / room).rglob("*.py"))) - {room}
             for room in ALLOWED}
    done: set[str] = set()

    def visit(room: str, path: tuple[str, ...]) -> None:
        assert room not in path, " -> ".join((*path, room))
        if room in done:
            return
        for below in sorted(graph.get(room, ())):
            visit(below, (*path, room))
        done.add(room)

    for room in sorted(graph):
        visit(room, ())


RUNTIME_ROOMS = sorted(set(ALLOWED) - {"sandbox"})


def _names_the_sandbox(path: Path) -> list[int]:
    """Lines that import infprov.sandbox, or name it in a string (an import_module would)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and "infprov.sandbox" in node.value:
            names = ["infprov.sandbox"]
        if any(n == "infprov.sandbox" or n.startswith("infprov.sandbox.") for n in names):
            found.append(node.lineno)
    return found


def test_the_runtime_never_imports_the_sandbox() -> None:
    """The sandbox plugs in from above through entry points (pyproject.toml); no runtime module names it."""
    found = [f"{path.relative_to(ROOT)}:{line}" for room in RUNTIME_ROOMS
             for path in sorted((ROOT / room).rglob("*.py")) for line in _names_the_sandbox(path)]
    assert found == []


def test_the_sandbox_check_sees_every_way_in(tmp_path: Path) -> None:
    """The scan above is not blind: a module-level, class-body, function-level or by-name import counts."""
    probe = tmp_path / "probe.py"
    probe.write_text("import infprov.sandbox.core\n"
                     "class C:\n    from infprov.sandbox import core\n"
                     "def f():\n    from infprov import sandbox\n"
                     "def g():\n    return __import__('infprov.sandbox.provider')\n")
    assert _names_the_sandbox(probe) == [1, 3, 5, 7]
    assert "sandbox" in _imported_rooms(probe)


def test_the_sandbox_plugs_in_through_entry_points() -> None:
    """What the runtime looks up (the provider, the CLI's sandbox and demo commands) is what the sandbox offers."""
    from importlib.metadata import entry_points

    from infprov.provision import cli, providers
    from infprov.sandbox import commands, provider

    (found,) = tuple(entry_points(group=providers.PROVIDERS_GROUP, name="sandbox"))
    assert found.load() is provider.connect
    plugged = {ep.name: ep.load() for ep in entry_points(group=cli.PLUGIN_COMMANDS)}
    assert plugged == {"sandbox": commands.sandbox_app, "demo": commands.demo_app}


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
