"""`infprov bench` and `infprov results` against hostile input: --out, --model and host names never reach a
shell or a path unchecked, results are written atomically and privately, one corrupt run hides no other."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from infprov.provision.cli import app
from tests.unit.test_bench_security import HOSTILE_RUN, runner

# ---------------------------------------------------------------------------------------------- a fake host


# ---------------------------------------------------------------------------------------------- 1. the shell


# ---------------------------------------------------------------------------------------------- 2. host names


# ---------------------------------------------------------------------------------------------- 3. atomic files


# ---------------------------------------------------------------------------------------------- corrupt runs


# ---------------------------------------------------------------------------------------------- 4. --out


# ---------------------------------------------------------------------------------------------- 5. modes


# ---------------------------------------------------------------------------------------------- the sandbox
@pytest.mark.sandbox
def test_hostile_out_never_reaches_the_hosts_shell(sandbox_hosts: list[dict[str, Any]], cluster_home: Path,
                                                   tmp_path: Path) -> None:
    from infprov.sandbox import core

    up = runner.invoke(app, ["up", "--sandbox", "--type", "inf1.6xlarge", "--name", "benchsec", "--yes", "--json"])
    try:
        assert up.exit_code == 0, up.output
        hosts_dir = core.private_dir() / "hosts"
        logs = {log: log.stat().st_size for log in hosts_dir.glob("*/dockerd.log")}
        out = tmp_path / HOSTILE_RUN
        res = runner.invoke(app, ["bench", "--name", "benchsec", "--limit", "1", "--threads", "1", "--warmup", "1",
                                  "--out", str(out), "--json"])
        pwned = [str(p) for p in hosts_dir.glob("*/home/**/PWNED")]
        assert not pwned, f"the run's name ran as a command on the host: {pwned}"
        for log, size in logs.items():
            with log.open("rb") as fh:
                fh.seek(size)
                new = fh.read().decode("utf-8", "replace").lower()
            assert "pull" not in new and "images/create" not in new, f"{log}: {new[-2000:]}"
        assert res.exit_code == 0, res.output
        [host] = json.loads(res.stdout)["hosts"]
        assert host["error"] == "" and host["points"][0]["requests"] > 0
        hdir = out / host["instance_id"]
        assert json.loads((hdir / "results.json").read_text())["requests"] == host["points"][0]["requests"]
        assert "Unable to find image" not in (hdir / "output-0.txt").read_text()
        assert (out / "summary.json").stat().st_mode & 0o777 == 0o600
    finally:
        down = runner.invoke(app, ["teardown", "--sandbox", "--name", "benchsec", "--yes"])
        assert down.exit_code == 0, down.output
