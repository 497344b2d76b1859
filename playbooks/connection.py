"""The connector interface (what the engine needs of a host) and its SSH implementation, the only code that
touches paramiko's sessions. Host keys are pinned by playbooks.hostkeys; playbooks.localconn runs on this
machine instead."""

from __future__ import annotations

import collections
import contextlib
import os
import select
import shlex
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

import paramiko

from infprov.inventory.model import Host
from infprov.playbooks.errors import CommandTimeout, FileTooLarge, HostKeyChanged, HostUnreachable
from infprov.playbooks.hostkeys import PinningPolicy, changed_error, known_hosts_name, pinned_keys

# What a host may make the controller hold. A host's output is outside data: a command that prints without
# end, or a line without a newline, must not take the controller's memory (or, split again and again, its CPU).
LINE_MAX = 1 << 20  # a streamed line longer than this is cut, with a note of what was dropped
OUTPUT_KEEP = 8 << 20  # of a command's stdout (and of its stderr) run() keeps the last this many bytes
STREAM_GRACE = 2.0  # seconds a stream reads on after its command exited, when the output has not ended


@dataclass(frozen=True)
class CommandResult:
    """What one remote command did."""

    command: str
    exit_code: int
    stdout: bytes
    stderr: bytes
    elapsed: float = 0.0
    dropped: int = 0  # bytes of output over run()'s `keep` that were not kept (stdout and stderr)

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


@dataclass(frozen=True)
class StreamResult:
    """How a streamed command ended: its exit code, and whether the run's stop signal ended it."""

    exit_code: int
    stopped: bool = False
    elapsed: float = 0.0


class OutputTail:
    """The last `keep` bytes of a stream, however much arrives; the rest is counted, not kept."""

    def __init__(self, keep: int) -> None:
        self.keep = max(0, keep)
        self._chunks: collections.deque[bytes] = collections.deque()
        self._size = 0
        self.dropped = 0

    def add(self, data: bytes) -> None:
        if not data:
            return
        self._chunks.append(data)
        self._size += len(data)
        while self._size > self.keep:
            over = self._size - self.keep
            first = self._chunks[0]
            if len(first) <= over:
                self._chunks.popleft()
                cut = len(first)
            else:
                self._chunks[0] = first[over:]
                cut = over
            self._size -= cut
            self.dropped += cut

    def value(self) -> bytes:
        """What was kept, after a one-line note when something was dropped."""
        data = b"".join(self._chunks)
        if not self.dropped:
            return data
        note = (f"[infprov: output cut: the first {self.dropped} bytes were dropped, the last {self._size} "
                "are kept]\n")
        return note.encode() + data


class LineSplitter:
    """Bytes in, lines out (to `on_line`), each new byte looked at once; a line over `limit` bytes is cut there,
    its rest dropped up to the next newline and told in a note at its end."""

    def __init__(self, on_line: Callable[[str], object], limit: int = LINE_MAX) -> None:
        self.on_line = on_line
        self.limit = limit
        self._parts: list[bytes] = []
        self._size = 0
        self._dropped = 0

    def feed(self, data: bytes) -> None:
        start = 0
        while True:
            end = data.find(b"\n", start)
            if end < 0:
                self._take(data[start:] if start else data)
                return
            self._take(data[start:end])
            self._emit()
            start = end + 1

    def close(self) -> None:
        """The last line, when the stream ended without a newline."""
        if self._parts or self._dropped:
            self._emit()

    def _take(self, piece: bytes) -> None:
        if not piece:
            return
        room = self.limit - self._size
        if len(piece) > room:
            if room > 0:
                self._parts.append(piece[:room])
                self._size += room
            self._dropped += len(piece) - max(room, 0)
            return
        self._parts.append(piece)
        self._size += len(piece)

    def _emit(self) -> None:
        line = b"".join(self._parts).decode("utf-8", "replace")
        if self._dropped:
            line += f" [infprov: line cut at {self.limit} bytes, {self._dropped} more dropped]"
        self._parts, self._size, self._dropped = [], 0, 0
        self.on_line(line)


# A command's stdin: bytes, or an open binary file sent in chunks (a model of gigabytes is never read whole).
Stdin = bytes | BinaryIO
STDIN_CHUNK = 1 << 20


def stdin_chunks(data: Stdin) -> Iterator[bytes]:
    if isinstance(data, bytes):
        if data:
            yield data
        return
    while chunk := data.read(STDIN_CHUNK):
        yield chunk


class Connection(Protocol):
    """What the engine needs of a host (pyinfra calls these connectors): run a command, stream one, move files.

    Commands are shell command lines for the host's login shell (callers quote every value); none of
    these raise for a command's non-zero exit, only for a host that cannot be reached (HostUnreachable).
    """

    name: str

    def run(self, command: str, *, stdin: Stdin | None = None, timeout: float | None = None,
            keep: int = OUTPUT_KEEP) -> CommandResult:
        """Run `command` and collect its output: of stdout and of stderr the last `keep` bytes, after a note
        of what was dropped (the result's `dropped` counts it)."""
        ...

    def stream(
        self,
        command: str,
        on_line: Callable[[str], object],
        *,
        stop: threading.Event | None = None,
        on_stop: str | None = None,
    ) -> StreamResult:
        """Run `command`, handing each output line over as it arrives (cut at LINE_MAX bytes); when `stop` is
        set, run `on_stop` once (e.g. a kill) and keep reading until the command ends."""
        ...

    def put_file(self, path: str, data: bytes, *, mode: int = 0o600) -> CommandResult:
        """Write `data` to the host's `path` (replaced whole, never half-written), with `mode`."""
        ...

    def get_file(self, path: str, *, limit: int = 256 << 20) -> bytes | None:
        """The bytes of the host's `path`, or None when it is not a readable file; more than `limit`
        bytes is refused (a host's file is outside data)."""
        ...

    def close(self) -> None: ...


def put_file_command(path: str, mode: int) -> str:
    """The shell line that writes stdin to `path` through a temporary file beside it, renamed into place."""
    tmp = f"{path}.infprov-tmp"
    q, qt = shlex.quote(path), shlex.quote(tmp)
    return f"umask 077 && cat > {qt} && chmod {mode:o} {qt} && mv -f -- {qt} {q}"


def get_file_command(path: str, limit: int) -> str:
    """The shell line that prints a regular file, refusing one over `limit` bytes (exit 27)."""
    q = shlex.quote(path)
    return f"test -f {q} && test -r {q} || exit 26; [ $(wc -c < {q}) -le {int(limit)} ] || exit 27; cat -- {q}"


def file_from(result: CommandResult, path: str, limit: int) -> bytes | None:
    """get_file's answer from the command's result (run with keep=limit). A host that sends more than the
    size it gave (its `wc` is the host's word) is refused the same way."""
    if result.exit_code == 27 or (result.exit_code == 0 and result.dropped):
        raise FileTooLarge(f"{path} on the host is over {limit} bytes; refusing to read it",
                           "see what wrote it there: a file of that size is not what infprov asked for")
    return result.stdout if result.exit_code == 0 else None


class ShellFiles:
    """put_file and get_file for a connector whose `run` reaches a POSIX shell (SSH, and this machine)."""

    def run(self, command: str, *, stdin: Stdin | None = None, timeout: float | None = None,
            keep: int = OUTPUT_KEEP) -> CommandResult:
        raise NotImplementedError

    def put_file(self, path: str, data: bytes, *, mode: int = 0o600) -> CommandResult:
        return self.run(put_file_command(path, mode), stdin=data)

    def get_file(self, path: str, *, limit: int = 256 << 20) -> bytes | None:
        return file_from(self.run(get_file_command(path, limit), keep=limit), path, limit)


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


class SshConnection(ShellFiles):
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
                raise changed_error(known_hosts_name(h.address, h.port), self.known_hosts) from None
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
            client.set_missing_host_key_policy(PinningPolicy(self.known_hosts, self.expected))
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

    def run(self, command: str, *, stdin: Stdin | None = None, timeout: float | None = None,
            keep: int = OUTPUT_KEEP) -> CommandResult:
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
            out, err = OutputTail(keep), OutputTail(keep)
            _drain(chan, None if timeout is None else start + timeout, command, timeout, out, err)
            code = chan.recv_exit_status()
            if feeder is not None:
                feeder.join(5)
        finally:
            chan.close()
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
        """Run a command and hand each output line over as it arrives (the command merges its stderr into
        stdout if it wants it seen); when `stop` is set, run `on_stop` once and keep draining to the end."""
        start = time.monotonic()
        chan = self._session()
        stopped = False
        try:
            chan.exec_command(command)
            chan.shutdown_write()
            lines = LineSplitter(on_line)
            exited: float | None = None
            while True:
                if stop is not None and stop.is_set() and not stopped:
                    stopped = True
                    if on_stop:
                        self.run(on_stop, timeout=30)
                if chan.recv_ready():
                    lines.feed(chan.recv(65536))
                    continue
                # sshd may report the exit before it has sent the last output: read on to the end of the
                # output (EOF), or for STREAM_GRACE after the exit when a child the command left holds it open
                if chan.eof_received or chan.closed:
                    break
                if chan.exit_status_ready():
                    exited = exited or time.monotonic()
                    if time.monotonic() - exited > STREAM_GRACE:
                        break
                select.select([chan], [], [], 0.05)
            lines.close()
            return StreamResult(int(chan.recv_exit_status()), stopped, time.monotonic() - start)
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


def _feed(chan: paramiko.Channel, data: Stdin) -> None:
    with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
        for chunk in stdin_chunks(data):
            chan.sendall(chunk)
        chan.shutdown_write()


def _drain(chan: paramiko.Channel, deadline: float | None, command: str, timeout: float | None,
           out: OutputTail, err: OutputTail) -> None:
    """Read stdout and stderr together until the command ends (a full buffer on one never blocks the other)."""
    while True:
        got = False
        while chan.recv_ready():
            out.add(chan.recv(65536))
            got = True
        while chan.recv_stderr_ready():
            err.add(chan.recv_stderr(65536))
            got = True
        if (chan.eof_received or chan.closed) and not chan.recv_ready() and not chan.recv_stderr_ready():
            break
        if deadline is not None and time.monotonic() > deadline:
            raise CommandTimeout(f"`{_short(command)}` still running after {timeout:.0f} s")
        if not got:
            select.select([chan], [], [], 0.1)


def _short(command: str) -> str:
    return command if len(command) <= 100 else command[:97] + "..."
