"""One bounded wait: EC2 states, SSH and Triton health all poll through it."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from infprov.floor.errors import WaitTimeout

T = TypeVar("T")


def wait_until(
    probe: Callable[[], T | None],
    *,
    what: str,
    timeout: float,
    interval: float = 1.0,
    hint: str = "",
    on_tick: Callable[[float], None] | None = None,
    last_state: Callable[[], str] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    errors: tuple[type[BaseException], ...] = (Exception,),
) -> T:
    """Call probe until it returns something other than None/False, or time runs out.

    probe may raise one of `errors` (default: any Exception), which counts as not ready yet; the last
    one is reported in the timeout message so the user sees why it never became ready, not only that
    it did not. Other exceptions end the wait at once.
    """
    start = clock()
    last_error: BaseException | None = None
    while True:
        try:
            value = probe()
            if value is not None and value is not False:
                return value
            last_error = None
        except errors as exc:  # the probe's own failures are part of the wait
            last_error = exc
        elapsed = clock() - start
        if on_tick is not None:
            on_tick(elapsed)
        if elapsed >= timeout:
            detail = ""
            if last_state is not None:
                detail = f" (last state: {last_state()})"
            elif last_error is not None:
                detail = f" (last error: {type(last_error).__name__}: {last_error})"
            raise WaitTimeout(f"gave up waiting for {what} after {timeout:.0f} s{detail}", hint)
        sleep(min(interval, max(0.0, timeout - elapsed)))
