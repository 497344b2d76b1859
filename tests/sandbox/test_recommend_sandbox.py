"""`infprov recommend` on the sandbox (issue 26, item 4): it launches what is missing, searches batch and
concurrency per type within the p99 budget, ranks by $ per million images, and leaves nothing tagged."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from infprov.provision.cli import app
from tests.procs import Child

pytestmark = pytest.mark.sandbox
runner = CliRunner()


def _nothing_left() -> None:
    status = runner.invoke(app, ["status", "--sandbox", "--json"])
    assert status.exit_code == 0, status.output
    alive = [i for c in json.loads(status.stdout)["clusters"] for i in c.get("instances", [])
             if i.get("state") in ("pending", "running", "stopping", "stopped")]
    assert alive == [], alive


def test_recommend_ranks_types_by_cost_at_the_budget_and_tears_down(sandbox_hosts: list[dict[str, Any]],
                                                                     cluster_home: Path) -> None:
    res = runner.invoke(app, ["recommend", "--types", "inf1.xlarge,inf2.xlarge", "--p99", "200ms", "--yes",
                              "--sandbox", "--limit", "2", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["budget_p99_ms"] == 200.0 and "ranking follows the price" in doc["note"]
    ranking = doc["ranking"]
    assert sorted(r["instance_type"] for r in ranking) == ["inf1.xlarge", "inf2.xlarge"]
    found = [r for r in ranking if r["usd_per_million_images"] is not None]
    assert found, ranking
    costs = [r["usd_per_million_images"] for r in found]
    assert costs == sorted(costs)
    for r in found:
        assert r["p99_ms"] <= 200.0 and r["images_per_s"] > 0 and r["error"] == ""
        assert r["usd_per_million_images"] == pytest.approx(r["hourly_usd"] / (r["images_per_s"] * 3600) * 1e6)
        assert 1 <= len(r["points"]) <= 12  # a bounded search, not the grid
    assert {t["cluster"] for t in doc["teardown"]} == {"rec-inf1-xlarge", "rec-inf2-xlarge"}
    assert all(t["instances"] and not t["left"] for t in doc["teardown"])
    _nothing_left()


def test_ctrl_c_during_recommend_still_tears_down(sandbox_hosts: list[dict[str, Any]], cluster_home: Path) -> None:
    run = Child.infprov("recommend", "--types", "inf1.xlarge", "--p99", "200ms", "--yes", "--sandbox",
                        "--limit", "2")
    try:
        run.wait_for("inf1.xlarge: batch 4, concurrency 1:")  # one point measured
        run.send(signal.SIGINT)
        code = run.finish(300)
    finally:
        run.kill()
    assert code == 1, run.out + run.err
    assert "tearing down rec-inf1-xlarge" in run.err and "torn down rec-inf1-xlarge: i-" in run.out
    assert "Traceback" not in run.err
    _nothing_left()
