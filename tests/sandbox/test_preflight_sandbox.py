"""`infprov preflight` against a local stand-in of every server the pins name (nothing leaves the machine)."""

from __future__ import annotations

import http.server
import json
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
        if path.startswith("/pypi.org/simple/torchvision/"):
            wheel = "torchvision-0.16.2-cp310-cp310-manylinux1_x86_64.whl"
            return self._answer(200, f'<a href="{wheel}">{wheel}</a>\n'.encode())
        if path.startswith(NEURON_DIST + "/"):
            data = self.server.apt.get(path.removeprefix(NEURON_DIST + "/"))
            return self._answer(404) if data is None else self._answer(200, data)
        if path.endswith(".PUB"):
            return self._answer(200)
        if path.endswith((".tar.gz", ".sh")):
            return self._answer(200)
        return self._answer(404)


# ---------------------------------------------------------------- apt indexes as real repositories publish them


# ---------------------------------------------------------------- the sandbox's pins, on its stand-in server
@pytest.fixture()
def standin_gone(sandbox_hosts: list[dict[str, Any]], infprov_home: Path) -> Iterator[Path]:
    """The stand-in download server's Miniconda installer, moved away for the test and put back after."""
    from infprov.sandbox import core

    pins = preflight.read_pins(preflight.SANDBOX_PINS)
    path = core.downloads_dir() / pins["MINICONDA_URL"].removeprefix("http://infprov-downloads/")
    aside = path.with_name(path.name + ".aside")
    path.rename(aside)
    try:
        yield path
    finally:
        aside.rename(path)


@pytest.mark.sandbox
def test_sandbox_preflight_checks_every_pin_on_the_stand_in_server(sandbox_hosts: list[dict[str, Any]],
                                                                    infprov_home: Path) -> None:
    result = runner.invoke(app, ["preflight", "--sandbox", "--no-ami", "--fresh", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    both = [preflight.read_pins(preflight.pins_file(g, sandbox=True)) for g in preflight.GENERATIONS]
    assert len(doc["items"]) == sum(len(preflight.items(p)) for p in both)
    assert all(i["ok"] for i in doc["items"]), doc
    by_name = {i["name"]: i["detail"] for i in doc["items"]}
    assert by_name["Miniconda installer"].startswith("http://infprov-downloads/repo.anaconda.com/")
    # the Neuron v2 pins too: the stand-in apt repository lists the pinned runtime packages
    assert by_name["aws-neuronx-runtime-lib 2.20.22.0*"].startswith("aws-neuronx-runtime-lib 2.20.22.0-")
    assert "python_backend r24.04" in by_name and "Neuron v2 server image" in by_name
    only_v2 = runner.invoke(app, ["preflight", "--sandbox", "--no-ami", "--type", "inf2.xlarge", "--json"])
    assert only_v2.exit_code == 0, only_v2.output
    assert len(json.loads(only_v2.stdout)["items"]) == len(preflight.items(both[1]))


@pytest.mark.sandbox
def test_sandbox_preflight_names_a_missing_stand_in_with_the_fix(standin_gone: Path) -> None:
    result = runner.invoke(app, ["preflight", "--sandbox", "--no-ami", "--fresh"])
    assert result.exit_code == 1
    failed = [line for line in result.stderr.splitlines() if line.startswith("FAIL")]
    assert len(failed) == 1, result.stderr
    assert failed[0].startswith("FAIL  Miniconda installer: http://infprov-downloads/repo.anaconda.com/")
    assert "HTTP 404" in failed[0] and "fix: `infprov sandbox up`" in failed[0]
    assert "ok    Boost archive" in result.stdout


@pytest.mark.sandbox
def test_up_sandbox_runs_preflight_on_the_stand_in_and_launches_nothing_when_it_fails(
        standin_gone: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("INFPROV_NO_PREFLIGHT")
    result = runner.invoke(app, ["up", "--sandbox", "--type", "inf1.xlarge", "--name", "pftest", "--yes"])
    assert result.exit_code == 1
    assert "stand-in download server" in result.stderr and "FAIL  Miniconda installer" in result.stderr
    assert "nothing was launched" in result.stderr
    from infprov.floor import paths
    from infprov.inventory import store

    assert not store.load(paths.inventory_file()).in_cluster("pftest"), "nothing was launched"
