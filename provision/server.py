"""The server step of `infprov up`: run the `server` playbook on a cluster's hosts and report readiness."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infprov.floor import paths
from infprov.floor.errors import InfprovError
from infprov.provision import catalog

CONTAINER = "infprov-triton"
PORT = 8000


@dataclass(frozen=True)
class HostReady:
    instance_id: str
    address: str
    model: str
    ready: bool
    changed: int
    seconds: float
    error: str = ""
    environment: str = ""  # built, pulled or kept (the environment cache; "" when it was not asked)
    environment_s: float = 0.0
    model_source: str = ""  # built (compiled here), pulled or kept, likewise
    model_s: float = 0.0


    @property
    def endpoint(self) -> str:
        """Where Triton listens: the host's loopback (server.yml publishes nothing on the network)."""
        return f"http://127.0.0.1:{PORT} on {self.address}"

    def to_dict(self) -> dict[str, Any]:
        return {"instance_id": self.instance_id, "address": self.address, "endpoint": self.endpoint,
                "model": self.model, "ready": self.ready, "changed": self.changed,
                "ready_s": round(self.seconds, 2), "error": self.error,
                **({"environment": {"source": self.environment, "seconds": round(self.environment_s, 2)}}
                   if self.environment else {}),
                **({"compiled_model": {"source": self.model_source, "seconds": round(self.model_s, 2)}}
                   if self.model_source else {})}


@dataclass(frozen=True)
class ServerResult:
    hosts: tuple[HostReady, ...]
    log: str | None
    elapsed: float

    @property
    def ok(self) -> bool:
        return all(h.ready for h in self.hosts)

    @property
    def changed(self) -> int:
        return sum(h.changed for h in self.hosts)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "changed": self.changed, "elapsed_s": round(self.elapsed, 2), "log": self.log,
                "hosts": [h.to_dict() for h in self.hosts]}


def provision(
    cluster: str,
    instance_ids: list[str],
    *,
    group_vars: Mapping[str, Any] | None = None,
    inventory: str | None = None,
    on_event: Callable[[Any], None] | None = None,
    extra_vars: dict[str, Any] | None = None,
    model: str | None = None,
) -> ServerResult:
    """Run server.yml on the given hosts of the cluster, all in parallel; one bad host never stops the rest.
    group_vars (the provider's: what its hosts need instead of server.yml's defaults) are recorded for the
    cluster in the inventory first, where `infprov play` and ansible-playbook see them too."""
    from infprov.inventory import store
    from infprov.playbooks.runner import run_playbook

    inv_path = paths.inventory_file(inventory)
    if group_vars:
        store.set_group_vars(inv_path, cluster, dict(group_vars))
    inv = store.load(inv_path)
    missing = [i for i in instance_ids if inv.find(i) is None]
    if missing:
        raise InfprovError(f"hosts {', '.join(missing)} are not in {inv_path}", "run `infprov up` again")
    result = run_playbook(
        "server", inv, limit=instance_ids, extra_vars=extra_vars or {}, on_event=on_event,
        known_hosts=paths.known_hosts(), runs_dir=paths.runs_dir(),
    )
    hosts = []
    for iid, seen in zip(instance_ids, result.outcomes(instance_ids), strict=True):
        host = inv.find(iid)
        assert host is not None
        model_ = model or str(result.registered.get(iid, {}).get("model_name", "")) or model_of(host)
        tail = " | ".join(line for line in seen.tail.splitlines()[-4:] if line.strip())
        error = seen.error + (f": {tail}" if tail and seen.error else "")
        hosts.append(HostReady(
            instance_id=iid, address=host.address, model=model_, ready=seen.ok, changed=seen.changed,
            seconds=seen.seconds, error=error,
        ))
    return ServerResult(tuple(hosts), str(result.log_path) if result.log_path else None, result.elapsed)


def model_of(host: Any) -> str:
    cores = getattr(host, "neuron_cores", None)
    return catalog.model_for_cores(cores) if cores else ""


def log_command(tail: int | None, follow: bool) -> str:
    parts = ["docker", "logs"]
    if tail is not None:
        parts += ["--tail", str(tail)]
    if follow:
        parts.append("-f")
    return " ".join([*parts, CONTAINER])


# Where start.sh keeps setup.sh's output on a host (server.yml's python_backend_dir, mounted in the container)
SETUP_LOG = "/home/ubuntu/python_backend/infprov/setup.log"


def setup_log_command(tail: int | None, follow: bool) -> str:
    """Print (or follow) the setup run's log on the host; a host without one says why, in one line."""
    import shlex

    path = shlex.quote(SETUP_LOG)
    lines = f"-n {int(tail)}" if tail is not None else "-n +1"
    show = f"tail {lines}{' -F' if follow else ''} {path}"
    missing = shlex.quote(
        f"error: no setup log on this host ({SETUP_LOG}). hint: setup.sh writes it when a host's environment "
        "image is built (the first `infprov up`); an image built before infprov kept it has none: "
        "`infprov logs` shows the server's own log")
    return f"if [ -r {path} ]; then {show}; else echo {missing} >&2; exit 1; fi"


def ssh_argv(host: Any, known_hosts: Path) -> list[str]:
    """The ssh command line that logs in to a host with infprov's key and pinned host keys."""
    argv = ["ssh", "-o", f"UserKnownHostsFile={known_hosts}", "-o", "StrictHostKeyChecking=yes",
            "-p", str(host.port)]
    if host.key_file:
        argv += ["-i", str(host.key_file), "-o", "IdentitiesOnly=yes"]
    # `-l` and `--`: neither the user nor the address can ever be read as an ssh option
    return [*argv, "-l", str(host.user), "--", str(host.address)]


def tunnel_argv(host: Any, known_hosts: Path, port: int, local_port: int) -> list[str]:
    """ssh that only forwards 127.0.0.1:local_port here to the host's loopback port (no shell, no command)."""
    argv = ssh_argv(host, known_hosts)
    at = argv.index("-l")
    forward = ["-N", "-o", "ExitOnForwardFailure=yes", "-L", f"127.0.0.1:{int(local_port)}:127.0.0.1:{int(port)}"]
    return [*argv[:at], *forward, *argv[at:]]
