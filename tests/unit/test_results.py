"""client/results.py: parsing the client's text output, checking results, writing JSON/CSV, cost."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from infprov.client import results

# The seed client's format (no totals, no p90/mean), with made-up numbers.
SEED_STYLE = """\
Model name = rn50-4neuroncores-default, batch size = 4
PASS: rn50-4neuroncores-default
##### Model inference time in ms: 20.5
##### WARMUP COMPLETE, NOW DO BENCHMARK #####
##### Model name: rn50-4neuroncores-default, Batch size: 4
RUN Thread 0 for 0:00:10 seconds
RUN Thread 1 for 0:00:10 seconds
>>> Running 2 threads
Thread 0: Completed 100 http requests in 10.000000 seconds.
Thread 0 Throughput per second: 40.0
Thread 0 Latency p50 in ms: 10.0
Thread 0 Latency p75 in ms: 12.0
Thread 0 Latency p95 in ms: 15.0
Thread 0 Latency p99 in ms: 20.0
Thread 1: Completed 300 http requests in 8.000000 seconds.
Thread 1 Throughput per second: 150.0
Thread 1 Latency p50 in ms: 6.0
Thread 1 Latency p75 in ms: 8.0
Thread 1 Latency p95 in ms: 11.0
Thread 1 Latency p99 in ms: 12.0
"""

# infprov's client adds p90/mean/errors per thread and the Total lines.
OURS = """\
Model name = m, batch size = 16
PASS: m
##### Model inference time in ms: 40.25
##### WARMUP COMPLETE, NOW DO BENCHMARK #####
##### Model name: m, Batch size: 16
RUN Thread 0 for 0:01:00 seconds
>>> Running 1 threads
Thread 0: Completed 50 http requests in 2.000000 seconds.
Thread 0 Throughput per second: 400.0
Thread 0 Latency p50 in ms: 30.0
Thread 0 Latency p75 in ms: 35.0
Thread 0 Latency p95 in ms: 45.0
Thread 0 Latency p99 in ms: 49.0
Thread 0 Latency p90 in ms: 40.0
Thread 0 Latency mean in ms: 33.0
Thread 0 Errors: 2
Total: Completed 50 http requests in 2.000000 seconds with 1 threads.
Total Throughput per second: 400.0
Total Requests per second: 25.0
Total Latency p50 in ms: 30.0
Total Latency p75 in ms: 35.0
Total Latency p90 in ms: 40.0
Total Latency p95 in ms: 45.0
Total Latency p99 in ms: 49.0
Total Latency mean in ms: 33.0
Total Errors: 2
Client CPU per request in ms: 1.25
FAIL: m: 2 of 52 requests: timeout: no progress for 60 s
"""


def good_results(**changes: Any) -> dict[str, Any]:
    base = results.results_from_output(SEED_STYLE)
    base.update(changes)
    return base


def test_seed_output_parses_into_threads() -> None:
    out = results.parse_client_output(SEED_STYLE)
    assert (out.model, out.batch_size, out.passed, out.first_latency_ms) == ("rn50-4neuroncores-default", 4, True, 20.5)
    assert out.limit_s == 10 and out.threads_announced == 2 and out.totals is None
    t0, t1 = out.threads
    assert (t0.thread, t0.requests, t0.seconds, t0.images_per_s) == (0, 100, 10.0, 40.0)
    assert t1.latency_ms == {"p50": 6.0, "p75": 8.0, "p90": None, "p95": 11.0, "p99": 12.0, "mean": None}
    assert t1.requests_per_s == pytest.approx(37.5)


def test_seed_output_totals_are_combined_from_threads() -> None:
    res = results.results_from_output(SEED_STYLE)
    assert res["requests"] == 400 and res["threads"] == 2
    assert res["duration_s"] == 10.0  # the longest thread
    assert res["images_per_s"] == pytest.approx(400 * 4 / 10.0)
    assert res["requests_per_s"] == pytest.approx(40.0)
    # request-weighted: (100 * 10 + 300 * 6) / 400
    assert res["latency_ms"]["p50"] == pytest.approx(7.0)
    assert res["latency_ms"]["p90"] is None and res["latency_ms"]["mean"] is None  # the seed never printed them
    assert res["latency_source"].startswith("request-weighted")
    assert results.validate_results(res) == []


def test_our_output_uses_the_clients_totals() -> None:
    res = results.results_from_output(OURS)
    assert res["latency_source"] == "client"
    assert res["latency_ms"] == {"p50": 30.0, "p75": 35.0, "p90": 40.0, "p95": 45.0, "p99": 49.0, "mean": 33.0}
    assert res["errors"] == 2 and res["per_thread"][0]["errors"] == 2
    assert res["passed"] is False and res["failures"] == ["m: 2 of 52 requests: timeout: no progress for 60 s"]
    assert res["cpu_ms_per_request"] == 1.25 and res["limit_s"] == 60
    assert results.validate_results(res) == []


def test_connection_test_output_is_one_request() -> None:
    res = results.results_from_output("Model name = m, batch size = 8\nPASS: m\n##### Model inference time in ms: 50\n")
    assert res["requests"] == 1 and res["per_thread"] == [] and res["passed"] is True
    assert res["latency_ms"]["p99"] == 50.0 and res["images_per_s"] == pytest.approx(8 / 0.05)


def test_parser_ignores_noise_and_crlf() -> None:
    noisy = "\r\n".join(["docker: pulling...", *SEED_STYLE.splitlines(), "Thread 7 Latency p50 in ms: oops", ""])
    out = results.parse_client_output(noisy)
    assert [t.thread for t in out.threads] == [0, 1]
    assert out.threads[0].latency_ms["p99"] == 20.0


def test_cut_off_output_keeps_complete_threads_only() -> None:
    cut = SEED_STYLE.split("Thread 1: Completed")[0] + "Thread 1 Latency p50 in ms: 3.0\n"
    out = results.parse_client_output(cut)
    assert [t.thread for t in out.threads] == [0]


def test_output_without_header_is_refused() -> None:
    with pytest.raises(results.ResultsError, match="Model name"):
        results.results_from_output("hello\n")


def test_nan_latency_becomes_none() -> None:
    text = OURS.replace("Thread 0 Latency p99 in ms: 49.0", "Thread 0 Latency p99 in ms: nan")
    assert results.parse_client_output(text).threads[0].latency_ms["p99"] is None


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
    points = [good_results(), results.results_from_output(OURS)]
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
