"""The sandbox's EC2 API: a moto server on loopback with Neuron DLAMIs injected and validation on."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import socket
import sys
import urllib.request
from pathlib import Path

from infprov.floor.errors import InfprovError
from infprov.floor.wait import wait_until
from infprov.sandbox import daemon

HOST = "127.0.0.1"
PID_FILE = "moto.pid"
# What the running endpoint is: an endpoint started by an older infprov (plain moto, or without the
# power watch) is replaced by `start`, not reused.
SERVER_KIND = "ec2server-2"
# The sandbox's own endpoint (the one with the power watch) answers only requests signed with its own
# credentials (made at start, in its private state folder, 0600): no other local user can call it.
CREDENTIALS_FILE = "credentials.json"
KEY_HEADER = "X-Infprov-Sandbox-Key"  # moto's own /moto-api/ pages: the secret key, as a header
LOG_FILE = "moto.log"
AMIS_FILE = "neuron-amis.json"
START_TIMEOUT = 30.0

# The AWS account that publishes the Deep Learning AMIs; moto reports every injected image as
# owned by the "amazon" alias too, as AWS does for them.
DLAMI_OWNER = "898082745236"
CANONICAL_OWNER = "099720109477"

# A few images shaped like the real Neuron DLAMIs: releases up to 2.26.0 can drive Inf1, releases
# from 2.26.1 on cannot (their driver dropped Inf1), and a plain Ubuntu image for `--ami` tests.
# No creation_date: moto parses it in place when it loads the list, so a second load (every
# POST /moto-api/reset) fails on the already-parsed value. The date is in each name, as on AWS.
NEURON_AMIS: list[dict[str, object]] = [
    {
        "ami_id": "ami-0c1f5e2a9d4b70a11",
        "name": "Deep Learning AMI Neuron (Ubuntu 22.04) 20250919",
        "description": "Deep Learning AMI Neuron (Ubuntu 22.04) with Neuron SDK 2.26.0. "
        "Supported EC2 instances: Inf1, Inf2, Trn1, Trn1n, Trn2.",
    },
    {
        "ami_id": "ami-0b7e3d6c2a1f90b22",
        "name": "Deep Learning AMI Neuron (Ubuntu 22.04) 20250731",
        "description": "Deep Learning AMI Neuron (Ubuntu 22.04) with Neuron SDK 2.25.0. "
        "Supported EC2 instances: Inf1, Inf2, Trn1, Trn1n, Trn2.",
    },
    {
        "ami_id": "ami-0e4a9b8c7d6e50c33",
        "name": "Deep Learning Base Neuron AMI (Ubuntu 22.04) 20250919",
        "description": "Deep Learning Base Neuron AMI (Ubuntu 22.04) with Neuron SDK 2.26.0. "
        "Supported EC2 instances: Inf1, Inf2, Trn1, Trn1n, Trn2.",
    },
    {
        "ami_id": "ami-0d2c4e6f8a0b10d44",
        "name": "Deep Learning AMI Neuron PyTorch 1.13 (Ubuntu 20.04) 20250627",
        "description": "Deep Learning AMI Neuron PyTorch 1.13 (Ubuntu 20.04) with Neuron SDK 2.24.0. "
        "Supported EC2 instances: Inf1.",
    },
    {
        "ami_id": "ami-0f9a8b7c6d5e40e55",
        "name": "Deep Learning AMI Neuron (Ubuntu 22.04) 20251029",
        "description": "Deep Learning AMI Neuron (Ubuntu 22.04) with Neuron SDK 2.26.1. "
        "Supported EC2 instances: Inf2, Trn1, Trn1n, Trn2.",
    },
    {
        "ami_id": "ami-0a6b5c4d3e2f10f66",
        "name": "Deep Learning AMI Neuron (Ubuntu 22.04) 20251220",
        "description": "Deep Learning AMI Neuron (Ubuntu 22.04) with Neuron SDK 2.27.0. "
        "Supported EC2 instances: Inf2, Trn1, Trn1n, Trn2, Trn3.",
    },
    {
        "ami_id": "ami-0c3d2e1f0a9b80a77",
        "name": "Deep Learning Base Neuron AMI (Ubuntu 22.04) 20251220",
        "description": "Deep Learning Base Neuron AMI (Ubuntu 22.04) with Neuron SDK 2.27.0. "
        "Supported EC2 instances: Inf2, Trn1, Trn1n, Trn2, Trn3.",
    },
    {
        "ami_id": "ami-04b70fa74e45c3917",
        "name": "ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-20250925",
        "description": "Canonical, Ubuntu, 22.04 LTS, amd64 jammy image build on 2025-09-25",
        "owner_id": CANONICAL_OWNER,
    },
]


def ami_records() -> list[dict[str, object]]:
    """The images in the form MOTO_AMIS_PATH takes."""
    records = []
    for ami in NEURON_AMIS:
        record: dict[str, object] = {
            "owner_id": DLAMI_OWNER,
            "public": True,
            "virtualization_type": "hvm",
            "architecture": "x86_64",
            "state": "available",
            "platform": None,
            "image_type": "machine",
            "hypervisor": "xen",
            "root_device_name": "/dev/sda1",
            "root_device_type": "ebs",
            "sriov": "simple",
        }
        record.update(ami)
        records.append(record)
    return records


def start(state_dir: Path, port: int, watch_hosts: bool = False) -> str:
    """Start moto on 127.0.0.1:port (or find it already running); return its URL.

    watch_hosts: the sandbox's own endpoint also plays EC2's part when a host powers itself off
    (ec2server.watch_power): that host's instance is terminated."""
    state_dir.mkdir(parents=True, exist_ok=True)
    kind = _kind(watch_hosts)
    running = is_running(state_dir)
    if running and _read_kind(state_dir) == kind:
        return running
    if running:  # an older kind of endpoint: its instances go with it, as after any endpoint restart
        stop(state_dir)
    _clear(state_dir)
    _require_free(port)
    secured = []
    if watch_hosts:
        _make_credentials(state_dir)
        secured = ["--require-credentials", str(state_dir / CREDENTIALS_FILE)]
    amis = state_dir / AMIS_FILE
    amis.write_text(json.dumps(ami_records(), indent=1))
    env = dict(os.environ)
    env.update(
        {
            "MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION": "true",
            "MOTO_ENABLE_AMI_VALIDATION": "true",
            "MOTO_ENABLE_KEYPAIR_VALIDATION": "true",
            "MOTO_AMIS_PATH": str(amis),
        }
    )
    # The endpoint must never point at itself or at AWS through inherited settings.
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_EC2"):
        env.pop(name, None)
    proc = daemon.spawn(
        [*_server_command(), *(["--watch-sandbox-hosts"] if watch_hosts else []), *secured, "-H", HOST,
         "-p", str(port)],
        state_dir / PID_FILE, state_dir / LOG_FILE, cwd=state_dir, env=env, port=port, kind=kind,
    )
    url = f"http://{HOST}:{port}"

    def ready() -> bool:
        if proc.poll() is not None:
            raise _Exited(proc.returncode)
        return _answers(url, _key(state_dir))

    try:
        wait_until(ready, what=f"the EC2 endpoint on {HOST}:{port}", timeout=START_TIMEOUT, interval=0.1)
    except _Exited as exc:
        _clear(state_dir)
        raise InfprovError(
            f"the EC2 endpoint (moto) exited with code {exc.code} at start: {_tail(state_dir)}",
            f"see {state_dir / LOG_FILE}",
        ) from None
    except InfprovError:
        stop(state_dir)
        raise
    return url


def is_running(state_dir: Path) -> str | None:
    """The URL of the endpoint this state_dir started, if that very process still runs and answers."""
    info = daemon.running(state_dir / PID_FILE)
    if info is None or not isinstance(info.get("port"), int):
        return None
    url = f"http://{HOST}:{info['port']}"
    return url if _answers(url, _key(state_dir)) else None


def stop(state_dir: Path) -> None:
    """End the moto this state_dir started (only that PID); safe to call when it is not running."""
    daemon.stop(state_dir / PID_FILE)


# ---------------------------------------------------------------- helpers


class _Exited(Exception):
    def __init__(self, code: int | None) -> None:
        super().__init__(code)
        self.code = code


def _server_command() -> list[str]:
    # moto's server with the sandbox's additions (sandbox/ec2server.py)
    return [sys.executable, "-m", "infprov.sandbox.ec2server"]


def _require_free(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # as moto's server binds (SO_REUSEADDR): the last endpoint's connections in TIME-WAIT (a restart just
        # before) do not count, a socket that listens there does
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise InfprovError(
                    f"port {port} on {HOST} is taken by another program, so the sandbox's EC2 endpoint "
                    "cannot start there",
                    "choose a free port with INFPROV_SANDBOX_EC2_PORT=PORT (e.g. 5056) and run again",
                ) from None
            raise InfprovError(f"cannot use port {port} on {HOST}: {exc}", "set INFPROV_SANDBOX_EC2_PORT") from None


def credentials(state_dir: Path) -> tuple[str, str] | None:
    """The access key id and secret key the endpoint started in state_dir takes (None: it takes any)."""
    try:
        doc = json.loads((state_dir / CREDENTIALS_FILE).read_text())
        return str(doc["access_key"]), str(doc["secret_key"])
    except FileNotFoundError:
        return None
    except PermissionError:
        raise InfprovError("the sandbox's EC2 credentials are readable by root only",
                           "run infprov as root to use the sandbox") from None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _key(state_dir: Path) -> str | None:
    found = credentials(state_dir)
    return found[1] if found else None


def _make_credentials(state_dir: Path) -> None:
    """New credentials for this start of the endpoint, private to root (0600 in a 0700 folder)."""
    import secrets
    import string

    alphabet = string.ascii_uppercase + string.digits
    doc = {"access_key": "AKIA" + "".join(secrets.choice(alphabet) for _ in range(16)),
           "secret_key": secrets.token_urlsafe(30)}
    state_dir.chmod(0o700)
    path = state_dir / CREDENTIALS_FILE
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(doc, fh)
    os.replace(tmp, path)


def moto_api(url: str, state_dir: Path | None, path: str, method: str = "GET") -> urllib.request.Request:
    """A request to moto's own pages (/moto-api/...), with the endpoint's key where it wants one."""
    req = urllib.request.Request(f"{url}{path}", method=method)
    key = _key(state_dir) if state_dir is not None else None
    if key:
        req.add_header(KEY_HEADER, key)
    return req


def _answers(url: str, key: str | None = None) -> bool:
    # The dashboard page (10 kB, milliseconds), not /moto-api/data.json: that dumps every resource the
    # endpoint ever held (3 MB after one fault-test run, half a second idle) and, on a busy machine,
    # outlasted the timeout, so a running sandbox was reported "not up" (tests/sandbox/test_faults.py).
    req = urllib.request.Request(f"{url}/moto-api/", headers={KEY_HEADER: key} if key else {})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def _kind(watch_hosts: bool) -> str:
    """What a running endpoint must be to be kept: this kind, and for the sandbox's own (which frees and remakes
    the hosts of instances that powered themselves off) the very sandbox code this infprov carries, so an
    endpoint left running by an older infprov never remakes hosts the old way."""
    if not watch_hosts:
        return SERVER_KIND
    digest = hashlib.sha256()
    for source in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(source.name.encode() + b"\0" + source.read_bytes())
    return f"{SERVER_KIND}+watch+{digest.hexdigest()[:12]}"


def _read_kind(state_dir: Path) -> str | None:
    kind = (daemon.read(state_dir / PID_FILE) or {}).get("kind")
    return str(kind) if kind else None


def current(state_dir: Path, watch_hosts: bool) -> str | None:
    """The endpoint's URL if it runs and is of the kind `start` would start now."""
    running = is_running(state_dir)
    return running if running and _read_kind(state_dir) == _kind(watch_hosts) else None


def _clear(state_dir: Path) -> None:
    (state_dir / PID_FILE).unlink(missing_ok=True)


def _tail(state_dir: Path) -> str:
    try:
        lines = (state_dir / LOG_FILE).read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(lines[-3:]) or "(empty log)"
