"""The differential suite's language cases (variables, conditionals, loops, tags, check mode, the filters and Jinja
infprov's playbooks use) on this machine, without root or a sandbox: infprov's engine through its local connector
(playbooks.localconn, injected here: an inventory can never choose it) and ansible-playbook through
`ansible_connection: local`. Compared as on the sandbox (tests/sandbox/test_ansible_diff.py, which keeps the
module cases, whose owners and modes need a remote login, and runs them twice): every task's status per host, the
recap, the debug output and the files each case writes."""

# ruff: noqa: E501  (the command lines, clearer unwrapped)
from __future__ import annotations

import getpass
import os
import shutil
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from infprov.inventory import store
from infprov.inventory.model import Host, Inventory
from infprov.playbooks.engine import load_playbook, parse_extra_vars
from infprov.playbooks.localconn import LocalConnection
from infprov.playbooks.runner import run_playbook
from tests.ansible_diff_language_cases import LANGUAGE_CASES
from tests.ansible_diff_run import (
    Case,
    Outcome,
    _batches,
    _book_dir,
    _playbook,
    _run_ansible,
    differences,
    record,
    tasks_by_host,
)

pytestmark = pytest.mark.skipif(shutil.which("ansible-playbook") is None, reason="ansible-core is not installed")

LOCAL = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
# One run per engine: a language case means the same on its second run (the sandbox runs its module cases twice,
# where a second run shows what converged); ansible-playbook's start and forks are most of this file's CPU.
RUNS = 1


def _inventory(path: Path, batch: list[Case], root: Path, *, ansible: bool) -> None:
    """Each host alias its own folder `d` (ROOT/case/k): the aliases share this machine's file system."""
    hosts = [Host(name=f"{c.name}_{k}", address="127.0.0.1", user=getpass.getuser(), cluster=c.name,
                  extra={**(LOCAL if ansible else {}), "d": str(root / c.name / str(k))})
             for c in batch for k in range(c.hosts)]
    path.write_text(store.dump(Inventory(hosts=tuple(hosts))))


def _run_infprov(book: Path, inv: Path, opts: tuple[str, ...], home: Path, root: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    extra: list[str] = []
    tags: list[str] = []
    skip: list[str] = []
    it = iter(opts)
    for opt in it:
        if opt != "--check":  # an option the cases do not use is a KeyError here, not dropped
            {"-e": extra, "--tags": tags, "--skip-tags": skip}[opt].append(next(it))
    try:
        result = run_playbook(load_playbook(book), store.load(inv), extra_vars=parse_extra_vars(extra),
                              check="--check" in opts, tags=tags, skip_tags=skip, runs_dir=home / "runs",
                              known_hosts=home / "known_hosts", connector=lambda host: LocalConnection())
    except Exception as exc:  # noqa: BLE001 - what the engine refused is this case's difference
        return {}, {}, f"infprov: {exc}"
    doc = result.to_dict()
    return tasks_by_host(doc["tasks"], root), doc["stats"], ""


def _files(root: Path) -> dict[str, dict[str, tuple[str, ...]]]:
    """case → {relative path → (type, mode, link target, content)}: one user wrote both engines' files."""
    out: dict[str, dict[str, tuple[str, ...]]] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        kind = "l" if path.is_symlink() else "d" if path.is_dir() else "f"
        mode = oct(path.lstat().st_mode & 0o7777)
        link = os.readlink(path).replace(str(root), "ROOT") if kind == "l" else ""
        content = path.read_text(errors="replace") if kind == "f" else ""
        out.setdefault(rel.parts[0], {})["/".join(rel.parts[1:])] = (kind, mode, link, content)
    return out


def _engine(engine: str, batches: list[list[Case]], work: Path, root: Path) -> dict[str, Outcome]:
    outcomes: dict[str, Outcome] = {c.name: Outcome() for b in batches for c in b}

    def one(index: int, batch: list[Case]) -> None:
        book = work / "book" / f"{engine}-batch{index}.yml"
        inv = work / f"{engine}-inv{index}.yml"
        _playbook(book, batch)
        _inventory(inv, batch, root, ansible=engine == "ansible")
        for _ in range(RUNS):
            if engine == "infprov":
                per_host, stats, err = _run_infprov(book, inv, batch[0].opts, work / "home", str(root))
            else:
                per_host, stats, err = _run_ansible(book, inv, batch[0].opts, work / "home", str(root),
                                                    work / f"cb-{index}.jsonl")
            record(outcomes, batch, per_host, stats, err)

    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(lambda ib: one(*ib), enumerate(batches)))
    return outcomes


@pytest.fixture(scope="module")
def compared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, list[str]]]:
    work = tmp_path_factory.mktemp("diff-local")
    _book_dir(work / "book")
    (work / "home").mkdir(mode=0o700)
    roots = {e: work / "hosts" / e for e in ("infprov", "ansible")}
    batches = _batches(LANGUAGE_CASES)
    with ThreadPoolExecutor(max_workers=2) as engines:
        futures = {e: engines.submit(_engine, e, batches, work, roots[e]) for e in roots}
        results = {e: f.result() for e, f in futures.items()}
    files = {e: _files(roots[e]) for e in roots}
    yield differences(LANGUAGE_CASES, results, files, runs=RUNS)


def test_every_language_case_runs_here() -> None:
    assert len(LANGUAGE_CASES) >= 20 and getpass.getuser()


@pytest.mark.parametrize("name", [c.name for c in LANGUAGE_CASES])
def test_language_case_matches_ansible_on_the_local_connection(name: str, compared: dict[str, list[str]]) -> None:
    assert compared[name] == [], "\n".join(compared[name])

