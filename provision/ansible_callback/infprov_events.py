"""ansible-playbook's events as JSON lines, for `infprov play` (provision/ansible_play.py reads them).

infprov runs a user's playbook with ansible-core and makes this its stdout callback (ANSIBLE_CALLBACK_PLUGINS
names this folder, `stdout_callback = infprov_events` in the config infprov writes): ansible-core prints
nothing of its own on stdout, and this writes one JSON object a line to the pipe whose descriptor is
INFPROV_EVENTS_FD. infprov builds everything it shows, logs and prints as --json from these events, masking
secrets first; this file writes to nothing else. It runs in ansible-playbook's own process (callbacks are
called in the controller's main process, never in the forked workers).

Events (`event` key): start, play (name, pattern, hosts), vars (host, vars: the values infprov must mask),
task (name, action, handler), task_start (host, task), diff (host, text), result (host, task, action, status,
ignored, no_log, elapsed, result: the task's result, trimmed), retry, no_hosts, no_hosts_remaining, stats.
Written for this project against ansible-core 2.19's documented callback hooks.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from typing import Any

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
    name: infprov_events
    type: stdout
    short_description: ansible-playbook's events as JSON lines for infprov
    description: [Writes one JSON object per event to the file descriptor INFPROV_EVENTS_FD.]
"""

STRING_LIMIT = 64 * 1024  # a longer string in a result keeps its last part (what a failure shows)
VALUE_LIMIT = 256 * 1024  # a variable whose JSON is longer is not sent for masking (it would not be a secret)
# what ansible puts in every host's variables that holds no secret of the user's
MAGIC = {
    "hostvars", "groups", "group_names", "vars", "omit", "playbook_dir", "inventory_dir", "inventory_file",
    "ansible_play_hosts", "ansible_play_hosts_all", "ansible_play_batch", "play_hosts", "ansible_version",
    "ansible_facts", "ansible_config_file", "ansible_playbook_python", "environment", "role_names",
    "ansible_role_names", "ansible_dependent_role_names", "ansible_play_role_names", "ansible_collection_name",
    "ansible_run_tags", "ansible_skip_tags", "ansible_check_mode", "ansible_diff_mode", "ansible_forks",
    "ansible_inventory_sources", "ansible_verbosity", "ansible_search_path", "ansible_play_name",
}


def _plain(value: Any, depth: int = 0) -> Any:
    """JSON-safe plain data: mappings, lists, strings (long ones keep their end), numbers, booleans."""
    if depth > 40:
        return "..."
    if isinstance(value, Mapping):
        return {str(k): _plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v, depth + 1) for v in value]
    if isinstance(value, str):
        text = str(value)
        return text if len(text) <= STRING_LIMIT else "..." + text[-STRING_LIMIT:]
    if value is None or isinstance(value, bool | int | float):
        return value
    return _plain(str(value), depth + 1)


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "stdout"
    CALLBACK_NAME = "infprov_events"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._fd = int(os.environ["INFPROV_EVENTS_FD"])
        self._started: dict[tuple[str, str], float] = {}
        self._play: Any = None
        try:
            from infprov.playbooks.results import secret_name
        except Exception:  # infprov is not importable here: send every candidate, infprov's side filters
            def secret_name(name: str) -> bool:
                return True
        self._secret_name = secret_name

    # ------------------------------------------------------------ writing
    def _send(self, doc: dict[str, Any]) -> None:
        data = (json.dumps(doc, default=str, ensure_ascii=False) + "\n").encode("utf-8", "replace")
        view = memoryview(data)
        while view:
            try:
                done = os.write(self._fd, view)
            except BrokenPipeError:  # infprov went away: nothing left to tell
                return
            view = view[done:]

    # ------------------------------------------------------------ the play
    def v2_playbook_on_start(self, playbook: Any) -> None:
        from ansible.release import __version__

        self._send({"event": "start", "playbook": str(getattr(playbook, "_file_name", "")), "ansible": __version__})

    def v2_playbook_on_play_start(self, play: Any) -> None:
        self._play = play
        hosts: list[Any] = []
        manager = None
        try:
            manager = play.get_variable_manager()
            hosts = list(manager._inventory.get_hosts(play.hosts, order=getattr(play, "order", None)))
        except Exception:
            hosts = []
        pattern = play.hosts if isinstance(play.hosts, str) else ",".join(map(str, play.hosts or []))
        self._send({"event": "play", "name": str(play.get_name()).strip(), "pattern": str(pattern),
                    "hosts": [h.get_name() for h in hosts]})
        if manager is not None:
            for host in hosts:
                self._send_vars(manager, play, host)

    def _send_vars(self, manager: Any, play: Any, host: Any) -> None:
        """The host's variables infprov must mask: those whose names look secret (their templates resolved),
        and mappings and lists, where a secret may sit under a secret-looking key."""
        try:
            variables = manager.get_vars(play=play, host=host, include_hostvars=False)
        except Exception:
            return
        chosen: dict[str, Any] = {}
        templar = None
        for name, value in variables.items():
            if not isinstance(name, str) or name in MAGIC:
                continue
            if self._secret_name(name):
                if isinstance(value, str) and "{{" in value:
                    try:
                        if templar is None:
                            from ansible.template import Templar

                            templar = Templar(loader=play._loader, variables=variables)
                        value = templar.template(value)
                    except Exception:
                        pass
                chosen[name] = value
            elif isinstance(value, Mapping | list | tuple):
                chosen[name] = value
        self._send_masking(host.get_name(), chosen)

    def _send_masking(self, host: str, chosen: Mapping[str, Any]) -> None:
        plain = {}
        for name, value in chosen.items():
            item = _plain(value)
            if len(json.dumps(item, default=str)) <= VALUE_LIMIT:
                plain[name] = item
        if plain:
            self._send({"event": "vars", "host": host, "vars": plain})

    def v2_playbook_on_no_hosts_matched(self) -> None:
        self._send({"event": "no_hosts"})

    def v2_playbook_on_no_hosts_remaining(self) -> None:
        self._send({"event": "no_hosts_remaining"})

    def v2_playbook_on_task_start(self, task: Any, is_conditional: Any) -> None:
        self._send({"event": "task", "name": task.get_name().strip(), "action": str(task.action), "handler": False})

    def v2_playbook_on_handler_task_start(self, task: Any) -> None:
        self._send({"event": "task", "name": task.get_name().strip(), "action": str(task.action), "handler": True})

    def v2_runner_on_start(self, host: Any, task: Any) -> None:
        self._started[(host.get_name(), task._uuid)] = time.monotonic()
        self._send({"event": "task_start", "host": host.get_name(), "task": task.get_name().strip()})

    # ------------------------------------------------------------ results
    def _result(self, result: Any, status: str, ignored: bool = False) -> None:
        host = result.host.get_name()
        task = result.task
        data = result.result
        began = self._started.pop((host, task._uuid), None)
        no_log = bool(task.no_log is True or data.get("_ansible_no_log") or "censored" in data)
        name = str(getattr(result, "task_name", "") or task.get_name()).strip()
        kept = {k: v for k, v in data.items()
                if k not in ("invocation", "stdout_lines", "stderr_lines", "_ansible_no_log")}
        if isinstance(kept.get("results"), list):
            kept["results"] = [
                {k: v for k, v in item.items() if k not in ("invocation", "stdout_lines", "stderr_lines")}
                if isinstance(item, Mapping) else item for item in kept["results"]
            ]
        elapsed = round(time.monotonic() - began, 3) if began is not None else 0.0
        self._send({
            "event": "result", "host": host, "task": name, "action": str(task.action), "status": status,
            "ignored": bool(ignored), "no_log": no_log, "elapsed": elapsed, "register": task.register or None,
            "result": _plain(kept),
        })
        if no_log:
            return
        learnt: dict[str, Any] = {}
        if task.register:
            learnt[str(task.register)] = kept
        facts = data.get("ansible_facts")
        if isinstance(facts, Mapping):
            learnt.update({str(k): v for k, v in facts.items()})
        if learnt:
            self._send_masking(host, learnt)

    def v2_runner_on_ok(self, result: Any) -> None:
        self._result(result, "changed" if result.is_changed() else "ok")

    def v2_runner_on_failed(self, result: Any, ignore_errors: bool = False) -> None:
        self._result(result, "failed", ignored=ignore_errors)

    def v2_runner_on_skipped(self, result: Any) -> None:
        self._result(result, "skipped")

    def v2_runner_on_unreachable(self, result: Any) -> None:
        self._result(result, "unreachable")

    def v2_on_file_diff(self, result: Any) -> None:
        data = result.result
        texts = []
        if "results" in data and isinstance(data["results"], list):
            for item in data["results"]:
                if isinstance(item, Mapping) and item.get("diff") and item.get("changed", False):
                    texts.append(self._get_diff(item["diff"]))
        elif data.get("diff"):
            texts.append(self._get_diff(data["diff"]))
        text = "".join(t for t in texts if t)
        if text.strip():
            self._send({"event": "diff", "host": result.host.get_name(), "text": _plain(text)})

    def v2_runner_retry(self, result: Any) -> None:
        data = result.result
        self._send({"event": "retry", "host": result.host.get_name(), "task": str(result.task_name).strip(),
                    "attempts": data.get("attempts"), "retries": data.get("retries")})

    def v2_playbook_on_stats(self, stats: Any) -> None:
        hosts = {}
        for host in sorted(stats.processed):
            s = stats.summarize(host)
            hosts[host] = {"ok": s["ok"], "changed": s["changed"], "unreachable": s["unreachable"],
                           "failed": s["failures"], "skipped": s["skipped"], "rescued": s["rescued"],
                           "ignored": s["ignored"]}
        self._send({"event": "stats", "hosts": hosts})
