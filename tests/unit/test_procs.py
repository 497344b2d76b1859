"""The interrupt tests' child processes get SIGINT's default disposition even when the test run itself was
started with SIGINT ignored (`nohup ./scripts/test &` from a script)."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.procs import Child

_SHOW = ("import signal; h = signal.getsignal(signal.SIGINT)\n"
         "print('ignored' if h == signal.SIG_IGN else 'keyboardinterrupt' if h is signal.default_int_handler else h)")
_WAIT = "import time; print('ready', flush=True); time.sleep(3600)"


@pytest.fixture()
def sigint_ignored() -> Iterator[None]:
    """This process as a background job of a non-interactive shell leaves it: SIGINT ignored."""
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def test_a_plain_child_inherits_the_ignored_sigint(sigint_ignored: None) -> None:
    shown = subprocess.run([sys.executable, "-c", _SHOW], capture_output=True, text=True, check=True)
    assert shown.stdout.strip() == "ignored"


def test_a_child_gets_the_default_disposition_back(sigint_ignored: None) -> None:
    child = Child([sys.executable, "-c", _SHOW])
    try:
        assert child.finish(60) == 0, child.err
    finally:
        child.kill()
    assert child.out.strip() == "keyboardinterrupt"


def test_sigint_reaches_a_child_of_a_run_that_ignores_it(sigint_ignored: None) -> None:
    child = Child([sys.executable, "-c", _WAIT])
    try:
        child.wait_for("ready", stream="out", timeout=60)
        child.send(signal.SIGINT)
        code = child.finish(60)
    finally:
        child.kill()
    assert code == -signal.SIGINT, child.err
    assert "KeyboardInterrupt" in child.err


def test_waiting_for_a_line_fails_at_once_when_the_process_ends_without_it() -> None:
    child = Child([sys.executable, "-c", "print('something else')"])
    try:
        with pytest.raises(AssertionError, match="the process ended"):
            child.wait_for("never printed", stream="out", timeout=120)
    finally:
        child.kill()
