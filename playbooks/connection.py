"""SSH to one host (the only module that touches paramiko): commands, and host keys pinned in a file."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import re
import select
import shlex
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import paramiko

from infprov.floor.files import atomic_write, file_lock
from infprov.inventory.model import Host
from infprov.playbooks.errors import CommandTimeout, HostKeyChanged, HostUnreachable


@dataclass(frozen=True)
class CommandResult:
    """What one remote command did."""

    command: str
    exit_code: int
    stdout: bytes
    stderr: bytes
    elapsed: float = 0.0

    @property
    def out(self) -> str:
        return self.stdout.decode("utf-8", "replace")

    @property
    def err(self) -> str:
        return self.stderr.decode("utf-8", "replace")

    def tail(self, lines: int = 20) -> str:
        """The last lines of stdout then stderr: what a failure report shows."""
        text = "\n".join(part.rstrip("\n") for part in (self.out, self.err) if part.strip())
        return "\n".join(text.splitlines()[-lines:])


class Connection(Protocol):
    """What modules need from a host: run a shell command line, with optional stdin bytes."""

    name: str

    def run(self, command: str, *, stdin: bytes | None = None, timeout: float | None = None) -> CommandResult:
        """Run `command` through the remote login shell; never raises for a non-zero exit."""
        ...

    def close(self) -> None: ...


# ---------------------------------------------------------------- host key pinning
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


class _PinningPolicy(paramiko.MissingHostKeyPolicy):
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
                raise _changed(name, path)
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


def _changed(name: str, path: Path) -> HostKeyChanged:
    return HostKeyChanged(
        f"host key for {name} has CHANGED since it was pinned in {path}; refusing to connect "
        "(someone may be intercepting, or the host was rebuilt)",
        f"if the host was rebuilt on purpose, clear the old key with: ssh-keygen -R '{name}' -f {path}",
    )


# ---------------------------------------------------------------- the SSH connection
class _QuickAckSocket(socket.socket):
    """A TCP socket that acknowledges what it reads at once instead of holding the ACK back.

    sshd leaves Nagle's algorithm on for non-interactive sessions, so after authentication its answer
    to the first channel open waits for the ACK of the message it sent just before, and Linux delays
    that ACK by ~40 ms: every connection's first command took ~45 ms instead of ~3. TCP_QUICKACK does
    not stick (the kernel may fall back to delayed ACKs), so it is set again before each read.
    """

    def recv(self, bufsize: int, flags: int = 0, /) -> bytes:
        if _TCP_QUICKACK is not None:
            with contextlib.suppress(OSError):
                self.setsockopt(socket.IPPROTO_TCP, _TCP_QUICKACK, 1)
        return super().recv(bufsize, flags)

    @classmethod
    def connect_to(cls, address: tuple[str, int], timeout: float) -> _QuickAckSocket:
        plain = socket.create_connection(address, timeout=timeout)
        try:
            sock = cls(plain.family, plain.type, plain.proto, fileno=plain.fileno())
        except BaseException:
            plain.close()
            raise
        plain.detach()
        sock.settimeout(timeout)
        return sock


# Linux only; elsewhere (e.g. macOS) the number may mean another option, so nothing is set there.
_TCP_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)


# AES-GCM first: its integrity check is part of the C decryption, whereas with the -ctr ciphers paramiko
# compares every packet's HMAC in a Python loop (about a quarter of the controller's CPU, profiled).
# Every other cipher paramiko knows stays allowed, in its own order, for servers without GCM.
_GCM_FIRST = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")


def _transport(sock: socket.socket, **kwargs: object) -> paramiko.Transport:
    transport = paramiko.Transport(sock, **kwargs)  # type: ignore[arg-type]
    options = transport.get_security_options()
    known = tuple(options.ciphers)
    options.ciphers = tuple(c for c in _GCM_FIRST if c in known) + tuple(c for c in known if c not in _GCM_FIRST)
    return transport


@dataclass
class _Link:
    """A host's one SSH connection: paramiko's client and its transport."""

    client: paramiko.SSHClient
    transport: paramiko.Transport

    def close(self) -> None:
        self.client.close()


class SshConnection:
    """One SSH connection per host, opened on first use and reused by every task."""

    def __init__(
        self,
        host: Host,
        known_hosts: Path,
        *,
        expected_fingerprints: Sequence[str] | None = None,
        connect_timeout: float = 10.0,
    ) -> None:
        self.host = host
        self.name = host.name
        self.known_hosts = known_hosts
        self.expected = expected_fingerprints
        self.connect_timeout = connect_timeout
        self._conn: _Link | None = None
        self._lock = threading.Lock()
        self._spare: Future[paramiko.Channel] | None = None  # the next command's channel, being opened

    def _open(self) -> paramiko.Transport:
        with self._lock:
            if self._conn is not None and self._conn.transport.is_active():
                return self._conn.transport
            h = self.host
            where = f"{h.user}@{h.address}:{h.port}"
            try:
                conn = self._connect()
            except HostKeyChanged:
                raise
            except paramiko.BadHostKeyException:
                raise _changed(known_hosts_name(h.address, h.port), self.known_hosts) from None
            except paramiko.AuthenticationException as exc:
                raise HostUnreachable(
                    f"{where}: authentication failed ({exc})",
                    f"check that {h.key_file or 'your SSH key'} is authorized for {h.user} on the host",
                ) from None
            except TimeoutError:
                raise HostUnreachable(
                    f"{where}: no answer within {self.connect_timeout:.0f} s",
                    "is the instance running and does its security group allow SSH from here?",
                ) from None
            except (OSError, paramiko.SSHException, EOFError) as exc:
                raise HostUnreachable(
                    f"{where}: cannot connect: {exc or type(exc).__name__}",
                    "is sshd running on the host and the address/port right in the inventory?",
                ) from None
            self._conn = conn
            conn.transport.set_keepalive(15)
            return conn.transport

    def _connect(self) -> _Link:
        h = self.host
        key_file = os.path.expanduser(h.key_file) if h.key_file else None
        # Our own socket, so TCP_NODELAY holds from the first packet: the handshake takes ~25 ms instead of
        # ~75, and each command ~3 ms instead of waiting out delayed ACKs (~45 ms); quick ACKs spare the
        # first command another ~45 ms (see _QuickAckSocket).
        sock = _QuickAckSocket.connect_to((h.address, h.port), self.connect_timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            # paramiko's client itself (no ~/.ssh/config, no system known_hosts): trust comes from our pinned
            # file only. (Fabric, used here before, cost ~0.2 s of import in every `infprov` command.)
            client = paramiko.SSHClient()
            client.set_missing_host_key_policy(_PinningPolicy(self.known_hosts, self.expected))
            name = known_hosts_name(h.address, h.port)
            for kind, key in pinned_keys(self.known_hosts, name).items():
                client.get_host_keys().add(name, kind, key)
            client.connect(
                h.address,
                port=h.port,
                username=h.user,
                key_filename=key_file or None,
                look_for_keys=key_file is None,
                allow_agent=key_file is None,
                timeout=max(1, int(self.connect_timeout)),
                banner_timeout=self.connect_timeout,
                auth_timeout=self.connect_timeout,
                sock=sock,
                transport_factory=_transport,  # type: ignore[arg-type]  # passes every keyword on
            )
            transport = client.get_transport()
            if transport is None:
                raise paramiko.SSHException("the connection closed during login")
        except BaseException:
            sock.close()
            raise
        return _Link(client, transport)

    def _session(self) -> paramiko.Channel:
        """A new channel on the host's one connection (opened on first use).

        Opening a channel costs a round trip to the host, and so does starting the command on it. So
        while one command runs, the channel for the next is opened in the background: a command then
        costs one round trip instead of two (on a link of 20 ms, ~20 ms saved per command).
        """
        transport = self._open()
        with self._lock:
            spare, self._spare = self._spare, None
        chan = None
        if spare is not None:
            with contextlib.suppress(Exception):  # a spare that failed: open one here and report that
                got = spare.result(timeout=self.connect_timeout)
                if got.active and not got.closed and got.get_transport() is transport:
                    chan = got
                else:
                    got.close()
        if chan is None:
            try:
                chan = transport.open_session(timeout=self.connect_timeout)
            except (paramiko.SSHException, OSError, EOFError) as exc:
                self._drop()
                raise HostUnreachable(f"{self.host.address}: connection lost: {exc}", "") from None
        self._prepare_spare(transport)
        return chan

    def _prepare_spare(self, transport: paramiko.Transport) -> None:
        future: Future[paramiko.Channel] = Future()

        def open_one() -> None:
            try:
                future.set_result(transport.open_session(timeout=self.connect_timeout))
            except BaseException as exc:  # noqa: BLE001 - handed to whoever takes the spare
                future.set_exception(exc)

        with self._lock:
            if self._spare is not None or self._conn is None:
                return
            self._spare = future
        threading.Thread(target=open_one, name=f"infprov-spare-{self.name}", daemon=True).start()

    def run(self, command: str, *, stdin: bytes | None = None, timeout: float | None = None) -> CommandResult:
        start = time.monotonic()
        chan = self._session()
        try:
            chan.exec_command(command)
            feeder: threading.Thread | None = None
            if stdin is not None:
                feeder = threading.Thread(target=_feed, args=(chan, stdin), daemon=True)
                feeder.start()
            else:
                chan.shutdown_write()
            out, err = _drain(chan, None if timeout is None else start + timeout, command, timeout)
            code = chan.recv_exit_status()
            if feeder is not None:
                feeder.join(5)
        finally:
            chan.close()
        return CommandResult(command, code, out, err, time.monotonic() - start)

    def stream(
        self,
        command: str,
        on_line: Callable[[str], object],
        *,
        stop: threading.Event | None = None,
        on_stop: str | None = None,
    ) -> int:
        """Run a command and hand each output line (stdout and stderr merged by the command) over as it
        arrives; when `stop` is set, run `on_stop` (e.g. a kill) once and keep draining until the end."""
        chan = self._session()
        try:
            chan.exec_command(command)
            chan.shutdown_write()
            buf = b""
            stopped = False
            while True:
                if stop is not None and stop.is_set() and not stopped:
                    stopped = True
                    if on_stop:
                        self.run(on_stop, timeout=30)
                if chan.recv_ready():
                    buf += chan.recv(65536)
                    *lines, buf = buf.split(b"\n")
                    for line in lines:
                        on_line(line.decode("utf-8", "replace"))
                    continue
                if chan.exit_status_ready() and not chan.recv_ready():
                    break
                select.select([chan], [], [], 0.05)
            if buf:
                on_line(buf.decode("utf-8", "replace"))
            return int(chan.recv_exit_status())
        finally:
            chan.close()

    def _drop(self) -> None:
        with self._lock:
            spare, self._spare = self._spare, None
            if spare is not None:
                spare.add_done_callback(_close_spare)
            if self._conn is not None:
                with contextlib.suppress(Exception):
                    self._conn.close()
            self._conn = None

    def close(self) -> None:
        self._drop()


def _close_spare(future: Future[paramiko.Channel]) -> None:
    if future.exception() is None:
        with contextlib.suppress(Exception):
            future.result().close()


def _feed(chan: paramiko.Channel, data: bytes) -> None:
    with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
        chan.sendall(data)
        chan.shutdown_write()


def _drain(chan: paramiko.Channel, deadline: float | None, command: str, timeout: float | None) -> tuple[bytes, bytes]:
    """Read stdout and stderr together until the command ends (a full buffer on one never blocks the other)."""
    out: list[bytes] = []
    err: list[bytes] = []
    while True:
        got = False
        while chan.recv_ready():
            out.append(chan.recv(65536))
            got = True
        while chan.recv_stderr_ready():
            err.append(chan.recv_stderr(65536))
            got = True
        if (chan.eof_received or chan.closed) and not chan.recv_ready() and not chan.recv_stderr_ready():
            break
        if deadline is not None and time.monotonic() > deadline:
            raise CommandTimeout(f"`{_short(command)}` still running after {timeout:.0f} s")
        if not got:
            select.select([chan], [], [], 0.1)
    return b"".join(out), b"".join(err)


def _short(command: str) -> str:
    return command if len(command) <= 100 else command[:97] + "..."


def quote(value: str) -> str:
    return shlex.quote(value)
