"""Differential cases, the language infprov's playbooks write: variables (play, task, inventory, -e, registered),
conditionals, loops, play tags, check mode, the filters and test they use and their Jinja. What a template
gives is written to a file on the host (the files are compared)."""

# ruff: noqa: E501  (the cases are one-line Jinja expressions, clearer unwrapped)
from __future__ import annotations

from tests.ansible_diff_module_cases import DIR, show
from tests.ansible_diff_run import Case, case, play

SERVER_VARS = """vars:
  family: "{{ (instance_type | default('inf1.xlarge')).split('.')[0] }}"
  generation: "{{ 'neuron-v2' if family in ['inf2', 'trn1'] else 'neuron-v1' }}"
  cores: 16
  neuron_core_range: "0:{{ (cores | int) - 1 }}"
  max_batch_size: "{{ v2_batch | default(8) if generation == 'neuron-v2' else 64 }}"
  pins_file: "files/{{ 'sandbox/' if profile == 'sandbox' else '' }}{{ 'pins-neuronx.env' if generation == 'neuron-v2' else 'pins.env' }}"
  profile: "{{ infprov_profile | default(family) }}"
"""


def shows(*pairs: tuple[str, str]) -> str:
    return DIR + "".join(show(name, expr) for name, expr in pairs)


LANGUAGE_CASES: list[Case] = [
    # ---- variables: play vars (lazy, native), task vars, inventory, -e, registered
    case("server_vars_v1", shows(
        ("family", "family"), ("generation", "generation"), ("range", "neuron_core_range"),
        ("batch", "max_batch_size | string"), ("pins", "pins_file"), ("batch_type", "max_batch_size == 64"),
    ), head=SERVER_VARS),
    case("server_vars_v2_from_extra", shows(
        ("family", "family"), ("generation", "generation"), ("batch", "(max_batch_size | string) is match('^[1-9][0-9]{0,2}$')"),
        ("pins", "pins_file"), ("profile", "profile | capitalize"),
    ), head=SERVER_VARS, opts=("-e", "instance_type=inf2.xlarge v2_batch=4")),
    case("extra_vars_win", shows(("v", "v"), ("w", "w")),
         head="vars: {v: from_play, w: '{{ v }}-derived'}\n", opts=("-e", "v=from_extra")),
    case("task_vars_and_name", DIR + """
        - name: "named {{ v }}"
          shell: printf '%s' {{ (v ~ '/' ~ w) | quote }} > {{ d }}/v
          vars: {v: task, w: "{{ v | replace('t', 'T') }}"}
    """, head="vars: {v: play}\n"),
    case("inventory_vars", shows(
        ("host", "inventory_hostname ~ ' ' ~ (group_names | length) ~ ' ' ~ (d | length > 0)"),
        ("user", "ansible_user | default('ubuntu')"), ("port", "ansible_port | default(22) | int > 0"),
    )),
    case("registered_and_derived", DIR + """
        - shell: printf 'dev0\\ndev1\\n'
          register: devs
          changed_when: false
        - shell: printf '%s' {{ run_args | trim | quote }} > {{ d }}/args
          vars:
            image: img
            run_args: >-
              {% for dev in devs.stdout_lines %}--device {{ dev }} {% endfor %}
              -e N={{ devs.stdout_lines | length }}
              {{ '-e X=' ~ image if image == 'img' else '' }}
              {{ image }} start
    """ + show("replaced", "(devs.stdout | trim) | replace('dev', 'D')")),
    # ---- filters, the test and the Jinja they use
    case("filters_used", shows(
        ("default", "undefined_var | default('dflt')"), ("default_attr", "undefined_map.b | default('none')"),
        ("capitalize", "'inf2 host' | capitalize"), ("int", "('7' | int) - 1"), ("string", "5 | string"),
        ("length", "'abcd' | length ~ ([1, 2] | length)"), ("trim", "'  x y  ' | trim"),
        ("replace", "'0:15' | replace(':', '-')"), ("quote", "\"it's\" | quote"),
        ("split", "'inf1.6xlarge'.split('.')[1]"),
    )),
    case("match_test", shows(
        ("ip", "'10.0.0.1' is match('^([0-9]{1,3}[.]){3}[0-9]{1,3}$')"),
        ("ip_bad", "'10.0.0.1; id' is match('^([0-9]{1,3}[.]){3}[0-9]{1,3}$')"),
        ("prefix", "'abc' is match('b')"), ("number", "('-1' | string) is match('^(-1|[0-9]+)$')"),
    )),
    case("jinja_used", shows(
        ("cond", "'yes' if 3 > 2 and not false else 'no'"), ("in", "'inf2' in ['inf2', 'trn1']"),
        ("notin", "'x' not in 'abc' or 1 != 1"), ("concat", "'a' ~ 1 ~ none_"), ("minus", "10 - 3"),
        ("for", "'{% for x in [1, 2, 3] %}<{{ x }}>{% endfor %}'"), ("raw", "'{% raw %}{{ x }}{% endraw %}'"),
    ), head="vars: {none_: null}\n"),
    case("lone_expression_types", shows(
        ("text", "t ~ '|' ~ (t | length)"), ("list_text", "l ~ '|' ~ (l | length)"), ("num", "n - 1"),
    ), head="vars: {t: \"{{ '42' }}\", l: \"{{ '[1, 2]' }}\", n: \"{{ 41 }}\"}\n"),
    # ---- conditionals (2.19 rules)
    case("when_on_registered", DIR + """
        - command: echo 200
          register: r
          changed_when: false
        - shell: touch {{ d }}/ran
          when: r.stdout == '200'
        - shell: touch {{ d }}/never
          when: r.stdout != '200'
        - shell: touch {{ d }}/list
          when: ["'20' in r.stdout", r.rc == 0]
    """),
    case("when_non_boolean_fails", """
        - command: "true"
          when: some_text
    """, head="vars: {some_text: hello}\n", fails=True),
    case("when_indirect", DIR + """
        - shell: touch {{ d }}/flag
          when: "{{ flag }}"
        - shell: touch {{ d }}/expr
          when: "{{ expr }}"
        - shell: touch {{ d }}/not
          when: "{{ not flag }}"
    """, head="vars: {flag: true, expr: 'flag and 1 == 1'}\n"),
    case("conditional_from_host_output_refused", """
        - command: echo 1 == 1
          register: r
          changed_when: false
        - command: "true"
          when: "{{ r.stdout }}"
    """, fails=True),
    case("undefined_variable_fails", """
        - command: echo {{ nope }}
    """, fails=True),
    # ---- loops
    case("loop_register_results", DIR + """
        - shell: "{{ item.cmd }}"
          loop:
            - {cmd: "echo a", file: a}
            - {cmd: "echo b; exit 4", file: b}
          loop_control: {label: "{{ item.file }}"}
          register: out
          changed_when: false
          failed_when: false
          no_log: true
    """ + show("results", "(out.results | length) ~ out.results[0].stdout ~ out.results[1].rc ~ out.results[1].item.file")),
    case("loop_empty_skipped", """
        - command: echo {{ item }}
          loop: []
    """),
    case("loop_when_partial_skip", DIR + """
        - shell: touch {{ d }}/{{ item }}
          loop: [a, b, c]
          when: item != 'b'
    """),
    case("loop_failed_item", """
        - command: "test {{ item }} -lt 2"
          loop: [1, 2]
    """, fails=True),
    case("failed_host_leaves_the_play", DIR + """
        - command: "{{ 'false' if inventory_hostname is match('.*_0$') else 'true' }}"
          changed_when: false
        - shell: touch {{ d }}/after-{{ inventory_hostname }}
    """, hosts=2),
    # ---- play tags (bench.yml's two passes)
    Case("tags_probe", """\
- hosts: H
  gather_facts: false
  tags: [probe]
  tasks:
    - file: {path: "{{ d }}", state: directory}
    - shell: touch {{ d }}/probe
- hosts: H
  gather_facts: false
  tags: [run]
  tasks:
    - shell: touch {{ d }}/run
""", opts=("--tags", "probe")),
    Case("tags_skip_probe", """\
- hosts: H
  gather_facts: false
  tags: [probe]
  tasks:
    - shell: touch {{ d }}/probe
- hosts: H
  gather_facts: false
  tasks:
    - file: {path: "{{ d }}", state: directory}
    - shell: touch {{ d }}/untagged
""", opts=("--skip-tags", "probe")),
    # ---- check mode run
    Case("check_mode_run", play(DIR + """
        - copy: {src: app.conf, dest: "{{ d }}/f"}
        - command: echo hi
        - shell: touch {{ d }}/x
    """), opts=("--check",)),
]
