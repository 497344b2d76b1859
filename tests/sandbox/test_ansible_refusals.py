"""Differential suite, the refusals: playbooks infprov's own engine (`--engine infprov`) must refuse before anything
runs (exit 2, one line naming file:line, nothing changed on the hosts). Select with `-m ansible_diff`."""

# ruff: noqa: E501  (the cases are one-line Jinja expressions, clearer unwrapped)
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
from tests.ansible_diff_run import Case, _env, _inventory, play

pytestmark = [
    pytest.mark.sandbox,
    pytest.mark.ansible_diff,
    pytest.mark.skipif(shutil.which("ansible-playbook") is None, reason="ansible-core is not installed"),
]

# Playbooks infprov must refuse before running: (name, playbook text, fragment of the one error line)
REFUSED: list[tuple[str, str, str]] = [
    ("gather_facts_default", "- hosts: H\n  tasks:\n    - file: {path: '{{ d }}/m', state: touch}\n", "gather_facts"),
    ("gather_facts_true", "- hosts: H\n  gather_facts: true\n  tasks:\n    - debug: {msg: x}\n", "gather_facts"),
    ("unknown_filter", play("- file: {path: '{{ d }}/m', state: touch}\n- debug: {msg: \"{{ 'x' | to_uuid }}\"}\n"),
     "filter 'to_uuid'"),
    ("unknown_test", play("- file: {path: '{{ d }}/m', state: touch}\n- debug: {msg: x}\n  when: d is directory\n"),
     "test 'directory'"),
    ("unknown_lookup", play("- file: {path: '{{ d }}/m', state: touch}\n- debug: {msg: \"{{ lookup('url', 'http://x') }}\"}\n"),
     "lookup plugin 'url'"),
    ("jinja_include", play("- file: {path: '{{ d }}/m', state: touch}\n- debug: {msg: \"{% include 'x' %}\"}\n"),
     "include"),
    ("jinja_import", play("- file: {path: '{{ d }}/m', state: touch}\n- debug: {msg: \"{% import 'x' as y %}\"}\n"),
     "import"),
    ("jinja_macro", play("- file: {path: '{{ d }}/m', state: touch}\n- debug: {msg: \"{% macro m() %}x{% endmacro %}\"}\n"),
     "macro"),
    ("template_file_extends", play("- file: {path: '{{ d }}/m', state: touch}\n- template: {src: extends.j2, dest: '{{ d }}/t'}\n"),
     "extends"),
    ("unknown_module", play("- file: {path: '{{ d }}/m', state: touch}\n- apt: {name: x}\n"), "'apt'"),
    ("unknown_argument", play("- file: {path: '{{ d }}/m', state: touch}\n- copy: {content: x, dest: /tmp/x, backup: true}\n"),
     "backup"),
    ("delegate_to", play("- file: {path: '{{ d }}/m', state: touch}\n- debug: {msg: x}\n  delegate_to: localhost\n"),
     "delegate_to"),
    ("block", play("- file: {path: '{{ d }}/m', state: touch}\n- block:\n    - debug: {msg: x}\n"), "block"),
    ("include_tasks", play("- file: {path: '{{ d }}/m', state: touch}\n- include_tasks: x.yml\n"), "include_tasks"),
    ("roles", "- hosts: H\n  gather_facts: false\n  roles: [x]\n  tasks:\n    - debug: {msg: x}\n", "roles"),
    ("serial", "- hosts: H\n  gather_facts: false\n  serial: 1\n  tasks:\n    - debug: {msg: x}\n", "serial"),
    ("strategy_other", "- hosts: H\n  gather_facts: false\n  strategy: debug\n  tasks:\n    - debug: {msg: x}\n",
     "strategy"),
    ("fact_variable", play("- file: {path: '{{ d }}/m', state: touch}\n- debug: {msg: '{{ ansible_hostname }}'}\n"),
     "ansible_hostname"),
    ("now_function", play("- file: {path: '{{ d }}/m', state: touch}\n- debug: {msg: '{{ now() }}'}\n"), "now()"),
    ("loop_control_extended", play("- debug: {msg: x}\n  loop: [1]\n  loop_control: {extended: true}\n"),
     "loop_control"),
    ("meta_flush", play("- file: {path: '{{ d }}/m', state: touch}\n- meta: flush_handlers\n"), "'meta'"),
    ("run_once", play("- debug: {msg: x}\n  run_once: true\n"), "run_once"),
    ("templated_hosts", "- hosts: '{{ target }}'\n  gather_facts: false\n  tasks:\n    - debug: {msg: x}\n", "hosts"),
    ("syntax_error_template", play("- file: {path: '{{ d }}/m', state: touch}\n- debug: {msg: '{{ x | }}'}\n"),
     "syntax error"),
    ("vars_unknown_filter", "- hosts: H\n  gather_facts: false\n  vars: {a: \"{{ 1 | to_datetime }}\"}\n  tasks:\n"
     "    - file: {path: '{{ d }}/m', state: touch}\n", "to_datetime"),
]


@pytest.mark.parametrize(("name", "text", "fragment"), REFUSED, ids=[r[0] for r in REFUSED])
def test_refused_before_running(name: str, text: str, fragment: str, fleet: list[dict[str, Any]], work: Path) -> None:
    ident = uuid.uuid4().hex[:8]
    root = f"/home/ubuntu/infprov-refuse-{ident}"
    book = work / "book" / f"refuse-{name}.yml"
    book.write_text(text.replace("- hosts: H\n", f"- hosts: {name}\n").replace("hosts: '{{ target }}'", "hosts: '{{ target }}'"))
    inv = work / f"refuse-{name}.yml"
    c = Case(name, text)
    _inventory(inv, [c], fleet[:1], root)
    proc = subprocess.run([sys.executable, "-c", "from infprov.provision.cli import app; app()", "play", str(book),
                           "--engine", "infprov", "--inventory", str(inv)], capture_output=True, text=True, env=_env(work / "home"),
                          timeout=120)  # fmt: skip
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert fragment in lines[0] and (f"{book}:" in lines[0] or ".j2" in lines[0]), lines[0]
    real = fleet[0]
    host = Host(name=real["name"], address=real["address"], port=int(real["port"]), user=real["user"],
                key_file=real["key_file"])
    conn = SshConnection(host, work / "home" / "known_hosts")
    try:
        assert conn.run(f"test -e {root} && echo made || echo untouched").out.strip() == "untouched"
    finally:
        conn.close()
