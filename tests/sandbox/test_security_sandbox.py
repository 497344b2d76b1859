"""`infprov play` against a real sandbox host whose files are hostile: nothing runs on the controller."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from infprov.inventory import store
from tests.hostshell import hostile_inventory

pytestmark = pytest.mark.sandbox


def test_play_of_a_hostile_hosts_output_runs_nothing_on_the_controller(
    sandbox_hosts: list[dict[str, Any]], tmp_path: Path, infprov_home: Path
) -> None:
    marker = tmp_path / "PWNED"
    key_copy = tmp_path / "sent-back"
    payload = ("{{ cycler.__init__.__globals__.os.popen('touch " + str(marker) + "').read() }}"
               "{{ lookup('file', lookup('env', 'INFPROV_HOME') ~ '/secret') }}")
    infprov_home.mkdir(mode=0o700, exist_ok=True)
    (infprov_home / "secret").write_text("CONTROLLER-PRIVATE")
    inv = tmp_path / "inventory.yml"
    hostile_inventory(inv, sandbox_hosts[0])
    from infprov.playbooks.connection import SshConnection

    conn = SshConnection(store.load(inv).hosts[0], infprov_home / "known_hosts")  # pins the key: infprov play
    try:  # (ansible-core, with infprov's pinned keys) trusts no host on first use
        conn.run("true")
    finally:
        conn.close()
    book = tmp_path / "hostile.yml"
    book.write_text(f"""
- hosts: all
  gather_facts: false
  tasks:
    - name: the host holds a file someone else wrote
      ansible.builtin.shell: echo {base64.b64encode(payload.encode()).decode()} | base64 -d > /home/ubuntu/hostile.txt
    - ansible.builtin.shell: cat /home/ubuntu/hostile.txt
      register: r
    - ansible.builtin.set_fact:
        said: "x {{{{ r.stdout }}}}"
        trimmed: "{{{{ r.stdout | trim }}}}"
    - ansible.builtin.debug:
        msg: "{{{{ said }}}} {{{{ trimmed }}}}"
    - ansible.builtin.copy:
        dest: /home/ubuntu/echoed.txt
        content: "{{{{ trimmed }}}}"
    - ansible.builtin.fetch:
        src: /home/ubuntu/echoed.txt
        dest: {str(key_copy)}/
        flat: true
""")
    env = {**os.environ, "INFPROV_HOME": str(infprov_home)}
    run = subprocess.run([sys.executable, "-m", "infprov.provision.cli", "play", str(book), "--inventory", str(inv)],
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert not marker.exists(), "host output ran as code on the controller"
    echoed = (key_copy / "echoed.txt").read_text()
    assert echoed == payload and "CONTROLLER-PRIVATE" not in echoed

    # ansible-core, the reference, keeps the same text literal too
    if shutil.which("ansible-playbook") is None:
        return
    ref = subprocess.run(["ansible-playbook", "-i", str(inv), str(book)], capture_output=True, text=True,
                         env={**env, "ANSIBLE_HOST_KEY_CHECKING": "False"}, timeout=300)
    assert ref.returncode == 0, ref.stdout[-2000:] + ref.stderr[-2000:]
    assert not marker.exists()
    assert (key_copy / "echoed.txt").read_text() == payload
