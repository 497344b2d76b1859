"""Run a playbook over SSH: hosts in parallel, one connection each, a recap per host and a log per run."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from infprov.floor import paths
from infprov.floor.errors import InfprovError
from infprov.inventory.model import Host, Inventory
from infprov.playbooks import report
from infprov.playbooks.check import strings, template_problem
from infprov.playbooks.connection import OUTPUT_KEEP, CommandResult, Connection, SshConnection, Stdin, StreamResult
from infprov.playbooks.engine import Play, Playbook, Task, TaskOutcome, load_playbook, run_task
from infprov.playbooks.errors import HostUnreachable, PlaybookError
from infprov.playbooks.modules import MODULES
from infprov.playbooks.parsing import template_refusal
from infprov.playbooks.results import Event, HostStats, Redactor, RunResult, TaskResult
from infprov.playbooks.templating import LazyVars, Templar


def run_playbook(
    playbook: str | Path | Playbook,
    inventory: Inventory | Sequence[Host],
    *,
    limit: str | Sequence[str] | None = None,
    extra_vars: Mapping[str, Any] | None = None,
    check: bool = False,
    forks: int | None = None,
    on_event: Callable[[Event], None] | None = None,
    known_hosts: Path | None = None,
    runs_dir: Path | None = None,
    expected_host_keys: Mapping[str, Sequence[str]] | None = None,
    connect_timeout: float = 10.0,
    connector: Callable[[Host], Connection] | None = None,
    progress_after: float = 5.0,
    tags: Sequence[str] = (),
    skip_tags: Sequence[str] = (),
    stop: threading.Event | None = None,
) -> RunResult:
    """Run a playbook (built-in name, path, or parsed) against the inventory's hosts.

    limit: a host pattern or a list of host names, narrowing every play's `hosts`.
    known_hosts / runs_dir default to INFPROV_HOME/known_hosts and INFPROV_HOME/runs.
    expected_host_keys: per host name, fingerprints a first-seen host key must match (e.g. from EC2 console output).
    connector: makes a connection for a host (tests inject fakes); default SSH (paramiko) with pinned keys.
    tags / skip_tags: as ansible-playbook's --tags / --skip-tags (comma-separated values are split).
    stop: when set (e.g. on Ctrl-C), a streamed command that runs gets its task's `on_stop` command and no
    new one starts; other tasks go on (what is left is usually fetching what was made).
    Raises PlaybookError for a playbook that cannot run; host failures are in the result, never raised.
    """
    start = time.monotonic()
    book = playbook if isinstance(playbook, Playbook) else load_playbook(playbook)
    inv = inventory if isinstance(inventory, Inventory) else Inventory(hosts=tuple(inventory))
    _check_values(inv, extra_vars or {})
    allowed = _limit(inv, limit)
    known = known_hosts or paths.known_hosts()
    if connector is None:
        keys = expected_host_keys or {}

        def connector(host: Host) -> Connection:
            return SshConnection(
                host, known, expected_fingerprints=keys.get(host.name), connect_timeout=connect_timeout
            )

    run = _Run(book, inv, allowed, dict(extra_vars or {}), check, forks, on_event, connector, progress_after)
    run.only_tags = {t.strip() for item in tags for t in str(item).split(",") if t.strip()}
    run.skip_tags = {t.strip() for item in skip_tags for t in str(item).split(",") if t.strip()}
    run.halt = stop or threading.Event()
    try:
        log_dir = runs_dir or paths.runs_dir()
        log_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        log_path: Path | None = log_dir / f"{stamp}-play-{book.path.stem}-{os.getpid()}.log"
        assert log_path is not None
        # 0600 whatever the umask: a run log holds command lines and host output
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        log: TextIO | None = os.fdopen(fd, "w", encoding="utf-8")
    except (OSError, InfprovError):  # no log rather than no run (the run's own state checks still apply)
        log_path, log = None, None
    run.log = log
    try:
        run.execute()
    finally:
        run.close()
        elapsed = time.monotonic() - start
        result = RunResult(
            playbook=str(book.path),
            check=check,
            hosts=tuple(run.seen_hosts),
            stats=run.stats,
            tasks=tuple(run.results),
            registered=run.registered,
            log_path=log_path,
            elapsed=elapsed,
        )
        if log is not None:
            log.write("\n" + report.recap(result) + "\n")
            log.close()
    return result


def _check_values(inv: Inventory, extra_vars: Mapping[str, Any]) -> None:
    """The inventory's and -e's templates meet the playbook's rule, before anything runs."""
    values = [("-e", extra_vars)] + [(f"inventory host {h.name}", inv.host_vars(h)) for h in inv.hosts]
    for where, layer in values:
        for key, value in layer.items():
            for text in strings(value):
                problem = template_problem(text)
                if problem:
                    raise template_refusal(f"{where}: variable {key!r}", problem)


def _limit(inv: Inventory, limit: str | Sequence[str] | None) -> set[str] | None:
    if limit is None:
        return None
    if isinstance(limit, str):
        chosen = inv.select(limit)
        if not chosen:
            raise PlaybookError(f"--limit {limit!r} matches no host in the inventory", "see `infprov inventory`")
        return {h.name for h in chosen}
    names = set(limit)
    unknown = names - {h.name for h in inv.hosts}
    if unknown:
        raise PlaybookError(f"unknown host(s): {', '.join(sorted(unknown))}", "see `infprov inventory`")
    return names


@dataclass
class _HostState:
    host: Host
    facts: dict[str, Any] = field(default_factory=dict)  # registered results
    conn: Connection | None = None
    dead: bool = False


class _Run:
    def __init__(
        self,
        book: Playbook,
        inv: Inventory,
        allowed: set[str] | None,
        extra_vars: dict[str, Any],
        check: bool,
        forks: int | None,
        on_event: Callable[[Event], None] | None,
        connector: Callable[[Host], Connection],
        progress_after: float,
    ) -> None:
        self.book = book
        self.inv = inv
        self.allowed = allowed
        self.extra = extra_vars
        self.check = check
        self.forks = forks
        self.on_event = on_event
        self.connector = connector
        self.progress_after = progress_after
        self.log: TextIO | None = None
        self.stats: dict[str, HostStats] = {}
        self.results: list[TaskResult] = []
        self.registered: dict[str, dict[str, Any]] = {}
        self.seen_hosts: list[str] = []
        self.states: dict[str, _HostState] = {}
        self._lock = threading.Lock()
        self._running: dict[str, tuple[str, str, float, float]] = {}  # host -> (play, task, start, next report)
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick, name="infprov-progress", daemon=True)
        self._host_vars = {h.name: inv.host_vars(h) for h in inv.hosts}
        self.only_tags: set[str] = set()
        self.skip_tags: set[str] = set()
        self.halt = threading.Event()  # the caller's stop signal for streamed commands
        self.redact = Redactor()  # learns each task's secret values (the -e ones included) before it logs

    # ------------------------------------------------------------ orchestration
    def execute(self) -> None:
        self._ticker.start()
        self._write(f"playbook {self.book.path}  check={self.check}  extra_vars={sorted(self.extra)}")
        for play in self.book.plays:
            hosts = [h for h in self.inv.select(play.hosts) if self.allowed is None or h.name in self.allowed]
            for h in hosts:
                if h.name not in self.states:
                    self.states[h.name] = _HostState(h)
                    self.stats[h.name] = HostStats()
                    self.seen_hosts.append(h.name)
                    self.registered[h.name] = {}
            live = [h for h in hosts if not self.states[h.name].dead]
            name = play.name or play.hosts
            if not live:
                self._emit(Event("no_hosts", play=name))
                continue
            self._emit(Event("play", play=name, hosts=tuple(h.name for h in live)))
            workers = max(1, min(self.forks or len(live), len(live)))
            states = [self.states[h.name] for h in live]
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="infprov-host") as pool:
                self._linear(play, states, pool)
            if all(st.dead for st in states):
                # as ansible-playbook: when every host of a play has failed, the playbook stops here
                break

    def _selected(self, task: Task) -> bool:
        """--tags and --skip-tags against the play's tags (infprov's playbooks tag plays, not tasks)."""
        if self.only_tags and not task.tags & self.only_tags:
            return False
        return not task.tags & self.skip_tags

    def _linear(self, play: Play, states: list[_HostState], pool: ThreadPoolExecutor) -> None:
        """Each task on every live host before the next task."""
        for task in play.tasks:
            if not self._selected(task):
                continue
            active = [st for st in states if not st.dead]
            if not active:
                return
            list(pool.map(lambda st, t=task: self._task(play, t, st), active))

    def close(self) -> None:
        self._stop.set()
        if self._ticker.is_alive():
            self._ticker.join(2)
        for state in self.states.values():
            if state.conn is not None:
                with contextlib.suppress(Exception):  # closing must never hide the run's result
                    state.conn.close()

    def _task(self, play: Play, task: Task, state: _HostState) -> TaskOutcome | None:
        host = state.host
        play_name = play.name or play.hosts
        begin = time.monotonic()
        variables = self._variables(play, state)
        self.redact.learn(variables)
        label = _label(task, variables)
        with self._lock:
            self._running[host.name] = (play_name, label, begin, begin + self.progress_after)
        self._emit(Event("task_start", play=play_name, host=host.name, task=label))
        conn: Connection = _NoConnection(host.name)
        if MODULES[task.module].remote:
            conn = _TaskConnection(self._conn(state), self._output(play_name, host.name, label), self.halt)
        try:
            outcome = run_task(
                task,
                host_name=host.name,
                variables=variables,
                conn=conn,
                check=self.check,
                base_dir=self.book.base_dir,
            )
        except HostUnreachable as exc:
            state.dead = True
            self._record(
                play_name,
                task,
                state,
                TaskResult(
                    host.name,
                    play_name,
                    label,
                    task.module,
                    "unreachable",
                    exc.message,
                    time.monotonic() - begin,
                    hint=exc.hint,
                ),
            )
            return None
        except Exception as exc:  # e.g. a keyword value of the wrong type: this host fails, the run goes on
            state.dead = True
            msg = f"{task.where()}: {type(exc).__name__}: {exc}"
            self._record(
                play_name, task, state,
                TaskResult(host.name, play_name, label, task.module, "failed", msg, time.monotonic() - begin),
            )  # fmt: skip
            return None
        finally:
            with self._lock:
                self._running.pop(host.name, None)
        res = outcome.result
        register = task.keywords.get("register")
        if register:
            state.facts[register] = outcome.registered
            self.registered[host.name][register] = outcome.registered
        no_log = bool(task.keywords.get("no_log"))
        tr = TaskResult(
            host=host.name,
            play=play_name,
            task=label,
            module=task.module,
            status=outcome.status,
            msg="(output hidden by no_log)" if no_log else res.msg,
            elapsed=time.monotonic() - begin,
            command=None if no_log else res.command,
            rc=res.rc,
            tail="" if no_log else res.tail,
            items=outcome.items,
            changed=res.changed,
        )
        self._record(play_name, task, state, tr, outcome if not no_log else None)
        if res.failed:
            state.dead = True
        return outcome

    def _output(self, play: str, host: str, task: str) -> Callable[[str], None]:
        def emit(line: str) -> None:
            self._emit(Event("output", play=play, host=host, task=task, line=line))

        return emit

    def _conn(self, state: _HostState) -> Connection:
        if state.conn is None:
            state.conn = self.connector(state.host)
        return state.conn

    def _variables(self, play: Play, state: _HostState) -> list[Mapping[str, Any]]:
        host = state.host
        magic = {
            "inventory_hostname": host.name,
            "inventory_hostname_short": host.name.split(".")[0],
            "groups": self.inv.groups(),
            "group_names": [host.cluster],
            "playbook_dir": str(self.book.base_dir),
            "ansible_check_mode": self.check,
        }
        return [self.extra, state.facts, play.vars, self._host_vars[host.name], magic]

    # ------------------------------------------------------------ reporting
    def _record(
        self, play: str, task: Task, state: _HostState, tr: TaskResult, outcome: TaskOutcome | None = None
    ) -> None:
        r = self.redact
        tr = dataclasses.replace(
            tr, task=r(tr.task), msg=r(tr.msg), tail=r(tr.tail), command=r(tr.command) if tr.command else tr.command
        )
        with self._lock:
            self.stats[state.host.name].count(tr)
            self.results.append(tr)
        self._emit(Event("task_end", play=play, host=tr.host, task=tr.task, elapsed=tr.elapsed, result=tr))
        if outcome is not None and self.log is not None:
            detail = report.detail(outcome.registered)
            if detail:
                self._write(detail)

    def _emit(self, event: Event) -> None:
        if event.task or event.line:
            event = dataclasses.replace(event, task=self.redact(event.task), line=self.redact(event.line))
        line = report.event_line(event)
        with self._lock:
            if line:
                self._write_locked(line)
            if self.on_event is not None:
                self.on_event(event)

    def _write(self, text: str) -> None:
        with self._lock:
            self._write_locked(text)

    def _write_locked(self, text: str) -> None:
        if self.log is not None:
            self.log.write(f"{time.strftime('%H:%M:%S')} {self.redact(text)}\n")
            self.log.flush()

    def _tick(self) -> None:
        while not self._stop.wait(0.5):
            now = time.monotonic()
            due: list[Event] = []
            with self._lock:
                for host, (play, task, began, next_at) in list(self._running.items()):
                    if now >= next_at:
                        self._running[host] = (play, task, began, next_at + 10.0)
                        due.append(Event("task_running", play=play, host=host, task=task, elapsed=now - began))
            for event in due:
                self._emit(event)


class _TaskConnection:
    """The host's connection as a task sees it: a streamed command's lines also become the run's output
    events, and the run's stop signal reaches it (once stopped, no new streamed command starts)."""

    def __init__(self, conn: Connection, on_line: Callable[[str], None], halt: threading.Event) -> None:
        self._conn = conn
        self._on_line = on_line
        self._halt = halt
        self.name = conn.name

    def run(self, command: str, *, stdin: Stdin | None = None, timeout: float | None = None,
            keep: int = OUTPUT_KEEP) -> CommandResult:
        return self._conn.run(command, stdin=stdin, timeout=timeout, keep=keep)

    def stream(
        self,
        command: str,
        on_line: Callable[[str], object],
        *,
        stop: threading.Event | None = None,
        on_stop: str | None = None,
    ) -> StreamResult:
        if self._halt.is_set():
            return StreamResult(-1, stopped=True)

        def both(line: str) -> None:
            on_line(line)
            self._on_line(line)

        return self._conn.stream(command, both, stop=stop or self._halt, on_stop=on_stop)

    def put_file(self, path: str, data: bytes, *, mode: int = 0o600) -> CommandResult:
        return self._conn.put_file(path, data, mode=mode)

    def get_file(self, path: str, *, limit: int = 256 << 20) -> bytes | None:
        return self._conn.get_file(path, limit=limit)

    def close(self) -> None:
        self._conn.close()


class _NoConnection:
    """Control-side modules get this; touching it is a bug in the module."""

    def __init__(self, name: str) -> None:
        self.name = name

    def run(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a control-side module tried to reach the host")

    stream = put_file = get_file = run

    def close(self) -> None:
        pass


def _label(task: Task, variables: list[Mapping[str, Any]]) -> str:
    """The task's name with its `{{ }}` filled in (as Ansible shows it), or as written if that fails."""
    if "{{" not in task.label:
        return task.label
    try:
        return str(Templar(LazyVars(list(variables))).template(task.label))
    except Exception:
        return task.label
