"""The differential suite's harness: cases as small plays, batches, both engines run twice, their results."""

# ruff: noqa: E501  (the command lines and environments, clearer unwrapped)
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infprov.inventory import store
from infprov.inventory.model import Host, Inventory
from infprov.playbooks.connection import SshConnection

CALLBACK_DIR = Path(__file__).resolve().parent / "ansible_diff"
ANSIBLE_ARGS = "-o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no"
WORKERS = 4  # batches run at a time (2 CPUs: ansible-playbook forks a process per task and host)


@dataclass(frozen=True)
class Case:
    name: str
    book: str  # plays; `hosts: H` is replaced by the case's own group
    hosts: int = 1
    fails: bool = False  # every host of the case fails somewhere: the case ends its batch
    opts: tuple[str, ...] = ()  # command-line options, the same for both engines (--tags, --check)


def play(tasks: str, *, head: str = "", handlers: str = "") -> str:
    out = "- hosts: H\n  gather_facts: false\n" + textwrap.indent(textwrap.dedent(head), "  ")
    out += "  tasks:\n" + textwrap.indent(textwrap.dedent(tasks), "    ")
    if handlers:
        out += "  handlers:\n" + textwrap.indent(textwrap.dedent(handlers), "    ")
    return out


def case(name: str, tasks: str, **kw: Any) -> Case:
    head = kw.pop("head", "")
    handlers = kw.pop("handlers", "")
    return Case(name, play(tasks, head=head, handlers=handlers), **kw)


TEMPLATE = """\
host {{ inventory_hostname | regex_replace('_[0-9]+$', '') }}
{% for i in items_ %}
- {{ i }}
{% endfor %}
{% if n > 2 %}
many
{% endif %}
none:[{{ none_ }}]
{{ ansible_managed }}
"""


# ---------------------------------------------------------------- running them
@dataclass
class Outcome:
    """What one engine did: per run, host → [(task, status, ignored, msg)], and the recap."""

    runs: list[dict[str, list[tuple[str, str, bool, str | None]]]] = field(default_factory=list)
    recaps: list[dict[str, dict[str, int]]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _book_dir(root: Path) -> Path:
    (root / "files" / "tree" / "sub").mkdir(parents=True)
    (root / "files" / "app.conf").write_text("listen=0.0.0.0\nport=8000\n")
    (root / "files" / "tree" / "a.txt").write_text("a\n")
    (root / "files" / "tree" / "sub" / "b.txt").write_text("b\n")
    (root / "templates").mkdir()
    (root / "templates" / "t.j2").write_text(TEMPLATE)
    (root / "templates" / "extends.j2").write_text("{% extends 'base.j2' %}\n")
    (root / "vars.yml").write_text("b: from_vars_file\n")
    return root


def _inventory(path: Path, cases: list[Case], fleet: list[dict[str, Any]], root: str) -> None:
    hosts: list[Host] = []
    for index, c in enumerate(cases):
        for k in range(c.hosts):
            real = fleet[(index + k) % len(fleet)]
            hosts.append(Host(name=f"{c.name}_{k}", address=real["address"], port=int(real["port"]),
                              user=real["user"], key_file=real["key_file"], cluster=c.name,
                              extra={"ansible_ssh_common_args": ANSIBLE_ARGS}))
    groups = {c.name: {"d": f"{root}/{c.name}"} for c in cases}
    path.write_text(store.dump(Inventory(hosts=tuple(hosts), group_vars=groups)))


def _batches(cases: list[Case]) -> list[list[Case]]:
    """Cases with the same options together; each case that fails all its hosts ends a batch."""
    out: list[list[Case]] = []
    by_opts: dict[tuple[str, ...], list[Case]] = {}
    for c in cases:
        by_opts.setdefault(c.opts, []).append(c)
    for group in by_opts.values():
        passing = [c for c in group if not c.fails]
        failing = [c for c in group if c.fails]
        count = max(1, len(failing))
        for i in range(count):
            batch = passing[i::count]
            if failing:
                batch = [*batch, failing[i]]
            out.append(batch)
    return out


def _playbook(path: Path, batch: list[Case]) -> None:
    text = ""
    for c in batch:
        text += c.book.replace("- hosts: H\n", f"- hosts: {c.name}\n") + "\n"
    path.write_text(text)


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, "INFPROV_HOME": str(home), "INFPROV_DIFF_MARK": "marked", "ANSIBLE_HOST_KEY_CHECKING": "False",
            "ANSIBLE_PIPELINING": "True", "ANSIBLE_NOCOLOR": "1", "ANSIBLE_RETRY_FILES_ENABLED": "False",
            "ANSIBLE_CALLBACK_PLUGINS": str(CALLBACK_DIR), "ANSIBLE_CALLBACKS_ENABLED": "infprov_diff",
            "ANSIBLE_DEPRECATION_WARNINGS": "False", "ANSIBLE_FORKS": "10", "ANSIBLE_LOCAL_TEMP": str(home / "ansible-tmp"),
            "ANSIBLE_SSH_CONTROL_PATH_DIR": str(home / "cp")}  # fmt: skip


def _strip_alias(host: str) -> str:
    return host


def _run_infprov(book: Path, inv: Path, opts: tuple[str, ...], home: Path, root: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    proc = subprocess.run([sys.executable, "-c", "from infprov.provision.cli import app; app()", "play", str(book),
                           "--engine", "infprov", "--inventory", str(inv), "--json", *opts],
                          capture_output=True, text=True, env=_env(home), timeout=900)  # fmt: skip
    try:
        doc = json.loads(proc.stdout)
    except ValueError:
        return {}, {}, f"infprov exit {proc.returncode}: {proc.stderr[-1500:]}"
    return tasks_by_host(doc["tasks"], root), doc["stats"], ""


def tasks_by_host(tasks: list[dict[str, Any]], root: str) -> dict[str, list[tuple[str, str, bool, str | None]]]:
    """infprov's tasks (as `play --json` lists them) per host: (task, status, ignored, a debug task's message)."""
    per_host: dict[str, list[tuple[str, str, bool, str | None]]] = {}
    for t in tasks:
        msg = t["msg"].replace(root, "ROOT") if t["module"] == "debug" and t["status"] == "ok" and not t["items"] else None
        per_host.setdefault(t["host"], []).append((t["task"], t["status"], bool(t["ignored"]), msg))
    return per_host


def _run_ansible(book: Path, inv: Path, opts: tuple[str, ...], home: Path, root: str, out: Path) -> tuple[dict[str, Any], dict[str, Any], str]:
    env = {**_env(home), "INFPROV_DIFF_OUT": str(out)}
    out.unlink(missing_ok=True)
    proc = subprocess.run(["ansible-playbook", "-i", str(inv), str(book), *opts], capture_output=True, text=True,
                          env=env, timeout=900)  # fmt: skip
    per_host: dict[str, list[tuple[str, str, bool, str | None]]] = {}
    stats: dict[str, Any] = {}
    if not out.exists():
        return {}, {}, f"ansible-playbook exit {proc.returncode}: {proc.stdout[-1500:]} {proc.stderr[-1500:]}"
    for line in out.read_text().splitlines():
        doc = json.loads(line)
        if "recap" in doc:
            stats[doc.pop("recap")] = doc
            continue
        msg = doc["msg"].replace(root, "ROOT") if doc["msg"] is not None else None
        per_host.setdefault(doc["host"], []).append((doc["task"], doc["status"], bool(doc["ignored"]), msg))
    return per_host, stats, ""


def _files(fleet: list[dict[str, Any]], root: str, home: Path) -> dict[str, dict[str, tuple[str, ...]]]:
    """case → {host address:relative path → (type, mode, owner, group, link target, sha1)}."""
    out: dict[str, dict[str, tuple[str, ...]]] = {}
    for real in fleet:
        host = Host(name=real["name"], address=real["address"], port=int(real["port"]), user=real["user"],
                    key_file=real["key_file"])
        conn = SshConnection(host, home / "known_hosts")
        try:
            q = root.replace("'", "")
            res = conn.run(f"cd '{q}' 2>/dev/null && find . -mindepth 1 -printf '%P|%y|%m|%u|%g|%l|' "
                           f"-exec sh -c '[ -f \"$1\" ] && [ ! -L \"$1\" ] && sha1sum < \"$1\" | cut -c1-40 || echo' _ {{}} \\; || true")
        finally:
            conn.close()
        for line in res.out.splitlines():
            rel, kind, mode, owner, group, link, sha = line.split("|", 6)
            name, _, rest = rel.partition("/")
            out.setdefault(name, {})[f"{real['name']}:{rest}"] = (kind, mode, owner, group, link.replace(root, "ROOT"), sha)
    return out


def _engine(engine: str, batches: list[list[Case]], work: Path, fleet: list[dict[str, Any]], root: str,
            pool: ThreadPoolExecutor) -> dict[str, Outcome]:
    """Both runs of every batch under one engine; per case, what it did."""
    book_dir = work / "book"
    outcomes: dict[str, Outcome] = {c.name: Outcome() for b in batches for c in b}

    def one(index: int, batch: list[Case]) -> None:
        book = book_dir / f"{engine}-batch{index}.yml"
        inv = work / f"{engine}-inv{index}.yml"
        _playbook(book, batch)
        _inventory(inv, batch, fleet, f"{root}")
        for _run in range(2):
            if engine == "infprov":
                per_host, stats, err = _run_infprov(book, inv, batch[0].opts, work / "home", root)
            else:
                per_host, stats, err = _run_ansible(book, inv, batch[0].opts, work / "home", root,
                                                    work / f"cb-{index}.jsonl")
            record(outcomes, batch, per_host, stats, err)

    list(pool.map(lambda ib: one(*ib), enumerate(batches)))
    return outcomes


def record(outcomes: dict[str, Outcome], batch: list[Case], per_host: dict[str, Any], stats: dict[str, Any],
           err: str) -> None:
    """One run of a batch, shared out to its cases by their host aliases (`case_k`)."""
    for c in batch:
        outcomes[c.name].runs.append({h: v for h, v in per_host.items() if h.rsplit("_", 1)[0] == c.name})
        outcomes[c.name].recaps.append({h: v for h, v in stats.items() if h.rsplit("_", 1)[0] == c.name})
        if err:
            outcomes[c.name].errors.append(err)


def _normal_recap(recap: dict[str, Any]) -> dict[str, dict[str, int]]:
    keys = ("ok", "changed", "unreachable", "failed", "skipped", "ignored")
    return {h: {k: int(v[k]) for k in keys} for h, v in recap.items()}


def differences(cases: list[Case], results: dict[str, dict[str, Outcome]],
                files: dict[str, dict[str, dict[str, tuple[str, ...]]]], runs: int) -> dict[str, list[str]]:
    """Per case, what the engines did differently: errors, each run's statuses per host (then the debug output
    where those agree), the recaps, and the files; a run in which an engine ran none of the case's tasks too."""
    diffs: dict[str, list[str]] = {}
    for c in cases:
        ours, theirs = results["infprov"][c.name], results["ansible"][c.name]
        found: list[str] = [*ours.errors, *theirs.errors]
        for engine, outcome in (("infprov", ours), ("ansible-playbook", theirs)):
            if not outcome.runs or not any(outcome.runs[0].values()):
                found.append(f"{engine} ran no task of this case")
        for run in range(runs):
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
    return diffs
