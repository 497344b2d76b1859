#!/usr/bin/env python3
"""Benchmark client for a Triton image classifier over HTTP (infprov); seed-compatible flags and output.

Runs where tritonclient[http] and numpy run (it is shipped to hosts as a single file and runs in the
Triton SDK container: tritonclient 2.21.0 on Python 3.8 in 22.04-py3-sdk, 2.51.0 on Python 3.11 in the
sandbox's). tritonclient does the protocol: health, metadata, config, repository index and
shared-memory calls (InferenceServerClient), the inference request (InferInput,
InferRequestedOutput, InferenceServerClient.generate_request_body) and the decoding of every answer
(InferenceServerClient.parse_response_body, InferResult.as_numpy); http.client frames the request.
The request is built once, shared by the workers, and each worker hands it as-is to the kernel over
one kept-alive connection: that is what keeps the client's CPU per request near a bare sender's
(InferenceServerClient.infer() builds the body anew for every request, copying the 9.6 MB input
twice, and its HTTP layer copies it once more). Every answer is checked: shape [batch, classes],
FP32, all values finite. With --shared_memory system the images go through /dev/shm instead
(client on the server's host), placed there by tritonclient.utils.shared_memory.

Exit codes: 0 all responses valid; 1 a failure (wrong or failed responses, server unreachable or not
ready); 2 bad usage or bad input (unknown model, batch size refused, ...); 130 interrupted
(SIGINT/SIGTERM), after printing and saving what was measured so far (json "partial": true).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import http.client
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
    import tritonclient.http as httpclient
    from tritonclient.utils import InferenceServerException, np_to_triton_dtype, triton_to_np_dtype
except ImportError as _missing:  # pragma: no cover - depends on the host
    sys.stderr.write(f"ERROR: this client needs numpy and tritonclient[http] ({_missing}); "
                     "python3 -m pip install numpy 'tritonclient[http]'\n")
    sys.exit(1)

# Both static methods, same arguments, in tritonclient 2.21.0 (the 22.04 SDK container's; upstream
# triton-inference-server/client, tag r22.04, src/python/library/tritonclient/http/__init__.py) and in
# 2.51.0 (tritonclient/http/_client.py; it adds a trailing parameters=None).
build_request_body = httpclient.InferenceServerClient.generate_request_body
parse_response_body = httpclient.InferenceServerClient.parse_response_body

CLIENT_NAME = "infprov-triton-http-client"
CLIENT_VERSION = "1.1"
EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
PERCENTILES = (50, 75, 90, 95, 99)
SEED_PERCENTILES = (50, 75, 95, 99)  # the seed printed these per thread, in this order
CONTROL_TIMEOUT = 10.0  # seconds, for health, metadata and repository calls
DEFAULT_CLASSES = 1000
DEFAULT_IMAGE_DIMS = (224, 224, 3)
# socket.timeout: TimeoutError only from Python 3.10 on (the 22.04 SDK container has 3.8).
SOCKET_TIMEOUT = socket.timeout


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


def _reason(exc: BaseException) -> str:
    """A short reason for a failed call: the server's message, the OS error's text, or the exception."""
    if isinstance(exc, InferenceServerException):
        return str(exc.message() or exc)
    if isinstance(exc, SOCKET_TIMEOUT):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return str(exc.strerror)
    return str(exc) or type(exc).__name__


# ----------------------------------------------------------------------------- control plane


class Server:
    """Triton's health, metadata, repository and shared-memory endpoints, through tritonclient's client."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.url = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.timeout = timeout
        self._client: Any = None

    @property
    def client(self) -> Any:
        """tritonclient's InferenceServerClient, made on first use (again after close())."""
        if self._client is None:
            self._client = httpclient.InferenceServerClient(
                self.url, connection_timeout=self.timeout, network_timeout=self.timeout)
        return self._client

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):  # a client whose server is gone
                client.close()

    def check_ready(self) -> None:
        try:
            live = self.client.is_server_live()
        except Exception as exc:  # noqa: BLE001 - refused, reset, timed out: all say "cannot reach"
            raise ClientError(f"cannot reach Triton at {self.url}: {_reason(exc)}") from None
        if not live:
            raise ClientError(f"Triton at {self.url} is not live (GET /v2/health/live)")
        if not self._ask(self.client.is_server_ready):
            raise ClientError(f"Triton at {self.url} is live but not ready (GET /v2/health/ready)")

    def _ask(self, call: Any, *args: Any) -> Any:
        """A control call whose failure (other than an error the server answered) is one line, exit 1."""
        try:
            return call(*args)
        except InferenceServerException:
            raise
        except Exception as exc:  # noqa: BLE001
            raise ClientError(f"Triton at {self.url} stopped answering: {_reason(exc)}") from None

    def repository(self) -> list[dict[str, Any]]:
        try:
            index = self.client.get_model_repository_index()
        except Exception:  # noqa: BLE001 - only used to explain another failure
            return []
        return index if isinstance(index, list) else []

    def model(self, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """The model's metadata and config; a clear error naming what the repository holds otherwise."""
        try:
            meta = self._ask(self.client.get_model_metadata, name)
        except InferenceServerException:
            meta = None
        if not isinstance(meta, dict):
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
        try:
            ready = self._ask(self.client.is_model_ready, name)
        except InferenceServerException:
            ready = False
        if not ready:
            raise ClientError(f"model '{name}' on {self.url} is not ready (GET /v2/models/{name}/ready)")
        try:
            config = self._ask(self.client.get_model_config, name)
        except InferenceServerException:
            config = {}
        return meta, config if isinstance(config, dict) else {}


# ----------------------------------------------------------------------------- inference requests


class _RequestHead(http.client.HTTPConnection):
    """http.client writing a request head into bytes: its putrequest/putheader/endheaders frame the request,
    and the one send() they make is caught here instead of going to a socket (nothing connects)."""

    head = b""

    def send(self, data: Any) -> None:
        self.head = bytes(data)


def request_head(host: str, port: int, path: str, headers: dict[str, str]) -> bytes:
    """The HTTP/1.1 head of a POST to path, as http.client frames it (Host, Accept-Encoding: identity...)."""
    rec = _RequestHead(host, port)
    rec.putrequest("POST", path)
    for name, value in headers.items():
        rec.putheader(name, value)
    rec.endheaders()
    return rec.head


class _Closed(Exception):
    """The server closed the connection."""


# A server that closed the connection, or a peer that broke it: worth one more try on a reused connection.
DROPPED = (_Closed, ConnectionResetError, ConnectionAbortedError, BrokenPipeError)


class Connection:
    """The hot loop's transport: one kept-alive connection, the prepared request sent in one call, and
    one answer read (status, headers, a Content-Length body); what it means is left to tritonclient.

    Kept by hand because http.client, which replaced it first (issue 14), measured over the CPU budget
    (1.15x a bytes-only sender's CPU per request, bench/client_vs_perf_analyzer.py): 1.42x and 1.34x,
    then 1.28x and 1.16x in runs where this way measured 1.12x and 1.08x; the body and its decoding
    came from tritonclient in both. Per request, http.client sends head and body in two calls,
    formats and validates every header anew (putheader) and builds a BufferedReader and an
    email.parser message for the answer's headers (with its HTTPResponse reading the answers and only
    the sending done here: 1.17x). So http.client frames the head once (request_head), and the head
    goes out with the body in one sendmsg() on a blocking socket whose waits the kernel bounds
    (SO_SNDTIMEO, SO_RCVTIMEO), the answer into a reused buffer.
    """

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self.sock: socket.socket | None = None
        self.buf = bytearray(1 << 17)

    def close(self) -> None:
        sock, self.sock = self.sock, None
        if sock is not None:
            sock.close()

    def _connect(self) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # Blocking, with the kernel's timeouts: in Python's timeout mode each partial send of the 9.6 MB
        # body is preceded by a poll(), each a hand-over of the GIL between workers. A wait that runs
        # out fails with EAGAIN (BlockingIOError).
        sock.settimeout(None)
        whole = int(self.timeout)
        micros = max(int((self.timeout - whole) * 1_000_000), 0 if whole else 1)  # 0 would mean "never"
        timeval = struct.pack("@ll", whole, micros)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
        self.sock = sock
        return sock

    def exchange(self, parts: list[memoryview]) -> tuple[int, dict[str, str], bytes]:
        """Send the parts (without joining them: that would copy the body) and read the answer."""
        sock = self.sock or self._connect()
        parts = list(parts)
        while parts:
            sent = sock.sendmsg(parts)
            while sent and parts:
                if sent >= len(parts[0]):
                    sent -= len(parts[0])
                    parts.pop(0)
                else:
                    parts[0] = parts[0][sent:]
                    sent = 0
        return self._answer(sock)

    def _answer(self, sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
        buf = self.buf
        view = memoryview(buf)
        have, end = 0, -1
        while end < 0:
            if have == len(buf):
                raise ValueError("response headers longer than the buffer")
            got = sock.recv_into(view[have:])
            if not got:
                raise _Closed("end of stream")
            have += got
            end = buf.find(b"\r\n\r\n", 0, have)
        lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
        version, status = lines[0].split(" ", 2)[:2]
        if not version.startswith("HTTP/1."):
            raise ValueError(f"not an HTTP/1.x response: {lines[0][:60]!r}")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "chunked" in headers.get("transfer-encoding", "").lower():
            raise ValueError("a chunked answer (Triton always sends Content-Length)")
        need = end + 4 + int(headers.get("content-length", "0"))
        if need > len(buf):
            view.release()
            buf.extend(bytes(need - len(buf)))
            view = memoryview(buf)
        while have < need:
            got = sock.recv_into(view[have:need])
            if not got:
                raise _Closed("end of stream")
            have += got
        body = bytes(view[end + 4:need])
        if headers.get("connection", "").lower() == "close":
            self.close()
        return int(status), headers, body


def numeric_dtype(datatype: str) -> Any:
    """The numpy type of a numeric Triton datatype (tritonclient's mapping); None for others (BYTES, BF16...)."""
    np_type = triton_to_np_dtype(datatype)
    if np_type is None or np_type is np.object_ or np_to_triton_dtype(np_type) != datatype:
        return None
    return np_type


class Inference:
    """The request, built once by tritonclient; each answer decoded by tritonclient, then checked."""

    def __init__(self, model: str, input_name: str, output_name: str, images: np.ndarray,
                 datatype: str, classes: int, host: str, port: int, region: str | None = None) -> None:
        self.output_name = output_name
        self.batch = int(images.shape[0])
        self.classes = classes
        tensor = httpclient.InferInput(input_name, list(images.shape), datatype)
        if region is not None:  # the server reads the images from a registered shared-memory region
            tensor.set_shared_memory(region, int(images.nbytes))
        else:
            tensor.set_data_from_numpy(np.ascontiguousarray(images), binary_data=True)
        output = httpclient.InferRequestedOutput(output_name, binary_data=True)
        body, json_size = build_request_body([tensor], outputs=[output])
        body = body.encode() if isinstance(body, str) else body  # 2.21 gives a JSON-only body as str
        # The binary tensor extension: the JSON header's length in Inference-Header-Content-Length, the
        # body application/octet-stream; a body that is all JSON is application/json without it.
        headers = {"Content-Length": str(len(body))}
        if json_size is not None:
            headers["Content-Type"] = "application/octet-stream"
            headers["Inference-Header-Content-Length"] = str(json_size)
        else:
            headers["Content-Type"] = "application/json"
        head = request_head(host, port, f"/v2/models/{quote(model, safe='')}/infer", headers)
        self.parts = [memoryview(head), memoryview(body)]

    def run(self, conn: Connection) -> np.ndarray:
        """One inference; the output tensor, checked; RequestFailed if the answer is wrong in any way.

        A connection the server closed while idle is reopened and the request sent once more
        (inference requests are idempotent here).
        """
        for attempt in (0, 1):
            reused = conn.sock is not None
            try:
                status, headers, data = conn.exchange(self.parts)
                break
            except (SOCKET_TIMEOUT, BlockingIOError) as exc:  # connecting; SO_SNDTIMEO/SO_RCVTIMEO: EAGAIN
                conn.close()
                raise RequestFailed("timeout", f"no progress for {conn.timeout:g} s") from exc
            except DROPPED as exc:
                conn.close()
                if not reused or attempt:
                    raise RequestFailed("connection", f"server closed the connection ({_reason(exc)})") from exc
            except OSError as exc:
                conn.close()
                raise RequestFailed("connection", _reason(exc)) from exc
            except (ValueError, IndexError, UnicodeError) as exc:
                conn.close()
                raise RequestFailed("protocol", f"malformed HTTP response: {exc}") from exc
        length = headers.get("inference-header-content-length")
        encoding = headers.get("content-encoding")
        if status != 200:
            raise RequestFailed(f"http {status}", _error_text(data, encoding))
        try:
            result = parse_response_body(data, header_length=int(length) if length else None,
                                         content_encoding=encoding)
            output = result.get_output(self.output_name)
            tensor = result.as_numpy(self.output_name) if output is not None else None
        except Exception as exc:  # noqa: BLE001 - whatever the answer did to the parser
            raise RequestFailed("bad response", f"cannot decode the answer: {type(exc).__name__}: {exc}") from None
        if output is None or tensor is None:
            raise RequestFailed("bad output", f"no output named '{self.output_name}' in the response")
        return self.check(output, tensor)

    def check(self, output: dict[str, Any], result: np.ndarray) -> np.ndarray:
        expected = [self.batch, self.classes]
        if output.get("datatype") != "FP32":
            raise RequestFailed("bad output", f"output datatype {output.get('datatype')}, expected FP32")
        if list(result.shape) != expected:
            raise RequestFailed("bad output", f"output shape {list(result.shape)}, expected {expected}")
        if not np.isfinite(result).all():
            bad = int(result.size - np.count_nonzero(np.isfinite(result)))
            raise RequestFailed("bad output", f"{bad} non-finite values in the output")
        return result


def _error_text(body: bytes, encoding: str | None) -> str:
    """The server's error message: the "error" field of its JSON answer, decoded by tritonclient."""
    try:
        answer = parse_response_body(body, content_encoding=encoding).get_response()
        return str(answer.get("error", answer))
    except Exception:  # noqa: BLE001 - not JSON: show the text itself
        return body[:2000].decode("utf-8", "replace").strip() or "(empty body)"


class SharedInput:
    """The input images in a POSIX shared-memory object that the server registers and reads directly.

    Only for a client on the server's host sharing its /dev/shm (docker: --ipc host on both
    containers): requests then carry a reference, not 9.6 MB of tensor, so neither the client nor
    the server copies the images through TCP. Removed again at exit (registration and object).
    Made, filled and removed by tritonclient.utils.shared_memory (in 2.21 and 2.51 alike).
    """

    def __init__(self, server: Server, images: np.ndarray) -> None:
        import tritonclient.utils.shared_memory as shm  # loads a C library: only when asked for

        self.shm = shm
        self.server = server
        self.name = f"infprov-input-{os.getpid()}"
        self.path = f"/dev/shm/{self.name}"
        self.registered = False
        self.handle: Any = None
        try:
            self.handle = shm.create_shared_memory_region(self.name, f"/{self.name}", int(images.nbytes))
            shm.set_shared_memory_region(self.handle, [np.ascontiguousarray(images)])
        except Exception as exc:  # noqa: BLE001 - SharedMemoryException, or /dev/shm full
            self.close()
            raise ClientError(f"cannot create {self.path} for --shared_memory: {exc}") from None
        try:
            server.client.register_system_shared_memory(self.name, f"/{self.name}", int(images.nbytes))
        except InferenceServerException as exc:
            self.close()
            raise ClientError(
                f"Triton at {server.url} cannot use shared memory {self.path}: {_reason(exc)}; the server must "
                f"share this client's /dev/shm (same host; docker --ipc host), or drop --shared_memory"
            ) from None
        except Exception as exc:  # noqa: BLE001
            self.close()
            raise ClientError(f"cannot register shared memory with Triton at {server.url}: {_reason(exc)}") from None
        finally:
            server.close()  # its connection would sit idle through the run
        self.registered = True

    def close(self) -> None:
        if self.registered:
            self.registered = False
            try:
                self.server.client.unregister_system_shared_memory(self.name)
            except Exception:  # noqa: BLE001, S110 - the server is gone: nothing left registered
                pass
            finally:
                self.server.close()
        handle, self.handle = self.handle, None
        if handle is not None:
            with contextlib.suppress(Exception):  # removed below if still there
                self.shm.destroy_shared_memory_region(handle)
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
    if numeric_dtype(datatype) is None:
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
    return data.astype(numeric_dtype(datatype), copy=False)


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
