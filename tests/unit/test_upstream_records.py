"""Every fact a stand-in presents is traced to a record of upstream (sandbox/upstream/, with its provenance).

The unit tests here read what the stand-ins are generated from; the sandbox tests read what the running
stand-ins present (the download server's files over HTTP, the server images' apt behaviour on a host).
"""

from __future__ import annotations

import datetime
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from infprov.provision import preflight
from infprov.sandbox import cudaapt, downloads, pbrepo, provenance

PINS = preflight.read_pins()
SANDBOX_PINS = preflight.read_pins(preflight.SANDBOX_PINS)


def test_every_record_says_where_it_came_from_and_when() -> None:
    records = provenance.all_records()
    assert len(records) >= 9, [r.name for r in records]
    for rec in records:
        prov = rec.provenance
        assert str(prov["source"]).startswith("https://"), rec.name
        assert prov["ref"] and prov["taken"], rec.name
        datetime.date.fromisoformat(str(prov["date"]))
        assert rec.facts, rec.name


def test_a_missing_record_or_fact_is_an_error_not_a_guess(tmp_path: Path) -> None:
    with pytest.raises(provenance.RecordError, match="cannot be read"):
        provenance.git_refs("pybind/pybind11", tmp_path)
    rec = provenance.load("cuda-repository-key-rotation")
    with pytest.raises(provenance.RecordError, match="has no fact nothing.here"):
        rec.fact("nothing", "here")
    (tmp_path / "bad.json").write_text(json.dumps({"record": "x", "facts": {}, "provenance": {"source": "s"}}))
    with pytest.raises(provenance.RecordError, match="needs provenance"):
        provenance.load("bad", tmp_path)


# ---------------------------------------------------------------- git refs: preflight's and the stand-in's
def test_the_pinned_refs_are_in_the_records_as_git_resolves_them() -> None:
    """r22.04's CMake asks for GIT_TAG "v2.6" and "v0.5"; the records say what those are upstream."""
    pybind = provenance.git_refs("pybind/pybind11")
    assert f"refs/heads/{PINS['PYBIND11_TAG']}" in pybind and f"refs/tags/{PINS['PYBIND11_TAG']}" not in pybind
    assert f"refs/tags/{PINS['DLPACK_TAG']}" in provenance.git_refs("dmlc/dlpack")
    for repo in preflight.TRITON_REPOS:
        assert f"refs/heads/{PINS['TRITON_REPO_TAG']}" in provenance.git_refs(f"triton-inference-server/{repo}")
    pb = provenance.git_refs("triton-inference-server/python_backend")
    v2 = preflight.read_pins(preflight.PINS_V2)
    assert {f"refs/heads/{PINS['PYTHON_BACKEND_REF']}", f"refs/heads/{v2['PYTHON_BACKEND_REF']}"} <= set(pb)


def test_the_download_server_advertises_exactly_the_recorded_refs() -> None:
    files = downloads.git_ref_files(SANDBOX_PINS)
    assert set(files) == {f"github.com/{r}/info/refs" for r in downloads.recorded_repos(SANDBOX_PINS)}
    for rel, text in files.items():
        repo = rel.removeprefix("github.com/").removesuffix("/info/refs")
        served = dict(reversed(line.split("\t")) for line in text.splitlines())
        assert served == provenance.git_refs(repo), repo


def test_a_ref_removed_from_a_record_is_gone_from_the_stand_in(tmp_path: Path) -> None:
    shutil.copytree(provenance.FOLDER, tmp_path / "r")
    path = tmp_path / "r" / "git-refs-pybind-pybind11.json"
    doc = json.loads(path.read_text())
    del doc["facts"]["refs"]["refs/heads/v2.6"]
    path.write_text(json.dumps(doc))
    text = downloads.git_ref_files(SANDBOX_PINS, tmp_path / "r")["github.com/pybind/pybind11/info/refs"]
    assert "refs/heads/v2.6\n" not in text and "refs/tags/v2.6.2\n" in text


def test_the_python_backend_stand_in_has_only_recorded_branches() -> None:
    pb = provenance.git_refs("triton-inference-server/python_backend")
    assert {f"refs/heads/{pbrepo.BRANCH}", f"refs/heads/{pbrepo.V2_BRANCH}"} <= set(pb)


# ---------------------------------------------------------------- the server images' apt sources
@pytest.fixture()
def key_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The stand-in CUDA signing keys made for this test in a cache of its own, not read from the machine's image
    cache (root's, made by `sandbox up`): the unit tier needs neither root nor a sandbox built before it."""
    cache = tmp_path_factory.mktemp("image-cache")
    monkeypatch.setenv("INFPROV_CACHE", str(cache))
    return cache


def test_the_22_04_image_trusts_only_the_rotated_out_key_for_the_recorded_cuda_repository(key_cache: Path) -> None:
    r22 = provenance.load("server-r22.04-apt-sources")
    rotation = provenance.load("cuda-repository-key-rotation")
    assert rotation.fact("old_key_short_id") == r22.fact("cuda_key", "short_id")
    files = cudaapt.image_files("22.04", downloads.APT_SOURCE)
    assert set(files) == {"etc/apt/sources.list", "etc/apt/trusted.gpg"}
    lines = files["etc/apt/sources.list"].decode().splitlines()
    cuda = [line for line in lines if "developer.download.nvidia.com" in line]
    uri, suite = r22.fact("cuda_source", "uri"), r22.fact("cuda_source", "suite")
    assert cuda == [f"deb {cudaapt.standin_uri(uri)} {suite}"]
    keys = cudaapt.ensure_keys()
    assert files["etc/apt/trusted.gpg"] == (keys / "old.gpg").read_bytes()


def test_the_24_04_image_trusts_the_current_key_as_cuda_keyring_does(key_cache: Path) -> None:
    r24 = provenance.load("server-r24.04-apt-sources")
    assert r24.fact("cuda_key", "signed_by_current_key") is True
    files = cudaapt.image_files("24.04", downloads.APT_SOURCE)
    listed = files[cudaapt.LIST_V2.lstrip("/")].decode()
    assert listed == f"deb [signed-by={cudaapt.KEYRING_V2}] {cudaapt.standin_uri(r24.fact('cuda_source', 'uri'))} /\n"
    assert files[cudaapt.KEYRING_V2.lstrip("/")] == (cudaapt.ensure_keys() / "current.gpg").read_bytes()
    assert "developer.download.nvidia.com" not in files["etc/apt/sources.list"].decode()


def test_the_stand_in_cuda_repositories_are_the_recorded_ones_signed_with_the_current_key(tmp_path: Path,
                                                                                    key_cache: Path) -> None:
    files = cudaapt.tree_files()
    released = {name.removesuffix("/InRelease") for name in files if name.endswith("/InRelease")}
    assert released == {uri.split("://", 1)[1].rstrip("/") for uri in cudaapt.repository_uris().values()}
    keys = cudaapt.ensure_keys()
    signed = tmp_path / "InRelease"
    signed.write_bytes(files[sorted(released)[0] + "/InRelease"])
    good = subprocess.run(["gpgv", "--keyring", str(keys / "current.gpg"), str(signed)], capture_output=True)
    assert good.returncode == 0, good.stderr
    stale = subprocess.run(["gpgv", "--keyring", str(keys / "old.gpg"), str(signed)], capture_output=True)
    assert stale.returncode != 0


# ---------------------------------------------------------------- what the running stand-ins present


# ---------------------------------------------------------------- what r22.04's CMake fetches: pins and stand-in
def test_the_pins_and_the_python_backend_stand_in_follow_the_cmake_record() -> None:
    cmake = provenance.load("python_backend-r22.04-cmake")
    assert PINS["PYBIND11_REPO"] == cmake.fact("pybind11", "repository")
    assert PINS["PYBIND11_TAG"] == cmake.fact("pybind11", "git_tag")
    assert PINS["DLPACK_REPO"] == cmake.fact("dlpack", "repository")
    assert PINS["DLPACK_TAG"] == cmake.fact("dlpack", "git_tag")
    assert PINS["BOOST_DEAD_URL"] == cmake.fact("boost", "url")
    assert PINS["BOOST_SHA256"] == cmake.fact("boost", "sha256"), "archives.boost.io's copy is checked by this hash"
    # setup.sh overrides the three Triton tags, whose default (main) no longer builds with r22.04
    assert cmake.fact("triton_repo_tag_default") == "main" and PINS["TRITON_REPO_TAG"] == "r22.04"
    setup = (Path(preflight.PINS).parent / "setup.sh").read_text()
    for variable in cmake.fact("triton_repo_tag_variables"):
        assert f'-D {variable}="$pin_TRITON_REPO_TAG"' in setup
    # the stand-in's CMakeLists fetches Boost from the recorded (dead) URL, so setup.sh's repointing runs for real
    standin = pbrepo._CMAKELISTS
    assert f"URL {cmake.fact('boost', 'url')}" in standin
    assert f"ExternalProject_Add(\n  {cmake.fact('boost', 'external_project')}" in standin
    for variable in cmake.fact("triton_repo_tag_variables"):
        assert variable in standin


def test_the_transformers_pin_is_the_recorded_one_on_both_profiles() -> None:
    """An Inf2/Trn1 host loads a hub model with transformers before torch_neuronx traces it: the pin is the
    version the Neuron documentation installs for that at the pinned release, and the sandbox pins the same."""
    rec = provenance.load("huggingface-transformers-pin")
    for pins in (preflight.PINS_V2, downloads.PINS_V2):
        assert preflight.read_pins(pins)["TRANSFORMERS_SPEC"] == rec.fact("transformers_spec"), pins
    files = preflight.PINS_V2.parent
    assert "TRANSFORMERS_SPEC" in (files / "setup-neuronx.sh").read_text()
    # the token reaches the compile in the one variable every recorded huggingface_hub release reads
    assert "HUGGING_FACE_HUB_TOKEN" in rec.fact("token_variables")
    assert "HUGGING_FACE_HUB_TOKEN" in (files / "model" / "make_model.py").read_text()
