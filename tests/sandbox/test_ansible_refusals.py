"""What infprov's own engine (`--engine infprov`) refuses before anything runs (the table: tests/unit/
test_engine_refusals.py), through `infprov play --engine infprov` against a sandbox host: exit 2, one line
naming file:line, the unsupported thing and ansible-core, and nothing changed on the host (`-m ansible_diff`)."""

# ruff: noqa: E501  (the cases are one-line playbooks, clearer unwrapped)
from __future__ import annotations

import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from infprov.inventory.model import Host
from infprov.playbooks.connection import SshConnection
from tests.ansible_diff_run import Case, _env, _inventory
from tests.unit.test_engine_refusals import REFUSED

pytestmark = [pytest.mark.sandbox, pytest.mark.ansible_diff,
              pytest.mark.skipif(shutil.which("ansible-playbook") is None, reason="ansible-core is not installed")]


@pytest.mark.parametrize(("name", "text", "fragment"), REFUSED, ids=[r[0] for r in REFUSED])
def test_play_refuses_before_anything_runs_on_a_host(name: str, text: str, fragment: str,
                                                      fleet: list[dict[str, Any]], work: Path) -> None:
    ident = uuid.uuid4().hex[:8]
    root = f"/home/ubuntu/infprov-refuse-{ident}"
    book = work / "book" / f"refuse-{name}.yml"
    book.parent.mkdir(exist_ok=True)
    book.write_text(text.replace("- hosts: H\n", f"- hosts: {name}\n"))
    inv = work / f"refuse-{name}.yml"
    _inventory(inv, [Case(name, text)], fleet[:1], root)
    proc = subprocess.run([sys.executable, "-c", "from infprov.provision.cli import app; app()", "play", str(book),
                           "--engine", "infprov", "--inventory", str(inv)], capture_output=True, text=True, env=_env(work / "home"),
                          timeout=120)  # fmt: skip
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert fragment in lines[0] and f"{book}:" in lines[0] and "ansible-core" in lines[0], lines[0]
    real = fleet[0]
    host = Host(name=real["name"], address=real["address"], port=int(real["port"]), user=real["user"],
                key_file=real["key_file"])
    conn = SshConnection(host, work / "home" / "known_hosts")
    try:
        assert conn.run(f"test -e {root} && echo made || echo untouched").out.strip() == "untouched"
    finally:
        conn.close()
