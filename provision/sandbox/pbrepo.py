"""A local git repository standing in for github.com/triton-inference-server/python_backend at r22.04."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

BRANCH = "r22.04"
REPO_NAME = "python_backend.git"

_README = """# python_backend (infprov sandbox stand-in)

This repository stands in for Triton's python_backend at branch r22.04 inside the infprov
sandbox. It carries the paths the provisioning flow touches; the Neuron-specific scripts here
only check their arguments, because the sandbox has no Inferentia devices or Neuron compiler.
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

_GEN = '''#!/usr/bin/env python3
"""Sandbox stand-in for inferentia/scripts/gen_triton_model.py: validates the documented flags."""
import argparse
import sys

p = argparse.ArgumentParser()
p.add_argument("--model_type", choices=["pytorch", "tensorflow"], required=True)
p.add_argument("--compiled_model", required=True)
p.add_argument("--triton_input", action="append", required=True)
p.add_argument("--triton_output", action="append", required=True)
p.add_argument("--neuron_core_range", required=True)
p.add_argument("--triton_model_dir", required=True)
p.add_argument("--model_version", type=int, default=1)
p.add_argument("--enable_dynamic_batching", action="store_true")
p.add_argument("--max_batch_size", type=int, default=0)
p.add_argument("--threads_per_core", type=int, default=1)
args = p.parse_args()
start, _, end = args.neuron_core_range.partition(":")
if not (start.isdigit() and end.isdigit() and int(start) <= int(end)):
    sys.exit("--neuron_core_range must be start:end (inclusive)")
print("sandbox stand-in: no Neuron model generated for", args.triton_model_dir)
'''


def repo_path(public: Path) -> Path:
    return public / REPO_NAME


def url(public: Path) -> str:
    return f"file://{repo_path(public)}"


def exists(public: Path) -> bool:
    repo = repo_path(public)
    if not (repo / "HEAD").exists():
        return False
    proc = subprocess.run(["git", "--git-dir", str(repo), "rev-parse", "--verify", "-q", f"refs/heads/{BRANCH}"],
                          capture_output=True)
    return proc.returncode == 0


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
            "inferentia/scripts/gen_triton_model.py": _GEN,
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
        subprocess.run(["rm", "-rf", str(repo)], check=True)
        subprocess.run(["git", "clone", "-q", "--bare", str(work), str(repo)], env=env, check=True,
                       capture_output=True)
    subprocess.run(["chmod", "-R", "a+rX", str(repo)], check=True)
    subprocess.run(["chown", "-R", f"{owner}:", str(repo)], check=True)
