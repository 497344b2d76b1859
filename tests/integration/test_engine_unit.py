"""The playbook engine without SSH: module decisions and task keywords on a local shell, in the forms infprov's
own playbooks (server.yml, bench.yml, bundle.yml) write them."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from infprov.playbooks.engine import run_task
from infprov.playbooks.parsing import parse_playbook
from infprov.playbooks.results import Event
from tests.local_engine import LocalConnection, ScriptedConnection, run_local

HEAD = "- hosts: all\n  gather_facts: false\n  tasks:\n"


# ---------------------------------------------------------------- modules: look, decide, act (local shell)
def test_copy_and_file_converge_and_check_mode(tmp_path: Path) -> None:
    (tmp_path / "files" / "inf1").mkdir(parents=True)
    (tmp_path / "files" / "app.conf").write_text("a=1\n")
    (tmp_path / "files" / "inf1" / "start.sh").write_text("echo start\n")
    out = tmp_path / "out"
    book = f"""
- hosts: all
  gather_facts: false
  vars: {{out: "{out}"}}
  tasks:
    - ansible.builtin.file: {{path: "{{{{ out }}}}/d/e", state: directory, mode: "0750"}}
    - ansible.builtin.copy: {{src: app.conf, dest: "{{{{ out }}}}/d/app.conf", mode: "0600"}}
    - copy:
        src: "files/{{{{ item.src }}}}"
        dest: "{{{{ out }}}}/d/e/{{{{ item.dest }}}}"
        mode: "0755"
      loop:
        - {{src: inf1/start.sh, dest: start.sh}}
      loop_control:
        label: "{{{{ item.dest }}}}"
"""
    out.mkdir()
    dry = run_local(tmp_path, book, check=True)
    assert dry.ok, dry.failures()
    assert list(out.iterdir()) == [], "check mode must write nothing"
    first = run_local(tmp_path, book)
    assert first.ok, first.failures()
    assert first.stats["h1"].changed == 3
    assert (out / "d" / "app.conf").read_text() == "a=1\n"
    assert (out / "d" / "app.conf").stat().st_mode & 0o777 == 0o600
    assert (out / "d").stat().st_mode & 0o777 == 0o750 and (out / "d" / "e").stat().st_mode & 0o777 == 0o750
    assert (out / "d" / "e" / "start.sh").read_text() == "echo start\n"
    second = run_local(tmp_path, book)
    assert second.ok and second.stats["h1"].changed == 0, [t for t in second.tasks if t.status == "changed"]
    (out / "d" / "app.conf").chmod(0o644)  # only the mode drifted: chmod, not a rewrite
    third = run_local(tmp_path, book)
    assert third.stats["h1"].changed == 1
    assert (out / "d" / "app.conf").stat().st_mode & 0o777 == 0o600
    (tmp_path / "files" / "app.conf").write_text("a=2\n")
    assert run_local(tmp_path, book).stats["h1"].changed == 1 and (out / "d" / "app.conf").read_text() == "a=2\n"


def test_copy_sends_a_large_file_in_chunks_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A model upload of gigabytes is read in chunks, never whole: a file of several chunks arrives byte for
    byte, its chunked SHA-256 matches the host's (the next run changes nothing), and nothing reads it in one
    piece."""
    import hashlib
    import os

    from infprov.playbooks.connection import STDIN_CHUNK

    (tmp_path / "files").mkdir()
    big = tmp_path / "files" / "model.upload"
    big.write_bytes(os.urandom(3 * STDIN_CHUNK + 17))
    monkeypatch.setattr(Path, "read_bytes", lambda self: pytest.fail(f"{self} was read whole"))
    out = tmp_path / "out"
    out.mkdir()
    book = HEAD + f"""    - copy: {{src: model.upload, dest: "{out}/model.upload", mode: "0600"}}
"""
    first = run_local(tmp_path, book)
    assert first.ok and first.stats["h1"].changed == 1, first.failures()
    again = run_local(tmp_path, book)  # the chunked SHA-256 is the one the host computes of what it got
    assert again.ok and again.stats["h1"].changed == 0, again.failures()
    monkeypatch.undo()
    assert hashlib.sha256((out / "model.upload").read_bytes()).digest() == hashlib.sha256(big.read_bytes()).digest()


def test_file_absent_removes_a_folder_with_what_it_holds_then_changes_nothing(tmp_path: Path) -> None:
    gone = tmp_path / "run folder"
    (gone / "inner").mkdir(parents=True)
    (gone / "inner" / "results.json").write_text("{}")
    book = HEAD + f"""    - file: {{path: "{gone}", state: absent}}
"""
    dry = run_local(tmp_path, book, check=True)
    assert dry.ok and dry.stats["h1"].changed == 1 and gone.exists(), "check mode removes nothing"
    first = run_local(tmp_path, book)
    assert first.ok and first.stats["h1"].changed == 1, first.failures()
    assert not gone.exists()
    second = run_local(tmp_path, book)
    assert second.ok and second.stats["h1"].changed == 0


def test_copy_and_file_failures(tmp_path: Path) -> None:
    (tmp_path / "files" / "folder").mkdir(parents=True)
    (tmp_path / "plain").write_text("x")
    book = HEAD + f"""    - file: {{path: "{tmp_path}/plain", state: directory}}
      register: over
      failed_when: false
    - copy: {{src: folder, dest: "{tmp_path}/x"}}
      register: tree
      failed_when: false
    - copy: {{src: absent.txt, dest: "{tmp_path}/x"}}
      register: missing
      failed_when: false
    - copy: {{src: "{tmp_path}/plain", dest: "{tmp_path}/no/such/x"}}
"""
    result = run_local(tmp_path, book)
    reg = result.registered["h1"]
    assert "is a file, not a directory" in reg["over"]["msg"]
    assert "copying folders is not supported" in reg["tree"]["msg"]
    assert "could not find src 'absent.txt'" in reg["missing"]["msg"]
    assert result.failures()[0].msg == f"cannot write {tmp_path}/no/such/x"  # copy makes no parent, as Ansible


def test_copy_in_check_mode_sends_no_write(tmp_path: Path) -> None:
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "x.conf").write_text("x")
    conn = ScriptedConnection([(0, "A\nA\n")])  # stat: dest and dest/x.conf are absent
    book = parse_playbook(HEAD + "    - copy: {src: x.conf, dest: /etc/x.conf}\n", tmp_path / "b.yml")
    outcome = run_task(book.plays[0].tasks[0], host_name="h", variables=[{}], conn=conn, check=True,
                       base_dir=tmp_path)
    assert outcome.status == "changed"
    assert len(conn.commands) == 1 and "mv -f" not in conn.commands[0]


def test_commands_run_through_sh_and_command_expands_home(tmp_path: Path) -> None:
    conn = ScriptedConnection([(0, "0\n"), (0, "/root\n")])
    book = parse_playbook(HEAD + "    - command: id -u\n    - command: echo ~ $HOME\n", tmp_path / "b.yml")
    for task in book.plays[0].tasks:
        run_task(task, host_name="h", variables=[{}], conn=conn, check=False, base_dir=tmp_path)
    assert conn.commands[0] == "/bin/sh -c 'exec id -u'"
    assert conn.commands[1].startswith("/bin/sh -c 'exec python3 -c ") and "expanduser" in conn.commands[1]


def test_shell_failure_report_stops_the_host(tmp_path: Path) -> None:
    marker = tmp_path / "made"
    book = HEAD + f"""    - ansible.builtin.shell: |
        echo made > {marker}
        cat {marker}
      register: seen
      changed_when: false
    - ansible.builtin.assert:
        that: ["seen.stdout == 'made'", "seen.rc == 0"]
        quiet: true
    - shell: "echo step one; echo broken >&2; exit 3"
    - command: echo never
"""
    first = run_local(tmp_path, book)
    failed = first.failures()
    assert len(failed) == 1
    f = failed[0]
    assert f.task == "shell" and f.rc == 3 and f.command == "echo step one; echo broken >&2; exit 3"
    assert "step one" in f.tail and "broken" in f.tail
    assert first.stats["h1"].ok == 2 and first.stats["h1"].failed == 1
    assert [t.task for t in first.tasks] == ["shell", "assert", "shell"], "a failed host stops at its failed task"
    log = Path(str(first.log_path)).read_text()
    assert "exit code: 3" in log and "PLAY RECAP" in log


def test_when_loop_register_changed_when_failed_when_no_log(tmp_path: Path) -> None:
    book = f"""
- hosts: all
  gather_facts: false
  vars:
    out: "{tmp_path}/o"
    items_list: [{{cmd: "echo a", file: a}}, {{cmd: "exit 4", file: b}}, {{cmd: "echo INFPROV_CHANGED", file: c}}]
  tasks:
    - file: {{path: "{{{{ out }}}}", state: directory}}
    - shell: "{{{{ item.cmd }}}}"
      loop: "{{{{ items_list }}}}"
      loop_control: {{label: "{{{{ item.file }}}}"}}
      register: out_
      changed_when: false
      failed_when: false
      no_log: true
    - shell: echo INFPROV_CHANGED
      register: marked
      changed_when: "'INFPROV_CHANGED' in marked.stdout"
    - command: echo skipped
      when: out_.results[1].rc == 0
      register: skipped_
    - command: "false"
      register: tolerated
      failed_when:
        - tolerated.rc != 0
        - tolerated.rc != 1
    - ansible.builtin.assert:
        that:
          - out_.results | length == 3
          - out_.results[0].stdout == 'a'
          - out_.results[1].rc == 4
          - marked.changed
          - skipped_.skipped
        fail_msg: "not as expected"
"""
    result = run_local(tmp_path, book)
    assert result.ok, result.failures()
    assert [t.status for t in result.tasks] == ["changed", "ok", "changed", "skipped", "changed", "ok"]
    loop_task = result.tasks[1]
    assert loop_task.msg == "(output hidden by no_log)" and loop_task.items == 3


def test_task_vars_folded_text_and_a_for_loop(tmp_path: Path) -> None:
    """server.yml's container task: task vars, a folded `>-` value with `{% for %}`, `| trim | quote`."""
    book = f"""
- hosts: all
  gather_facts: false
  vars:
    image: img
    out: "{tmp_path}/args"
  tasks:
    - shell: printf '%s\\n' dev0 dev1
      register: devs
      changed_when: false
    - shell: |
        want={{{{ run_args | trim | quote }}}}
        also={{{{ (run_args | trim) | replace(image ~ ' ', 'other ') | quote }}}}
        printf '%s\\n%s\\n' "$want" "$also" > {{{{ out }}}}
      vars:
        run_args: >-
          {{% for dev in devs.stdout_lines %}}--device {{{{ dev }}}} {{% endfor %}}
          -e A={{{{ 'x' if image == 'img' else 'y' }}}}
          {{{{ image }}}} start
"""
    result = run_local(tmp_path, book)
    assert result.ok, result.failures()
    assert (tmp_path / "args").read_text() == (
        "--device dev0 --device dev1  -e A=x img start\n--device dev0 --device dev1  -e A=x other start\n")


def test_undefined_variable_fails_the_task_not_the_run(tmp_path: Path) -> None:
    result = run_local(tmp_path, HEAD + "    - command: 'echo {{ nope }}'\n", hosts=2)
    assert [t.status for t in result.tasks] == ["failed", "failed"]
    assert "'nope' is undefined" in result.tasks[0].msg


def test_one_unreachable_host_does_not_stop_the_others(tmp_path: Path) -> None:
    book = HEAD + f"    - shell: echo {{{{ inventory_hostname }}}} >> {tmp_path}/seen\n"
    result = run_local(tmp_path, book, hosts=3, dead={"h2"}, forks=2)
    assert result.stats["h2"].unreachable == 1
    assert sorted((tmp_path / "seen").read_text().split()) == ["h1", "h3"]
    assert result.failed_hosts == ["h2"] and result.failures()[0].hint


def test_progress_events_for_a_long_task(tmp_path: Path) -> None:
    events: list[Event] = []
    run_local(tmp_path, HEAD + "    - shell: sleep 1.2\n", events=events, progress_after=0.3)
    kinds = [e.kind for e in events]
    assert kinds[0] == "play" and "task_start" in kinds and "task_running" in kinds and kinds[-1] == "task_end"


def test_check_mode_skips_commands_and_streams(tmp_path: Path) -> None:
    book = HEAD + f"""    - shell: touch {tmp_path}/x
    - infprov_stream: {{cmd: "sleep 30"}}
    - command: sleep 30
"""
    start = time.monotonic()
    result = run_local(tmp_path, book, check=True)
    assert time.monotonic() - start < 5, "check mode must not run commands"
    assert [t.status for t in result.tasks] == ["skipped", "skipped", "skipped"]
    assert not (tmp_path / "x").exists()


def test_play_tags_select_plays(tmp_path: Path) -> None:
    book = (f"- hosts: all\n  gather_facts: false\n  tags: [probe]\n  tasks:\n    - shell: echo probe >> {tmp_path}/t\n"
            f"- hosts: all\n  gather_facts: false\n  tags: [run]\n  tasks:\n    - shell: echo run >> {tmp_path}/t\n"
            f"- hosts: all\n  gather_facts: false\n  tasks:\n    - shell: echo untagged >> {tmp_path}/t\n")
    run_local(tmp_path, book, tags=["probe"])
    assert (tmp_path / "t").read_text() == "probe\n"
    run_local(tmp_path, book, skip_tags=["probe"])
    assert (tmp_path / "t").read_text() == "probe\nrun\nuntagged\n"


# ---------------------------------------------------------------- git, fetch
@pytest.fixture()
def git_repo(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    env = ["-c", "user.name=t", "-c", "user.email=t@example.invalid"]

    def git(*args: str) -> str:
        return subprocess.run(["git", *env, *args], cwd=work, check=True, capture_output=True, text=True).stdout

    git("init", "-q", "-b", "main")
    (work / "f").write_text("1\n")
    git("add", "f")
    git("commit", "-q", "-m", "one")
    git("tag", "v1")
    git("branch", "r22.04")
    (work / "f").write_text("2\n")
    git("commit", "-q", "-am", "two")
    return work


def test_git_clones_once_and_leaves_a_checkout_alone(tmp_path: Path, git_repo: Path) -> None:
    """update: false (server.yml's python_backend): cloned at the version, then never moved, as Ansible does."""
    dest = tmp_path / "checkout"
    book = HEAD + f"    - ansible.builtin.git:\n        repo: '{git_repo}'\n        dest: '{dest}'\n" \
                  "        version: '{{ v }}'\n        update: false\n"
    missing = run_local(tmp_path, book, extra={"v": "nope"})
    assert "not a branch, tag or commit" in missing.failures()[0].msg
    dry = run_local(tmp_path, book, extra={"v": "r22.04"}, check=True)
    assert dry.tasks[0].status == "changed" and not dest.exists()
    first = run_local(tmp_path, book, extra={"v": "r22.04"})
    assert first.ok and first.tasks[0].status == "changed"
    assert (dest / "f").read_text() == "1\n"
    (dest / "f").write_text("local change\n")
    for version in ("r22.04", "main", "v1"):
        again = run_local(tmp_path, book, extra={"v": version})
        assert again.tasks[0].status == "ok" and (dest / "f").read_text() == "local change\n"
    tag_dest = tmp_path / "tagged"
    tag = run_local(tmp_path, book.replace(str(dest), str(tag_dest)), extra={"v": "v1"})
    assert tag.tasks[0].status == "changed" and (tag_dest / "f").read_text() == "1\n"


def test_fetch_flat_and_a_missing_file(tmp_path: Path) -> None:
    src = tmp_path / "remote.txt"
    src.write_text("data\n")
    book = HEAD + f"""    - fetch: {{src: "{src}", dest: "{tmp_path}/flat.txt", flat: true}}
    - fetch: {{src: "{tmp_path}/absent", dest: "{tmp_path}/none.txt", flat: true, fail_on_missing: false}}
"""
    first = run_local(tmp_path, book)
    assert first.ok, first.failures()
    assert (tmp_path / "flat.txt").read_text() == "data\n" and not (tmp_path / "none.txt").exists()
    assert [t.status for t in first.tasks] == ["changed", "ok"]
    second = run_local(tmp_path, book)
    assert second.stats["h1"].changed == 0


def test_assert_needs_no_connection(tmp_path: Path) -> None:
    result = run_local(tmp_path, HEAD + "    - assert: {that: ['1 == 1']}\n", dead={"h1"})
    assert result.ok and result.tasks[0].msg == "All assertions passed"


def test_a_local_connection_runs_what_the_engine_sends(tmp_path: Path) -> None:
    conn = LocalConnection()
    task = parse_playbook(HEAD + '    - command: "true"\n', tmp_path / "b.yml").plays[0].tasks[0]
    outcome = run_task(task, host_name="h", variables=[{}], conn=conn, check=False, base_dir=tmp_path)
    assert outcome.status == "changed" and conn.commands == ["/bin/sh -c 'exec true'"]
