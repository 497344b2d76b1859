"""Files written whole or not at all, and locks that make infprov processes take turns."""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from infprov.floor.wait import wait_until


def atomic_write(path: str | os.PathLike[str], data: bytes | str, *, mode: int = 0o600) -> None:
    """Replace path with data, or leave the old file as it was.

    The data goes to a temporary file in the same folder (so the rename stays on one file system),
    is flushed to disk, gets its mode (whatever the umask), and is renamed over path. A full disk or a
    read-only folder raises before the rename, and the temporary file is removed.
    """
    target = Path(path)
    raw = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def file_lock(
    lock_path: str | os.PathLike[str],
    *,
    timeout: float | None = None,
    what: str = "",
    hint: str = "",
    on_wait: Callable[[], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[None]:
    """Hold an exclusive flock on lock_path (made 0600 if missing) for the block.

    timeout None waits as long as it takes; otherwise a lock still held after timeout seconds raises
    WaitTimeout naming `what` (default: the lock file) with the hint. on_wait runs once, when the lock
    is found taken, e.g. to say that this run waits for another. The lock ends with the process too.
    """
    where = Path(lock_path)
    fd = os.open(where, os.O_RDWR | os.O_CREAT, 0o600)
    try:

        def take() -> bool:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            return True

        if not take():
            if on_wait is not None:
                on_wait()
            if timeout is None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            else:
                wait_until(take, what=what or f"the lock {where}", timeout=timeout, interval=0.05,
                           hint=hint or f"another infprov run holds it; remove {where} only if none runs",
                           clock=clock, sleep=sleep)
        yield
    finally:
        os.close(fd)  # closing releases the flock

