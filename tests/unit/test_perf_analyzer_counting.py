"""perf_analyzer's counting, tied to the record of upstream r22.04 (sandbox/upstream/perf-analyzer-r22.04.json).

perf_analyzer counts a request as -b inferences, whatever its tensor holds. Inf2/Trn1 serve a fixed-shape model
(max_batch_size 0, INPUT__0 of 8x3x224x224), for which it is given -b 1: its inferences/s is then requests/s, and
bench must multiply by the 8 images a request carries to report images/s as the client does (issue 22, item 3).
"""

from __future__ import annotations

import argparse
import ast
import csv
import io
import json
import shlex
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from infprov.client import results as rs
from infprov.client.tritonbench import report
from infprov.floor.errors import InfprovError
from infprov.provision import bench
from infprov.provision.benchplan import BenchPlan, Point
from infprov.sandbox import provenance

RECORD = "perf-analyzer-r22.04"
MIRROR = Path("/work/.mirror/triton-inference-server+client/repo")

INF2 = bench.ModelConfig(0, "INPUT__0", (8, 3, 224, 224), "OUTPUT__0")  # fixed shape: 8 images in every request
INF1 = bench.ModelConfig(64, "input", (224, 224, 3))  # batches of up to 64 images: -b carries them
FREE = bench.ModelConfig(0, "x", (-1, 3, 224, 224))  # no batching, a free leading dimension: --shape carries them


def _record() -> provenance.Record:
    return provenance.load(RECORD)


def _plan(tool: str = "perf_analyzer") -> BenchPlan:
    return BenchPlan(model="rn50-2neuroncores-default", points=(Point(0, 2),), limit_s=3.0, warmup=5, tool=tool,
                     neuron_cores=2)


def _recorded_inferences_per_s(valid_requests: int, b: int, window_s: float) -> float:
    """The record's throughput formula, evaluated as written there (names and * / only)."""
    rec = _record()
    lhs, rhs = (s.strip() for s in rec.fact("throughput_rule", "formula").split("=", 1))
    assert lhs == "inferences_per_s"
    tree = ast.parse(rhs, mode="eval")
    names = {"valid_requests": valid_requests, "batch": max(b, 1), "window_s": window_s}

    def value(node: ast.AST) -> float:
        if isinstance(node, ast.Name) and node.id in names:
            return float(names[node.id])
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
            return value(node.left) * value(node.right)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            return value(node.left) / value(node.right)
        raise AssertionError(f"the record's formula has {ast.dump(node)}, which this test does not evaluate")

    return value(tree.body)


def _csv(inferences_per_s: float, concurrency: int = 2, latency_us: tuple[int, ...] = (4000, 5000, 5500, 6000)) -> str:
    """A CSV with the record's columns, in the record's order, as perf_analyzer writes it (one row)."""
    rec = _record()
    columns = rec.fact("csv_columns")
    us = iter(latency_us)
    row: dict[str, Any] = {}
    for col in columns:
        if col == "Concurrency":
            row[col] = concurrency
        elif col == bench.PA_THROUGHPUT:
            row[col] = inferences_per_s
        elif col in rec.fact("latency_percentile_columns").values():
            row[col] = next(us)
        else:
            row[col] = 100  # the other breakdown columns, in us
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerow(row)
    return out.getvalue()


def _batch_flag(config: bench.ModelConfig, point: Point) -> int:
    """The -b that bench gives perf_analyzer for this model and point (read back from the command)."""
    args = shlex.split(bench._perf_analyzer_command(_plan(), point, "n", "/r/p.csv", config))
    return int(args[args.index("-b") + 1])


# ---------------------------------------------------------------- the record itself


def test_the_record_names_its_source_ref_and_files() -> None:
    rec = _record()
    prov = rec.provenance
    assert prov["source"] == "https://github.com/triton-inference-server/client"
    assert prov["ref"].startswith("r22.04 (") and len(prov["ref"].split("(")[1].rstrip(")")) == 40
    for name in ("inference_profiler.cc", "report_writer.cc"):
        assert f"src/c++/perf_analyzer/{name}" in prov["path"]
    assert "git show r22.04:" in prov["taken"] and prov["date"] == "2026-12-07"
    assert rec.fact("latency_unit") == "us"
    assert rec.fact("batch_flag", "default") == 1


# ---------------------------------------------------------------- what infprov reads is what the record says


def test_the_columns_infprov_reads_are_recorded_and_in_microseconds() -> None:
    rec = _record()
    columns = rec.fact("csv_columns")
    assert bench.PA_THROUGHPUT in columns
    assert set(bench.PA_LATENCY.values()) <= set(columns)
    assert rec.fact("latency_percentile_columns") == bench.PA_LATENCY
    assert set(bench.PA_LATENCY.values()) <= set(rec.fact("us_columns"))  # bench divides them by 1000 for ms
    assert bench.PA_THROUGHPUT not in rec.fact("us_columns")


def test_a_request_rate_point_uses_the_recorded_flags_for_one_constant_rate() -> None:
    """--request-rate-range R:R (one rate, the record: start and end equal), the recorded constant distribution
    (the client's default too), --threads as --max-threads, and never --concurrency-range beside it."""
    rec = _record()
    flags = rec.fact("request_rate_flags")
    assert flags["range"].startswith("--request-rate-range <start:end:step>") and "floating-point" in flags["range"]
    assert "default constant" in flags["distribution"] and flags["threads"].startswith("--max-threads")
    assert "--concurrency-range" in flags["not_with"]
    args = shlex.split(bench._perf_analyzer_command(_plan(), Point(16, 3, rate=12.5), "n", "/r/p.csv", INF1))
    assert args[args.index("--request-rate-range") + 1] == "12.5:12.5"
    assert args[args.index("--request-distribution") + 1] == "constant"
    assert args[args.index("--max-threads") + 1] == "3"
    assert "--concurrency-range" not in args
    plain = shlex.split(bench._perf_analyzer_command(_plan(), Point(16, 3), "n", "/r/p.csv", INF1))
    assert plain[plain.index("--concurrency-range") + 1] == "3:3" and "--request-rate-range" not in plain


def test_a_request_rate_run_is_read_from_its_csv_and_its_delayed_requests() -> None:
    """The record: a request-rate run's CSV starts with Request Rate instead of Concurrency, and each rate's report
    prints the requests that missed their schedule; either those or a rate answered 10 % short is behind."""
    rec = _record()
    assert "Request Rate instead of Concurrency" in rec.fact("csv_column_variants", "request_rate_run")
    assert "Delayed Request Count: N" in rec.fact("request_rate_flags", "delayed")
    text = _csv(200.0).replace("Concurrency,", "Request Rate,", 1)  # -b 16: 12.5 requests a second
    point = Point(16, 3, rate=12.5)
    kept = bench.perf_analyzer_results(text, "  Request count: 75\n", _plan(), point, INF1)
    assert kept["requests_per_s"] == pytest.approx(12.5) and kept["images_per_s"] == pytest.approx(200.0)
    assert kept["load"] == {"mode": "rate", "request_rate": 12.5, "distribution": "constant", "connections": 3,
                            "send_delay_p99_ms": None, "delayed_requests": 0, "behind": False}
    late = bench.perf_analyzer_results(text, "    Delayed Request Count: 7\n", _plan(), point, INF1)
    assert late["load"]["delayed_requests"] == 7 and late["load"]["behind"] is True
    short = bench.perf_analyzer_results(_csv(160.0).replace("Concurrency,", "Request Rate,", 1), "", _plan(), point,
                                        INF1)
    assert short["load"]["behind"] is True  # 10 requests a second of the 12.5 asked
    conc = bench.perf_analyzer_results(_csv(200.0), "", _plan(), Point(16, 3), INF1)
    assert conc["load"] == {"mode": "concurrency", "concurrency": 3}


def test_the_batch_infprov_passes_is_the_one_the_rule_counts() -> None:
    """-b 1 for both max_batch_size 0 models (the record: perf_analyzer refuses more there), -b = the batch for a
    batching model; the record's rule counts only that -b."""
    rec = _record()
    assert "refused above 1" in rec.fact("batch_flag", "max_batch_size_0")
    assert "only -b" in rec.fact("throughput_rule", "what_enters")
    assert _batch_flag(INF2, Point(8, 2)) == 1
    assert _batch_flag(FREE, Point(4, 2)) == 1
    assert _batch_flag(INF1, Point(16, 2)) == 16


# ---------------------------------------------------------------- the fix: images/s and requests/s


@pytest.mark.parametrize(("config", "batch", "images_per_request"), [
    (INF2, 8, 8),   # Inf2/Trn1: 8 images in the shape, -b 1
    (FREE, 4, 4),   # no batching, 4 images in a free leading dimension, -b 1
    (INF1, 16, 16),  # Inf1: 16 images as -b 16
    (INF1, 1, 1),
])
def test_images_and_requests_per_s_from_a_recorded_csv(config: bench.ModelConfig, batch: int,
                                                      images_per_request: int) -> None:
    point = Point(batch, 2)
    valid, window = 600, 3.0
    infer_s = _recorded_inferences_per_s(valid, _batch_flag(config, point), window)
    got = bench.perf_analyzer_results(_csv(infer_s), "Request count: 600\nAvg latency: 4500 usec", _plan(), point,
                                      config)
    assert got["requests_per_s"] == pytest.approx(valid / window)
    assert got["images_per_s"] == pytest.approx(valid * images_per_request / window)
    assert got["images_per_s"] == pytest.approx(got["requests_per_s"] * images_per_request)
    assert got["requests"] == valid and got["batch_size"] == batch
    assert got["latency_ms"] == {"p50": 4.0, "p75": None, "p90": 5.0, "p95": 5.5, "p99": 6.0, "mean": 4.5}


def test_a_fixed_shape_8_image_model_reports_8_times_the_inferences_per_s() -> None:
    """The issue's case: bench used to report perf_analyzer's inferences/s (= requests/s here) as images/s."""
    point = Point(INF2.batch_for(0), 2)
    assert point.batch_size == 8
    got = bench.perf_analyzer_results(_csv(125.0), "", _plan(), point, INF2)
    assert got["images_per_s"] == pytest.approx(8 * 125.0)
    assert got["requests_per_s"] == pytest.approx(125.0)
    priced = rs.with_cost(got, 0.7582)  # $/M images follows images/s
    assert priced["usd_per_million_images"] == pytest.approx(0.7582 / (1000.0 * 3600) * 1e6)


def test_perf_analyzer_and_the_client_count_the_same_run_alike() -> None:
    """The same requests in the same time give the same images/s and requests/s from either tool: the client
    counts batch_size images per request (report.results_dict), perf_analyzer -b inferences (the record)."""
    valid, window, threads = 480, 4.0, 2
    for config, batch in ((INF2, 8), (INF1, 16), (FREE, 4)):
        point = Point(batch, threads)
        infer_s = _recorded_inferences_per_s(valid, _batch_flag(config, point), window)
        pa = bench.perf_analyzer_results(_csv(infer_s), "", _plan(), point, config)
        workers = [SimpleNamespace(index=i, latencies=[0.005] * (valid // threads), errors={}, first_error={},
                                   error_count=0, started=0.0, finished=window) for i in range(threads)]
        args = argparse.Namespace(batch_size=batch, model_name="m", limit=window, warmup=0, shared_memory="none")
        client = report.results_dict(args, "127.0.0.1:8000", workers, window, 1.0, False, {}, {})  # type: ignore[arg-type]
        assert pa["images_per_s"] == pytest.approx(client["images_per_s"]), config
        assert pa["requests_per_s"] == pytest.approx(client["requests_per_s"]), config


def test_a_csv_without_the_recorded_columns_is_a_clear_error() -> None:
    text = "Concurrency,Throughput\n2,10\n"
    with pytest.raises(InfprovError, match="no column Inferences/Second, p50 latency"):
        bench.perf_analyzer_results(text, "", _plan(), Point(8, 2), INF2)
    with pytest.raises(InfprovError, match="no rows"):
        bench.perf_analyzer_results(_csv(1.0).splitlines()[0] + "\n", "", _plan(), Point(8, 2), INF2)


def test_the_record_is_valid_json_with_only_facts() -> None:
    doc = json.loads((provenance.FOLDER / f"{RECORD}.json").read_text())
    assert set(doc) == {"record", "provenance", "facts"}
    assert set(doc["provenance"]) == set(provenance.PROVENANCE_KEYS)
