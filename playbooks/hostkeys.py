"""Host keys pinned in a file: first contact checked against the fingerprints an instance reported (when
known) and recorded; every later contact must offer the same key."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import re
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

import paramiko

from infprov.floor.files import atomic_write, file_lock
from infprov.playbooks.errors import HostKeyChanged


def known_hosts_name(address: str, port: int) -> str:
    """The name known_hosts uses: `addr` on port 22, `[addr]:port` otherwise (OpenSSH and paramiko agree)."""
    return address if port == 22 else f"[{address}]:{port}"


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's SHA256 fingerprint, as `ssh-keygen -l` and EC2 console output print it."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


_FP_LINE = re.compile(r"\b(SHA256:[A-Za-z0-9+/]{43}|(?:[0-9a-f]{2}:){15}[0-9a-f]{2})\b")
_KEY_LINE = re.compile(r"^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp\d+)\s+([A-Za-z0-9+/=]+)")


def console_fingerprints(console_output: str) -> list[str]:
    """Host key fingerprints an EC2 instance printed to its console (cloud-init's FINGERPRINTS and KEYS blocks).

    Pass them as `expected_host_keys` so a first contact is checked instead of trusted; [] when none are there.
    """
    found: list[str] = []
    in_fps = in_keys = False
    for raw in console_output.splitlines():
        line = raw.split(": ", 1)[-1].strip() if "ec2:" in raw else raw.strip()
        if "BEGIN SSH HOST KEY FINGERPRINTS" in line:
            in_fps = True
        elif "END SSH HOST KEY FINGERPRINTS" in line:
            in_fps = False
        elif "BEGIN SSH HOST KEY KEYS" in line:
            in_keys = True
        elif "END SSH HOST KEY KEYS" in line:
            in_keys = False
        elif in_fps:
            found.extend(m.group(1) for m in _FP_LINE.finditer(line))
        elif in_keys and (m := _KEY_LINE.match(line)):
            try:
                digest = hashlib.sha256(base64.b64decode(m.group(2))).digest()
            except ValueError:
                continue
            found.append("SHA256:" + base64.b64encode(digest).decode().rstrip("="))
    return list(dict.fromkeys(found))


def _fingerprint_matches(key: paramiko.PKey, expected: Iterable[str]) -> bool:
    sha = fingerprint(key)
    md5 = ":".join(f"{b:02x}" for b in key.get_fingerprint())
    for item in expected:
        text = item.strip()
        if text == sha or text.lower() in (md5, "md5:" + md5):
            return True
    return False


class PinningPolicy(paramiko.MissingHostKeyPolicy):
    """First contact: check against expected fingerprints (when given), then record the key."""

    def __init__(self, path: Path, expected: Sequence[str] | None) -> None:
        self.path = path
        self.expected = list(expected) if expected else None

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        if self.expected is not None and not _fingerprint_matches(key, self.expected):
            raise HostKeyChanged(
                f"{hostname} offered host key {fingerprint(key)}, which is not among the "
                f"{len(self.expected)} fingerprint(s) the instance reported",
                "the host may be an impostor: check the instance's console output before trusting it",
            )
        record_host_key(self.path, hostname, key)


def record_host_key(path: Path, name: str, key: paramiko.PKey) -> None:
    """Append a key under a lock; if another process pinned a different key meanwhile, refuse."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with _locked(path):
        keys = paramiko.HostKeys()
        if path.exists():
            keys.load(str(path))
        known = keys.lookup(name)
        if known is not None and key.get_name() in known:
            if known[key.get_name()] != key:
                raise changed_error(name, path)
            return
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as fh:
            fh.write(f"{name} {key.get_name()} {key.get_base64()}\n")
        os.chmod(path, 0o600)


_PINNED: dict[str, tuple[tuple[int, int, int], paramiko.HostKeys]] = {}
_PINNED_LOCK = threading.Lock()


def pinned_keys(path: Path, name: str) -> dict[str, paramiko.PKey]:
    """The keys pinned for `name` (key type -> key), or {} when there are none or no file.

    The file is parsed once per version of it, not once per connection: a run on N hosts used to parse
    all N lines in each of its N connections (at 32 hosts, 1,024 key parses in the first task).
    """
    try:
        st = path.stat()
    except FileNotFoundError:
        return {}
    version = (st.st_ino, st.st_size, st.st_mtime_ns)
    with _PINNED_LOCK:
        cached = _PINNED.get(str(path))
        if cached is None or cached[0] != version:
            keys = paramiko.HostKeys()
            keys.load(str(path))
            cached = _PINNED[str(path)] = (version, keys)
        found = cached[1].lookup(name)
        return dict(found) if found is not None else {}


def forget_host_key(path: Path, address: str, port: int = 22) -> bool:
    """Drop a host's pinned keys (e.g. its instance was terminated); True if any were there."""
    if not path.exists():
        return False
    name = known_hosts_name(address, port)
    with _locked(path):
        keys = paramiko.HostKeys()
        keys.load(str(path))
        if keys.lookup(name) is None:
            return False
        del keys[name]
        atomic_write(path, "".join(f"{host} {kind} {key.get_base64()}\n"
                                   for host in keys for kind, key in keys[host].items()))
        return True


def _locked(path: Path) -> contextlib.AbstractContextManager[None]:
    return file_lock(path.with_name(path.name + ".lock"))


def changed_error(name: str, path: Path) -> HostKeyChanged:
    return HostKeyChanged(
        f"host key for {name} has CHANGED since it was pinned in {path}; refusing to connect "
        "(someone may be intercepting, or the host was rebuilt)",
        f"if the host was rebuilt on purpose, clear the old key with: ssh-keygen -R '{name}' -f {path}",
    )
