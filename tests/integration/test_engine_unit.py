"""The playbook engine without SSH: module decisions and task keywords on a local shell."""

from __future__ import annotations

import hashlib
import http.server
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infprov.playbooks.engine import run_task
from infprov.playbooks.parsing import Play, parse_playbook
from infprov.playbooks.results import Event
from tests.local_engine import LocalConnection, ScriptedConnection, run_local


# ---------------------------------------------------------------- modules: look, decide, act (local shell)
def test_copy_template_file_converge_and_check_mode(tmp_path: Path) -> None:
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "app.conf").write_text("a=1\n")
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "motd.j2").write_text("host {{ inventory_hostname }}\n{% if n > 1 %}many\n{% endif %}")
    out = tmp_path / "out"
    book = f"""
- hosts: all
  gather_facts: false
  vars: {{out: "{out}", n: 2}}
  tasks:
    - file: {{path: "{{{{ out }}}}/d", state: directory, mode: "0750"}}
    - copy: {{content: "hi\\n", dest: "{{{{ out }}}}/d/hi.txt", mode: "0600"}}
    - copy: {{src: app.conf, dest: "{{{{ out }}}}/d/"}}
    - template: {{src: motd.j2, dest: "{{{{ out }}}}/d/motd"}}
    - file: {{path: "{{{{ out }}}}/d/link", src: "{{{{ out }}}}/d/hi.txt", state: link, force: true}}
    - lineinfile: {{path: "{{{{ out }}}}/d/settings.ini", line: "b=2", create: true}}
    - file: {{path: "{{{{ out }}}}/gone", state: absent}}
"""
    out.mkdir()
    dry = run_local(tmp_path, book, check=True)
    assert dry.ok, dry.failures()
    assert list(out.iterdir()) == [], "check mode must write nothing"
    first = run_local(tmp_path, book)
    assert first.ok, first.failures()
    assert first.stats["h1"].changed == 6
    assert (out / "d" / "hi.txt").read_text() == "hi\n"
    assert (out / "d" / "hi.txt").stat().st_mode & 0o777 == 0o600
    assert (out / "d").stat().st_mode & 0o777 == 0o750
    assert (out / "d" / "app.conf").read_text() == "a=1\n"
    assert (out / "d" / "settings.ini").read_text() == "b=2\n"
    assert (out / "d" / "motd").read_text() == "host h1\nmany\n"
    assert (out / "d" / "link").readlink() == out / "d" / "hi.txt"
    second = run_local(tmp_path, book)
    assert second.ok and second.stats["h1"].changed == 0, [t for t in second.tasks if t.status == "changed"]
    (out / "d" / "hi.txt").chmod(0o644)  # only the mode drifted: chmod, not a rewrite
    third = run_local(tmp_path, book)
    assert third.stats["h1"].changed == 1
    assert (out / "d" / "hi.txt").stat().st_mode & 0o777 == 0o600


def test_edits_through_a_symlink_keep_the_content_clean(tmp_path: Path) -> None:
    real = tmp_path / "real.conf"
    real.write_text("port=1\n")
    (tmp_path / "link.conf").symlink_to(real)
    book = f"""
- hosts: all
  gather_facts: false
  tasks:
    - lineinfile: {{path: "{tmp_path}/link.conf", line: "host=a"}}
    - replace: {{path: "{tmp_path}/link.conf", regexp: "^port=1$", replace: "port=2"}}
"""
    assert run_local(tmp_path, book).ok
    assert (tmp_path / "link.conf").read_text() == "port=2\nhost=a\n"
    assert run_local(tmp_path, book).stats["h1"].changed == 0


def test_copy_in_check_mode_sends_no_write(tmp_path: Path) -> None:
    conn = ScriptedConnection([(0, "A\n")])  # stat: the file is absent
    book = parse_playbook("- hosts: all\n  gather_facts: false\n  tasks:\n    - copy: {content: x, dest: /etc/x.conf}\n", tmp_path / "b.yml")  # noqa: E501
    play = book.plays[0]
    outcome = run_task(
        play.tasks[0], host_name="h", variables=[{}], conn=conn, check=True, play=play, base_dir=tmp_path
    )
    assert outcome.status == "changed"
    assert len(conn.commands) == 1 and "mv -f" not in conn.commands[0]


def test_become_and_environment_wrap_the_command(tmp_path: Path) -> None:
    conn = ScriptedConnection([(0, "0\n")])
    book = parse_playbook(
        "- hosts: all\n  gather_facts: false\n  become: true\n  environment: {A: '1'}\n  tasks:\n"
        "    - command: id -u\n      become_user: postgres\n",
        tmp_path / "b.yml",
    )
    play = book.plays[0]
    run_task(play.tasks[0], host_name="h", variables=[{}], conn=conn, check=False, play=play, base_dir=tmp_path)
    assert conn.commands[0].startswith("sudo -n -H -u postgres -- env A=1 /bin/sh -c ")


def test_shell_creates_removes_and_failure_report(tmp_path: Path) -> None:
    marker = tmp_path / "made"
    book = f"""
- hosts: all
  gather_facts: false
  tasks:
    - shell: echo made > {marker}
      args: {{creates: "{marker}"}}
    - command: cat {marker}
      register: seen
      changed_when: false
    - assert: {{that: ["seen.stdout == 'made'", "seen.rc == 0"]}}
    - shell: "echo step one; echo broken >&2; exit 3"
    - debug: msg=never
"""
    first = run_local(tmp_path, book)
    failed = first.failures()
    assert len(failed) == 1
    f = failed[0]
    assert f.task == "shell" and f.rc == 3 and f.command == "echo step one; echo broken >&2; exit 3"
    assert "step one" in f.tail and "broken" in f.tail
    assert first.stats["h1"].ok == 3 and first.stats["h1"].failed == 1
    assert not any(t.task == "debug" for t in first.tasks), "a failed host stops at its failed task"
    second = run_local(tmp_path, book)
    assert second.tasks[0].status == "ok" and "not run command since" in second.tasks[0].msg
    log = Path(str(first.log_path)).read_text()
    assert "exit code: 3" in log and "PLAY RECAP" in log


def test_when_loop_register_failed_when_ignore_errors(tmp_path: Path) -> None:
    out = tmp_path / "o"
    book = f"""
- hosts: all
  gather_facts: false
  vars: {{items_list: [a, b, c]}}
  tasks:
    - file: {{path: "{out}", state: directory}}
    - copy: {{content: "{{{{ item }}}}", dest: "{out}/{{{{ item }}}}"}}
      loop: "{{{{ items_list }}}}"
      when: item != 'b'
      register: made
    - shell: exit 1
      ignore_errors: true
      register: bad
    - command: "true"
      failed_when: bad is succeeded
    - set_fact: {{count: "{{{{ made.results | selectattr('changed') | list | length }}}}"}}
    - assert: {{that: "count | int == 2"}}
"""
    result = run_local(tmp_path, book)
    assert result.ok, result.failures()
    assert sorted(p.name for p in out.iterdir()) == ["a", "c"]
    s = result.stats["h1"]
    assert s.ignored == 1 and s.failed == 0
    assert result.registered["h1"]["made"]["results"][1]["skipped"] is True


def test_until_retries_with_a_counter(tmp_path: Path) -> None:
    counter = tmp_path / "n"
    book = f"""
- hosts: all
  gather_facts: false
  tasks:
    - shell: n=$(cat {counter} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {counter}; echo $n
      register: r
      until: r.stdout | int >= 3
      retries: 5
      delay: 0
    - shell: echo no
      register: never
      until: never.stdout == 'yes'
      retries: 2
      delay: 0
"""
    result = run_local(tmp_path, book)
    assert counter.read_text().strip() == "3"
    assert result.registered["h1"]["r"]["attempts"] == 3
    fail = result.failures()[0]
    assert "after 3 attempts" in fail.msg


def test_undefined_variable_fails_the_task_not_the_run(tmp_path: Path) -> None:
    result = run_local(tmp_path, "- hosts: all\n  gather_facts: false\n  tasks:\n    - debug: {msg: '{{ nope }}'}\n", hosts=2)  # noqa: E501
    assert [t.status for t in result.tasks] == ["failed", "failed"]
    assert "'nope' is undefined" in result.tasks[0].msg


def test_handlers_run_once_when_notified(tmp_path: Path) -> None:
    out = tmp_path / "h"
    book = f"""
- hosts: all
  gather_facts: false
  tasks:
    - copy: {{content: "1", dest: "{out}.conf"}}
      notify: bump
    - copy: {{content: "1", dest: "{out}.other"}}
      notify: bump
  handlers:
    - name: bump
      shell: echo x >> {out}.count
"""
    run_local(tmp_path, book)
    run_local(tmp_path, book)
    assert Path(f"{out}.count").read_text() == "x\n", "notified once on the first run, never on the converged one"


def test_one_unreachable_host_does_not_stop_the_others(tmp_path: Path) -> None:
    book = f"- hosts: all\n  gather_facts: false\n  tasks:\n    - shell: echo {{{{ inventory_hostname }}}} >> {tmp_path}/seen\n"  # noqa: E501
    result = run_local(tmp_path, book, hosts=3, dead={"h2"}, forks=2)
    assert result.stats["h2"].unreachable == 1
    assert sorted((tmp_path / "seen").read_text().split()) == ["h1", "h3"]
    assert result.failed_hosts == ["h2"] and result.failures()[0].hint


def test_progress_events_for_a_long_task(tmp_path: Path) -> None:
    events: list[Event] = []
    run_local(tmp_path, "- hosts: all\n  gather_facts: false\n  tasks:\n    - shell: sleep 1.2\n", events=events, progress_after=0.3)  # noqa: E501
    kinds = [e.kind for e in events]
    assert kinds[0] == "play" and "task_start" in kinds and "task_running" in kinds and kinds[-1] == "task_end"


def test_check_mode_skips_commands_without_creates_and_waits(tmp_path: Path) -> None:
    book = f"""
- hosts: all
  gather_facts: false
  tasks:
    - shell: touch {tmp_path}/x
    - uri: {{url: "http://127.0.0.1:1/v2/health/ready"}}
      register: ready
      until: ready.status == 200
      retries: 100
      delay: 5
    - wait_for: {{port: 1, timeout: 600}}
    - command: echo read-only
      check_mode: false
      register: seen
    - assert: {{that: "seen.stdout == 'read-only'"}}
"""
    start = time.monotonic()
    result = run_local(tmp_path, book, check=True)
    assert time.monotonic() - start < 5, "check mode must not wait for what it did not start"
    assert [t.status for t in result.tasks] == ["skipped", "skipped", "skipped", "changed", "ok"]
    assert not (tmp_path / "x").exists()


# ---------------------------------------------------------------- git, fetch, stat, wait_for, uri, get_url
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


def test_git_clone_converge_and_move(tmp_path: Path, git_repo: Path) -> None:
    dest = tmp_path / "checkout"
    book = f"- hosts: all\n  gather_facts: false\n  tasks:\n    - git: {{repo: '{git_repo}', dest: '{dest}', version: '{{{{ v }}}}'}}\n"  # noqa: E501
    first = run_local(tmp_path, book, extra={"v": "r22.04"})
    assert first.ok and first.tasks[0].status == "changed"
    assert (dest / "f").read_text() == "1\n"
    again = run_local(tmp_path, book, extra={"v": "r22.04"})
    assert again.tasks[0].status == "ok"
    moved = run_local(tmp_path, book, extra={"v": "main"})
    assert moved.tasks[0].status == "changed" and (dest / "f").read_text() == "2\n"
    tag = run_local(tmp_path, book, extra={"v": "v1"})
    assert tag.tasks[0].status == "changed" and (dest / "f").read_text() == "1\n"
    missing = run_local(tmp_path, book, extra={"v": "nope"})
    assert "not a branch, tag or commit" in missing.failures()[0].msg


def test_fetch_and_stat(tmp_path: Path) -> None:
    src = tmp_path / "remote.txt"
    src.write_text("data\n")
    book = f"""
- hosts: all
  gather_facts: false
  tasks:
    - fetch: {{src: "{src}", dest: "{tmp_path}/got/"}}
    - fetch: {{src: "{src}", dest: "{tmp_path}/flat.txt", flat: true}}
    - stat: {{path: "{src}"}}
      register: st
    - assert: {{that: ["st.stat.exists", "st.stat.isreg", "st.stat.size == 5"]}}
    - fetch: {{src: "{tmp_path}/absent", dest: "{tmp_path}/got/", fail_on_missing: false}}
"""
    first = run_local(tmp_path, book)
    assert first.ok, first.failures()
    assert (tmp_path / "got" / "h1" / str(src).lstrip("/")).read_text() == "data\n"
    assert (tmp_path / "flat.txt").read_text() == "data\n"
    second = run_local(tmp_path, book)
    assert second.stats["h1"].changed == 0


@pytest.fixture()
def http_server(tmp_path: Path) -> Iterator[str]:
    root = tmp_path / "www"
    root.mkdir()
    (root / "model.bin").write_bytes(b"weights")
    (root / "ready.json").write_text('{"ready": true}')

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a: Any, **kw: Any) -> None:
            super().__init__(*a, directory=str(root), **kw)

        def log_message(self, *args: Any) -> None:
            pass

        def guess_type(self, path: Any) -> str:
            return "application/json" if str(path).endswith(".json") else "application/octet-stream"

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_uri_get_url_and_wait_for(tmp_path: Path, http_server: str) -> None:
    sha = hashlib.sha256(b"weights").hexdigest()
    book = f"""
- hosts: all
  gather_facts: false
  tasks:
    - uri: {{url: "{http_server}/ready.json"}}
      register: r
    - assert: {{that: ["r.status == 200", "r.json.ready"]}}
    - uri: {{url: "{http_server}/nothing", status_code: [200, 404]}}
    - get_url: {{url: "{http_server}/model.bin", dest: "{tmp_path}/model.bin", checksum: "sha256:{sha}", mode: "0640"}}
    - wait_for: {{path: "{tmp_path}/model.bin", timeout: 5}}
"""
    first = run_local(tmp_path, book)
    assert first.ok, first.failures()
    assert (tmp_path / "model.bin").read_bytes() == b"weights"
    assert (tmp_path / "model.bin").stat().st_mode & 0o777 == 0o640
    second = run_local(tmp_path, book)
    assert second.stats["h1"].changed == 0
    bad = run_local(tmp_path, f"- hosts: all\n  gather_facts: false\n  tasks:\n    - uri: {{url: '{http_server}/nothing'}}\n")  # noqa: E501
    assert "Status code was 404" in bad.failures()[0].msg
    refused = run_local(tmp_path, "- hosts: all\n  gather_facts: false\n  tasks:\n    - uri: {url: 'http://127.0.0.1:1/'}\n")
    assert "Status code was -1" in refused.failures()[0].msg
    slow = run_local(
        tmp_path, f"- hosts: all\n  gather_facts: false\n  tasks:\n    - wait_for: {{path: '{tmp_path}/never', timeout: 1, sleep: 0.2}}\n"  # noqa: E501
    )
    assert "Timeout when waiting for" in slow.failures()[0].msg


def test_a_task_needing_no_connection_never_opens_one(tmp_path: Path) -> None:
    result = run_local(tmp_path, "- hosts: all\n  gather_facts: false\n  tasks:\n    - debug: msg=hi\n    - set_fact: {a: 1}\n", dead={"h1"})  # noqa: E501
    assert result.ok and result.registered["h1"]["a"] == 1


def test_failed_when_list_is_anded_and_become_takes_boolean_strings(tmp_path: Path) -> None:
    """As ansible-core: a failed_when list fails only when every condition holds; become: "yes" is true."""
    book = """
- hosts: all
  gather_facts: false
  tasks:
    - shell: echo hello
      register: r
      failed_when:
        - "'hello' in r.stdout"
        - r.rc != 0
    - shell: echo hello
      register: both
      ignore_errors: true
      failed_when:
        - "'hello' in r.stdout"
        - r.rc == 0
"""
    result = run_local(tmp_path, book)
    assert [t.status for t in result.tasks] == ["changed", "failed"]  # shell reports changed, as in Ansible
    assert result.tasks[1].ignored

    conn = LocalConnection()
    task = parse_playbook('- hosts: all\n  gather_facts: false\n  tasks:\n    - command: "true"\n      become: "yes"\n',
                          tmp_path / "b.yml").plays[0].tasks[0]
    play = Play(name="p", hosts="all", vars={}, tasks=(task,))
    outcome = run_task(task, host_name="h", variables=[{}], conn=conn, check=False, play=play, base_dir=tmp_path)
    assert conn.commands and conn.commands[0].startswith("sudo -n -H -u root -- "), outcome.result.msg
