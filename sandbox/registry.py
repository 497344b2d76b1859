"""The sandbox's stand-in for ECR's data plane: a real distribution registry (Debian's `docker-registry`) on the
sandbox bridge's address, behind ECR's kind of login (user AWS, the password ECR's authorization token carries).

moto answers ECR's API (the control plane) but holds no image bytes; the hosts' docker pushes and pulls here,
and the sandbox provider tells moto of each push (what ECR learns from the push itself) and maps moto's registry
address (`ACCOUNT.dkr.ecr.REGION.amazonaws.com`) to this one. The seal lets a host open a connection to this
port of the machine and no other but the download server's.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path

from infprov.floor.errors import InfprovError
from infprov.sandbox import daemon, network

PORT = network.REGISTRY_PORT
BINARY = "docker-registry"  # Debian's package of the distribution registry (2.8 on bookworm)
PID_FILE = "registry.pid"
LOG_FILE = "registry.log"
MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def address(gateway: str) -> str:
    return f"{gateway}:{PORT}"


def _config(state_dir: Path, gateway: str) -> str:
    # YAML is a superset of JSON: the config is written as JSON so no value is ever parsed as YAML syntax
    return json.dumps({
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(state_dir / "data")}, "delete": {"enabled": True}},
        "http": {"addr": address(gateway), "headers": {"X-Content-Type-Options": ["nosniff"]}},
        "auth": {"htpasswd": {"realm": "infprov-sandbox-ecr", "path": str(state_dir / "htpasswd")}},
    }, indent=1)


def _answers(gateway: str) -> bool:
    """The registry answers /v2/ (with 401: it wants the login)."""
    try:
        with urllib.request.urlopen(f"http://{address(gateway)}/v2/", timeout=2) as resp:
            return resp.status in (200, 401)
    except urllib.error.HTTPError as exc:
        return exc.code == 401
    except OSError:
        return False


def is_running(state_dir: Path, gateway: str) -> bool:
    return daemon.running(state_dir / PID_FILE) is not None and _answers(gateway)


def start(state_dir: Path, gateway: str, user: str, password: str) -> str:
    """Serve the registry on gateway:PORT, its login the one given (ECR's, as moto hands it out); return its
    address. Started already with that login: nothing changes."""
    import bcrypt

    binary = shutil.which(BINARY)
    if binary is None:
        raise InfprovError(f"the sandbox's registry ({BINARY}) is not installed", f"apt-get install -y {BINARY}")
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    state_dir.chmod(0o700)
    htpasswd = state_dir / "htpasswd"
    if is_running(state_dir, gateway) and _login_works(gateway, user, password):
        return address(gateway)
    stop(state_dir)
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=10)).decode()
    _private_write(htpasswd, f"{user}:{hashed}\n")
    _private_write(state_dir / "config.yml", _config(state_dir, gateway))
    daemon.check_port_free(gateway, PORT, "the sandbox's registry")
    daemon.spawn_until(lambda: _answers(gateway), [binary, "serve", str(state_dir / "config.yml")],
                       state_dir / PID_FILE, state_dir / LOG_FILE, cwd=state_dir,
                       env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
                       what=f"the sandbox's registry on {address(gateway)}")
    return address(gateway)


def stop(state_dir: Path) -> None:
    daemon.stop(state_dir / PID_FILE)


def wipe(state_dir: Path, gateway: str, user: str, password: str) -> None:
    """Every image gone, as when ECR deletes a repository: the registry restarts on empty storage."""
    stop(state_dir)
    shutil.rmtree(state_dir / "data", ignore_errors=True)
    start(state_dir, gateway, user, password)


def _auth(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _login_works(gateway: str, user: str, password: str) -> bool:
    req = urllib.request.Request(f"http://{address(gateway)}/v2/", headers={"Authorization": _auth(user, password)})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def manifest(gateway: str, user: str, password: str, repository: str, tag: str) -> tuple[str, str]:
    """(manifest, media type) the registry holds for repository:tag, as ECR's PutImage takes them."""
    req = urllib.request.Request(
        f"http://{address(gateway)}/v2/{repository}/manifests/{tag}",
        headers={"Authorization": _auth(user, password), "Accept": f"{MANIFEST_V2}, {OCI_MANIFEST}"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            body = resp.read(4 << 20).decode()
            kind = resp.headers.get("Content-Type", MANIFEST_V2).split(";")[0].strip()
    except OSError as exc:
        raise InfprovError(f"the sandbox's registry has no {repository}:{tag} ({exc})", "push it again") from None
    return body, kind


def _private_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)

