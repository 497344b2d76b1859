"""The benchmark client as one file: a zip application of the tritonbench package, run by `python3 FILE`.

Built the same way every time (sorted names, a fixed date, fixed modes), so the same sources give the
same bytes: a host that already holds this client gets nothing new to upload. Python runs a zip file
with a `__main__.py` at its root (the zipapp format), from 3.5 on; the SDK container has 3.8.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent / "tritonbench"
NAME = "triton-http-client.pyz"
_SHEBANG = b"#!/usr/bin/env python3\n"
_ROOT_MAIN = (
    '"""infprov\'s benchmark client, one file: python3 triton-http-client.pyz --help."""\n'
    "import sys\n\n"
    "from tritonbench.__main__ import entry\n\n"
    "sys.exit(entry())\n"
)
_DATE = (2020, 1, 1, 0, 0, 0)


def _entry(name: str, data: bytes) -> tuple[zipfile.ZipInfo, bytes]:
    info = zipfile.ZipInfo(name, date_time=_DATE)
    info.external_attr = 0o644 << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    return info, data


def zipapp_bytes() -> bytes:
    """The client as a runnable zip: the package's modules under tritonbench/, and a root __main__.py."""
    sources = sorted(p for p in PACKAGE.glob("*.py"))
    if not any(p.name == "cli.py" for p in sources):
        raise FileNotFoundError(f"the client's sources are missing from {PACKAGE}")
    buf = io.BytesIO()
    buf.write(_SHEBANG)
    with zipfile.ZipFile(buf, "a") as zf:
        for path in sources:
            zf.writestr(*_entry(f"tritonbench/{path.name}", path.read_bytes()))
        zf.writestr(*_entry("__main__.py", _ROOT_MAIN.encode()))
    return buf.getvalue()


def write_zipapp(dest: Path) -> Path:
    """Write the one-file client to dest (a folder gets NAME inside it); returns the file's path."""
    target = dest / NAME if dest.is_dir() else dest
    target.write_bytes(zipapp_bytes())
    target.chmod(0o755)
    return target


def digest() -> str:
    """SHA-256 of the one-file client, as a host would compute it of its copy."""
    return hashlib.sha256(zipapp_bytes()).hexdigest()
