"""The connector for this machine itself: the same interface as SSH, with /bin/sh in place of a remote login.

The engine's tests run real modules through it (look, decide, act on real files) without a network, and a
playbook may target the controller with it.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Callable

from infprov.playbooks.connection import CommandResult, ShellFiles, StreamResult
from infprov.playbooks.errors import CommandTimeout


class LocalConnection(ShellFiles):
    """Runs command lines in a local shell, one process each."""

    def __init__(self, name: str = "local") -> None:
        self.name = name
        self.commands: list[str] = []  # every command line run, in order (what a test may check)

    def run(self, command: str, *, stdin: bytes | None = None, timeout: float | None = None) -> CommandResult:
        self.commands.append(command)
        start = time.monotonic()
        try:
            proc = subprocess.run(
                ["/bin/sh", "-c", command], input=stdin or b"", capture_output=True, timeout=timeout,
                start_new_session=True,
            )
        except subprocess.TimeoutExpired:
            raise CommandTimeout(f"`{command[:97]}` still running after {timeout:.0f} s") from None
        return CommandResult(command, proc.returncode, proc.stdout, proc.stderr, time.monotonic() - start)

    def stream(
        self,
        command: str,
        on_line: Callable[[str], object],
        *,
        stop: threading.Event | None = None,
        on_stop: str | None = None,
    ) -> StreamResult:
        self.commands.append(command)
        start = time.monotonic()
        proc = subprocess.Popen(
            ["/bin/sh", "-c", command], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, start_new_session=True
        )
        assert proc.stdout is not None
        out = proc.stdout.fileno()
        stopped = False
        buf = b""
        with selectors.DefaultSelector() as sel:
            sel.register(out, selectors.EVENT_READ)
            while True:
                if stop is not None and stop.is_set() and not stopped:
                    stopped = True
                    if on_stop:
                        self.run(on_stop, timeout=30)
                    else:
                        os.killpg(proc.pid, signal.SIGINT)
                if not sel.select(0.05):
                    # ended, and nothing written before the end is left to read (a child may hold the pipe)
                    if proc.poll() is not None and not sel.select(0):
                        break
                    continue
                chunk = os.read(out, 65536)
                if not chunk:
                    break
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    on_line(line.decode("utf-8", "replace"))
        proc.stdout.close()
        if buf:
            on_line(buf.decode("utf-8", "replace"))
        return StreamResult(proc.wait(), stopped, time.monotonic() - start)

    def close(self) -> None:
        pass

