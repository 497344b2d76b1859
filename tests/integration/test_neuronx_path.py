"""The Inf2/Trn1 (Neuron v2) path's scripts, run for real with only their downloads and Neuron layer stood in.

start.sh runs with recorders in place of setup.sh's downloads, the compile and tritonserver; the
gen_triton_model.py it calls is upstream python_backend's own file at r24.04 (from the mirror), and its
config is compared with what the sandbox's stand-in generator writes for the same flags.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest

PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"
FILES = PLAYBOOKS / "files"
MIRROR = Path("/work/.mirror/triton-inference-server+python_backend/repo")
BRANCH = "r24.04"


def _upstream(path: str) -> str:
    if not (MIRROR / "HEAD").exists():
        pytest.fail(f"the python_backend mirror {MIRROR} is missing")
    return subprocess.run(["git", "-C", str(MIRROR), "show", f"{BRANCH}:{path}"], capture_output=True,
                          text=True, check=True).stdout


def _pins(path: Path) -> dict[str, str]:
    from infprov.provision import preflight

    return preflight.read_pins(path)


# ---------------------------------------------------------------- setup-neuronx.sh


def _source_setup(tmp_path: Path, *args: str, pins: Path = FILES / "pins-neuronx.env") -> tuple[int, list[str], Path]:
    scripts = tmp_path / "pb" / "inferentia" / "scripts"
    scripts.mkdir(parents=True)
    (scripts / "setup.sh").write_text((FILES / "setup-neuronx.sh").read_text())
    (scripts / "pins.sh").write_text((FILES / "pins.sh").read_text())
    (scripts / "pins.env").write_text(pins.read_text())
    etc = tmp_path / "etc"
    log = tmp_path / "calls.log"
    script = f"""
export LOG={shlex.quote(str(log))}
rec() {{ echo "$*" >> "$LOG"; }}
apt-get() {{ rec apt-get "$@"; }}
pip() {{ rec pip "$@"; }}
wget() {{ rec wget "$@"; }}
mkdir() {{ rec mkdir "$@"; }}
cp() {{ rec cp "$@"; }}
tee() {{ rec tee "$@"; }}
source {shlex.quote(str(scripts / 'setup.sh'))} {' '.join(shlex.quote(a) for a in args)} 2>"$LOG.err"
echo "rc=$?"
"""
    # redirect the one write to /etc into the test folder
    text = (scripts / "setup.sh").read_text().replace("/etc/apt/sources.list.d/neuron.list", str(etc / "neuron.list"))
    (scripts / "setup.sh").write_text(text)
    etc.mkdir()
    run = subprocess.run(["bash", "-c", script], capture_output=True, text=True)
    rc = int(run.stdout.strip().splitlines()[-1].removeprefix("rc="))
    calls = log.read_text().splitlines() if log.exists() else []
    return rc, calls, etc / "neuron.list"


def test_setup_v2_installs_only_the_pinned_neuron_packages(tmp_path: Path) -> None:
    pins = _pins(FILES / "pins-neuronx.env")
    rc, calls, source = _source_setup(tmp_path, "-inf2", "-p", "-b", "/home/ubuntu/python_backend")
    assert rc == 0, calls
    assert ("apt-get install -y -q aws-neuronx-collectives=" + pins["NEURON_COLLECTIVES_VERSION"]
            + " aws-neuronx-runtime-lib=" + pins["NEURON_RUNTIME_LIB_VERSION"]) in calls
    assert f"pip config set global.extra-index-url {pins['NEURON_PIP_INDEX']}" in calls
    assert (f"pip install {pins['NEURONX_CC_SPEC']} {pins['TORCH_NEURONX_SPEC']} {pins['TORCHVISION_SPEC']} "
            f"{pins['TRANSFORMERS_SPEC']}" in calls)
    assert f"wget -q {pins['NEURON_APT_KEY_URL']} -O /etc/apt/keyrings/neuron.asc" in calls
    assert source.read_text() == f"deb [signed-by=/etc/apt/keyrings/neuron.asc] {pins['NEURON_APT_REPO']} " \
        + subprocess.run(["sh", "-c", ". /etc/os-release && echo $VERSION_CODENAME"], capture_output=True,
                         text=True).stdout.strip() + " main\n"
    assert not any(c.startswith("pip install --upgrade") for c in calls)
    assert all("==" in w for c in calls if c.startswith("pip install") for w in c.split()[2:])


def test_setup_v2_takes_upstreams_flags_and_refuses_what_infprov_does_not_pin(tmp_path: Path) -> None:
    upstream = _upstream("inferentia/scripts/setup.sh")
    for word in ("-inf2|--inf2-setup)", "-trn1|--trn1-setup)", "-p|--use-pytorch)", "-b|--python-backend-path)"):
        assert word in upstream  # the flags start.sh passes are upstream's
    assert (subprocess.run(["git", "-C", str(MIRROR), "rev-parse", f"{BRANCH}:inferentia/scripts/setup.sh"],
                           capture_output=True, text=True).stdout.strip()
            == subprocess.run(["git", "-C", str(MIRROR), "rev-parse", "r23.08:inferentia/scripts/setup.sh"],
                              capture_output=True, text=True).stdout.strip())
    rc, calls, _ = _source_setup(tmp_path / "trn1", "-trn1", "-p")
    assert rc == 0 and any(c.startswith("pip install neuronx-cc==") for c in calls)
    for args, why in ((["-inf2", "-t"], "give -p"), (["-p"], "give -inf2 or -trn1"), (["-inf1", "-p"], "Inf1"),
                      (["-inf2", "-p", "--bogus"], "unexpected option")):
        where = tmp_path / "_".join(a.strip("-") for a in args)
        rc, calls, _ = _source_setup(where, *args)
        assert rc == 2 and not calls, (args, calls)
        assert why in (where / "calls.log.err").read_text()


def test_sandbox_v2_pins_differ_only_in_urls_and_trust() -> None:
    real, sandbox = _pins(FILES / "pins-neuronx.env"), _pins(FILES / "sandbox" / "pins-neuronx.env")
    assert real.keys() == sandbox.keys()
    for key, value in real.items():
        if value.startswith("https://"):
            assert sandbox[key] == "http://infprov-downloads/" + value.removeprefix("https://"), key
        elif key == "NEURON_APT_TRUST":
            assert (value, sandbox[key]) == ("signed", "trusted")
        elif key == "NEURON_APT_SUITE":  # the server image's codename: Ubuntu 22.04 (24.04-py3), Debian 12
            assert (value, sandbox[key]) == ("jammy", "bookworm")
        else:
            assert sandbox[key] == value, key


# ---------------------------------------------------------------- start.sh on Inf2 / Trn1


def _run_start(tmp_path: Path, gen_source: str, *, cores: str, target: str, standin: bool) -> tuple[list[str], Path]:
    pb = tmp_path / "python_backend"
    (pb / "inferentia" / "scripts").mkdir(parents=True)
    (pb / "infprov").mkdir()
    (pb / "infprov-standin").mkdir()
    (pb / "inferentia" / "scripts" / "gen_triton_model.py").write_text(gen_source)
    (pb / "inferentia" / "scripts" / "setup.sh").write_text('echo "setup.sh $*" >> "$LOG"\n')
    (pb / "infprov-standin" / "model.py").write_text("# stand-in model\n")
    (pb / "infprov" / "start.sh").write_text((FILES / "inf1" / "start.sh").read_text())
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"
    real_python = subprocess.run(["sh", "-c", "command -v python3"], capture_output=True, text=True).stdout.strip()
    # python3: record, then run the generator for real; a compile writes its output file; tritonserver records
    (bin_dir / "python3").write_text(
        '#!/bin/bash\necho "python3 $*" >> "$LOG"\n'
        f'case "$1" in *gen_triton_model.py) exec {real_python} "$@" ;; esac\n'
        'while [ $# -gt 0 ]; do [ "$1" = --out ] && { touch "$2"; }; shift; done\n')
    (bin_dir / "tritonserver").write_text('#!/bin/bash\necho "tritonserver $*" >> "$LOG"\n')
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "LOG": str(log), "PYTHON_BACKEND_PATH": str(pb),
           "MODEL_NAME": "rn50-2neuroncores-default", "NEURON_CORE_RANGE": cores, "MAX_BATCH_SIZE": "8",
           "NEURON_GENERATION": "neuron-v2", "SETUP_TARGET": target, "INFPROV_NEURON_STANDIN": "1" if standin else "0"}
    # the environment's state folder: under the test's folder, not /opt
    text = (pb / "infprov" / "start.sh").read_text().replace("state=/opt/infprov", f"state={tmp_path}/state")
    (pb / "infprov" / "start.sh").write_text(text)
    run = subprocess.run(["bash", str(pb / "infprov" / "start.sh")], env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    return log.read_text().splitlines(), pb / "models" / "rn50-2neuroncores-default"


def test_start_sh_on_inf2_runs_upstreams_generator_with_torch_tensor_names(tmp_path: Path) -> None:
    calls, model_dir = _run_start(tmp_path, _upstream("inferentia/scripts/gen_triton_model.py"), cores="0:1",
                                  target="-inf2", standin=False)
    pb = tmp_path / "python_backend"
    assert calls[0] == f"setup.sh -inf2 -p -b {pb}"
    assert calls[1] == f"python3 {pb}/infprov/compile_rn50_neuronx.py --out {model_dir}/rn50_neuronx.pt --batch 8"
    assert calls[2] == (f"python3 {pb}/inferentia/scripts/gen_triton_model.py --inf2 --model_type pytorch "
                        "--compiled_model rn50_neuronx.pt --triton_input INPUT__0,FP32,8x3x224x224 "
                        "--triton_output OUTPUT__0,FP32,8x1000 --neuron_core_range 0:1 "
                        f"--triton_model_instance_count 2 --triton_model_dir {model_dir}")
    assert calls[3] == f"tritonserver --model-repository {pb}/models"
    config = (model_dir / "config.pbtxt").read_text()
    assert 'name: "INPUT__0"' in config and "dims: [8, 3, 224, 224]" in config and "max_batch_size: 0" in config
    assert 'name: "OUTPUT__0"' in config and "count: 2" in config
    model = (model_dir / "1" / "model.py").read_text()
    assert "import torch_neuronx" in model and "os.path.join(args['model_repository'], compiled_model)" in model


def test_the_sandbox_generator_writes_upstreams_v2_config(tmp_path: Path) -> None:
    from infprov.sandbox import pbrepo

    _, upstream_dir = _run_start(tmp_path / "up", _upstream("inferentia/scripts/gen_triton_model.py"),
                                 cores="0:23", target="-inf2", standin=False)
    calls, standin_dir = _run_start(tmp_path / "sb", pbrepo.gen_source(BRANCH), cores="0:23", target="-inf2",
                                    standin=True)
    assert any("infprov-standin/compile_neuronx.py" in c for c in calls)
    assert (standin_dir / "config.pbtxt").read_text() == (upstream_dir / "config.pbtxt").read_text()
    assert "count: 24" in (standin_dir / "config.pbtxt").read_text()


def test_start_sh_on_trn1_sets_up_for_trn1_and_refuses_a_bad_target(tmp_path: Path) -> None:
    calls, _ = _run_start(tmp_path / "ok", _upstream("inferentia/scripts/gen_triton_model.py"), cores="0:31",
                          target="-trn1", standin=False)
    assert calls[0].startswith("setup.sh -trn1 -p")
    with pytest.raises(AssertionError, match="SETUP_TARGET must be"):
        _run_start(tmp_path / "bad", "", cores="0:1", target="-inf3", standin=False)


# ---------------------------------------------------------------- bench follows the served model


def _config_json(max_batch: int, name: str, dims: list[int], out: str, out_dims: list[int]) -> str:
    import json

    return json.dumps({"max_batch_size": max_batch,
                       "input": [{"name": name, "data_type": "TYPE_FP32", "dims": dims}],
                       "output": [{"name": out, "data_type": "TYPE_FP32", "dims": out_dims}]})


def test_bench_reads_names_layout_and_batch_from_the_inf2_config() -> None:
    from infprov.floor.errors import UsageError
    from infprov.provision import bench, benchplan

    inf2 = bench.ModelConfig.parse(_config_json(0, "INPUT__0", [8, 3, 224, 224], "OUTPUT__0", [8, 1000]))
    inf1 = bench.ModelConfig.parse(_config_json(64, "input", [224, 224, 3], "output", [1000]))
    assert (inf2.layout, inf2.fixed_batch, inf2.batch_for(0), inf2.output_name) == ("NCHW", 8, 8, "OUTPUT__0")
    assert (inf1.layout, inf1.fixed_batch, inf1.batch_for(16)) == ("NHWC", None, 16)
    plan = benchplan.plan("inf2.xlarge")  # no flags
    assert plan.points[0].batch_size == 0 and plan.neuron_cores == 2
    point = benchplan.Point(inf2.batch_for(plan.points[0].batch_size), 2)
    bench.check_batch(inf2, point.batch_size, "h")
    with pytest.raises(UsageError, match="exactly 8 images"):
        bench.check_batch(inf2, 16, "h")
    cmd = bench._client_command(plan, point, "n", "/r/p.json", config=inf2, splits_batch=False)
    assert "--input_name INPUT__0 --output_name OUTPUT__0 --neuron_cores 0" in cmd and "--batch_size 8" in cmd
    pa = bench._perf_analyzer_command(plan, point, "n", "/r/p.csv", inf2)
    assert "-b 1" in pa and "--shape INPUT__0:8,3,224,224" in pa
    assert benchplan.plan("inf1.6xlarge").points[0].batch_size == 16
