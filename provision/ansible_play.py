"""`infprov play PLAYBOOK` on ansible-core: a user's playbook runs under ansible-playbook itself, on infprov's
inventory, with infprov's keys and pinned host keys; infprov builds its output, run log and --json from the
events of its own callback (ansible_callback/infprov_events.py), secrets masked.

What ansible-playbook is given:
- the command line: the playbook, `-i` infprov's inventory, `--limit` (the cluster, the host and the user's
  --limit, always within the inventory's `all`: a play for `localhost` matches no host), -e as given (a
  YAML block, which ansible-core would not read, as JSON), --check, --diff, --tags, --skip-tags, -v..., --forks;
- the environment: the caller's, without any ANSIBLE_* variable but a few that only say where the user's
  roles, collections, plugins and vault password are (PASSED_ENV); ANSIBLE_CONFIG names a config file infprov
  writes for the run, so no ansible.cfg of the user's (./ansible.cfg, ~/.ansible.cfg, /etc/ansible) is read.
  Ansible lets the environment win over a config file: with the caller's ANSIBLE_* gone, the file's settings
  are the ones in force; an inventory or playbook variable still wins over both, as in Ansible;
- the config: infprov's callback as the stdout callback, host key checking on, pipelining on, retry files off,
  only the yaml inventory plugin (an executable inventory file is never run), ansible's local temp folder
  and ssh control sockets under INFPROV_HOME/ansible (0700), and ssh, sftp and scp through small wrappers
  infprov writes there. Each wrapper puts `-o StrictHostKeyChecking=yes -o UserKnownHostsFile=<infprov's
  known_hosts> -o GlobalKnownHostsFile=/dev/null -o KnownHostsCommand=none -o VerifyHostKeyDNS=no
  -o UpdateHostKeys=no` before anything ansible passes (or ~/.ssh/config says); ssh takes the first value it
  is given for an option, so no later `-o StrictHostKeyChecking=no` (an inventory's ansible_ssh_common_args,
  ansible_host_key_checking: false) can turn the pinning off: an unknown host is not trusted on first use
  and a changed key is refused. An inventory that names another connection or ssh
  program (REFUSED_HOST_VARS) is refused before anything runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import selectors
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from infprov.floor.errors import InfprovError, UsageError
from infprov.playbooks.results import HostStats, RunResult, TaskResult

REQUIREMENT = "ansible-core>=2.19,<2.20"  # the tested range (pyproject's `ansible` extra)
TESTED = (2, 19)
INSTALL_HINT = "install it with: pip install 'infprov[ansible]'"
CALLBACK_DIR = Path(__file__).resolve().parent / "ansible_callback"
CALLBACK = "infprov_events"
# the caller's ANSIBLE_* variables that reach ansible-playbook: where roles, collections, plugins and the vault
# password are; none of them touches how a host is reached
PASSED_ENV = frozenset({
    "ANSIBLE_ROLES_PATH", "ANSIBLE_COLLECTIONS_PATH", "ANSIBLE_COLLECTIONS_PATHS", "ANSIBLE_LIBRARY",
    "ANSIBLE_MODULE_UTILS", "ANSIBLE_FILTER_PLUGINS", "ANSIBLE_TEST_PLUGINS", "ANSIBLE_LOOKUP_PLUGINS",
    "ANSIBLE_VAULT_PASSWORD_FILE", "ANSIBLE_VAULT_IDENTITY_LIST",
})  # fmt: skip
# inventory variables that would take the connection out of the pinned ssh wrappers
REFUSED_HOST_VARS = ("ansible_connection", "ansible_ssh_executable", "ansible_sftp_executable",
                     "ansible_scp_executable")
SSH_CONNECTIONS = ("ssh", "smart", "ansible.builtin.ssh", "ansible.legacy.ssh")
CONTROL_PERSIST = "60s"
DEFAULT_FORKS_MAX = 50  # without --forks, every selected host at once, up to this many
TAIL_LINES = 20
SLOW_REPORT_FIRST = 10.0  # a task still running after this long gets a line, then every SLOW_REPORT_EVERY
SLOW_REPORT_EVERY = 30.0
STOP_GRACE = (5.0, 3.0)  # after Ctrl-C: SIGINT, then this long before SIGTERM, then this long before SIGKILL


# ---------------------------------------------------------------- which engine, and is ansible-core there
def builtin_playbook(playbook: str) -> bool:
    """A built-in playbook's name (`server`, `bench`), or a path to the shipped file itself: infprov's engine
    runs those (they need its streaming and Ctrl-C); any other playbook file goes to ansible-core."""
    from infprov.playbooks.parsing import BUILTIN_DIR, resolve_playbook

    return resolve_playbook(playbook).parent == BUILTIN_DIR.resolve()


def ansible_version() -> str:
    """The installed ansible-core's version, or one error line saying how to get it (exit 1)."""
    import importlib.metadata
    import importlib.util

    try:
        found = importlib.util.find_spec("ansible") is not None
        version = importlib.metadata.version("ansible-core") if found else ""
    except (ImportError, ValueError, importlib.metadata.PackageNotFoundError):
        found, version = False, ""
    if not found or not version:
        raise InfprovError("`infprov play` runs your playbooks with ansible-core, which is not installed "
                           f"(this Python: {sys.executable})", INSTALL_HINT)
    return version


def version_warning(version: str) -> str | None:
    parts = tuple(int(p) for p in re.findall(r"\d+", version)[:2])
    if parts != TESTED:
        return (f"ansible-core {version} is installed; infprov is tested with {REQUIREMENT} "
                f"({INSTALL_HINT.removeprefix('install it with: ')})")
    return None


# ---------------------------------------------------------------- what ansible-playbook is given
@dataclass(frozen=True)
class Options:
    check: bool = False
    diff: bool = False
    tags: tuple[str, ...] = ()
    skip_tags: tuple[str, ...] = ()
    verbosity: int = 0
    forks: int | None = None
    extra_vars: tuple[str, ...] = ()  # as the user gave them (checked by parse_extra_vars first)


@dataclass(frozen=True)
class Places:
    """Where ansible-playbook keeps its state for one run: INFPROV_HOME/ansible/<run> (0700), removed after it."""

    root: Path
    config: Path
    bin: Path
    local_temp: Path
    control: Path
    known_hosts: Path

    @classmethod
    def under(cls, home: Path, known_hosts: Path, run_id: str) -> Places:
        root = home / "ansible" / run_id
        control = root / "cp"
        # a control socket is <dir>/<40 hex> and ssh adds 17 characters while making it: 108 bytes at most;
        # under a longer home, a folder of the system's temporary one (prepare makes it 0700 and refuses one
        # that is already there and not ours; run ids carry a random part)
        if len(os.fsencode(control)) + 60 > 104:
            control = Path(tempfile.gettempdir()) / f"infprov-cp-{run_id}"
        return cls(root=root, config=root / "ansible.cfg", bin=root / "bin", local_temp=root / "tmp",
                   control=control, known_hosts=known_hosts)


def new_run_id() -> str:
    import secrets

    return f"{os.getpid()}-{secrets.token_hex(4)}"


def limit_pattern(limit: str | None, within: str | None) -> str:
    """--limit for ansible-playbook: the user's pattern, narrowed to the cluster or host, inside `all`."""
    parts = [p for p in (limit, within) if p]
    if not parts:
        return "all"
    return ":&".join([parts[0], *parts[1:], "all"])


def extra_var_args(items: Sequence[str]) -> list[str]:
    """-e for ansible-playbook: k=v, a JSON/YAML flow mapping and @file as given; a YAML block (which
    infprov reads and ansible-core would take for k=v) as the JSON of what infprov read."""
    from infprov.playbooks.parsing import parse_extra_vars

    out: list[str] = []
    for item in items:
        text = item.strip()
        if text.startswith("@"):
            out += ["-e", "@" + str(Path(text[1:]).expanduser().absolute())]
        elif text.startswith("{"):
            out += ["-e", text]
        elif "\n" in text:
            out += ["-e", json.dumps(parse_extra_vars([item]))]
        else:
            out += ["-e", item]
    return out


def argv(playbook: Path, inventory: Path, limit: str, options: Options, forks: int,
         python: str = sys.executable) -> list[str]:
    """The ansible-playbook command line (run with this Python, where the `ansible` extra installs it)."""
    cmd = [python, "-m", "ansible.cli.playbook", "-i", str(inventory), "--limit", limit, "--forks", str(forks)]
    if options.check:
        cmd.append("--check")
    if options.diff:
        cmd.append("--diff")
    for flag, values in (("--tags", options.tags), ("--skip-tags", options.skip_tags)):
        joined = ",".join(t.strip() for v in values for t in str(v).split(",") if t.strip())
        if joined:
            cmd += [flag, joined]
    if options.verbosity:
        cmd.append("-" + "v" * min(options.verbosity, 6))
    cmd += extra_var_args(options.extra_vars)
    cmd += ["--", str(playbook)] if str(playbook).startswith("-") else [str(playbook)]
    return cmd


def environment(base: Mapping[str, str], places: Places, events_fd: int) -> dict[str, str]:
    """The caller's environment without its ANSIBLE_* settings (but PASSED_ENV), pointed at infprov's config."""
    env = {k: v for k, v in base.items() if not k.startswith("ANSIBLE_") or k in PASSED_ENV}
    env.update({"ANSIBLE_CONFIG": str(places.config), "INFPROV_EVENTS_FD": str(events_fd),
                "PYTHONUNBUFFERED": "1"})
    env.pop("PYTHONSTARTUP", None)
    return env


def ssh_options(known_hosts: Path) -> list[str]:
    """What every ssh, sftp and scp of the run is given first (ssh keeps the first value of an option)."""
    return ["-o", "StrictHostKeyChecking=yes", "-o", f'UserKnownHostsFile="{known_hosts}"',
            "-o", "GlobalKnownHostsFile=/dev/null", "-o", "KnownHostsCommand=none", "-o", "VerifyHostKeyDNS=no",
            "-o", "UpdateHostKeys=no", "-o", "CheckHostIP=no"]


def wrapper_text(program: str, known_hosts: Path) -> str:
    words = " ".join(shlex.quote(w) for w in [program, *ssh_options(known_hosts)])
    return ("#!/bin/sh\n# written by infprov for `infprov play`: the host keys infprov pinned, whatever follows\n"
            f'exec {words} "$@"\n')


def config_text(places: Places) -> str:
    ssh_args = " ".join(shlex.quote(w) for w in [
        "-o", "ControlMaster=auto", "-o", f"ControlPersist={CONTROL_PERSIST}", *ssh_options(places.known_hosts)])
    lines = [
        "# written by infprov for `infprov play`; ansible-playbook reads this file only (ANSIBLE_CONFIG)",
        "[defaults]",
        f"stdout_callback = {CALLBACK}",
        f"callback_plugins = {CALLBACK_DIR}",
        "host_key_checking = True",
        "retry_files_enabled = False",
        "nocolor = True",
        f"local_tmp = {places.local_temp}",
        "",
        "[inventory]",
        "enable_plugins = yaml",
        "",
        "[ssh_connection]",
        f"ssh_executable = {places.bin / 'ssh'}",
        f"sftp_executable = {places.bin / 'sftp'}",
        f"scp_executable = {places.bin / 'scp'}",
        f"ssh_args = {ssh_args}",
        f"control_path_dir = {places.control}",
        "pipelining = True",
        "",
    ]
    return "\n".join(line.replace("%", "%%") for line in lines)


def check_paths(places: Places) -> None:
    """The paths written into the config and the wrappers must stay one value each."""
    for path in (places.root, places.control, places.known_hosts, CALLBACK_DIR):
        text = str(path)
        if any(ch in text for ch in '"\n\r%') or text != text.strip():
            raise InfprovError(f"{text!r} cannot be handed to ansible-playbook (a quote, newline, % or edge space)",
                               "set INFPROV_HOME to a plainer path")


def prepare(places: Places) -> bool:
    """The run's private folders (0700), its config and the ssh wrappers (0700). True if INFPROV_HOME/ansible
    was made now (cleanup removes it again when nothing else is in it)."""
    from infprov.floor import paths

    check_paths(places)
    made = not os.path.lexists(places.root.parent)
    for folder in (places.root.parent, places.root, places.bin, places.local_temp):
        paths.private_dir(folder, role="ansible state folder")
    paths.private_dir(places.control, role="ansible control sockets")
    paths.write_private(places.config, config_text(places))
    for name in ("ssh", "sftp", "scp"):
        real = shutil.which(name) or f"/usr/bin/{name}"
        target = places.bin / name
        paths.write_private(target, wrapper_text(real, places.known_hosts))
        os.chmod(target, 0o700)
    return made


def cleanup(places: Places, made_parent: bool) -> None:
    """The ssh connections ansible-playbook left open for reuse (ControlPersist) are closed, and the run's
    folders removed: nothing of the run stays behind it."""
    try:
        sockets = [p for p in places.control.iterdir() if p.is_socket()]
    except OSError:
        sockets = []
    for sock in sockets:
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            subprocess.run([str(places.bin / "ssh"), "-o", f"ControlPath={sock}", "-O", "exit", "infprov-control"],
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=5)
    shutil.rmtree(places.control, ignore_errors=True)
    shutil.rmtree(places.root, ignore_errors=True)
    if made_parent:
        with contextlib.suppress(OSError):
            places.root.parent.rmdir()  # only if empty: another run may be using it


def check_inventory(inv: Any, names: Iterable[str]) -> None:
    """Refuse an inventory whose variables would take a selected host's connection out of the wrappers."""
    for host in (h for h in inv.hosts if h.name in set(names)):
        merged = inv.host_vars(host)
        for var in REFUSED_HOST_VARS:
            value = merged.get(var)
            if value is None or (var == "ansible_connection" and str(value) in SSH_CONNECTIONS):
                continue
            raise UsageError(f"{inv.path}: host {host.name} sets {var}={value!r}, which would bypass infprov's "
                             "pinned host keys", f"remove {var} from the inventory")


# ---------------------------------------------------------------- the events, as infprov shows and keeps them
def _short_action(action: str) -> str:
    for prefix in ("ansible.builtin.", "ansible.legacy."):
        if action.startswith(prefix):
            return action[len(prefix):]
    return action


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str, ensure_ascii=False, sort_keys=True)


def _tail(data: Mapping[str, Any], lines: int = TAIL_LINES) -> str:
    text = "\n".join(_text(data.get(k)).rstrip("\n") for k in ("stdout", "stderr") if _text(data.get(k)).strip())
    if not text and (data.get("module_stdout") or data.get("module_stderr")):
        text = "\n".join(_text(data.get(k)).rstrip("\n") for k in ("module_stdout", "module_stderr")
                         if _text(data.get(k)).strip())
    return "\n".join(text.splitlines()[-lines:])


def _command(data: Mapping[str, Any]) -> str | None:
    cmd = data.get("cmd")
    if isinstance(cmd, list):
        return shlex.join(str(c) for c in cmd)
    return str(cmd) if cmd else None


def _first_failed_item(data: Mapping[str, Any]) -> Mapping[str, Any] | None:
    items = data.get("results")
    if not isinstance(items, list):
        return None
    return next((i for i in items if isinstance(i, Mapping) and (i.get("failed") or i.get("unreachable"))), None)


@dataclass
class HostKeyFacts:
    """What a host-key refusal names: the inventory's address and port per host, and the pinned file."""

    known_hosts: Path
    addresses: dict[str, tuple[str, int]] = field(default_factory=dict)


_CHANGED = re.compile(r"REMOTE HOST IDENTIFICATION HAS CHANGED|Host key for \S+ has changed", re.I)
_UNKNOWN = re.compile(r"No \S+ host key is known for|host key is not known|Host key verification failed", re.I)


def host_key_problem(msg: str, host: str, facts: HostKeyFacts | None) -> tuple[str, str] | None:
    """ssh's refusal of a host key, said as infprov says it (message, hint); None for other failures."""
    if facts is None:
        return None
    address, port = facts.addresses.get(host, (host, 22))
    name = address if port == 22 else f"[{address}]:{port}"
    known = facts.known_hosts
    if _CHANGED.search(msg):
        return (f"host key for {name} has CHANGED since it was pinned in {known}; refusing to connect (someone may "
                "be intercepting, or the host was rebuilt)",
                f"if the host was rebuilt on purpose, clear the old key with: ssh-keygen -R '{name}' -f {known}")
    if _UNKNOWN.search(msg):
        return (f"no host key is pinned for {name} in {known}; infprov does not trust a host on first use",
                "`infprov up` pins each instance's key (checked against its console output); for a host added by "
                f"hand, check its fingerprint, then add it (ssh-keyscan -p {port} {address} >> {known})")
    return None


def task_result(doc: Mapping[str, Any], play: str, facts: HostKeyFacts | None = None) -> TaskResult:
    """One `result` event as the TaskResult infprov reports (unmasked: the caller masks)."""
    data: Mapping[str, Any] = doc.get("result") or {}
    status = str(doc.get("status", "ok"))
    no_log = bool(doc.get("no_log"))
    items = data.get("results")
    count = len(items) if isinstance(items, list) else 0
    bad = status in ("failed", "unreachable")
    source = (_first_failed_item(data) or data) if bad else data
    msg = _text(data.get("msg"))
    if bad and source is not data:
        label = source.get("_ansible_item_label", source.get("item"))
        inner = _text(source.get("msg"))
        msg = f"{msg}: item {_text(label)}: {inner}" if inner else msg
    elif not msg and _short_action(str(doc.get("action", ""))) == "debug":
        rest = {k: v for k, v in data.items() if k not in ("changed", "failed", "_ansible_verbose_always")}
        msg = _text(rest) if rest else ""
    hint = ""
    if status == "unreachable":
        found = host_key_problem(msg, str(doc.get("host", "")), facts)
        if found:
            msg, hint = found
    rc = source.get("rc")
    return TaskResult(
        host=str(doc.get("host", "")),
        play=play,
        task=str(doc.get("task", "")),
        module=_short_action(str(doc.get("action", ""))),
        status=status,
        msg="(output hidden by no_log)" if no_log else msg,
        elapsed=float(doc.get("elapsed") or 0.0),
        ignored=bool(doc.get("ignored")),
        command=None if no_log or not bad else _command(source),
        rc=rc if isinstance(rc, int) and not isinstance(rc, bool) else None,
        tail="" if no_log or not bad else _tail(source),
        items=count,
        hint=hint,
        changed=bool(data.get("changed")),
    )


def detail(data: Mapping[str, Any], limit: int = 4000) -> str:
    """A task's result for -v and the run log: its output fields, trimmed."""
    keys = ("cmd", "rc", "stdout", "stderr", "msg", "status", "dest", "path", "state", "changed")
    picked = {k: data[k] for k in keys if data.get(k) not in (None, "", [])}
    if isinstance(data.get("results"), list):
        picked["items"] = len(data["results"])
    if not picked:
        return ""
    text = json.dumps(picked, default=str, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit // 2] + " ... " + text[-limit // 2:]


class Collector:
    """Reads the callback's events in order: the lines infprov shows (and logs), the TaskResults, the recap.

    mask: applied to every text before it is kept or shown; learn: given each `vars` event's variables (the
    run's masker learns the secret values in them before anything else of that host is shown)."""

    def __init__(self, *, mask: Callable[[str], str], learn: Callable[[Mapping[str, Any]], None] | None = None,
                 verbosity: int = 0, diff: bool = False, facts: HostKeyFacts | None = None) -> None:
        self.mask = mask
        self.learn = learn
        self.verbosity = verbosity
        self.diff = diff
        self.facts = facts
        self.started = False
        self.ansible = ""
        self.play = ""
        self.hosts: list[str] = []
        self.tasks: list[TaskResult] = []
        self.stats: dict[str, dict[str, int]] | None = None
        self.details: list[str] = []
        self.running: dict[str, tuple[str, float, float]] = {}  # host -> (task, began, next report)
        self._diffs: dict[str, str] = {}
        self._handler = False

    def feed(self, doc: Mapping[str, Any], now: float | None = None) -> list[str]:
        from infprov.playbooks import report

        kind = doc.get("event")
        now = time.monotonic() if now is None else now
        if kind == "start":
            self.started = True
            self.ansible = str(doc.get("ansible", ""))
            return []
        if kind == "vars":
            if self.learn is not None and isinstance(doc.get("vars"), Mapping):
                self.learn(doc["vars"])
            return []
        if kind == "play":
            self.play = self.mask(str(doc.get("name") or doc.get("pattern") or ""))
            hosts = [str(h) for h in doc.get("hosts") or []]
            for h in hosts:
                if h not in self.hosts:
                    self.hosts.append(h)
            if not hosts:
                return []
            return [self._show(report.event_line(_event("play", play=self.play, hosts=tuple(hosts))))]
        if kind == "no_hosts":
            return [self._show(report.event_line(_event("no_hosts", play=self.play)))]
        if kind == "task":
            self._handler = bool(doc.get("handler"))
            return []
        if kind == "task_start":
            host = str(doc.get("host", ""))
            self.running[host] = (self.mask(str(doc.get("task", ""))), now, now + SLOW_REPORT_FIRST)
            return []
        if kind == "diff":
            host = str(doc.get("host", ""))
            self._diffs[host] = self._diffs.get(host, "") + str(doc.get("text", ""))
            return []
        if kind == "retry":
            left = (doc.get("retries") or 0) - (doc.get("attempts") or 0)
            return [self._show(f"{doc.get('host')}: {self.mask(str(doc.get('task', '')))}: retrying ({left} left)")]
        if kind == "result":
            return self._result(doc)
        if kind == "stats":
            recap = doc.get("hosts")
            if isinstance(recap, Mapping):
                self.stats = {str(h): {k: int(v) for k, v in s.items()} for h, s in recap.items()}
                for h in self.stats:
                    if h not in self.hosts:
                        self.hosts.append(h)
            return []
        return []

    def _result(self, doc: Mapping[str, Any]) -> list[str]:
        from infprov.playbooks import report

        host = str(doc.get("host", ""))
        self.running.pop(host, None)
        tr = task_result(doc, self.play, self.facts)
        m = self.mask
        tr = dataclasses.replace(tr, task=m(tr.task), msg=m(tr.msg), tail=m(tr.tail),
                                 command=m(tr.command) if tr.command else tr.command, hint=m(tr.hint))
        self.tasks.append(tr)
        if host not in self.hosts:
            self.hosts.append(host)
        data: Mapping[str, Any] = doc.get("result") or {}
        lines = [report.task_line(tr)]
        no_log = bool(doc.get("no_log"))
        if tr.module == "debug" and tr.status == "ok" and tr.msg and not no_log:
            lines += ["  " + line for line in tr.msg.splitlines()] or ["  "]
        warnings: Any = data.get("warnings")
        if isinstance(warnings, list) and not no_log:
            lines += [f"  warning: {m(_text(w.get('msg') if isinstance(w, Mapping) else w))}" for w in warnings]
        diff = self._diffs.pop(host, "")
        if self.diff and diff.strip() and not no_log:
            lines += ["  " + line for line in m(diff).rstrip("\n").splitlines()]
        shown = detail(data) if not no_log else ""
        if shown:
            self.details.append(f"    {m(shown)}")
            if self.verbosity and tr.module != "debug":
                lines.append(f"  {m(shown)}")
        return [self._show(line) for line in lines]

    def _show(self, line: str | None) -> str:
        from infprov.playbooks import report

        return report.printable(line or "")

    def due(self, now: float) -> list[str]:
        """'still running' lines for tasks past their next report time."""
        from infprov.playbooks import report

        out = []
        for host, (task, began, next_at) in list(self.running.items()):
            if now >= next_at:
                self.running[host] = (task, began, next_at + SLOW_REPORT_EVERY)
                out.append(report.printable(f"{host}: {task} still running ({now - began:.0f} s)"))
        return out

    # ------------------------------------------------------------ the run's result
    def host_stats(self) -> tuple[dict[str, HostStats], dict[str, int]]:
        """Ansible's recap (its own counts when it got to the end; else counted from the results seen)."""
        stats: dict[str, HostStats] = {}
        rescued: dict[str, int] = {}
        if self.stats is not None:
            for host in [*self.hosts, *[h for h in self.stats if h not in self.hosts]]:
                counts = self.stats.get(host, {})  # (a host of a play none of whose tasks ran: all 0)
                stats[host] = HostStats(ok=counts.get("ok", 0), changed=counts.get("changed", 0),
                                        unreachable=counts.get("unreachable", 0), failed=counts.get("failed", 0),
                                        skipped=counts.get("skipped", 0), ignored=counts.get("ignored", 0))
                rescued[host] = counts.get("rescued", 0)
            return stats, rescued
        for host in self.hosts:
            stats[host], rescued[host] = HostStats(), 0
        for tr in self.tasks:
            stats.setdefault(tr.host, HostStats()).count(tr)
            rescued.setdefault(tr.host, 0)
        return stats, rescued

    def final_tasks(self, stats: Mapping[str, HostStats]) -> list[TaskResult]:
        """The results, a failure that a block's rescue caught marked `rescued` (the host did not fail on it):
        per host, all but its last `failed` count of unignored failures."""
        if self.stats is None:
            return list(self.tasks)
        out = list(self.tasks)
        for host, s in stats.items():
            failed = [i for i, t in enumerate(out) if t.host == host and t.status == "failed" and not t.ignored]
            keep = failed[len(failed) - s.failed:] if s.failed else []
            for i in failed:
                if i not in keep:
                    out[i] = dataclasses.replace(out[i], status="rescued")
        return out


def _event(kind: str, **kw: Any) -> Any:
    from infprov.playbooks.results import Event

    return Event(kind, **kw)


# ---------------------------------------------------------------- the run
@dataclass(frozen=True)
class AnsibleRun:
    """A user's playbook run by ansible-core: the engine's result shape, plus what only this path has."""

    result: RunResult
    rescued: dict[str, int]
    returncode: int
    interrupted: bool
    started: bool  # ansible-playbook read the playbook and began (False: it refused it, or could not start)
    ansible: str
    error: str = ""  # ansible-playbook's own last error, masked, as one line
    usage: bool = False  # that error was about the playbook or the command line (exit 2)

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.interrupted and self.result.ok

    def to_dict(self) -> dict[str, Any]:
        doc = self.result.to_dict()
        doc["ok"] = self.ok
        for host, stats in doc["stats"].items():
            stats["rescued"] = self.rescued.get(host, 0)
        doc.update({"engine": f"ansible-core {self.ansible}".strip(), "interrupted": self.interrupted,
                    "returncode": self.returncode})
        if self.error:
            doc["error"] = self.error
        return doc


def recap(run: AnsibleRun) -> str:
    """Ansible's PLAY RECAP block, with its rescued column."""
    result = run.result
    if not result.stats:
        return "PLAY RECAP: no hosts"
    width = max(len(h) for h in result.stats)
    lines = ["PLAY RECAP " + "*" * 40]
    for host, s in result.stats.items():
        lines.append(f"{host:<{width}} : ok={s.ok:<4} changed={s.changed:<4} unreachable={s.unreachable:<4} "
                     f"failed={s.failed:<4} skipped={s.skipped:<4} rescued={run.rescued.get(host, 0):<4} "
                     f"ignored={s.ignored}")
    mode = " (check mode: nothing was changed)" if result.check else ""
    took = f"{result.elapsed:.1f}" if result.elapsed >= 1 else f"{result.elapsed:.2f}"
    stopped = " (interrupted)" if run.interrupted else ""
    lines.append(f"{len(result.stats)} host(s) in {took} s with ansible-core {run.ansible}{mode}{stopped}")
    return "\n".join(lines)


_ERROR_HEAD = re.compile(r"^\[ERROR\]:\s*(.*)$|^ERROR!\s*(.*)$")
_ORIGIN = re.compile(r"^Origin:\s*(.+?)\s*$")


def ansible_error(lines: Sequence[str]) -> str:
    """ansible-playbook's last error as one line: `origin: message` (its source excerpt left out)."""
    found = ""
    for i, line in enumerate(lines):
        m = _ERROR_HEAD.match(line.strip())
        if not m:
            continue
        message = (m.group(1) or m.group(2) or "").strip()
        origin = ""
        for follow in lines[i + 1: i + 4]:
            o = _ORIGIN.match(follow.strip())
            if o:
                origin = o.group(1)
                break
        found = f"{origin}: {message}" if origin else message
    return found


def run_error(run: AnsibleRun) -> InfprovError | None:
    """The one error line a run ends with (None when it did what it was asked)."""
    result = run.result
    log = f"see the log {result.log_path}" if result.log_path else "rerun with -v to see more"
    if run.interrupted:
        return InfprovError("interrupted: ansible-playbook was stopped; the recap shows what ran", log, exit_code=130)
    if not run.started:
        text = run.error or f"ansible-playbook exited {run.returncode} before running the playbook"
        usage = run.usage or run.returncode in (4, 5)
        return InfprovError(text, "fix the playbook or the options" if usage else log, exit_code=2 if usage else 1)
    if not result.stats and (run.returncode == 0 or not run.error):
        return InfprovError("no host matched the playbook's `hosts` patterns",
                            "see `infprov inventory` for the cluster names")
    failures = [t for t in result.failures() if t.status in ("failed", "unreachable")]
    if failures or result.failed_hosts:
        first = failures[0] if failures else None
        where = f": {first.host}: {first.task}: {first.msg}" if first else ""
        hint = first.hint if first is not None and first.hint else log
        return InfprovError(f"{len(result.failed_hosts)} of {len(result.stats)} host(s) failed{where}", hint)
    if run.returncode != 0:
        return InfprovError(run.error or f"ansible-playbook exited {run.returncode}", log)
    return None


class _Lines:
    """Bytes from a pipe, split into lines as they come."""

    def __init__(self) -> None:
        self.buf = b""

    def feed(self, data: bytes) -> list[str]:
        self.buf += data
        *lines, self.buf = self.buf.split(b"\n")
        return [line.decode("utf-8", "replace") for line in lines]

    def rest(self) -> list[str]:
        out = [self.buf.decode("utf-8", "replace")] if self.buf else []
        self.buf = b""
        return out


def run(
    playbook: Path,
    inventory_path: Path,
    inv: Any,
    *,
    limit: str,
    forks: int,
    options: Options,
    home: Path,
    known_hosts: Path,
    runs_dir: Path | None,
    secrets: Mapping[str, Any],
    on_line: Callable[[str], None] | None = None,
    on_output: Callable[[str], None] | None = None,
    version: str = "",
) -> AnsibleRun:
    """Run the playbook with ansible-playbook and its events; Ctrl-C stops ansible-playbook's process group
    (SIGINT, then SIGTERM, then SIGKILL) and the result says what ran. on_line gets infprov's lines (one per
    host per task, and what belongs under them); on_output ansible-playbook's own (warnings, -v), masked."""
    from infprov.playbooks.masking import Masker
    from infprov.playbooks.results import Redactor

    start = time.monotonic()
    redactor = Redactor()
    masker = Masker()
    # (PWD and OLDPWD are folders: their names end in `pwd`, which masking's rule reads as a password)
    masker.learn_environ({k: v for k, v in os.environ.items() if k not in ("PWD", "OLDPWD")})
    redactor.learn([dict(secrets)])
    for host in inv.hosts:
        masker.learn_vars(inv.host_vars(host))

    def mask(text: str) -> str:
        return masker.mask(redactor(text)) if text else text

    def learn(variables: Mapping[str, Any]) -> None:
        redactor.learn([variables])
        masker.learn_vars(variables)

    run_id = new_run_id()
    places = Places.under(home, known_hosts, run_id)
    made_state = prepare(places)
    facts = HostKeyFacts(known_hosts, {h.name: (h.address, h.port) for h in inv.hosts})
    collector = Collector(mask=mask, learn=learn, verbosity=options.verbosity, diff=options.diff, facts=facts)
    log, log_path, made_runs = _open_log(runs_dir, playbook)
    cmd = argv(playbook, inventory_path, limit, options, forks)

    def write(text: str) -> None:
        if log is not None:
            log.write(f"{time.strftime('%H:%M:%S')} {text}\n")
            log.flush()

    write(mask(f"playbook {playbook}  check={options.check}  engine=ansible-core {version}"))
    write(mask("ansible-playbook: " + shlex.join(cmd[1:])))
    write(f"config: {places.config}")
    read_fd, write_fd = os.pipe()
    proc: subprocess.Popen[bytes] | None = None
    interrupted = False
    output: list[str] = []  # ansible-playbook's own lines (masked)
    held: list[str] = []  # ... held until it starts the playbook: a refusal becomes one error line instead
    try:
        try:
            proc = subprocess.Popen(cmd, env=environment(os.environ, places, write_fd), stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, pass_fds=(write_fd,),
                                    start_new_session=True)
        except OSError as exc:
            raise InfprovError(f"cannot start ansible-playbook: {exc.strerror}", INSTALL_HINT) from None
        finally:
            os.close(write_fd)
        assert proc.stdout is not None

        def shown(lines: list[str]) -> None:
            for line in lines:
                write(line)
                if on_line is not None:
                    on_line(line)

        def ansible_says(lines: list[str]) -> None:
            for raw in lines:
                line = mask(raw.rstrip("\r"))
                output.append(line)
                del output[:-400]
                write("ansible| " + line)
                if not collector.started:
                    held.append(line)
                elif on_output is not None and line.strip():
                    from infprov.playbooks import report

                    on_output(report.printable(line))

        def events(lines: list[str]) -> None:
            for raw in lines:
                if not raw.strip():
                    continue
                try:
                    doc = json.loads(raw)
                except ValueError:
                    write("event (unreadable): " + mask(raw[:200]))
                    continue
                was_started = collector.started
                got = collector.feed(doc)
                if collector.started and not was_started:
                    for line in held:
                        if on_output is not None and line.strip():
                            on_output(line)
                    held.clear()
                shown(got)

        interrupted = _pump(proc, read_fd, _Lines(), _Lines(), events, ansible_says,
                            lambda: shown(collector.due(time.monotonic())))
    finally:
        with contextlib.suppress(OSError):
            os.close(read_fd)
        if proc is not None and proc.poll() is None:
            _stop(proc)
        cleanup(places, made_state)
    returncode = proc.returncode if proc is not None else -1
    stats, rescued = collector.host_stats()
    result = RunResult(
        playbook=str(playbook), check=options.check, hosts=tuple(collector.hosts), stats=stats,
        tasks=tuple(collector.final_tasks(stats)), registered={}, log_path=log_path,
        elapsed=time.monotonic() - start,
    )  # fmt: skip
    error = ansible_error(output)
    usage = not collector.started and ("no hosts to target" in error or returncode in (4, 5))
    outcome = AnsibleRun(result=result, rescued=rescued, returncode=returncode, interrupted=interrupted,
                         started=collector.started, ansible=collector.ansible or version,
                         error=" ".join(error.split()), usage=usage)
    if log is not None:
        for line in collector.details:
            log.write(line + "\n")
        log.write("\n" + recap(outcome) + "\n")
        log.close()
    if usage and log_path is not None:  # refused before anything ran: no trace but the error line
        with contextlib.suppress(OSError):
            log_path.unlink()
            if made_runs:
                log_path.parent.rmdir()
        outcome = dataclasses.replace(outcome, result=dataclasses.replace(result, log_path=None))
    return outcome


def _pump(proc: subprocess.Popen[bytes], events_fd: int, ev: _Lines, out: _Lines,
          on_events: Callable[[list[str]], None], on_output: Callable[[list[str]], None],
          tick: Callable[[], None]) -> bool:
    """Read both pipes until ansible-playbook and its workers are gone; True if Ctrl-C stopped it."""
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(events_fd, selectors.EVENT_READ, "events")
    sel.register(proc.stdout.fileno(), selectors.EVENT_READ, "output")
    interrupted = False
    open_ = 2
    deadline: float | None = None
    while open_:
        try:
            ready = sel.select(timeout=0.5)
            for key, _ in ready:
                data = os.read(key.fd, 65536)
                split = ev if key.data == "events" else out
                if not data:
                    sel.unregister(key.fd)
                    open_ -= 1
                    lines = split.rest()
                else:
                    lines = split.feed(data)
                (on_events if key.data == "events" else on_output)(lines)
            tick()
            if deadline is not None and time.monotonic() > deadline:
                break  # something holds a pipe after the group was ended: stop reading
        except KeyboardInterrupt:
            if interrupted:  # a second Ctrl-C: no more waiting
                _signal_group(proc, signal.SIGKILL)
                deadline = time.monotonic() + 2
                continue
            interrupted = True
            _stop(proc)
            deadline = time.monotonic() + 5
    sel.close()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)
    if proc.poll() is None:
        _signal_group(proc, signal.SIGKILL)
        proc.wait()
    return interrupted


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """End ansible-playbook and everything in its process group: SIGINT (it stops as on a terminal's
    Ctrl-C), then SIGTERM, then SIGKILL."""
    for sig, grace in ((signal.SIGINT, STOP_GRACE[0]), (signal.SIGTERM, STOP_GRACE[1]), (signal.SIGKILL, 5.0)):
        _signal_group(proc, sig)
        try:
            proc.wait(timeout=grace)
            break
        except subprocess.TimeoutExpired:
            continue
    _signal_group(proc, signal.SIGKILL)  # its workers, should any outlive it


def _open_log(runs_dir: Path | None, playbook: Path) -> tuple[IO[str] | None, Path | None, bool]:
    """INFPROV_HOME/runs/<time>-play-<name>-<pid>.log, 0600 whatever the umask (no log rather than no run); and
    whether the runs folder was made now."""
    from infprov.floor import paths

    try:
        folder = runs_dir or paths.runs_dir(create=False)
        made = not os.path.lexists(folder)
        paths.private_dir(folder, role="runs folder")
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = folder / f"{stamp}-play-{playbook.stem}-{os.getpid()}.log"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        return os.fdopen(fd, "w", encoding="utf-8"), path, made
    except (OSError, InfprovError):
        return None, None, False


def syntax_check(playbook: Path, inventory_path: Path, home: Path, known_hosts: Path) -> str | None:
    """ansible-playbook --syntax-check (for an inventory without hosts: the playbook's own errors first)."""
    places = Places.under(home, known_hosts, new_run_id())
    made_state = prepare(places)
    read_fd, write_fd = os.pipe()
    try:
        proc = subprocess.run([sys.executable, "-m", "ansible.cli.playbook", "--syntax-check", "-i",
                               str(inventory_path), str(playbook)], env=environment(os.environ, places, write_fd),
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, pass_fds=(write_fd,),
                              timeout=300)  # fmt: skip
    finally:
        os.close(write_fd)
        os.close(read_fd)
        cleanup(places, made_state)
    if proc.returncode == 0:
        return None
    from infprov.playbooks.masking import mask_text

    lines = [mask_text(line) for line in (proc.stdout + proc.stderr).splitlines()]
    return " ".join(ansible_error(lines).split()) or f"ansible-playbook --syntax-check exited {proc.returncode}"
