"""`infprov play` on ansible-core, without a host: the command line and environment infprov builds, the files it
writes for ansible-playbook, how the callback's events become infprov's lines, results and errors, and the
choice of engine. (Against sandbox hosts: tests/sandbox/test_play_ansible_sandbox.py.)"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from infprov.inventory import store
from infprov.inventory.model import Host, Inventory
from infprov.playbooks.results import HostStats, RunResult
from infprov.provision import ansible_play as ap
from infprov.provision.cli import app

runner = CliRunner()
HAVE_ANSIBLE = shutil.which("ansible-playbook") is not None


def _places(tmp_path: Path) -> ap.Places:
    return ap.Places.under(tmp_path / "home", tmp_path / "home" / "known_hosts", ap.new_run_id())


# ---------------------------------------------------------------- the command line
def test_argv_passes_the_options_through(tmp_path: Path) -> None:
    opts = ap.Options(check=True, diff=True, tags=("a,b", "c"), skip_tags=("slow",), verbosity=3, forks=7,
                      extra_vars=("x=1 y=2", '{"z": [1, 2]}'))
    cmd = ap.argv(Path("/p/book.yml"), Path("/h/inventory.yml"), "web:&all", opts, 7, python="/py")
    assert cmd[:3] == ["/py", "-m", "ansible.cli.playbook"]
    assert cmd[cmd.index("-i") + 1] == "/h/inventory.yml"
    assert cmd[cmd.index("--limit") + 1] == "web:&all" and cmd[cmd.index("--forks") + 1] == "7"
    assert "--check" in cmd and "--diff" in cmd and "-vvv" in cmd
    assert cmd[cmd.index("--tags") + 1] == "a,b,c" and cmd[cmd.index("--skip-tags") + 1] == "slow"
    assert [cmd[i + 1] for i, w in enumerate(cmd) if w == "-e"] == ["x=1 y=2", '{"z": [1, 2]}']
    assert cmd[-1] == "/p/book.yml"
    plain = ap.argv(Path("b.yml"), Path("i.yml"), "all", ap.Options(), 1, python="/py")
    assert not {"--check", "--diff", "--tags", "--skip-tags", "-e"} & set(plain) and plain[-1] == "b.yml"
    assert ap.argv(Path("-odd.yml"), Path("i.yml"), "all", ap.Options(), 1)[-2:] == ["--", "-odd.yml"]


def test_extra_vars_every_form_infprov_accepts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "vars.yml").write_text("a: 1\n")
    got = ap.extra_var_args(["k=v", "msg='a b' n=3", ' {"j": 1}', "@vars.yml", "y: 2\nz: [3]\n"])
    values = got[1::2]
    assert got[::2] == ["-e"] * 5
    assert values[:3] == ["k=v", "msg='a b' n=3", '{"j": 1}']  # as given: ansible-core parses them itself
    assert values[3] == f"@{tmp_path / 'vars.yml'}"  # a file, named absolutely
    assert json.loads(values[4]) == {"y": 2, "z": [3]}  # a YAML block, which ansible-core would take for k=v


@pytest.mark.parametrize(("limit", "within", "pattern"), [
    (None, None, "all"),  # never implicit localhost: a play for `localhost` matches no host
    (None, "cluster1", "cluster1:&all"),
    ("i-0*", None, "i-0*:&all"),
    ("web,db", "cluster1", "web,db:&cluster1:&all"),
])  # fmt: skip
def test_limit_stays_inside_the_inventory(limit: str | None, within: str | None, pattern: str) -> None:
    assert ap.limit_pattern(limit, within) == pattern


# ---------------------------------------------------------------- the environment and the files
def test_environment_drops_the_callers_ansible_settings(tmp_path: Path) -> None:
    places = _places(tmp_path)
    base = {"PATH": "/bin", "HOME": "/root", "ANSIBLE_HOST_KEY_CHECKING": "False", "ANSIBLE_SSH_ARGS": "-o x=y",
            "ANSIBLE_CONFIG": "/home/u/ansible.cfg", "ANSIBLE_STDOUT_CALLBACK": "yaml", "ANSIBLE_TRANSPORT": "paramiko",
            "ANSIBLE_SSH_EXECUTABLE": "/tmp/evil", "ANSIBLE_ROLES_PATH": "/r", "ANSIBLE_VAULT_PASSWORD_FILE": "/v"}
    env = ap.environment(base, places, 9)
    assert env["ANSIBLE_CONFIG"] == str(places.config) and env["INFPROV_EVENTS_FD"] == "9"
    assert {k for k in env if k.startswith("ANSIBLE_")} == {"ANSIBLE_CONFIG", "ANSIBLE_ROLES_PATH",
                                                            "ANSIBLE_VAULT_PASSWORD_FILE"}
    assert env["PATH"] == "/bin" and env["HOME"] == "/root"


def test_config_and_wrappers_are_private_and_pin_host_keys(tmp_path: Path, umask0: None) -> None:
    places = _places(tmp_path)
    assert ap.prepare(places) is True  # it made INFPROV_HOME/ansible
    for folder in (places.root.parent, places.root, places.bin, places.local_temp, places.control):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    assert stat.S_IMODE(places.config.stat().st_mode) == 0o600
    text = places.config.read_text()
    for line in ("stdout_callback = infprov_events", f"callback_plugins = {ap.CALLBACK_DIR}",
                 "host_key_checking = True", "enable_plugins = yaml", f"local_tmp = {places.local_temp}",
                 f"control_path_dir = {places.control}", f"ssh_executable = {places.bin / 'ssh'}",
                 f"sftp_executable = {places.bin / 'sftp'}", f"scp_executable = {places.bin / 'scp'}"):
        assert line in text.splitlines(), line
    assert "StrictHostKeyChecking=yes" in text and f'UserKnownHostsFile="{places.known_hosts}"' in text
    assert (ap.CALLBACK_DIR / f"{ap.CALLBACK}.py").is_file()
    for name in ("ssh", "sftp", "scp"):
        wrapper = places.bin / name
        assert stat.S_IMODE(wrapper.stat().st_mode) == 0o700
        assert wrapper.read_text().startswith("#!/bin/sh\n")
    other = ap.Places.under(tmp_path / "home", places.known_hosts, "456")
    assert ap.prepare(other) is False
    ap.cleanup(places, True)
    assert not places.root.exists() and other.root.exists(), "another run's folder stays"
    ap.cleanup(other, False)
    assert (tmp_path / "home" / "ansible").is_dir() and not other.root.exists()


def test_the_wrappers_pinning_comes_before_anything_ansible_passes(tmp_path: Path) -> None:
    known = tmp_path / "my home" / "known_hosts"
    script = tmp_path / "wrapped"
    script.write_text(ap.wrapper_text("/bin/echo", known))
    script.chmod(0o700)
    said = subprocess.run([str(script), "-o", "StrictHostKeyChecking=no", "host"], capture_output=True, text=True)
    assert said.stdout.split()[:2] == ["-o", "StrictHostKeyChecking=yes"]
    assert said.stdout.rstrip().endswith("-o StrictHostKeyChecking=no host")
    if shutil.which("ssh") is None:
        return
    # what ssh itself makes of it (-G prints the settings in force, connecting to nothing)
    script.write_text(ap.wrapper_text(shutil.which("ssh") or "ssh", known))
    config = tmp_path / "ssh_config"  # as a user's ~/.ssh/config could say
    config.write_text("Host *\n  StrictHostKeyChecking no\n  KnownHostsCommand /bin/echo\n  VerifyHostKeyDNS yes\n")
    resolved = subprocess.run([str(script), "-G", "-F", str(config), "-o", "StrictHostKeyChecking=no", "-o",
                               "UserKnownHostsFile=/dev/null", "-o", "UpdateHostKeys=yes", "somehost"],
                              capture_output=True, text=True, timeout=30)
    settings = dict(line.split(" ", 1) for line in resolved.stdout.splitlines() if " " in line)
    assert settings["stricthostkeychecking"] == "true"
    assert settings["userknownhostsfile"] == str(known)
    assert settings["globalknownhostsfile"] == "/dev/null" and settings["updatehostkeys"] == "false"
    assert settings["verifyhostkeydns"] == "false" and "knownhostscommand" not in settings


def test_a_home_path_that_cannot_be_one_value_is_refused(tmp_path: Path) -> None:
    places = ap.Places.under(tmp_path / 'a"b', tmp_path / 'a"b' / "known_hosts", "1")
    with pytest.raises(ap.InfprovError, match="cannot be handed to ansible-playbook"):
        ap.prepare(places)


def test_long_homes_keep_control_sockets_short(tmp_path: Path) -> None:
    deep = tmp_path / ("x" * 80)
    places = ap.Places.under(deep, deep / "known_hosts", "77")
    assert len(str(places.control)) + 60 <= 104 and places.control.name == "infprov-cp-77"
    ap.prepare(places)
    assert stat.S_IMODE(places.control.stat().st_mode) == 0o700
    ap.cleanup(places, True)
    assert not places.control.exists() and not (deep / "ansible").exists()
    assert ap.Places.under(Path("/root/.infprov"), Path("/k"), "77").control == Path("/root/.infprov/ansible/77/cp")


def test_inventory_that_names_another_connection_is_refused() -> None:
    ok = Host("i-1", "10.0.0.1", cluster="c", extra={"ansible_connection": "ssh"})
    local = Host("i-2", "10.0.0.2", cluster="c", extra={"ansible_ssh_common_args": "-o StrictHostKeyChecking=no"})
    inv = Inventory((ok, local), group_vars={"c": {"ansible_ssh_executable": "/tmp/x"}}, path=Path("inv.yml"))
    with pytest.raises(ap.UsageError, match="ansible_ssh_executable"):
        ap.check_inventory(inv, ["i-1"])
    inv2 = Inventory((ok, Host("i-3", "10.0.0.3", cluster="d", extra={"ansible_connection": "local"})))
    ap.check_inventory(inv2, ["i-1"])  # only the selected hosts count
    with pytest.raises(ap.UsageError, match="ansible_connection='local'"):
        ap.check_inventory(inv2, ["i-1", "i-3"])


# ---------------------------------------------------------------- events -> lines, results, errors
SECRET = "hunter2-secret"


def _collector(**kw: Any) -> ap.Collector:
    from infprov.playbooks.results import Redactor

    redact = Redactor()
    return ap.Collector(mask=lambda t: redact(t), learn=lambda v: redact.learn([v]), **kw)


def _result(host: str, task: str, status: str, action: str = "ansible.builtin.command", **data: Any) -> dict[str, Any]:
    return {"event": "result", "host": host, "task": task, "action": action, "status": status, "elapsed": 0.2,
            "ignored": data.pop("_ignored", False), "no_log": data.pop("_no_log", False), "result": data}


def _feed(c: ap.Collector, docs: list[dict[str, Any]]) -> list[str]:
    return [line for d in docs for line in c.feed(d, now=0.0)]


def test_events_become_one_line_per_host_per_task_and_ansibles_recap() -> None:
    c = _collector()
    lines = _feed(c, [
        {"event": "start", "playbook": "/b.yml", "ansible": "2.19.14"},
        {"event": "play", "name": "web", "pattern": "all", "hosts": ["i-1", "i-2"]},
        {"event": "vars", "host": "i-1", "vars": {"db_password": SECRET, "conf": {"api": {"token": "tok-123456"}}}},
        {"event": "task", "name": "copy it", "action": "copy"},
        {"event": "task_start", "host": "i-1", "task": "copy it"},
        _result("i-1", "copy it", "changed", "ansible.builtin.copy", changed=True, dest="/x"),
        _result("i-2", "copy it", "ok", "ansible.builtin.copy", changed=False),
        _result("i-1", "say", "ok", "ansible.builtin.debug", msg=f"pw {SECRET} and tok-123456"),
        _result("i-2", "skip", "skipped", skip_reason="Conditional result was False"),
        _result("i-2", "break", "failed", cmd=["sh", "-c", "exit 7"], rc=7, stdout="out\n", stderr=f"err {SECRET}\n",
                msg="non-zero return code", changed=True),
        {"event": "task", "name": "restart", "action": "shell", "handler": True},
        _result("i-1", "restart", "changed", changed=True),
        {"event": "stats", "hosts": {"i-1": {"ok": 3, "changed": 2, "unreachable": 0, "failed": 0, "skipped": 0,
                                             "rescued": 0, "ignored": 0},
                                     "i-2": {"ok": 1, "changed": 0, "unreachable": 0, "failed": 1, "skipped": 1,
                                             "rescued": 0, "ignored": 0}}},
    ])  # fmt: skip
    assert lines[0] == "PLAY [web] on 2 host(s): i-1, i-2"
    assert "i-1: copy it: changed" in lines and "i-2: copy it: ok" in lines and "i-2: skip: skipped" in lines
    assert lines[lines.index("i-1: say: ok") + 1] == "  pw ******** and ********"  # debug shows its message
    failed = next(line for line in lines if line.startswith("i-2: break: failed"))
    assert "exit code: 7" in failed and "command: sh -c 'exit 7'" in failed and "| err ********" in failed
    assert not any(SECRET in line or "tok-123456" in line for line in lines)
    stats, rescued = c.host_stats()
    assert stats["i-1"] == HostStats(ok=3, changed=2) and stats["i-2"].failed == 1 and rescued == {"i-1": 0, "i-2": 0}
    assert c.hosts == ["i-1", "i-2"] and [t.task for t in c.tasks if t.host == "i-1"] == ["copy it", "say", "restart"]


def _run(c: ap.Collector, rc: int = 0, **kw: Any) -> ap.AnsibleRun:
    stats, rescued = c.host_stats()
    result = RunResult(playbook="/b.yml", check=False, hosts=tuple(c.hosts), stats=stats,
                       tasks=tuple(c.final_tasks(stats)), registered={}, log_path=Path("/log"), elapsed=1.5)
    return ap.AnsibleRun(result=result, rescued=rescued, returncode=rc, interrupted=kw.pop("interrupted", False),
                         started=kw.pop("started", True), ansible="2.19.14", **kw)


def test_json_keeps_the_engines_per_host_shape() -> None:
    c = _collector()
    _feed(c, [{"event": "start", "ansible": "2.19.14"}, {"event": "play", "name": "p", "hosts": ["i-1"]},
              _result("i-1", "t", "changed", changed=True),
              {"event": "stats", "hosts": {"i-1": {"ok": 1, "changed": 1, "unreachable": 0, "failed": 0,
                                                   "skipped": 0, "rescued": 0, "ignored": 0}}}])
    doc = _run(c).to_dict()
    assert {"playbook", "check", "ok", "elapsed_s", "log", "stats", "hosts", "failures", "tasks", "engine",
            "interrupted"} <= set(doc)
    assert doc["ok"] is True and doc["engine"] == "ansible-core 2.19.14"
    assert doc["stats"]["i-1"] == {"ok": 1, "changed": 1, "unreachable": 0, "failed": 0, "skipped": 0,
                                   "ignored": 0, "rescued": 0}
    [host] = doc["hosts"]
    assert set(host) == {"host", "ok", "changed", "unreachable", "error", "tail", "seconds"} and host["ok"] is True
    [task] = doc["tasks"]
    assert {"host", "play", "task", "module", "status", "msg", "elapsed", "ignored", "command", "rc", "tail",
            "items", "hint", "changed"} <= set(task) and task["module"] == "command"
    text = ap.recap(_run(c))
    assert "i-1 : ok=1    changed=1" in text and "rescued=0" in text and "with ansible-core 2.19.14" in text


def test_a_changed_or_unpinned_host_key_is_said_as_infprov_says_it() -> None:
    facts = ap.HostKeyFacts(Path("/h/known_hosts"), {"i-1": ("10.0.0.5", 22), "i-2": ("10.0.0.6", 2222)})
    c = _collector(facts=facts)
    changed = ("Failed to connect to the host via ssh: @@@@@@@@@@@\r\n@    WARNING: REMOTE HOST IDENTIFICATION "
               "HAS CHANGED!     @\r\n...Host key verification failed.")
    unknown = "Failed to connect to the host via ssh: No ED25519 host key is known for [10.0.0.6]:2222 and you " \
              "have requested strict checking.\r\nHost key verification failed."
    _feed(c, [{"event": "start"}, {"event": "play", "name": "p", "hosts": ["i-1", "i-2"]},
              _result("i-1", "t", "unreachable", unreachable=True, msg=changed),
              _result("i-2", "t", "unreachable", unreachable=True, msg=unknown)])
    first, second = c.tasks
    assert first.msg.startswith("host key for 10.0.0.5 has CHANGED since it was pinned in /h/known_hosts")
    assert first.hint == "if the host was rebuilt on purpose, clear the old key with: ssh-keygen -R '10.0.0.5' -f " \
                         "/h/known_hosts"
    assert second.msg.startswith("no host key is pinned for [10.0.0.6]:2222") and "first use" in second.msg
    error = ap.run_error(_run(c, rc=4))
    assert error is not None and error.exit_code == 1
    assert "2 of 2 host(s) failed: i-1: t: host key for 10.0.0.5 has CHANGED" in error.line()
    assert "hint: if the host was rebuilt on purpose" in error.line() and "\n" not in error.line()


def test_loops_no_log_retries_warnings_diffs_and_verbose_detail() -> None:
    c = _collector(diff=True, verbosity=1)
    c.feed({"event": "start"})
    c.feed({"event": "play", "name": "p", "hosts": ["i-1"]})
    loop = _feed(c, [_result("i-1", "each", "failed", msg="One or more items failed", changed=False,
                             results=[{"item": "a", "rc": 0, "changed": True},
                                      {"item": "b", "failed": True, "rc": 3, "msg": "non-zero return code",
                                       "cmd": "false b", "stderr": "b broke", "_ansible_item_label": "b"}])])
    assert "exit code: 3" in loop[0] and "command: false b" in loop[0] and "| b broke" in loop[0]
    assert c.tasks[-1].items == 2 and "item b: non-zero return code" in c.tasks[-1].msg
    hidden = _feed(c, [_result("i-1", "quiet", "failed", _no_log=True, censored="hidden", rc=1)])
    assert "(output hidden by no_log)" in hidden[0] and c.tasks[-1].tail == "" and c.tasks[-1].command is None
    assert _feed(c, [{"event": "retry", "host": "i-1", "task": "wait", "attempts": 2, "retries": 5}]) == \
        ["i-1: wait: retrying (3 left)"]
    shown = _feed(c, [{"event": "diff", "host": "i-1", "text": "--- before\n+++ after\n-a\n+b\n"},
                      _result("i-1", "edit", "changed", "ansible.builtin.lineinfile", changed=True, msg="line added",
                              warnings=["mind the gap"])])
    assert shown[:2] == ["i-1: edit: changed", "  warning: mind the gap"]
    assert "  -a" in shown and "  +b" in shown and any('"msg": "line added"' in line for line in shown)
    assert c.due(5.0) == []
    c.feed({"event": "task_start", "host": "i-1", "task": "slow"}, now=100.0)
    assert c.due(105.0) == [] and c.due(110.5) == ["i-1: slow still running (10 s)"] and c.due(111.0) == []


def test_a_rescued_failure_does_not_fail_its_host() -> None:
    c = _collector()
    _feed(c, [{"event": "start"}, {"event": "play", "name": "p", "hosts": ["i-1"]},
              _result("i-1", "try", "failed", msg="boom"), _result("i-1", "rescue", "changed", changed=True),
              {"event": "stats", "hosts": {"i-1": {"ok": 1, "changed": 1, "unreachable": 0, "failed": 0,
                                                   "skipped": 0, "rescued": 1, "ignored": 0}}}])
    run = _run(c)
    assert run.ok and run.result.outcome("i-1").ok and [t.status for t in run.result.tasks] == ["rescued", "changed"]
    assert run.to_dict()["stats"]["i-1"]["rescued"] == 1 and ap.run_error(run) is None


def test_the_errors_a_run_ends_with() -> None:
    refused = ["[ERROR]: couldn't resolve module/action 'nosuchmodule'. This often indicates a misspelling.",
               "Origin: /b/bad.yml:4:7", "", "4     - nosuchmodule: {a: 1}", "        ^ column 7"]
    assert ap.ansible_error(refused) == "/b/bad.yml:4:7: couldn't resolve module/action 'nosuchmodule'. This often " \
                                        "indicates a misspelling."
    empty = _collector()
    before = ap.run_error(_run(empty, rc=4, started=False, error=ap.ansible_error(refused)))
    assert before is not None and before.exit_code == 2 and before.line().startswith("/b/bad.yml:4:7: couldn't")
    nothing = "Specified inventory, host pattern and/or --limit leaves us with no hosts to target."
    limit = ap.run_error(_run(empty, rc=1, started=False, usage=True, error=nothing))
    assert limit is not None and limit.exit_code == 2
    none = ap.run_error(_run(_collector(), rc=0))
    assert none is not None and "no host matched" in none.message and none.exit_code == 1
    stopped = ap.run_error(_run(_collector(), rc=99, interrupted=True))
    assert stopped is not None and stopped.exit_code == 130 and "interrupted" in stopped.message
    assert ap.run_error(_run(_collector(), rc=2, error="Unexpected failure")) is not None


# ---------------------------------------------------------------- the engine, and ansible-core missing
def test_builtin_names_and_shipped_files_stay_on_infprovs_engine(tmp_path: Path) -> None:
    from infprov.playbooks.parsing import BUILTIN_DIR

    assert ap.builtin_playbook("server") and ap.builtin_playbook("bench.yml")
    assert ap.builtin_playbook(str(BUILTIN_DIR / "server.yml"))
    copy = tmp_path / "server.yml"
    shutil.copy(BUILTIN_DIR / "server.yml", copy)
    assert not ap.builtin_playbook(str(copy))


def _book_and_inventory(tmp_path: Path) -> tuple[Path, Path]:
    book = tmp_path / "book.yml"
    book.write_text("- hosts: nowhere\n  gather_facts: false\n  tasks:\n    - ansible.builtin.debug: {msg: hi}\n")
    inv = tmp_path / "inventory.yml"
    store.write(inv, Inventory((Host("i-1", "192.0.2.1", cluster="c"),)))
    return book, inv


def test_without_ansible_core_play_says_how_to_get_it(tmp_path: Path, infprov_home: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ansible" else real(name, *a))
    book, inv = _book_and_inventory(tmp_path)
    result = runner.invoke(app, ["play", str(book), "--inventory", str(inv)])
    assert result.exit_code == 1, result.output
    [line] = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert line.startswith("error: ") and "ansible-core, which is not installed" in line
    assert "pip install 'infprov[ansible]'" in line
    assert ap.version_warning("2.19.14") is None and "2.18.1" in (ap.version_warning("2.18.1") or "")


def test_diff_and_verbose_belong_to_ansible_core(infprov_home: Path) -> None:
    result = runner.invoke(app, ["play", "server", "--diff"])
    assert result.exit_code == 2 and "--engine ansible" in result.stderr
    result = runner.invoke(app, ["play", "x.yml", "--engine", "both"])
    assert result.exit_code == 2 and "--engine 'both'" in result.stderr


@pytest.mark.skipif(not HAVE_ANSIBLE, reason="ansible-core is not installed")
def test_ansible_core_refusing_a_playbook_is_one_line_and_exit_2(tmp_path: Path, infprov_home: Path) -> None:
    _, inv = _book_and_inventory(tmp_path)
    bad = tmp_path / "bad.yml"
    bad.write_text("- hosts: all\n  gather_facts: false\n  tasks:\n    - nosuchmodule: {a: 1}\n")
    result = runner.invoke(app, ["play", str(bad), "--inventory", str(inv)])
    assert result.exit_code == 2, result.output
    [line] = [ln for ln in result.stderr.splitlines() if ln.strip() and not ln.startswith("log:")]
    assert line.startswith(f"error: {bad}:4:7: couldn't resolve module/action 'nosuchmodule'"), line
    assert result.stdout == ""


@pytest.mark.skipif(not HAVE_ANSIBLE, reason="ansible-core is not installed")
def test_a_play_that_matches_no_host_runs_nothing(tmp_path: Path, infprov_home: Path, umask0: None) -> None:
    book, inv = _book_and_inventory(tmp_path)
    result = runner.invoke(app, ["play", str(book), "--inventory", str(inv), "--json"])
    assert result.exit_code == 1, result.output
    doc = json.loads(result.stdout)
    assert doc["stats"] == {} and doc["engine"].startswith("ansible-core 2.19")
    assert "no host matched" in result.stderr.splitlines()[-1]
    log = Path(doc["log"])
    assert stat.S_IMODE(log.stat().st_mode) == 0o600 and stat.S_IMODE(log.parent.stat().st_mode) == 0o700
    assert "--limit all" in log.read_text()
    assert not (infprov_home / "ansible").exists(), "the run's config, wrappers and folders are removed after it"


@pytest.mark.skipif(not HAVE_ANSIBLE, reason="ansible-core is not installed")
def test_an_empty_inventory_still_reports_the_playbooks_own_errors_first(tmp_path: Path, infprov_home: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("- hosts: all\n  gather_facts: false\n  tasks:\n    - nosuchmodule: {a: 1}\n")
    result = runner.invoke(app, ["play", str(bad)])
    assert result.exit_code == 2 and "nosuchmodule" in result.stderr, result.output
    good = tmp_path / "good.yml"
    good.write_text("- hosts: all\n  gather_facts: false\n  tasks:\n    - ansible.builtin.debug: {msg: hi}\n")
    result = runner.invoke(app, ["play", str(good)])
    assert result.exit_code == 1 and "has no hosts" in result.stderr, result.output
    assert os.path.isdir(infprov_home)


def test_a_play_whose_tasks_all_were_left_out_by_tags_is_no_failure() -> None:
    c = _collector()
    _feed(c, [{"event": "start"}, {"event": "play", "name": "p", "hosts": ["i-1", "i-2"]},
              {"event": "stats", "hosts": {}}])
    run = _run(c)
    assert run.result.stats == {"i-1": HostStats(), "i-2": HostStats()} and ap.run_error(run) is None
    stopped = _collector()  # interrupted before ansible's recap: counted from what ran
    _feed(stopped, [{"event": "start"}, {"event": "play", "name": "p", "hosts": ["i-1", "i-2"]},
                    _result("i-1", "t", "changed", changed=True)])
    stats, _ = stopped.host_stats()
    assert stats == {"i-1": HostStats(ok=1, changed=1), "i-2": HostStats()}


# ---------------------------------------------------------------- --syntax-check (issue 25, item 1)
@pytest.mark.skipif(not HAVE_ANSIBLE, reason="ansible-core is not installed")
def test_syntax_check_runs_nothing_and_says_what_is_wrong_in_one_line(tmp_path: Path, infprov_home: Path) -> None:
    good = tmp_path / "good.yml"
    good.write_text("- hosts: all\n  gather_facts: false\n  tasks:\n    - debug: msg=hi\n")
    res = runner.invoke(app, ["play", str(good), "--syntax-check"])
    assert res.exit_code == 0 and "the syntax is fine (nothing ran)" in res.stderr, res.output
    doc = json.loads(runner.invoke(app, ["play", str(good), "--syntax-check", "--json"]).stdout)
    assert doc == {"playbook": str(good), "syntax": "ok"}
    for text, said in (("- hosts: all\n  tasks:\n    - debug: msg=hi\n     bad: [\n", "YAML parsing failed"),
                       ("- hosts: all\n  tasks:\n    - nosuch_module_x: a=1\n", "nosuch_module_x")):
        bad = tmp_path / "bad.yml"
        bad.write_text(text)
        res = runner.invoke(app, ["play", str(bad), "--syntax-check"])
        lines = [line for line in res.stderr.splitlines() if line.strip()]
        assert res.exit_code == 2 and len(lines) == 1 and said in lines[0], res.stderr
        assert lines[0].startswith("error:") and lines[0].endswith("hint: fix the playbook")
    # infprov's engine checks its own playbooks with its own parser, and refuses what it does not run
    assert runner.invoke(app, ["play", "server", "--syntax-check"]).exit_code == 0
    res = runner.invoke(app, ["play", str(good), "--syntax-check", "--engine", "infprov"])
    assert res.exit_code == 2 and "module 'debug' is not supported by infprov's engine" in res.stderr
    runs = infprov_home / "runs"
    assert not runs.exists() or not any(runs.iterdir())  # nothing ran, so no run log
