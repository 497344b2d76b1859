"""Differential cases, the modules in the forms infprov's playbooks write them: file (a folder), copy (from files/),
shell and command (free form), assert; the values a task sees are written to files on the host (compared)."""

# ruff: noqa: E501  (the cases are one-line Jinja expressions, clearer unwrapped)
from __future__ import annotations

from tests.ansible_diff_run import Case, case

# (indented as the cases' task text is, which case() dedents)
DIR = '        - file: {path: "{{ d }}", state: directory}\n'


def show(name: str, expr: str) -> str:
    """A task that writes what `expr` gives on the host into the file `name` (the files are compared)."""
    return f"\n        - shell: |\n            printf '%s' {{{{ ({expr}) | quote }}}} > {{{{ d }}}}/{name}\n"


MODULE_CASES: list[Case] = [
    # ---- file (state: directory)
    case("file_dir", """
        - name: dir
          file: {path: "{{ d }}/a/b/c", state: directory, mode: "0750"}
    """),
    case("file_dir_mode_changes", """
        - file: {path: "{{ d }}/m", state: directory, mode: "0755"}
        - file: {path: "{{ d }}/m", state: directory, mode: "0700"}
    """),
    case("file_over_file_fails", DIR + """
        - shell: touch {{ d }}/f
        - file: {path: "{{ d }}/f", state: directory}
    """, fails=True),
    # ---- copy (src from files/)
    case("copy_src_mode", DIR + """
        - copy: {src: app.conf, dest: "{{ d }}/app.conf", mode: "0644"}
        - ansible.builtin.copy: {src: tree/a.txt, dest: "{{ d }}/a.txt", mode: "0600"}
    """),
    case("copy_mode_only", DIR + """
        - copy: {src: app.conf, dest: "{{ d }}/f", mode: "0600"}
        - copy: {src: app.conf, dest: "{{ d }}/f", mode: "0640"}
    """),
    case("copy_into_existing_dir", DIR + """
        - file: {path: "{{ d }}/sub", state: directory, mode: "0755"}
        - copy: {src: app.conf, dest: "{{ d }}/sub", mode: "0644"}
    """),
    case("copy_loop_label", DIR + """
        - ansible.builtin.copy:
            src: "files/{{ item.src }}"
            dest: "{{ d }}/{{ item.dest }}"
            mode: "0755"
          loop:
            - {src: app.conf, dest: one.conf}
            - {src: tree/sub/b.txt, dest: b.txt}
          loop_control:
            label: "{{ item.dest }}"
    """),
    case("copy_missing_parent", """
        - copy: {src: app.conf, dest: "{{ d }}/no/such/f"}
    """, fails=True),
    case("copy_missing_src", DIR + """
        - copy: {src: nothing.conf, dest: "{{ d }}/f"}
    """, fails=True),
    # ---- shell / command
    case("shell_script_register", DIR + """
        - ansible.builtin.shell: |
            for i in 1 2; do echo "line $i"; done
            echo to-stderr >&2
          register: r
          changed_when: false
    """ + show("out", "r.stdout ~ '|' ~ r.stderr ~ '|' ~ (r.stdout_lines | length) ~ '|' ~ r.rc")),
    case("shell_raw_and_quote", DIR + """
        - ansible.builtin.shell: |
            printf '%s\\n' '{% raw %}{{.State.Status}} {{ index .Config.Labels "x" }}{% endraw %}' > {{ d }}/raw
            echo {{ "it's a b" | quote }} > {{ d }}/quoted
    """),
    case("shell_changed_marker", DIR + """
        - ansible.builtin.shell: |
            [ -e {{ d }}/stamp ] && { echo INFPROV_OK; exit 0; }
            echo made > {{ d }}/stamp && echo INFPROV_CHANGED
          register: stamp
          changed_when: "'INFPROV_CHANGED' in stamp.stdout"
    """),
    case("shell_fails", """
        - shell: "echo out; echo err >&2; exit 3"
    """, fails=True),
    case("shell_failed_when_false", DIR + """
        - shell: exit 3
          register: r
          failed_when: false
    """ + show("rc", "r.rc")),
    case("failed_when_list_and", """
        - command: echo x
          register: r
          changed_when: [r.rc == 0, "'y' in r.stdout"]
          failed_when: [r.rc == 0, "'x' not in r.stdout"]
    """),
    case("command_quotes_and_expands", DIR + """
        - command: printf '%s|' $HOME ~ '%{http_code}' "a b"
          register: r
          changed_when: false
    """ + show("out", "r.stdout")),
    case("command_fails", """
        - command: "false"
    """, fails=True),
    case("command_timeout", """
        - command: "true"
          timeout: 20
          changed_when: false
    """),
    # ---- assert
    case("assert_ok_quiet", """
        - ansible.builtin.assert:
            that:
              - "'abc' is match('^a')"
              - (8 | string) is match('^[1-9][0-9]{0,2}$')
            fail_msg: "bad"
            quiet: true
    """),
    case("assert_fails", """
        - assert: {that: ["1 == 1", "2 < 1"], fail_msg: "nope"}
    """, fails=True),
]
