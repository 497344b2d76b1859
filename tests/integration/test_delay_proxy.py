"""bench/delay_proxy.py forwards both ways, in order, to the end (its delay is measured by the benches)."""

from __future__ import annotations

import socket
import threading

import pytest

from bench.delay_proxy import DelayProxy


def _echo_server() -> tuple[socket.socket, threading.Thread]:
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return server, thread


def test_forwards_both_ways_in_order_and_passes_the_end_on() -> None:
    server, thread = _echo_server()
    with server, DelayProxy(server.getsockname()[:2], rtt_ms=2) as proxy:
        assert proxy.port != server.getsockname()[1]
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
            for message in (b"abc", bytes(range(256)) * 800, b"last"):
                sock.sendall(message)
                got = b""
                while len(got) < len(message):
                    chunk = sock.recv(65536)
                    assert chunk, "the proxy closed early"
                    got += chunk
                assert got == message
            sock.shutdown(socket.SHUT_WR)
            assert sock.recv(10) == b""  # the server saw the end, closed, and that came back through
        thread.join(10)
        assert not thread.is_alive()


def test_refuses_a_negative_delay() -> None:
    with pytest.raises(ValueError, match="rtt_ms"):
        DelayProxy(("127.0.0.1", 1), rtt_ms=-1)
