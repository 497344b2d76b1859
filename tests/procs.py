"""Child processes for the tests that interrupt them.

A test run started in the background from a script (`nohup ./scripts/test &` in a non-interactive shell)
inherits SIGINT and SIGQUIT ignored, and so would every child it starts: a SIGINT sent to such a child is
lost and the test measures nothing. `Child` starts its process through a small exec wrapper that puts the
signals a test sends back to their default disposition first (Python then installs its own SIGINT handler
as it does in a terminal), and reads the child's output line by line so a test can wait for an event it
can see (a line printed) instead of for a time.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import IO

# The signals a test may send, back to their defaults before the command is executed. An ignored signal
# stays ignored across exec; a default one stays default (and Python turns a default SIGINT into
# KeyboardInterrupt, as in a terminal).
_RESET = ("import os, signal, sys\n"
          "for s in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT, signal.SIGHUP):\n"
          "    signal.signal(s, signal.SIG_DFL)\n"
          "os.execvp(sys.argv[1], sys.argv[1:])\n")


def with_default_signals(argv: Sequence[str]) -> list[str]:
    """argv, run with SIGINT, SIGTERM, SIGQUIT and SIGHUP at their default disposition."""
    return [sys.executable, "-c", _RESET, *argv]


def infprov_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "infprov.provision.cli", *args]


class Child:
    """A process of its own, its output read as it comes, both streams kept."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str] | None = None) -> None:
        self.argv = list(argv)
        self.proc = subprocess.Popen(with_default_signals(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE,
                                     text=True, env=dict(os.environ if env is None else env))
        self.err_lines: list[str] = []
        self.out_lines: list[str] = []
        self._cond = threading.Condition()
        self._readers = [threading.Thread(target=self._read, args=(self.proc.stderr, self.err_lines), daemon=True),
                         threading.Thread(target=self._read, args=(self.proc.stdout, self.out_lines), daemon=True)]
        for t in self._readers:
            t.start()

    @classmethod
    def infprov(cls, *args: str, env: Mapping[str, str] | None = None) -> Child:
        return cls(infprov_argv(*args), env)

    def _read(self, stream: IO[str], into: list[str]) -> None:
        for line in stream:
            with self._cond:
                into.append(line)
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def wait_for(self, text: str, timeout: float = 300, count: int = 1, stream: str = "err") -> None:
        """Until `count` lines of the stream contain `text`. The timeout only bounds a run that went wrong
        (it is generous: a busy machine is slow, never wrong); the process ending first fails at once."""
        lines = self.err_lines if stream == "err" else self.out_lines
        deadline = time.monotonic() + timeout
        with self._cond:
            while sum(text in line for line in lines) < count:
                left = deadline - time.monotonic()
                assert left > 0, f"never saw {text!r} (x{count}) in {timeout:g} s:\n{self.err}"
                ended = self.proc.poll() is not None and not any(t.is_alive() for t in self._readers)
                assert not ended, f"the process ended (exit {self.proc.returncode}) before {text!r}:\n{self.err}"
                self._cond.wait(min(left, 0.5))

    def send(self, signum: int) -> None:
        assert self.proc.poll() is None, f"the process already ended (exit {self.proc.returncode}):\n{self.err}"
        self.proc.send_signal(signum)

    def finish(self, timeout: float = 300) -> int:
        code = self.proc.wait(timeout)
        for t in self._readers:
            t.join(10)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
        for t in self._readers:
            t.join(10)

    @property
    def err(self) -> str:
        return "".join(self.err_lines)

    @property
    def out(self) -> str:
        return "".join(self.out_lines)


def progress_lines(text: str) -> list[str]:
    """The lines of a play's progress output, each task's " in N.N s" (shown when a task was slow, which on a
    busy machine any may be) taken off, so a test can look for a task's line whatever the machine's speed."""
    return [re.sub(r" in \d+\.\d s$", "", line) for line in text.splitlines()]


def wait_until(what: str, check: Callable[[], bool], timeout: float = 300, every: float = 0.2) -> None:
    """Poll an event a test can see (a counter on a server, a file, a process) until it holds."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what}: not seen in {timeout:g} s"
        time.sleep(every)


def served_on_host(instance_id: str, model: str) -> int:
    """How many inference requests the Triton on an inventory host has answered for a model (its own
    statistics, read on the host over infprov's pinned SSH connection)."""
    import shlex

    from tests.hostshell import on_host

    text = on_host(instance_id, "curl -sf " + shlex.quote(f"http://127.0.0.1:8000/v2/models/{model}/stats"))
    return int(json.loads(text)["model_stats"][0]["inference_stats"]["success"]["count"])
