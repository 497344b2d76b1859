"""Bench: a converged re-run of a 10-task playbook on one host and on four (targets: <= 1.5 s; 4 hosts <= 1.3x).

Hosts: four key-only sshd daemons on 127.0.0.1 started here (default; needs root), or `--sandbox` to use the
running sandbox fleet's first four hosts (`infprov sandbox up --hosts 4`).

    python -m bench.playbook [--sandbox] [--runs 5] [--rtt MS] [--json]

Here the hosts' sshd and commands run on the same CPUs as the controller, so 4 hosts cannot finish
before their machine CPU time divided by the CPU count; the bench measures that CPU (/proc/stat) and
prints the ratio it forces. On real instances each host's share runs on that host's own CPUs.

--rtt MS puts a forwarder that delays each direction by MS/2 between the controller and every host
(bench/delay_proxy.py), like the network between a user's machine and a region: the setting in which
the hosts' own work no longer shares the controller's CPUs' time line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.delay_proxy import DelayProxy
from infprov.inventory.model import Host, Inventory
from infprov.playbooks.runner import RunResult, run_playbook

TARGET_ONE = 1.5
TARGET_RATIO = 1.3

BOOK = """\
- name: ten tasks, converged
  hosts: all
  gather_facts: false
  vars:
    base: "/home/ubuntu/infprov-bench-{{ bench_id }}/{{ inventory_hostname }}"
  tasks:
    - name: folder
      ansible.builtin.file: {path: "{{ base }}", state: directory, mode: "0755"}
    - name: config from content
      ansible.builtin.copy: {content: "port=8000\\n", dest: "{{ base }}/server.conf", mode: "0644"}
    - name: file from files/
      ansible.builtin.copy: {src: model.py, dest: "{{ base }}/model.py", mode: "0644"}
    - name: template
      ansible.builtin.template: {src: config.pbtxt.j2, dest: "{{ base }}/config.pbtxt", mode: "0644"}
    - name: a setting
      ansible.builtin.lineinfile: {path: "{{ base }}/env", line: "WORKERS=4", regexp: "^WORKERS=", create: true}
    - name: generated once
      ansible.builtin.shell: date > {{ base }}/stamp
      args: {creates: "{{ base }}/stamp"}
    - name: edit in place
      ansible.builtin.replace: {path: "{{ base }}/server.conf", regexp: "^port=9999$", replace: "port=8000"}
    - name: link
      ansible.builtin.file: {src: "{{ base }}/model.py", dest: "{{ base }}/current.py", state: link}
    - name: read-only check
      ansible.builtin.command: test -d {{ base }}
      changed_when: false
    - name: root-owned file
      ansible.builtin.copy: {content: "secret\\n", dest: "{{ base }}/root.txt", owner: root, mode: "0600"}
      become: true
"""


def _book(folder: Path) -> Path:
    (folder / "files").mkdir(parents=True, exist_ok=True)
    (folder / "templates").mkdir(exist_ok=True)
    (folder / "files" / "model.py").write_text("def execute(requests):\n    return requests\n" * 50)
    (folder / "templates" / "config.pbtxt.j2").write_text(
        'name: "{{ inventory_hostname }}"\nbackend: "python"\nmax_batch_size: 64\n'
    )
    path = folder / "bench.yml"
    path.write_text(BOOK)
    return path


def _sandbox_hosts() -> list[Host]:
    from infprov.provision.sandbox import core

    hosts = [h for h in core.status()["hosts"] if h.get("healthy", True)]
    if len(hosts) < 4:
        sys.exit(f"the sandbox has {len(hosts)} healthy host(s); run `infprov sandbox up --hosts 4` first")
    return [
        Host(f"i-{h['name']}", h["address"], user=h["user"], key_file=h["key_file"], port=int(h["port"]))
        for h in hosts[:4]
    ]


def machine_cpu_seconds() -> float:
    """CPU time the whole machine has spent busy since boot (all CPUs, from /proc/stat)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    return (sum(values) - idle) / os.sysconf("SC_CLK_TCK")


def _timed(
    book: Path, hosts: list[Host], work: Path, bench_id: str, runs: int, forks: int | None = None
) -> tuple[float, list[float], float]:
    """Median wall time of `runs` converged re-runs, every run's time, and the median machine CPU per run."""

    def once() -> tuple[float, RunResult]:
        start = time.perf_counter()
        result = run_playbook(
            book, Inventory(tuple(hosts)), extra_vars={"bench_id": bench_id}, forks=forks,
            known_hosts=work / "known_hosts", runs_dir=work / "runs",
        )  # fmt: skip
        return time.perf_counter() - start, result

    _, first = once()  # converge (and pin host keys)
    if not first.ok:
        sys.exit(f"the bench playbook failed: {[f.to_dict() for f in first.failures()]}")
    times = []
    cpus = []
    for _ in range(runs):
        cpu0 = machine_cpu_seconds()
        seconds, result = once()
        cpus.append(machine_cpu_seconds() - cpu0)
        if result.changed:
            sys.exit(f"a converged re-run changed {result.changed} task(s): the bench playbook is not idempotent")
        times.append(seconds)
    return statistics.median(times), times, statistics.median(cpus)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sandbox", action="store_true", help="use the running sandbox's first four hosts")
    parser.add_argument("--runs", type=int, default=5, help="timed re-runs per case (median is reported)")
    parser.add_argument("--rtt", type=float, default=0.0, metavar="MS",
                        help="emulate this round-trip time to every host (a delaying forwarder on 127.0.0.1)")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args(argv)
    if args.rtt < 0:
        parser.error("--rtt must be 0 or more milliseconds")

    work = Path(tempfile.mkdtemp(prefix="infprov-bench-"))
    daemons: list[Any] = []
    if args.sandbox:
        hosts = _sandbox_hosts()
    else:
        from tests import loopback_sshd

        reason = loopback_sshd.can_run()
        if reason:
            sys.exit(f"cannot start loopback sshd hosts: {reason}")
        daemons = loopback_sshd.start_hosts(work / "sshd", 4)
        hosts = [Host(f"i-{d.name}", d.address, port=d.port, key_file=str(d.key_file)) for d in daemons]
    bench_id = uuid.uuid4().hex[:8]
    direct = hosts
    proxies = contextlib.ExitStack()  # every forwarder started is stopped, even if a later one fails
    try:
        if args.rtt:
            hosts = [
                Host(h.name, "127.0.0.1", user=h.user, key_file=h.key_file,
                     port=proxies.enter_context(DelayProxy((h.address, h.port), args.rtt)).port)
                for h in direct
            ]
        book = _book(work / "book")
        one, one_all, one_cpu = _timed(book, hosts[:1], work, bench_id, args.runs)
        four, four_all, four_cpu = _timed(book, hosts, work, bench_id, args.runs)
        serial, _, _ = _timed(book, hosts, work, bench_id, args.runs, forks=1)
    finally:
        proxies.close()
        if direct:
            from infprov.playbooks.connection import SshConnection

            for h in direct:
                conn = SshConnection(h, work / "known_hosts")
                conn.run(f"sudo -n rm -rf /home/ubuntu/infprov-bench-{bench_id}")
                conn.close()
        for d in daemons:
            d.stop()
    ratio = four / one
    cpus = os.cpu_count() or 1
    # The hosts' sshd and commands run on this machine's CPUs too: 4 hosts cannot finish sooner than
    # their CPU time spread over every CPU, whatever the controller does.
    cpu_floor = four_cpu / cpus
    doc = {
        "hosts_from": "sandbox" if args.sandbox else "loopback sshd",
        "rtt_ms": args.rtt,
        "tasks": 10,
        "one_host_s": round(one, 3),
        "four_hosts_s": round(four, 3),
        "ratio": round(ratio, 2),
        "four_hosts_one_at_a_time_s": round(serial, 3),
        "machine_cpu_s": {"one_host": round(one_cpu, 3), "four_hosts": round(four_cpu, 3)},
        "four_hosts_cpu_floor_s": round(cpu_floor, 3),
        "cpu_floor_ratio": round(max(cpu_floor, one) / one, 2),
        "cpus": cpus,
        "load_average_1m": round(os.getloadavg()[0], 2),
        "runs": {"one_host": [round(t, 3) for t in one_all], "four_hosts": [round(t, 3) for t in four_all]},
        "targets": {"one_host_s": TARGET_ONE, "ratio": TARGET_RATIO},
        "met": one <= TARGET_ONE and ratio <= TARGET_RATIO,
    }
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        network = f", {args.rtt:g} ms round trip emulated" if args.rtt else ""
        print(f"converged re-run, 10 tasks ({doc['hosts_from']}{network}), median of {args.runs}:")
        print(f"  1 host : {one:.3f} s   (target <= {TARGET_ONE} s)")
        print(f"  4 hosts: {four:.3f} s   ratio {ratio:.2f} (target <= {TARGET_RATIO})")
        print(f"  4 hosts one at a time (--forks 1): {serial:.3f} s")
        print(f"  machine CPU per run (controller, sshd, commands): 1 host {one_cpu:.3f} s, 4 hosts {four_cpu:.3f} s")
        print(
            f"  4 hosts can finish no sooner than {cpu_floor:.3f} s ({four_cpu:.3f} s of CPU over {cpus} CPU(s)), "
            f"a ratio of at least {doc['cpu_floor_ratio']:.2f} on this machine"
        )
        print(f"  machine: {doc['cpus']} CPU(s), load average {doc['load_average_1m']} (hosts here share these CPUs)")
        print("  targets met" if doc["met"] else "  TARGETS MISSED")
    return 0 if doc["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
