"""Differential suite: small playbooks run under `infprov play` and `ansible-playbook` against sandbox hosts.

Each case is one small play (or a few) run twice by each engine; compared: every task's status per host on
both runs, the recap, the hosts' files (type, content, mode, owner, group, link target) and what `debug`
shows. Unsupported playbooks must be refused by infprov before anything runs (exit 2, one line naming
file:line, nothing changed on the hosts).

Speed: cases are batched into a few playbooks per engine (a play per case, each on its own inventory
group of host aliases that point at the sandbox's hosts), batches run in parallel, and the two engines
work in separate folders so they run side by side. ansible-playbook stops a playbook once every host of
a play has failed, so a case that fails all its hosts ends its batch.

Select with `-m ansible_diff`; the reference is the ansible-core release on PATH (2.19).
"""

# ruff: noqa: E501  (the cases are one-line Jinja expressions, clearer unwrapped)
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from infprov.inventory import store
from infprov.inventory.model import Host, Inventory
from infprov.playbooks.connection import SshConnection

pytestmark = [
    pytest.mark.sandbox,
    pytest.mark.ansible_diff,
    pytest.mark.skipif(shutil.which("ansible-playbook") is None, reason="ansible-core is not installed"),
]

CALLBACK_DIR = Path(__file__).resolve().parent / "ansible_diff"
ANSIBLE_ARGS = "-o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no"
WORKERS = 4  # batches run at a time (2 CPUs: ansible-playbook forks a process per task and host)


@dataclass(frozen=True)
class Case:
    name: str
    book: str  # plays; `hosts: H` is replaced by the case's own group
    hosts: int = 1
    fails: bool = False  # every host of the case fails somewhere: the case ends its batch
    opts: tuple[str, ...] = ()  # command-line options, the same for both engines (--tags, --check)


def play(tasks: str, *, head: str = "", handlers: str = "") -> str:
    out = "- hosts: H\n  gather_facts: false\n" + textwrap.indent(textwrap.dedent(head), "  ")
    out += "  tasks:\n" + textwrap.indent(textwrap.dedent(tasks), "    ")
    if handlers:
        out += "  handlers:\n" + textwrap.indent(textwrap.dedent(handlers), "    ")
    return out


def case(name: str, tasks: str, **kw: Any) -> Case:
    head = kw.pop("head", "")
    handlers = kw.pop("handlers", "")
    return Case(name, play(tasks, head=head, handlers=handlers), **kw)


# ---------------------------------------------------------------- the cases
CASES: list[Case] = [
    # ---- file
    case("file_dir", """
        - name: dir
          file: {path: "{{ d }}/a/b/c", state: directory, mode: "0750"}
    """),
    case("file_dir_recurse", """
        - file: {path: "{{ d }}/r/s", state: directory}
        - copy: {content: "x", dest: "{{ d }}/r/s/f"}
        - file: {path: "{{ d }}/r", state: directory, mode: "0700", recurse: true}
    """),
    case("file_touch_absent", """
        - file: {path: "{{ d }}", state: directory}
        - file: {path: "{{ d }}/t", state: touch, mode: "0600"}
        - file: {path: "{{ d }}/gone", state: absent}
        - file: {path: "{{ d }}/t", mode: "0640"}
    """),
    case("file_link", """
        - file: {path: "{{ d }}", state: directory}
        - copy: {content: "x\\n", dest: "{{ d }}/src"}
        - file: {src: "{{ d }}/src", dest: "{{ d }}/ln", state: link}
        - file: {src: src, dest: "{{ d }}/rel", state: link}
    """),
    case("file_link_missing_src", """
        - file: {path: "{{ d }}", state: directory}
        - file: {src: "{{ d }}/nothing", dest: "{{ d }}/ln", state: link}
    """, fails=True),
    case("file_link_missing_src_force", """
        - file: {path: "{{ d }}", state: directory}
        - file: {src: "{{ d }}/nothing", dest: "{{ d }}/ln", state: link, force: true}
    """),
    case("file_missing_state_file", """
        - file: {path: "{{ d }}/none", state: file}
    """, fails=True),
    case("file_over_file_fails", """
        - copy: {content: "x", dest: "{{ d }}/f"}
        - file: {path: "{{ d }}/f", state: directory}
    """, fails=True),
    # ---- copy
    case("copy_content", """
        - file: {path: "{{ d }}", state: directory}
        - copy: {content: "hello\\n", dest: "{{ d }}/c.txt", mode: "0640"}
    """),
    case("copy_src", """
        - file: {path: "{{ d }}", state: directory}
        - copy: {src: app.conf, dest: "{{ d }}/app.conf", mode: "0644"}
    """),
    case("copy_into_dir", """
        - file: {path: "{{ d }}", state: directory}
        - copy: {src: app.conf, dest: "{{ d }}/"}
    """),
    case("copy_tree", """
        - file: {path: "{{ d }}", state: directory}
        - copy: {src: tree, dest: "{{ d }}/"}
        - copy: {src: tree/, dest: "{{ d }}/flat/"}
    """),
    case("copy_force_false", """
        - file: {path: "{{ d }}", state: directory}
        - copy: {content: "first\\n", dest: "{{ d }}/f", mode: "0600"}
        - copy: {content: "second\\n", dest: "{{ d }}/f", force: false, mode: "0644"}
    """),
    case("copy_mode_only", """
        - file: {path: "{{ d }}", state: directory}
        - copy: {content: "same\\n", dest: "{{ d }}/f", mode: "0600"}
        - copy: {content: "same\\n", dest: "{{ d }}/f", mode: "0640"}
    """),
    case("copy_dict_content", """
        - file: {path: "{{ d }}", state: directory}
        - copy: {content: "{{ {'a': 1, 'b': [1, 2]} | to_json }}", dest: "{{ d }}/j"}
    """),
    case("copy_become_owner", """
        - file: {path: "{{ d }}", state: directory}
        - copy: {content: "root\\n", dest: "{{ d }}/r", owner: root, group: root, mode: "0600"}
          become: true
    """),
    case("copy_missing_parent", """
        - copy: {content: "x", dest: "{{ d }}/no/such/f"}
    """, fails=True),
    # ---- template
    case("template_basic", """
        - file: {path: "{{ d }}", state: directory}
        - template: {src: t.j2, dest: "{{ d }}/t", mode: "0644"}
    """, head="vars: {items_: [a, b], n: 3, none_: null}\n"),
    case("template_force_false", """
        - file: {path: "{{ d }}", state: directory}
        - copy: {content: "old\\n", dest: "{{ d }}/t"}
        - template: {src: t.j2, dest: "{{ d }}/t", force: false}
    """, head="vars: {items_: [a], n: 1, none_: null}\n"),
    # ---- lineinfile / replace
    case("lineinfile_create_regexp", """
        - file: {path: "{{ d }}", state: directory}
        - lineinfile: {path: "{{ d }}/s.ini", line: "a=1", create: true}
        - lineinfile: {path: "{{ d }}/s.ini", regexp: "^a=", line: "a=2"}
        - lineinfile: {path: "{{ d }}/s.ini", line: "b=3", insertbefore: BOF}
        - lineinfile: {path: "{{ d }}/s.ini", line: "c=4", insertafter: "^b="}
    """),
    case("lineinfile_absent_backrefs", """
        - file: {path: "{{ d }}", state: directory}
        - copy: {content: "x=1\\ny=2\\nz=3\\n", dest: "{{ d }}/f", force: false}
        - lineinfile: {path: "{{ d }}/f", regexp: "^y=", state: absent}
        - lineinfile: {path: "{{ d }}/f", regexp: "^x=(\\\\d)", line: "x=\\\\1\\\\1", backrefs: true}
    """),
    case("lineinfile_final_newline", """
        - file: {path: "{{ d }}", state: directory}
        - copy: {content: "a\\nb", dest: "{{ d }}/f", force: false}
        - lineinfile: {path: "{{ d }}/f", line: "b"}
    """),
    case("lineinfile_missing_file", """
        - lineinfile: {path: "{{ d }}/none", line: "x"}
    """, fails=True),
    case("replace", """
        - file: {path: "{{ d }}", state: directory}
        - copy: {content: "port=1\\nport=2\\nhost=a\\n", dest: "{{ d }}/f", force: false}
        - replace: {path: "{{ d }}/f", regexp: "^port=\\\\d+$", replace: "port=9"}
    """),
    # ---- stat / fetch
    case("stat", """
        - file: {path: "{{ d }}", state: directory}
        - copy: {content: "abc\\n", dest: "{{ d }}/f", mode: "0640"}
        - stat: {path: "{{ d }}/f"}
          register: s
        - debug: {msg: "{{ [s.stat.exists, s.stat.isreg, s.stat.mode, s.stat.checksum, s.stat.size] }}"}
        - stat: {path: "{{ d }}/none"}
          register: n
        - debug: {msg: "{{ n.stat.exists }}"}
    """),
    case("stat_sha256", """
        - file: {path: "{{ d }}", state: directory}
        - copy: {content: "abc\\n", dest: "{{ d }}/f"}
        - stat: {path: "{{ d }}/f", checksum_algorithm: sha256}
          register: s
        - debug: {var: s.stat.checksum}
    """),
    # ---- command / shell
    case("command_changed_when", """
        - command: echo hi
          register: r
          changed_when: false
        - debug: {var: r.stdout}
        - debug: {msg: "{{ r.rc }} {{ r.stdout_lines }}"}
    """),
    case("command_expands_home", """
        - command: echo $HOME ~ $NOPE_NOT_SET
          register: r
          changed_when: false
        - debug: {var: r.stdout}
        - command:
            argv: [echo, "$HOME/x", "~/y"]
          register: a
          changed_when: false
        - debug: {var: a.stdout}
    """),
    case("shell_pipes_env", """
        - shell: echo "$GREETING" | tr a-z A-Z
          environment: {GREETING: hello}
          register: r
          changed_when: false
        - debug: {var: r.stdout}
    """),
    case("shell_creates_glob", """
        - file: {path: "{{ d }}", state: directory}
        - shell: touch {{ d }}/made-1.log
          args: {creates: "{{ d }}/made-*.log"}
        - shell: echo again > {{ d }}/again
          args: {creates: "{{ d }}/*.nothing"}
          changed_when: false
    """),
    case("shell_removes", """
        - file: {path: "{{ d }}", state: directory}
        - shell: rm -f {{ d }}/x
          args: {removes: "{{ d }}/x"}
    """),
    case("command_chdir", """
        - file: {path: "{{ d }}", state: directory}
        - command: pwd
          args: {chdir: "{{ d }}"}
          register: r
          changed_when: false
        - debug: {msg: "{{ r.stdout | basename }}"}
    """),
    case("command_fails", """
        - command: "false"
    """, fails=True),
    case("command_stdin", """
        - command: cat
          args: {stdin: "from stdin"}
          register: r
          changed_when: false
        - debug: {var: r.stdout}
    """),
    case("command_check_mode", """
        - command: echo would
          check_mode: true
          register: r
        - debug: {msg: "{{ r.stdout | default('none') }}|{{ r.skipped | default(false) }}"}
    """),
    case("failed_when_rc", """
        - shell: exit 3
          register: r
          failed_when: r.rc not in [0, 3]
        - debug: {var: r.rc}
    """),
    case("failed_when_list_and", """
        - command: echo x
          register: r
          changed_when: [r.rc == 0, "'y' in r.stdout"]
          failed_when: [r.rc == 0, "'x' not in r.stdout"]
    """),
    case("ignore_errors", """
        - command: "false"
          ignore_errors: true
          register: r
        - debug: {msg: "{{ r is failed }} {{ r.rc }}"}
    """),
    # ---- control-side modules
    case("debug_kinds", """
        - debug: {msg: "plain"}
        - debug: {msg: [1, "two", {a: 3}]}
        - debug: {var: missing_var}
        - debug:
        - debug: {msg: "{{ none_ }}|{{ 'x' if none_ is none else 'y' }}"}
    """, head="vars: {none_: null}\n"),
    case("set_fact_and_types", """
        - set_fact: {n: "{{ 1 + 2 }}", s: "a{{ 1 }}", l: "{{ [1, 2] }}", b: "{{ true }}"}
        - debug: {msg: "{{ [n, s, l, b, n | type_debug, l | type_debug] }}"}
    """),
    case("assert_ok_and_fail", """
        - assert: {that: ["1 == 1", "'a' in 'abc'"], success_msg: fine}
        - assert: {that: "2 < 1", fail_msg: "nope"}
    """, fails=True),
    case("fail_module", """
        - debug: {msg: before}
        - fail: {msg: "stop here"}
        - debug: {msg: never}
    """, fails=True),
    # ---- variables and precedence
    case("precedence_set_fact_over_task_vars", """
        - set_fact: {v: from_fact}
        - debug: {msg: "{{ v }}"}
          vars: {v: from_task}
        - command: echo registered
          register: r2
          changed_when: false
        - debug: {msg: "{{ r2.stdout }}"}
          vars: {r2: {stdout: from_task}}
    """, head="vars: {v: from_play}\n"),
    case("precedence_play_vars_files", """
        - debug: {msg: "{{ a }} {{ b }}"}
    """, head="vars: {a: play, b: play}\nvars_files: [vars.yml]\n"),
    case("lazy_vars", """
        - debug: {msg: "{{ c }}"}
    """, head="vars: {a: 1, b: \"{{ a + 1 }}\", c: \"{{ b | int * 10 }}\"}\n"),
    case("magic_vars", """
        - debug: {msg: "{{ ansible_play_hosts | length }} {{ ansible_play_hosts_all | length }} {{ ansible_play_batch | length }}"}
        - debug: {msg: "{{ ansible_version.major }}.{{ ansible_version.minor }} {{ ansible_managed }}"}
        - debug: {msg: "{{ inventory_hostname in groups['all'] }} {{ group_names | length }} {{ ansible_check_mode }}"}
    """, hosts=2),
    case("hostvars_other_set_fact", """
        - set_fact: {mine: "{{ inventory_hostname }}-fact"}
        - debug: {msg: "{{ ansible_play_hosts | map('extract', hostvars, 'mine') | list }}"}
    """, hosts=2),
    case("failed_host_leaves_play_hosts", """
        - command: "{{ 'false' if inventory_hostname.endswith('_0') else 'true' }}"
          changed_when: false
        - debug: {msg: "{{ ansible_play_hosts }}"}
    """, hosts=2),
    Case("failed_host_leaves_later_plays",
         play("""
            - command: "{{ 'false' if inventory_hostname.endswith('_0') else 'true' }}"
              changed_when: false
         """) + play("""
            - debug: {msg: "{{ ansible_play_hosts }} {{ ansible_play_hosts_all | length }}"}
         """), hosts=2),
    case("extra_vars_like_inventory", """
        - debug: {msg: "{{ d | basename }} {{ ansible_port is defined }}"}
    """),
    # ---- conditionals (2.19 rules)
    case("when_bool_and_list", """
        - debug: {msg: yes-run}
          when: [1 == 1, "'a' in 'ab'"]
        - debug: {msg: no-run}
          when: 1 == 2
        - debug: {msg: defined}
          when: undefined_thing is not defined
    """),
    case("when_non_boolean_fails", """
        - debug: {msg: "a string is not a conditional"}
          when: some_text
    """, head="vars: {some_text: hello}\n", fails=True),
    case("when_string_bool_filter", """
        - debug: {msg: ran}
          when: flag | bool
        - debug: {msg: "{{ 'no' | bool }} {{ 'yes' | bool }} {{ 1 | bool }}"}
    """, head="vars: {flag: 'yes'}\n"),
    case("when_indirect_template", """
        - debug: {msg: ran}
          when: "{{ expr }}"
    """, head="vars: {expr: '1 == 1'}\n"),
    # ---- loops
    case("loop_items", """
        - file: {path: "{{ d }}", state: directory}
        - copy: {content: "{{ item }}\\n", dest: "{{ d }}/{{ item }}"}
          loop: [a, b, c]
    """),
    case("with_items_string", """
        - file: {path: "{{ d }}", state: directory}
        - copy: {content: "{{ item }}\\n", dest: "{{ d }}/one"}
          with_items: "single text"
    """),
    case("with_items_flattens", """
        - debug: {msg: "{{ item }}"}
          with_items: [[1, 2], [3, [4]]]
        - set_fact: {acc: "{{ acc | default([]) + [item] }}"}
          with_items: [[1, 2], [3, [4]]]
        - debug: {var: acc}
    """),
    case("loop_empty_skipped", """
        - debug: {msg: "{{ item }}"}
          loop: []
    """),
    case("loop_control_register", """
        - command: echo {{ thing }}-{{ i }}
          loop: [x, y]
          loop_control: {loop_var: thing, index_var: i, label: "{{ thing }}"}
          register: r
          changed_when: false
        - debug: {msg: "{{ r.results | map(attribute='stdout') | list }}"}
    """),
    case("loop_when_partial_skip", """
        - debug: {msg: "{{ item }}"}
          loop: [1, 2, 3]
          when: item != 2
        - debug: {msg: "{{ item }}"}
          loop: [1, 2]
          when: item > 5
    """),
    case("loop_failed_item", """
        - command: "test {{ item }} -lt 2"
          loop: [1, 2]
          register: r
          ignore_errors: true
        - debug: {msg: "{{ r.msg }} {{ r.results | map(attribute='rc') | list }}"}
    """),
    case("dict2items_loop", """
        - debug: {msg: "{{ item.key }}={{ item.value }}"}
          loop: "{{ {'a': 1, 'b': 2} | dict2items }}"
    """),
    case("until_attempts", """
        - file: {path: "{{ d }}", state: directory}
        - shell: n=$(cat {{ d }}/n 2>/dev/null || echo 0); echo $((n+1)) > {{ d }}/n; cat {{ d }}/n
          register: r
          until: r.stdout | int >= 2
          retries: 3
          delay: 0
          changed_when: false
        - debug: {msg: "{{ r.attempts }}"}
        - file: {path: "{{ d }}/n", state: absent}
    """),
    case("until_exhausted", """
        - command: "false"
          register: r
          until: r.rc == 0
          retries: 2
          delay: 0
          ignore_errors: true
        - debug: {msg: "{{ r.attempts }} {{ r is failed }}"}
    """),
    case("retries_without_until", """
        - command: "true"
          register: r
          retries: 2
          delay: 0
        - debug: {msg: "{{ r.attempts }}"}
    """),
    # ---- handlers and play structure
    Case("handlers_flush_per_section", """\
- hosts: H
  gather_facts: false
  pre_tasks:
    - command: echo pre
      notify: h
  tasks:
    - debug: {msg: after-pre}
    - command: echo main
      notify: [h, h2]
  post_tasks:
    - debug: {msg: post}
  handlers:
    - name: h
      debug: {msg: handler-h}
    - name: h2
      debug: {msg: handler-h2}
"""),
    case("handler_not_notified_when_ok", """
        - command: echo x
          changed_when: false
          notify: h
    """, handlers="""
        - name: h
          debug: {msg: never}
    """),
    case("linear_order_two_hosts", """
        - set_fact: {step: one}
        - debug: {msg: "{{ hostvars[ansible_play_hosts[0]].step }} {{ hostvars[ansible_play_hosts[-1]].step }}"}
    """, hosts=2),
    case("strategy_free", """
        - debug: {msg: "{{ inventory_hostname | length > 0 }}"}
        - command: echo free
          changed_when: false
    """, head="strategy: free\n", hosts=2),
    case("become_string_yes", """
        - command: id -un
          become: "yes"
          register: r
          changed_when: false
        - debug: {var: r.stdout}
        - command: id -un
          become: "no"
          register: u
          changed_when: false
        - debug: {var: u.stdout}
    """),
    case("no_log_and_check_mode_keyword", """
        - file: {path: "{{ d }}", state: directory}
        - copy: {content: "secret", dest: "{{ d }}/s"}
          no_log: true
        - copy: {content: "dry", dest: "{{ d }}/dry"}
          check_mode: true
    """),
    # ---- tags
    Case("tags_never_always", play("""
        - debug: {msg: untagged}
        - debug: {msg: tagged-a}
          tags: [a]
        - debug: {msg: always}
          tags: [always]
        - debug: {msg: never}
          tags: [never]
        - debug: {msg: never-and-a}
          tags: [never, a]
    """)),
    Case("tags_only_a", play("""
        - debug: {msg: untagged}
        - debug: {msg: tagged-a}
          tags: a
        - debug: {msg: always}
          tags: [always]
        - debug: {msg: never-and-a}
          tags: [never, a]
        - debug: {msg: b}
          tags: [b]
    """), opts=("--tags", "a")),
    Case("tags_skip_a", play("""
        - debug: {msg: untagged}
        - debug: {msg: tagged-a}
          tags: [a]
        - debug: {msg: always}
          tags: [always]
    """), opts=("--skip-tags", "a")),
    Case("tags_play_level", """\
- hosts: H
  gather_facts: false
  tags: [p]
  tasks:
    - debug: {msg: in-p}
- hosts: H
  gather_facts: false
  tasks:
    - debug: {msg: not-p}
""", opts=("--tags", "p")),
    # ---- check mode run
    Case("check_mode_run", play("""
        - file: {path: "{{ d }}", state: directory}
        - copy: {content: "x", dest: "{{ d }}/f"}
        - command: echo hi
        - command: echo guarded
          args: {creates: /etc/hostname}
    """), opts=("--check",)),
    # ---- filters
    case("filters_sets", """
        - debug: {msg: "{{ [a | union(b) | sort, a | intersect(b), a | difference(b), a | symmetric_difference(b) | sort, [1, 1, 2] | unique] }}"}
    """, head="vars: {a: [1, 2, 3], b: [2, 3, 4]}\n"),
    case("filters_zip_split_join", """
        - debug: {msg: "{{ [a | zip(b) | list, 'a,b,c' | split(','), ['/x', 'y', 'z'] | path_join, 'a.b' | splitext] }}"}
    """, head="vars: {a: [1, 2], b: [x, y]}\n"),
    case("filters_hash_b64", """
        - debug: {msg: "{{ ['abc' | hash('sha1'), 'abc' | hash('md5'), 'abc' | checksum, 'abc' | b64encode, 'YWJj' | b64decode] }}"}
    """),
    case("filters_regex", """
        - debug: {msg: "{{ ['a.b*c' | regex_escape, 'ab12cd' | regex_replace('\\\\d+', '-'), 'ab12cd34' | regex_findall('\\\\d+'), 'port=80' | regex_search('\\\\d+')] }}"}
    """),
    case("filters_extract_map", """
        - debug: {msg: "{{ ['a', 'c'] | map('extract', m) | list }}"}
        - debug: {msg: "{{ l | selectattr('on') | map(attribute='n') | list }}"}
        - debug: {msg: "{{ l | map(attribute='n') | join(',') }}"}
    """, head="vars: {m: {a: 1, b: 2, c: 3}, l: [{n: x, 'on': true}, {n: y, 'on': false}]}\n"),
    case("filters_combine_dict", """
        - debug: {msg: "{{ {'a': {'x': 1}, 'b': 2} | combine({'a': {'y': 2}}, recursive=true) }}"}
        - debug: {msg: "{{ {'a': 1} | dict2items | items2dict }}"}
    """),
    case("filters_flatten", """
        - debug: {msg: "{{ [1, [2, [3, [4]]], none_] | flatten }}"}
        - debug: {msg: "{{ [1, [2, [3]]] | flatten(levels=1) }}"}
    """, head="vars: {none_: null}\n"),
    case("filters_yaml_json", """
        - file: {path: "{{ d }}", state: directory}
        - copy: {content: "{{ doc | to_nice_yaml }}", dest: "{{ d }}/nice.yml"}
        - copy: {content: "{{ doc | to_yaml }}", dest: "{{ d }}/flow.yml"}
        - copy: {content: "{{ doc | to_nice_json }}", dest: "{{ d }}/nice.json"}
        - debug: {msg: "{{ '{\\"k\\": [1]}' | from_json }}"}
    """, head="vars: {doc: {name: café, list: [1, {a: b}], nested: {x: [y, z]}}}\n"),
    case("filters_default_chain", """
        - debug: {msg: "{{ undefined_var.x | default('y') }}"}
        - debug: {msg: "{{ {'a': 1}.b | default('none') }}"}
        - debug: {msg: "{{ '' | default('empty', true) }}"}
        - debug: {msg: "{{ none_ | default('kept') }}"}
    """, head="vars: {none_: null}\n"),
    case("filters_strings", """
        - debug: {msg: "{{ [' x ' | trim, 'ab' | upper, 'a b' | replace(' ', '_'), 'x' | quote, '/a/b.txt' | basename, '/a/b.txt' | dirname] }}"}
        - debug: {msg: "{{ 'a' | ternary('yes', 'no') }} {{ 5 | string }} {{ '5' | int + 1 }} {{ 2.5 | round }}"}
    """),
    case("filters_numbers_lists", """
        - debug: {msg: "{{ [[3, 1, 2] | max, [3, 1, 2] | min, [3, 1, 2] | sum, [3, 1, 2] | sort, [1, 2] | length, [1, 2] | first, [1, 2] | last] }}"}
        - debug: {msg: "{{ range(3) | list }} {{ [1, 2] | product(['a']) | list }} {{ 1024 | human_readable }}"}
    """),
    case("filters_mandatory_comment", """
        - debug: {msg: "{{ 'x' | mandatory }}"}
        - debug: {msg: "{{ 'line' | comment }}"}
    """),
    # ---- tests
    case("tests_version_and_sets", """
        - debug: {msg: "{{ ['1.10' is version('1.9', '>'), '2.0' is version('2.0', 'eq'), [1] is subset([1, 2]), [1, 2] is superset([2]), [1, 2] is contains(2)] }}"}
    """),
    case("tests_regex_and_types", """
        - debug: {msg: "{{ ['abc' is match('a'), 'abc' is search('c'), 'abc' is regex('^a.c$'), 5 is number, 'x' is string, [1] is sequence, {} is mapping, none_ is none] }}"}
    """, head="vars: {none_: null}\n"),
    case("tests_results", """
        - command: "true"
          register: r
        - debug: {msg: "{{ [r is success, r is changed, r is failed, r is skipped] }}"}
        - command: echo x
          when: false
          register: s
        - debug: {msg: "{{ s is skipped }}"}
    """),
    case("tests_truthy_any_all", """
        - debug: {msg: "{{ [1 is truthy, 0 is falsy, [true, false] is any, [true, true] is all, '/x' is abs] }}"}
    """),
    # ---- lookups
    case("lookup_env_pipe_file", """
        - debug: {msg: "{{ lookup('pipe', 'echo piped') }}"}
        - debug: {msg: "{{ lookup('file', 'app.conf') }}"}
        - debug: {msg: "{{ lookup('env', 'INFPROV_DIFF_MARK') }}"}
        - debug: {msg: "{{ query('items', [1, 2], 3) }} {{ lookup('list', [1, 2]) }}"}
    """),
    case("lookup_lines_dict", """
        - debug: {msg: "{{ item }}"}
          loop: "{{ query('lines', 'printf \\"a\\\\nb\\\\n\\"') }}"
        - debug: {msg: "{{ item.key }}"}
          loop: "{{ query('dict', {'k': 1}) }}"
    """),
    # ---- jinja statements allowed
    case("jinja_for_if_set", """
        - debug: {msg: "{% for x in [1, 2] %}{{ x }}{% if not loop.last %},{% endif %}{% endfor %}"}
        - debug: {msg: "{% set y = 3 %}{{ y * 2 }}"}
    """),
    case("omit_argument", """
        - file: {path: "{{ d }}", state: directory}
        - copy: {content: "x", dest: "{{ d }}/f", mode: "{{ wanted_mode | default(omit) }}"}
    """),
    case("environment_play_and_task", """
        - shell: echo "$A $B"
          environment: {B: task}
          register: r
          changed_when: false
        - debug: {var: r.stdout}
    """, head="environment: {A: play, B: play}\n"),
    case("task_vars_template_name", """
        - name: "named {{ v }}"
          debug: {msg: "{{ v }}"}
          vars: {v: task}
    """),
]

# Playbooks infprov must refuse before running: (name, playbook text, fragment of the one error line)
REFUSED: list[tuple[str, str, str]] = [
    ("gather_facts_default", "- hosts: H\n  tasks:\n    - file: {path: '{{ d }}/m', state: touch}\n", "gather_facts"),
    ("gather_facts_true", "- hosts: H\n  gather_facts: true\n  tasks:\n    - debug: {msg: x}\n", "gather_facts"),
    ("unknown_filter", play("- file: {path: '{{ d }}/m', state: touch}\n- debug: {msg: \"{{ 'x' | to_uuid }}\"}\n"),
     "filter 'to_uuid'"),
    ("unknown_test", play("- file: {path: '{{ d }}/m', state: touch}\n- debug: {msg: x}\n  when: d is directory\n"),
     "test 'directory'"),
    ("unknown_lookup", play("- file: {path: '{{ d }}/m', state: touch}\n- debug: {msg: \"{{ lookup('url', 'http://x') }}\"}\n"),
     "lookup plugin 'url'"),
    ("jinja_include", play("- file: {path: '{{ d }}/m', state: touch}\n- debug: {msg: \"{% include 'x' %}\"}\n"),
     "include"),
    ("jinja_import", play("- file: {path: '{{ d }}/m', state: touch}\n- debug: {msg: \"{% import 'x' as y %}\"}\n"),
     "import"),
    ("jinja_macro", play("- file: {path: '{{ d }}/m', state: touch}\n- debug: {msg: \"{% macro m() %}x{% endmacro %}\"}\n"),
     "macro"),
    ("template_file_extends", play("- file: {path: '{{ d }}/m', state: touch}\n- template: {src: extends.j2, dest: '{{ d }}/t'}\n"),
     "extends"),
    ("unknown_module", play("- file: {path: '{{ d }}/m', state: touch}\n- apt: {name: x}\n"), "'apt'"),
    ("unknown_argument", play("- file: {path: '{{ d }}/m', state: touch}\n- copy: {content: x, dest: /tmp/x, backup: true}\n"),
     "backup"),
    ("delegate_to", play("- file: {path: '{{ d }}/m', state: touch}\n- debug: {msg: x}\n  delegate_to: localhost\n"),
     "delegate_to"),
    ("block", play("- file: {path: '{{ d }}/m', state: touch}\n- block:\n    - debug: {msg: x}\n"), "block"),
    ("include_tasks", play("- file: {path: '{{ d }}/m', state: touch}\n- include_tasks: x.yml\n"), "include_tasks"),
    ("roles", "- hosts: H\n  gather_facts: false\n  roles: [x]\n  tasks:\n    - debug: {msg: x}\n", "roles"),
    ("serial", "- hosts: H\n  gather_facts: false\n  serial: 1\n  tasks:\n    - debug: {msg: x}\n", "serial"),
    ("strategy_other", "- hosts: H\n  gather_facts: false\n  strategy: debug\n  tasks:\n    - debug: {msg: x}\n",
     "strategy"),
    ("fact_variable", play("- file: {path: '{{ d }}/m', state: touch}\n- debug: {msg: '{{ ansible_hostname }}'}\n"),
     "ansible_hostname"),
    ("now_function", play("- file: {path: '{{ d }}/m', state: touch}\n- debug: {msg: '{{ now() }}'}\n"), "now()"),
    ("loop_control_extended", play("- debug: {msg: x}\n  loop: [1]\n  loop_control: {extended: true}\n"),
     "loop_control"),
    ("meta_flush", play("- file: {path: '{{ d }}/m', state: touch}\n- meta: flush_handlers\n"), "'meta'"),
    ("run_once", play("- debug: {msg: x}\n  run_once: true\n"), "run_once"),
    ("templated_hosts", "- hosts: '{{ target }}'\n  gather_facts: false\n  tasks:\n    - debug: {msg: x}\n", "hosts"),
    ("syntax_error_template", play("- file: {path: '{{ d }}/m', state: touch}\n- debug: {msg: '{{ x | }}'}\n"),
     "syntax error"),
    ("vars_unknown_filter", "- hosts: H\n  gather_facts: false\n  vars: {a: \"{{ 1 | to_datetime }}\"}\n  tasks:\n"
     "    - file: {path: '{{ d }}/m', state: touch}\n", "to_datetime"),
]

TEMPLATE = """\
host {{ inventory_hostname | regex_replace('_[0-9]+$', '') }}
{% for i in items_ %}
- {{ i }}
{% endfor %}
{% if n > 2 %}
many
{% endif %}
none:[{{ none_ }}]
{{ ansible_managed }}
"""


# ---------------------------------------------------------------- running them
@dataclass
class Outcome:
    """What one engine did: per run, host → [(task, status, ignored, msg)], and the recap."""

    runs: list[dict[str, list[tuple[str, str, bool, str | None]]]] = field(default_factory=list)
    recaps: list[dict[str, dict[str, int]]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _book_dir(root: Path) -> Path:
    (root / "files" / "tree" / "sub").mkdir(parents=True)
    (root / "files" / "app.conf").write_text("listen=0.0.0.0\nport=8000\n")
    (root / "files" / "tree" / "a.txt").write_text("a\n")
    (root / "files" / "tree" / "sub" / "b.txt").write_text("b\n")
    (root / "templates").mkdir()
    (root / "templates" / "t.j2").write_text(TEMPLATE)
    (root / "templates" / "extends.j2").write_text("{% extends 'base.j2' %}\n")
    (root / "vars.yml").write_text("b: from_vars_file\n")
    return root


def _inventory(path: Path, cases: list[Case], fleet: list[dict[str, Any]], root: str) -> None:
    hosts: list[Host] = []
    for index, c in enumerate(cases):
        for k in range(c.hosts):
            real = fleet[(index + k) % len(fleet)]
            hosts.append(Host(name=f"{c.name}_{k}", address=real["address"], port=int(real["port"]),
                              user=real["user"], key_file=real["key_file"], cluster=c.name,
                              extra={"ansible_ssh_common_args": ANSIBLE_ARGS}))
    groups = {c.name: {"d": f"{root}/{c.name}"} for c in cases}
    path.write_text(store.dump(Inventory(hosts=tuple(hosts), group_vars=groups)))


def _batches(cases: list[Case]) -> list[list[Case]]:
    """Cases with the same options together; each case that fails all its hosts ends a batch."""
    out: list[list[Case]] = []
    by_opts: dict[tuple[str, ...], list[Case]] = {}
    for c in cases:
        by_opts.setdefault(c.opts, []).append(c)
    for group in by_opts.values():
        passing = [c for c in group if not c.fails]
        failing = [c for c in group if c.fails]
        count = max(1, len(failing))
        for i in range(count):
            batch = passing[i::count]
            if failing:
                batch = [*batch, failing[i]]
            out.append(batch)
    return out


def _playbook(path: Path, batch: list[Case]) -> None:
    text = ""
    for c in batch:
        text += c.book.replace("- hosts: H\n", f"- hosts: {c.name}\n") + "\n"
    path.write_text(text)


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, "INFPROV_HOME": str(home), "INFPROV_DIFF_MARK": "marked", "ANSIBLE_HOST_KEY_CHECKING": "False",
            "ANSIBLE_PIPELINING": "True", "ANSIBLE_NOCOLOR": "1", "ANSIBLE_RETRY_FILES_ENABLED": "False",
            "ANSIBLE_CALLBACK_PLUGINS": str(CALLBACK_DIR), "ANSIBLE_CALLBACKS_ENABLED": "infprov_diff",
            "ANSIBLE_DEPRECATION_WARNINGS": "False", "ANSIBLE_FORKS": "10", "ANSIBLE_LOCAL_TEMP": str(home / "ansible-tmp"),
            "ANSIBLE_SSH_CONTROL_PATH_DIR": str(home / "cp")}  # fmt: skip


def _strip_alias(host: str) -> str:
    return host


def _run_infprov(book: Path, inv: Path, opts: tuple[str, ...], home: Path, root: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    proc = subprocess.run([sys.executable, "-c", "from infprov.provision.cli import app; app()", "play", str(book),
                           "--inventory", str(inv), "--json", *opts],
                          capture_output=True, text=True, env=_env(home), timeout=900)  # fmt: skip
    try:
        doc = json.loads(proc.stdout)
    except ValueError:
        return {}, {}, f"infprov exit {proc.returncode}: {proc.stderr[-1500:]}"
    per_host: dict[str, list[tuple[str, str, bool, str | None]]] = {}
    for t in doc["tasks"]:
        msg = t["msg"].replace(root, "ROOT") if t["module"] == "debug" and t["status"] == "ok" and not t["items"] else None
        per_host.setdefault(t["host"], []).append((t["task"], t["status"], bool(t["ignored"]), msg))
    return per_host, doc["stats"], ""


def _run_ansible(book: Path, inv: Path, opts: tuple[str, ...], home: Path, root: str, out: Path) -> tuple[dict[str, Any], dict[str, Any], str]:
    env = {**_env(home), "INFPROV_DIFF_OUT": str(out)}
    out.unlink(missing_ok=True)
    proc = subprocess.run(["ansible-playbook", "-i", str(inv), str(book), *opts], capture_output=True, text=True,
                          env=env, timeout=900)  # fmt: skip
    per_host: dict[str, list[tuple[str, str, bool, str | None]]] = {}
    stats: dict[str, Any] = {}
    if not out.exists():
        return {}, {}, f"ansible-playbook exit {proc.returncode}: {proc.stdout[-1500:]} {proc.stderr[-1500:]}"
    for line in out.read_text().splitlines():
        doc = json.loads(line)
        if "recap" in doc:
            stats[doc.pop("recap")] = doc
            continue
        msg = doc["msg"].replace(root, "ROOT") if doc["msg"] is not None else None
        per_host.setdefault(doc["host"], []).append((doc["task"], doc["status"], bool(doc["ignored"]), msg))
    return per_host, stats, ""


def _files(fleet: list[dict[str, Any]], root: str, home: Path) -> dict[str, dict[str, tuple[str, ...]]]:
    """case → {host address:relative path → (type, mode, owner, group, link target, sha1)}."""
    out: dict[str, dict[str, tuple[str, ...]]] = {}
    for real in fleet:
        host = Host(name=real["name"], address=real["address"], port=int(real["port"]), user=real["user"],
                    key_file=real["key_file"])
        conn = SshConnection(host, home / "known_hosts")
        try:
            q = root.replace("'", "")
            res = conn.run(f"cd '{q}' 2>/dev/null && find . -mindepth 1 -printf '%P|%y|%m|%u|%g|%l|' "
                           f"-exec sh -c '[ -f \"$1\" ] && [ ! -L \"$1\" ] && sha1sum < \"$1\" | cut -c1-40 || echo' _ {{}} \\; || true")
        finally:
            conn.close()
        for line in res.out.splitlines():
            rel, kind, mode, owner, group, link, sha = line.split("|", 6)
            name, _, rest = rel.partition("/")
            out.setdefault(name, {})[f"{real['name']}:{rest}"] = (kind, mode, owner, group, link.replace(root, "ROOT"), sha)
    return out


def _engine(engine: str, batches: list[list[Case]], work: Path, fleet: list[dict[str, Any]], root: str,
            pool: ThreadPoolExecutor) -> dict[str, Outcome]:
    """Both runs of every batch under one engine; per case, what it did."""
    book_dir = work / "book"
    outcomes: dict[str, Outcome] = {c.name: Outcome() for b in batches for c in b}

    def one(index: int, batch: list[Case]) -> None:
        book = book_dir / f"{engine}-batch{index}.yml"
        inv = work / f"{engine}-inv{index}.yml"
        _playbook(book, batch)
        _inventory(inv, batch, fleet, f"{root}")
        for _run in range(2):
            if engine == "infprov":
                per_host, stats, err = _run_infprov(book, inv, batch[0].opts, work / "home", root)
            else:
                per_host, stats, err = _run_ansible(book, inv, batch[0].opts, work / "home", root,
                                                    work / f"cb-{index}.jsonl")
            for c in batch:
                mine = {h: v for h, v in per_host.items() if h.rsplit("_", 1)[0] == c.name}
                outcomes[c.name].runs.append(mine)
                outcomes[c.name].recaps.append({h: v for h, v in stats.items() if h.rsplit("_", 1)[0] == c.name})
                if err:
                    outcomes[c.name].errors.append(err)

    list(pool.map(lambda ib: one(*ib), enumerate(batches)))
    return outcomes


def _normal_recap(recap: dict[str, Any]) -> dict[str, dict[str, int]]:
    keys = ("ok", "changed", "unreachable", "failed", "skipped", "ignored")
    return {h: {k: int(v[k]) for k in keys} for h, v in recap.items()}


@pytest.fixture(scope="module")
def fleet(sandbox_hosts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sandbox_hosts


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("ansible-diff")
    _book_dir(root / "book")
    (root / "home").mkdir()
    (root / "home" / "ansible-tmp").mkdir()
    (root / "home" / "cp").mkdir()
    yield root


@pytest.fixture(scope="module")
def compared(fleet: list[dict[str, Any]], work: Path) -> Iterator[dict[str, list[str]]]:
    """Run every case under both engines (side by side) and return each case's differences."""
    ident = uuid.uuid4().hex[:8]
    roots = {e: f"/home/ubuntu/infprov-diff-{ident}/{e}" for e in ("infprov", "ansible")}
    batches = _batches(CASES)
    try:
        with ThreadPoolExecutor(max_workers=2) as infprov_pool, ThreadPoolExecutor(max_workers=WORKERS) as ansible_pool, \
                ThreadPoolExecutor(max_workers=2) as engines:
            futures = {e: engines.submit(_engine, e, batches, work, fleet, roots[e], p)
                       for e, p in (("infprov", infprov_pool), ("ansible", ansible_pool))}
            results = {e: f.result() for e, f in futures.items()}
        files = {e: _files(fleet, roots[e], work / "home") for e in roots}
    finally:
        for real in fleet:
            host = Host(name=real["name"], address=real["address"], port=int(real["port"]), user=real["user"],
                        key_file=real["key_file"])
            conn = SshConnection(host, work / "home" / "known_hosts")
            try:
                conn.run(f"sudo -n rm -rf /home/ubuntu/infprov-diff-{ident}")
            finally:
                conn.close()
    diffs: dict[str, list[str]] = {}
    for c in CASES:
        ours, theirs = results["infprov"][c.name], results["ansible"][c.name]
        found: list[str] = [*ours.errors, *theirs.errors]
        for run in range(2):
            a = ours.runs[run] if run < len(ours.runs) else {}
            b = theirs.runs[run] if run < len(theirs.runs) else {}
            for host in sorted(set(a) | set(b)):
                sa = [(s, ig) for _, s, ig, _ in a.get(host, [])]
                sb = [(s, ig) for _, s, ig, _ in b.get(host, [])]
                if sa != sb:
                    found.append(f"run {run + 1} {host} statuses: infprov {sa} / ansible {sb} "
                                 f"(ansible tasks {[t for t, *_ in b.get(host, [])]})")
                ma = [m for *_, m in a.get(host, [])]
                mb = [m for *_, m in b.get(host, [])]
                if sa == sb and ma != mb:
                    found.append(f"run {run + 1} {host} debug output: infprov {ma} / ansible {mb}")
            ra = _normal_recap(ours.recaps[run]) if run < len(ours.recaps) else {}
            rb = _normal_recap(theirs.recaps[run]) if run < len(theirs.recaps) else {}
            if ra != rb:
                found.append(f"run {run + 1} recap: infprov {ra} / ansible {rb}")
        fa, fb = files["infprov"].get(c.name, {}), files["ansible"].get(c.name, {})
        if fa != fb:
            keys = sorted(set(fa) | set(fb))
            found.append("files: " + "; ".join(f"{k}: {fa.get(k)} / {fb.get(k)}" for k in keys if fa.get(k) != fb.get(k)))
        diffs[c.name] = found
    yield diffs


def test_enough_cases() -> None:
    assert len(CASES) >= 80, len(CASES)
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("name", [c.name for c in CASES])
def test_case_matches_ansible(name: str, compared: dict[str, list[str]]) -> None:
    assert compared[name] == [], "\n".join(compared[name])


@pytest.mark.parametrize(("name", "text", "fragment"), REFUSED, ids=[r[0] for r in REFUSED])
def test_refused_before_running(name: str, text: str, fragment: str, fleet: list[dict[str, Any]], work: Path) -> None:
    ident = uuid.uuid4().hex[:8]
    root = f"/home/ubuntu/infprov-refuse-{ident}"
    book = work / "book" / f"refuse-{name}.yml"
    book.write_text(text.replace("- hosts: H\n", f"- hosts: {name}\n").replace("hosts: '{{ target }}'", "hosts: '{{ target }}'"))
    inv = work / f"refuse-{name}.yml"
    c = Case(name, text)
    _inventory(inv, [c], fleet[:1], root)
    proc = subprocess.run([sys.executable, "-c", "from infprov.provision.cli import app; app()", "play", str(book),
                           "--inventory", str(inv)], capture_output=True, text=True, env=_env(work / "home"),
                          timeout=120)  # fmt: skip
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert fragment in lines[0] and (f"{book}:" in lines[0] or ".j2" in lines[0]), lines[0]
    real = fleet[0]
    host = Host(name=real["name"], address=real["address"], port=int(real["port"]), user=real["user"],
                key_file=real["key_file"])
    conn = SshConnection(host, work / "home" / "known_hosts")
    try:
        assert conn.run(f"test -e {root} && echo made || echo untouched").out.strip() == "untouched"
    finally:
        conn.close()
