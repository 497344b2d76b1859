"""An ansible-playbook callback for tests/sandbox/test_ansible_diff.py: each task result and the recap as JSON lines.

Loaded with ANSIBLE_CALLBACK_PLUGINS=<this folder> ANSIBLE_CALLBACKS_ENABLED=infprov_diff; writes to the file
named by INFPROV_DIFF_OUT. Written for this project against ansible-core's documented callback hooks.
"""

from __future__ import annotations

import json
import os
from typing import Any

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
    name: infprov_diff
    type: aggregate
    short_description: task results as JSON lines for infprov's differential tests
    description: [Writes one JSON object per task result and one for the recap.]
"""


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    return str(value)


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "infprov_diff"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self._out = open(os.environ["INFPROV_DIFF_OUT"], "a", encoding="utf-8")  # noqa: SIM115

    def _write(self, doc: dict[str, Any]) -> None:
        self._out.write(json.dumps(doc, sort_keys=True) + "\n")
        self._out.flush()

    def _result(self, result: Any, status: str, ignored: bool = False) -> None:
        task = result._task
        data = result._result
        doc = {"host": result._host.get_name(), "task": task.get_name(), "status": status, "ignored": ignored,
               "module": task.action.split(".")[-1], "msg": None}
        if doc["module"] == "debug" and status == "ok" and "results" not in data:
            var = task.args.get("var")
            if var:
                doc["msg"] = json.dumps({str(var): _plain(data.get(str(var)))}, sort_keys=True)
            elif isinstance(data.get("msg"), str):
                doc["msg"] = str(data["msg"])
            else:
                doc["msg"] = json.dumps(_plain(data.get("msg")), sort_keys=True)
        self._write(doc)

    def v2_runner_on_ok(self, result: Any, **kwargs: Any) -> None:
        self._result(result, "changed" if result._result.get("changed") else "ok")

    def v2_runner_on_failed(self, result: Any, ignore_errors: bool = False, **kwargs: Any) -> None:
        self._result(result, "failed", ignored=ignore_errors)

    def v2_runner_on_skipped(self, result: Any, **kwargs: Any) -> None:
        self._result(result, "skipped")

    def v2_runner_on_unreachable(self, result: Any, **kwargs: Any) -> None:
        self._result(result, "unreachable")

    def v2_playbook_on_stats(self, stats: Any) -> None:
        for host in sorted(stats.processed):
            s = stats.summarize(host)
            self._write({"recap": host, "ok": s["ok"], "changed": s["changed"], "unreachable": s["unreachable"],
                         "failed": s["failures"], "skipped": s["skipped"], "ignored": s["ignored"]})
