"""bench/playbook.py's machinery on a tiny fleet (loopback sshd): it runs, reports every N, and leaves nothing behind.

No timing is asserted here; the figures are the bench's to print.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from bench import playbook as bench
from tests import loopback_sshd


def _live_children() -> list[int]:
    """Our child processes that are still running (zombies not counted)."""
    alive = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if int(ppid) == os.getpid() and state != "Z":
            alive.append(int(entry.name))
    return alive


def _run(capsys: pytest.CaptureFixture[str], args: list[str]) -> tuple[int, dict]:
    reason = loopback_sshd.can_run()
    if reason:
        pytest.skip(f"loopback sshd: {reason}")
    before = _live_children()
    code = bench.main(args)
    out = capsys.readouterr().out
    doc = json.loads(out)
    assert code == (0 if doc["met"] else 1)
    assert _live_children() == before, "the bench left sshd daemons or forwarders running"
    folders = re.match(r"(\S+)\{", doc["hosts_folders"])
    assert folders is not None
    assert not Path(folders.group(1)).exists() and not Path(folders.group(1) + "-ansible").exists()
    return code, doc


def test_bench_measures_one_and_n_hosts_behind_forwarders_and_stops_everything(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, doc = _run(capsys, ["--hosts", "2", "--runs", "1", "--budget", "1", "--rtt", "5", "--json"])
    assert [c["hosts"] for c in doc["cases"]] == [1, 2]  # one host is always measured: N/1 needs it
    for case in doc["cases"]:
        assert len(case["infprov"]["runs_s"]) == 1 and case["infprov"]["median_s"] > 0
        assert case["infprov"]["cpu_s"] > 0  # the sshd daemons' sessions are counted, not only ours
        assert case["cpu_floor_scaling"] >= 1.0 and "ansible" not in case
    assert doc["cases"][0]["scaling"] == 1.0 and doc["rtt_ms"] == 5


@pytest.mark.skipif(shutil.which("ansible-playbook") is None, reason="ansible-core is not installed")
def test_bench_runs_ansible_playbook_on_the_same_hosts(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--ansible", "--hosts", "1", "--runs", "1", "--ansible-runs", "1", "--budget", "1", "--json"]
    _, doc = _run(capsys, args)
    (case,) = doc["cases"]
    assert len(case["ansible"]["runs_s"]) == 1 and len(case["infprov_cli"]["runs_s"]) == 1
    assert case["ansible_over_infprov"] > 0


def test_recap_parser_reads_every_host_line() -> None:
    stdout = (
        "PLAY [ten tasks, converged] ****\n\nTASK [folder] ****\nok: [i-h1]\n\n"
        "PLAY RECAP *********************************************************************\n"
        "i-h1                       : ok=10   changed=0    unreachable=0    failed=0    skipped=0    rescued=0\n"
        "i-h2                       : ok=3    changed=1    unreachable=0    failed=1    skipped=0    rescued=0\n"
    )
    assert bench.parse_recap(stdout) == {
        "i-h1": {"ok": 10, "changed": 0, "unreachable": 0, "failed": 0},
        "i-h2": {"ok": 3, "changed": 1, "unreachable": 0, "failed": 1},
    }
    assert bench.parse_recap("ERROR! the playbook could not be read\n") == {}


@pytest.mark.parametrize("bad", ["0", "1,x", "65", ""])
def test_bad_host_counts_are_refused(bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        bench.main(["--hosts", bad])
    assert exit_.value.code == 2 and "--hosts" in capsys.readouterr().err
