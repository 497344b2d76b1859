"""Differential suite: small playbooks run under infprov's own engine (`infprov play --engine infprov`: what runs
the built-in playbooks; a user's playbook file runs on ansible-core itself) and `ansible-playbook` against
sandbox hosts. The cases are about what infprov's own playbooks (server.yml, bench.yml, bundle.yml) use: the
engine accepts nothing else.

Each case is one small play (or a few) run twice by each engine; compared: every task's status per host on
both runs, the recap, and the hosts' files (type, content, mode, owner, group, link target): a case that
looks at a value writes it to a file on the host. Everything else must be refused by infprov before
anything runs (exit 2, one line naming file:line, nothing changed on the hosts: tests/sandbox/test_ansible_refusals.py).
Here run the module cases (tests/ansible_diff_module_cases.py), whose owners, modes and second run need a remote
login; the language cases (tests/ansible_diff_language_cases.py) need no remote host and run on this machine's
local connection in the integration tier (tests/integration/test_ansible_diff_local.py). The harness is
tests/ansible_diff_run.py.

Speed: cases are batched into a few playbooks per engine (a play per case, each on its own inventory
group of host aliases that point at the sandbox's hosts), batches run in parallel, and the two engines
work in separate folders so they run side by side. ansible-playbook stops a playbook once every host of
a play has failed, so a case that fails all its hosts ends its batch.

Select with `-m ansible_diff`; the reference is the ansible-core release on PATH (2.19).
"""

# ruff: noqa: E501  (the cases are one-line Jinja expressions, clearer unwrapped)
from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from infprov.inventory.model import Host
from infprov.playbooks.connection import SshConnection
from tests.ansible_diff_module_cases import MODULE_CASES
from tests.ansible_diff_run import WORKERS, Case, _batches, _engine, _files, differences

pytestmark = [
    pytest.mark.sandbox,
    pytest.mark.ansible_diff,
    pytest.mark.skipif(shutil.which("ansible-playbook") is None, reason="ansible-core is not installed"),
]

CASES: list[Case] = list(MODULE_CASES)


@pytest.fixture(scope="module")
def compared(fleet: list[dict[str, Any]], work: Path) -> Iterator[dict[str, list[str]]]:
    """Run every case under both engines (side by side) and return each case's differences."""
    ident = uuid.uuid4().hex[:8]
    roots = {e: f"/home/ubuntu/infprov-diff-{ident}/{e}" for e in ("infprov", "ansible")}
    batches = _batches(CASES)
    try:
        with ThreadPoolExecutor(max_workers=2) as infprov_pool, ThreadPoolExecutor(max_workers=WORKERS) as ansible_pool, \
                ThreadPoolExecutor(max_workers=2) as engines:
            futures = {e: engines.submit(_engine, e, batches, work, fleet, roots[e], p)
                       for e, p in (("infprov", infprov_pool), ("ansible", ansible_pool))}
            results = {e: f.result() for e, f in futures.items()}
        files = {e: _files(fleet, roots[e], work / "home") for e in roots}
    finally:
        for real in fleet:
            host = Host(name=real["name"], address=real["address"], port=int(real["port"]), user=real["user"],
                        key_file=real["key_file"])
            conn = SshConnection(host, work / "home" / "known_hosts")
            try:
                conn.run(f"sudo -n rm -rf /home/ubuntu/infprov-diff-{ident}")
            finally:
                conn.close()
    yield differences(CASES, results, files, runs=2)


def test_enough_cases() -> None:
    from tests.ansible_diff_language_cases import LANGUAGE_CASES  # run locally, in the integration tier

    assert len(CASES) >= 20 and len(LANGUAGE_CASES) >= 20, (len(CASES), len(LANGUAGE_CASES))
    names = [c.name for c in [*CASES, *LANGUAGE_CASES]]
    assert len(set(names)) == len(names)


@pytest.mark.parametrize("name", [c.name for c in CASES])
def test_case_matches_ansible(name: str, compared: dict[str, list[str]]) -> None:
    assert compared[name] == [], "\n".join(compared[name])
