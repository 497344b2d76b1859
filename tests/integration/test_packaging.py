"""The wheel installs everything under the infprov namespace and works from a clean venv."""

from __future__ import annotations

import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # build from a copy of the tracked files, so no build/ left in the work tree leaks into the wheel
    src = tmp_path_factory.mktemp("src")
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in tracked.decode().split("\0"):
        if name and (ROOT / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            (src / name).write_bytes((ROOT / name).read_bytes())
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--disable-pip-version-check",
                    "-w", str(out), str(src)], check=True, timeout=600)
    (built,) = out.glob("infprov-*.whl")
    return built


def test_wheel_holds_only_the_infprov_namespace(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names}
    assert tops == {"infprov", "infprov-0.1.0.dist-info"}, tops
    assert not any(name.startswith("infprov/__init__") for name in names)  # a namespace, shared by no one else
    assert not any(name.startswith("infprov/provision/sandbox/") for name in names)  # the sandbox is its own room
    for data in ("infprov/playbooks/server.yml", "infprov/playbooks/files/setup.sh",
                 "infprov/playbooks/files/pins.env", "infprov/playbooks/files/inf1/start.sh",
                 "infprov/client/tritonbench/cli.py", "infprov/client/build.py", "infprov/sandbox/core.py",
                 "infprov/provision/ansible_callback/infprov_events.py",
                 "infprov/sandbox/commands.py", "infprov/sandbox/localtriton.py"):
        assert data in names, data
    entry = zipfile.ZipFile(wheel).read("infprov-0.1.0.dist-info/entry_points.txt").decode()
    assert "infprov = infprov.provision.cli:app" in entry


def test_wheel_imports_and_runs_in_a_clean_venv(wheel: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--disable-pip-version-check",
                    "--no-index", str(wheel)], check=True, timeout=300)
    # the dependencies (typer, rich, boto3, ...) come from this interpreter's site-packages, added as a
    # plain path: its .pth files, and so the editable install of the work tree, stay inactive
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               capture_output=True, text=True, check=True).stdout.strip())
    import boto3
    import jinja2
    import paramiko
    import rich
    import typer
    import yaml

    dep_dirs = {str(Path(m.__file__ or "").resolve().parents[1]) for m in (boto3, jinja2, paramiko, rich, typer, yaml)}
    (site / "zz_deps.pth").write_text("".join(f"{d}\n" for d in sorted(dep_dirs)))
    probe = ("import importlib.util, infprov.provision.cli as c, infprov.playbooks.engine, infprov.inventory.store;"
             "print(c.__file__);"
             "print([n for n in ('provision', 'playbooks', 'inventory', 'client')"
             " if importlib.util.find_spec(n)])")
    run = subprocess.run([str(py), "-c", probe], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert run.returncode == 0, run.stderr
    where, tops = run.stdout.splitlines()
    assert where.startswith(str(env_dir)), where
    assert tops == "[]", tops
    # the console script of the wheel works, and finds its playbook data inside the installed package
    helped = subprocess.run([str(env_dir / "bin" / "infprov"), "play", "--help"], capture_output=True, text=True,
                            cwd=tmp_path, timeout=120)
    assert helped.returncode == 0, helped.stderr
    assert "Usage: infprov play" in helped.stdout
    # the sandbox's commands, from their own room (test and sandbox tooling beside the runtime)
    helped = subprocess.run([str(env_dir / "bin" / "infprov"), "sandbox", "--help"], capture_output=True, text=True,
                            cwd=tmp_path, timeout=120)
    assert helped.returncode == 0, helped.stderr
    assert "Usage: infprov sandbox" in helped.stdout and "status" in helped.stdout
    # and the sandbox finds the playbooks' data files it serves inside the installed package too
    sandbox = subprocess.run([str(py), "-c", "import infprov.sandbox.core as c; from infprov.sandbox import downloads,"
                              " localtriton; print(c.__file__, downloads.PINS.is_file(), downloads.PINS,"
                              " localtriton.SANDBOX_MODEL_DIR.is_dir())"],
                             capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert sandbox.returncode == 0, sandbox.stderr
    where, pins_ok, pins, model_ok = sandbox.stdout.split()
    assert where.startswith(str(env_dir)) and pins_ok == "True" and model_ok == "True", sandbox.stdout + sandbox.stderr
    assert pins.startswith(str(env_dir)), pins
    data = subprocess.run([str(py), "-c", "from infprov.provision import preflight; print(preflight.PINS.is_file(),"
                           " preflight.PINS)"], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert data.stdout.startswith("True " + str(env_dir)), data.stdout + data.stderr
