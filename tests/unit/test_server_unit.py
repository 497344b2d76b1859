"""The server playbook's Inf1 command lines, rendered per instance type and checked against FACTS."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml

from infprov.provision import catalog

PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"
SERVER = PLAYBOOKS / "server.yml"

# instance type -> (chips = /dev/neuronN, NeuronCores), from the Inf1 table
EXPECTED = {
    "inf1.xlarge": (1, 4),
    "inf1.2xlarge": (1, 4),
    "inf1.6xlarge": (4, 16),
    "inf1.24xlarge": (16, 64),
}


# what "The keys of the environment and of the model" registers on a host (two sha256 sums)
SETUP_KEY, MODEL_KEY = "5e" * 32, "3d" * 32


def _play() -> dict[str, Any]:
    plays = yaml.safe_load(SERVER.read_text())
    assert isinstance(plays, list) and len(plays) == 1
    return plays[0]


def _task(name: str) -> dict[str, Any]:
    for task in _play()["tasks"]:
        if task["name"] == name:
            return task
    raise AssertionError(f"no task {name!r} in {SERVER}")


def _render(text: str, variables: dict[str, Any]) -> str:
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    return env.from_string(text).render(**variables)


def _vars(instance_type: str, profile: str = "inf1", env_image_built: bool = False,
          downloads: str | None = None) -> dict[str, Any]:
    """Play vars resolved the way Ansible resolves them (lazily, by rendering until stable)."""
    chips = catalog.get(instance_type).neuron_devices
    raw: dict[str, Any] = dict(_play()["vars"])
    if downloads is not None:
        raw["infprov_downloads_address"] = downloads
    raw.update(profile=profile, neuron_cores=catalog.get(instance_type).neuron_cores,
               neuron_devices_found={"stdout_lines": [f"/dev/neuron{i}" for i in range(chips)]},
               env_image_present={"stdout": "yes" if env_image_built else "no"},
               infprov_keys={"stdout_lines": [SETUP_KEY, MODEL_KEY]})
    raw.update(_task("Triton server container")["vars"])
    resolved = dict(raw)
    for _ in range(5):
        resolved = {k: _render(v, resolved) if isinstance(v, str) else v for k, v in resolved.items()}
    return resolved


@pytest.mark.parametrize("instance_type", sorted(EXPECTED))
def test_docker_run_per_instance_type(instance_type: str) -> None:
    chips, cores = EXPECTED[instance_type]
    v = _vars(instance_type)
    args = " ".join(v["run_args"].split())
    devices = " ".join(f"--device /dev/neuron{i}" for i in range(chips))
    assert args == (
        f"{devices} -v /home/ubuntu/python_backend:/home/ubuntu/python_backend -v /lib/udev:/mylib/udev "
        "--shm-size=1g --ulimit memlock=-1 --ulimit stack=67108864 "
        "-p 127.0.0.1:8000:8000 -p 127.0.0.1:8001:8001 -p 127.0.0.1:8002:8002 "
        f"-e MODEL_NAME=rn50-{cores}neuroncores-default -e MODEL_PLAN= -e NEURON_CORE_RANGE=0:{cores - 1} "
        f"-e NEURON_RT_VISIBLE_CORES=0-{cores - 1} -e MAX_BATCH_SIZE=64 -e NEURON_GENERATION=neuron-v1 "
        f"-e INFPROV_SETUP_HASH={SETUP_KEY} -e INFPROV_MODEL_HASH={MODEL_KEY} "
        "-e PYTHON_BACKEND_PATH=/home/ubuntu/python_backend "
        "nvcr.io/nvidia/tritonserver:22.04-py3 bash /home/ubuntu/python_backend/infprov/start.sh"
    )
    assert v["model_name"] == catalog.model_name(instance_type) == f"rn50-{cores}neuroncores-default"
    assert v["neuron_core_range"] == catalog.core_range(instance_type) == f"0:{cores - 1}"


def test_second_start_uses_the_kept_environment() -> None:
    v = _vars("inf1.6xlarge", env_image_built=True)
    assert " infprov/tritonserver-neuron:22.04 bash " in " ".join(v["run_args"].split())


def test_sandbox_profile_runs_the_same_start_script_with_the_neuron_layer_stood_in() -> None:
    inf1 = " ".join(_vars("inf1.6xlarge")["run_args"].split())
    sandbox = " ".join(_vars("inf1.6xlarge", profile="sandbox", downloads="10.9.8.1")["run_args"].split())
    assert sandbox.endswith("nvcr.io/nvidia/tritonserver:22.04-py3 bash /home/ubuntu/python_backend/infprov/start.sh")
    # only the Neuron layer's switch and the name of the stand-in download server differ
    keys = f"-e INFPROV_MODEL_HASH={MODEL_KEY} "
    assert sandbox == inf1.replace(keys, keys + "-e INFPROV_NEURON_STANDIN=1 --add-host infprov-downloads:10.9.8.1 ")


def test_each_profile_gets_its_own_pins() -> None:
    assert _task("The pinned downloads setup.sh reads")["ansible.builtin.copy"]["src"] == "{{ pins_file }}"
    pins = _play()["vars"]["pins_file"]
    for profile, generation, expected in (("inf1", "neuron-v1", "files/pins.env"),
                                          ("sandbox", "neuron-v1", "files/sandbox/pins.env"),
                                          ("inf2", "neuron-v2", "files/pins-neuronx.env"),
                                          ("sandbox", "neuron-v2", "files/sandbox/pins-neuronx.env")):
        assert _render(pins, {"profile": profile, "generation": generation}) == expected
        assert (PLAYBOOKS / expected).is_file()


def test_the_free_disk_need_fits_the_smallest_volume_up_allows() -> None:
    from infprov.provision import specs

    need = int(_render(_play()["vars"]["min_free_gib"], {}))
    assert need == 40  # how it was reached: the comment above min_free_gib in server.yml
    assert need < specs.MIN_DISK_GIB


def test_no_em_dash_or_non_ascii_in_what_runs_on_hosts() -> None:
    for path in [SERVER, *PLAYBOOKS.glob("*.yml"), *(PLAYBOOKS / "files").rglob("*")]:
        if path.is_file():
            text = path.read_bytes()
            assert all(b < 128 for b in text), f"non-ASCII byte in {path}"
            assert "\u2014" not in text.decode("ascii")


def test_start_script_generates_the_model_as_facts_say() -> None:
    start = (PLAYBOOKS / "files" / "inf1" / "start.sh").read_text()
    assert 'gen_triton_model.py" --model_type tensorflow' in start
    assert "--triton_input input,FP32,224x224x3 --triton_output output,FP32,1000" in start
    assert '--max_batch_size "$max_batch"' in start
    assert '--neuron_core_range "$cores"' in start
    assert 'source "$pb/inferentia/scripts/setup.sh" -t' in start
    assert 'exec tritonserver --model-repository "$pb/models"' in start


SETUP = PLAYBOOKS / "files" / "setup.sh"


def test_patched_setup_carries_the_seed_changes() -> None:
    text = SETUP.read_text()
    for tag in ("TRITON_BACKEND_REPO_TAG", "TRITON_COMMON_REPO_TAG", "TRITON_CORE_REPO_TAG"):
        assert f'-D {tag}="$pin_TRITON_REPO_TAG"' in text  # r22.04, from pins.env (tests/unit/test_inf1_path.py)
    assert 'apt-get "${apt_opts[@]}" install -y' in text and "DEBIAN_FRONTEND=noninteractive" in text
    assert "rapidjson-dev zlib1g-dev libarchive-dev" in text
    assert 'pip3 install --upgrade "$pin_CMAKE_PIP_SPEC"' in text
    assert '"$pin_PROTOBUF_SPEC"' in text  # protobuf<4, from pins.env
    assert "--tensorflow-version) tf_version=$2" in text
    assert 'eval set -- "$opts"' in text  # getopt's output is what gets parsed


def test_setup_leaves_out_the_cuda_repository_the_22_04_image_carries() -> None:
    """server r22.04's build.py adds NVIDIA's CUDA repository with the key rotated out on 2022-04-27, so
    `apt-get update` fails there (tests/unit/test_upstream_records.py shows it on the sandbox's stand-in): setup.sh
    runs apt without every source naming that repository, its apt calls alike."""
    from infprov.sandbox import provenance

    text = SETUP.read_text()
    pattern = next(line.split("cuda=", 1)[1].split()[0] for line in text.splitlines() if " cuda=" in line)
    uri = provenance.load("server-r22.04-apt-sources").fact("cuda_source", "uri")
    assert pattern in uri and pattern.startswith("developer.download.nvidia.com/")
    calls = [line.strip() for line in text.splitlines() if line.strip().startswith("apt-get ")]
    assert len(calls) == 2 and all(c.startswith('apt-get "${apt_opts[@]}" ') for c in calls), calls
    assert '-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o "Dir::Etc::SourceParts=$apt_dir/parts"' in text


def test_patched_setup_is_clean_shell() -> None:
    subprocess.run(["bash", "-n", str(SETUP)], check=True)
    if subprocess.run(["which", "shellcheck"], capture_output=True).returncode != 0:
        pytest.fail("shellcheck is not installed (./scripts/setup installs it)")
    files = PLAYBOOKS / "files"
    # -x: the setup scripts source the pins reader beside them (pins.sh), which shellcheck follows from there
    proc = subprocess.run(["shellcheck", "-x", str(SETUP), str(files / "setup-neuronx.sh"), str(files / "pins.sh"),
                           str(files / "inf1" / "start.sh")], capture_output=True, text=True, cwd=files)
    assert proc.returncode == 0, proc.stdout


def _source_setup(*args: str) -> subprocess.CompletedProcess[str]:
    """Source the script with its side effects stubbed: only option handling runs for real."""
    script = (
        "apt-get() { :; }; pip3() { :; }; pip() { :; }; wget() { return 1; }; "
        f"source {SETUP} {' '.join(args)}; echo rc=$?"
    )
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30)


def test_setup_refuses_bad_options_when_sourced() -> None:
    both = _source_setup("-tp")  # combined flags are read (upstream ignored them)
    assert "exactly one of -t" in both.stderr and "rc=2" in both.stdout
    none = _source_setup()
    assert "exactly one of -t" in none.stderr and "rc=2" in none.stdout
    bad_tf = _source_setup("-t", "--tensorflow-version", "3")
    assert "--tensorflow-version must be 1 or 2, not 3" in bad_tf.stderr and "rc=2" in bad_tf.stdout


def test_the_setup_log_command_quotes_and_bounds_what_it_shows() -> None:
    """`infprov logs --setup` (issue 25, item 15): tail of the kept file, -F to follow, one line when missing."""
    import shlex

    from infprov.provision import server

    cmd = server.setup_log_command(50, False)
    assert cmd.startswith(f"if [ -r {server.SETUP_LOG} ]; then tail -n 50 {server.SETUP_LOG}; else echo ")
    assert cmd.endswith(" >&2; exit 1; fi")
    assert "tail -n +1 -F " in server.setup_log_command(None, True)
    said = shlex.split(cmd.split("else echo ", 1)[1].rsplit(" >&2", 1)[0])
    assert len(said) == 1 and said[0].startswith("error: no setup log on this host") and "hint:" in said[0]


def test_the_environment_image_keeps_no_start_of_its_own() -> None:
    """docker commit copies the container's -e values into the image's ENV: a user's model plan (or Inf1's
    framework) baked in there would make every later start without one make that model instead of ResNet-50
    (seen on the sandbox: a SavedModel, then rn50, served nothing). The commit empties them, and a start
    without a plan says so itself."""
    text = SERVER.read_text()
    commit = next(line for line in text.splitlines() if "docker commit" in line and "--change" in line)
    assert "--change 'ENV MODEL_PLAN='" in commit and "--change 'ENV SETUP_FRAMEWORK='" in commit
    assert " -e MODEL_PLAN= " in " ".join(_vars("inf1.xlarge")["run_args"].split()) + " "
