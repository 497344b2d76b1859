"""Bench: a converged re-run of a 10-task playbook on 1 to N hosts, by infprov and (--ansible) by ansible-playbook.

Targets: one host <= 1.5 s; N hosts <= 1.3x one host up to 4 hosts, <= 2x beyond (32 hosts <= 2x one);
with --ansible, infprov >= 10x faster than ansible-playbook at every N.

Hosts: key-only sshd daemons on 127.0.0.1 started here (default; needs root; as many as the largest N),
or `--sandbox` to use the running sandbox fleet's first hosts (`infprov sandbox up --hosts N`).

    python -m bench.playbook [--hosts 1,4] [--runs 5] [--budget 60] [--rtt MS] [--ansible] [--json]
    python -m bench.playbook --hosts 1,4,16,32 --rtt 20 --ansible

For each N, in one run of the bench and on the same hosts and playbook (separate folders per engine):
  infprov      run_playbook() in this process (the engine alone, as the earlier figures were taken);
  infprov CLI  `infprov play --engine infprov --inventory ...` as a command (with --ansible: the like-for-like figure,
               start-up included, that the ratio uses);
  Ansible      `ansible-playbook -f N` with pipelining on and its default SSH multiplexing (ControlPersist
               60 s: the untimed first run leaves a master connection per host that the timed runs reuse,
               its best case), the inventory infprov writes, and the host keys infprov pinned.
Each case: one untimed run first (converges, pins keys, warms caches), then up to --runs timed re-runs,
stopping early once --budget seconds have gone by (at least one); every timed re-run must change nothing.
The median is reported.

Here the hosts' sshd and commands run on the same CPUs as the controller, so N hosts cannot finish
before their CPU time divided by the CPU count. The bench adds up the CPU time of its own processes
(the controller, the forwarders, the sshd daemons and what they ran; other users of the machine are
not counted) and prints the N/1 ratio that floor forces beside the measured one. On real instances
each host's share runs on that host's own CPUs.

--rtt MS puts forwarders that delay each direction by MS/2 between the controller and every host
(bench/delay_proxy.py, in a process of their own), like the network between a user's machine and a
region. Everything the bench starts (sshd daemons, forwarders, Ansible's SSH masters) is stopped at
the end, and the hosts' bench folders are removed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.delay_proxy import ProxyProcess
from infprov.inventory import store
from infprov.inventory.model import Host, Inventory
from infprov.playbooks.runner import run_playbook

TARGET_ONE = 1.5
TARGET_VS_ANSIBLE = 10.0
ANSIBLE_TIMEOUT = 900.0  # one ansible-playbook run; beyond that the bench gives up on it


def target_scaling(hosts: int) -> float:
    return 1.3 if hosts <= 4 else 2.0


# The shape of infprov's own playbooks (server.yml): an assert on the inventory's values, host checks whose
# output is registered, a folder, files from files/ (one, then a loop), keys read back and asserted, a step
# that reports its own change, a conditional step, and a command built from task vars with a `{% for %}`.
BOOK = """\
- name: ten tasks in server.yml's shape, converged
  hosts: all
  gather_facts: false
  vars:
    base: "/home/ubuntu/infprov-bench-{{ bench_id }}/{{ inventory_hostname }}"
    model_name: "rn50-{{ cores | default(4) }}neuroncores-default"
  tasks:
    - name: the variables are well-formed
      ansible.builtin.assert:
        that:
          - bench_id is match('^[0-9a-z-]+$')
          - (cores | default(4) | string) is match('^[0-9]+$')
        fail_msg: a malformed variable
        quiet: true
    - name: folder
      ansible.builtin.file: {path: "{{ base }}", state: directory, mode: "0755"}
    - name: a host check
      ansible.builtin.shell: |
        df -P {{ base }} >/dev/null || { echo "cannot read {{ base }}" >&2; exit 1; }
        ls -1 {{ base }} | sort
      register: listing
      changed_when: false
    - name: file from files/
      ansible.builtin.copy: {src: model.py, dest: "{{ base }}/model.py", mode: "0644"}
    - name: scripts from files/
      ansible.builtin.copy:
        src: "{{ item.src }}"
        dest: "{{ base }}/{{ item.dest }}"
        mode: "0755"
      loop:
        - {src: start.sh, dest: start.sh}
        - {src: compile.py, dest: compile.py}
      loop_control:
        label: "{{ item.dest }}"
    - name: the keys of what was copied
      ansible.builtin.shell: |
        cat {{ base }}/model.py {{ base }}/start.sh | sha256sum | cut -d' ' -f1
        { cat {{ base }}/compile.py; echo {{ model_name | quote }}; } | sha256sum | cut -d' ' -f1
      register: keys
      changed_when: false
    - name: the keys are well-formed
      ansible.builtin.assert:
        that:
          - keys.stdout_lines | length == 2
          - keys.stdout_lines[0] is match('^[0-9a-f]{64}$')
        quiet: true
    - name: generated once
      ansible.builtin.shell: |
        [ -e {{ base }}/stamp ] && { echo INFPROV_OK; exit 0; }
        echo {{ keys.stdout_lines[1] }} > {{ base }}/stamp && echo INFPROV_CHANGED
      register: stamp
      changed_when: "'INFPROV_CHANGED' in stamp.stdout"
    - name: only on a fresh folder
      ansible.builtin.command: cat {{ base }}/stamp
      when: "'stamp' not in listing.stdout_lines"
      changed_when: false
    - name: a command line from task vars
      ansible.builtin.shell: test -n {{ run_args | trim | quote }}
      vars:
        run_args: >-
          {% for f in ['model.py', 'start.sh'] %}-v {{ base }}/{{ f }} {% endfor %}
          -e MODEL_NAME={{ model_name }}
      changed_when: false
"""


class BenchError(Exception):
    """The bench cannot go on (a run failed, or a re-run was not converged)."""


def _book(folder: Path) -> Path:
    (folder / "files").mkdir(parents=True, exist_ok=True)
    (folder / "files" / "model.py").write_text("def execute(requests):\n    return requests\n" * 50)
    (folder / "files" / "start.sh").write_text("#!/bin/bash\nexec python3 compile.py \"$@\"\n")
    (folder / "files" / "compile.py").write_text("print('compiled')\n" * 20)
    path = folder / "bench.yml"
    path.write_text(BOOK)
    return path


def _sandbox_hosts(count: int) -> list[Host]:
    from infprov.sandbox import core

    hosts = [h for h in core.status()["hosts"] if h.get("healthy", True)]
    if len(hosts) < count:
        sys.exit(f"the sandbox has {len(hosts)} healthy host(s); run `infprov sandbox up --hosts {count}` first")
    return [
        Host(f"i-{h['name']}", h["address"], user=h["user"], key_file=h["key_file"], port=int(h["port"]))
        for h in hosts[:count]
    ]


def machine_cpu_seconds() -> float:
    """CPU time the whole machine has spent busy since boot (all CPUs, from /proc/stat)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    return (sum(values) - idle) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds(pids: Sequence[int]) -> float:
    """CPU time of this process, its waited-for children, and the given processes with their reaped children.

    An sshd daemon reaps each session it forked, and each session the commands it ran, so the daemon's
    cutime/cstime hold every finished session's CPU time.
    """
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": state is fields[0]
        total += sum(int(v) for v in fields[11:15]) / tick  # utime stime cutime cstime
    return total


@dataclass
class Case:
    """One engine on N hosts: every timed run's seconds and CPU time (the bench's own processes, machine)."""

    engine: str
    hosts: int
    times: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    machine_cpu: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def median_cpu(self) -> float:
        return statistics.median(self.cpu)

    def to_dict(self) -> dict[str, Any]:
        return {
            "median_s": round(self.median, 3),
            "runs_s": [round(t, 3) for t in self.times],
            "cpu_s": round(self.median_cpu, 3),
            "machine_cpu_s": round(statistics.median(self.machine_cpu), 3),
        }


def measure(
    engine: str, hosts: int, once: Callable[[bool], None], runs: int, budget: float, pids: Sequence[int] = ()
) -> Case:
    """An untimed first run (once(False)), then timed converged re-runs (once(True)) within runs and budget."""
    once(False)
    case = Case(engine, hosts)
    began = time.monotonic()
    while len(case.times) < runs and (not case.times or time.monotonic() - began < budget):
        cpu0, machine0 = own_cpu_seconds(pids), machine_cpu_seconds()
        start = time.perf_counter()
        once(True)
        case.times.append(time.perf_counter() - start)
        case.cpu.append(own_cpu_seconds(pids) - cpu0)
        case.machine_cpu.append(machine_cpu_seconds() - machine0)
    return case


class Engines:
    """Runs the bench playbook on the first n hosts: in this process, as `infprov play`, as `ansible-playbook`."""

    def __init__(self, book: Path, hosts: list[Host], work: Path, bench_id: str) -> None:
        self.book = book
        self.hosts = hosts
        self.work = work
        self.bench_id = bench_id
        self.home = work / "home"
        self.home.mkdir(mode=0o700, exist_ok=True)
        self.known_hosts = self.home / "known_hosts"
        self.control_dir = work / "ansible-cp"

    def infprov(self, n: int, converged: bool, forks: int | None = None) -> None:
        result = run_playbook(
            self.book, Inventory(tuple(self.hosts[:n])), extra_vars={"bench_id": self.bench_id}, forks=forks,
            known_hosts=self.known_hosts, runs_dir=self.home / "runs",
        )  # fmt: skip
        if not result.ok:
            raise BenchError(f"the bench playbook failed under infprov: {[f.to_dict() for f in result.failures()]}")
        if converged and result.changed:
            raise BenchError(f"a converged infprov re-run changed {result.changed} task(s)")

    def _inventory(self, n: int) -> Path:
        path = self.work / f"inventory-{n}.yml"
        ssh_args = f"-o UserKnownHostsFile={shlex.quote(str(self.known_hosts))} -o StrictHostKeyChecking=yes"
        hosts = tuple(Host(h.name, h.address, user=h.user, key_file=h.key_file, port=h.port, cluster="bench",
                           extra={"ansible_ssh_common_args": ssh_args}) for h in self.hosts[:n])  # fmt: skip
        path.write_text(store.dump(Inventory(hosts=hosts)))
        return path

    def infprov_cli(self, n: int, converged: bool) -> None:
        command = [sys.executable, "-c", "from infprov.provision.cli import app; app()", "play", str(self.book),
                   "--engine", "infprov", "--inventory", str(self._inventory(n)), "-e", f"bench_id={self.bench_id}",
                   "--json"]  # fmt: skip
        env = {**os.environ, "INFPROV_HOME": str(self.home)}
        proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=ANSIBLE_TIMEOUT)
        try:
            doc = json.loads(proc.stdout)
        except ValueError:
            raise BenchError(f"`infprov play` exited {proc.returncode}: {proc.stderr[-1500:]}") from None
        if proc.returncode != 0 or not doc["ok"] or len(doc["stats"]) != n:
            raise BenchError(f"`infprov play` failed: {doc['failures']}")
        changed = sum(s["changed"] for s in doc["stats"].values())
        if converged and changed:
            raise BenchError(f"a converged `infprov play` re-run changed {changed} task(s)")

    def ansible(self, n: int, converged: bool) -> None:
        env = {
            **os.environ,
            "ANSIBLE_PIPELINING": "True",
            "ANSIBLE_FORKS": str(n),
            "ANSIBLE_HOST_KEY_CHECKING": "True",
            "ANSIBLE_SSH_CONTROL_PATH_DIR": str(self.control_dir),
            "ANSIBLE_LOCAL_TEMP": str(self.work / "ansible-tmp"),
            "ANSIBLE_HOME": str(self.work / "ansible-home"),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_RETRY_FILES_ENABLED": "False",
            "ANSIBLE_DEPRECATION_WARNINGS": "False",
        }
        command = ["ansible-playbook", "-i", str(self._inventory(n)), "-f", str(n), "-e",
                   f"bench_id={self.bench_id}-ansible", str(self.book)]  # fmt: skip
        proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=ANSIBLE_TIMEOUT)
        recap = parse_recap(proc.stdout)
        if proc.returncode != 0 or len(recap) != n or any(s["failed"] or s["unreachable"] for s in recap.values()):
            raise BenchError(f"ansible-playbook exited {proc.returncode}: {proc.stdout[-2000:]} {proc.stderr[-1000:]}")
        changed = sum(s["changed"] for s in recap.values())
        if converged and changed:
            raise BenchError(f"a converged ansible-playbook re-run changed {changed} task(s)")

    def stop_ansible_masters(self) -> None:
        """End the SSH master connections ansible-playbook left behind (ControlPersist), each by its socket."""
        if not self.control_dir.is_dir():
            return
        for sock in self.control_dir.iterdir():
            subprocess.run(["ssh", "-o", f"ControlPath={sock}", "-O", "exit", "bench-host"],
                           capture_output=True, timeout=10, check=False)  # fmt: skip

    def clean_hosts(self, direct: list[Host]) -> None:
        from infprov.playbooks.connection import SshConnection

        for h in direct:
            conn = SshConnection(h, self.known_hosts)
            try:
                for suffix in ("", "-ansible"):
                    conn.run(f"sudo -n rm -rf /home/ubuntu/infprov-bench-{self.bench_id}{suffix}")
            finally:
                conn.close()


_RECAP = re.compile(r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


def parse_recap(stdout: str) -> dict[str, dict[str, int]]:
    """ansible-playbook's PLAY RECAP lines: per host, its ok/changed/unreachable/failed counts."""
    recap = stdout[stdout.find("PLAY RECAP"):] if "PLAY RECAP" in stdout else ""
    return {
        m.group(1): {"ok": int(m.group(2)), "changed": int(m.group(3)),
                     "unreachable": int(m.group(4)), "failed": int(m.group(5))}
        for m in _RECAP.finditer(recap)
    }  # fmt: skip


def _counts(text: str) -> list[int]:
    try:
        counts = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"--hosts wants host counts separated by commas, not {text!r}") from None
    if not counts or counts[0] < 1 or counts[-1] > 64:
        raise argparse.ArgumentTypeError("--hosts counts must be between 1 and 64")
    return counts if counts[0] == 1 else [1, *counts]  # every N is measured against one host


def run(args: argparse.Namespace) -> dict[str, Any]:
    counts: list[int] = args.hosts
    largest = counts[-1]
    load_before = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="infprov-bench-"))
    daemons: list[Any] = []
    pids: list[int] = []
    cases: dict[int, dict[str, Case]] = {n: {} for n in counts}
    serial: Case | None = None
    try:
        if args.sandbox:
            direct = _sandbox_hosts(largest)
        else:
            from tests import loopback_sshd

            reason = loopback_sshd.can_run()
            if reason:
                sys.exit(f"cannot start loopback sshd hosts: {reason}")
            daemons = loopback_sshd.start_hosts(work / "sshd", largest)
            direct = [Host(f"i-{d.name}", d.address, port=d.port, key_file=str(d.key_file)) for d in daemons]
            pids = [d.proc.pid for d in daemons if d.proc is not None]
        engines = Engines(_book(work / "book"), direct, work, uuid.uuid4().hex[:8])
        with contextlib.ExitStack() as stack:  # unwinds: Ansible's masters, the forwarders, the hosts' folders
            stack.callback(engines.clean_hosts, direct)
            if args.rtt:
                proxies = stack.enter_context(ProxyProcess([(h.address, h.port) for h in direct], args.rtt))
                pids.append(proxies.pid)
                engines.hosts = [Host(h.name, "127.0.0.1", user=h.user, key_file=h.key_file, port=port)
                                 for h, port in zip(direct, proxies.ports, strict=True)]  # fmt: skip
            stack.callback(engines.stop_ansible_masters)
            for n in counts:
                cases[n]["infprov"] = measure("infprov", n, lambda c, n=n: engines.infprov(n, c), args.runs,
                                              args.budget, pids)  # fmt: skip
                if args.ansible:
                    cases[n]["infprov_cli"] = measure("infprov_cli", n, lambda c, n=n: engines.infprov_cli(n, c),
                                                      args.runs, args.budget, pids)  # fmt: skip
                    cases[n]["ansible"] = measure("ansible", n, lambda c, n=n: engines.ansible(n, c),
                                                  args.ansible_runs, args.budget, pids)  # fmt: skip
            if args.serial:
                serial = measure("infprov_forks_1", largest, lambda c: engines.infprov(largest, c, forks=1),
                                 args.runs, args.budget, pids)  # fmt: skip
    finally:
        for d in daemons:
            d.stop()
        shutil.rmtree(work, ignore_errors=True)
    doc = report(args, cases, serial)
    doc["load_average_1m_before"] = round(load_before, 2)
    doc["hosts_folders"] = f"/home/ubuntu/infprov-bench-{engines.bench_id}{{,-ansible}} (removed)"
    return doc


def report(args: argparse.Namespace, cases: dict[int, dict[str, Case]], serial: Case | None) -> dict[str, Any]:
    cpus = os.cpu_count() or 1
    one = cases[1]["infprov"].median
    rows = []
    met = one <= TARGET_ONE
    for n, by in cases.items():
        mine = by["infprov"]
        scaling = mine.median / one
        # N hosts cannot finish before the CPU time of their run spread over every CPU
        floor = max(mine.median_cpu / cpus, one) / one
        row: dict[str, Any] = {
            "hosts": n,
            "infprov": mine.to_dict(),
            "scaling": round(scaling, 2),
            "scaling_target": target_scaling(n),
            "cpu_floor_s": round(mine.median_cpu / cpus, 3),
            "cpu_floor_scaling": round(floor, 2),
        }
        met = met and scaling <= target_scaling(n)
        if "ansible" in by:
            cli, theirs = by["infprov_cli"], by["ansible"]
            row["infprov_cli"] = cli.to_dict()
            row["ansible"] = theirs.to_dict()
            row["ansible_over_infprov"] = round(theirs.median / cli.median, 1)
            row["ansible_over_infprov_engine"] = round(theirs.median / mine.median, 1)
            met = met and theirs.median / cli.median >= TARGET_VS_ANSIBLE
        rows.append(row)
    doc: dict[str, Any] = {
        "hosts_from": "sandbox" if args.sandbox else "loopback sshd",
        "rtt_ms": args.rtt,
        "tasks": 10,
        "runs": args.runs,
        "ansible_runs": args.ansible_runs if args.ansible else 0,
        "budget_s": args.budget,
        "cases": rows,
        "cpus": cpus,
        "load_average_1m": round(os.getloadavg()[0], 2),
        "targets": {"one_host_s": TARGET_ONE, "scaling": "1.3 up to 4 hosts, 2.0 beyond",
                    "ansible_over_infprov": TARGET_VS_ANSIBLE if args.ansible else None},  # fmt: skip
        "met": met,
    }
    if serial is not None:
        doc["largest_one_at_a_time_s"] = round(serial.median, 3)
    return doc


def render(doc: dict[str, Any]) -> str:
    network = f", {doc['rtt_ms']:g} ms round trip emulated" if doc["rtt_ms"] else ""
    lines = [f"converged re-run, 10 tasks ({doc['hosts_from']}{network}); median of up to {doc['runs']} runs"
             + (f" ({doc['ansible_runs']} for Ansible)" if doc["ansible_runs"] else "")
             + f", at most ~{doc['budget_s']:g} s of timed runs per case:"]  # fmt: skip
    ansible = any("ansible" in r for r in doc["cases"])
    head = f"  {'hosts':>5}  {'infprov':>8}  {'N/1':>5} {'(target)':>8}  {'CPU floor N/1':>13}  {'CPU/run':>7}"
    if ansible:
        head += f"  {'infprov CLI':>11}  {'Ansible':>8}  {'Ansible/CLI':>11}"
    lines.append(head)
    for r in doc["cases"]:
        target = f"<= {r['scaling_target']}"
        line = (f"  {r['hosts']:>5}  {r['infprov']['median_s']:>7.3f}s  {r['scaling']:>5.2f} {target:>8}"
                f"  {r['cpu_floor_scaling']:>13.2f}  {r['infprov']['cpu_s']:>6.2f}s")  # fmt: skip
        if "ansible" in r:
            line += (f"  {r['infprov_cli']['median_s']:>10.3f}s  {r['ansible']['median_s']:>7.2f}s"
                     f"  {r['ansible_over_infprov']:>10.1f}x")  # fmt: skip
        lines.append(line)
    lines.append(f"  targets: one host <= {TARGET_ONE} s; N/1 as shown"
                 + (f"; Ansible/infprov CLI >= {TARGET_VS_ANSIBLE:g}x" if ansible else ""))  # fmt: skip
    lines.append("  CPU floor N/1: the ratio the bench's own CPU time per run (controller, forwarders, sshd and")
    lines.append(f"  commands; column CPU/run) forces when spread over this machine's {doc['cpus']} CPU(s)")
    if "largest_one_at_a_time_s" in doc:
        serial = doc["largest_one_at_a_time_s"]
        lines.append(f"  {doc['cases'][-1]['hosts']} hosts one at a time (forks 1): {serial:.3f} s")
    load = f"{doc['load_average_1m_before']} before, {doc['load_average_1m']} after"
    lines.append(f"  machine: {doc['cpus']} CPU(s), load average {load} (the hosts here share these CPUs)")
    lines.append("  targets met" if doc["met"] else "  TARGETS MISSED")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sandbox", action="store_true", help="use the running sandbox's first hosts")
    parser.add_argument("--hosts", type=_counts, default=[1, 4], metavar="N,N,...",
                        help="host counts to measure (1 is always added; default 1,4)")
    parser.add_argument("--runs", type=int, default=5, help="timed re-runs per infprov case (median is reported)")
    parser.add_argument("--ansible", action="store_true",
                        help="also run ansible-playbook (forks = N, pipelining) and `infprov play` on the same hosts")
    parser.add_argument("--ansible-runs", type=int, default=3, help="timed re-runs per Ansible case")
    parser.add_argument("--budget", type=float, default=60.0, metavar="S",
                        help="stop a case's timed re-runs after this many seconds (at least one run)")
    parser.add_argument("--serial", action="store_true", help="also time the largest N one host at a time")
    parser.add_argument("--rtt", type=float, default=0.0, metavar="MS",
                        help="emulate this round-trip time to every host (delaying forwarders on 127.0.0.1)")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args(argv)
    if args.rtt < 0:
        parser.error("--rtt must be 0 or more milliseconds")
    if args.runs < 1 or args.ansible_runs < 1:
        parser.error("--runs and --ansible-runs must be 1 or more")
    if args.budget <= 0:
        parser.error("--budget must be more than 0 seconds")
    if args.ansible and shutil.which("ansible-playbook") is None:
        parser.error("--ansible needs ansible-playbook on PATH (pip install ansible-core)")
    try:
        doc = run(args)
    except (BenchError, subprocess.TimeoutExpired) as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(doc, indent=2) if args.json else render(doc))
    return 0 if doc["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
