#!/usr/bin/env python3
"""Benchmark client for a Triton image classifier over HTTP (infprov); seed-compatible flags and output.

Runs anywhere a python3 with numpy runs (it is shipped to hosts as a single file and runs in the
Triton SDK container). It speaks Triton's HTTP/REST protocol with binary tensors itself, over one
kept-alive connection per worker: the request body (header + input tensor) is built once and only
handed to the kernel for each request, which is what keeps the client's CPU per request low
(tritonclient's infer() joins the body anew for every request and its HTTP layer copies it again).
Every answer is checked: shape [batch, classes], FP32, all values finite.
With --shared_memory system the images go through /dev/shm instead (client on the server's host).

Exit codes: 0 all responses valid; 1 a failure (wrong or failed responses, server unreachable or not
ready); 2 bad usage or bad input (unknown model, batch size refused, ...); 130 interrupted
(SIGINT/SIGTERM), after printing and saving what was measured so far (json "partial": true).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import os
import re
import resource
import signal
import socket
import struct
import sys
import threading
import time
from typing import Any
from urllib.parse import quote

try:
    import numpy as np
except ImportError:  # pragma: no cover - depends on the host
    sys.stderr.write("ERROR: this client needs numpy (python3 -m pip install numpy)\n")
    sys.exit(1)

CLIENT_NAME = "infprov-triton-http-client"
CLIENT_VERSION = "1.0"
EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
PERCENTILES = (50, 75, 90, 95, 99)
SEED_PERCENTILES = (50, 75, 95, 99)  # the seed printed these per thread, in this order
CONTROL_TIMEOUT = 10.0  # seconds, for health, metadata and repository calls
DEFAULT_CLASSES = 1000
DEFAULT_IMAGE_DIMS = (224, 224, 3)
NP_TYPES = {"FP32": np.float32, "FP16": np.float16, "FP64": np.float64, "INT32": np.int32, "INT64": np.int64,
            "INT8": np.int8, "UINT8": np.uint8, "INT16": np.int16, "BOOL": np.bool_}


class ClientError(Exception):
    """A failure reported as one line (no traceback) with its exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_FAIL) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


class RequestFailed(Exception):
    """One request that got no usable answer; kind is a short category used for counting."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


# ----------------------------------------------------------------------------- HTTP/1.1, kept alive


class Connection:
    """One HTTP/1.1 connection, reopened only when the server closes it or an error breaks it.

    Deliberately minimal: Triton always answers with Content-Length (chunked is handled too), and
    the body buffer is reused, so the numpy view of an answer is only valid until the next request.
    """

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self.sock: socket.socket | None = None
        self.buf = bytearray(1 << 17)
        self.connects = 0

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None

    def _connect(self) -> socket.socket:
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        except TimeoutError as exc:
            raise RequestFailed("timeout", f"connecting to {self.host}:{self.port} took over {self.timeout:g} s") \
                from exc
        except OSError as exc:
            raise RequestFailed("connection", str(exc.strerror or exc)) from exc
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # Blocking, with the kernel's own timeouts: in Python's timeout mode every partial send of a
        # large body is preceded by a poll(), which costs CPU on each request. The send buffer is left
        # to autotuning: a fixed large one measured slower (more data queued per connection).
        sock.settimeout(None)
        whole = int(self.timeout)
        micros = max(int((self.timeout - whole) * 1_000_000), 0 if whole else 1)  # 0 would mean "never"
        timeval = struct.pack("@ll", whole, micros)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
        self.sock = sock
        self.connects += 1
        return sock

    def request(self, head: bytes, body: memoryview | bytes = b"") -> tuple[int, dict[str, str], memoryview]:
        """Send one request (head already formatted) and read the whole answer.

        A connection the server closed while idle is reopened and the request sent once more
        (inference requests are idempotent here); any other failure raises RequestFailed.
        """
        for attempt in (0, 1):
            fresh = self.sock is None
            sock = self.sock or self._connect()
            try:
                _send_parts(sock, [memoryview(head), memoryview(body)] if len(body) else [memoryview(head)])
                return self._read_response(sock)
            except (TimeoutError, BlockingIOError) as exc:  # SO_RCVTIMEO/SO_SNDTIMEO ran out: EAGAIN
                self.close()
                raise RequestFailed("timeout", f"no progress for {self.timeout:g} s") from exc
            except _Closed as exc:
                self.close()
                if fresh or attempt:
                    raise RequestFailed("connection", f"server closed the connection ({exc})") from exc
            except OSError as exc:
                self.close()
                if fresh or attempt:
                    raise RequestFailed("connection", str(exc.strerror or exc)) from exc
            except (ValueError, IndexError, UnicodeError) as exc:  # a malformed answer
                self.close()
                raise RequestFailed("protocol", f"malformed HTTP response: {exc}") from exc
        raise RequestFailed("connection", "server closed the connection twice")  # pragma: no cover

    def _recv_more(self, sock: socket.socket, have: int) -> int:
        if have == len(self.buf):
            self.buf.extend(bytes(len(self.buf)))
        got = sock.recv_into(memoryview(self.buf)[have:])
        if got == 0:
            raise _Closed("end of stream")
        return have + got

    def _read_response(self, sock: socket.socket) -> tuple[int, dict[str, str], memoryview]:
        have = 0
        end = -1
        while end < 0:
            have = self._recv_more(sock, have)
            end = self.buf.find(b"\r\n\r\n", 0, have)
            if end < 0 and have > 65536:
                raise RequestFailed("protocol", "response headers too long")
        lines = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
        match = re.match(r"HTTP/1\.[01] (\d{3})", lines[0])
        if not match:
            raise RequestFailed("protocol", f"not an HTTP response: {lines[0][:60]!r}")
        status = int(match.group(1))
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        start = end + 4
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = self._read_chunked(sock, start, have)
        else:
            length = int(headers.get("content-length", "0"))
            need = start + length
            if need > len(self.buf):
                self.buf.extend(bytes(need - len(self.buf)))
            while have < need:
                have = self._recv_more(sock, have)
            body = memoryview(self.buf)[start:need]
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, headers, body

    def _read_chunked(self, sock: socket.socket, pos: int, have: int) -> memoryview:
        out = bytearray()
        while True:
            while self.buf.find(b"\r\n", pos, have) < 0:
                have = self._recv_more(sock, have)
            eol = self.buf.find(b"\r\n", pos, have)
            size = int(bytes(self.buf[pos:eol]).split(b";")[0], 16)
            pos = eol + 2
            while have < pos + size + 2:
                have = self._recv_more(sock, have)
            out += self.buf[pos:pos + size]
            pos += size + 2
            if size == 0:
                return memoryview(bytes(out))


class _Closed(Exception):
    """The peer closed the connection."""


def _send_parts(sock: socket.socket, parts: list[memoryview]) -> None:
    """sendmsg the parts without joining them (joining would copy the 9.6 MB input every time)."""
    while parts:
        sent = sock.sendmsg(parts)
        while sent and parts:
            if sent >= len(parts[0]):
                sent -= len(parts[0])
                parts.pop(0)
            else:
                parts[0] = parts[0][sent:]
                sent = 0


def split_url(url: str) -> tuple[str, int]:
    text = url.strip()
    if "://" in text:
        scheme, _, text = text.partition("://")
        if scheme != "http":
            raise ClientError(f"--url: only plain http is supported, not {scheme}://", EXIT_USAGE)
    text = text.rstrip("/")
    if "/" in text:
        raise ClientError(f"--url takes host:port, not a path: {url!r}", EXIT_USAGE)
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = text, "8000"
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ClientError(f"--url must look like host:port, got {url!r}", EXIT_USAGE)
    return host, int(port)


# ----------------------------------------------------------------------------- control plane


class Server:
    """Triton's health, metadata and repository endpoints, on a connection of their own."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.host = host
        self.port = port
        self.url = f"{host}:{port}"
        self.conn = Connection(host, port, timeout)

    def _head(self, method: str, path: str, length: int = 0) -> bytes:
        text = f"{method} {path} HTTP/1.1\r\nHost: {self.url}\r\n"
        if method == "POST":
            text += f"Content-Type: application/json\r\nContent-Length: {length}\r\n"
        return (text + "\r\n").encode("latin-1")

    def call(self, method: str, path: str, payload: dict[str, Any] | None = None) -> tuple[int, Any]:
        body = json.dumps(payload).encode() if payload is not None else b""
        status, _, data = self.conn.request(self._head(method, path, len(body)), body)
        text = bytes(data).decode("utf-8", "replace")
        try:
            return status, json.loads(text) if text.strip() else None
        except ValueError:
            return status, text

    def close(self) -> None:
        self.conn.close()

    def check_ready(self) -> None:
        try:
            status, _ = self.call("GET", "/v2/health/live")
        except RequestFailed as exc:
            raise ClientError(f"cannot reach Triton at {self.url}: {exc.detail}") from None
        if status != 200:
            raise ClientError(f"Triton at {self.url} is not live (GET /v2/health/live answered {status})")
        status, _ = self.call("GET", "/v2/health/ready")
        if status != 200:
            raise ClientError(f"Triton at {self.url} is live but not ready (GET /v2/health/ready answered {status})")

    def repository(self) -> list[dict[str, Any]]:
        try:
            status, index = self.call("POST", "/v2/repository/index", {})
        except RequestFailed:
            return []
        return index if status == 200 and isinstance(index, list) else []

    def model(self, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """The model's metadata and config; a clear error naming what the repository holds otherwise."""
        path = f"/v2/models/{quote(name, safe='')}"
        status, meta = self.call("GET", path)
        if status != 200 or not isinstance(meta, dict):
            index = self.repository()
            entry = next((m for m in index if m.get("name") == name), None)
            if entry is not None:
                reason = entry.get("reason") or ""
                raise ClientError(
                    f"model '{name}' is in the repository of {self.url} but {entry.get('state', 'not loaded')}"
                    + (f": {reason}" if reason else "")
                )
            names = ", ".join(
                f"{m.get('name')} ({m.get('state', '?')})" for m in sorted(index, key=lambda m: str(m.get("name")))
            )
            raise ClientError(
                f"unknown model '{name}' on {self.url}; the repository holds: {names or 'no models'}", EXIT_USAGE
            )
        status, ready = self.call("GET", path + "/ready")
        if status != 200:
            raise ClientError(f"model '{name}' on {self.url} is not ready (GET {path}/ready answered {status})")
        status, config = self.call("GET", path + "/config")
        return meta, config if status == 200 and isinstance(config, dict) else {}


# ----------------------------------------------------------------------------- inference requests


class Inference:
    """The request body, built once: the JSON header of Triton's binary-tensor extension + raw input."""

    def __init__(self, model: str, input_name: str, output_name: str, images: np.ndarray,
                 datatype: str, classes: int, host: str, port: int, region: str | None = None) -> None:
        self.model = model
        self.output_name = output_name
        self.batch = int(images.shape[0])
        self.classes = classes
        params: dict[str, Any] = {"binary_data_size": images.nbytes}
        if region is not None:  # the server reads the images from a registered shared-memory region
            params = {"shared_memory_region": region, "shared_memory_byte_size": images.nbytes}
        header = {
            "inputs": [{"name": input_name, "shape": list(images.shape), "datatype": datatype, "parameters": params}],
            "outputs": [{"name": output_name, "parameters": {"binary_data": True}}],
        }
        head_json = json.dumps(header, separators=(",", ":")).encode()
        tensor = b"" if region is not None else np.ascontiguousarray(images).tobytes()
        self.body = memoryview(head_json + tensor)
        self.head = (
            f"POST /v2/models/{quote(model, safe='')}/infer HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Content-Type: application/octet-stream\r\nInference-Header-Content-Length: {len(head_json)}\r\n"
            f"Content-Length: {len(self.body)}\r\n\r\n"
        ).encode("latin-1")

    def run(self, conn: Connection) -> np.ndarray:
        """One inference; the output tensor, checked; RequestFailed if the answer is wrong in any way."""
        status, headers, body = conn.request(self.head, self.body)
        if status != 200:
            raise RequestFailed(f"http {status}", _error_text(body))
        return self.check(self.output(headers, body))

    def output(self, headers: dict[str, str], body: memoryview) -> np.ndarray:
        header_len = int(headers.get("inference-header-content-length", len(body)))
        try:
            reply = json.loads(bytes(body[:header_len]))
        except ValueError as exc:
            raise RequestFailed("bad response", f"response header is not JSON: {exc}") from None
        offset = header_len
        for out in reply.get("outputs", []):
            params = out.get("parameters") or {}
            size = int(params.get("binary_data_size", 0))
            if out.get("name") == self.output_name:
                dtype = NP_TYPES.get(str(out.get("datatype")))
                if dtype is None:
                    raise RequestFailed("bad output", f"datatype {out.get('datatype')}, expected FP32")
                shape = [int(d) for d in out.get("shape", [])]
                if "binary_data_size" in params:
                    if offset + size > len(body):
                        raise RequestFailed("bad response", "binary output shorter than announced")
                    flat = np.frombuffer(body[offset:offset + size], dtype=dtype)
                else:
                    flat = np.asarray(out.get("data", []), dtype=dtype)
                if flat.size != math.prod(shape):
                    raise RequestFailed("bad output", f"{flat.size} values for shape {shape}")
                return flat.reshape(shape)
            offset += size
        raise RequestFailed("bad output", f"no output named '{self.output_name}' in the response")

    def check(self, result: np.ndarray) -> np.ndarray:
        expected = [self.batch, self.classes]
        if list(result.shape) != expected:
            raise RequestFailed("bad output", f"output shape {list(result.shape)}, expected {expected}")
        if result.dtype != np.float32:
            raise RequestFailed("bad output", f"output datatype {result.dtype}, expected float32")
        if not np.isfinite(result).all():
            bad = int(result.size - np.count_nonzero(np.isfinite(result)))
            raise RequestFailed("bad output", f"{bad} non-finite values in the output")
        return result


def _error_text(body: memoryview) -> str:
    text = bytes(body[:2000]).decode("utf-8", "replace")
    try:
        return str(json.loads(text).get("error", text))
    except (ValueError, AttributeError):
        return text.strip() or "(empty body)"


class SharedInput:
    """The input images in a POSIX shared-memory object that the server registers and reads directly.

    Only for a client on the server's host sharing its /dev/shm (docker: --ipc host on both
    containers): requests then carry a reference, not 9.6 MB of tensor, so neither the client nor
    the server copies the images through TCP. Removed again at exit (registration and object).
    """

    def __init__(self, server: Server, images: np.ndarray) -> None:
        self.server = server
        self.name = f"infprov-input-{os.getpid()}"
        self.path = f"/dev/shm/{self.name}"
        self.registered = False
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
        except OSError as exc:
            raise ClientError(f"cannot create {self.path} for --shared_memory: {exc.strerror or exc}") from None
        try:
            data = np.ascontiguousarray(images).tobytes()
            os.ftruncate(fd, len(data))
            os.pwrite(fd, data, 0)
        finally:
            os.close(fd)
        body = {"key": f"/{self.name}", "offset": 0, "byte_size": int(images.nbytes)}
        try:
            status, answer = server.call("POST", f"/v2/systemsharedmemory/region/{self.name}/register", body)
        except RequestFailed as exc:
            self.close()
            raise ClientError(f"cannot register shared memory with Triton at {server.url}: {exc.detail}") from None
        if status != 200:
            self.close()
            reason = answer.get("error", answer) if isinstance(answer, dict) else answer
            raise ClientError(
                f"Triton at {server.url} cannot use shared memory {self.path}: {reason}; the server must share "
                f"this client's /dev/shm (same host; docker --ipc host), or drop --shared_memory"
            )
        self.registered = True

    def close(self) -> None:
        if self.registered:
            self.registered = False
            try:
                self.server.call("POST", f"/v2/systemsharedmemory/region/{self.name}/unregister", {})
            except RequestFailed:
                pass  # the server is gone: nothing left registered
            finally:
                self.server.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


# ----------------------------------------------------------------------------- workers and statistics


def checked_call(inference: Inference, conn: Connection) -> np.ndarray:
    """One request; any failure becomes a RequestFailed that is counted (never a raw traceback)."""
    try:
        return inference.run(conn)
    except RequestFailed:
        raise
    except Exception as exc:  # noqa: BLE001 - counted and reported, the run goes on
        conn.close()
        raise RequestFailed("client", f"{type(exc).__name__}: {exc}") from exc


class Worker(threading.Thread):
    """One connection, requests back to back until the deadline or a stop; records each latency."""

    def __init__(self, index: int, inference: Inference, host: str, port: int, timeout: float,
                 warmup: int, start_gate: threading.Barrier, stop: threading.Event) -> None:
        super().__init__(name=f"worker-{index}", daemon=True)
        self.index = index
        self.inference = inference
        self.conn = Connection(host, port, timeout)
        self.warmup = warmup
        self.start_gate = start_gate
        self.stop = stop
        self.deadline = math.inf
        self.latencies: list[float] = []  # seconds, successful requests only
        self.errors: dict[str, int] = {}
        self.first_error: dict[str, str] = {}
        self.started = 0.0
        self.finished = 0.0

    def _error(self, exc: RequestFailed) -> None:
        self.errors[exc.kind] = self.errors.get(exc.kind, 0) + 1
        self.first_error.setdefault(exc.kind, exc.detail)

    def _call(self) -> None:
        checked_call(self.inference, self.conn)

    def run(self) -> None:
        for _ in range(self.warmup):  # untimed; failures still count as errors
            if self.stop.is_set():
                break
            try:
                self._call()
            except RequestFailed as exc:
                self._error(exc)
        try:
            self.start_gate.wait()
        except threading.BrokenBarrierError:
            return
        clock = time.perf_counter
        call = self._call
        lat = self.latencies
        self.started = clock()
        now = self.started
        while now < self.deadline and not self.stop.is_set():
            try:
                call()
                done = clock()
                lat.append(done - now)
            except RequestFailed as exc:
                done = clock()
                self._error(exc)
                if exc.kind in ("connection", "timeout"):
                    self.stop.wait(0.1)  # do not spin on a server that is gone
                    done = clock()
            self.finished = now = done
        self.conn.close()

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


def latency_summary(latencies_s: list[float] | np.ndarray) -> dict[str, float | None]:
    """p50/p75/p90/p95/p99 and mean in ms (linear interpolation); None when there is nothing to measure."""
    data = np.asarray(latencies_s, dtype=np.float64) * 1000.0
    if data.size == 0:
        return {**{f"p{p}": None for p in PERCENTILES}, "mean": None}
    values = np.percentile(data, PERCENTILES)
    out: dict[str, float | None] = {f"p{p}": float(values[i]) for i, p in enumerate(PERCENTILES)}
    out["mean"] = float(data.mean())
    return out


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _fmt(value: float | None) -> str:
    return "nan" if value is None else repr(float(value))


# ----------------------------------------------------------------------------- arguments


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="triton-http-client.py",
        description="Benchmark an image classifier on Triton over HTTP (seed-compatible flags and output).",
    )
    p.add_argument("-m", "--model_name", required=True, help="model to query")
    p.add_argument("-b", "--batch_size", type=int, default=1, help="images per request (default 1)")
    p.add_argument("-k", "--benchmark", action="store_true",
                   help="run the timed benchmark after the first checked request")
    p.add_argument("-l", "--limit", type=float, default=60.0, help="benchmark length in seconds (default 60)")
    p.add_argument("-t", "--num_threads", type=int, default=None,
                   help="workers, each with one connection and one request in flight (required unless "
                        "--concurrency is given)")
    p.add_argument("--concurrency", type=int, default=None,
                   help="requests in flight, perf_analyzer's word for the same thing as --num_threads")
    p.add_argument("--url", default="localhost:8000", help="Triton HTTP endpoint host:port (default localhost:8000)")
    p.add_argument("--input_name", default="input", help="input tensor name (default input)")
    p.add_argument("--output_name", default="output", help="output tensor name (default output)")
    p.add_argument("--warmup", type=int, default=1, metavar="N",
                   help="untimed requests per worker before the clock starts (default 1)")
    p.add_argument("--json", metavar="PATH", default=None,
                   help="also write the results as JSON here (written on interruption too, partial: true)")
    p.add_argument("--neuron_cores", type=int, default=None, metavar="N",
                   help="NeuronCores the model spans (default: read from a name like rn50-16neuroncores-*)")
    p.add_argument("--allow_small_batch", action="store_true",
                   help="allow a batch smaller than the NeuronCore count")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for any one answer (default 60)")
    p.add_argument("--shared_memory", choices=("none", "system"), default="none",
                   help="system: pass the images through /dev/shm instead of HTTP (client on the server's "
                        "host sharing its /dev/shm only; as perf_analyzer's --shared-memory system)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random input images (default 0)")
    return p


def check_args(args: argparse.Namespace) -> int:
    """Validate the arguments; return the number of workers."""
    threads = args.num_threads
    if args.concurrency is not None:
        if threads is not None and threads != args.concurrency:
            raise ClientError(f"--num_threads {threads} and --concurrency {args.concurrency} disagree; give one",
                              EXIT_USAGE)
        threads = args.concurrency
    if threads is None:
        raise ClientError("-t/--num_threads (or --concurrency) is required", EXIT_USAGE)
    if not 1 <= threads <= 512:
        raise ClientError(f"--num_threads must be between 1 and 512, got {threads}", EXIT_USAGE)
    if args.batch_size < 1:
        raise ClientError(f"--batch_size must be at least 1, got {args.batch_size}", EXIT_USAGE)
    if not args.limit > 0:
        raise ClientError(f"--limit must be a positive number of seconds, got {args.limit:g}", EXIT_USAGE)
    if args.warmup < 0:
        raise ClientError(f"--warmup must be 0 or more, got {args.warmup}", EXIT_USAGE)
    if not args.timeout > 0:
        raise ClientError(f"--timeout must be positive, got {args.timeout:g}", EXIT_USAGE)
    cores, source = args.neuron_cores, "--neuron_cores"
    if cores is None:
        match = re.search(r"(\d+)neuroncores", args.model_name)
        cores, source = (int(match.group(1)), "the model name") if match else (0, "")
    if cores < 0:
        raise ClientError(f"--neuron_cores must be 0 or more, got {cores}", EXIT_USAGE)
    if cores and args.batch_size < cores and not args.allow_small_batch:
        raise ClientError(
            f"batch size {args.batch_size} is smaller than the {cores} NeuronCores (from {source}): the model "
            f"splits each batch across its cores, so every core needs at least one image; use --batch_size "
            f"{cores} or more, or --allow_small_batch",
            EXIT_USAGE,
        )
    return int(threads)


def input_spec(
    meta: dict[str, Any], config: dict[str, Any], args: argparse.Namespace
) -> tuple[str, tuple[int, ...], int]:
    """(datatype, per-image dims, classes) from the model's metadata; refuses names it does not have."""
    inputs = {i.get("name"): i for i in meta.get("inputs", [])}
    outputs = {o.get("name"): o for o in meta.get("outputs", [])}
    if inputs and args.input_name not in inputs:
        raise ClientError(f"model '{args.model_name}' has no input '{args.input_name}'; its inputs: "
                          f"{', '.join(map(str, inputs))} (use --input_name)", EXIT_USAGE)
    if outputs and args.output_name not in outputs:
        raise ClientError(f"model '{args.model_name}' has no output '{args.output_name}'; its outputs: "
                          f"{', '.join(map(str, outputs))} (use --output_name)", EXIT_USAGE)
    max_batch = int(config.get("max_batch_size", 0) or 0)
    if max_batch and args.batch_size > max_batch:
        raise ClientError(f"batch size {args.batch_size} is above the model's max_batch_size {max_batch}", EXIT_USAGE)
    spec = inputs.get(args.input_name, {})
    datatype = str(spec.get("datatype", "FP32"))
    if datatype not in NP_TYPES:
        raise ClientError(f"input '{args.input_name}' is {datatype}; this client sends numeric tensors only",
                          EXIT_USAGE)
    shape = [int(d) for d in spec.get("shape", [])][1:]
    dims = tuple(shape) if shape and all(d > 0 for d in shape) else DEFAULT_IMAGE_DIMS
    out_shape = [int(d) for d in outputs.get(args.output_name, {}).get("shape", [])][1:]
    classes = out_shape[0] if len(out_shape) == 1 and out_shape[0] > 0 else DEFAULT_CLASSES
    return datatype, dims, classes


def make_images(batch: int, dims: tuple[int, ...], datatype: str, seed: int) -> np.ndarray:
    """Random images in [0, 1) (as the seed sent), generated once and shared by all workers."""
    rng = np.random.default_rng(seed)
    data = rng.random((batch, *dims), dtype=np.float32)
    return data.astype(NP_TYPES[datatype], copy=False)


# ----------------------------------------------------------------------------- run


class Interrupted:
    """Set by SIGINT/SIGTERM: workers finish the request in hand and stop."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop
        self.signal: int | None = None

    def __call__(self, signum: int, _frame: Any) -> None:
        if self.stop.is_set():
            raise KeyboardInterrupt  # a second signal: stop waiting for the workers
        self.signal = signum
        self.stop.set()


def results_dict(args: argparse.Namespace, url: str, workers: list[Worker], duration: float, cpu_s: float,
                 partial: bool, extra_errors: dict[str, int], first_errors: dict[str, str],
                 single_latency: float | None = None) -> dict[str, Any]:
    batch = args.batch_size
    per_thread = []
    all_lat: list[float] = []
    errors: dict[str, int] = dict(extra_errors)
    for w in workers:
        n = len(w.latencies)
        seconds = max(w.finished - w.started, 0.0) if n or w.error_count else 0.0
        all_lat.extend(w.latencies)
        for kind, count in w.errors.items():
            errors[kind] = errors.get(kind, 0) + count
        for kind, text in w.first_error.items():
            first_errors.setdefault(kind, text)
        per_thread.append({
            "thread": w.index, "requests": n, "errors": w.error_count, "seconds": seconds,
            "images_per_s": n * batch / seconds if seconds > 0 else 0.0,
            "requests_per_s": n / seconds if seconds > 0 else 0.0,
            "latency_ms": latency_summary(w.latencies),
        })
    if not workers and single_latency is not None:
        all_lat = [single_latency]
    requests = len(all_lat) if workers else (1 if single_latency is not None else 0)
    return {
        "tool": CLIENT_NAME, "tool_version": CLIENT_VERSION,
        "model": args.model_name, "url": url, "batch_size": batch, "threads": len(workers),
        "limit_s": args.limit, "warmup": args.warmup, "shared_memory": args.shared_memory, "duration_s": duration,
        "requests": requests,
        "images_per_s": requests * batch / duration if duration > 0 else 0.0,
        "requests_per_s": requests / duration if duration > 0 else 0.0,
        "latency_ms": latency_summary(all_lat),
        "per_thread": per_thread,
        "errors": sum(errors.values()), "error_kinds": errors, "error_examples": first_errors,
        "cpu_s": cpu_s, "cpu_ms_per_request": 1000.0 * cpu_s / requests if requests else None,
        "partial": partial,
    }


def print_thread_lines(result: dict[str, Any]) -> None:
    for t in result["per_thread"]:
        i = t["thread"]
        print(f"Thread {i}: Completed {t['requests']} http requests in {t['seconds']:.6f} seconds.")
        print(f"Thread {i} Throughput per second: {_fmt(t['images_per_s'])}")
        for p in SEED_PERCENTILES:
            print(f"Thread {i} Latency p{p} in ms: {_fmt(t['latency_ms'][f'p{p}'])}")
        print(f"Thread {i} Latency p90 in ms: {_fmt(t['latency_ms']['p90'])}")
        print(f"Thread {i} Latency mean in ms: {_fmt(t['latency_ms']['mean'])}")
        print(f"Thread {i} Errors: {t['errors']}")
    lat = result["latency_ms"]
    print(f"Total: Completed {result['requests']} http requests in {result['duration_s']:.6f} seconds "
          f"with {result['threads']} threads.")
    print(f"Total Throughput per second: {_fmt(result['images_per_s'])}")
    print(f"Total Requests per second: {_fmt(result['requests_per_s'])}")
    for key in ("p50", "p75", "p90", "p95", "p99", "mean"):
        print(f"Total Latency {key} in ms: {_fmt(lat[key])}")
    print(f"Total Errors: {result['errors']}")
    if result["cpu_ms_per_request"] is not None:
        print(f"Client CPU per request in ms: {_fmt(result['cpu_ms_per_request'])}")


def write_json(path: str | None, result: dict[str, Any]) -> None:
    if not path:
        return
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(result, fh, indent=2, allow_nan=False)
        fh.write("\n")
    os.replace(tmp, path)


def report_failures(model: str, result: dict[str, Any]) -> None:
    total = result["requests"] + result["errors"]
    for kind, count in sorted(result["error_kinds"].items()):
        example = result["error_examples"].get(kind, "")
        print(f"FAIL: {model}: {count} of {total} requests: {kind}: {example}")


def benchmark(args: argparse.Namespace, threads: int, inference: Inference, host: str, port: int,
              url: str, guard: Interrupted) -> dict[str, Any]:
    stop = guard.stop
    gate = threading.Barrier(threads + 1)
    workers = [Worker(i, inference, host, port, args.timeout, args.warmup, gate, stop) for i in range(threads)]
    print("##### WARMUP COMPLETE, NOW DO BENCHMARK #####")
    print(f"##### Model name: {args.model_name}, Batch size: {args.batch_size}")
    for w in workers:
        print(f"RUN Thread {w.index} for {datetime.timedelta(seconds=args.limit)} seconds")
    print(f">>> Running {threads} threads", flush=True)
    for w in workers:
        w.start()
    # Wait for every worker's warm-up, still answering signals.
    while gate.n_waiting < threads and not stop.is_set() and any(w.is_alive() for w in workers):
        time.sleep(0.01)
    if stop.is_set():
        gate.abort()
        for w in workers:
            w.join(timeout=args.timeout)
        return results_dict(args, url, [], 0.0, 0.0, True, {}, {})
    deadline = time.perf_counter() + args.limit
    for w in workers:
        w.deadline = deadline
    cpu0 = _cpu_seconds()
    start = time.perf_counter()
    gate.wait()
    # Join with a timeout so that a signal is handled while waiting.
    while any(w.is_alive() for w in workers):
        for w in workers:
            w.join(timeout=0.2)
        if stop.is_set():
            grace = time.perf_counter() + min(args.timeout, 10.0)
            while any(w.is_alive() for w in workers) and time.perf_counter() < grace:
                time.sleep(0.05)
            break
    cpu = _cpu_seconds() - cpu0
    start = min((w.started for w in workers if w.started), default=start)
    end = max((w.finished for w in workers if w.finished), default=time.perf_counter())
    duration = max(end - start, 0.0)
    return results_dict(args, url, workers, duration, cpu, stop.is_set(), {}, {})


def run(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    stop = threading.Event()
    guard = Interrupted(stop)
    signal.signal(signal.SIGINT, guard)
    signal.signal(signal.SIGTERM, guard)
    print(f"Model name = {args.model_name}, batch size = {args.batch_size}", flush=True)
    threads = check_args(args)
    host, port = split_url(args.url)
    url = f"{host}:{port}"
    server = Server(host, port, CONTROL_TIMEOUT)
    try:
        server.check_ready()
        meta, config = server.model(args.model_name)
        datatype, dims, classes = input_spec(meta, config, args)
    finally:
        server.close()  # reopened on demand (shared-memory registration)
    images = make_images(args.batch_size, dims, datatype, args.seed)
    shared = SharedInput(server, images) if args.shared_memory == "system" else None
    try:
        inference = Inference(args.model_name, args.input_name, args.output_name, images, datatype, classes,
                              host, port, region=shared.name if shared else None)
        return measure(args, threads, inference, host, port, url, guard)
    finally:
        if shared is not None:
            shared.close()


def measure(args: argparse.Namespace, threads: int, inference: Inference, host: str, port: int, url: str,
            guard: Interrupted) -> int:
    """The first checked request (PASS/FAIL), then the benchmark if asked; the exit code."""
    stop = guard.stop

    # The first request, checked: the seed's PASS line now means something.
    conn = Connection(host, port, args.timeout)
    t0 = time.perf_counter()
    try:
        checked_call(inference, conn)
    except RequestFailed as exc:
        first = results_dict(args, url, [], 0.0, 0.0, stop.is_set(), {exc.kind: 1}, {exc.kind: exc.detail})
        write_json(args.json, first)
        if exc.kind == "connection":
            raise ClientError(f"cannot reach Triton at {url}: {exc.detail}") from None
        print(f"FAIL: {args.model_name}: {exc.kind}: {exc.detail}", flush=True)
        return EXIT_INTERRUPTED if stop.is_set() else EXIT_FAIL
    finally:
        conn.close()
    latency = time.perf_counter() - t0
    print(f"PASS: {args.model_name}")
    print(f"##### Model inference time in ms: {latency * 1000.0!r}", flush=True)
    if not args.benchmark:
        result = results_dict(args, url, [], latency, 0.0, False, {}, {}, single_latency=latency)
        write_json(args.json, result)
        return EXIT_OK
    if stop.is_set():
        write_json(args.json, results_dict(args, url, [], 0.0, 0.0, True, {}, {}))
        return EXIT_INTERRUPTED

    result = benchmark(args, threads, inference, host, port, url, guard)
    if result["per_thread"]:
        print_thread_lines(result)
    write_json(args.json, result)
    if result["errors"]:
        report_failures(args.model_name, result)
    if result["partial"]:
        name = signal.Signals(guard.signal).name if guard.signal else "a signal"
        print(f"INTERRUPTED by {name}: results above cover {result['duration_s']:.1f} s of {args.limit:g} s"
              + (f" (saved to {args.json}, partial)" if args.json else ""), flush=True)
        return EXIT_INTERRUPTED
    return EXIT_FAIL if result["errors"] else EXIT_OK


def main(argv: list[str] | None = None) -> int:
    try:
        return run(argv)
    except ClientError as exc:
        sys.stdout.flush()
        sys.stderr.write(f"ERROR: {exc.message}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("ERROR: interrupted\n")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_FAIL


if __name__ == "__main__":
    sys.exit(main())
