"""Bench: a host that streams one line without a newline, before and after the line cap (issue 23, item 8).

Before, each read appended to the whole buffer and split all of it again, so a newline-free line cost time
quadratic in its length and was kept whole (4 MiB took 0.39 s, 16 MiB 3.42 s when it was found). After, only
the new bytes are searched for a newline, and a line is cut at LINE_MAX (1 MiB) with a note.

    python -m bench.stream_lines [--sizes 4,16] [--runs 3]

For each size, in one run of the bench and on the same producer (`head -c N /dev/zero | tr '\\0' x`, read
through a pipe in 64 KiB reads as the connectors read):
  before  the old loop (`buf += chunk; *lines, buf = buf.split(b"\\n")`), reproduced here as it was;
  after   LocalConnection.stream, the connector itself (LineSplitter inside; SshConnection uses the same).
The best of --runs is printed per case, with the longest line handed over and the before/after ratio.
"""

from __future__ import annotations

import argparse
import os
import selectors
import subprocess
import time
from collections.abc import Callable

from infprov.playbooks.connection import LINE_MAX
from infprov.playbooks.localconn import LocalConnection


def producer(mib: int) -> str:
    return f"head -c {mib << 20} /dev/zero | tr '\\0' x; echo; echo end"


def before(command: str, on_line: Callable[[str], object]) -> None:
    """The streaming loop as it was (localconn.py before the cap)."""
    proc = subprocess.Popen(["/bin/sh", "-c", command], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    out = proc.stdout.fileno()
    buf = b""
    with selectors.DefaultSelector() as sel:
        sel.register(out, selectors.EVENT_READ)
        while True:
            if not sel.select(0.05):
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
    proc.wait()


def after(command: str, on_line: Callable[[str], object]) -> None:
    LocalConnection().stream(command, on_line)


def measure(fn: Callable[[str, Callable[[str], object]], None], command: str, runs: int) -> tuple[float, int, int]:
    """(best seconds, longest line, lines) over `runs` runs."""
    best = float("inf")
    longest = count = 0
    for _ in range(runs):
        lines: list[int] = []
        start = time.perf_counter()
        fn(command, lambda line, seen=lines: seen.append(len(line)))
        best = min(best, time.perf_counter() - start)
        longest, count = max(lines), len(lines)
    return best, longest, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="4,16", help="line lengths in MiB, comma-separated")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(f"one newline-free line streamed through a pipe; LINE_MAX = {LINE_MAX} bytes; best of {args.runs}")
    print(f"{'MiB':>5} {'before s':>9} {'after s':>9} {'ratio':>7}   longest line kept: before / after")
    for mib in (int(s) for s in args.sizes.split(",")):
        command = producer(mib)
        b_time, b_long, b_count = measure(before, command, args.runs)
        a_time, a_long, a_count = measure(after, command, args.runs)
        assert b_count == a_count == 2, (b_count, a_count)
        print(f"{mib:>5} {b_time:>9.3f} {a_time:>9.3f} {b_time / a_time:>6.1f}x   {b_long:,} / {a_long:,} bytes")


if __name__ == "__main__":
    main()
