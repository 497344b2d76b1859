"""`infprov play` on ansible-core against a sandbox cluster: the hosts end exactly as `ansible-playbook` run directly
leaves them (handlers that notify handlers, `~` paths, a regex with a backreference in a single-quoted YAML
string, group_vars/ beside the playbook, a secret masked); a host whose pinned key changed is refused in one line
and nothing changes; Ctrl-C ends ansible-playbook and reports what ran."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from infprov.provision.cli import app
from tests.procs import Child, progress_lines, wait_until

pytestmark = [
    pytest.mark.sandbox,
    pytest.mark.skipif(shutil.which("ansible-playbook") is None, reason="ansible-core is not installed"),
]
runner = CliRunner()
CLUSTER = "aptest"
SECRET = "s3cr3t-h6-tango"

BOOK = r"""
- name: converge
  hosts: all
  gather_facts: false
  vars:
    root: "~/infprov-ap-{{ run_id }}/{{ engine }}"
  tasks:
    - name: the root folder
      ansible.builtin.file:
        path: "{{ root }}"
        state: directory
        mode: "0750"
    - name: a config from group_vars
      ansible.builtin.copy:
        dest: "{{ root }}/app.conf"
        content: "port={{ app_port }}\nname={{ app_name }}\npassword={{ db_password }}\n"
        mode: "0640"
      notify: restart app
    - name: a swapped pair, single-quoted
      ansible.builtin.copy:
        dest: '{{ root }}/swapped-single.txt'
        content: '{{ "ab-cd" | regex_replace("(a)(b)", "\2\1") }}'
        mode: "0604"
    - name: a swapped pair, double-quoted
      ansible.builtin.copy:
        dest: "{{ root }}/swapped-double.txt"
        content: "{{ 'ab-cd' | regex_replace('(a)(b)', '\\2\\1') }}"
    - name: backslashes kept, single-quoted
      ansible.builtin.copy:
        dest: '{{ root }}/literal-single.txt'
        content: '{{ ''ab-cd'' | regex_replace(''(a)(b)'', ''\\2\\1'') }}'
    - name: say the secret
      ansible.builtin.debug:
        msg: "the password is {{ db_password }}"
  handlers:
    - name: restart app
      ansible.builtin.shell: "echo restarted >> {{ root }}/restarts.log"
      notify: reload proxy
    - name: reload proxy
      ansible.builtin.shell: "echo reloaded >> {{ root }}/reloads.log && chmod 0600 {{ root }}/reloads.log"
"""


def _cli(argv: list[str]) -> Any:
    return runner.invoke(app, argv)


@pytest.fixture()
def cluster(sandbox_hosts: list[dict[str, Any]], cluster_home: Path) -> Iterator[list[dict[str, Any]]]:
    """Two sandbox instances, their host keys pinned by `infprov up`; torn down whatever happens."""
    try:
        up = _cli(["up", "--sandbox", "--type", "inf1.xlarge", "--name", CLUSTER, "--count", "2", "--yes",
                   "--skip-server", "--json"])
        assert up.exit_code == 0, up.output
        yield json.loads(up.stdout)["hosts"]
    finally:
        down = _cli(["teardown", "--sandbox", "--name", CLUSTER, "--yes"])
        assert down.exit_code == 0, down.output


def _inventory_host(instance_id: str) -> Any:
    from infprov.floor import paths
    from infprov.inventory import store

    found = store.load(paths.inventory_file()).find(instance_id)
    assert found is not None
    return found


def _on_host(instance_id: str, command: str, known_hosts: Path | None = None) -> str:
    from infprov.floor import paths
    from infprov.playbooks.connection import SshConnection

    conn = SshConnection(_inventory_host(instance_id), known_hosts or paths.known_hosts())
    try:
        res = conn.run(command)
    finally:
        conn.close()
    assert res.exit_code == 0, res.err
    return str(res.out)


def _tree(instance_id: str, root: str) -> dict[str, tuple[str, ...]]:
    """Every file under root: (type, mode, owner, content) by relative path."""
    out = _on_host(instance_id, f"cd {root} && find . -mindepth 1 -printf '%P|%y|%m|%u\\n' | sort")
    tree: dict[str, tuple[str, ...]] = {}
    for line in out.splitlines():
        rel, kind, mode, owner = line.split("|")
        content = _on_host(instance_id, f"cat {root}/{rel}") if kind == "f" else ""
        tree[rel] = (kind, mode, owner, content)
    return tree


def _book_dir(tmp_path: Path) -> Path:
    root = tmp_path / "book"
    (root / "group_vars").mkdir(parents=True)
    (root / "book.yml").write_text(BOOK)
    (root / "group_vars" / "all.yml").write_text(f"app_port: 8080\napp_name: from-all\ndb_password: {SECRET}\n")
    (root / "group_vars" / f"{CLUSTER}.yml").write_text("app_name: from-the-cluster-group\n")
    return root


def _ansible_directly(book: Path, extra: list[str]) -> dict[str, dict[str, int]]:
    """ansible-playbook itself on infprov's inventory, with infprov's pinned keys: its recap per host."""
    from infprov.floor import paths

    config = book.parent / "direct.cfg"  # no ansible.cfg of this machine's
    config.write_text("[defaults]\n")
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_RETRY_FILES_ENABLED": "False",
           "ANSIBLE_CONFIG": str(config), "ANSIBLE_LOCAL_TEMP": str(book.parent / "ansible-tmp"),
           "ANSIBLE_SSH_ARGS": f"-o UserKnownHostsFile={paths.known_hosts()} -o StrictHostKeyChecking=yes"}
    proc = subprocess.run(["ansible-playbook", "-i", str(paths.inventory_file()), "--limit", CLUSTER, str(book),
                           *extra], capture_output=True, text=True, env=env, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    recap = proc.stdout[proc.stdout.index("PLAY RECAP"):].splitlines()[1:]
    out = {}
    for line in recap:
        if ":" not in line:
            continue
        host, _, rest = line.partition(":")
        out[host.strip()] = {k: int(v) for k, v in (w.split("=") for w in rest.split())}
    return out


def test_hosts_end_as_ansible_playbook_leaves_them(cluster: list[dict[str, Any]], tmp_path: Path) -> None:
    from infprov.floor import paths

    book = _book_dir(tmp_path) / "book.yml"
    run_id = uuid.uuid4().hex[:8]
    ids = [h["instance_id"] for h in cluster]
    roots = {e: f"/home/ubuntu/infprov-ap-{run_id}/{e}" for e in ("infprov", "ansible")}
    try:
        for round_ in (1, 2):
            ours = _cli(["play", str(book), "--name", CLUSTER, "--json", "-e", f"run_id={run_id}", "-e",
                         "engine=infprov"])
            assert ours.exit_code == 0, ours.output
            doc = json.loads(ours.stdout)
            theirs = _ansible_directly(book, ["-e", f"run_id={run_id}", "-e", "engine=ansible"])
            assert doc["ok"] is True and doc["engine"].startswith("ansible-core 2.19")
            assert sorted(doc["stats"]) == sorted(ids)
            for iid in ids:  # the same recap as ansible-playbook's own
                mine = doc["stats"][iid]
                assert {k: mine[k] for k in theirs[iid]} == theirs[iid], (round_, iid, mine, theirs[iid])
                trees = {e: _tree(iid, r) for e, r in roots.items()}
                assert trees["infprov"] == trees["ansible"], (round_, iid)
            tree = _tree(ids[0], roots["infprov"])
            assert tree["app.conf"] == ("f", "640", "ubuntu",
                                        f"port=8080\nname=from-the-cluster-group\npassword={SECRET}\n")
            assert tree["swapped-single.txt"] == ("f", "604", "ubuntu", "ba-cd")
            assert tree["swapped-double.txt"][3] == "ba-cd"
            assert tree["literal-single.txt"][3] == "\\2\\1-cd"  # as ansible-core 2.19 keeps them
            assert tree["restarts.log"][3] == "restarted\n" and tree["reloads.log"] == ("f", "600", "ubuntu",
                                                                                       "reloaded\n")
            # the handlers ran once, on the first round (the second changed nothing)
            changed = {t["task"] for t in doc["tasks"] if t["status"] == "changed"}
            assert changed == ({"the root folder", "a config from group_vars", "a swapped pair, single-quoted",
                                "a swapped pair, double-quoted", "backslashes kept, single-quoted", "restart app",
                                "reload proxy"} if round_ == 1 else set())
            [said] = {t["msg"] for t in doc["tasks"] if t["task"] == "say the secret"}
            assert said == "the password is ********"
            assert SECRET not in ours.stdout and SECRET not in ours.stderr
            assert SECRET not in Path(doc["log"]).read_text()
            for h in doc["hosts"]:
                assert h["ok"] is True and h["error"] == "" and h["changed"] == (7 if round_ == 1 else 0)
        # the text output: one line per host per task, then the recap
        text = _cli(["play", str(book), "--name", CLUSTER, "-e", f"run_id={run_id} engine=infprov"])
        assert text.exit_code == 0, text.output
        for iid in ids:
            for task in ("the root folder", "a config from group_vars", "a swapped pair, single-quoted",
                         "say the secret"):
                assert f"{iid}: {task}: ok" in progress_lines(text.stderr), text.stderr
        assert "  the password is ********" in text.stderr.splitlines()
        assert "PLAY RECAP" in text.stdout and "rescued=0" in text.stdout and SECRET not in text.output
        log = next(line for line in text.stderr.splitlines() if line.startswith("log: "))[5:]
        assert (Path(log).stat().st_mode & 0o777) == 0o600 and Path(log).parent == paths.runs_dir()
    finally:
        for iid in ids:
            _on_host(iid, f"rm -rf /home/ubuntu/infprov-ap-{run_id}")


def test_a_host_whose_pinned_key_changed_is_refused_and_nothing_changes(
    cluster: list[dict[str, Any]], tmp_path: Path
) -> None:
    from infprov.floor import paths

    victim = _inventory_host(cluster[0]["instance_id"])
    known = paths.known_hosts()
    pinned = known.read_text()
    mine = tmp_path / "known_hosts"
    mine.write_text(pinned)  # the real key, for this test's own look at the host
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "other")], check=True)
    other = (tmp_path / "other.pub").read_text().split()
    lines = [f"{victim.address} {other[0]} {other[1]}" if line.split(" ", 1)[0] == victim.address else line
             for line in pinned.splitlines()]
    assert lines != pinned.splitlines(), "the host's key is pinned under its address"
    known.write_text("\n".join(lines) + "\n")
    marker = f"/home/ubuntu/infprov-ap-refused-{uuid.uuid4().hex[:8]}"
    book = tmp_path / "touch.yml"
    book.write_text(f"- hosts: all\n  gather_facts: false\n  tasks:\n    - name: make a folder\n"
                    f"      ansible.builtin.file: {{path: {marker}, state: directory}}\n")
    try:
        before = known.read_text()
        result = _cli(["play", str(book), "--host", victim.name])
        assert result.exit_code == 1, result.output
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, result.stderr
        assert errors[0] == result.stderr.strip().splitlines()[-1]
        assert f"host key for {victim.address} has CHANGED since it was pinned in {known}" in errors[0]
        assert f"hint: if the host was rebuilt on purpose, clear the old key with: ssh-keygen -R '{victim.address}'" \
            in errors[0]
        assert "unreachable=1" in result.stdout
        assert known.read_text() == before, "a refused key is never recorded, nor a new one learnt"
        assert _on_host(victim.name, f"test -e {marker} && echo made || echo untouched", mine).strip() == "untouched"
        # a host with no pinned key at all is not trusted on first use either
        known.write_text("".join(line + "\n" for line in lines if not line.startswith(victim.address + " ")))
        unknown = _cli(["play", str(book), "--host", victim.name])
        assert unknown.exit_code == 1 and "infprov does not trust a host on first use" in unknown.stderr
        assert victim.address not in known.read_text()
        assert _on_host(victim.name, f"test -e {marker} && echo made || echo untouched", mine).strip() == "untouched"
    finally:
        known.write_text(pinned)


def _ansible_processes(marker: str) -> list[int]:
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline and "ansible" in cmdline:
            found.append(int(pid))
    return found


def test_ctrl_c_ends_ansible_playbook_and_reports_what_ran(
    cluster: list[dict[str, Any]], tmp_path: Path, cluster_home: Path
) -> None:
    book = tmp_path / f"slow-{uuid.uuid4().hex[:8]}.yml"
    book.write_text("- hosts: all\n  gather_facts: false\n  tasks:\n    - name: quick\n      command: 'true'\n"
                    "    - name: slow\n      command: sleep 47\n    - name: never\n      command: 'true'\n")
    run = Child.infprov("play", str(book), "--name", CLUSTER, env={**os.environ, "INFPROV_HOME": str(cluster_home)})
    try:
        run.wait_for(": quick: changed", count=len(cluster))
        wait_until("the slow task runs on every host", lambda: all(
            _on_host(h["instance_id"], "pgrep -u ubuntu -f '^sleep 4[7]' || true").strip() for h in cluster))
        assert _ansible_processes(book.name), "ansible-playbook runs"
        run.send(signal.SIGINT)
        code = run.finish(120)
    finally:
        run.kill()
        for h in cluster:
            _on_host(h["instance_id"], "pkill -u ubuntu -f '^sleep 4[7]' || true")
    err, out = run.err, run.out
    assert code == 130, err
    assert err.strip().splitlines()[-1].startswith("error: interrupted: ansible-playbook was stopped"), err
    assert "(interrupted)" in out and "ok=1" in out, out
    assert ": never:" not in err  # had the play run on past the slow task, this one would have started
    assert _ansible_processes(book.name) == [], "nothing of ansible-playbook is left running"
    assert not list(cluster_home.glob("ansible/*")), "its config, ssh control connections and folders are gone"
