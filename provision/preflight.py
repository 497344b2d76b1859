"""`infprov preflight`: before money is spent, check that everything an instance will fetch still exists.

Two sets of pins, one per Neuron generation: pins.env (Inf1) and pins-neuronx.env (Inf2, Trn1).
"""

from __future__ import annotations

import bz2
import codecs
import contextlib
import gzip
import http.client
import io
import json
import lzma
import os
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from infprov.floor import paths

PINS = Path(__file__).resolve().parents[1] / "playbooks" / "files" / "pins.env"
# The sandbox's pins: the same keys, every URL on its stand-in download server (sandbox/downloads.py)
SANDBOX_PINS = PINS.parent / "sandbox" / "pins.env"
PINS_V2 = PINS.with_name("pins-neuronx.env")
SANDBOX_PINS_V2 = SANDBOX_PINS.with_name("pins-neuronx.env")
GENERATIONS = ("neuron-v1", "neuron-v2")
SANDBOX_FIX = "`infprov sandbox up` lays the stand-in download server's files out again and restarts it"
CACHE_S = 24 * 3600  # a success is remembered for a day; a failure is asked again every time
TIMEOUT_S = 15.0
# Tests (and a sandbox with a stand-in server) send every URL to one local server instead, as
# http://MIRROR/<host>/<path>; nothing then leaves the machine.
MIRROR_ENV = "INFPROV_PREFLIGHT_MIRROR"
# An apt index (Packages) is read as a stream up to this many bytes, decompressed: the Neuron repository's
# indexes list every build of every package, far more than one answer of http_fetch holds.
INDEX_LIMIT = 256 << 20
# The apt component and architecture whose index the pinned packages are looked up in.
APT_INDEX_DIR = "main/binary-amd64"
# The three Triton repositories the stub's CMake fetches (python_backend r22.04 CMakeLists.txt).
TRITON_REPOS = ("common", "core", "backend")


def read_pins(path: Path = PINS) -> dict[str, str]:
    """pins.env as data: KEY=VALUE lines, comments and blank lines skipped (never executed)."""
    pins: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, _, value = line.partition("=")
        pins[key.strip()] = value.strip()
    return pins


@dataclass(frozen=True)
class Item:
    """One thing the instance will fetch, how to check it, and what to do when it is gone."""

    name: str
    url: str
    kind: str  # head (the URL answers), git-ref (a branch or a tag of that name), image (a registry manifest), pip,
    #            apt (url is an apt suite's dists/SUITE folder; its main/binary-amd64 index lists the package at
    #            the version, want = "package=version-glob")
    want: str = ""  # the ref, the image tag, or the wheel's file name start
    fix: str = ""


@dataclass(frozen=True)
class Outcome:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    cached: bool = False

    def line(self) -> str:
        if self.ok:
            return f"ok    {self.name}: {self.detail}" + (" (checked within the last day)" if self.cached else "")
        return f"FAIL  {self.name}: {self.detail}. fix: {self.fix}"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail, "fix": self.fix, "cached": self.cached}


def pins_file(generation: str, sandbox: bool) -> Path:
    """Which pins an instance of that generation reads (the sandbox's: the same keys on its stand-in)."""
    if generation not in GENERATIONS:
        raise ValueError(f"unknown Neuron generation {generation!r}")
    if generation == "neuron-v2":
        return SANDBOX_PINS_V2 if sandbox else PINS_V2
    return SANDBOX_PINS if sandbox else PINS


def items(pins: Mapping[str, str]) -> list[Item]:
    """What the pins name, as preflight checks it (pins.env or pins-neuronx.env, told apart by their keys)."""
    if "NEURONX_CC_SPEC" in pins:
        return items_v2(pins)
    pb = pins["PYTHON_BACKEND_REPO"].removesuffix(".git")
    tag = pins["TRITON_REPO_TAG"]
    edit = "edit playbooks/files/pins.env"
    cmake_fix = ("r22.04's CMakeLists.txt fetches this ref (GIT_TAG: a branch or a tag) and the stub cannot be "
                 "built without it: pin a python_backend release whose CMake fetches refs that exist")
    # git resolves a FetchContent GIT_TAG, and the playbook's `git: version`, to a branch or a tag of that
    # name: pybind11's "v2.6" is a branch upstream (its tags are v2.6.0..v2.6.2), so either counts.
    out = [
        Item("python_backend " + pins["PYTHON_BACKEND_REF"], pb, "git-ref", pins["PYTHON_BACKEND_REF"],
             "the branch is gone upstream: pin another python_backend ref"),
        *(Item(f"triton {repo} {tag}", f"https://github.com/triton-inference-server/{repo}", "git-ref",
               tag, f"the stub's CMake fetches it: {edit} (TRITON_REPO_TAG)")
          for repo in TRITON_REPOS),
        Item("pybind11 " + pins["PYBIND11_TAG"], pins["PYBIND11_REPO"], "git-ref", pins["PYBIND11_TAG"], cmake_fix),
        Item("dlpack " + pins["DLPACK_TAG"], pins["DLPACK_REPO"], "git-ref", pins["DLPACK_TAG"], cmake_fix),
        Item("Boost archive", pins["BOOST_URL"], "head", "", f"find where Boost 1.76.0 is served now and {edit}"),
        Item("Miniconda installer", pins["MINICONDA_URL"], "head", "",
             f"pin another dated installer that can create a Python 3.7 env, with its SHA-256: {edit}"),
        Item("server image", registry_url(pins["SERVER_IMAGE"]), "image", pins["SERVER_IMAGE"],
             "the tag is gone from NGC: pin another Triton release (and python_backend ref to match)"),
        Item("SDK image", registry_url(pins["SDK_IMAGE"]), "image", pins["SDK_IMAGE"],
             "the tag is gone from NGC: pin another SDK release"),
    ]
    for key in ("TENSORFLOW_NEURON_SPEC", "NEURON_CC_SPEC"):
        project, _, version = pins[key].partition("==")
        wheel = project.replace("-", "_") + "-" + version
        out.append(Item(pins[key], pins["NEURON_PIP_INDEX"].rstrip("/") + f"/{project}/", "pip", wheel,
                        f"that version left the Neuron index: {edit} ({key})"))
    return out


def items_v2(pins: Mapping[str, str]) -> list[Item]:
    """Neuron v2 (Inf2, Trn1): python_backend r24.04, the 24.04 images, the Neuron apt repository with the
    runtime packages setup-neuronx.sh installs, neuronx-cc and torch-neuronx on the Neuron pip index and
    torchvision and transformers on PyPI (the container's pip resolves them there: the Neuron index is an extra
    one)."""
    edit = "edit playbooks/files/pins-neuronx.env"
    ref = pins["PYTHON_BACKEND_REF"]
    apt = pins["NEURON_APT_REPO"].rstrip("/")
    dist = f"{apt}/dists/{pins['NEURON_APT_SUITE']}"
    out = [
        Item("python_backend " + ref, pins["PYTHON_BACKEND_REPO"].removesuffix(".git"), "git-ref",
             ref, f"the branch is gone upstream: pin another python_backend ref ({edit})"),
        Item("Neuron v2 server image", registry_url(pins["SERVER_IMAGE"]), "image", pins["SERVER_IMAGE"],
             f"the tag is gone from NGC: pin another Triton release and the python_backend ref to match ({edit})"),
        Item("Neuron v2 SDK image", registry_url(pins["SDK_IMAGE"]), "image", pins["SDK_IMAGE"],
             f"the tag is gone from NGC: pin another SDK release ({edit})"),
        Item("Neuron apt key", pins["NEURON_APT_KEY_URL"], "head", "",
             f"find where the Neuron repository's key is published now and {edit} (NEURON_APT_KEY_URL)"),
    ]
    for package, key in (("aws-neuronx-runtime-lib", "NEURON_RUNTIME_LIB_VERSION"),
                         ("aws-neuronx-collectives", "NEURON_COLLECTIVES_VERSION")):
        out.append(Item(f"{package} {pins[key]}", dist, "apt", f"{package}={pins[key]}",
                        f"that version left the Neuron apt repository: {edit} ({key})"))
    for key in ("NEURONX_CC_SPEC", "TORCH_NEURONX_SPEC"):
        project, _, version = pins[key].partition("==")
        wheel = project.replace("-", "_") + "-" + version
        out.append(Item(pins[key], pins["NEURON_PIP_INDEX"].rstrip("/") + f"/{project}/", "pip", wheel,
                        f"that version left the Neuron index: {edit} ({key})"))
    pypi = "http://infprov-downloads/pypi.org/simple" if pins["NEURON_PIP_INDEX"].startswith(
        "http://infprov-downloads/") else "https://pypi.org/simple"
    for key in ("TORCHVISION_SPEC", "TRANSFORMERS_SPEC"):
        project, _, version = pins[key].partition("==")
        out.append(Item(pins[key], f"{pypi}/{project}/", "pip", f"{project}-{version}",
                        f"that version left PyPI: {edit} ({key})"))
    return out


def registry_url(image: str) -> str:
    """The manifest URL of an image reference (registry/repo:tag), OCI distribution API."""
    ref, _, tag = image.rpartition(":")
    registry, _, repo = ref.partition("/")
    return f"https://{registry}/v2/{repo}/manifests/{tag}"


# ---------------------------------------------------------------- fetching
Fetch = Callable[[str, str, Mapping[str, str]], tuple[int, Mapping[str, str], bytes]]


def _mirrored(url: str) -> str:
    mirror = os.environ.get(MIRROR_ENV)
    if not mirror:
        return url
    parts = urllib.parse.urlsplit(url)
    query = f"?{parts.query}" if parts.query else ""
    return f"{mirror.rstrip('/')}/{parts.netloc}{parts.path}{query}"


@dataclass(frozen=True)
class Standin:
    """A stand-in download server (the sandbox's, which a provider hands out) that serves every pinned
    URL: where it listens, and where it serves a given URL."""

    address: str
    locate: Callable[[str], str]


def standin_fetch(standin: Standin) -> Fetch:
    """A fetch that asks a stand-in download server instead of the internet."""
    def fetch(method: str, url: str, headers: Mapping[str, str]) -> tuple[int, Mapping[str, str], bytes]:
        return _request(method, standin.locate(url), headers)

    fetch.where = f"standin {standin.address}"  # type: ignore[attr-defined]  # part of the cache key
    fetch.open = lambda url: _open_url(standin.locate(url))  # type: ignore[attr-defined]
    return fetch


def http_fetch(method: str, url: str, headers: Mapping[str, str]) -> tuple[int, Mapping[str, str], bytes]:
    """One request; the status, headers and (for GET) up to 4 MiB of body. Redirects are followed."""
    return _request(method, _mirrored(url), headers)


def _request(method: str, url: str, headers: Mapping[str, str]) -> tuple[int, Mapping[str, str], bytes]:
    req = urllib.request.Request(url, method=method, headers=dict(headers))
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp:  # noqa: S310 - https URLs from pins.env
            body = resp.read(4 << 20) if method == "GET" else b""
            return resp.status, dict(resp.headers), body
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers or {}), b""


Opened = tuple[int, IO[bytes]]  # the status and the body, to read as a stream


@contextlib.contextmanager
def _open_url(url: str) -> Iterator[Opened]:
    """GET url and hand over its body unread (for answers larger than one http_fetch holds)."""
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as resp:  # noqa: S310 - URLs from the pins
            yield resp.status, resp
    except urllib.error.HTTPError as exc:
        yield exc.code, io.BytesIO(b"")


http_fetch.open = lambda url: _open_url(_mirrored(url))  # type: ignore[attr-defined]


@contextlib.contextmanager
def _open(fetch: Fetch, url: str) -> Iterator[Opened]:
    """The body of a GET as a stream: through fetch.open where the fetch has one (http_fetch and the stand-in's
    do), else the bytes a plain fetch returns."""
    opener = getattr(fetch, "open", None)
    if opener is None:
        status, _, body = fetch("GET", url, {})
        yield status, io.BytesIO(body)
        return
    with opener(url) as opened:
        yield opened


def check(item: Item, fetch: Fetch = http_fetch) -> Outcome:
    try:
        ok, detail = _CHECKS[item.kind](item, fetch)
    except (OSError, ValueError, http.client.HTTPException) as exc:  # no network, DNS, TLS, timeout, cut/bad answer
        reason = getattr(exc, "reason", None) or exc
        return Outcome(item.name, False, f"{item.url} could not be reached ({reason})",
                       "check the network from this machine, then run preflight again")
    return Outcome(item.name, ok, detail, "" if ok else item.fix)


def _head(item: Item, fetch: Fetch) -> tuple[bool, str]:
    status, headers, _ = fetch("HEAD", item.url, {})
    if status == 200:
        size = headers.get("Content-Length") or headers.get("content-length")
        return True, item.url + (f" ({int(size) / 2**20:.1f} MiB)" if size and size.isdigit() else "")
    return False, f"{item.url} answered HTTP {status}"


def _git_ref(item: Item, fetch: Fetch) -> tuple[bool, str]:
    status, _, body = fetch("GET", f"{item.url}/info/refs?service=git-upload-pack", {})
    if status != 200:
        return False, f"{item.url} answered HTTP {status}"
    # pkt-lines: "<len><sha> <ref>" (the first one with "\0capabilities" after the ref)
    refs = {line.split()[1].split("\x00")[0] for line in body.decode("utf-8", "replace").splitlines()
            if len(line.split()) >= 2}
    for prefix, what in (("refs/heads/", "branch"), ("refs/tags/", "tag")):
        if prefix + item.want in refs:
            return True, f"{item.url} has {item.want} (a {what})"
    return False, f"{item.url} has no branch or tag {item.want}"


_MANIFEST_TYPES = ", ".join([
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
])


def _image(item: Item, fetch: Fetch) -> tuple[bool, str]:
    headers = {"Accept": _MANIFEST_TYPES}
    status, answer, _ = fetch("HEAD", item.url, headers)
    if status == 401:  # the registry wants an anonymous pull token first (Bearer challenge)
        token = _token(answer.get("WWW-Authenticate") or answer.get("www-authenticate") or "", fetch)
        if token:
            status, answer, _ = fetch("HEAD", item.url, {**headers, "Authorization": f"Bearer {token}"})
    if status == 200:
        return True, f"{item.want} is in its registry"
    return False, f"{item.want}: the registry answered HTTP {status}"


def _token(challenge: str, fetch: Fetch) -> str:
    if not challenge.lower().startswith("bearer "):
        return ""
    fields = dict(part.split("=", 1) for part in challenge[7:].split(",") if "=" in part)
    fields = {k.strip(): v.strip().strip('"') for k, v in fields.items()}
    realm = fields.pop("realm", "")
    if not realm:
        return ""
    status, _, body = fetch("GET", realm + "?" + urllib.parse.urlencode(fields), {})
    if status != 200:
        return ""
    doc = json.loads(body or b"{}")
    return str(doc.get("token") or doc.get("access_token") or "")


def _pip(item: Item, fetch: Fetch) -> tuple[bool, str]:
    status, _, body = fetch("GET", item.url, {})
    if status != 200:
        return False, f"{item.url} answered HTTP {status}"
    text = body.decode("utf-8", "replace").lower()
    if item.want.lower() + "-" in text or item.want.lower() + ".tar" in text:
        return True, f"{item.want} is on {item.url}"
    return False, f"no {item.want} on {item.url}"


def _apt(item: Item, fetch: Fetch) -> tuple[bool, str]:
    """Does the suite's main/binary-amd64 index list the package at a version the glob matches?

    As apt does: the suite's InRelease (its signed text read as it is: preflight only asks what exists) or
    Release names the index files; the best one preflight can decompress (xz, gz, bz2, plain) is read as a
    stream, up to INDEX_LIMIT bytes decompressed.
    """
    import fnmatch

    release, where = _release(item.url, fetch)
    if release is None:
        return False, where
    files, by_hash = _release_files(release)
    listed = {name: files[name] for name in files if name.startswith(f"{APT_INDEX_DIR}/Packages")}
    usable = [name for name in (f"{APT_INDEX_DIR}/Packages{ext}" for ext in _INDEX_EXTS) if name in listed]
    if not usable:
        if listed:
            return False, f"{where} lists {APT_INDEX_DIR} Packages only as {', '.join(sorted(listed))}, which " \
                          "preflight cannot decompress"
        return False, f"{where} lists no Packages for {APT_INDEX_DIR}"
    package, _, pattern = item.want.partition("=")
    failures = []
    for name in usable:
        urls = [f"{item.url}/{name}"]
        sha256 = listed[name]
        if by_hash and sha256:  # where the Release says so, the by-hash copy is the one apt reads
            urls.insert(0, f"{item.url}/{APT_INDEX_DIR}/by-hash/SHA256/{sha256}")
        for url in urls:
            try:
                versions = _index_versions(url, name, package, fetch)
            except _IndexTooLarge:
                return False, f"{item.url}/{name}: the index is larger than {INDEX_LIMIT >> 20} MiB"
            except _IndexUnreadable as exc:
                failures.append(str(exc))
                continue
            found = [v for v in versions if fnmatch.fnmatchcase(v, pattern)]
            if found:
                return True, f"{package} {found[-1]} is in {item.url.rsplit('/dists/', 1)[0]} ({name})"
            return False, f"no {package} {pattern} in {item.url}/{name} ({len(versions)} other version(s))"
    return False, f"no index {where} lists could be read: {'; '.join(failures)}"


class _IndexTooLarge(Exception):
    pass


class _IndexUnreadable(Exception):
    pass


# The index files preflight reads (Packages plus one of these), in the order it prefers them: smallest first.
_INDEX_EXTS = (".xz", ".gz", ".bz2", ".lzma", "")


class _Reader(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


def _decompressing(ext: str, raw: IO[bytes]) -> contextlib.AbstractContextManager[_Reader]:
    """raw (a stream) decompressed as an index file of that extension is; the stream itself stays open."""
    if ext in (".xz", ".lzma"):
        return lzma.LZMAFile(raw)
    if ext == ".gz":
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if ext == ".bz2":
        return bz2.BZ2File(raw)
    return contextlib.nullcontext(raw)


_CHUNK = 1 << 16


def _release(dist: str, fetch: Fetch) -> tuple[str | None, str]:
    """The text of dist's InRelease (without its signature) or else its Release, and the URL read; or None
    and the failure."""
    statuses = []
    for name in ("InRelease", "Release"):
        status, _, body = fetch("GET", f"{dist}/{name}", {})
        if status == 200:
            return _unsigned(body.decode("utf-8", "replace")), f"{dist}/{name}"
        statuses.append(f"{name} HTTP {status}")
    return None, f"{dist} has no Release file ({', '.join(statuses)})"


def _unsigned(text: str) -> str:
    """The signed text of a clearsigned InRelease (OpenPGP cleartext framework), as is; other text unchanged."""
    if not text.startswith("-----BEGIN PGP SIGNED MESSAGE-----"):
        return text
    _, _, rest = text.partition("\n\n")  # the armor headers end at the first empty line
    body = rest.split("\n-----BEGIN PGP SIGNATURE-----", 1)[0]
    return "\n".join(line[2:] if line.startswith("- ") else line for line in body.splitlines())


def _release_files(text: str) -> tuple[dict[str, str], bool]:
    """The files a Release lists (path -> SHA256, "" where it gives none), and whether it says Acquire-By-Hash."""
    files: dict[str, str] = {}
    by_hash = False
    section = ""
    for line in text.splitlines():
        if not line.startswith((" ", "\t")):
            key, _, value = line.partition(":")
            section = key.strip()
            if section == "Acquire-By-Hash":
                by_hash = value.strip().lower() == "yes"
            continue
        words = line.split()
        if section in ("MD5Sum", "SHA1", "SHA256", "SHA512") and len(words) == 3:
            digest, _, path = words
            if section == "SHA256":
                files[path] = digest
            else:
                files.setdefault(path, "")
    return files, by_hash


def _index_versions(url: str, name: str, package: str, fetch: Fetch) -> list[str]:
    """The versions of package an index lists, read as a stream and decompressed by its name's extension."""
    ext = "" if name.endswith("/Packages") else "." + name.rsplit(".", 1)[1]
    versions: list[str] = []
    needle = f"Package: {package}\n"

    def take(stanza: str) -> None:
        if needle not in stanza + "\n":
            return
        fields = dict(line.split(": ", 1) for line in stanza.splitlines() if ": " in line and not line[0].isspace())
        if fields.get("Package") == package and "Version" in fields:
            versions.append(fields["Version"])

    with _open(fetch, url) as (status, raw):
        if status != 200:
            raise _IndexUnreadable(f"{url} answered HTTP {status}")
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        size, rest = 0, ""
        try:
            with _decompressing(ext, raw) as reader:
                while chunk := reader.read(_CHUNK):
                    size += len(chunk)
                    if size > INDEX_LIMIT:
                        raise _IndexTooLarge
                    *stanzas, rest = (rest + decoder.decode(chunk)).split("\n\n")
                    for stanza in stanzas:
                        take(stanza)
        except (lzma.LZMAError, zlib.error, gzip.BadGzipFile, EOFError) as exc:
            raise _IndexUnreadable(f"{url} cannot be decompressed ({exc or type(exc).__name__})") from None
        except OSError as exc:
            if ext == ".bz2" and "Invalid data stream" in str(exc):  # what BZ2File raises on bad data
                raise _IndexUnreadable(f"{url} cannot be decompressed ({exc})") from None
            raise
        take(rest + decoder.decode(b"", final=True))
    return versions


_CHECKS: dict[str, Callable[[Item, Fetch], tuple[bool, str]]] = {
    "head": _head, "git-ref": _git_ref, "image": _image, "pip": _pip, "apt": _apt,
}


# ---------------------------------------------------------------- the run, with a day's cache of successes
def _cache_file() -> Path:
    return paths.home() / "preflight-cache.json"


def _cache_key(item: Item, fetch: Fetch) -> str:
    where = getattr(fetch, "where", None)
    url = f"{where} {item.url}" if where else _mirrored(item.url)
    return f"{item.kind} {url} {item.want}"


def _load_cache() -> dict[str, float]:
    try:
        doc = json.loads(_cache_file().read_text())
        return {str(k): float(v) for k, v in doc.items()} if isinstance(doc, dict) else {}
    except (OSError, ValueError, TypeError):
        return {}


def run(extra: list[Outcome] | None = None, *, fetch: Fetch = http_fetch, use_cache: bool = True,
        now: Callable[[], float] = time.time, pins_path: Path | None = None, standin: Standin | None = None,
        generations: tuple[str, ...] = GENERATIONS) -> list[Outcome]:
    """Check every pinned download (and any outcomes given, e.g. the AMI's); successes are cached a day.

    The pins of each generation given (both by default; `up` gives its type's), or pins_path alone. With
    standin (a stand-in download server: the sandbox's), the sandbox's pins are checked against
    that server, and each failure's fix is the sandbox's.
    """
    if standin is not None:
        fetch = standin_fetch(standin)
    paths_ = [pins_path] if pins_path is not None else [pins_file(g, standin is not None) for g in generations]
    cache = _load_cache() if use_cache else {}
    outcomes: list[Outcome] = list(extra or [])
    fresh: dict[str, float] = {k: t for k, t in cache.items() if now() - t < CACHE_S}
    for item in [i for p in paths_ for i in items(read_pins(p))]:
        key = _cache_key(item, fetch)
        if key in fresh:
            outcomes.append(Outcome(item.name, True, item.url, cached=True))
            continue
        result = check(item, fetch)
        if standin is not None:
            # say where it was really looked for when the pin names the real host (GitHub, NGC)
            shown = standin.locate(item.url)
            detail = result.detail if item.url.startswith("http://infprov-downloads/") else \
                f"{result.detail} (stand-in: {shown.split('?')[0]})"
            result = Outcome(result.name, result.ok, detail, "" if result.ok else SANDBOX_FIX)
        outcomes.append(result)
        if result.ok:
            fresh[key] = now()
    if use_cache:
        paths.write_private(_cache_file(), json.dumps(fresh, indent=1, sort_keys=True))
    return outcomes


def ami_outcome(region: str | None, sandbox: bool, family: str = "inf1") -> Outcome:
    """The AMI `up` would launch for that family (inf1, inf2, trn1), found and judged as `up` judges it."""
    from infprov.floor.errors import InfprovError
    from infprov.provision import amis, providers

    try:
        prov = providers.connect(region, sandbox)
        image = amis.resolve_image(prov, None, family)
    except InfprovError as exc:
        return Outcome("AMI", False, exc.message, exc.hint or "pin one with --ami")
    return Outcome("AMI", True, f"{image.get('ImageId')} in {prov.region}: {image.get('Name')}")
