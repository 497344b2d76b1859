"""The playbook engine before anything runs: parsing errors, -e values, templating, pure edits, host patterns."""

from __future__ import annotations

from pathlib import Path

import pytest

from infprov.playbooks.errors import PlaybookError, TemplateError
from infprov.playbooks.modules.files import lineinfile_edit, replace_edit
from infprov.playbooks.parsing import (
    BUILTIN_DIR,
    Play,
    builtin_playbooks,
    parse_extra_vars,
    parse_playbook,
    resolve_playbook,
)
from infprov.playbooks.templating import Templar
from tests.local_engine import run_local


# ---------------------------------------------------------------- parsing: errors name the file, the task and the word
def test_unknown_module_is_named_with_file_line_and_task(tmp_path: Path) -> None:
    text = (
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - name: first\n      debug: msg=hi\n"
        "    - name: build it\n      ansible.builtin.shel: make\n"
    )
    with pytest.raises(PlaybookError) as err:
        parse_playbook(text, tmp_path / "site.yml")
    msg = err.value.message
    assert f"{tmp_path / 'site.yml'}:7" in msg
    assert "'build it'" in msg and "'ansible.builtin.shel'" in msg
    assert err.value.exit_code == 2


def test_unknown_keyword_and_unknown_argument(tmp_path: Path) -> None:
    with pytest.raises(PlaybookError, match=r"book.yml:5: task 'x': unknown module or keyword 'delegate_to'"):
        parse_playbook(
            "- hosts: all\n  gather_facts: false\n  tasks:\n    - name: x\n      delegate_to: localhost\n      debug: msg=a\n",  # noqa: E501
            tmp_path / "book.yml",
        )
    with pytest.raises(PlaybookError, match=r"module copy has no argument 'dst'"):
        parse_playbook("- hosts: all\n  gather_facts: false\n  tasks:\n    - copy: {content: a, dst: /tmp/x}\n", tmp_path / "b.yml")  # noqa: E501
    with pytest.raises(PlaybookError, match=r"unknown play keyword 'roles'"):
        parse_playbook("- hosts: all\n  gather_facts: false\n  roles: [x]\n", tmp_path / "b.yml")
    with pytest.raises(PlaybookError, match=r"more than one module"):
        parse_playbook("- hosts: all\n  gather_facts: false\n  tasks:\n    - shell: a\n      command: b\n", tmp_path / "b.yml")  # noqa: E501
    with pytest.raises(PlaybookError, match=r"notifies 'restart'"):
        parse_playbook("- hosts: all\n  gather_facts: false\n  tasks:\n    - shell: a\n      notify: restart\n", tmp_path / "b.yml")  # noqa: E501
    with pytest.raises(PlaybookError, match=r"has no `hosts`"):
        parse_playbook("- tasks: []\n", tmp_path / "b.yml")


def test_yaml_syntax_error_points_at_the_line(tmp_path: Path) -> None:
    with pytest.raises(PlaybookError, match=r"b.yml:5: not valid YAML: (did not find )?expected .,. or .\]."):
        parse_playbook("- hosts: all\n  gather_facts: false\n  tasks:\n    - shell: [a\n    - debug: msg=x\n", tmp_path / "b.yml")  # noqa: E501


def test_free_form_and_key_value_arguments(tmp_path: Path) -> None:
    book = parse_playbook(
        "- hosts: all\n  gather_facts: false\n  tasks:\n"
        "    - shell: make all creates=/opt/out chdir=/src\n"
        "    - copy: src=a.txt dest=/tmp/a.txt mode=0644\n"
        "    - command: echo hi\n      args: {removes: /tmp/flag}\n"
        "    - ansible.builtin.file: {dest: /tmp/d, state: directory}\n",
        tmp_path / "b.yml",
    )
    tasks = book.plays[0].tasks
    assert tasks[0].module == "shell" and tasks[0].args == {"cmd": "make all", "creates": "/opt/out", "chdir": "/src"}
    assert tasks[1].args == {"src": "a.txt", "dest": "/tmp/a.txt", "mode": "0644"}
    assert tasks[2].args == {"cmd": "echo hi", "removes": "/tmp/flag"}
    assert tasks[3].module == "file" and tasks[3].args == {"path": "/tmp/d", "state": "directory"}


def test_builtin_playbooks_parse_and_resolve_by_name() -> None:
    names = builtin_playbooks()
    assert names, "playbooks/*.yml should hold the built-in playbooks"
    for name in names:
        path = resolve_playbook(name)
        assert path == BUILTIN_DIR / f"{name}.yml"
        book = parse_playbook(path.read_text(), path)
        assert book.plays and all(p.tasks for p in book.plays)
    with pytest.raises(PlaybookError) as err:
        resolve_playbook("no-such-book")
    assert names[0] in err.value.hint


def test_extra_vars_forms(tmp_path: Path) -> None:
    vars_file = tmp_path / "v.yml"
    vars_file.write_text("port: 8000\nlist: [1, 2]\n")
    got = parse_extra_vars(["a=1 b='two words'", '{"c": true}', f"@{vars_file}"])
    assert got == {"a": "1", "b": "two words", "c": True, "port": 8000, "list": [1, 2]}
    with pytest.raises(PlaybookError, match="expected k=v"):
        parse_extra_vars(["novalue"])


# ---------------------------------------------------------------- templating
def test_templating_is_lazy_native_and_strict() -> None:
    t = Templar({"base": "/opt", "dir": "{{ base }}/app", "n": 4, "r": {"rc": 1, "stdout": "x"}})
    assert t.template("{{ dir }}/bin") == "/opt/app/bin"
    assert t.template("{{ n }}") == 4 and t.template("{{ n - 1 }}") == 3
    assert t.template({"k": ["{{ base }}"]}) == {"k": ["/opt"]}
    assert t.template("{{ missing | default('d') }}") == "d"
    assert t.template("{{ 'a.b.c' | regex_replace('\\\\.', '-') }}") == "a-b-c"
    assert t.truth("r is failed") is False and t.truth("r.rc == 1") is True
    assert t.template("{{ base }}\n") == "/opt\n"
    with pytest.raises(TemplateError, match="'missing' is undefined"):
        t.template("{{ missing }}/x")
    with pytest.raises(TemplateError, match="recursive"):
        Templar({"a": "{{ b }}", "b": "{{ a }}"}).template("{{ a }}")


# ---------------------------------------------------------------- pure edits
def test_lineinfile_rules() -> None:
    assert lineinfile_edit("a=1\nb=2\n", line="b=3", regexp="^b=") == ("a=1\nb=3\n", "line replaced")
    assert lineinfile_edit("a=1\nb=3\n", line="b=3", regexp="^b=") == ("a=1\nb=3\n", "")
    assert lineinfile_edit("a=1", line="c=1") == ("a=1\nc=1\n", "line added")
    assert lineinfile_edit("a=1\nc=1\n", line="c=1") == ("a=1\nc=1\n", "")
    assert lineinfile_edit("x\n[s]\ny\n", line="k=v", insertafter=r"^\[s\]") == ("x\n[s]\nk=v\ny\n", "line added")
    assert lineinfile_edit("x\ny\n", line="top", insertbefore="BOF") == ("top\nx\ny\n", "line added")
    assert lineinfile_edit("a=1\nb=2\nb=3\n", line=None, regexp="^b=", state="absent") == ("a=1\n", "2 line(s) removed")
    assert lineinfile_edit("port 80\n", line=r"port \g<1>0", regexp=r"^port (\d+)$", backrefs=True) == (
        "port 800\n",
        "line replaced",
    )
    assert lineinfile_edit("nothing\n", line=r"\1", regexp="^zz(.*)$", backrefs=True) == ("nothing\n", "")


def test_replace_rules() -> None:
    assert replace_edit("port=1\nport=2\n", r"^port=\d+$", "port=9") == ("port=9\nport=9\n", 2)
    text = "[a]\nk=1\n[b]\nk=1\n"
    assert replace_edit(text, r"^k=1$", "k=2", after=r"\[b\]") == ("[a]\nk=1\n[b]\nk=2\n", 1)
    assert replace_edit(text, r"^k=1$", "k=2", before=r"\[b\]") == ("[a]\nk=2\n[b]\nk=1\n", 1)
    assert replace_edit("abc", "z", "y") == ("abc", 0)


def test_play_host_patterns(tmp_path: Path) -> None:
    result = run_local(tmp_path, "- hosts: 'all:!h2'\n  gather_facts: false\n  tasks:\n    - debug: msg=hi\n", hosts=3)
    assert sorted(result.stats) == ["h1", "h3"]
    play = Play(name="p", hosts="all", vars={}, tasks=())
    assert play.hosts == "all"
