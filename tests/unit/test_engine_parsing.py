"""The playbook engine before anything runs: what it accepts of a playbook, -e values, templating, host patterns.

What it refuses (everything infprov's own playbooks do not use) is tabled in tests/test_ansible_refusals.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from infprov.playbooks.errors import PlaybookError, TemplateError
from infprov.playbooks.parsing import (
    BUILTIN_DIR,
    builtin_playbooks,
    parse_extra_vars,
    parse_playbook,
    resolve_playbook,
)
from infprov.playbooks.templating import Templar
from tests.local_engine import run_local

HEAD = "- hosts: all\n  gather_facts: false\n  tasks:\n"


# ---------------------------------------------------------------- parsing: errors name the file, the task and the word
def test_unknown_module_is_named_with_file_line_task_and_ansible_core(tmp_path: Path) -> None:
    text = HEAD + "    - name: first\n      command: echo hi\n    - name: build it\n      ansible.builtin.shel: make\n"
    with pytest.raises(PlaybookError) as err:
        parse_playbook(text, tmp_path / "site.yml")
    msg = err.value.message
    assert f"{tmp_path / 'site.yml'}:7" in msg
    assert "'build it'" in msg and "module 'ansible.builtin.shel' is not supported by infprov's engine" in msg
    assert "infprov play FILE" in err.value.hint and "ansible-core" in err.value.hint
    assert err.value.exit_code == 2


def test_structure_errors(tmp_path: Path) -> None:
    with pytest.raises(PlaybookError, match=r"more than one module"):
        parse_playbook(HEAD + "    - shell: a\n      command: b\n", tmp_path / "b.yml")
    with pytest.raises(PlaybookError, match=r"has no `hosts`"):
        parse_playbook("- tasks: []\n", tmp_path / "b.yml")
    with pytest.raises(PlaybookError, match=r"names no module"):
        parse_playbook(HEAD + "    - name: nothing\n", tmp_path / "b.yml")
    with pytest.raises(PlaybookError, match=r"`register` must be a variable name"):
        parse_playbook(HEAD + "    - {command: 'true', register: 'a b'}\n", tmp_path / "b.yml")
    with pytest.raises(PlaybookError, match=r"`loop_control` needs a `loop`"):
        parse_playbook(HEAD + "    - {command: 'true', loop_control: {label: x}}\n", tmp_path / "b.yml")


def test_yaml_syntax_error_points_at_the_line(tmp_path: Path) -> None:
    with pytest.raises(PlaybookError, match=r"b.yml:5: not valid YAML: (did not find )?expected .,. or .\]."):
        parse_playbook(HEAD + "    - shell: [a\n    - command: x\n", tmp_path / "b.yml")


def test_the_forms_infprovs_playbooks_write(tmp_path: Path) -> None:
    book = parse_playbook(
        "- hosts: all\n  gather_facts: false\n  tags: [probe]\n  vars: {d: /tmp/x}\n  tasks:\n"
        "    - ansible.builtin.shell: |\n        make all\n      register: r\n      changed_when: false\n"
        "    - command: curl -s -w '%{http_code}' http://127.0.0.1/\n      failed_when: false\n      timeout: 20\n"
        "    - ansible.builtin.file: {path: '{{ d }}', state: directory, mode: '0755'}\n"
        "    - copy: {src: a.txt, dest: '{{ d }}/{{ item.dest }}', mode: '0644'}\n"
        "      loop: [{dest: a}]\n      loop_control: {label: '{{ item.dest }}'}\n      no_log: true\n"
        "    - ansible.builtin.git: {repo: /r, version: r22.04, dest: /d, update: false}\n"
        "    - ansible.builtin.assert: {that: [\"d is match('^/')\"], fail_msg: bad, quiet: true}\n"
        "    - infprov_stream: {cmd: sleep 1, on_stop: 'true'}\n      when: r.stdout != '200'\n"
        "    - fetch: {src: /x, dest: /y, flat: true, fail_on_missing: false}\n      vars: {v: 1}\n",
        tmp_path / "b.yml",
    )
    [play] = book.plays
    tasks = play.tasks
    assert [t.module for t in tasks] == ["shell", "command", "file", "copy", "git", "assert", "infprov_stream",
                                         "fetch"]
    assert tasks[0].args == {"cmd": "make all\n"} and tasks[1].args["cmd"].startswith("curl -s")
    assert tasks[2].args == {"path": "{{ d }}", "state": "directory", "mode": "0755"}
    assert all(t.tags == frozenset({"probe"}) for t in tasks)
    assert tasks[3].keywords["loop_control"] == {"label": "{{ item.dest }}"} and tasks[3].keywords["no_log"] is True


def test_builtin_playbooks_parse_and_resolve_by_name() -> None:
    names = builtin_playbooks()
    assert names == ["bench", "bundle", "server"]
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
    t = Templar({"base": "/opt", "dir": "{{ base }}/app", "n": 4, "r": {"rc": 1, "stdout": "x"},
                 "it": "inf2.xlarge", "cores": "16"})
    assert t.template("{{ dir }}/bin") == "/opt/app/bin"
    assert t.template("{{ n }}") == 4 and t.template("{{ n - 1 }}") == 3
    assert t.template("0:{{ (cores | int) - 1 }}") == "0:15"
    assert t.template("{{ it.split('.')[0] }}") == "inf2"
    assert t.template({"k": ["{{ base }}"]}) == {"k": ["/opt"]}
    assert t.template("{{ missing | default('d') }}") == "d"
    assert t.template("{{ 'a b' | quote }} {{ ' x ' | trim }} {{ 'a:b' | replace(':', '-') }}") == "'a b' x a-b"
    assert t.template("{{ 'neuron-v2' if it.split('.')[0] in ['inf2', 'trn1'] else 'neuron-v1' }}") == "neuron-v2"
    assert t.template("{% for x in [1, 2] %}-{{ x }}{% endfor %} {% raw %}{{.State}}{% endraw %}") == "-1-2 {{.State}}"
    assert t.truth("r.rc == 1") is True and t.truth("(n | string) is match('^[0-9]+$')") is True
    assert t.truth("'x' in r.stdout and not (r.rc != 1)") is True
    assert t.template("{{ base }}\n") == "/opt\n"
    typed = Templar({"t": "{{ '42' }}", "l": "{{ '[1, 2]' }}", "n": "{{ 41 }}", "li": "{{ [1, 2] }}"})
    assert [typed.template(f"{{{{ {v} }}}}") for v in ("t", "l", "n", "li")] == ["42", "[1, 2]", 41, [1, 2]]
    with pytest.raises(TemplateError, match="'missing' is undefined"):
        t.template("{{ missing }}/x")
    with pytest.raises(TemplateError, match="recursive"):
        Templar({"a": "{{ b }}", "b": "{{ a }}"}).template("{{ a }}")


def test_a_template_infprov_does_not_run_fails_when_compiled_too() -> None:
    """The pre-run check is also the compiler's: a template from anywhere (a registered value is data and never
    compiled) meets the same rule."""
    for source, word in [("{{ 'A' * 3 }}", "`*`"), ("{{ range(3) }}", "function range()"),
                         ("{{ x | to_json }}", "filter 'to_json'"), ("{% if x %}y{% endif %}", "{% if %}"),
                         ("{{ '{}'.format(1) }}", "method .format()")]:
        with pytest.raises(TemplateError, match=re.escape(word)):
            Templar({"x": 1}).template(source)


def test_play_host_patterns(tmp_path: Path) -> None:
    result = run_local(tmp_path, "- hosts: 'all:!h2'\n  gather_facts: false\n  tasks:\n    - command: 'true'\n",
                       hosts=3)
    assert sorted(result.stats) == ["h1", "h3"]
