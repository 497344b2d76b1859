"""The connector interface (run, stream, put_file, get_file) on its local implementation, the engine's
streamed command (infprov_stream) with its output events and stop signal, and the fleet's one result shape.
The same interface over SSH is tested against sandbox hosts in tests/sandbox/test_playbooks_ssh.py."""

from __future__ import annotations

import stat
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from infprov.inventory.model import Host, Inventory
from infprov.playbooks.errors import FileTooLarge, HostUnreachable
from infprov.playbooks.localconn import LocalConnection
from infprov.playbooks.results import Event, HostOutcome
from infprov.playbooks.runner import run_playbook


# ---------------------------------------------------------------- the local connector
def test_local_run_stream_and_files(tmp_path: Path) -> None:
    conn = LocalConnection()
    got = conn.run("printf 'a\\nb'; echo err >&2; exit 3")
    assert (got.exit_code, got.out, got.err) == (3, "a\nb", "err\n")
    lines: list[str] = []
    res = conn.stream("echo one; echo two >&2; printf three; exit 4", lines.append)
    assert (res.exit_code, res.stopped) == (4, False)
    assert lines == ["one", "three"]  # stream carries stdout; a caller that wants stderr merges it (2>&1)
    target = tmp_path / "dir" / "f.bin"
    target.parent.mkdir()
    put = conn.put_file(str(target), b"\x00bytes\xff", mode=0o640)
    assert put.exit_code == 0 and target.read_bytes() == b"\x00bytes\xff"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert [p.name for p in target.parent.iterdir()] == ["f.bin"]  # no temporary file left beside it
    assert conn.get_file(str(target)) == b"\x00bytes\xff"
    assert conn.get_file(str(tmp_path / "missing")) is None
    assert conn.get_file(str(tmp_path)) is None  # a folder is not a file
    with pytest.raises(FileTooLarge, match="over 3 bytes"):
        conn.get_file(str(target), limit=3)


def test_a_hostile_path_is_a_path_not_a_command(tmp_path: Path) -> None:
    conn = LocalConnection()
    odd = tmp_path / "a b;touch PWNED;$(id)'x"
    assert conn.put_file(str(odd), b"x").exit_code == 0
    assert conn.get_file(str(odd)) == b"x"
    assert sorted(p.name for p in tmp_path.iterdir()) == [odd.name]


def test_stop_runs_on_stop_once_and_keeps_reading_to_the_end(tmp_path: Path) -> None:
    conn = LocalConnection()
    flag = tmp_path / "stop-now"
    stop = threading.Event()
    lines: list[str] = []
    script = (f"echo started; while [ ! -e {flag} ]; do sleep 0.05; done; echo 'saw the stop'; exit 130")

    def later() -> None:
        while "started" not in lines:
            time.sleep(0.02)
        stop.set()

    threading.Thread(target=later, daemon=True).start()
    res = conn.stream(script, lines.append, stop=stop, on_stop=f"touch {flag}; echo kill >> {tmp_path / 'kills'}")
    assert res.stopped and res.exit_code == 130
    assert lines == ["started", "saw the stop"]
    assert (tmp_path / "kills").read_text() == "kill\n"


# ---------------------------------------------------------------- the engine's streamed command
def _inv(n: int = 1) -> Inventory:
    return Inventory(tuple(Host(f"h{i + 1}", "127.0.0.1", cluster="c") for i in range(n)))


def _run(tmp_path: Path, text: str, **kw: Any) -> Any:
    book = tmp_path / "book.yml"
    book.write_text(text)
    return run_playbook(book, _inv(kw.pop("hosts", 1)), connector=lambda h: LocalConnection(h.name),
                        known_hosts=tmp_path / "kh", runs_dir=tmp_path / "runs", **kw)


STREAM = """
- hosts: all
  gather_facts: false
  tasks:
    - name: talk
      infprov_stream:
        cmd: "echo one; echo two >&2; exit {{ code | default(0) }}"
      register: said
"""


def test_infprov_stream_hands_every_line_to_the_events_as_it_comes(tmp_path: Path) -> None:
    events: list[Event] = []
    result = _run(tmp_path, STREAM, on_event=events.append, hosts=2)
    assert result.ok
    out = sorted((e.host, e.line) for e in events if e.kind == "output")
    assert out == [("h1", "one"), ("h1", "two"), ("h2", "one"), ("h2", "two")]  # stderr merged in
    said = result.registered["h1"]["said"]
    assert said["rc"] == 0 and said["stdout_lines"] == ["one", "two"] and said["stopped"] is False
    assert said["changed"] is True and said["start"]
    log = result.log_path.read_text()
    assert "h1 | one" in log and "h2 | two" in log


def test_infprov_stream_fails_on_a_non_zero_exit_with_the_tail(tmp_path: Path) -> None:
    result = _run(tmp_path, STREAM, extra_vars={"code": 7})
    [failure] = result.failures()
    assert failure.rc == 7 and "two" in failure.tail and failure.msg == "non-zero return code"
    [outcome] = result.outcomes()
    assert not outcome.ok and outcome.error == "talk: non-zero return code" and "one" in outcome.tail


def test_a_stopped_run_starts_no_new_streamed_command_but_finishes_the_play(tmp_path: Path) -> None:
    stop = threading.Event()
    stop.set()
    book = """
- hosts: all
  gather_facts: false
  tasks:
    - infprov_stream: "echo {{ item }} >> {{ out }}"
      loop: [a, b]
      register: ran
    - command: "echo after"
      register: after
"""
    result = _run(tmp_path, book, stop=stop, extra_vars={"out": str(tmp_path / "ran")})
    assert result.ok and not (tmp_path / "ran").exists()
    assert [r["skipped"] for r in result.registered["h1"]["ran"]["results"]] == [True, True]
    assert result.registered["h1"]["after"]["stdout"] == "after"


def test_infprov_stream_is_not_one_of_ansibles_names(tmp_path: Path) -> None:
    from infprov.playbooks.modules import MODULES

    assert "infprov_stream" in MODULES and "ansible.builtin.infprov_stream" not in MODULES


# ---------------------------------------------------------------- the fleet's one shape
class _Gone(LocalConnection):
    def run(self, command: str, *, stdin: bytes | None = None, timeout: float | None = None, keep: int = 0) -> Any:
        raise HostUnreachable("127.0.0.1:22: cannot connect: refused", "is sshd running?")


def test_outcomes_give_every_host_the_same_shape(tmp_path: Path) -> None:
    book = tmp_path / "book.yml"
    book.write_text("""
- hosts: all
  gather_facts: false
  tasks:
    - name: touch
      command: "touch {{ out }}/{{ inventory_hostname }}"
    - name: judge
      command: "test {{ inventory_hostname }} != h2"
""")
    conns = {"h3": _Gone("h3")}
    result = run_playbook(book, _inv(3), connector=lambda h: conns.get(h.name) or LocalConnection(h.name),
                          extra_vars={"out": str(tmp_path)}, known_hosts=tmp_path / "kh", runs_dir=tmp_path / "r")
    ok, failed, gone = result.outcomes()
    assert ok == HostOutcome("h1", ok=True, changed=2, seconds=ok.seconds)
    assert not failed.ok and failed.changed == 1 and failed.error == "judge: non-zero return code"
    assert not failed.unreachable and failed.seconds > 0
    assert not gone.ok and gone.unreachable and "cannot connect" in gone.error
    assert result.outcomes(["h2"]) == [failed]
    assert result.to_dict()["hosts"] == [o.to_dict() for o in (ok, failed, gone)]
    missing = result.outcome("h9")
    assert not missing.ok and "not run" in missing.error
