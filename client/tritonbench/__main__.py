"""Run the benchmark client: `python3 -m tritonbench ...`, or the one-file client infprov ships."""

from __future__ import annotations

import sys


def entry(argv: list[str] | None = None) -> int:
    """Check the two packages the client needs, then run it; the exit code to leave with."""
    try:
        import numpy  # noqa: F401
        import tritonclient.http  # noqa: F401
    except ImportError as missing:
        sys.stderr.write(f"ERROR: this client needs numpy and tritonclient[http] ({missing}); "
                         "python3 -m pip install numpy 'tritonclient[http]'\n")
        return 1
    from .cli import main

    return main(argv)


if __name__ == "__main__":
    sys.exit(entry())
