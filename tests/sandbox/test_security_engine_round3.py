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
@pytest.mark.parametrize(("keyword", "task"), [
    ("when", '    - {name: attack, command: "true", when: "{{ svc.stdout }}"}\n'),
    ("when", '    - {name: attack, command: "true", when: "{{ svc.stdout | trim }}"}\n'),
    ("changed_when", '    - {name: attack, command: "true", register: r, changed_when: "{{ svc.stdout }}"}\n'),
    ("failed_when", '    - {name: attack, command: "true", register: r, failed_when: "{{ svc.stdout }}"}\n'),
    ("assert", '    - {name: attack, assert: {that: "{{ svc.stdout }}"}}\n'),
    ("task vars", '    - {name: attack, command: "true", when: "{{ cond }}", vars: {cond: "{{ svc.stdout }}"}}\n'),
])
def test_host_output_is_never_compiled_as_a_conditional(tmp_path: Path, keyword: str, task: str) -> None:
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
""" + task
    result = run_local(tmp_path, book)
    assert not marker.exists(), "a host's output ran a command on the controller"
    msg = _msgs(result)["attack"]
    assert "which is data, not an expression" in msg and "\n" not in msg, (keyword, msg)
    if keyword == "when":
        assert msg.startswith("when: conditional '{{ svc.stdout")


def test_inventory_and_extra_expressions_may_not_call_lookups(tmp_path: Path) -> None:
    """An inventory or -e value written as an expression (no braces, so no template to check before running) is
    compiled when a conditional names it, and refused then: there are no lookups in infprov's engine."""
    marker = tmp_path / "M"
    payload = f"lookup('pipe','id > {marker}') is string"
    for name, layer in (("inventory", "host"), ("extra", "extra"), ("chained", "host")):
        cond = "{{ chained }}" if name == "chained" else "{{ payload }}"
        book = ("- hosts: all\n  gather_facts: false\n  vars:\n    chained: '{{ payload }}'\n  tasks:\n"
                f"    - {{name: attack, command: 'true', when: '{cond}'}}\n")
        result = run_local(tmp_path, book, host_vars={"payload": payload} if layer == "host" else None,
                      extra={"payload": payload} if layer == "extra" else None)
        assert "is not supported by infprov's engine" in _msgs(result)["attack"], name
    assert not marker.exists()
    ok = run_local(tmp_path, "- hosts: all\n  gather_facts: false\n  tasks:\n"
                        "    - {name: plain, command: 'true', when: '{{ fine }}'}\n", host_vars={"fine": "2 > 1"})
    assert ok.ok, "an inventory expression infprov runs still works"


def test_conditionals_written_in_the_playbook_keep_working(tmp_path: Path) -> None:
    """ansible-core 2.19's indirection: `{{ flag }}` (a boolean) and `{{ expr }}` (an expression written as
    text in the playbook, a loop item) are evaluated."""
    book = """
- hosts: all
  gather_facts: false
  vars: {x: 1, flag: true, expr: "x == 1", expr2: "{{ expr }}", word: "true"}
  tasks:
    - {name: a, command: "true", when: x == 1}
    - {name: b, command: "true", when: "{{ flag }}"}
    - {name: c, command: "true", when: "{{ expr }}"}
    - {name: d, command: "true", when: "{{ expr2 }}"}
    - {name: f, command: "true", when: "{{ word }}"}
    - {name: g, command: "true", when: "{{ item }}", loop: ["x == 1"]}
    - {name: h, command: "true", when: "{{ x == 1 }}"}
    - {name: i, assert: {that: ["{{ expr }}", "x == 1"]}}
    - {name: j, command: "true", when: "{{ not flag }}"}
"""
    result = run_local(tmp_path, book)
    assert result.ok, [(t.task, t.msg) for t in result.tasks if t.status == "failed"]
    statuses = {t.task: t.status for t in result.tasks}
    assert [statuses[k] for k in "abcdfgh"] == ["changed"] * 7 and statuses["i"] == "ok", statuses
    assert statuses["j"] == "skipped"


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
      ansible.builtin.command: echo service is up
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
    "{{ 7 ** 1000000 }}",
    "{{ 'a' | center(1000000000) }}",
    "{{ range(100000) }}",
    "{{ '%0999999999d' % 1 }}",
    "{{ '{:>999999999}'.format(1) }}",
    "{{ 'a'.ljust(1000000000) }}",
    "{{ lipsum(n=1000000) }}",
    "{% set x = [] %}{{ x }}",
])
def test_templates_that_multiply_are_refused_before_they_run(template: str) -> None:
    tracemalloc.start()
    try:
        with pytest.raises(TemplateError, match="is not supported by infprov's engine"):
            Templar({}).template(template)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, f"{template[:40]!r} took {peak >> 20} MiB"


BIG = "A" * (20 << 20)
WORDS = "a " * (15 << 20)


@pytest.mark.parametrize("template", [
    "{{ big ~ big }}",
    "{{ big | replace('A', 'BB') }}",
    "{{ big | quote | quote }}",
    "{% for x in ten %}{{ big }}{% endfor %}",
    "{{ words.split() }}",
])
def test_what_infprov_runs_is_capped_before_it_builds_too_much(template: str) -> None:
    t = Templar({"big": BIG, "ten": list(range(10)), "words": WORDS})
    tracemalloc.start()
    try:
        with pytest.raises(TemplateError, match="a template may build"):
            t.template(template)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < BUDGET + MAX_SIZE, f"{template[:40]!r} took {peak >> 20} MiB"


def test_ordinary_templates_are_not_capped() -> None:
    t = Templar({"s": "x" * 100, "n": [1, 2, 3]})
    assert t.template("{{ (s ~ s) | length }} {{ n | length }} {{ 'a b c'.split() | length }}") == "200 3 3"


def test_an_inventory_value_that_builds_too_much_fails_its_task(tmp_path: Path) -> None:
    with pytest.raises(PlaybookError, match="`\\*` is not supported by infprov's engine"):
        book = "- hosts: all\n  gather_facts: false\n  tasks:\n    - {name: show, command: 'echo {{ big }}'}\n"
        run_local(tmp_path, book, host_vars={"big": "{{ 'A' * 300000000 }}"})
    doubling = {"a0": "A" * (1 << 20), **{f"a{i}": f"{{{{ a{i - 1} ~ a{i - 1} }}}}" for i in range(1, 9)}}
    tracemalloc.start()
    try:
        result = run_local(tmp_path, "- hosts: all\n  gather_facts: false\n  tasks:\n"
                                "    - {name: show, command: 'echo {{ a8 | length }}'}\n", host_vars=doubling)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "a template may build" in _msgs(result)["show"]
    assert peak < BUDGET + 4 * MAX_SIZE, f"{peak >> 20} MiB"


# ---------------------------------------------------------------- 9. no globals, trailing newlines
@pytest.mark.parametrize("expr", ["lipsum", "range", "cycler", "namespace", "lookup"])
def test_jinja_globals_do_not_exist(expr: str) -> None:
    with pytest.raises(TemplateError, match=f"'{expr}' is undefined"):
        Templar({}).template(f"{{{{ {expr}.__name__ }}}}")


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
        parse_playbook('- hosts: all\n  gather_facts: false\n  tasks:\n    - {command: x, register: "r\\n"}\n',
                       tmp_path / "b.yml")
