"""client/results.py: checking results, writing JSON/CSV, cost."""

from __future__ import annotations

import copy
import csv
import json
from pathlib import Path
from typing import Any

import pytest

from infprov.client import results


def _thread(thread: int, requests: int, seconds: float, batch: int, latency: dict[str, float | None],
            errors: int = 0) -> dict[str, Any]:
    return {"thread": thread, "requests": requests, "seconds": seconds, "images_per_s": requests * batch / seconds,
            "latency_ms": latency, "errors": errors, "requests_per_s": requests / seconds}


# Two threads, four images a request, made-up numbers (p90 and mean unknown, as a seed-style client leaves them).
TWO_THREADS = {
    "model": "rn50-4neuroncores-default", "batch_size": 4, "threads": 2, "limit_s": 10.0, "duration_s": 10.0,
    "requests": 400, "images_per_s": 160.0, "requests_per_s": 40.0,
    "latency_ms": {"p50": 7.0, "p75": 9.0, "p90": None, "p95": 12.0, "p99": 14.0, "mean": None},
    "latency_source": "request-weighted mean of per-thread percentiles",
    "per_thread": [
        _thread(0, 100, 10.0, 4, {"p50": 10.0, "p75": 12.0, "p90": None, "p95": 15.0, "p99": 20.0, "mean": None}),
        _thread(1, 300, 8.0, 4, {"p50": 6.0, "p75": 8.0, "p90": None, "p95": 11.0, "p99": 12.0, "mean": None}),
    ],
    "errors": 0, "failures": [], "passed": True, "partial": False, "cpu_ms_per_request": None,
}
# One thread of sixteen images a request, with every percentile, errors and a failure.
ONE_THREAD = {
    "model": "m", "batch_size": 16, "threads": 1, "limit_s": 60.0, "duration_s": 2.0, "requests": 50,
    "images_per_s": 400.0, "requests_per_s": 25.0,
    "latency_ms": {"p50": 30.0, "p75": 35.0, "p90": 40.0, "p95": 45.0, "p99": 49.0, "mean": 33.0},
    "latency_source": "client",
    "per_thread": [_thread(0, 50, 2.0, 16, {"p50": 30.0, "p75": 35.0, "p90": 40.0, "p95": 45.0, "p99": 49.0,
                                            "mean": 33.0}, errors=2)],
    "errors": 2, "failures": ["m: 2 of 52 requests: timeout: no progress for 60 s"], "passed": False,
    "partial": False, "cpu_ms_per_request": 1.25,
}


def good_results(**changes: Any) -> dict[str, Any]:
    base = copy.deepcopy(TWO_THREADS)
    base.update(changes)
    return base


def test_the_examples_hold_together() -> None:
    assert results.validate_results(good_results()) == []
    assert results.validate_results(ONE_THREAD) == []


@pytest.mark.parametrize(
    ("change", "problem"),
    [({"requests": 401}, "threads' requests sum to 400"),
     ({"threads": 3}, "per_thread has 2 entries"),
     ({"images_per_s": 170.0}, "images_per_s is 170"),
     ({"latency_ms": {"p50": 9.0, "p75": 8.0, "p90": None, "p95": 11.0, "p99": 12.0, "mean": None}},
      "not ordered"),
     ({"errors": -1}, "errors must be"),
     ({"batch_size": 0}, "batch_size must be")],
)
def test_validation_finds_inconsistencies(change: dict[str, Any], problem: str) -> None:
    found = results.validate_results(good_results(**change))
    assert any(problem in p for p in found), found


def test_validation_names_missing_fields_and_manifest() -> None:
    res = good_results()
    del res["latency_ms"]
    assert "missing field 'latency_ms'" in results.validate_results(res)
    full = results.with_manifest(good_results(), {"host": "10.0.0.2"})
    assert results.validate_results(full, require_manifest=True) == []
    assert "missing manifest" in results.validate_results(good_results(), require_manifest=True)


def test_thread_rate_checked_against_requests_and_time() -> None:
    res = good_results()
    res["per_thread"][1]["images_per_s"] = 1.0
    assert any("per_thread[1].images_per_s" in p for p in results.validate_results(res))


def test_manifest_has_every_key() -> None:
    full = results.with_manifest(good_results(), {"host": "h", "instance_type": "inf1.xlarge", "extra": 1})
    assert set(results.MANIFEST_FIELDS) <= set(full["manifest"])
    assert full["manifest"]["region"] is None and full["manifest"]["extra"] == 1


def test_cost_per_million_images() -> None:
    # 1000 images/s is 3.6 million an hour: at 3.60 USD/h that is 1 USD per million
    assert results.cost_per_million_images(1000.0, 3.6) == pytest.approx(1.0)
    # inf1.xlarge's price at 400 images/s
    assert results.cost_per_million_images(400.0, 0.228) == pytest.approx(0.228 / 1.44)
    assert results.cost_per_million_images(0.0, 0.228) is None
    with pytest.raises(ValueError):
        results.cost_per_million_images(10.0, -1.0)
    priced = results.with_cost(good_results(), 1.18)
    assert priced["usd_per_million_images"] == pytest.approx(1.18 / (160.0 * 3600) * 1e6)
    assert results.with_cost(good_results(), None)["usd_per_million_images"] is None


def test_write_results_single(tmp_path: Path) -> None:
    res = results.with_cost(results.with_manifest(good_results(), {"host": "h1", "started_at": "t0"}), 0.228)
    json_path, csv_path = results.write_results(tmp_path / "run1", res)
    assert json.loads(json_path.read_text()) == res
    rows = list(csv.DictReader(csv_path.open()))
    assert len(rows) == 1 and rows[0]["host"] == "h1" and float(rows[0]["images_per_s"]) == pytest.approx(160.0)
    assert rows[0]["latency_p90_ms"] == ""  # unknown stays empty, not "None"
    assert results.read_results(tmp_path / "run1") == [res]


def test_write_results_sweep(tmp_path: Path) -> None:
    points = [good_results(), copy.deepcopy(ONE_THREAD)]
    json_path, csv_path = results.write_results(tmp_path, points)
    assert json.loads(json_path.read_text())["points"] == points
    rows = list(csv.DictReader(csv_path.open()))
    assert [r["batch_size"] for r in rows] == ["4", "16"]
    assert list(rows[0]) == list(results.CSV_COLUMNS)
    assert results.read_results(json_path) == points


def test_write_refuses_inconsistent_results(tmp_path: Path) -> None:
    with pytest.raises(results.ResultsError, match="sum to 400"):
        results.write_results(tmp_path / "bad", good_results(requests=5))
    assert not (tmp_path / "bad" / "results.json").exists()


def test_client_json_is_accepted_and_checked() -> None:
    doc = good_results()
    assert results.results_from_client_json(json.dumps(doc)) == doc
    with pytest.raises(results.ResultsError, match="per_thread"):
        results.results_from_client_json({k: v for k, v in doc.items() if k != "per_thread"})
