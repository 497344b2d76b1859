"""Ansible-syntax playbooks and the small engine that runs them over Fabric."""

from playbooks.engine import builtin_playbooks, load_playbook, parse_extra_vars, resolve_playbook
from playbooks.errors import PlaybookError
from playbooks.runner import Event, HostStats, RunResult, TaskResult, run_playbook

__all__ = [
    "Event",
    "HostStats",
    "PlaybookError",
    "RunResult",
    "TaskResult",
    "builtin_playbooks",
    "load_playbook",
    "parse_extra_vars",
    "resolve_playbook",
    "run_playbook",
]
