"""Differential cases, the modules: file, copy, template, lineinfile/replace, stat, command/shell, control-side."""

# ruff: noqa: E501  (the cases are one-line Jinja expressions, clearer unwrapped)
from __future__ import annotations

from tests.ansible_diff_run import Case, case

MODULE_CASES: list[Case] = [
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
]
