"""What Triton itself says on each host (server ready, model ready, requests served), asked over SSH briefly.

Triton listens on the host's loopback only, so the question travels the way every other host command does:
one SSH login with infprov's key and pinned host keys, running a few lines of the host's python3 against
127.0.0.1:8000 (health, the model's readiness) and :8002 (Triton's Prometheus metrics). Every step has a
short bound (the login, each request, the whole command), and all hosts are asked at once, so `status`
answers within seconds also when a host is gone. What comes back is the host's output: it is checked
field by field and capped before it is shown.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# Triton's counter of requests it answered successfully, per model and version (Triton's metrics
# documentation, docs/metrics.md: "nv_inference_request_success: Number of successful inference requests,
# all batch sizes"); nv_inference_count counts inferences (images), not requests.
REQUESTS_METRIC = "nv_inference_request_success"

CONNECT_TIMEOUT = 5.0  # s: an SSH login that takes longer counts as unreachable
COMMAND_TIMEOUT = 10.0  # s: the whole probe on the host (each HTTP request: 2 s)
_MAX_WORKERS = 16

# Runs on the host as `python3 -c PROBE MODEL`; prints one JSON line. No proxy: only the loopback is asked.
PROBE = r"""
import json, sys, urllib.error, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
def get(path):
    try:
        with opener.open("http://127.0.0.1:" + path, timeout=2) as r:
            return r.status, r.read(4 << 20).decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, ""
    except Exception as e:
        return 0, type(e).__name__
server = get("8000/v2/health/ready")
model = get("8000/v2/models/" + sys.argv[1] + "/ready")
metrics = get("8002/metrics")
served = None
if metrics[0] == 200:
    served = 0
    for line in metrics[1].splitlines():
        if line.startswith(("METRIC{", "METRIC ")):
            try:
                served += int(float(line.rsplit(" ", 1)[1]))
            except (IndexError, ValueError):
                pass
print(json.dumps({"server": server[0], "server_error": server[1][:80] if server[0] == 0 else "",
                  "model": model[0], "metrics": metrics[0], "requests": served}))
""".replace("METRIC", REQUESTS_METRIC)


@dataclass(frozen=True)
class Health:
    """One host's Triton as it answered; reachable False: the SSH login (or the probe) failed, see error."""

    reachable: bool
    server_ready: bool | None = None
    model: str = ""
    model_ready: bool | None = None
    requests: int | None = None  # successful inference requests since the server started (None: no metrics)
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        """One short cell for the status table: `ready` is the server and the model ready."""
        if not self.reachable:
            return "unreachable"
        if not self.server_ready:
            return "not serving"
        if not self.model_ready:
            return "model NOT ready"
        return f"ready, {self.requests} req" if self.requests is not None else "ready, no metrics"


def command(model: str) -> str:
    """The shell command line the probe runs on a host (every value quoted)."""
    return f"python3 -c {shlex.quote(PROBE)} {shlex.quote(model)}"


def _shown(text: str, limit: int = 120) -> str:
    """Host or SSH text made one printable line of at most limit characters."""
    one = "".join(ch if ch.isprintable() else " " for ch in str(text)).strip()
    return one if len(one) <= limit else one[: limit - 3] + "..."


def parse(model: str, exit_code: int, out: str, err: str) -> Health:
    """The probe's output (hostile: anything a host prints) as a Health; anything unexpected is an error."""
    if exit_code != 0:
        tail = (err or out).strip().splitlines()[-1:] or [f"exit code {exit_code}"]
        return Health(True, None, model, None, None, _shown(f"the probe failed: {tail[0]}"))
    lines = out.strip().splitlines()
    try:
        doc = json.loads(lines[-1]) if lines and len(lines[-1]) < 4096 else None
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        return Health(True, None, model, None, None, "the probe printed no answer")
    server, model_code, requests = doc.get("server"), doc.get("model"), doc.get("requests")
    if not isinstance(server, int) or not isinstance(model_code, int):
        return Health(True, None, model, None, None, "the probe's answer is malformed")
    if not (requests is None or (isinstance(requests, int) and not isinstance(requests, bool) and requests >= 0)):
        requests = None
    error = ""
    if server == 0:
        error = _shown(f"nothing answers on 127.0.0.1:8000 ({doc.get('server_error', '')})", 80)
    elif server != 200:
        error = f"/v2/health/ready answered {server}"
    return Health(True, server == 200, model, model_code == 200, requests, error)


def probe_one(host: Any, model: str, known_hosts: Path) -> Health:
    """Ask one inventory host; never raises, never waits past the bounds above."""
    from infprov.playbooks.connection import SshConnection

    conn = SshConnection(host, known_hosts, connect_timeout=CONNECT_TIMEOUT)
    try:
        res = conn.run(command(model), timeout=COMMAND_TIMEOUT, keep=8192)
    except Exception as exc:  # noqa: BLE001 - any failure to reach the host is what this reports
        message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        return Health(False, None, model, None, None, _shown(message))
    finally:
        conn.close()
    return parse(model, res.exit_code, res.out, res.err)


def probe(hosts: Sequence[tuple[Any, str]], known_hosts: Path) -> list[Health]:
    """Each (inventory host, model name) asked at once; the answers in the same order."""
    if not hosts:
        return []
    with ThreadPoolExecutor(max_workers=min(_MAX_WORKERS, len(hosts))) as pool:
        return list(pool.map(lambda pair: probe_one(pair[0], pair[1], known_hosts), hosts))
