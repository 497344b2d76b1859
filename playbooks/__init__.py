"""Ansible-syntax playbooks and the small engine that runs them over SSH."""

from infprov.playbooks.errors import PlaybookError
from infprov.playbooks.parsing import builtin_playbooks, load_playbook, parse_extra_vars, resolve_playbook
from infprov.playbooks.results import Event, HostStats, RunResult, TaskResult
from infprov.playbooks.runner import run_playbook

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
