"""A local git repository standing in for github.com/triton-inference-server/python_backend at r22.04."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from infprov.sandbox import downloads

BRANCH = "r22.04"
REPO_NAME = "python_backend.git"

_README = """# python_backend (infprov sandbox stand-in)

This repository stands in for Triton's python_backend at branch r22.04 inside the infprov
sandbox. It carries the paths the provisioning flow touches; what cannot run here (the Neuron
compile and model, the stub's compile) is stood in under infprov-standin/ and in CMakeLists.txt.
"""

_SETUP = """#!/bin/bash
# Sandbox stand-in for inferentia/scripts/setup.sh: checks its options like the real one, builds nothing.
usage() { echo "usage: source setup.sh (-t|-p) [-b PATH] [-v PYVER] [-i PATH]" >&2; }
use_tf=0; use_pt=0
while [ $# -gt 0 ]; do
  case "$1" in
    -t|--use-tensorflow) use_tf=1 ;;
    -p|--use-pytorch) use_pt=1 ;;
    -b|--python-backend-path|-v|--python-version|-i|--inferentia-path|--tensorflow-version) shift ;;
    *) usage; return 1 2>/dev/null || exit 1 ;;
  esac
  shift
done
if [ $((use_tf + use_pt)) -ne 1 ]; then usage; return 1 2>/dev/null || exit 1; fi
echo "sandbox stand-in: no Neuron environment to build"
"""

# Sandbox stand-in for inferentia/scripts/gen_triton_model.py at r22.04: the same flags, and for them
# the same config.pbtxt, line for line, as upstream's create_modelconfig writes (read at r22.04; this is
# infprov's own code). The model.py it writes is the CPU stand-in instead of the Neuron one.
_GEN = """#!/usr/bin/env python3
\"\"\"Sandbox stand-in for inferentia/scripts/gen_triton_model.py (python_backend r22.04).\"\"\"
import argparse
import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def tensors(specs):
    out = []
    for spec in [t for group in (specs or []) for t in group]:
        name, dtype, dims = spec.split(",")
        out.append((name, dtype, [int(d) for d in dims.split("x")]))
    return out


def block(kind, name, dtype, dims):
    return ("\\n" + kind + " [\\n  {\\n    name: \\"" + name + "\\"\\n    data_type: TYPE_" + dtype
            + "\\n    dims: " + str(dims) + "\\n  }\\n]\\n")


def param(key, value):
    return "parameters: {key: \\"" + key + "\\", value: {string_value: \\"" + str(value) + "\\"}} \\n"


def config(a, name, inputs, outputs, start, end):
    text = "name: \\"" + name + "\\"\\nbackend: \\"python\\"\\nmax_batch_size: " + str(a.max_batch_size) + "\\n"
    if a.enable_dynamic_batching:
        text += "\\ndynamic_batching {\\n"
        if a.preferred_batch_size is not None:
            text += "\\n    preferred_batch_size: " + str(a.preferred_batch_size) + "\\n"
        if a.max_queue_delay_microseconds is not None:
            text += "\\n    max_queue_delay_microseconds: " + str(a.max_queue_delay_microseconds) + "\\n"
        text += "\\n}\\n"
    for n, t, d in inputs:
        text += block("input", n, t, d)
    for n, t, d in outputs:
        text += block("output", n, t, d)
    text += ("\\ninstance_group [\\n    {\\n        kind: KIND_MODEL\\n        count: "
             + str(a.triton_model_instance_count) + "\\n    }\\n]\\n")
    text += param("COMPILED_MODEL", a.compiled_model)
    text += param("NEURON_CORE_START_INDEX", start)
    text += param("NEURON_CORE_END_INDEX", end)
    text += param("NUM_THREADS_PER_CORE", a.threads_per_core)
    return text


p = argparse.ArgumentParser()
@INF2_FLAG@p.add_argument("--model_type", choices=["pytorch", "tensorflow"], required=True)
p.add_argument("--model_version", type=int, default=1)
p.add_argument("--enable_dynamic_batching", action="store_true")
p.add_argument("--max_batch_size", type=int, default=0)
p.add_argument("--preferred_batch_size", type=int)
p.add_argument("--max_queue_delay_microseconds", type=int)
p.add_argument("--disable_batch_requests_to_neuron", action="store_true")
p.add_argument("--tag_set", default="serve")
p.add_argument("--signature_def_key", default="serving_default")
p.add_argument("--compiled_model", required=True)
p.add_argument("--triton_input", action="append", nargs="*")
p.add_argument("--triton_output", action="append", nargs="*")
p.add_argument("--neuron_core_range", required=True)
p.add_argument("--threads_per_core", type=int, default=1)
p.add_argument("--triton_model_instance_count", type=int, default=1)
p.add_argument("--triton_model_dir", required=True)
a, unknown = p.parse_known_args()
if unknown:
    sys.exit("Unrecognized options: " + str(unknown))
if a.triton_input is None or a.triton_output is None:
    sys.exit("sandbox stand-in: give --triton_input and --triton_output (no TF SavedModel to read them from)")
start, end = [int(i) for i in a.neuron_core_range.split(":")]
os.makedirs(os.path.join(a.triton_model_dir, str(a.model_version)), exist_ok=True)
name = os.path.basename(a.triton_model_dir)
with open(os.path.join(a.triton_model_dir, "config.pbtxt"), "w") as f:
    f.write(config(a, name, tensors(a.triton_input), tensors(a.triton_output), start, end))
shutil.copy(os.path.join(HERE, "..", "..", "infprov-standin", "model.py"),
            os.path.join(a.triton_model_dir, "1", "model.py"))
print("sandbox stand-in: wrote", a.triton_model_dir, "(a CPU model in place of the Neuron one)")
"""

# Sandbox stand-in for python_backend r22.04's CMakeLists.txt. The same cache variables and the same Boost
# fetch (ExternalProject_Add boostorg with r22.04's dead URL: setup.sh repoints it before cmake runs; the
# hash is the stand-in archive's), and a `triton-python-backend-stub` target that depends on it. The stub
# itself cannot be compiled here against r22.04 (no CUDA, no internet for common/core/backend): the target
# takes the image's working stub, the one that matches its Triton server.
_CMAKELISTS = """# infprov sandbox stand-in for python_backend r22.04's CMakeLists.txt (see infprov-standin/README)
cmake_minimum_required(VERSION 3.17)
project(tritonpythonbackend LANGUAGES NONE)

option(TRITON_ENABLE_GPU "Enable GPU support in backend" ON)
set(TRITON_BACKEND_REPO_TAG "main" CACHE STRING "Tag for triton-inference-server/backend repo")
set(TRITON_COMMON_REPO_TAG "main" CACHE STRING "Tag for triton-inference-server/common repo")
set(TRITON_CORE_REPO_TAG "main" CACHE STRING "Tag for triton-inference-server/core repo")
message(STATUS "infprov stand-in: common ${TRITON_COMMON_REPO_TAG}, core ${TRITON_CORE_REPO_TAG}, "
               "backend ${TRITON_BACKEND_REPO_TAG}")

include(ExternalProject)

#
# Boost
#
ExternalProject_Add(
  boostorg
  URL https://boostorg.jfrog.io/artifactory/main/release/1.76.0/source/boost_1_76_0.tar.gz
  URL_HASH SHA256=@BOOST_SHA256@
  PREFIX "boost-src"
  CONFIGURE_COMMAND ${CMAKE_COMMAND} -E copy_directory
                    <SOURCE_DIR>/boost/ ${CMAKE_BINARY_DIR}/boost
  INSTALL_COMMAND ""
  BUILD_COMMAND ""
)

set(INFPROV_STUB_SOURCE "/opt/tritonserver/backends/python/triton_python_backend_stub"
    CACHE FILEPATH "the image's working python backend stub")
add_custom_command(
  OUTPUT ${CMAKE_BINARY_DIR}/triton_python_backend_stub
  COMMAND ${CMAKE_COMMAND} -E copy ${INFPROV_STUB_SOURCE} ${CMAKE_BINARY_DIR}/triton_python_backend_stub
  COMMENT "infprov stand-in: the python backend stub (the image's)"
)
add_custom_target(triton-python-backend-stub DEPENDS ${CMAKE_BINARY_DIR}/triton_python_backend_stub)
add_dependencies(triton-python-backend-stub boostorg)
"""

_STANDIN_README = """# infprov-standin

What the sandbox replaces in python_backend r22.04, because it cannot run here: the Neuron compile
(compile.py writes a marker in place of the compiled SavedModel), the model (model.py, a CPU model
that gen_triton_model.py copies in place of the Neuron one), and the stub's compile (CMakeLists.txt
takes the image's stub). setup.sh itself, its downloads (from the sandbox's stand-in download
server) and everything else in the start script run as on Inf1.
"""

# From r23.08 on upstream's generator also takes --inf2 (its config.pbtxt is the same for the same flags:
# create_modelconfig is unchanged from r22.04 to r26.07 but for formatting; only model.py differs).
V2_BRANCH = "r24.04"


def gen_source(branch: str) -> str:
    """The stand-in generator of that branch: r22.04's flags, plus --inf2 from r23.08 on."""
    flag = 'p.add_argument("--inf2", action="store_true")\n' if branch != BRANCH else ""
    return _GEN.replace("@INF2_FLAG@", flag)


_STANDIN_COMPILE_NEURONX = """#!/usr/bin/env python3
\"\"\"Sandbox stand-in for infprov's compile_rn50_neuronx.py: no neuronx-cc here, so a marker file.\"\"\"
import argparse

p = argparse.ArgumentParser()
p.add_argument("--out", required=True)
p.add_argument("--batch", type=int, required=True)
a = p.parse_args()
with open(a.out, "wb") as f:
    f.write(b"infprov sandbox stand-in: no torch_neuronx-traced graph")
print("sandbox stand-in: traced nothing into", a.out, "at batch", a.batch)
"""

_STANDIN_COMPILE = """#!/usr/bin/env python3
\"\"\"Sandbox stand-in for infprov's compile_rn50.py: no Neuron compiler here, so a marker SavedModel.\"\"\"
import argparse
import os

p = argparse.ArgumentParser()
p.add_argument("--out", required=True)
a = p.parse_args()
os.makedirs(a.out, exist_ok=True)
with open(os.path.join(a.out, "saved_model.pb"), "wb") as f:
    f.write(b"infprov sandbox stand-in: no Neuron-compiled graph")
print("sandbox stand-in: compiled nothing into", a.out)
"""

# Bumped when the stand-in's files change, so `sandbox up` rebuilds the repository.
STANDIN_VERSION = "4"
MODEL_SOURCE = Path(__file__).resolve().parents[1] / "playbooks" / "files" / "sandbox_model" / "model.py"


def repo_path(public: Path) -> Path:
    return public / REPO_NAME


def url(public: Path) -> str:
    return f"file://{repo_path(public)}"


def exists(public: Path) -> bool:
    repo = repo_path(public)
    if not (repo / "HEAD").exists():
        return False
    proc = subprocess.run(["git", "--git-dir", str(repo), "show", f"refs/heads/{BRANCH}:infprov-standin/VERSION"],
                          capture_output=True, text=True)
    return proc.returncode == 0 and proc.stdout.strip() == STANDIN_VERSION


def create(public: Path, owner: str) -> None:
    """Make the bare repository with one commit on r22.04, owned by the hosts' login user.

    git refuses to read a repository that another user owns ("dubious ownership").
    """
    repo = repo_path(public)
    public.mkdir(parents=True, exist_ok=True)
    public.chmod(0o755)
    env = {**os.environ, "GIT_AUTHOR_NAME": "infprov", "GIT_AUTHOR_EMAIL": "infprov@sandbox",
           "GIT_COMMITTER_NAME": "infprov", "GIT_COMMITTER_EMAIL": "infprov@sandbox",
           "GIT_AUTHOR_DATE": "2022-04-01T00:00:00Z", "GIT_COMMITTER_DATE": "2022-04-01T00:00:00Z"}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        files = {
            "README.md": _README,
            "inferentia/scripts/setup.sh": _SETUP,
            "inferentia/scripts/gen_triton_model.py": gen_source(BRANCH),
            "CMakeLists.txt": _CMAKELISTS.replace("@BOOST_SHA256@", downloads.read_pins()["BOOST_SHA256"]),
            "infprov-standin/README": _STANDIN_README,
            "infprov-standin/compile.py": _STANDIN_COMPILE,
            "infprov-standin/compile_neuronx.py": _STANDIN_COMPILE_NEURONX,
            "infprov-standin/model.py": MODEL_SOURCE.read_text(),
            "infprov-standin/VERSION": STANDIN_VERSION + "\n",
            "models/.gitkeep": "",
        }
        for rel, text in files.items():
            path = work / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            if rel.endswith((".sh", ".py")):
                path.chmod(0o755)
        for cmd in (["git", "init", "-q", "-b", BRANCH], ["git", "add", "-A"],
                    ["git", "commit", "-q", "-m", "python_backend stand-in at r22.04"]):
            subprocess.run(cmd, cwd=work, env=env, check=True, capture_output=True)
        # the Neuron v2 branch: the same tree with the generator that takes --inf2
        (work / "inferentia/scripts/gen_triton_model.py").write_text(gen_source(V2_BRANCH))
        for cmd in (["git", "checkout", "-q", "-b", V2_BRANCH], ["git", "add", "-A"],
                    ["git", "commit", "-q", "-m", f"python_backend stand-in at {V2_BRANCH}"]):
            subprocess.run(cmd, cwd=work, env=env, check=True, capture_output=True)
        subprocess.run(["rm", "-rf", str(repo)], check=True)
        subprocess.run(["git", "clone", "-q", "--bare", str(work), str(repo)], env=env, check=True,
                       capture_output=True)
        # its refs over git's dumb http, where the stand-in download server serves it to preflight
        subprocess.run(["git", "--git-dir", str(repo), "update-server-info"], check=True, capture_output=True)
    subprocess.run(["chmod", "-R", "a+rX", str(repo)], check=True)
    subprocess.run(["chown", "-R", f"{owner}:", str(repo)], check=True)
