"""`infprov preflight` against a local stand-in of every server the pins name (nothing leaves the machine)."""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from infprov.provision import preflight
from infprov.provision.cli import app
from infprov.sandbox import provenance

runner = CliRunner()
PINS = preflight.read_pins()


def _pkt(line: str) -> str:
    return f"{len(line) + 4:04x}{line}"


# as the Neuron repository lists them: several versions a package, a build hash as revision
NEURON_STANZAS = [f"Package: {p}\nVersion: {v}\nArchitecture: amd64\n" for p, v in (
    ("aws-neuronx-runtime-lib", "2.19.5.0-97e2d271b"), ("aws-neuronx-runtime-lib", "2.20.22.0-1b3ca6425"),
    ("aws-neuronx-collectives", "2.20.22.0-c101c322e"), ("aws-neuronx-dkms", "2.16.7.0"))]
NEURON_DIST = "/apt.repos.neuron.amazonaws.com/dists/jammy"


def apt_layout(stanzas: list[str], indexes: tuple[str, ...] = ("Packages",), *, release: str = "InRelease",
               by_hash: bool = False) -> dict[str, bytes]:
    """A suite's files (paths under dists/SUITE -> bytes): the index in the forms named, listed in a Release
    (an InRelease is clearsigned-shaped, with a dash-escaped line, as the real one is signed)."""
    import bz2
    import gzip
    import hashlib
    import lzma

    plain = "\n".join(stanzas).encode()
    forms = {"Packages": plain, "Packages.gz": gzip.compress(plain), "Packages.xz": lzma.compress(plain),
             "Packages.bz2": bz2.compress(plain)}
    files: dict[str, bytes] = {}
    lines = []
    for name in indexes:
        data = forms[name]
        digest = hashlib.sha256(data).hexdigest()
        lines.append(f" {digest} {len(data)} main/binary-amd64/{name}")
        files[f"main/binary-amd64/by-hash/SHA256/{digest}" if by_hash else f"main/binary-amd64/{name}"] = data
    text = ("Origin: test\nSuite: jammy\nCodename: jammy\nArchitectures: amd64\nComponents: main\n"
            + ("Acquire-By-Hash: yes\n" if by_hash else "") + "SHA256:\n" + "\n".join(lines) + "\n")
    if release == "InRelease":
        text = ("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n" + text
                + "- -- a dash-escaped line\n-----BEGIN PGP SIGNATURE-----\n\nnot a real signature\n"
                "-----END PGP SIGNATURE-----\n")
    files[release] = text.encode()
    return files


class Mirror(http.server.ThreadingHTTPServer):
    """Answers as GitHub, NGC, the Boost and conda download hosts and the Neuron pip index would."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.gone: set[str] = set()  # paths that answer 404, as a vanished upstream would
        self.requests: list[str] = []
        self.records: Path | None = None  # another set of upstream records (None: sandbox/upstream)
        # the Neuron apt suite's files, as the record of the real repository says it publishes them
        self.apt: dict[str, bytes] = apt_layout(NEURON_STANZAS)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(http.server.BaseHTTPRequestHandler):
    server: Mirror

    def log_message(self, *args: Any) -> None:
        pass

    def _answer(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)) if self.command == "GET" else "90000000")
        self.end_headers()
        if self.command == "GET":
            self.wfile.write(body)

    def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
        self.do_GET()

    def do_GET(self) -> None:  # noqa: N802
        path = self.path
        self.server.requests.append(f"{self.command} {path}")
        if any(path.startswith(g) for g in self.server.gone):
            return self._answer(404)
        if path.startswith("/github.com/") and path.endswith("/info/refs?service=git-upload-pack"):
            # what the repository advertises is its record's ref list (sandbox/upstream), nothing else
            repo = "/".join(path.split("/")[2:4])
            try:
                refs = provenance.git_refs(repo, self.server.records)
            except provenance.RecordError:
                return self._answer(404)
            lines = [_pkt("# service=git-upload-pack\n"), "0000",
                     _pkt(f"{'a' * 40} HEAD\x00multi_ack side-band-64k\n")]
            lines += [_pkt(f"{sha} {ref}\n") for ref, sha in refs.items()]
            return self._answer(200, ("\n".join(lines) + "\n0000").encode())
        if "/v2/nvidia/tritonserver/manifests/" in path:
            if self.headers.get("Authorization") != "Bearer t0k":
                realm = "https://nvcr.io/proxy_auth"
                return self._answer(401, headers={
                    "WWW-Authenticate": f'Bearer realm="{realm}",scope="repository:nvidia/tritonserver:pull"'})
            return self._answer(200)
        if path.startswith("/nvcr.io/proxy_auth?"):
            return self._answer(200, json.dumps({"token": "t0k"}).encode())
        if path.startswith("/pip.repos.neuron.amazonaws.com/"):
            wheels = ["tensorflow_neuron-1.15.5.2.5.6.0-cp37-cp37m-linux_x86_64.whl",
                      "neuron_cc-1.13.5.0-cp37-cp37m-linux_x86_64.whl",
                      "neuronx_cc-2.13.68.0-cp310-cp310-linux_x86_64.whl",
                      "torch_neuronx-2.1.2.2.1.0-py3-none-any.whl"]
            return self._answer(200, "".join(f'<a href="{w}">{w}</a>\n' for w in wheels).encode())
        pypi = {"torchvision": "torchvision-0.16.2-cp310-cp310-manylinux1_x86_64.whl",
                "transformers": "transformers-4.34.1-py3-none-any.whl"}
        project = path.removeprefix("/pypi.org/simple/").split("/")[0] if path.startswith("/pypi.org/simple/") else ""
        if project in pypi:
            wheel = pypi[project]
            return self._answer(200, f'<a href="{wheel}">{wheel}</a>\n'.encode())
        if path.startswith(NEURON_DIST + "/"):
            data = self.server.apt.get(path.removeprefix(NEURON_DIST + "/"))
            return self._answer(404) if data is None else self._answer(200, data)
        if path.endswith(".PUB"):
            return self._answer(200)
        if path.endswith((".tar.gz", ".sh")):
            return self._answer(200)
        return self._answer(404)


@pytest.fixture()
def mirror(monkeypatch: pytest.MonkeyPatch, infprov_home: Path) -> Iterator[Mirror]:
    server = Mirror()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv(preflight.MIRROR_ENV, server.url)
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_every_pinned_download_is_checked_and_found(mirror: Mirror) -> None:
    result = runner.invoke(app, ["preflight", "--no-ami", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    names = [i["name"] for i in doc["items"]]
    assert "python_backend r22.04" in names and "Boost archive" in names and "server image" in names
    assert PINS["TENSORFLOW_NEURON_SPEC"] in names and PINS["NEURON_CC_SPEC"] in names
    assert all(i["ok"] for i in doc["items"]), doc
    assert any(r.startswith("GET /nvcr.io/proxy_auth?") for r in mirror.requests), "the pull token was fetched"


def test_the_neuron_v2_pins_are_checked_too(mirror: Mirror) -> None:
    v2 = preflight.read_pins(preflight.PINS_V2)
    result = runner.invoke(app, ["preflight", "--no-ami", "--type", "inf2.xlarge", "--json"])
    assert result.exit_code == 0, result.output
    items = {i["name"]: i for i in json.loads(result.stdout)["items"]}
    assert set(items) == {"python_backend r24.04", "Neuron v2 server image", "Neuron v2 SDK image", "Neuron apt key",
                          "aws-neuronx-runtime-lib 2.20.22.0*", "aws-neuronx-collectives 2.20.22.0*",
                          v2["NEURONX_CC_SPEC"], v2["TORCH_NEURONX_SPEC"], v2["TORCHVISION_SPEC"],
                          v2["TRANSFORMERS_SPEC"]}
    assert all(i["ok"] for i in items.values()), items
    detail = items["aws-neuronx-runtime-lib 2.20.22.0*"]["detail"]
    assert detail.startswith("aws-neuronx-runtime-lib 2.20.22.0-1b3ca6425")
    assert any(r.endswith("/nvidia/tritonserver/manifests/24.04-py3") for r in mirror.requests)
    # a version that left the apt repository is named, with the pin to edit
    runtime = next(i for i in preflight.items_v2(v2) if i.kind == "apt")
    gone = preflight.check(preflight.Item(runtime.name, runtime.url, "apt", "aws-neuronx-runtime-lib=2.99.*",
                                          runtime.fix))
    assert not gone.ok and "no aws-neuronx-runtime-lib 2.99.*" in gone.detail
    assert "NEURON_RUNTIME_LIB_VERSION" in gone.fix
    trn = runner.invoke(app, ["preflight", "--no-ami", "--type", "trn1.2xlarge", "--json"])
    assert {i["name"] for i in json.loads(trn.stdout)["items"]} == set(items)
    bad = runner.invoke(app, ["preflight", "--no-ami", "--type", "inf9.xlarge"])
    assert bad.exit_code == 2 and "inf2.xlarge" in bad.stderr


def test_a_vanished_download_is_one_line_with_the_fix_and_exit_1(mirror: Mirror) -> None:
    mirror.gone.add("/archives.boost.io/")
    result = runner.invoke(app, ["preflight", "--no-ami"])
    assert result.exit_code == 1
    failed = [line for line in result.stderr.splitlines() if line.startswith("FAIL")]
    assert len(failed) == 1
    assert "Boost archive" in failed[0] and "HTTP 404" in failed[0] and "fix:" in failed[0]
    assert "ok    python_backend r22.04" in result.stdout


def test_a_missing_branch_or_neuron_version_is_named(mirror: Mirror) -> None:
    item = next(i for i in preflight.items(PINS) if i.name == "python_backend r22.04")
    gone = preflight.Item(item.name, item.url, item.kind, "r99.99", item.fix)
    assert preflight.check(gone).detail.endswith("has no branch or tag r99.99")
    pip = next(i for i in preflight.items(PINS) if i.kind == "pip")
    assert not preflight.check(preflight.Item(pip.name, pip.url, "pip", "tensorflow_neuron-9.9.9")).ok


def test_the_recorded_refs_pass_and_pybind11_v2_6_is_a_branch(mirror: Mirror) -> None:
    """Upstream, pybind11's v2.6 is a branch (its tags are v2.6.0..v2.6.2); r22.04's CMake asks for "v2.6"."""
    refs = provenance.git_refs("pybind/pybind11")
    assert "refs/heads/v2.6" in refs and "refs/tags/v2.6" not in refs
    assert {"refs/tags/v2.6.0", "refs/tags/v2.6.2"} <= set(refs)
    outcomes = {o.name: o for o in preflight.run(use_cache=False, generations=("neuron-v1",))}
    assert outcomes[f"pybind11 {PINS['PYBIND11_TAG']}"].ok
    assert outcomes[f"pybind11 {PINS['PYBIND11_TAG']}"].detail.endswith("has v2.6 (a branch)")
    assert outcomes[f"dlpack {PINS['DLPACK_TAG']}"].detail.endswith("has v0.5 (a tag)")
    assert all(o.ok for o in outcomes.values()), outcomes


@pytest.mark.parametrize(("repo", "ref", "item"), [
    ("pybind/pybind11", "refs/heads/v2.6", "pybind11 v2.6"),
    ("dmlc/dlpack", "refs/tags/v0.5", "dlpack v0.5"),
    ("triton-inference-server/core", "refs/heads/r22.04", "triton core r22.04"),
    ("triton-inference-server/python_backend", "refs/heads/r22.04", "python_backend r22.04"),
])
def test_a_pinned_ref_removed_from_its_record_fails_in_one_line(mirror: Mirror, tmp_path: Path,
                                                                repo: str, ref: str, item: str) -> None:
    import shutil

    shutil.copytree(provenance.FOLDER, tmp_path / "records")
    path = tmp_path / "records" / f"git-refs-{repo.replace('/', '-')}.json"
    doc = json.loads(path.read_text())
    del doc["facts"]["refs"][ref]
    path.write_text(json.dumps(doc))
    mirror.records = tmp_path / "records"
    result = runner.invoke(app, ["preflight", "--no-ami", "--type", "inf1.xlarge", "--fresh"])
    assert result.exit_code == 1, result.output
    failed = [line for line in result.stderr.splitlines() if line.startswith("FAIL")]
    assert len(failed) == 1, result.stderr
    short = ref.split("/", 2)[2]
    assert failed[0].startswith(f"FAIL  {item}: https://github.com/{repo} has no branch or tag {short}. fix: ")


def test_successes_are_cached_for_a_day_failures_are_not(mirror: Mirror) -> None:
    mirror.gone.add("/repo.anaconda.com/")
    first = preflight.run(now=lambda: 1000.0)
    assert [o.name for o in first if not o.ok] == ["Miniconda installer"]
    asked = len(mirror.requests)
    second = preflight.run(now=lambda: 1000.0 + 3600)
    assert [o.name for o in second if o.cached] == [o.name for o in first if o.ok]
    assert len(mirror.requests) - asked == 1, "only the failed item is asked again"
    preflight.run(now=lambda: 1000.0 + 2 * 86400)
    assert len(mirror.requests) - asked > len(first), "a day later everything is asked again"


def test_unreachable_network_is_a_failure_with_a_hint(monkeypatch: pytest.MonkeyPatch, infprov_home: Path) -> None:
    import socket

    with socket.socket() as s:  # a port nothing listens on: refused at once
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv(preflight.MIRROR_ENV, f"http://127.0.0.1:{port}")
    outcomes = preflight.run(use_cache=False)
    assert outcomes and not any(o.ok for o in outcomes)
    assert "could not be reached" in outcomes[0].detail and "network" in outcomes[0].fix


def test_up_runs_preflight_first_and_launches_nothing_when_it_fails(mirror: Mirror, prov: Any,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Preflight before anything is made (after the local checks and EC2's quick answers: issue 25, item 3)."""
    monkeypatch.delenv("INFPROV_NO_PREFLIGHT")
    mirror.gone.add("/github.com/triton-inference-server/python_backend/")
    result = runner.invoke(app, ["up", "--type", "inf1.xlarge", "--region", "us-east-1", "--yes"])
    assert result.exit_code == 1
    assert "preflight: 1 pinned download(s)" in result.stderr and "--no-preflight" in result.stderr
    assert "FAIL  python_backend r22.04" in result.stderr
    assert prov.instances({}) == [] and prov.key_pairs({}) == []


# ---------------------------------------------------------------- apt indexes as real repositories publish them
def _runtime_item() -> preflight.Item:
    return next(i for i in preflight.items_v2(preflight.read_pins(preflight.PINS_V2)) if i.kind == "apt")


@pytest.mark.parametrize("index", ["Packages.gz", "Packages.xz", "Packages.bz2"])
def test_apt_finds_the_package_in_a_compressed_only_index(mirror: Mirror, index: str) -> None:
    mirror.apt = apt_layout(NEURON_STANZAS, (index,))
    outcome = preflight.check(_runtime_item())
    assert outcome.ok, outcome.line()
    assert outcome.detail == ("aws-neuronx-runtime-lib 2.20.22.0-1b3ca6425 is in https://apt.repos.neuron.amazonaws.com"
                              f" (main/binary-amd64/{index})")
    assert not any(r.endswith("/binary-amd64/Packages") for r in mirror.requests), "only the listed index is asked for"


def test_apt_prefers_the_smallest_index_the_release_lists(mirror: Mirror) -> None:
    mirror.apt = apt_layout(NEURON_STANZAS, ("Packages", "Packages.gz", "Packages.xz"))
    assert preflight.check(_runtime_item()).detail.endswith("(main/binary-amd64/Packages.xz)")
    # a listed file that is not there (a mirror mid-update): the next one is read
    del mirror.apt["main/binary-amd64/Packages.xz"]
    assert preflight.check(_runtime_item()).detail.endswith("(main/binary-amd64/Packages.gz)")
    # a corrupt one too
    mirror.apt["main/binary-amd64/Packages.gz"] = b"\x1f\x8b\x08\x00garbage"
    assert preflight.check(_runtime_item()).detail.endswith("(main/binary-amd64/Packages)")


def test_apt_reads_by_hash_files_and_a_plain_release(mirror: Mirror) -> None:
    mirror.apt = apt_layout(NEURON_STANZAS, ("Packages.gz",), release="Release", by_hash=True)
    outcome = preflight.check(_runtime_item())
    assert outcome.ok, outcome.line()
    assert any("/main/binary-amd64/by-hash/SHA256/" in r for r in mirror.requests)
    assert any(r.endswith("/dists/jammy/InRelease") for r in mirror.requests), "InRelease is asked for first"


def test_apt_reads_an_index_larger_than_one_answer(mirror: Mirror) -> None:
    """The real index lists every build of every package: more than the 4 MiB one fetch answer holds."""
    filler = [f"Package: aws-neuronx-filler-{i}\nVersion: 1.0.{i}\nArchitecture: amd64\nDescription: {'x' * 200}\n"
              for i in range(24000)]
    wanted = "Package: aws-neuronx-runtime-lib\nVersion: 2.20.22.0-1b3ca6425\nArchitecture: amd64\n"
    for index in ("Packages", "Packages.gz"):
        mirror.apt = apt_layout([*filler, wanted], (index,))
        assert len("\n".join([*filler, wanted])) > 5 << 20
        outcome = preflight.check(_runtime_item())
        assert outcome.ok, outcome.line()


def test_apt_stops_at_the_index_limit_in_one_line(mirror: Mirror, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(preflight, "INDEX_LIMIT", 1 << 20)
    filler = [f"Package: p{i}\nVersion: {i}\nDescription: {'y' * 500}\n" for i in range(4000)]
    mirror.apt = apt_layout(filler, ("Packages.xz",))  # small on the wire, 2 MiB decompressed
    outcome = preflight.check(_runtime_item())
    assert not outcome.ok
    assert outcome.detail == ("https://apt.repos.neuron.amazonaws.com/dists/jammy/main/binary-amd64/Packages.xz: "
                              "the index is larger than 1 MiB")
    assert "\n" not in outcome.line() and "NEURON_RUNTIME_LIB_VERSION" in outcome.fix


def test_apt_names_a_release_without_the_index_or_no_release(mirror: Mirror) -> None:
    mirror.apt = apt_layout(NEURON_STANZAS, ())
    outcome = preflight.check(_runtime_item())
    assert not outcome.ok and outcome.detail == (
        "https://apt.repos.neuron.amazonaws.com/dists/jammy/InRelease lists no Packages for main/binary-amd64")
    mirror.apt = {"Release": b"SHA256:\n 00 12 main/binary-amd64/Packages.zst\n"}
    assert preflight.check(_runtime_item()).detail.endswith(
        "lists main/binary-amd64 Packages only as main/binary-amd64/Packages.zst, which preflight cannot decompress")
    mirror.apt = {}
    assert preflight.check(_runtime_item()).detail == (
        "https://apt.repos.neuron.amazonaws.com/dists/jammy has no Release file (InRelease HTTP 404, Release HTTP 404)")


def test_apt_works_with_a_fetch_that_only_returns_bytes() -> None:
    """A fetch without .open (as a caller may pass) still reads the index, from the bytes it returns."""
    files = {f"https://apt.repos.neuron.amazonaws.com/dists/jammy/{k}": v
             for k, v in apt_layout(NEURON_STANZAS, ("Packages.gz",)).items()}

    def fetch(method: str, url: str, headers: Any) -> tuple[int, dict[str, str], bytes]:
        return (200, {}, files[url]) if url in files else (404, {}, b"")

    assert preflight.check(_runtime_item(), fetch).ok


def test_the_neuron_apt_stand_in_is_laid_out_as_its_record_says(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The sandbox's stand-in Neuron apt repository presents what the record of the real one establishes (and
    nothing it does not), and preflight finds the sandbox's pinned packages in it."""
    from infprov.sandbox import downloads, provenance

    record = provenance.load("neuron-apt-repository")
    v2 = downloads.read_pins_v2()
    root = tmp_path / "www" / downloads.NAME
    downloads._neuron_apt_repo(root, v2)
    repo = root / "apt.repos.neuron.amazonaws.com"
    dist = repo / "dists" / v2["NEURON_APT_SUITE"]
    assert sorted(p.name for p in dist.iterdir() if p.is_file()) == sorted(record.fact("release_files"))
    index_dir = record.fact("component") + "/binary-amd64"
    assert sorted(p.name for p in (dist / index_dir).iterdir()) == sorted(record.fact("index_files", index_dir))
    debs = sorted(str(p.relative_to(repo)) for p in repo.rglob("*.deb"))
    assert debs == sorted(record.fact("pool_path").format(initial=name[0], package=name,
                                                          version=downloads._deb_version(v2[key]))
                          for name, key in downloads.NEURON_APT_PACKAGES)
    assert all(rel in {str(p.relative_to(root)) for p in root.rglob("*")}
               for rel in downloads._neuron_apt_files(v2))
    # preflight, with the sandbox's pins, finds the pinned versions in it (served here as the mirror)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(
        _Quiet, directory=str(tmp_path / "www")))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv(preflight.MIRROR_ENV, f"http://127.0.0.1:{server.server_address[1]}")
    try:
        for item in (i for i in preflight.items_v2(v2) if i.kind == "apt"):
            outcome = preflight.check(item)
            assert outcome.ok, outcome.line()
            assert outcome.detail.endswith("(main/binary-amd64/Packages)")
    finally:
        server.shutdown()
        server.server_close()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


@pytest.mark.skipif(shutil.which("apt-get") is None, reason="needs apt-get")
def test_apt_get_installs_from_the_neuron_apt_stand_in(tmp_path: Path) -> None:
    """The stand-in, laid out as the record says (an InRelease apt cannot verify, an uncompressed index), still
    serves setup-neuronx.sh's `apt-get update` and install with its trusted=yes source: apt passes over the
    unsigned InRelease and finds the index itself. Run with apt's own folders under tmp_path."""
    from infprov.sandbox import downloads

    v2 = downloads.read_pins_v2()
    www = tmp_path / "www"
    downloads._neuron_apt_repo(www, {**v2, "NEURON_APT_REPO": f"{downloads.BASE}/neuron"})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(www)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state = tmp_path / "apt"
    for sub in ("lists/partial", "cache/archives/partial", "parts", "dl"):
        (state / sub).mkdir(parents=True)
    sources = state / "sources.list"
    sources.write_text(f"deb [trusted=yes] http://127.0.0.1:{server.server_address[1]}/neuron "
                       f"{v2['NEURON_APT_SUITE']} main\n")
    opts = [f"-oDir::Etc::sourcelist={sources}", "-oDir::Etc::sourceparts=/nonexistent",
            f"-oDir::State::Lists={state}/lists", f"-oDir::Cache={state}/cache", f"-oDir::Etc::Parts={state}/parts",
            "-oDebug::NoLocking=1", "-oAPT::Sandbox::User=root", "-oAcquire::Retries=0"]
    wanted = [f"{name}={downloads._deb_version(v2[key])}" for name, key in downloads.NEURON_APT_PACKAGES]
    try:
        update = subprocess.run(["apt-get", "update", *opts], capture_output=True, text=True, timeout=120)
        assert update.returncode == 0 and "W:" not in update.stdout + update.stderr, update.stdout + update.stderr
        install = subprocess.run(["apt-get", "install", "-s", *opts, *wanted], capture_output=True, text=True,
                                 timeout=120)
        assert install.returncode == 0, install.stdout + install.stderr
        assert "cannot be authenticated" not in install.stdout + install.stderr
        got = subprocess.run(["apt-get", "download", *opts, wanted[0]], capture_output=True, text=True,
                             timeout=120, cwd=state / "dl")
        assert got.returncode == 0, got.stdout + got.stderr
        assert [p.name for p in (state / "dl").iterdir()] == [f"{wanted[0].replace('=', '_')}_amd64.deb"]
    finally:
        server.shutdown()
        server.server_close()


# ---------------------------------------------------------------- the sandbox's pins, on its stand-in server


