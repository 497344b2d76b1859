"""Issue 26, item 4: `infprov recommend`'s search, budget and ranking, without hosts."""

from __future__ import annotations

from typing import Any

import pytest
from typer.testing import CliRunner

from infprov.floor.errors import UsageError
from infprov.provision import recommend
from infprov.provision.cli import app

runner = CliRunner()


def fake_server(per_request_ms: float, cores_rate: float) -> Any:
    """A server that serves `cores_rate` images/s at most; latency grows with batch and queueing."""
    calls: list[tuple[int, int]] = []

    def measure(batch: int, concurrency: int) -> dict[str, Any]:
        calls.append((batch, concurrency))
        ips = min(cores_rate, concurrency * batch * 1000.0 / (per_request_ms * batch))
        p99 = concurrency * batch * 1000.0 / ips * 1.2
        return {"batch_size": batch, "threads": concurrency, "images_per_s": ips, "latency_ms": {"p99": p99},
                "errors": 0}

    return measure, calls


def test_the_search_is_bounded_and_finds_the_best_within_budget() -> None:
    measure, calls = fake_server(per_request_ms=10.0, cores_rate=400.0)
    found = recommend.search(measure, [4, 8, 16], budget_ms=200.0)
    assert len(calls) <= recommend.MAX_POINTS and len(calls) < 3 * 7  # not the full grid
    assert found.best is not None and found.best["latency_ms"]["p99"] <= 200.0
    within = [p for p in found.tried if p["within_budget"]]
    assert found.best["images_per_s"] == max(p["images_per_s"] for p in within)
    assert all(p["latency_ms"]["p99"] > 200.0 for p in found.tried if not p["within_budget"])


def test_a_budget_no_point_meets_ends_the_search_early() -> None:
    measure, calls = fake_server(per_request_ms=500.0, cores_rate=10.0)
    found = recommend.search(measure, [4, 8, 16], budget_ms=50.0)
    assert found.best is None and calls == [(4, 1)]


def test_ranking_by_cost_per_million_images_at_the_budget() -> None:
    rows = [{"instance_type": "a", "usd_per_million_images": 2.0},
            {"instance_type": "b", "usd_per_million_images": None},
            {"instance_type": "c", "usd_per_million_images": 0.5}]
    assert [r["instance_type"] for r in recommend.rank(rows)] == ["c", "a", "b"]
    assert recommend.usd_per_million(100.0, 0.36) == pytest.approx(1.0)


@pytest.mark.parametrize("text,ms", [("200ms", 200.0), ("0.2s", 200.0), ("50", 50.0), (" 1.5 s ", 1500.0)])
def test_budget_parses(text: str, ms: float) -> None:
    assert recommend.parse_budget(text) == ms


@pytest.mark.parametrize("argv,message", [
    (["--types", "inf1.xlarge", "--p99", "fast"], "is not a latency"),
    (["--types", "inf1.xlarge", "--p99", "0ms"], "out of range"),
    (["--types", "m5.large", "--p99", "200ms"], "unknown instance type"),
    (["--types", "inf1.xlarge,inf1.xlarge", "--p99", "200ms"], "names a type twice"),
    (["--types", "inf1.xlarge", "--p99", "200ms", "--limit", "0.5"], "out of range"),
])
def test_bad_input_is_a_usage_error(argv: list[str], message: str) -> None:
    res = runner.invoke(app, ["recommend", *argv])
    assert res.exit_code == 2 and message in res.stderr, res.output


def test_types_and_batches() -> None:
    assert recommend.parse_types("inf1.xlarge, inf2.xlarge") == ["inf1.xlarge", "inf2.xlarge"]
    with pytest.raises(UsageError):
        recommend.parse_types(" , ")
    assert recommend.batches_for("inf1.6xlarge", 16) == [16, 32, 64]
    assert recommend.batches_for("inf2.xlarge", 2) == [0]
    assert recommend.cluster_name("inf1.xlarge") == "rec-inf1-xlarge"
