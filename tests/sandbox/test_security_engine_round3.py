"""Security round 3 (issue 23): a hostile host, inventory or -e value against infprov's engine.

Each test reproduces an attack that once worked and now must not (the section titles name them). The tests
that cross a wire run on the sandbox (conftest's `sandbox_hosts`); the rest run on the local connector.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import tracemalloc
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infprov.inventory.model import Host, Inventory
from infprov.playbooks.connection import LINE_MAX, OUTPUT_KEEP, LineSplitter, OutputTail, SshConnection, file_from
from infprov.playbooks.errors import FileTooLarge, PlaybookError
from infprov.playbooks.localconn import LocalConnection
from infprov.playbooks.modules import fetch as fetch_module
from infprov.playbooks.modules.base import ModuleArgError
from infprov.playbooks.parsing import parse_playbook
from infprov.playbooks.results import RunResult
from infprov.playbooks.runner import run_playbook
from infprov.playbooks.sizecap import BUDGET, MAX_SIZE
from infprov.playbooks.templating import Templar, TemplateError
from tests.hostshell import NO_HOST_KEY_CHECKS, hostile_inventory
from tests.local_engine import run_local, write_book


def _msgs(result: RunResult) -> dict[str, str]:
    return {t.task: t.msg for t in result.tasks}


# ---------------------------------------------------------------- 1. host output is never an expression
def test_host_output_is_never_compiled_as_a_conditional(tmp_path: Path) -> None:
    marker = tmp_path / "M"
    hostile = tmp_path / "on-the-host.txt"
    hostile.write_text(f"lookup('pipe','id > {marker}') is string\n")
    book = f"""
- hosts: all
  gather_facts: false
  tasks:
    - name: read
      command: cat {hostile}
      register: svc
      changed_when: false
    - name: by when
      debug: {{msg: ran}}
      when: "{{{{ svc.stdout }}}}"
      ignore_errors: true
    - name: by when, derived
      debug: {{msg: ran}}
      when: "{{{{ svc.stdout | trim }}}}"
      ignore_errors: true
    - name: by failed_when
      command: cat {hostile}
      register: again
      failed_when: "{{{{ again.stdout }}}}"
      ignore_errors: true
    - name: by changed_when
      command: cat {hostile}
      register: third
      changed_when: "{{{{ third.stdout }}}}"
      ignore_errors: true
    - name: by until
      command: cat {hostile}
      register: fourth
      until: "{{{{ fourth.stdout }}}}"
      retries: 1
      delay: 0
      ignore_errors: true
    - name: by assert
      assert: {{that: "{{{{ svc.stdout }}}}"}}
      ignore_errors: true
    - name: by set_fact
      set_fact: {{cond: "{{{{ svc.stdout }}}}"}}
    - name: by a fact
      debug: {{msg: ran}}
      when: "{{{{ cond }}}}"
      ignore_errors: true
"""
    result = run_local(tmp_path, book)
    assert not marker.exists(), "a host's output ran a command on the controller"
    msgs = _msgs(result)
    for task in ("by when", "by when, derived", "by failed_when", "by changed_when", "by until", "by assert",
                 "by a fact"):
        assert "which is data, not an expression" in msgs[task], (task, msgs[task])
        assert "\n" not in msgs[task]
    assert msgs["by when"].startswith("when: conditional '{{ svc.stdout }}' gave the text")
    assert msgs["by until"].startswith("until: ")


def test_inventory_and_extra_expressions_may_not_call_lookups(tmp_path: Path) -> None:
    marker = tmp_path / "M"
    payload = f"lookup('pipe','id > {marker}') is string"
    book = """
- hosts: all
  gather_facts: false
  vars:
    chained: "{{ from_inventory }}"
  tasks:
    - {name: extra, debug: {msg: ran}, when: "{{ from_extra }}", ignore_errors: true}
    - {name: inventory, debug: {msg: ran}, when: "{{ from_inventory }}", ignore_errors: true}
    - {name: chained, debug: {msg: ran}, when: "{{ chained }}", ignore_errors: true}
    - {name: plain, debug: {msg: ran}, when: "{{ fine }}"}
"""
    result = run_local(tmp_path, book, host_vars={"from_inventory": payload, "fine": "2 > 1"},
                  extra={"from_extra": payload})
    assert not marker.exists()
    msgs = _msgs(result)
    for task in ("extra", "inventory", "chained"):
        assert "only allowed in the playbook itself" in msgs[task], msgs[task]
    assert [t.status for t in result.tasks][-1] == "ok", "an inventory expression without lookups still works"


def test_conditionals_written_in_the_playbook_keep_working(tmp_path: Path) -> None:
    """ansible-core 2.19's indirection: `{{ flag }}` (a boolean) and `{{ expr }}` (an expression written as
    text in the playbook, a fact set from a literal, a loop item) are evaluated; see the ansible_diff case
    when_indirect_template."""
    book = """
- hosts: all
  gather_facts: false
  vars: {x: 1, flag: true, expr: "x == 1", expr2: "{{ expr }}", word: "true"}
  tasks:
    - set_fact: {literal: "x > 0"}
    - {name: a, debug: {msg: ran}, when: x == 1}
    - {name: b, debug: {msg: ran}, when: "{{ flag }}"}
    - {name: c, debug: {msg: ran}, when: "{{ expr }}"}
    - {name: d, debug: {msg: ran}, when: "{{ expr2 }}"}
    - {name: e, debug: {msg: ran}, when: "{{ literal }}"}
    - {name: f, debug: {msg: ran}, when: "{{ word }}"}
    - {name: g, debug: {msg: ran}, when: "{{ item }}", loop: ["x == 1"]}
    - {name: h, debug: {msg: ran}, when: "{{ x == 1 }}"}
    - {name: i, assert: {that: ["{{ expr }}", "x == 1"]}}
    - {name: j, debug: {msg: skipped}, when: "{{ not flag }}"}
"""
    result = run_local(tmp_path, book)
    assert result.ok, [(t.task, t.msg) for t in result.tasks if t.status == "failed"]
    statuses = {t.task: t.status for t in result.tasks}
    assert [statuses[k] for k in "abcdefghi"] == ["ok"] * 9 and statuses["j"] == "skipped", statuses


@pytest.mark.sandbox
def test_infprov_play_never_runs_a_hosts_text_as_a_conditional(
    sandbox_hosts: list[dict[str, Any]], tmp_path: Path, infprov_home: Path
) -> None:
    """The attack as it was found: a file on the host, `command: cat`, `when: "{{ svc.stdout }}"`."""
    marker = tmp_path / "M"
    payload = f"lookup('pipe','id > {marker}') is string"
    inv = tmp_path / "inventory.yml"
    hostile_inventory(inv, sandbox_hosts[0])
    book = tmp_path / "hostile.yml"
    book.write_text(f"""
- hosts: all
  gather_facts: false
  tasks:
    - name: the host holds a file someone else wrote
      ansible.builtin.shell: echo {base64.b64encode(payload.encode()).decode()} | base64 -d > /home/ubuntu/svc.txt
    - name: read it
      ansible.builtin.command: cat /home/ubuntu/svc.txt
      register: svc
    - name: only when the service says so
      ansible.builtin.debug: {{msg: "service is up"}}
      when: "{{{{ svc.stdout }}}}"
""")
    infprov_home.mkdir(mode=0o700, exist_ok=True)
    env = {**os.environ, "INFPROV_HOME": str(infprov_home)}
    # the attack on infprov's own engine (a playbook file goes to ansible-core unless --engine infprov)
    run = subprocess.run([sys.executable, "-m", "infprov.provision.cli", "play", str(book), "--inventory", str(inv),
                          "--engine", "infprov"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert not marker.exists(), "the host's text ran `id` on the controller"
    assert run.returncode == 1, run.stdout + run.stderr
    shown = run.stdout + run.stderr
    assert "only when the service says so: failed" in shown
    assert "when: conditional '{{ svc.stdout }}' gave the text" in shown and "(ansible-core 2.19: untrusted)" in shown


# ---------------------------------------------------------------- sandbox helpers (what crosses a wire)
@pytest.fixture()
def host(sandbox_hosts: list[dict[str, Any]], tmp_path: Path, infprov_home: Path) -> Iterator[Host]:
    """The first sandbox host, with a folder of its own for the test (removed afterwards)."""
    h = sandbox_hosts[0]
    one = Host(name="i-r3", address=h["address"], port=int(h["port"]), user=h["user"], key_file=h["key_file"],
               cluster="r3", extra={"ansible_ssh_common_args": NO_HOST_KEY_CHECKS,
                                    "work": f"/home/ubuntu/r3-{uuid.uuid4().hex[:8]}"})
    infprov_home.mkdir(mode=0o700, exist_ok=True)
    yield one
    _remote(one, infprov_home, f"rm -rf {one.extra['work']}")


def _remote(h: Host, home: Path, command: str, **kw: Any) -> Any:
    conn = SshConnection(h, home / "test_known_hosts")
    try:
        return conn.run(command, **kw)
    finally:
        conn.close()


def _play(h: Host, home: Path, tmp_path: Path, text: str) -> RunResult:
    book = write_book(tmp_path, text)
    return run_playbook(book, Inventory((h,)), runs_dir=home / "runs", known_hosts=home / "known_hosts")


# ---------------------------------------------------------------- 2. wait_for's host
@pytest.mark.sandbox
def test_wait_for_host_never_reaches_a_shell(host: Host, infprov_home: Path, tmp_path: Path) -> None:
    work = host.extra["work"]
    result = _play(host, infprov_home, tmp_path, f"""
- hosts: all
  gather_facts: false
  tasks:
    - file: {{path: "{work}", state: directory}}
    - name: injected
      wait_for: {{host: "127.0.0.1/9; touch {work}/M; : ", port: 22, timeout: 3}}
      ignore_errors: true
    - name: sshd is up
      wait_for: {{host: "{{{{ ansible_host }}}}", port: 22, timeout: 10}}
    - name: a name, nothing listening
      wait_for: {{host: localhost, port: 9, state: stopped, timeout: 10}}
""")
    msgs = _msgs(result)
    assert "argument `host` '127.0.0.1/9; touch" in msgs["injected"] and "not a DNS name or IP address" in \
        msgs["injected"], msgs["injected"]
    assert [t.status for t in result.tasks][-2:] == ["ok", "ok"], msgs
    assert _remote(host, infprov_home, f"test -e {work}/M").exit_code == 1, "the host ran the injected command"


# ---------------------------------------------------------------- 3. get_url's URL on a checksum mismatch
@pytest.mark.sandbox
def test_get_url_checksum_mismatch_never_runs_the_url(host: Host, infprov_home: Path, tmp_path: Path) -> None:
    work = host.extra["work"]
    url = f"file://{work}/src.txt?a=$(touch${{IFS}}{work}/M)"
    result = _play(host, infprov_home, tmp_path, f"""
- hosts: all
  gather_facts: false
  tasks:
    - file: {{path: "{work}", state: directory}}
    - copy: {{content: "data\\n", dest: "{work}/src.txt"}}
    - name: download
      get_url: {{url: "{url}", dest: "{work}/out.txt", checksum: "sha256:{'0' * 64}"}}
      ignore_errors: true
""")
    task = result.tasks[-1]
    assert task.status == "failed"
    assert f"checksum mismatch for {url}" in task.tail, task.tail
    assert _remote(host, infprov_home, f"test -e {work}/M").exit_code == 1, "the host ran the URL's $(...)"
    assert _remote(host, infprov_home, f"test -e {work}/out.txt").exit_code == 1


# ---------------------------------------------------------------- 4. fetch stays under its dest
def test_fetch_places_stay_under_dest(tmp_path: Path) -> None:
    dest = tmp_path / "fetched"
    (dest / "h2").mkdir(parents=True)
    os.symlink(tmp_path / "elsewhere", dest / "h1")  # a link already in dest's path
    place = fetch_module.local_path
    assert place(str(dest), "/var/log/x.log", "h3", False, tmp_path) == dest / "h3" / "var/log/x.log"
    assert place(str(dest) + "/", "/a/b.txt", "h3", True, tmp_path) == dest / "b.txt"
    for src, name, flat in [("/../../../../etc/cron.d/x", "h3", False), ("../h2/x", "h3", False),
                            ("/x", "h1", False), ("/a/..", "h3", True), ("/", "h3", False)]:
        with pytest.raises(ModuleArgError, match="would be written outside"):
            place(str(dest) + ("/" if flat else ""), src, name, flat, tmp_path)


@pytest.mark.sandbox
def test_fetch_of_a_host_listed_path_never_writes_outside_dest(host: Host, infprov_home: Path,
                                                               tmp_path: Path) -> None:
    """The host names a path (`find`'s output, say) whose `..` climb out of dest on the controller, while on
    the host they climb a symlink to a file of its choosing (Ansible's CVE-2019-3828)."""
    work = host.extra["work"]
    dest = tmp_path / "fetched"
    target = tmp_path / "outside" / "planted"  # where the host wants the controller to write
    climb = len((dest / host.name / work.lstrip("/") / "L").parts) - 1
    deep = f"{work}/deep/" + "/".join(f"d{i}" for i in range(climb))
    src = f"{work}/L/" + "../" * climb + str(target).lstrip("/")
    result = _play(host, infprov_home, tmp_path, f"""
- hosts: all
  gather_facts: false
  tasks:
    - name: the host prepares the path
      shell: |
        mkdir -p {deep} {work}/deep/{target.parent.relative_to("/")}
        ln -sfn {deep} {work}/L
        echo planted-by-the-host > {work}/deep/{target.relative_to("/")}
        echo {src}
      register: listed
    - name: fetch what the host listed
      fetch: {{src: "{{{{ listed.stdout }}}}", dest: "{dest}"}}
      ignore_errors: true
""")
    assert _remote(host, infprov_home, f"cat {src}").out == "planted-by-the-host\n", "the host's side of the path"
    assert not target.exists(), "fetch wrote outside its dest"
    msg = result.tasks[-1].msg
    assert result.tasks[-1].status == "failed" and "would be written outside" in msg, msg


# ---------------------------------------------------------------- 8. what a host sends is capped
def test_a_long_line_is_cut_and_split_once() -> None:
    lines: list[str] = []
    split = LineSplitter(lines.append, limit=10)
    for chunk in (b"ab", b"c\nd", b"0123456789ABCDEF", b"GH\nlast"):
        split.feed(chunk)
    split.close()
    assert lines == ["abc", "d012345678 [infprov: line cut at 10 bytes, 9 more dropped]", "last"]
    tail = OutputTail(5)
    for chunk in (b"12", b"3456", b"789"):
        tail.add(chunk)
    assert tail.dropped == 4 and tail.value().endswith(b"\n56789")
    assert tail.value().startswith(b"[infprov: output cut: the first 4 bytes were dropped, the last 5 are kept]")


def test_local_run_keeps_the_last_part_and_get_file_refuses_more_than_it_said(tmp_path: Path) -> None:
    conn = LocalConnection()
    got = conn.run(f"head -c {OUTPUT_KEEP + 5000} /dev/zero | tr '\\0' x; echo; echo end")
    assert got.dropped > 0 and len(got.stdout) < OUTPUT_KEEP + 200
    assert got.stdout.startswith(b"[infprov: output cut") and got.stdout.endswith(b"x\nend\n")
    with pytest.raises(FileTooLarge, match="over 1000 bytes"):  # a host whose `wc` said less than it sent
        file_from(conn.run("head -c 2000 /dev/zero", keep=1000), "/x", 1000)


@pytest.mark.sandbox
def test_a_host_that_sends_without_end_is_capped(host: Host, infprov_home: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    work = host.extra["work"]
    monkeypatch.setattr(fetch_module, "FETCH_LIMIT", 1 << 20)
    result = _play(host, infprov_home, tmp_path, f"""
- hosts: all
  gather_facts: false
  tasks:
    - file: {{path: "{work}", state: directory}}
    - name: a line without end
      infprov_stream: head -c {3 * LINE_MAX} /dev/zero | tr '\\0' y; echo; echo after
      register: streamed
    - name: a flood
      shell: head -c {OUTPUT_KEEP + (1 << 20)} /dev/zero | tr '\\0' z; echo; echo after
      register: flood
    - name: a big file
      shell: head -c {(1 << 20) + 1} /dev/zero > {work}/big
    - name: fetch it
      fetch: {{src: "{work}/big", dest: "{tmp_path}/fetched"}}
      ignore_errors: true
""")
    reg = result.registered[host.name]
    first, after = reg["streamed"]["stdout_lines"]
    assert len(first) < LINE_MAX + 100 and first.endswith(f"[infprov: line cut at {LINE_MAX} bytes, "
                                                          f"{2 * LINE_MAX} more dropped]")
    assert after == "after"
    assert reg["flood"]["stdout"].startswith("[infprov: output cut: the first ")
    assert reg["flood"]["stdout"].endswith("z\nafter") and len(reg["flood"]["stdout"]) < OUTPUT_KEEP + 200
    assert "over 1048576 bytes; not fetched" in _msgs(result)["fetch it"]
    assert not list((tmp_path / "fetched").rglob("big"))


# ---------------------------------------------------------------- 7. what a template may build
@pytest.mark.parametrize("template", [
    "{{ 'A' * 300000000 }}",
    "{{ [0] * 100000000 }}",
    "{{ 7 ** 1000000 }}",
    "{{ 'a' | center(1000000000) }}",
    "{{ 'a\nb' | indent(1000000000) }}",
    "{{ range(100000) | join('x' * 10000) }}",
    "{{ range(1000) | product(range(1000), range(1000)) | list }}",
    "{{ [1] | zip_longest(range(100000), range(100000), range(100000), fillvalue='x' * 1000) | list }}",
    "{{ ('A' * 1000000) | replace('A', 'B' * 1000) }}",
    "{{ '%0999999999d' % 1 }}",
    "{{ '{:>999999999}'.format(1) }}",
    "{{ 'a'.ljust(1000000000) }}",
    "{{ ('x' * 30000000) ~ ('y' * 30000000) }}",
    "{{ [1, 2] | batch(1000000000, 0) | list }}",
    "{{ {'a': 1} | to_nice_json(indent=1000000000) }}",
    "{{ lipsum(n=1000000) }}",
    "{% for i in range(100000) %}{% for j in range(100) %}" + "A" * 64 + "{% endfor %}{% endfor %}",
    "{% set x = [] %}{% for i in range(100000) %}{{ x.append('A' * 10000) }}{% endfor %}",
])
def test_templates_are_refused_before_they_build_gigabytes(template: str) -> None:
    tracemalloc.start()
    try:
        with pytest.raises(TemplateError, match="a template may build"):
            Templar({}).template(template)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < BUDGET + MAX_SIZE, f"{template[:40]!r} took {peak >> 20} MiB"


def test_range_is_capped_and_ordinary_templates_are_not(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match="Range too big"):
        Templar({}).template("{{ range(10**9) | list }}")
    t = Templar({"s": "x" * 100, "n": [1, 2, 3]})
    assert t.template("{{ 'AB' * 3 }} {{ (s ~ s) | length }} {{ n | product(n) | list | length }}") == "ABABAB 200 9"
    assert t.template("{{ '%s-%05d' % ('a', 3) }} {{ '{}:{:>4}'.format('b', 7) }} {{ 2 ** 64 }}") == \
        "a-00003 b:   7 18446744073709551616"
    assert t.template("{{ 1024 | human_readable }} {{ 'a b c' | split | join(',') }}") == "1.00 KB a,b,c"


def test_an_inventory_value_that_builds_gigabytes_fails_its_task(tmp_path: Path) -> None:
    tracemalloc.start()
    try:
        result = run_local(tmp_path, "- hosts: all\n  gather_facts: false\n  tasks:\n"
                                "    - {name: show, debug: {msg: '{{ big }}'}}\n",
                      host_vars={"big": "{{ 'A' * 300000000 }}"})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    msg = _msgs(result)["show"]
    assert "`text * 300000000` would build about 286 MiB, over the 32 MiB a template may build" in msg
    assert peak < 64 << 20, f"{peak >> 20} MiB"


# ---------------------------------------------------------------- 9. unused globals, trailing newlines
@pytest.mark.parametrize("expr", ["lipsum.__doc__", "range.__name__", "cycler", "namespace.__name__"])
def test_jinja_globals_used_without_a_call_are_refused_before_running(tmp_path: Path, expr: str) -> None:
    for text in (f"    - debug: {{msg: '{{{{ {expr} }}}}'}}\n",
                 f"    - debug: {{msg: x}}\n      when: {expr} is defined\n"):
        with pytest.raises(PlaybookError, match=r"function \w+\(\) is (not supported|supported only as a call)"):
            parse_playbook("- hosts: all\n  gather_facts: false\n  tasks:\n" + text, tmp_path / "b.yml")


def test_validators_refuse_a_trailing_newline(tmp_path: Path) -> None:
    from infprov.inventory.model import check_address, check_name
    from infprov.playbooks.modules.facts import SHA_RE
    from infprov.provision import ec2, specs

    for check, value in [(check_name, "h1\n"), (check_address, "example.com\n"), (check_address, "10.0.0.1\n"),
                         (specs.validate_name, "demo\n"), (specs.validate_region, "us-east-1\n")]:
        with pytest.raises(Exception, match="not|invalid|must"):
            check(value)
        check(value.rstrip("\n"))  # the same value without it is fine
    with pytest.raises(ValueError, match="ansible_user"):
        Host.from_vars("h1", "c", {"ansible_host": "10.0.0.1", "ansible_user": "ubuntu\n"})
    for pattern, value in [(specs.AMI_RE, "ami-0123456789abcdef0\n"), (specs.KEY_NAME_RE, "key\n"),
                           (ec2._INSTANCE_ID, "i-0123456789abcdef0\n"), (ec2._ZONE, "us-east-1a\n"),
                           (ec2._INSTANCE_TYPE, "inf1.xlarge\n"), (SHA_RE, "abcdef0\n")]:
        assert not pattern.fullmatch(value) and pattern.fullmatch(value.rstrip("\n")), pattern.pattern
    with pytest.raises(PlaybookError, match="register"):
        parse_playbook('- hosts: all\n  gather_facts: false\n  tasks:\n    - {debug: {msg: x}, register: "r\\n"}\n',
                       tmp_path / "b.yml")
