"""The sandbox's pins and stand-in downloads: what setup.sh meets there instead of the internet.

These run without the sandbox; tests/sandbox/test_up_sandbox.py runs setup.sh against them for real.
"""

from __future__ import annotations

import fnmatch
import io
import subprocess
import tarfile
import zipfile
from pathlib import Path

from infprov.provision import preflight
from infprov.sandbox import downloads, pbrepo

REAL = preflight.read_pins(preflight.PINS)
SANDBOX = preflight.read_pins(preflight.SANDBOX_PINS)
# keys whose values are where a thing is fetched from (and, for stand-ins, its checksum)
LOCATIONS = {"MINICONDA_URL", "MINICONDA_SHA256", "BOOST_URL", "BOOST_SHA256", "NEURON_PIP_INDEX",
             "PYBIND11_REPO", "DLPACK_REPO", "PYTHON_BACKEND_REPO"}


def test_sandbox_pins_have_the_real_keys_and_differ_only_in_where_things_come_from() -> None:
    assert list(SANDBOX) == list(REAL)
    for key, value in REAL.items():
        if key in LOCATIONS:
            assert SANDBOX[key] != value, key
        else:
            assert SANDBOX[key] == value, key
    for key in LOCATIONS - {"MINICONDA_SHA256", "BOOST_SHA256"}:
        assert SANDBOX[key].startswith(f"http://{downloads.NAME}/"), key
        # the stand-in keeps the real host and path under its own name
        real = REAL[key].removeprefix("https://").removesuffix(".git")
        assert SANDBOX[key] == f"http://{downloads.NAME}/{real}", key
    # the URL setup.sh rewrites is r22.04's, as in the stand-in CMakeLists.txt
    assert SANDBOX["BOOST_DEAD_URL"] in pbrepo._CMAKELISTS


def test_stand_in_checksums_are_pinned_and_stable() -> None:
    assert downloads.sha256(downloads.MINICONDA_INSTALLER.encode()) == SANDBOX["MINICONDA_SHA256"]
    archive = downloads.boost_archive()
    assert archive == downloads.boost_archive()
    assert downloads.sha256(archive) == SANDBOX["BOOST_SHA256"]
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        assert "boost_1_76_0/boost/INFPROV-STANDIN.txt" in tar.getnames()


def test_stand_in_neuron_wheel_has_the_pinned_name_and_says_what_it_is() -> None:
    project, _, version = SANDBOX["TENSORFLOW_NEURON_SPEC"].partition("==")
    name, data = downloads.standin_wheel(project, version)
    assert name == f"tensorflow_neuron-{version}-py3-none-any.whl"
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        meta = zf.read(f"tensorflow_neuron-{version}.dist-info/METADATA").decode()
    assert f"Name: {project}\nVersion: {version}\n" in meta and "stand-in" in meta


def test_stand_in_conda_makes_activates_and_lists_venvs(tmp_path: Path) -> None:
    installer = tmp_path / "installer.sh"
    installer.write_text(downloads.MINICONDA_INSTALLER)
    prefix = tmp_path / "miniconda"
    script = f"""
set -e
bash {installer} -b -p {prefix}
test -x {prefix}/bin/conda
source {prefix}/etc/profile.d/conda.sh
if conda tos --help >/dev/null 2>&1; then echo TOS; fi
conda env list | grep -q '^test_conda_env ' && echo EARLY
conda create -y -q -n test_conda_env python=3.7
conda env list | grep '^test_conda_env '
conda activate test_conda_env
echo "prefix=$CONDA_PREFIX"
python -c 'import sys; print("venv=" + str(sys.prefix != sys.base_prefix))'
conda activate nosuch || echo "no such env"
"""
    run = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    out = run.stdout
    assert "TOS" not in out and "EARLY" not in out, "like conda 4.10.3: no tos command, no env before create"
    assert f"test_conda_env           {prefix}/envs/test_conda_env" in out
    assert f"prefix={prefix}/envs/test_conda_env" in out and "venv=True" in out
    assert "no such env" in out


def test_stand_in_installer_refuses_unknown_options(tmp_path: Path) -> None:
    installer = tmp_path / "installer.sh"
    installer.write_text(downloads.MINICONDA_INSTALLER)
    run = subprocess.run(["bash", str(installer), "-u"], capture_output=True, text=True, timeout=30)
    assert run.returncode == 2 and "unknown option -u" in run.stderr


def test_preflight_finds_sandbox_urls_on_the_stand_in_server() -> None:
    gw = "10.9.8.1"
    assert downloads.standin_url(SANDBOX["MINICONDA_URL"], gw) == (
        "http://10.9.8.1/repo.anaconda.com/miniconda/Miniconda3-py37_4.10.3-Linux-x86_64.sh")
    # preflight's own URLs (the Triton repositories, the registries) under their host's folder there
    assert downloads.standin_url("https://github.com/triton-inference-server/core/info/refs?service=x", gw) == (
        "http://10.9.8.1/github.com/triton-inference-server/core/info/refs?service=x")
    # every file the sandbox's pins name is one the stand-in lays out
    rels = downloads.expected_files(SANDBOX)
    assert "repo.anaconda.com/miniconda/Miniconda3-py37_4.10.3-Linux-x86_64.sh" in rels
    assert "nvcr.io/v2/nvidia/tritonserver/manifests/22.04-py3" in rels


def test_the_neuron_v2_stand_ins_are_laid_out_and_valid(tmp_path: Path) -> None:
    v2 = downloads.read_pins_v2()
    rels = downloads.expected_files(SANDBOX)
    for rel in ("apt.repos.neuron.amazonaws.com/dists/bookworm/InRelease",
                "apt.repos.neuron.amazonaws.com/pool/main/a/aws-neuronx-runtime-lib/"
                "aws-neuronx-runtime-lib_2.20.22.0-infprov1_amd64.deb",
                "pip.repos.neuron.amazonaws.com/torch-neuronx/index.html", "pypi.org/simple/torchvision/index.html",
                "nvcr.io/v2/nvidia/tritonserver/manifests/24.04-py3"):
        assert rel in rels, rel
    # the stand-in package is a Debian package dpkg reads, of the version the pin asks for
    name, data, _ = downloads.standin_deb("aws-neuronx-collectives", "2.20.22.0-infprov1")
    deb = tmp_path / name
    deb.write_bytes(data)
    fields = subprocess.run(["dpkg-deb", "-f", str(deb), "Package", "Version"], capture_output=True, text=True,
                            check=True).stdout.splitlines()
    assert fields == ["Package: aws-neuronx-collectives", "Version: 2.20.22.0-infprov1"]
    assert fnmatch.fnmatchcase("2.20.22.0-infprov1", v2["NEURON_COLLECTIVES_VERSION"])
    listing = subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True, check=True).stdout
    assert "./opt/aws/neuron/infprov-standin-aws-neuronx-collectives.txt" in listing


def test_stand_in_installer_is_clean_shell(tmp_path: Path) -> None:
    installer = tmp_path / "installer.sh"
    installer.write_text(downloads.MINICONDA_INSTALLER)
    proc = subprocess.run(["shellcheck", str(installer)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout
