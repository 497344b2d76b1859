"""The benchmark client against a real Triton server on 127.0.0.1 (the sandbox model and broken variants)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import types
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from infprov.client import build, results
from infprov.sandbox import localtriton
from tests.procs import Child, wait_until

# the client as hosts get it: one file built from the tritonbench package
CLIENT = build.write_zipapp(Path(tempfile.mkdtemp(prefix="infprov-client-")))
MODEL = localtriton.DEFAULT_MODEL
BATCH = 16

# The seed's lines, in the seed's words (FACTS.md); numbers as regular expressions.
NUM = r"[0-9.e+-]+"
SEED_LINES = [
    rf"^Model name = {MODEL}, batch size = {BATCH}$",
    rf"^PASS: {MODEL}$",
    rf"^##### Model inference time in ms: {NUM}$",
    r"^##### WARMUP COMPLETE, NOW DO BENCHMARK #####$",
    rf"^##### Model name: {MODEL}, Batch size: {BATCH}$",
    r"^RUN Thread 0 for 0:00:02 seconds$",
    r"^RUN Thread 1 for 0:00:02 seconds$",
    r"^>>> Running 2 threads$",
    *(rf"^Thread {i}: Completed \d+ http requests in {NUM} seconds\.$" for i in (0, 1)),
    *(rf"^Thread {i} Throughput per second: {NUM}$" for i in (0, 1)),
    *(rf"^Thread {i} Latency p{p} in ms: {NUM}$" for i in (0, 1) for p in (50, 75, 95, 99)),
]


@pytest.fixture(scope="module")
def server() -> Iterator[localtriton.LocalTriton]:
    """One local Triton for the module: the model, one answering the wrong shape, one answering NaN,
    and one that (like Inf1) refuses batches smaller than its 16 NeuronCores."""
    try:
        localtriton.pytriton_root()
    except Exception as exc:  # noqa: BLE001 - any reason the server cannot exist here
        pytest.skip(f"no local Triton server: {exc}")
    extra: dict[str, dict[str, object]] = {
        "rn50-broken-shape": {"broken_shape": True},
        "rn50-broken-values": {"broken_values": True},
        "rn50-strict-cores": {"neuron_cores": 16},
        "rn50-slow": {"delay_ms": 2000},
    }
    with localtriton.running(MODEL, extra_models=extra) as srv:
        yield srv


def run_client(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(CLIENT), *args], capture_output=True, text=True, timeout=timeout)


def assert_no_traceback(proc: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, proc.stderr


@pytest.fixture(scope="module")
def bench_run(server: localtriton.LocalTriton, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One benchmark run (batch 16, 2 threads, 2 s), shared by the checks of its output."""
    out = tmp_path_factory.mktemp("bench") / "client.json"
    proc = run_client("-m", MODEL, "-b", str(BATCH), "-k", "-l", "2", "-t", "2", "--url", server.url,
                      "--warmup", "2", "--json", str(out))
    return {"proc": proc, "json": json.loads(out.read_text())}


def test_sandbox_model_metadata_matches_the_neuron_model(server: localtriton.LocalTriton) -> None:
    with urllib.request.urlopen(f"http://{server.url}/v2/models/{MODEL}", timeout=10) as resp:
        meta = json.load(resp)
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 224, 224, 3]}]
    assert meta["outputs"] == [{"name": "output", "datatype": "FP32", "shape": [-1, 1000]}]


def test_connection_test_passes_and_parses(server: localtriton.LocalTriton, tmp_path: Path) -> None:
    out = tmp_path / "one.json"
    proc = run_client("-m", MODEL, "-b", str(BATCH), "-t", "1", "--url", server.url, "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == f"Model name = {MODEL}, batch size = {BATCH}"
    assert lines[1] == f"PASS: {MODEL}"
    assert re.match(rf"^##### Model inference time in ms: {NUM}$", lines[2])
    assert not any(line.startswith("Thread") for line in lines)  # one request, no benchmark
    doc = json.loads(out.read_text())
    assert doc["requests"] == 1 and doc["errors"] == 0 and doc["partial"] is False


def test_benchmark_keeps_the_seed_lines(bench_run: dict[str, Any]) -> None:
    proc = bench_run["proc"]
    assert proc.returncode == 0, proc.stderr
    for pattern in SEED_LINES:
        assert re.search(pattern, proc.stdout, re.MULTILINE), f"missing line {pattern!r}"
    seed_order = [line for line in proc.stdout.splitlines() if not line.startswith(("Thread", "Total", "Client"))]
    assert seed_order[:8] == [
        f"Model name = {MODEL}, batch size = {BATCH}", f"PASS: {MODEL}", seed_order[2],
        "##### WARMUP COMPLETE, NOW DO BENCHMARK #####", f"##### Model name: {MODEL}, Batch size: {BATCH}",
        "RUN Thread 0 for 0:00:02 seconds", "RUN Thread 1 for 0:00:02 seconds", ">>> Running 2 threads",
    ]


def test_benchmark_text_says_what_the_json_says(bench_run: dict[str, Any]) -> None:
    text, doc = bench_run["proc"].stdout, bench_run["json"]
    completed = {int(m[1]): int(m[2]) for m in re.finditer(r"^Thread (\d+): Completed (\d+) http requests", text,
                                                           re.MULTILINE)}  # fmt: skip
    assert completed == {t["thread"]: t["requests"] for t in doc["per_thread"]} and set(completed) == {0, 1}
    assert all(n > 0 for n in completed.values())
    # totals are the sums of the threads, in the text and in the JSON alike
    total = re.search(r"^Total: Completed (\d+) http requests", text, re.MULTILINE)
    assert total is not None and int(total[1]) == sum(completed.values()) == doc["requests"]
    for key in results.LATENCY_KEYS:
        shown = re.search(rf"^Total Latency {key} in ms: ({NUM})$", text, re.MULTILINE)
        assert shown is not None and float(shown[1]) == pytest.approx(doc["latency_ms"][key], rel=1e-5)
    shown = re.search(rf"^Total Throughput per second: ({NUM})$", text, re.MULTILINE)
    assert shown is not None and float(shown[1]) == pytest.approx(doc["images_per_s"], rel=1e-5)


def test_benchmark_json_holds_together(bench_run: dict[str, Any]) -> None:
    doc = bench_run["json"]
    assert results.validate_results(doc) == []
    assert doc["model"] == MODEL and doc["batch_size"] == BATCH and doc["threads"] == 2
    assert doc["limit_s"] == 2 and doc["errors"] == 0 and doc["partial"] is False
    for lat in [doc["latency_ms"], *(t["latency_ms"] for t in doc["per_thread"])]:
        values = [lat[k] for k in results.PERCENTILE_KEYS]
        assert values == sorted(values) and values[0] > 0
    assert doc["images_per_s"] == pytest.approx(doc["requests"] * BATCH / doc["duration_s"], rel=1e-9)
    for t in doc["per_thread"]:
        assert t["images_per_s"] == pytest.approx(t["requests"] * BATCH / t["seconds"], rel=1e-9)
    assert doc["cpu_ms_per_request"] > 0


@pytest.mark.parametrize(
    ("model", "reason"),
    [("rn50-broken-shape", "output shape [16, 999], expected [16, 1000]"),
     ("rn50-broken-values", "non-finite values")],
)
def test_wrong_answers_fail(server: localtriton.LocalTriton, tmp_path: Path, model: str, reason: str) -> None:
    out = tmp_path / "r.json"
    proc = run_client("-m", model, "-b", str(BATCH), "-k", "-l", "1", "-t", "2", "--url", server.url,
                      "--json", str(out))
    assert proc.returncode == 1
    assert_no_traceback(proc)
    fail = [line for line in proc.stdout.splitlines() if line.startswith("FAIL:")]
    assert fail and reason in fail[0] and model in fail[0]
    assert "PASS" not in proc.stdout
    doc = json.loads(out.read_text())
    assert doc["errors"] >= 1 and doc["error_kinds"] == {"bad output": doc["errors"]}


def test_server_errors_are_counted_not_raised(server: localtriton.LocalTriton) -> None:
    # the model itself refuses a batch below its 16 cores: the server answers with an error
    proc = run_client("-m", "rn50-strict-cores", "-b", "4", "-t", "1", "--url", server.url, "--allow_small_batch")
    assert proc.returncode == 1
    assert_no_traceback(proc)
    assert re.search(r"^FAIL: rn50-strict-cores: http [45]\d\d: .*smaller than the 16 NeuronCores", proc.stdout,
                     re.MULTILINE), proc.stdout


def test_timeouts_are_counted_not_raised(server: localtriton.LocalTriton) -> None:
    # the model answers after 2 s; the client gives up after 0.3 s without progress
    proc = run_client("-m", "rn50-slow", "-b", str(BATCH), "-t", "1", "--url", server.url, "--timeout", "0.3")
    assert proc.returncode == 1
    assert_no_traceback(proc)
    assert "FAIL: rn50-slow: timeout: no progress for 0.3 s" in proc.stdout


def test_unknown_model_lists_the_repository(server: localtriton.LocalTriton) -> None:
    proc = run_client("-m", "resnet-nope", "-b", str(BATCH), "-t", "1", "--url", server.url)
    assert proc.returncode == 2
    assert_no_traceback(proc)
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and "unknown model 'resnet-nope'" in err[0]
    for name in (MODEL, "rn50-broken-shape", "rn50-broken-values", "rn50-strict-cores"):
        assert f"{name} (READY)" in err[0]


@pytest.mark.parametrize(
    ("args", "cores"),
    [(["-m", MODEL, "-b", "8"], "16 NeuronCores (from the model name)"),
     (["-m", MODEL, "-b", "2", "--neuron_cores", "4"], "4 NeuronCores (from --neuron_cores)")],
)
def test_batch_below_neuron_cores_is_refused(server: localtriton.LocalTriton, args: list[str], cores: str) -> None:
    proc = run_client(*args, "-t", "1", "--url", server.url)
    assert proc.returncode == 2
    assert cores in proc.stderr and "splits each batch" in proc.stderr and "--allow_small_batch" in proc.stderr
    assert "PASS" not in proc.stdout


def test_small_batch_allowed_on_request(server: localtriton.LocalTriton) -> None:
    proc = run_client("-m", MODEL, "-b", "2", "-t", "1", "--url", server.url, "--allow_small_batch")
    assert proc.returncode == 0, proc.stderr
    assert f"PASS: {MODEL}" in proc.stdout


def test_unreachable_server_is_one_line() -> None:
    port = localtriton.free_port()  # nobody listens there
    proc = run_client("-m", MODEL, "-b", str(BATCH), "-k", "-t", "2", "--url", f"127.0.0.1:{port}")
    assert proc.returncode == 1
    assert_no_traceback(proc)
    err = proc.stderr.strip().splitlines()
    assert err == [f"ERROR: cannot reach Triton at 127.0.0.1:{port}: Connection refused"]


@pytest.mark.parametrize(
    "args",
    [["-b", "16"],  # no -t
     ["-b", "16", "-t", "2", "--concurrency", "3"],
     ["-b", "0", "-t", "1"],
     ["-b", "16", "-t", "1", "-l", "0"],
     ["-b", "16", "-t", "1", "--url", "http://127.0.0.1:9/v2"]],
)
def test_bad_usage_exits_2_before_any_request(args: list[str]) -> None:
    # checked before any request: nothing listens on port 9, and that is never reached
    proc = run_client("-m", MODEL, *(args if "--url" in args else [*args, "--url", "127.0.0.1:9"]))
    assert proc.returncode == 2
    assert_no_traceback(proc)
    assert proc.stderr.strip().startswith("ERROR: ")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_writes_partial_results(server: localtriton.LocalTriton, tmp_path: Path, signum: int) -> None:
    out = tmp_path / "partial.json"
    threads = 2
    child = Child([sys.executable, str(CLIENT), "-m", MODEL, "-b", str(BATCH), "-k", "-l", "600", "-t", str(threads),
                   "--url", server.url, "--json", str(out)])
    try:
        # the warm-up is over once the client says it measures; then more answers than it has threads mean
        # one at least was taken in (a thread sends its next request only after taking in the last answer)
        child.wait_for("Measuring in windows", stream="out")
        base = _served(server.url)
        _wait_served(server.url, base + threads + 1)
        child.send(signum)
        child.finish(120)
    finally:
        child.kill()
    proc, err, rest = child.proc, child.err, child.out
    assert proc.returncode == 130
    assert "Traceback" not in err
    doc = json.loads(out.read_text())
    assert doc["partial"] is True and doc["limit_s"] == 600
    assert doc["requests"] >= 1 and doc["requests"] == sum(t["requests"] for t in doc["per_thread"])
    assert results.validate_results(doc) == []
    assert f"INTERRUPTED by {signal.Signals(signum).name}" in rest
    assert re.search(r"^Thread 0: Completed \d+ http requests", rest, re.MULTILINE)  # the per-thread lines too


def _served(url: str) -> int:
    with urllib.request.urlopen(f"http://{url}/v2/models/{MODEL}/stats", timeout=10) as resp:
        return int(json.load(resp)["model_stats"][0]["inference_stats"]["success"]["count"])


def _wait_served(url: str, count: int) -> None:
    """Poll the server's own counter (no sleeping on a guess of how fast this machine is)."""
    wait_until(f"the server answering {count} requests", lambda: _served(url) >= count, every=0.01)


def test_shared_memory_input_is_checked_and_removed(server: localtriton.LocalTriton, tmp_path: Path) -> None:
    out = tmp_path / "shm.json"
    proc = subprocess.Popen(
        [sys.executable, str(CLIENT), "-m", MODEL, "-b", str(BATCH), "-k", "-l", "1", "-t", "2", "--url", server.url,
         "--shared_memory", "system", "--json", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    doc = json.loads(out.read_text())
    assert doc["shared_memory"] == "system" and doc["requests"] > 0 and doc["errors"] == 0
    assert results.validate_results(doc) == []
    # the client's region is gone from the server and from /dev/shm
    req = urllib.request.Request(f"http://{server.url}/v2/systemsharedmemory/status", method="GET")
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert json.load(resp) == []
    assert not Path(f"/dev/shm/infprov-input-{proc.pid}").exists()
    # and the broken model still fails through shared memory
    broken = run_client("-m", "rn50-broken-shape", "-b", str(BATCH), "-t", "1", "--url", server.url,
                        "--shared_memory", "system")
    assert broken.returncode == 1 and "FAIL: rn50-broken-shape" in broken.stdout


# ----------------------------------------------------------------------------- tritonclient does the protocol

OTHER_PYTHONS = [p for p in os.environ.get("INFPROV_CLIENT_PYTHONS", "").split(os.pathsep) if p]


@pytest.mark.skipif(not OTHER_PYTHONS, reason="INFPROV_CLIENT_PYTHONS names no other interpreter (e.g. Python 3.8 "
                                              "with tritonclient 2.21.0, as in the 22.04 SDK container)")
@pytest.mark.parametrize("python", OTHER_PYTHONS or ["none"])
def test_client_runs_under_other_interpreters(server: localtriton.LocalTriton, tmp_path: Path, python: str) -> None:
    out = tmp_path / "other.json"
    proc = subprocess.run([python, str(CLIENT), "-m", MODEL, "-b", str(BATCH), "-k", "-l", "1", "-t", "2",
                           "--url", server.url, "--json", str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())
    assert doc["requests"] > 0 and doc["errors"] == 0 and results.validate_results(doc) == []
    broken = subprocess.run([python, str(CLIENT), "-m", "rn50-broken-shape", "-b", str(BATCH), "-t", "1",
                             "--url", server.url, "--shared_memory", "system"], capture_output=True, text=True,
                            timeout=120)
    assert broken.returncode == 1 and "output shape [16, 999], expected [16, 1000]" in broken.stdout
    assert_no_traceback(broken)
    # the load modes beyond threads too (request rate with poisson gaps; a concurrency range)
    for load, check in ((["-t", "2", "--request_rate", "10", "--request_distribution", "poisson"],
                         lambda d: d["load"]["mode"] == "rate" and d["requests"] > 0),
                        (["--concurrency_range", "1:2"], lambda d: [p["threads"] for p in d["points"]] == [1, 2])):
        proc = subprocess.run([python, str(CLIENT), "-m", MODEL, "-b", str(BATCH), "-k", "-l", "1", *load,
                               "--url", server.url, "--json", str(out)], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert check(json.loads(out.read_text())), out.read_text()


@pytest.fixture(scope="module")
def client_module() -> Any:
    """The client's modules as one namespace (as the single file used to be)."""
    from infprov.client.tritonbench import cli, load, protocol, report, transport

    merged: dict[str, Any] = {}
    for module in (transport, protocol, load, report, cli):
        merged.update(vars(module))
    return types.SimpleNamespace(**merged)


def _head_lines(part: memoryview) -> list[str]:
    head = bytes(part)
    assert head.endswith(b"\r\n\r\n")
    return head.decode("latin-1").split("\r\n")[:-2]


def test_the_request_is_tritonclient_s(client_module: Any) -> None:
    import tritonclient.http as httpclient

    images = np.random.default_rng(1).random((2, 4, 4, 3), dtype=np.float32)
    inference = client_module.Inference("rn50/x", "input", "output", images, "FP32", 10, "127.0.0.1", 8000)
    head, body = inference.parts
    tensor = httpclient.InferInput("input", [2, 4, 4, 3], "FP32")
    tensor.set_data_from_numpy(images, binary_data=True)
    expected, json_size = httpclient.InferenceServerClient.generate_request_body(
        [tensor], outputs=[httpclient.InferRequestedOutput("output", binary_data=True)])
    assert bytes(body) == expected
    lines = _head_lines(head)
    assert lines[0] == "POST /v2/models/rn50%2Fx/infer HTTP/1.1"
    for line in ("Host: 127.0.0.1:8000", f"Content-Length: {len(expected)}", "Content-Type: application/octet-stream",
                 f"Inference-Header-Content-Length: {json_size}"):
        assert line in lines
    # with shared memory the body is all JSON, naming the region
    shared = client_module.Inference("rn50", "input", "output", images, "FP32", 10, "127.0.0.1", 8000, region="r1")
    head, body = shared.parts
    lines = _head_lines(head)
    assert "Content-Type: application/json" in lines
    assert not any(line.startswith("Inference-Header-Content-Length") for line in lines)
    params = json.loads(bytes(body))["inputs"][0]["parameters"]
    assert params == {"shared_memory_region": "r1", "shared_memory_byte_size": images.nbytes}


def test_the_client_frames_no_protocol_of_its_own() -> None:
    source = "".join(p.read_text() for p in sorted(build.PACKAGE.glob("*.py")))
    for text in ("binary_data_size", "json.loads", "HTTP/1.1\\r\\n", "/repository/index", "systemsharedmemory/"):
        assert text not in source, f"the client spells {text!r} itself: tritonclient or http.client should"


class ScriptedServer:
    """A TCP server on 127.0.0.1 answering inference requests as its script says; for the hand-kept transport.

    Steps: "ok" (an answer, connection kept), "ok-then-close" (an answer, then the server closes as if idle),
    "ok-close-header" (an answer with Connection: close), "drop" (close without an answer), "chunked".
    """

    def __init__(self, script: list[str], batch: int, classes: int) -> None:
        self.script = list(script)
        self.batch, self.classes = batch, classes
        self.connections = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.listener.close()
        self.thread.join(timeout=10)

    def _serve(self) -> None:
        with contextlib.suppress(OSError):
            while self.script:
                conn, _ = self.listener.accept()
                self.connections += 1
                with conn:
                    while self.script and self._read_request(conn):
                        step = self.script.pop(0)
                        if step == "drop":
                            break
                        conn.sendall(self._answer(step))
                        if step != "ok":
                            break

    @staticmethod
    def _read_request(conn: socket.socket) -> bool:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return False
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
        while len(rest) < length:
            rest += conn.recv(65536)
        return True

    def _answer(self, step: str) -> bytes:
        values = np.ones((self.batch, self.classes), dtype=np.float32).tobytes()
        header = json.dumps({"model_name": "m", "model_version": "1", "outputs": [
            {"name": "output", "datatype": "FP32", "shape": [self.batch, self.classes],
             "parameters": {"binary_data_size": len(values)}}]}).encode()
        body = header + values
        head = f"HTTP/1.1 200 OK\r\nInference-Header-Content-Length: {len(header)}\r\n"
        if step == "chunked":
            chunk = b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n"
            return (head + "Transfer-Encoding: chunked\r\n\r\n").encode() + chunk
        if step == "ok-close-header":
            head += "Connection: close\r\n"
        return (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def _scripted(client_module: Any, script: list[str]) -> tuple[ScriptedServer, Any, Any]:
    images = np.zeros((2, 4, 4, 3), dtype=np.float32)
    srv = ScriptedServer(script, 2, 10)
    inference = client_module.Inference("m", "input", "output", images, "FP32", 10, "127.0.0.1", srv.port)
    return srv, inference, client_module.Connection("127.0.0.1", srv.port, 10.0)


def test_transport_reopens_a_connection_the_server_closed(client_module: Any) -> None:
    srv, inference, conn = _scripted(client_module, ["ok-then-close", "ok-close-header", "ok"])
    try:
        for _ in range(3):  # the second request finds the connection closed: sent again on a new one, once
            assert client_module.checked_call(inference, conn).shape == (2, 10)
        assert srv.connections == 3
    finally:
        conn.close()
        srv.close()


@pytest.mark.parametrize(("step", "kind"), [("drop", "connection"), ("chunked", "protocol")])
def test_transport_failures_are_counted_kinds(client_module: Any, step: str, kind: str) -> None:
    srv, inference, conn = _scripted(client_module, [step])
    try:
        with pytest.raises(client_module.RequestFailed) as failed:
            client_module.checked_call(inference, conn)
        assert failed.value.kind == kind and srv.connections == 1  # a fresh connection is not tried again
        assert conn.sock is None
    finally:
        conn.close()
        srv.close()


def test_windows_until_stable_and_the_unstable_point_says_so(server: localtriton.LocalTriton, tmp_path: Path) -> None:
    """Issue 26, item 1: windows of limit/N s until the last N agree within P %, at most max_trials; the
    result covers the last N windows and says whether they agreed, their spread and the host's load."""
    easy, hard = tmp_path / "easy.json", tmp_path / "hard.json"
    common = ("-m", MODEL, "-b", str(BATCH), "-k", "-l", "1.5", "-t", "2", "--url", server.url)
    stable = run_client(*common, "--stability_percentage", "100", "--json", str(easy))
    unstable = run_client(*common, "--stability_percentage", "0.0001", "--max_trials", "4", "--json", str(hard))
    for proc in (stable, unstable):
        assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(easy.read_text())
    assert doc["stable"] is True and len(doc["windows"]) == 3 and doc["spread_pct"] <= 100
    assert doc["stability"] == {"percentage": 100.0, "windows": 3, "max_trials": 10, "window_s": 0.5}
    assert doc["duration_s"] == pytest.approx(1.5)
    windows = sum(w["requests"] for w in doc["windows"])
    assert doc["requests"] == sum(t["requests"] for t in doc["per_thread"]) == windows
    assert 0 <= doc["host_load"]["cpu_busy_pct"] <= 100 and doc["host_load"]["cpus"] >= 1
    assert results.validate_results(doc) == []
    assert "Measuring in windows of 0.5 s until the last 3 agree within 100 % (at most 10)" in stable.stdout
    assert re.search(r"^Stable: the last 3 windows of 0.5 s agree within [0-9.]+ % \(wanted 100 %\)$",
                     stable.stdout, re.MULTILINE), stable.stdout
    doc = json.loads(hard.read_text())
    # unstable by throughput or by mean latency (a busy machine may give windows of equal counts)
    assert doc["stable"] is False and len(doc["windows"]) == 4
    assert doc["spread_pct"] > 0.0001 or doc["latency_spread_pct"] > 0.0001, doc
    # the result covers the last 3 windows of the 4
    assert doc["requests"] == sum(w["requests"] for w in doc["windows"][1:])
    assert doc["duration_s"] == pytest.approx(1.5)
    assert "UNSTABLE: the last 3 windows" in unstable.stdout
    assert len(re.findall(r"^Window \d: [0-9.]+ images/s, p99 [0-9.]+ ms$", unstable.stdout, re.MULTILINE)) == 4


def test_stability_percentage_0_measures_one_window_as_the_seed(server: localtriton.LocalTriton,
                                                               tmp_path: Path) -> None:
    out = tmp_path / "one.json"
    proc = run_client("-m", MODEL, "-b", str(BATCH), "-k", "-l", "1", "-t", "1", "--url", server.url,
                      "--stability_percentage", "0", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())
    assert len(doc["windows"]) == 1 and doc["stable"] is True and doc["duration_s"] == pytest.approx(1.0)
    assert "Window" not in proc.stdout and "Stable" not in proc.stdout


def test_text_lines_have_percentiles_in_order_and_sensible_precision(bench_run: dict[str, Any]) -> None:
    """Issue 26, item 5: p50, p75, p90, p95, p99 in that order; no 14-digit floats (the JSON keeps them)."""
    text = bench_run["proc"].stdout
    order = re.findall(r"^Thread 0 Latency (p\d+) in ms:", text, re.MULTILINE)
    assert order == ["p50", "p75", "p90", "p95", "p99"]
    assert re.findall(r"^Total Latency (p\d+) in ms:", text, re.MULTILINE) == order
    digits = [len(re.sub(r"[^0-9]", "", n).lstrip("0")) for n in re.findall(r"\d+\.\d+", text)]
    assert digits and max(digits) <= 6, text


def test_request_rate_mode_sends_at_the_rate_asked(server: localtriton.LocalTriton, tmp_path: Path) -> None:
    """Issue 26, item 1: --request_rate R sends R requests a second whatever the answers (perf_analyzer's
    --request-rate-range), each request's latency from when it went; the result says what rate was kept."""
    out = tmp_path / "rate.json"
    proc = run_client("-m", MODEL, "-b", str(BATCH), "-k", "-l", "3", "-t", "4", "--url", server.url,
                      "--request_rate", "20", "--stability_percentage", "0", "--json", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(out.read_text())
    assert doc["load"]["mode"] == "rate" and doc["load"]["request_rate"] == 20.0
    assert doc["load"]["distribution"] == "constant" and doc["load"]["connections"] == 4
    # 20 a second for 3 s: the sends are paced, so the count never passes the rate (4 busy connections would send
    # hundreds; one send either side of the window's edges). How close it comes depends on the machine: a busy
    # one may fall short, and then the result says so (behind) rather than pass it off as kept.
    assert 0 < doc["requests"] <= 61, doc["requests"]
    assert doc["load"]["behind"] or doc["requests_per_s"] >= 0.9 * 20, doc
    assert results.validate_results(doc) == []
    assert ">>> Request rate 20/s (constant) over 4 connections" in proc.stdout


def test_a_rate_the_client_cannot_keep_says_so(server: localtriton.LocalTriton, tmp_path: Path) -> None:
    out = tmp_path / "behind.json"
    # one connection to a model that answers in 2 s cannot send 5 requests a second
    proc = run_client("-m", "rn50-slow", "-b", "1", "-k", "-l", "3", "-t", "1", "--url", server.url,
                      "--request_rate", "5", "--stability_percentage", "0", "--warmup", "0", "--json", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(out.read_text())
    assert doc["load"]["behind"] is True and "BEHIND: the client sent" in proc.stdout


def test_poisson_gaps_are_seeded() -> None:
    from infprov.client.tritonbench.load import Pacer

    a, b = Pacer(100.0, "poisson", seed=7), Pacer(100.0, "poisson", seed=7)
    ga = [a.take() for _ in range(200)]
    gb = [b.take() for _ in range(200)]
    gaps_a = [y - x for x, y in zip(ga, ga[1:], strict=False)]
    assert gaps_a == [y - x for x, y in zip(gb, gb[1:], strict=False)]  # the same seed, the same gaps
    assert len(set(round(g, 9) for g in gaps_a)) > 100  # not evenly spaced
    assert 0.005 < sum(gaps_a) / len(gaps_a) < 0.02  # about 1/100 s on average
    even = Pacer(50.0)
    ge = [even.take() for _ in range(5)]
    assert [round(y - x, 9) for x, y in zip(ge, ge[1:], strict=False)] == [0.02] * 4


def test_concurrency_range_measures_each_level(server: localtriton.LocalTriton, tmp_path: Path) -> None:
    out = tmp_path / "range.json"
    proc = run_client("-m", MODEL, "-b", str(BATCH), "-k", "-l", "1", "--url", server.url,
                      "--concurrency_range", "1:3:2", "--stability_percentage", "0", "--json", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    points = json.loads(out.read_text())["points"]
    assert [p["threads"] for p in points] == [1, 3]
    assert [p["load"] for p in points] == [{"mode": "concurrency", "concurrency": 1},
                                          {"mode": "concurrency", "concurrency": 3}]
    assert all(results.validate_results(p) == [] for p in points)
    assert re.findall(r"^>>> Concurrency (\d+)$", proc.stdout, re.MULTILINE) == ["1", "3"]


@pytest.mark.parametrize(("args", "message"), [
    (["--concurrency_range", "4:2"], "START <= END"),
    (["--concurrency_range", "1-4"], "START:END"),
    (["--concurrency_range", "1:4", "-t", "2"], "leave out --num_threads"),
    (["--concurrency_range", "1:4", "--request_rate", "10"], "give one"),
    (["-t", "2", "--request_rate", "0"], "--request_rate must be above 0"),
])
def test_load_options_are_checked_before_any_request(args: list[str], message: str) -> None:
    proc = run_client("-m", MODEL, "-k", "--url", "127.0.0.1:9", *args)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
