"""What infprov's own engine refuses before anything runs: everything infprov's own playbooks do not use (the
modules, keywords, filters, tests and lookups it once had among them), as a table. Each refusal is one line
naming file:line and the unsupported thing, and points at ansible-core (`infprov play FILE`).
tests/sandbox/test_ansible_refusals.py runs the same table through `infprov play --engine infprov` on a sandbox
host (exit 2, that one line, nothing changed)."""

# ruff: noqa: E501  (the cases are one-line playbooks, clearer unwrapped)
from __future__ import annotations

from pathlib import Path

import pytest

from infprov.playbooks.errors import PlaybookError
from infprov.playbooks.parsing import parse_playbook
from tests.ansible_diff_run import play

TOUCH = "- file: {path: '{{ d }}/m', state: directory}\n"


def task(text: str) -> str:
    """A play whose first task would make a folder on the host, then the refused task."""
    return play(TOUCH + text)


# (name, playbook text, fragment of the one error line)
REFUSED: list[tuple[str, str, str]] = [
    # modules infprov's playbooks do not use (deleted from the engine)
    *[(f"module_{m}", task(f"- {m}: {args}\n"), f"module '{m}'") for m, args in [
        ("debug", "{msg: x}"), ("set_fact", "{a: 1}"), ("template", "{src: t.j2, dest: /tmp/t}"),
        ("lineinfile", "{path: /tmp/x, line: a}"), ("replace", "{path: /tmp/x, regexp: a}"), ("stat", "{path: /tmp}"),
        ("fail", "{msg: x}"), ("wait_for", "{port: 22}"), ("uri", "{url: 'http://x'}"),
        ("get_url", "{url: 'http://x', dest: /tmp/x}"), ("apt", "{name: x}"), ("ansible.legacy.shell", "echo"),
        ("meta", "flush_handlers"),
    ]],
    ("include_tasks", task("- include_tasks: x.yml\n"), "task keyword 'include_tasks'"),
    ("block", task("- block: []\n"), "task keyword 'block'"),
    # arguments and values of the modules kept
    ("copy_content", task("- copy: {content: x, dest: /tmp/x}\n"), "argument 'content' of module copy"),
    ("copy_owner", task("- copy: {src: a, dest: /tmp/x, owner: root}\n"), "argument 'owner' of module copy"),
    ("file_touch", task("- file: {path: /tmp/x, state: touch}\n"), "file with state: 'touch'"),
    ("file_no_state", task("- file: {path: /tmp/x, mode: '0644'}\n"), "file with no `state`"),
    ("git_update", task("- git: {repo: /r, dest: /d, version: main}\n"), "git with no `update`"),
    ("git_force", task("- git: {repo: /r, dest: /d, update: false, force: true}\n"), "argument 'force' of module git"),
    ("shell_creates", task("- shell: make creates=/x\n"), "the free-form option `creates=` of shell"),
    ("command_key_value", task("- copy: src=a dest=/tmp/x\n"), "arguments of copy that are not a mapping"),
    ("assert_success_msg", task("- assert: {that: [true], success_msg: ok}\n"), "argument 'success_msg' of module assert"),
    # task keywords
    *[(f"keyword_{k}", task(f"- command: 'true'\n  {k}: {v}\n"), f"task keyword '{k}'") for k, v in [
        ("become", "true"), ("become_user", "root"), ("environment", "{A: b}"), ("ignore_errors", "true"),
        ("until", "x"), ("retries", "3"), ("delay", "1"), ("with_items", "[1]"), ("notify", "h"), ("args", "{chdir: /}"),
        ("check_mode", "false"), ("tags", "[a]"), ("delegate_to", "localhost"), ("run_once", "true"),
    ]],
    ("loop_control_loop_var", task("- command: 'true'\n  loop: [1]\n  loop_control: {loop_var: x}\n"), "loop_control 'loop_var'"),
    # play keywords
    *[(f"play_{k}", f"- hosts: H\n  gather_facts: false\n  {k}: {v}\n  tasks:\n    - command: 'true'\n", f"play keyword '{k}'") for k, v in [
        ("handlers", "[]"), ("pre_tasks", "[]"), ("post_tasks", "[]"), ("become", "true"), ("environment", "{A: b}"),
        ("vars_files", "[vars.yml]"), ("strategy", "free"), ("roles", "[x]"), ("serial", "1"),
    ]],
    ("gather_facts_default", "- hosts: H\n  tasks:\n    - command: 'true'\n", "gathering facts"),
    ("templated_hosts", "- hosts: '{{ target }}'\n  gather_facts: false\n  tasks:\n    - command: 'true'\n", "a templated `hosts`"),
    ("special_tag", "- hosts: H\n  gather_facts: false\n  tags: [always]\n  tasks:\n    - command: 'true'\n", "the special tag 'always'"),
    # filters, tests, lookups, functions and Jinja infprov's playbooks do not use
    *[(f"filter_{f.split('(')[0]}", task(f"- command: echo {{{{ 'x' | {f} }}}}\n"), f"filter '{f.split('(')[0]}'") for f in [
        "to_json", "regex_replace('a', 'b')", "b64encode", "bool", "upper", "join(',')", "map('int')", "to_uuid",
    ]],
    *[(f"test_{t.split('(')[0]}", task(f"- command: 'true'\n  when: x is {t}\n"), f"test '{t.split('(')[0]}'") for t in [
        "defined", "search('a')", "version('1', '>')", "failed", "string",
    ]],
    ("test_match_option", task("- command: 'true'\n  when: x is match('a', ignorecase=true)\n"), "test 'match' with keyword arguments"),
    ("lookup_file", task("- command: echo {{ lookup('file', '/etc/hostname') }}\n"), "function lookup()"),
    ("query", task("- command: echo {{ query('items', [1]) }}\n"), "function query()"),
    ("range", task("- command: echo {{ range(3) }}\n"), "function range()"),
    ("method_format", task("- command: echo {{ '{}'.format(1) }}\n"), "method .format()"),
    ("jinja_if", task("- command: echo {% if x %}y{% endif %}\n"), "{% if %}"),
    ("jinja_set", task("- command: echo {% set y = 1 %}{{ y }}\n"), "{% set %}"),
    ("jinja_include", task("- command: echo \"{% include 'x' %}\"\n"), "{% include %}"),
    ("jinja_macro", task("- command: echo \"{% macro m() %}x{% endmacro %}\"\n"), "{% macro %}"),
    ("jinja_times", task("- command: echo {{ 'a' * 3 }}\n"), "`*`"),
    ("jinja_plus", task("- command: echo {{ 1 + 2 }}\n"), "`+`"),
    ("jinja_dict", task("- command: \"echo {{ {'a': 1} }}\"\n"), "a dict literal"),
    ("jinja_loop_var", task("- command: echo \"{% for x in [1] %}{{ loop.index }}{% endfor %}\"\n"), "the `loop` variable"),
    ("magic_hostvars", task("- command: echo {{ hostvars['h'] }}\n"), "variable 'hostvars'"),
    ("fact_variable", task("- command: echo {{ ansible_hostname }}\n"), "variable 'ansible_hostname'"),
    ("omit", task("- file: {path: /tmp/x, state: directory, mode: '{{ m | default(omit) }}'}\n"), "variable 'omit'"),
    ("vars_filter", "- hosts: H\n  gather_facts: false\n  vars: {a: \"{{ 1 | to_datetime }}\"}\n  tasks:\n    - command: 'true'\n", "filter 'to_datetime'"),
]


@pytest.mark.parametrize(("name", "text", "fragment"), REFUSED, ids=[r[0] for r in REFUSED])
def test_refused_in_one_line_before_running(name: str, text: str, fragment: str, tmp_path: Path) -> None:
    book = tmp_path / "book.yml"
    with pytest.raises(PlaybookError) as err:
        parse_playbook(text, book)
    line = err.value.message
    assert "\n" not in line and f"{book}:" in line, line
    assert fragment in line and "is not supported by infprov's engine" in line, line
    assert "infprov play FILE" in err.value.hint and "ansible-core" in err.value.hint
    assert err.value.exit_code == 2


def test_the_table_covers_what_was_deleted() -> None:
    names = {r[0] for r in REFUSED}
    assert len(names) == len(REFUSED)
    for deleted in ("module_debug", "module_set_fact", "module_template", "module_lineinfile", "module_replace",
                    "module_stat", "module_fail", "module_wait_for", "module_uri", "module_get_url", "play_handlers",
                    "keyword_become", "keyword_until", "keyword_ignore_errors", "keyword_with_items", "lookup_file"):
        assert deleted in names, deleted
