"""A real Triton server as a local process (from the nvidia-pytriton wheel), and perf_analyzer beside it."""

from __future__ import annotations

import contextlib
import http.client
import importlib.metadata
import os
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from infprov.floor.errors import InfprovError

# playbooks/files/sandbox_model: model.py + config.pbtxt.j2, the CPU stand-in for the Neuron ResNet-50.
SANDBOX_MODEL_DIR = Path(__file__).resolve().parents[1] / "playbooks" / "files" / "sandbox_model"
DEFAULT_MODEL = "rn50-16neuroncores-default"
LOCALHOST = "127.0.0.1"


def pytriton_root() -> Path:
    """The tritonserver folder inside the nvidia-pytriton wheel (bin/, backends/, python_backend_stubs/)."""
    try:
        import pytriton
    except ImportError as exc:
        raise InfprovError(
            "a local Triton server needs the nvidia-pytriton wheel (it carries the server binary)",
            "pip install 'infprov[sandbox]'",
        ) from exc
    root = Path(pytriton.__file__).parent / "tritonserver"
    if not (root / "bin" / "tritonserver").is_file():
        raise InfprovError(f"no tritonserver binary under {root}", "reinstall nvidia-pytriton==0.7.0")
    return root


def python_version_tag() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def make_backend_dir(dest: Path) -> Path:
    """A backends folder holding python/{libtriton_python.so, utils, the stub for this Python} as links."""
    root = pytriton_root()
    stub = root / "python_backend_stubs" / python_version_tag() / "triton_python_backend_stub"
    if not stub.is_file():
        raise InfprovError(f"nvidia-pytriton has no python backend stub for Python {python_version_tag()}")
    python_dir = dest / "python"
    python_dir.mkdir(parents=True, exist_ok=True)
    links = {
        "libtriton_python.so": root / "backends" / "python" / "libtriton_python.so",
        "triton_python_backend_utils.py": root / "backends" / "python" / "triton_python_backend_utils.py",
        "triton_python_backend_stub": stub,
    }
    for name, target in links.items():
        link = python_dir / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(target)
    return dest


def render_model(
    repo: Path,
    model_name: str = DEFAULT_MODEL,
    *,
    max_batch_size: int = 64,
    instance_count: int = 1,
    neuron_cores: int = 0,
    broken_shape: bool = False,
    broken_values: bool = False,
    delay_ms: int = 0,
) -> Path:
    """Write the sandbox model into a model repository as <repo>/<model_name>/{config.pbtxt,1/model.py}."""
    import jinja2

    template = jinja2.Template(
        (SANDBOX_MODEL_DIR / "config.pbtxt.j2").read_text(), undefined=jinja2.StrictUndefined
    )
    model_dir = repo / model_name
    (model_dir / "1").mkdir(parents=True, exist_ok=True)
    config = template.render(
        model_name=model_name,
        max_batch_size=max_batch_size,
        instance_count=instance_count,
        neuron_cores=neuron_cores,
        broken_shape=broken_shape,
        broken_values=broken_values,
        delay_ms=delay_ms,
        input_name="input",
        output_name="output",
    )
    (model_dir / "config.pbtxt").write_text(config)
    (model_dir / "1" / "model.py").write_text((SANDBOX_MODEL_DIR / "model.py").read_text())
    return model_dir


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOCALHOST, 0))
        return int(sock.getsockname()[1])


def _http_status(port: int, path: str, timeout: float = 1.0) -> int | None:
    conn = http.client.HTTPConnection(LOCALHOST, port, timeout=timeout)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    except OSError:
        return None
    finally:
        conn.close()


@dataclass
class LocalTriton:
    """A tritonserver process this program started; stop() ends it (by its PID) and nothing else."""

    process: subprocess.Popen[bytes]
    http_port: int
    grpc_port: int
    metrics_port: int
    log_path: Path
    models: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def url(self) -> str:
        """host:port, as tritonclient and perf_analyzer take it."""
        return f"{LOCALHOST}:{self.http_port}"

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])

    def ready(self) -> bool:
        if _http_status(self.http_port, "/v2/health/ready") != 200:
            return False
        return all(_http_status(self.http_port, f"/v2/models/{m}/ready") == 200 for m in self.models)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, wait; SIGKILL its process group (its own backend stubs) if it does not go."""
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            # start_new_session made the server the leader of a group of its own: only its children are in it.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)


def server_env() -> dict[str, str]:
    """The environment for tritonserver: the stub must load this Python's libpython, not the system's."""
    env = dict(os.environ)
    libdir = str(sysconfig.get_config_var("LIBDIR") or "")
    old = env.get("LD_LIBRARY_PATH", "")
    env["LD_LIBRARY_PATH"] = f"{libdir}:{old}" if old else libdir
    return env


def start(
    repo: Path,
    workdir: Path,
    *,
    models: list[str] | None = None,
    timeout: float = 60.0,
    attempts: int = 3,
) -> LocalTriton:
    """Start tritonserver on free 127.0.0.1 ports serving repo; return once it and the models are ready."""
    root = pytriton_root()
    workdir.mkdir(parents=True, exist_ok=True)
    backends = make_backend_dir(workdir / "backends")
    models = list(models) if models is not None else sorted(
        p.name for p in repo.iterdir() if (p / "config.pbtxt").is_file()
    )
    last = ""
    for attempt in range(attempts):
        ports = [free_port(), free_port(), free_port()]
        log_path = workdir / f"tritonserver-{attempt}.log"
        cmd = [
            str(root / "bin" / "tritonserver"),
            "--model-repository", str(repo),
            "--backend-directory", str(backends),
            "--cache-directory", str(root / "caches"),
            "--http-address", LOCALHOST,
            "--grpc-address", LOCALHOST,
            "--http-port", str(ports[0]),
            "--grpc-port", str(ports[1]),
            "--metrics-port", str(ports[2]),
            "--allow-metrics", "false",
            "--exit-timeout-secs", "2",
        ]
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=server_env(), start_new_session=True,
            )
        server = LocalTriton(proc, ports[0], ports[1], ports[2], log_path, models)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            if server.ready():
                return server
            time.sleep(0.1)
        last = server.log_tail()
        server.stop()
        if "already in use" not in last and "Address in use" not in last:
            break
    raise InfprovError(f"the local Triton server did not become ready; its log ends: {last}")


@contextlib.contextmanager
def running(
    model_name: str = DEFAULT_MODEL, *, extra_models: dict[str, dict[str, object]] | None = None,
    **model_options: object,
) -> Iterator[LocalTriton]:
    """A temporary repository with the sandbox model (and variants), a server on it, stopped on exit."""
    with tempfile.TemporaryDirectory(prefix="infprov-triton-") as tmp:
        base = Path(tmp)
        repo = base / "models"
        repo.mkdir()
        render_model(repo, model_name, **model_options)  # type: ignore[arg-type]
        for name, options in (extra_models or {}).items():
            render_model(repo, name, **options)  # type: ignore[arg-type]
        server = start(repo, base / "run")
        try:
            yield server
        finally:
            server.stop()


# ------------------------------------------------------------------ perf_analyzer


def perf_analyzer_binary() -> Path:
    """perf_analyzer as installed by the tritonclient wheel (its data scripts), found through its RECORD."""
    try:
        files = importlib.metadata.files("tritonclient") or []
    except importlib.metadata.PackageNotFoundError as exc:
        raise InfprovError("tritonclient is not installed", "pip install 'tritonclient[http]==2.51.0'") from exc
    for entry in files:
        if entry.name == "perf_analyzer":
            path = Path(str(entry.locate())).resolve()
            if path.is_file():
                return path
    raise InfprovError(
        "the installed tritonclient wheel has no perf_analyzer",
        "pip install --force-reinstall --no-deps 'tritonclient==2.51.0'",
    )


def perf_analyzer_env(libdir: Path) -> dict[str, str]:
    """perf_analyzer needs libb64.so.0d and libcudart.so.12: link them from nvidia_pytriton.libs into libdir."""
    pytriton_libs = pytriton_root().parents[1] / "nvidia_pytriton.libs"
    libdir.mkdir(parents=True, exist_ok=True)
    for pattern, soname in (("libb64-*.so.0d*", "libb64.so.0d"), ("libcudart-*.so.12*", "libcudart.so.12")):
        found = sorted(pytriton_libs.glob(pattern))
        if not found:
            raise InfprovError(f"no {pattern} in {pytriton_libs} for perf_analyzer", "reinstall nvidia-pytriton")
        link = libdir / soname
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(found[0])
    env = dict(os.environ)
    old = env.get("LD_LIBRARY_PATH", "")
    env["LD_LIBRARY_PATH"] = f"{libdir}:{old}" if old else str(libdir)
    return env
