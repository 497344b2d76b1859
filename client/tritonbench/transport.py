"""HTTP for the benchmark client: the server's address, kept-alive connections that hand a prepared
request to the kernel as-is, and the client's errors and exit codes."""

from __future__ import annotations

import http.client
import socket
import struct
from typing import Any

from tritonclient.utils import InferenceServerException

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


CONTROL_TIMEOUT = 10.0  # seconds, for health, metadata and repository calls


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
