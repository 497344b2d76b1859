"""The engine against real sshd hosts: converge, check mode, one bad host of three, become, pinned keys,
and the same playbook and inventory files under ansible-playbook / ansible-inventory.

Hosts: the sandbox fleet (tests/conftest.py `sandbox_hosts`) when it can be built, else three key-only sshd
daemons on 127.0.0.1 (tests/loopback_sshd.py). INFPROV_TEST_SSH_HOSTS=sandbox|loopback forces one.
The impostor test always uses a loopback sshd of its own, since it restarts sshd with a new host key.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paramiko
import pytest

from infprov.inventory import store
from infprov.inventory.model import Host, Inventory
from infprov.playbooks.connection import SshConnection
from infprov.playbooks.hostkeys import fingerprint
from infprov.playbooks.results import RunResult
from infprov.playbooks.runner import run_playbook
from tests import loopback_sshd
from tests.procs import progress_lines

ANSIBLE_ARGS = "-o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no"

CONVERGE = """\
- name: converge a small host setup
  hosts: fleet
  gather_facts: false
  vars:
    base: "/home/ubuntu/infprov-pbtest-{{ test_id }}/{{ inventory_hostname }}"
  tasks:
    - name: base folder
      ansible.builtin.file:
        path: "{{ base }}"
        state: directory
        mode: "0755"
    - name: a file from the files folder
      ansible.builtin.copy:
        src: app.conf
        dest: "{{ base }}/app.conf"
        mode: "0640"
    - name: scripts
      ansible.builtin.copy:
        src: "files/{{ item.src }}"
        dest: "{{ base }}/{{ item.dest }}"
        mode: "0755"
      loop:
        - {src: start.sh, dest: start.sh}
      loop_control:
        label: "{{ item.dest }}"
    - name: a setting
      ansible.builtin.shell: |
        want="workers={{ workers }}"
        [ "$(cat {{ base }}/settings.ini 2>/dev/null)" = "$want" ] && { echo INFPROV_OK; exit 0; }
        echo "$want" > {{ base }}/settings.ini && echo INFPROV_CHANGED
      register: setting
      changed_when: "'INFPROV_CHANGED' in setting.stdout"
    - name: a checkout
      ansible.builtin.git:
        repo: "{{ repo }}"
        dest: "{{ base }}/repo"
        version: r22.04
        update: false
    - name: read it back
      ansible.builtin.command: cat {{ base }}/app.conf
      register: conf
      changed_when: false
    - name: who am I
      ansible.builtin.command: id -un
      register: me
      changed_when: false
    - name: check what we saw
      ansible.builtin.assert:
        that:
          - conf.stdout == 'listen=0.0.0.0'
          - me.stdout == 'ubuntu' or me.stdout == 'root'
      when: not ansible_check_mode
"""


# ---------------------------------------------------------------- hosts
def _sandbox_fleet(request: pytest.FixtureRequest) -> list[Host] | None:
    mode = os.environ.get("INFPROV_TEST_SSH_HOSTS", "auto")
    if mode == "loopback":
        return None
    try:
        hosts = request.getfixturevalue("sandbox_hosts")
    except pytest.skip.Exception:
        if mode == "sandbox":
            raise
        return None
    except Exception as exc:  # the sandbox's own tests report why it did not build
        if mode == "sandbox":
            raise
        warnings.warn(f"sandbox unavailable ({exc}); using loopback sshd hosts", stacklevel=1)
        return None
    return [
        Host(
            name=f"i-{h['name']}",
            address=h["address"],
            port=int(h["port"]),
            user=h["user"],
            key_file=h["key_file"],
            cluster="fleet",
            extra={"ansible_ssh_common_args": ANSIBLE_ARGS},
        )  # fmt: skip
        for h in hosts[:3]
    ]


@pytest.fixture(scope="module")
def fleet(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Host]]:
    hosts = _sandbox_fleet(request)
    if hosts is not None and len(hosts) == 3:
        yield hosts
        return
    reason = loopback_sshd.can_run()
    if reason:
        pytest.skip(reason)
    daemons = loopback_sshd.start_hosts(tmp_path_factory.mktemp("sshd"), 3)
    try:
        yield [
            Host(
                name=f"i-{d.name}",
                address=d.address,
                port=d.port,
                key_file=str(d.key_file),
                cluster="fleet",
                extra={"ansible_ssh_common_args": ANSIBLE_ARGS},
            )  # fmt: skip
            for d in daemons
        ]
    finally:
        for d in daemons:
            d.stop()


@pytest.fixture(scope="module")
def book_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("book")
    (root / "converge.yml").write_text(CONVERGE)
    (root / "files").mkdir()
    (root / "files" / "app.conf").write_text("listen=0.0.0.0\n")
    (root / "files" / "start.sh").write_text("#!/bin/sh\necho start\n")
    return root


@pytest.fixture(scope="module")
def repo(fleet: list[Host]) -> Iterator[str]:
    """A bare git repository every host can read: loopback hosts share this machine's /tmp; a sandbox host has a
    root file system of its own and sees only the sandbox's public folder of the machine's (read-only)."""
    base = Path("/tmp")
    if fleet and not fleet[0].address.startswith("127."):  # sandbox hosts (loopback hosts listen on 127.0.0.x)
        from infprov.sandbox import places

        base = places.public_dir()
    root = base / f"infprov-pbtest-repo-{uuid.uuid4().hex[:8]}"
    work = root / "work"
    work.mkdir(parents=True)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run([*git, "init", "-q", "-b", "main"], cwd=work, check=True)
    (work / "setup.sh").write_text("echo setup\n")
    subprocess.run([*git, "add", "."], cwd=work, check=True)
    subprocess.run([*git, "commit", "-qm", "one"], cwd=work, check=True)
    subprocess.run([*git, "branch", "r22.04"], cwd=work, check=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(root / "repo.git")], check=True)
    subprocess.run(["chown", "-R", "ubuntu:", str(root)], check=False)
    subprocess.run(["chmod", "-R", "a+rX", str(root)], check=True)
    yield str(root / "repo.git")
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture()
def test_id(fleet: list[Host], infprov_home: Path) -> Iterator[str]:
    ident = uuid.uuid4().hex[:10]
    yield ident
    for h in fleet:  # remove what the test made, root-owned files included
        with _conn(h, infprov_home) as c:
            c.run(f"sudo -n rm -rf /home/ubuntu/infprov-pbtest-{ident}")


class _conn:  # noqa: N801 - a tiny context manager for one SSH connection
    def __init__(self, host: Host, home: Path) -> None:
        self.c = SshConnection(host, home / "test_known_hosts")

    def __enter__(self) -> SshConnection:
        return self.c

    def __exit__(self, *exc: Any) -> None:
        self.c.close()


class _conn_pinning(_conn):  # noqa: N801 - the same, pinning the host's key in the home's known_hosts
    def __init__(self, host: Host, home: Path) -> None:
        self.c = SshConnection(host, home / "known_hosts")


def remote(host: Host, home: Path, command: str) -> str:
    with _conn(host, home) as c:
        return c.run(command).out.strip()


def play(book: Path, hosts: list[Host], home: Path, **kw: Any) -> RunResult:
    kw.setdefault("known_hosts", home / "known_hosts")
    return run_playbook(book, Inventory(tuple(hosts)), runs_dir=home / "runs", **kw)


# ---------------------------------------------------------------- the tests
def test_converge_then_second_run_changes_nothing(
    fleet: list[Host], book_dir: Path, repo: str, infprov_home: Path, test_id: str
) -> None:
    extra = {"test_id": test_id, "repo": repo, "workers": 4}
    first = play(book_dir / "converge.yml", fleet, infprov_home, extra_vars=extra)
    assert first.ok, [f.to_dict() for f in first.failures()]
    assert all(s.changed == 5 for s in first.stats.values()), first.stats
    second = play(book_dir / "converge.yml", fleet, infprov_home, extra_vars=extra)
    assert second.ok
    assert {h: s.changed for h, s in second.stats.items()} == {h.name: 0 for h in fleet}, [
        t for t in second.tasks if t.status == "changed"
    ]
    for h in fleet:
        base = f"/home/ubuntu/infprov-pbtest-{test_id}/{h.name}"
        assert remote(h, infprov_home, f"stat -c '%a' {base}/app.conf {base}/start.sh") == "640\n755"
        assert remote(h, infprov_home, f"cat {base}/settings.ini") == "workers=4"
        assert remote(h, infprov_home, f"cat {base}/repo/setup.sh") == "echo setup"
    changed = play(book_dir / "converge.yml", fleet[:1], infprov_home, extra_vars={**extra, "workers": 8})
    assert changed.stats[fleet[0].name].changed == 1, "only the setting changes"
    log = Path(str(first.log_path)).read_text()
    assert "PLAY RECAP" in log and fleet[0].name in log


def test_check_mode_changes_nothing(
    fleet: list[Host], book_dir: Path, repo: str, infprov_home: Path, test_id: str
) -> None:
    extra = {"test_id": test_id, "repo": repo, "workers": 4}
    fresh = play(book_dir / "converge.yml", fleet, infprov_home, check=True, extra_vars=extra)
    for h in fleet:
        assert fresh.tasks[[t.host for t in fresh.tasks].index(h.name)].status == "changed"  # the base folder
        assert remote(h, infprov_home, f"test -e /home/ubuntu/infprov-pbtest-{test_id}; echo $?") == "1"
    assert play(book_dir / "converge.yml", fleet, infprov_home, extra_vars=extra).ok
    for h in fleet:
        remote(h, infprov_home, f"chmod 600 /home/ubuntu/infprov-pbtest-{test_id}/{h.name}/app.conf")
    drift = play(book_dir / "converge.yml", fleet, infprov_home, check=True, extra_vars={**extra, "workers": 8})
    assert drift.ok, [f.to_dict() for f in drift.failures()]
    for h in fleet:
        changed = [t.task for t in drift.tasks if t.host == h.name and t.status == "changed"]
        assert changed == ["a file from the files folder"]  # commands are skipped in check mode, as in Ansible
        base = f"/home/ubuntu/infprov-pbtest-{test_id}/{h.name}"
        assert remote(h, infprov_home, f"cat {base}/settings.ini; stat -c %a {base}/app.conf") == "workers=4\n600"


def test_one_failing_host_of_three_leaves_the_others_done(
    fleet: list[Host], tmp_path: Path, infprov_home: Path, test_id: str
) -> None:
    book = tmp_path / "fail.yml"
    book.write_text(
        "- hosts: all\n  gather_facts: false\n  vars:\n"
        "    base: /home/ubuntu/infprov-pbtest-{{ test_id }}/{{ inventory_hostname }}\n  tasks:\n"
        "    - file: {path: '{{ base }}', state: directory}\n"
        "    - name: the step that breaks on one host\n"
        "      shell: \"echo working on {{ inventory_hostname }}; echo 'no space left on device' >&2; exit 7\"\n"
        "      when: inventory_hostname == bad\n"
        "    - shell: sleep 0.5; echo done > {{ base }}/done.txt\n"
    )
    bad = fleet[1].name
    result = play(book, fleet, infprov_home, extra_vars={"test_id": test_id, "bad": bad}, forks=3)
    assert result.failed_hosts == [bad]
    assert result.stats[bad].failed == 1
    failure = result.failures()[0]
    assert failure.task == "the step that breaks on one host" and failure.rc == 7
    assert failure.command is not None and "exit 7" in failure.command
    assert "no space left on device" in failure.tail and f"working on {bad}" in failure.tail
    for h in fleet:
        done = remote(h, infprov_home, f"cat /home/ubuntu/infprov-pbtest-{test_id}/{h.name}/done.txt 2>/dev/null")
        assert done == ("" if h.name == bad else "done"), h.name


def test_cli_play_json(fleet: list[Host], book_dir: Path, repo: str, infprov_home: Path, test_id: str) -> None:
    """`infprov play FILE` (ansible-core) on hosts whose keys this test pins first (no trust on first use there)."""
    inv = infprov_home / "inventory.yml"
    store.upsert_hosts(inv, "fleet", fleet)
    for h in fleet:
        with _conn_pinning(h, infprov_home) as c:
            c.run("true")
    env = {**os.environ, "INFPROV_HOME": str(infprov_home)}
    base = ["infprov", "play", str(book_dir / "converge.yml"), "--inventory", str(inv), "--host", fleet[2].name]
    variables = ["-e", f"test_id={test_id} workers=2", "-e", json.dumps({"repo": repo})]
    proc = subprocess.run([*base, "--json", *variables], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["ok"] is True and list(doc["stats"]) == [fleet[2].name]
    text = subprocess.run([*base, "--check", *variables], capture_output=True, text=True, env=env)
    assert text.returncode == 0, text.stderr
    assert "PLAY RECAP" in text.stdout and "changed=0" in text.stdout
    assert f"{fleet[2].name}: a file from the files folder: ok" in progress_lines(text.stderr)  # on stderr
    bad = subprocess.run([*base, "--name", "fleet"], capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and "cannot be used together" in bad.stderr


@pytest.mark.skipif(shutil.which("ansible-playbook") is None, reason="ansible-core is not installed")
def test_ansible_runs_the_same_playbook_and_inventory(
    fleet: list[Host], book_dir: Path, repo: str, infprov_home: Path, test_id: str
) -> None:
    inv = infprov_home / "inventory.yml"
    store.upsert_hosts(inv, "fleet", fleet)
    env = {**os.environ, "ANSIBLE_HOST_KEY_CHECKING": "False", "ANSIBLE_PIPELINING": "True",
           "ANSIBLE_NOCOLOR": "1", "ANSIBLE_RETRY_FILES_ENABLED": "False"}  # fmt: skip
    listed = subprocess.run(["ansible-inventory", "-i", str(inv), "--list"], capture_output=True, text=True, env=env)
    assert listed.returncode == 0, listed.stderr
    doc = json.loads(listed.stdout)
    assert sorted(doc["fleet"]["hosts"]) == sorted(h.name for h in fleet)
    assert doc["_meta"]["hostvars"][fleet[0].name]["ansible_port"] == fleet[0].port
    extra = json.dumps({"test_id": test_id, "repo": repo, "workers": 4})
    ours = play(book_dir / "converge.yml", fleet, infprov_home, extra_vars=json.loads(extra))
    assert ours.ok
    proc = subprocess.run(
        ["ansible-playbook", "-i", str(inv), str(book_dir / "converge.yml"), "-e", extra],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    recap = proc.stdout[proc.stdout.index("PLAY RECAP") :]
    for h in fleet:  # ansible agrees the hosts infprov converged are converged
        line = next(ln for ln in recap.splitlines() if ln.startswith(h.name))
        assert "changed=0" in line and "failed=0" in line, proc.stdout


def test_pinned_host_key_refuses_an_impostor(tmp_path: Path, infprov_home: Path) -> None:
    reason = loopback_sshd.can_run()
    if reason:
        pytest.skip(reason)
    (daemon,) = loopback_sshd.start_hosts(tmp_path / "sshd", 1)
    try:
        h = Host("i-pinned", daemon.address, port=daemon.port, key_file=str(daemon.key_file))
        book = tmp_path / "ping.yml"
        book.write_text(
            "- hosts: all\n  gather_facts: false\n  tasks:\n    - command: hostname\n      changed_when: false\n"
        )
        known = infprov_home / "known_hosts"
        first = play(book, [h], infprov_home)
        assert first.ok
        pinned = known.read_text()
        assert pinned.startswith(f"[127.0.0.1]:{daemon.port} ssh-ed25519 ")
        real = paramiko.Ed25519Key.from_private_key_file(str(daemon.host_key))

        daemon.stop()
        daemon.new_host_key()
        daemon.start()
        refused = play(book, [h], infprov_home)
        assert refused.stats[h.name].unreachable == 1
        failure = refused.failures()[0]
        assert "CHANGED" in failure.msg
        assert f"ssh-keygen -R '[127.0.0.1]:{daemon.port}' -f {known}" in failure.hint
        assert known.read_text() == pinned, "a refused key is never recorded"

        # the hook for EC2 console fingerprints: a first-seen key must be among them
        fresh = infprov_home / "fresh_known_hosts"
        impostor = paramiko.Ed25519Key.from_private_key_file(str(daemon.host_key))
        wrong = play(book, [h], infprov_home, known_hosts=fresh, expected_host_keys={h.name: [fingerprint(real)]})
        assert wrong.stats[h.name].unreachable == 1 and "not among" in wrong.failures()[0].msg
        assert not fresh.exists() or fresh.read_text() == ""
        right = play(book, [h], infprov_home, known_hosts=fresh, expected_host_keys={h.name: [fingerprint(impostor)]})
        assert right.ok
    finally:
        daemon.stop()


def test_unreachable_host_is_reported_and_the_rest_go_on(fleet: list[Host], tmp_path: Path, infprov_home: Path) -> None:
    closed = Host("i-gone", "127.0.0.1", port=loopback_sshd.free_port(), key_file=fleet[0].key_file)
    book = tmp_path / "ping.yml"
    book.write_text("- hosts: all\n  gather_facts: false\n  tasks:\n    - command: 'true'\n      changed_when: false\n")
    result = play(book, [closed, fleet[0]], infprov_home, connect_timeout=3)
    assert result.stats["i-gone"].unreachable == 1
    assert result.stats[fleet[0].name].ok == 1
    assert "cannot connect" in result.failures()[0].msg


def test_connection_reads_through_a_quick_ack_socket_with_aes_gcm(fleet: list[Host], infprov_home: Path) -> None:
    """The socket paramiko reads from is ours, acknowledging at once (sshd's Nagle + delayed ACKs cost
    every connection's first command ~45 ms otherwise); the cipher sshd agreed to is AES-GCM (no
    per-packet HMAC check in Python); commands work through it."""
    from infprov.playbooks.connection import _QuickAckSocket

    conn = SshConnection(fleet[0], infprov_home / "known_hosts")
    try:
        assert conn.run("echo first").out == "first\n"
        assert conn._conn is not None and conn._conn.transport is not None
        sock = conn._conn.transport.sock
        assert isinstance(sock, _QuickAckSocket)
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        transport = conn._conn.transport
        assert transport.local_cipher in ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")
        assert transport.remote_cipher == transport.local_cipher
        assert conn.run("echo second").out == "second\n"
    finally:
        conn.close()


def test_next_commands_channel_is_opened_while_one_runs(fleet: list[Host], infprov_home: Path) -> None:
    """After a command, the next one's channel is already open on the same connection; the next command
    takes it; one the host closed in between is replaced; close() closes the spare too."""
    conn = SshConnection(fleet[0], infprov_home / "known_hosts")
    try:
        assert conn.run("echo one").out == "one\n"
        spare = conn._spare
        assert spare is not None
        chan = spare.result(timeout=10)
        assert chan.active and not chan.closed
        assert conn._conn is not None and chan.get_transport() is conn._conn.transport
        assert conn.run("echo two").out == "two\n"
        assert chan.closed  # it ran `echo two` and was closed after it
        assert conn._spare is not None and conn._spare is not spare
        conn._spare.result(timeout=10).close()  # the spare dies before it is used
        assert conn.run("echo three").out == "three\n"
        last = conn._spare
        assert last is not None
        last_chan = last.result(timeout=10)
    finally:
        conn.close()
    assert last_chan.closed


def test_the_connector_interface_over_ssh(fleet: list[Host], infprov_home: Path, tmp_path: Path) -> None:
    """put_file, get_file and stream (with its stop signal) on a real sshd, as on the local connector."""
    import threading

    conn = SshConnection(fleet[0], infprov_home / "known_hosts")
    where = f"/tmp/infprov-conn-{uuid.uuid4().hex[:8]}"
    try:
        assert conn.run(f"mkdir -m 700 {where}").exit_code == 0
        data = bytes(range(256)) * 1024
        assert conn.put_file(f"{where}/a b", data, mode=0o640).exit_code == 0
        assert conn.run(f"stat -c %a '{where}/a b'").out.strip() == "640"
        assert conn.get_file(f"{where}/a b") == data
        assert conn.get_file(f"{where}/missing") is None
        lines: list[str] = []
        stop = threading.Event()

        def on_line(line: str) -> None:
            lines.append(line)
            if line == "waiting":
                stop.set()

        res = conn.stream(f"echo waiting; while [ ! -e {where}/stop ]; do sleep 0.05; done; echo done",
                          on_line, stop=stop, on_stop=f"touch {where}/stop")
        assert res.stopped and res.exit_code == 0 and lines == ["waiting", "done"]
    finally:
        conn.run(f"rm -rf {where}")
        conn.close()
