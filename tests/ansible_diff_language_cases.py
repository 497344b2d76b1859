"""Differential cases, the language: variables, conditionals, loops, handlers, tags, check mode, filters, tests,
lookups and Jinja statements."""

# ruff: noqa: E501  (the cases are one-line Jinja expressions, clearer unwrapped)
from __future__ import annotations

from tests.ansible_diff_run import Case, case, play

LANGUAGE_CASES: list[Case] = [
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
    case("when_indirect_boolean", """
        - debug: {msg: ran}
          when: "{{ flag }}"
        - debug: {msg: not-run}
          when: "{{ not flag }}"
    """, head="vars: {flag: true}\n"),
    case("assert_indirect_template", """
        - assert: {that: ["{{ expr }}", "x == 1"]}
    """, head="vars: {x: 1, expr: 'x == 1'}\n"),
    case("conditional_from_host_output_refused", """
        - command: echo 1 == 1
          register: r
          changed_when: false
        - debug: {msg: ran}
          when: "{{ r.stdout }}"
          ignore_errors: true
        - command: echo 1 == 1
          register: r2
          failed_when: "{{ r2.stdout }}"
          ignore_errors: true
        - assert: {that: "{{ r.stdout }}"}
          ignore_errors: true
        - set_fact: {derived: "{{ r.stdout }}"}
        - debug: {msg: ran}
          when: "{{ derived }}"
          ignore_errors: true
    """),
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
