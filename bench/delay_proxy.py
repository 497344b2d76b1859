"""A TCP forwarder on 127.0.0.1 that delays every byte by half a round trip in each direction.

For benchmarks only: it stands in for the network between a user's machine and instances in a
region (tens of ms), which this machine cannot otherwise emulate (its kernel has no netem). It adds
latency only; bandwidth and loss are left alone. Runs its own event loop in a background thread.

    with DelayProxy(("10.237.0.11", 22), rtt_ms=20) as proxy:
        ssh to 127.0.0.1:proxy.port

A bench whose controller is Python itself runs the forwarders in a process of their own (ProxyProcess:
`python -m bench.delay_proxy --rtt MS HOST:PORT...`, one event loop for every target), so their work
does not wait for the controller's threads to hand over the interpreter lock (every 5 ms), nor theirs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence


class DelayProxy:
    """One forwarder. As a context manager it runs in a thread of its own; `_accept` serves any loop."""

    def __init__(self, target: tuple[str, int], rtt_ms: float) -> None:
        if rtt_ms < 0:
            raise ValueError(f"rtt_ms must be >= 0, not {rtt_ms}")
        self.target = target
        self.one_way = rtt_ms / 2000.0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def __enter__(self) -> DelayProxy:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="delay-proxy", daemon=True)
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _start(self) -> asyncio.Server:
        return await asyncio.start_server(self._accept, "127.0.0.1", 0)

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection(*self.target)
        except OSError:
            client_w.close()
            return
        for reader, writer in ((client_r, server_w), (server_r, client_w)):
            task = asyncio.create_task(self._pipe(reader, writer))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Forward in order; each chunk leaves one_way seconds after it arrived."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def send() -> None:
            while True:
                due, data = await queue.get()
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if not data:
                    with contextlib.suppress(OSError):
                        writer.write_eof()
                    return
                writer.write(data)
                await writer.drain()

        sender = asyncio.create_task(send())
        try:
            while True:
                data = await reader.read(65536)
                queue.put_nowait((loop.time() + self.one_way, data))
                if not data:
                    break
            await sender
        except (OSError, asyncio.CancelledError):
            sender.cancel()
        finally:
            with contextlib.suppress(OSError):
                writer.close()


class ProxyProcess:
    """Delaying forwarders for many targets in one child process; `ports[i]` forwards to `targets[i]`.

    The child stops when we close its stdin (or when we die and the pipe closes); we end it by its PID.
    """

    def __init__(self, targets: Sequence[tuple[str, int]], rtt_ms: float) -> None:
        if rtt_ms < 0:
            raise ValueError(f"rtt_ms must be >= 0, not {rtt_ms}")
        self.targets = list(targets)
        self.rtt_ms = rtt_ms
        self.ports: list[int] = []
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self._proc is not None, "the forwarder process is not running"
        return self._proc.pid

    def __enter__(self) -> ProxyProcess:
        args = [sys.executable, "-m", "bench.delay_proxy", "--rtt", str(self.rtt_ms)]
        args += [f"{host}:{port}" for host, port in self.targets]
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        self._proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=root)
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            self.__exit__()
            raise RuntimeError("the forwarder process exited before it listened")
        self.ports = [int(p) for p in json.loads(line)]
        return self

    def __exit__(self, *exc: object) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with contextlib.suppress(OSError):
            assert proc.stdin is not None
            proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(5)
        if proc.stdout is not None:
            proc.stdout.close()


def _serve(targets: list[tuple[str, int]], rtt_ms: float) -> None:
    """Listen for every target, print the ports as one JSON line, forward until stdin closes."""

    async def main() -> None:
        proxies = [DelayProxy(t, rtt_ms) for t in targets]
        servers = [await asyncio.start_server(p._accept, "127.0.0.1", 0) for p in proxies]
        print(json.dumps([s.sockets[0].getsockname()[1] for s in servers]), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.buffer.read)
        for server in servers:
            server.close()
        for p in proxies:
            for task in list(p._tasks):
                task.cancel()
            await asyncio.gather(*p._tasks, return_exceptions=True)

    asyncio.run(main())


def _target(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT")
    return host, int(port)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="delaying forwarders on 127.0.0.1 (stop: close stdin)")
    parser.add_argument("--rtt", type=float, required=True, metavar="MS")
    parser.add_argument("targets", nargs="+", type=_target, metavar="HOST:PORT")
    ns = parser.parse_args()
    if ns.rtt < 0:
        parser.error("--rtt must be 0 or more milliseconds")
    _serve(ns.targets, ns.rtt)
