"""The connector for this machine itself: the same interface as SSH, with /bin/sh in place of a remote login.

The engine's tests run real modules through it (look, decide, act on real files) without a network, and a
playbook may target the controller with it.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from typing import IO

from infprov.playbooks.connection import (
    OUTPUT_KEEP,
    CommandResult,
    LineSplitter,
    OutputTail,
    ShellFiles,
    Stdin,
    StreamResult,
    stdin_chunks,
)
from infprov.playbooks.errors import CommandTimeout


class LocalConnection(ShellFiles):
    """Runs command lines in a local shell, one process each."""

    def __init__(self, name: str = "local") -> None:
        self.name = name
        self.commands: list[str] = []  # every command line run, in order (what a test may check)

    def run(self, command: str, *, stdin: Stdin | None = None, timeout: float | None = None,
            keep: int = OUTPUT_KEEP) -> CommandResult:
        self.commands.append(command)
        start = time.monotonic()
        deadline = None if timeout is None else start + timeout
        proc = subprocess.Popen(
            ["/bin/sh", "-c", command], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True,
        )
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        feeder = threading.Thread(target=_feed, args=(proc.stdin, stdin or b""), daemon=True)
        feeder.start()
        tails = {proc.stdout.fileno(): OutputTail(keep), proc.stderr.fileno(): OutputTail(keep)}
        out, err = tails.values()
        try:
            with selectors.DefaultSelector() as sel:
                for fd in tails:
                    sel.register(fd, selectors.EVENT_READ)
                while sel.get_map():
                    wait = None if deadline is None else deadline - time.monotonic()
                    if wait is not None and wait <= 0:
                        _kill(proc)
                        raise CommandTimeout(f"`{command[:97]}` still running after {timeout:.0f} s")
                    for key, _ in sel.select(wait):
                        chunk = os.read(key.fd, 65536)
                        if chunk:
                            tails[key.fd].add(chunk)
                        else:
                            sel.unregister(key.fd)
            code = proc.wait()
        finally:
            proc.stdout.close()
            proc.stderr.close()
            feeder.join(5)
        return CommandResult(command, code, out.value(), err.value(), time.monotonic() - start,
                             out.dropped + err.dropped)

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
        lines = LineSplitter(on_line)
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
                lines.feed(chunk)
        proc.stdout.close()
        lines.close()
        return StreamResult(proc.wait(), stopped, time.monotonic() - start)

    def close(self) -> None:
        pass



def _feed(pipe: IO[bytes], data: Stdin) -> None:
    """Write a command's stdin (in a thread of its own, so a full output pipe never blocks it) and close it."""
    try:
        for chunk in stdin_chunks(data):
            pipe.write(chunk)
    except (BrokenPipeError, OSError):
        pass
    finally:
        with contextlib.suppress(OSError):
            pipe.close()


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """End a command that ran out of time, with whatever it started (it leads a session of its own)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
