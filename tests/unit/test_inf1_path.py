"""The real Inf1 path's scripts, run for real with only their downloads and builds stood in.

setup.sh cannot run here (no Neuron packages, no internet), so these tests source the very file
infprov ships with the commands it calls replaced by recorders, and check the exact command lines
and files it produces against upstream python_backend r22.04 (inferentia/scripts/setup.sh,
CMakeLists.txt) and the pins.
"""

from __future__ import annotations

import ast
import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"
SETUP = PLAYBOOKS / "files" / "setup.sh"
PINS = PLAYBOOKS / "files" / "pins.env"
# r22.04's CMakeLists.txt, the Boost lines as upstream has them
BOOST_LINES = (
    "  URL https://boostorg.jfrog.io/artifactory/main/release/1.76.0/source/boost_1_76_0.tar.gz\n"
    "  URL_HASH SHA256=7bd7ddceec1a1dfdcbdb3e609b60d01739c38390a5f956385a12f3122049f0ca\n"
)

FAKE_INSTALLER = r"""#!/bin/bash
# stands in for the Miniconda installer: lays out a conda whose commands are recorded
prefix=$3
mkdir -p "$prefix/bin" "$prefix/etc/profile.d"
printf '#!/bin/sh\n' > "$prefix/bin/conda" && chmod +x "$prefix/bin/conda"
cat > "$prefix/etc/profile.d/conda.sh" <<'EOS'
conda() {
  echo "conda $*" >> "$LOG"
  case "$1" in
    tos) [ -n "$FAKE_TOS" ] ;;
    env) ;;
    activate) export CONDA_PREFIX=/fake/envs/$2 ;;
    create)
      if [ -n "$FAKE_TOS" ] && [ "$CONDA_PLUGINS_AUTO_ACCEPT_TOS" != yes ]; then
        echo CondaToSNonInteractiveError >&2; return 1
      fi ;;
  esac
}
EOS
"""


def _lay_out(tmp_path: Path, *, good_sha: bool = True) -> tuple[Path, Path, Path]:
    pb = tmp_path / "python_backend"
    scripts = pb / "inferentia" / "scripts"
    scripts.mkdir(parents=True)
    shutil.copy(SETUP, scripts / "setup.sh")
    shutil.copy(SETUP.with_name("pins.sh"), scripts / "pins.sh")  # server.yml puts the pins reader beside it
    installer = tmp_path / "fake-miniconda.sh"
    installer.write_text(FAKE_INSTALLER)
    pins = PINS.read_text()
    if good_sha:
        real = "a1a7285dea0edc430b2bc7951d89bb30a2a1b32026d2a7b02aacaaa95cf69c7c"
        assert real in pins
        pins = pins.replace(real, hashlib.sha256(installer.read_bytes()).hexdigest())
    (scripts / "pins.env").write_text(pins)
    (pb / "CMakeLists.txt").write_text("cmake_minimum_required(VERSION 3.17)\nExternalProject_Add(\n  boostorg\n"
                                       + BOOST_LINES + ")\n")
    return pb, installer, tmp_path / "calls.log"


def _source(pb: Path, installer: Path, log: Path, *args: str, tos: bool = False) -> subprocess.CompletedProcess[str]:
    script = f"""
export LOG={log} FAKE_TOS={'1' if tos else ''}
rec() {{ echo "$*" >> "$LOG"; }}
apt-get() {{ rec apt-get "$@"; }}
pip3() {{ rec pip3 "$@"; }}
pip() {{ rec pip "$@"; }}
cmake() {{ rec cmake "$@"; }}
make() {{ rec make "$@"; touch triton_python_backend_stub; }}
cp() {{ rec cp "$@"; }}
wget() {{ rec wget "$@"; command cp {installer} "$4"; }}
source {pb}/inferentia/scripts/setup.sh {' '.join(args)}
echo "rc=$?"
echo "tos=$CONDA_PLUGINS_AUTO_ACCEPT_TOS"
echo "ld=$LD_LIBRARY_PATH"
declare -p pin_MINICONDA_URL 2>/dev/null && echo LEAKED
"""
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60, cwd=pb.parent)


def test_setup_fetches_only_pinned_things_and_builds_against_r22_04(tmp_path: Path) -> None:
    pb, installer, log = _lay_out(tmp_path)
    run = _source(pb, installer, log, "-t", "-b", str(pb), "-i", str(tmp_path), tos=True)
    assert "rc=0" in run.stdout, run.stdout + run.stderr
    assert "LEAKED" not in run.stdout, "the pins stay local to the sourced script"
    calls = log.read_text().splitlines()
    assert "pip3 install --upgrade cmake>=3.18,<4" in calls  # CMake 4 stops on pybind11 v2.6 / dlpack v0.5
    assert any(c.startswith("wget -q https://repo.anaconda.com/miniconda/Miniconda3-py37_4.10.3-Linux-x86_64.sh ")
               for c in calls)
    assert not any("Miniconda3-latest" in c for c in calls)
    create = calls.index("conda create -y -q -n test_conda_env python=3.7")
    assert any(c.startswith("conda tos accept") for c in calls[:create]), "terms accepted before create"
    cmake = next(c for c in calls if c.startswith("cmake "))
    for tag in ("BACKEND", "COMMON", "CORE"):
        assert f"-D TRITON_{tag}_REPO_TAG=r22.04" in cmake
    cmakelists = (pb / "CMakeLists.txt").read_text()
    assert "https://archives.boost.io/release/1.76.0/source/boost_1_76_0.tar.gz" in cmakelists
    assert "boostorg.jfrog.io" not in cmakelists
    assert "URL_HASH SHA256=7bd7ddceec1a1dfdcbdb3e609b60d01739c38390a5f956385a12f3122049f0ca" in cmakelists
    assert "pip config set global.extra-index-url https://pip.repos.neuron.amazonaws.com" in calls
    assert "pip install tensorflow-neuron==1.15.5.2.5.6.0 neuron-cc==1.13.5.0 protobuf<4" in calls
    assert "tos=yes" in run.stdout and "ld=/fake/envs/test_conda_env/lib:" in run.stdout

    # a second run (a container restarted before its image was committed) changes CMakeLists.txt no more
    again = _source(pb, installer, log, "-t", "-b", str(pb), "-i", str(tmp_path), tos=True)
    assert "rc=0" in again.stdout, again.stderr
    assert (pb / "CMakeLists.txt").read_text() == cmakelists


def test_setup_without_terms_support_still_creates_the_env(tmp_path: Path) -> None:
    pb, installer, log = _lay_out(tmp_path)
    run = _source(pb, installer, log, "-t", "-b", str(pb), "-i", str(tmp_path), tos=False)
    assert "rc=0" in run.stdout, run.stderr
    calls = log.read_text().splitlines()
    assert not any(c.startswith("conda tos accept") for c in calls)
    assert "conda create -y -q -n test_conda_env python=3.7" in calls


def test_setup_refuses_an_installer_with_another_checksum(tmp_path: Path) -> None:
    pb, installer, log = _lay_out(tmp_path, good_sha=False)
    run = _source(pb, installer, log, "-t", "-b", str(pb), "-i", str(tmp_path))
    assert "rc=1" in run.stdout
    assert "does not have the pinned SHA-256" in run.stderr
    assert not (tmp_path / "miniconda").exists()
    assert not any(c.startswith("conda create") for c in log.read_text().splitlines())


def test_setup_without_its_pins_says_so(tmp_path: Path) -> None:
    pb, installer, log = _lay_out(tmp_path)
    (pb / "inferentia" / "scripts" / "pins.env").unlink()
    run = _source(pb, installer, log, "-t", "-b", str(pb))
    assert "rc=1" in run.stdout and "pins.env is missing" in run.stderr


@pytest.mark.parametrize("broken, said", [
    ("no-reader", "pins.sh is missing (it reads the pins)"),
    ("bad-line", "setup.sh: bad line in"),
    ("no-key", "has no BOOST_URL"),
])
def test_the_shared_pins_reader_says_what_is_wrong_in_one_line(tmp_path: Path, broken: str, said: str) -> None:
    """setup.sh and setup-neuronx.sh read their pins with one reader (pins.sh, beside them on the host)."""
    pb, installer, log = _lay_out(tmp_path)
    scripts = pb / "inferentia" / "scripts"
    if broken == "no-reader":
        (scripts / "pins.sh").unlink()
    elif broken == "bad-line":
        (scripts / "pins.env").write_text((scripts / "pins.env").read_text() + "bad key=1\n")
    else:
        kept = [line for line in (scripts / "pins.env").read_text().splitlines() if not line.startswith("BOOST_URL=")]
        (scripts / "pins.env").write_text("\n".join(kept) + "\n")
    run = _source(pb, installer, log, "-t", "-b", str(pb))
    assert "rc=1" in run.stdout and said in run.stderr, run.stderr
    assert [line for line in run.stderr.splitlines() if line.strip()] == [run.stderr.strip()]  # one line
    assert not log.exists() or not log.read_text().strip()  # nothing ran
    for script in ("setup.sh", "setup-neuronx.sh"):
        assert 'source "$here/pins.sh"' in (SETUP.with_name(script)).read_text()


@pytest.mark.parametrize("line", ["MINICONDA_URL=$(touch /tmp/infprov-pwned)", "CMAKE_PIP_SPEC=cmake>/tmp/x"])
def test_pins_are_read_as_data_never_run(tmp_path: Path, line: str) -> None:
    pb, installer, log = _lay_out(tmp_path)
    pins = pb / "inferentia" / "scripts" / "pins.env"
    pins.write_text(pins.read_text() + line + "\n")
    _source(pb, installer, log, "-t", "-b", str(pb), "-i", str(tmp_path))
    assert not Path("/tmp/infprov-pwned").exists() and not Path("/tmp/x").exists()


# ---------------------------------------------------------------- the Inf1 compile script (tensorflow-neuron: not here)
def _compile_calls(path: Path) -> list[ast.Call]:
    """Every call of tfn.saved_model.compile (or tensorflow.neuron.saved_model.compile) in a script."""
    calls = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "compile":
            owner = ast.unparse(node.func.value)
            if owner in ("tfn.saved_model", "tensorflow.neuron.saved_model", "tf.neuron.saved_model"):
                calls.append(node)
    return calls


def test_the_inf1_compile_asks_for_dynamic_batch_size() -> None:
    """compile_rn50.py compiles at batch 1 and model.py hands each NeuronCore a slice of the request, so the
    compiled model must take any batch: tensorflow-neuron's dynamic_batch_size=True (Neuron Batching page)."""
    calls = _compile_calls(PLAYBOOKS / "files" / "inf1" / "compile_rn50.py")
    assert len(calls) == 1, "one compile call"
    keywords = {k.arg: k.value for k in calls[0].keywords}
    assert "dynamic_batch_size" in keywords, ast.unparse(calls[0])
    value = keywords["dynamic_batch_size"]
    assert isinstance(value, ast.Constant) and value.value is True, ast.unparse(calls[0])
    assert "batch_size" not in keywords, "batch 1 (the default): dynamic batching splits larger requests"


# ---------------------------------------------------------------- bench follows the served config
def _config(max_batch: int, dims: list[int], name: str = "input") -> str:
    import json

    return json.dumps({"name": "m", "max_batch_size": max_batch,
                       "input": [{"name": name, "data_type": "TYPE_FP32", "dims": dims}]})


def test_perf_analyzer_flags_follow_a_batching_model() -> None:
    from infprov.provision import bench, benchplan

    config = bench.ModelConfig.parse(_config(64, [224, 224, 3]))
    plan = benchplan.plan("inf1.6xlarge", model="rn50-16neuroncores-default", batch_size=16, threads=2, limit_s=5,
                          tool="perf_analyzer", neuron_cores=16)
    line = bench._perf_analyzer_command(plan, plan.points[0], "n", "/r/p.csv", config)
    assert " -b 16 " in line and " --shape input:224,224,3 " in line


def test_perf_analyzer_flags_follow_a_model_without_batching() -> None:
    """gen_triton_model.py's default (max_batch_size 0, dims -1x224x224x3): perf_analyzer 22.04 refuses
    -b 16 for it, so the images go in the input's own first dimension."""
    from infprov.provision import bench, benchplan

    config = bench.ModelConfig.parse(_config(0, [-1, 224, 224, 3], name="x"))
    plan = benchplan.plan("inf1.6xlarge", model="rn50-16neuroncores-default", batch_size=16, threads=2, limit_s=5,
                          tool="perf_analyzer", neuron_cores=16)
    line = bench._perf_analyzer_command(plan, plan.points[0], "n", "/r/p.csv", config)
    assert " -b 1 " in line and " --shape x:16,224,224,3 " in line


def test_a_batch_above_the_served_maximum_is_refused() -> None:
    from infprov.floor.errors import UsageError
    from infprov.provision import bench

    with pytest.raises(UsageError, match="max_batch_size 64"):
        bench.check_batch(bench.ModelConfig.parse(_config(64, [224, 224, 3])), 128, "10.0.0.1")
    with pytest.raises(UsageError, match="takes no batches"):
        bench.check_batch(bench.ModelConfig.parse(_config(0, [224, 224, 3])), 16, "10.0.0.1")
    bench.check_batch(bench.ModelConfig.parse(_config(0, [-1, 224, 224, 3])), 16, "10.0.0.1")


# ---------------------------------------------------------------- the sandbox's generator writes upstream's config
# What python_backend r22.04's inferentia/scripts/gen_triton_model.py (create_modelconfig) writes for the
# flags start.sh passes on an inf1.6xlarge: compared line for line with upstream's function at r22.04.
UPSTREAM_CONFIG_16 = (
    'name: "rn50-16neuroncores-default"\nbackend: "python"\nmax_batch_size: 64\n'
    '\ninput [\n  {\n    name: "input"\n    data_type: TYPE_FP32\n    dims: [224, 224, 3]\n  }\n]\n'
    '\noutput [\n  {\n    name: "output"\n    data_type: TYPE_FP32\n    dims: [1000]\n  }\n]\n'
    "\ninstance_group [\n    {\n        kind: KIND_MODEL\n        count: 1\n    }\n]\n"
    'parameters: {key: "COMPILED_MODEL", value: {string_value: "/pb/infprov/rn50_neuron"}} \n'
    'parameters: {key: "NEURON_CORE_START_INDEX", value: {string_value: "0"}} \n'
    'parameters: {key: "NEURON_CORE_END_INDEX", value: {string_value: "15"}} \n'
    'parameters: {key: "NUM_THREADS_PER_CORE", value: {string_value: "1"}} \n'
)


def _start_sh_gen_flags() -> list[str]:
    """The gen_triton_model.py flags start.sh passes, with its variables filled in for an inf1.6xlarge."""
    import shlex

    text = (PLAYBOOKS / "files" / "inf1" / "start.sh").read_text()
    marker = 'gen_triton_model.py"'
    lines = []
    start = text.index(marker + " --model_type tensorflow")
    for line in text[start + len(marker):].splitlines():
        lines.append(line.rstrip("\\"))
        if not line.endswith("\\"):
            break
    words = shlex.split(" ".join(lines))
    values = {"$compiled": "/pb/infprov/rn50_neuron", "$max_batch": "64", "$cores": "0:15",
              "$pb/models/$model": "MODEL_DIR"}
    return [values.get(w, w) for w in words]


def test_the_sandbox_generator_writes_what_upstream_writes(tmp_path: Path) -> None:
    from infprov.sandbox import pbrepo

    scripts = tmp_path / "inferentia" / "scripts"
    scripts.mkdir(parents=True)
    (scripts / "gen_triton_model.py").write_text(pbrepo.gen_source(pbrepo.BRANCH))
    (tmp_path / "infprov-standin").mkdir()
    (tmp_path / "infprov-standin" / "model.py").write_text(pbrepo.MODEL_SOURCE.read_text())
    model_dir = tmp_path / "models" / "rn50-16neuroncores-default"
    flags = [str(model_dir) if w == "MODEL_DIR" else w for w in _start_sh_gen_flags()]
    assert flags[:2] == ["--model_type", "tensorflow"] and "--max_batch_size" in flags
    run = subprocess.run(["python3", str(scripts / "gen_triton_model.py"), *flags], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert (model_dir / "config.pbtxt").read_text() == UPSTREAM_CONFIG_16
    assert (model_dir / "1" / "model.py").read_text() == pbrepo.MODEL_SOURCE.read_text()
    bad = subprocess.run(["python3", str(scripts / "gen_triton_model.py"), *flags, "--no_such_flag"],
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "Unrecognized options" in bad.stderr
