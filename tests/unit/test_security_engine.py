"""A hostile host's output, inventory or -e value never runs code or reads files on the controller."""

from __future__ import annotations

from pathlib import Path

import pytest

from infprov.inventory.model import Host, Inventory
from infprov.playbooks.errors import PlaybookError
from infprov.playbooks.runner import run_playbook
from infprov.playbooks.templating import Templar, TemplateError, Unsafe
from tests.local_engine import LocalConnection, run_local, write_book


def _hostile_file(tmp_path: Path, payload: str) -> Path:
    path = tmp_path / "on-the-host.txt"
    path.write_text(payload + "\n")
    return path


def test_host_output_derived_by_task_vars_is_never_rendered_again(tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    payload = "{{ cycler.__init__.__globals__.os.popen('touch " + str(marker) + "').read() }}"
    hostile = _hostile_file(tmp_path, payload)
    out = tmp_path / "out"
    book = f"""
- hosts: all
  gather_facts: false
  tasks:
    - shell: cat {hostile}
      register: r
    - shell: printf '%s' {{{{ twice | quote }}}} > {out}
      vars:
        joined: "x {{{{ r.stdout }}}}"
        trimmed: "{{{{ r.stdout | trim }}}}"
        twice: "{{{{ joined }}}} and {{{{ trimmed }}}} {{{{ [r.stdout][0] }}}}"
    - assert:
        that: "{{{{ r.stdout }}}}"
"""
    result = run_local(tmp_path, book)
    assert not marker.exists(), "host output ran as code on the controller"
    assert out.read_text() == f"x {payload} and {payload} {payload}"
    assert isinstance(result.registered["h1"]["r"]["stdout"], Unsafe)
    assert "which is data, not an expression" in result.failures()[0].msg


def test_host_output_cannot_send_the_controllers_key_back(tmp_path: Path) -> None:
    secret = tmp_path / "id_ed25519"
    secret.write_text("PRIVATE KEY MATERIAL")
    payload = "{{ lookup('file', '" + str(secret) + "') }}"
    hostile = _hostile_file(tmp_path, payload)
    sent = tmp_path / "sent-back"
    book = f"""
- hosts: all
  gather_facts: false
  tasks:
    - shell: cat {hostile}
      register: r
    - shell: printf '%s' {{{{ leak | quote }}}} > {sent}
      vars: {{leak: "{{{{ r.stdout | trim }}}}"}}
"""
    run_local(tmp_path, book)
    assert "PRIVATE KEY" not in sent.read_text()
    assert sent.read_text() == payload


def test_the_template_environment_is_sandboxed(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match="sandbox|unsafe|undefined"):
        Templar({"s": "x"}).template("{{ s.__class__ }}")
    with pytest.raises(TemplateError):
        Templar({"s": "x"}).template("{{ s.__class__.__mro__[1].__subclasses__() }}")


@pytest.mark.parametrize("where", ["play", "inventory", "extra"])
def test_no_lookups_anywhere_refused_before_running(tmp_path: Path, where: str) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("s3cr3t")
    lookup = "{{ lookup('file', '" + str(secret) + "') }}"
    ran = tmp_path / "ran"
    vars_ = f"  vars:\n    v: \"{lookup}\"\n" if where == "play" else ""
    book = f"- hosts: all\n  gather_facts: false\n{vars_}  tasks:\n    - shell: touch {ran}\n"
    with pytest.raises(PlaybookError, match=r"function lookup\(\) is not supported by infprov's engine"):
        run_local(tmp_path, book, host_vars={"v": lookup} if where == "inventory" else None,
             extra={"v": lookup} if where == "extra" else None)
    assert not ran.exists(), "refused before anything ran"


def test_inventory_values_are_still_templates(tmp_path: Path) -> None:
    book = "- hosts: all\n  gather_facts: false\n  tasks:\n    - command: echo {{ greeting }}\n      register: g\n"
    result = run_local(tmp_path, book, host_vars={"who": "world", "greeting": "hello {{ who }}"})
    assert result.registered["h1"]["g"]["stdout"] == "hello world"


def test_terminal_escapes_in_host_output_never_reach_the_screen(tmp_path: Path) -> None:
    from infprov.playbooks import report
    from infprov.playbooks.results import Event

    events: list[Event] = []
    shell = "printf 'ok\\033[2J\\033]0;owned\\007\\n'; exit 3"
    book = write_book(tmp_path, f"- hosts: all\n  gather_facts: false\n  tasks:\n    - shell: {shell}\n")
    inv = Inventory((Host("h1", "127.0.0.1", cluster="c"),))
    run_playbook(book, inv, connector=lambda h: LocalConnection(h.name), runs_dir=tmp_path / "runs",
                 on_event=events.append)
    lines = [report.event_line(e) or "" for e in events]
    failed = next(line for line in lines if "failed" in line)
    assert "\x1b" not in failed and "\x07" not in failed
    assert "ok?[2J?]0;owned?" in failed
