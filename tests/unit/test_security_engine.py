"""A hostile host's output, inventory or -e value never runs code or reads files on the controller."""

from __future__ import annotations

from pathlib import Path

import pytest

from infprov.inventory.model import Host, Inventory
from infprov.playbooks.runner import run_playbook
from infprov.playbooks.templating import Templar, TemplateError, Unsafe
from tests.local_engine import LocalConnection, run_local, write_book


def _hostile_file(tmp_path: Path, payload: str) -> Path:
    path = tmp_path / "on-the-host.txt"
    path.write_text(payload + "\n")
    return path


def test_host_output_derived_by_set_fact_is_never_rendered_again(tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    payload = "{{ cycler.__init__.__globals__.os.popen('touch " + str(marker) + "').read() }}"
    hostile = _hostile_file(tmp_path, payload)
    book = f"""
- hosts: all
  gather_facts: false
  tasks:
    - shell: cat {hostile}
      register: r
    - set_fact:
        joined: "x {{{{ r.stdout }}}}"
        trimmed: "{{{{ r.stdout | trim }}}}"
        upper: "{{{{ r.stdout | upper | lower }}}}"
        listed: "{{{{ [r.stdout] }}}}"
    - set_fact:
        twice: "{{{{ joined }}}} and {{{{ trimmed }}}}"
    - debug: {{msg: "{{{{ twice }}}} {{{{ listed[0] }}}}"}}
      register: shown
    - assert:
        that: "{{{{ r.stdout }}}}"
      ignore_errors: true
"""
    result = run_local(tmp_path, book)
    assert not marker.exists(), "host output ran as code on the controller"
    facts = result.registered["h1"]
    assert facts["joined"] == "x " + payload
    assert facts["trimmed"] == payload
    assert facts["twice"] == f"x {payload} and {payload}"
    assert facts["shown"]["msg"] == f"x {payload} and {payload} {payload}"
    assert isinstance(facts["listed"][0], Unsafe)


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
    - set_fact: {{leak: "{{{{ r.stdout | trim }}}}"}}
    - copy: {{content: "{{{{ leak }}}}", dest: "{sent}"}}
"""
    run_local(tmp_path, book)
    assert "PRIVATE KEY" not in sent.read_text()
    assert sent.read_text() == payload


def test_the_template_environment_is_sandboxed(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match="sandbox|unsafe"):
        Templar({}).template("{{ cycler.__init__.__globals__.os.popen('id').read() }}")
    with pytest.raises(TemplateError):
        Templar({"s": "x"}).template("{{ s.__class__.__mro__[1].__subclasses__() }}")


def test_lookups_only_from_the_playbook_itself(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("s3cr3t")
    lookup = "{{ lookup('file', '" + str(secret) + "') }}"
    book = f"""
- hosts: all
  gather_facts: false
  vars:
    from_play: "{lookup}"
  tasks:
    - set_fact: {{a: "{{{{ from_play }}}}"}}
    - debug: {{msg: "{{{{ from_inventory }}}}"}}
      register: inv
      ignore_errors: true
    - debug: {{msg: "{{{{ from_extra }}}}"}}
      register: ext
      ignore_errors: true
"""
    result = run_local(tmp_path, book, host_vars={"from_inventory": lookup}, extra={"from_extra": lookup})
    facts = result.registered["h1"]
    assert facts["a"] == "s3cr3t", "the playbook may read a controller file it names"
    for name in ("inv", "ext"):
        assert facts[name]["failed"] is True
        assert "only allowed in the playbook" in facts[name]["msg"]
        assert "s3cr3t" not in str(facts[name])


def test_inventory_values_are_still_templates_without_lookups(tmp_path: Path) -> None:
    book = "- hosts: all\n  gather_facts: false\n  tasks:\n    - debug: {msg: '{{ greeting }}'}\n      register: g\n"
    result = run_local(tmp_path, book, host_vars={"who": "world", "greeting": "hello {{ who }}"})
    assert result.registered["h1"]["g"]["msg"] == "hello world"


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
