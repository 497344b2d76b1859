"""Differential suite: small playbooks run under infprov's own engine (`infprov play --engine infprov`: what runs
the built-in playbooks; a user's playbook file runs on ansible-core itself) and `ansible-playbook` against
sandbox hosts. The cases are about what infprov's own playbooks (server.yml, bench.yml, bundle.yml) use: the
engine accepts nothing else.

Each case is one small play (or a few) run twice by each engine; compared: every task's status per host on
both runs, the recap, and the hosts' files (type, content, mode, owner, group, link target): a case that
looks at a value writes it to a file on the host. Everything else must be refused by infprov before
anything runs (exit 2, one line naming file:line, nothing changed on the hosts: tests/sandbox/test_ansible_refusals.py). The cases are in
tests/ansible_diff_module_cases.py and tests/ansible_diff_language_cases.py, the harness in tests/ansible_diff_run.py.

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
from tests.ansible_diff_language_cases import LANGUAGE_CASES
from tests.ansible_diff_module_cases import MODULE_CASES
from tests.ansible_diff_run import WORKERS, Case, _batches, _engine, _files, _normal_recap

pytestmark = [
    pytest.mark.sandbox,
    pytest.mark.ansible_diff,
    pytest.mark.skipif(shutil.which("ansible-playbook") is None, reason="ansible-core is not installed"),
]

# the cases: the modules', then the language's (in this order, the batches stay as they were)
CASES: list[Case] = [*MODULE_CASES, *LANGUAGE_CASES]


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
    diffs: dict[str, list[str]] = {}
    for c in CASES:
        ours, theirs = results["infprov"][c.name], results["ansible"][c.name]
        found: list[str] = [*ours.errors, *theirs.errors]
        for run in range(2):
            a = ours.runs[run] if run < len(ours.runs) else {}
            b = theirs.runs[run] if run < len(theirs.runs) else {}
            for host in sorted(set(a) | set(b)):
                sa = [(s, ig) for _, s, ig, _ in a.get(host, [])]
                sb = [(s, ig) for _, s, ig, _ in b.get(host, [])]
                if sa != sb:
                    found.append(f"run {run + 1} {host} statuses: infprov {sa} / ansible {sb} "
                                 f"(ansible tasks {[t for t, *_ in b.get(host, [])]})")
                ma = [m for *_, m in a.get(host, [])]
                mb = [m for *_, m in b.get(host, [])]
                if sa == sb and ma != mb:
                    found.append(f"run {run + 1} {host} debug output: infprov {ma} / ansible {mb}")
            ra = _normal_recap(ours.recaps[run]) if run < len(ours.recaps) else {}
            rb = _normal_recap(theirs.recaps[run]) if run < len(theirs.recaps) else {}
            if ra != rb:
                found.append(f"run {run + 1} recap: infprov {ra} / ansible {rb}")
        fa, fb = files["infprov"].get(c.name, {}), files["ansible"].get(c.name, {})
        if fa != fb:
            keys = sorted(set(fa) | set(fb))
            found.append("files: " + "; ".join(f"{k}: {fa.get(k)} / {fb.get(k)}" for k in keys if fa.get(k) != fb.get(k)))
        diffs[c.name] = found
    yield diffs


def test_enough_cases() -> None:
    assert len(CASES) >= 40, len(CASES)
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("name", [c.name for c in CASES])
def test_case_matches_ansible(name: str, compared: dict[str, list[str]]) -> None:
    assert compared[name] == [], "\n".join(compared[name])
