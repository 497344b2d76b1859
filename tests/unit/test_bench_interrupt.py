"""Issue 26, item 2: nothing measured is lost. Each point comes home as it finishes (results.json and a
running summary.json), and Ctrl-C, once or more, stops the run without an exception: the finished points
stay, marked partial."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from infprov.provision import bench
from tests.unit.test_bench_security import fake_host, fake_ssh, own_home, plan  # noqa: F401  (fixtures)

HOST = "i-0123456789abcdef0"


def _summary(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "summary.json").read_text())


@pytest.mark.usefixtures("fake_ssh")
def test_each_point_is_saved_as_it_finishes(tmp_path: Path) -> None:
    run_dir = bench.make_run_dir(str(tmp_path / "r"), "all")
    seen: list[tuple[str, int]] = []

    def on_line(host: str, line: str) -> None:
        if line.startswith("point "):  # a pass begins: every earlier point is on disk already
            done = _summary(run_dir)["hosts"][0]["points"] if (run_dir / "summary.json").exists() else []
            seen.append((line.split(":")[0], len(done)))
            if done:
                assert _summary(run_dir)["running"] is True and _summary(run_dir)["partial"] is True
                kept = json.loads((run_dir / HOST / "results.json").read_text())
                assert len(kept.get("points", [kept])) == len(done)

    runs = bench.run([fake_host()], plan(sweep=["batch=16,32 threads=1,2"]), run_dir, on_line, tmp_path / "kh")
    assert seen == [("point 1/4", 0), ("point 2/4", 1), ("point 3/4", 2), ("point 4/4", 3)]
    summary = bench.write_fleet(run_dir, runs, True)
    assert summary["partial"] is False and summary["running"] is False and len(runs[0].points) == 4


@pytest.mark.usefixtures("fake_ssh")
def test_ctrl_c_twice_between_points_keeps_the_finished_ones(tmp_path: Path) -> None:
    """Real SIGINTs to this process, handled by bench's guard (as `infprov bench` installs it): no
    KeyboardInterrupt, one line for the first, one for the second, the run stops before the next point."""
    run_dir = bench.make_run_dir(str(tmp_path / "r"), "all")
    lines: list[str] = []

    def on_line(host: str, line: str) -> None:
        lines.append(line)
        if line.startswith("point 3/4"):
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)

    before = signal.getsignal(signal.SIGINT)
    with bench.Interrupts(on_line) as interrupts:
        runs = bench.run([fake_host()], plan(sweep=["batch=16,32 threads=1,2"]), run_dir, on_line,
                         tmp_path / "kh", interrupts=interrupts)
        summary = bench.write_fleet(run_dir, runs, True)
    assert signal.getsignal(signal.SIGINT) is before
    assert interrupts.count == 2
    [host] = summary["hosts"]
    assert host["partial"] is True and summary["partial"] is True and host["error"] == ""
    assert len(host["points"]) == 2  # points 1 and 2 (the fake client answers the same numbers for each)
    assert _summary(run_dir) == json.loads(json.dumps(summary, default=str))
    assert (run_dir / "sweep.png").exists()
    assert sum("Ctrl-C" in line for line in lines) == 2 and not any("interrupted" in line for line in lines)
    assert not any(line.startswith("point 4/4") for line in lines)
