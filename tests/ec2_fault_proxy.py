"""A fault-injecting proxy on loopback in front of the sandbox's EC2 endpoint (moto): it answers some
requests itself with EC2's error documents (throttling, 5xx, no capacity) and forwards the rest."""

from __future__ import annotations

import http.client
import threading
import urllib.parse
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# A rule sees the request's form (Action, parameters) and how many requests of that Action came
# before it; it returns None to forward the request, (HTTP status, EC2 error code) to answer it with
# that error instead, or (status, code, True) to forward it and then answer with the error anyway
# (the call was carried out, its answer lost on the way back).
Fault = tuple[int, str] | tuple[int, str, bool]
Rule = Callable[[dict[str, str], int], "Fault | None"]


def error_xml(code: str, message: str) -> str:
    """EC2's error document (the query protocol's shape, which botocore parses)."""
    return (f'<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>{code}</Code>'
            f"<Message>{message}</Message></Error></Errors><RequestID>fault</RequestID></Response>")


class FaultProxy:
    def __init__(self, upstream: str, rule: Rule) -> None:
        parsed = urllib.parse.urlsplit(upstream)
        self.upstream = (parsed.hostname or "127.0.0.1", parsed.port or 80)
        self.rule = rule
        self.seen: dict[str, int] = {}
        self.injected: list[tuple[str, int, str]] = []  # (Action, status, code)
        self.forwarded: list[str] = []
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                form = dict(urllib.parse.parse_qsl(body.decode()))
                action = form.get("Action", "")
                with owner.lock:
                    before = owner.seen.get(action, 0)
                    owner.seen[action] = before + 1
                    fault = owner.rule(form, before)
                    if fault:
                        owner.injected.append((action, fault[0], fault[1]))
                    else:
                        owner.forwarded.append(action)
                if fault and not (len(fault) > 2 and fault[2]):
                    self._answer(fault[0], {"Content-Type": "text/xml;charset=UTF-8"},
                                 error_xml(fault[1], f"injected by the fault proxy ({fault[1]})").encode())
                    return
                conn = http.client.HTTPConnection(*owner.upstream, timeout=60)
                try:
                    # Host as the client sent it: the request's SigV4 signature covers it
                    headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
                    conn.request("POST", self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                    keep = {k: v for k, v in resp.getheaders()
                            if k.lower() not in ("transfer-encoding", "connection", "content-length")}
                    if fault:  # carried out, answer lost
                        self._answer(fault[0], {"Content-Type": "text/xml;charset=UTF-8"},
                                     error_xml(fault[1], "injected after the call was carried out").encode())
                    else:
                        self._answer(resp.status, keep, data)
                finally:
                    conn.close()

            def _answer(self, status: int, headers: dict[str, str], data: bytes) -> None:
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FaultProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
