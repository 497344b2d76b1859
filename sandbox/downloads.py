"""The sandbox's stand-in download server: what setup.sh and preflight fetch, served on the sandbox bridge.

On Inf1 the server container fetches from the internet: Ubuntu's apt mirror, PyPI, repo.anaconda.com,
archives.boost.io, the Neuron pip index (and preflight asks GitHub and NGC). In the sandbox every one
of those names is a folder of one plain-http server on the bridge's address (port 80), reached from the
server container as `infprov-downloads` (`docker run --add-host`, sandbox profile only). Nothing leaves
the sandbox subnet: the bridge's address is in it, so the seal passes the traffic and drops nothing.

What is real and what is a stand-in:
- pypi.org: the real `cmake<4` and `protobuf<4` wheels (pip-downloaded on this machine once, cached).
- deb.debian.org: a valid, empty apt repository (the packages setup.sh installs are in the image).
- developer.download.nvidia.com: NVIDIA's CUDA repositories for Ubuntu 20.04 and 22.04 as the server
  images name them (flat, empty, signed with the current key: sandbox/cudaapt.py), so the 22.04 image's
  `apt-get update` fails as the real one's does.
- repo.anaconda.com: a stand-in Miniconda installer whose conda makes Python venvs (no conda here).
- pip.repos.neuron.amazonaws.com: stand-in tensorflow-neuron / neuron-cc / torch-neuron wheels of the pinned
  versions that hold no Neuron code (there is no Neuron hardware or compiler here).
- archives.boost.io: a stand-in archive with the Boost path layout, fetched by the stand-in CMake build.
- github.com: the python_backend stand-in repository (dumb http), and the refs of the repositories its
  CMake would fetch, exactly as their upstream records list them (sandbox/upstream/git-refs-*.json);
  nvcr.io: the image manifests. These two only answer preflight.

For Inf2/Trn1 (Neuron v2, sandbox/pins-neuronx.env) the same server also holds:
- apt.repos.neuron.amazonaws.com: a valid apt repository (unsigned) whose aws-neuronx-runtime-lib and
  aws-neuronx-collectives packages of the pinned versions are real .deb files that install only a note
  (no Neuron runtime here); the key file preflight asks for is a note too (the sandbox pins say trusted).
- pip.repos.neuron.amazonaws.com: stand-in neuronx-cc and torch-neuronx wheels of the pinned versions;
  pypi.org: stand-in torchvision and transformers wheels of the pinned versions (the real torchvision pulls
  in a 700 MB torch that the CPU stand-in model does not use; the stand-in compile loads no hub model).
  None of them holds code or declares dependencies.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import lzma
import os
import shutil
import subprocess
import sys
import tarfile
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

from infprov.floor.errors import InfprovError
from infprov.sandbox import daemon, network

NAME = "infprov-downloads"
PORT = network.DOWNLOADS_PORT  # the one port of the machine the seal lets a host open
BASE = f"http://{NAME}"
PINS = Path(__file__).resolve().parents[1] / "playbooks" / "files" / "sandbox" / "pins.env"
PINS_V2 = PINS.with_name("pins-neuronx.env")
PID_FILE = "downloads.pid"
LOG_FILE = "downloads.log"
MARKER = "infprov-standin.txt"
# the Neuron v2 pins the container's pip takes from PyPI, served as stand-in wheels (no code, no dependencies)
PYPI_STANDINS_V2 = ("TORCHVISION_SPEC", "TRANSFORMERS_SPEC")
# Bumped when the tree's layout or contents change, so `sandbox up` lays it out again.
TREE_VERSION = "5"

# The server image's apt source and pip configuration (sandbox/images.py writes them into the
# image, as the NGC image carries Ubuntu's mirror and PyPI). The stand-in apt repository is unsigned:
# trusted=yes. pip refuses plain-http indexes unless their host is trusted.
APT_SOURCE = (f"# infprov sandbox: the stand-in download server\n"
              f"deb [trusted=yes] {BASE}/deb.debian.org/debian bookworm main\n")
PIP_CONF = (f"# infprov sandbox: the stand-in download server\n"
            f"[global]\nindex-url = {BASE}/pypi.org/simple\ntrusted-host = {NAME}\n")

# Stands in for Miniconda3-py37_4.10.3-Linux-x86_64.sh: `bash installer -b -p PREFIX` lays out a conda
# whose `env list`, `create -y -q -n NAME python=V` and `activate NAME` work on Python venvs of the image's
# python3 (with its site packages, so numpy is there as in the env setup.sh builds). Like the pinned
# conda 4.10.3, it knows no `tos` command (setup.sh asks and skips it).
MINICONDA_INSTALLER = r"""#!/bin/bash
# infprov sandbox stand-in for the Miniconda installer: no conda and no internet here, so its conda
# makes Python venvs of the image's python3. Usage as the real one: bash THIS -b -p PREFIX
set -e
prefix=""
while [ $# -gt 0 ]; do
  case "$1" in
    -b) shift ;;
    -p) prefix=$2; shift 2 ;;
    *) echo "stand-in Miniconda installer: unknown option $1" >&2; exit 2 ;;
  esac
done
[ -n "$prefix" ] || { echo "stand-in Miniconda installer: give -p PREFIX" >&2; exit 2; }
mkdir -p "$prefix/bin" "$prefix/envs" "$prefix/etc/profile.d"
cat > "$prefix/etc/profile.d/conda.sh" <<'EOS'
# infprov sandbox stand-in for conda's shell functions: environments are Python venvs
_INFPROV_CONDA_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
conda() {
  local root=$_INFPROV_CONDA_ROOT
  case "$1" in
    env)
      [ "$2" = list ] || { echo "stand-in conda: only 'conda env list'" >&2; return 2; }
      echo "# conda environments:"
      echo "#"
      printf '%-24s %s\n' base "$root"
      local d
      for d in "$root"/envs/*/; do
        [ -d "$d" ] && printf '%-24s %s\n' "$(basename "$d")" "${d%/}"
      done
      return 0 ;;
    create)
      shift
      local name="" python=""
      while [ $# -gt 0 ]; do
        case "$1" in
          -y|-q|--yes|--quiet) shift ;;
          -n|--name) name=$2; shift 2 ;;
          python=*) python=${1#python=}; shift ;;
          *) echo "stand-in conda: create takes -y -q -n NAME python=VERSION, not $1" >&2; return 2 ;;
        esac
      done
      [ -n "$name" ] || { echo "stand-in conda: create needs -n NAME" >&2; return 2; }
      echo "stand-in conda: environment $name as a venv of $(python3 -V 2>&1) (python=$python asked)"
      python3 -m venv --system-site-packages "$root/envs/$name" || return 1
      echo "$python" > "$root/envs/$name/.infprov-python-asked" ;;
    activate)
      [ -f "$root/envs/$2/bin/activate" ] || { echo "stand-in conda: no environment $2" >&2; return 1; }
      # shellcheck disable=SC1090
      source "$root/envs/$2/bin/activate" || return 1
      export CONDA_PREFIX="$root/envs/$2" CONDA_DEFAULT_ENV="$2" ;;
    *)
      echo "CommandNotFoundError: No command 'conda $1'." >&2
      return 1 ;;
  esac
}
EOS
cat > "$prefix/bin/conda" <<'EOS'
#!/bin/bash
# shellcheck disable=SC1091
source "$(dirname "$0")/../etc/profile.d/conda.sh"
conda "$@"
EOS
chmod +x "$prefix/bin/conda"
echo "stand-in Miniconda installed in $prefix"
"""


def boost_archive() -> bytes:
    """The stand-in for boost_1_76_0.tar.gz: its top folder and boost/ layout, a note inside.

    Built byte for byte the same everywhere (fixed tar fields, stored gzip blocks), so its SHA-256
    can be pinned.
    """
    note = b"infprov sandbox stand-in for Boost 1.76.0: the stand-in stub build only fetches and unpacks it.\n"
    return _tar_gz([("boost_1_76_0", None), ("boost_1_76_0/boost", None),
                    ("boost_1_76_0/boost/INFPROV-STANDIN.txt", note)],
                   mtime=1618963200, fmt=tarfile.USTAR_FORMAT, compresslevel=0)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_pins() -> dict[str, str]:
    from infprov.provision import preflight

    return preflight.read_pins(PINS)


def read_pins_v2() -> dict[str, str]:
    from infprov.provision import preflight

    return preflight.read_pins(PINS_V2)


# ---------------------------------------------------------------- the tree


def wheels_cache(specs: list[str]) -> Path:
    """The real wheels from PyPI, downloaded once per set of specs into the image cache."""
    from infprov.sandbox import images

    key = hashlib.sha256("|".join(specs).encode()).hexdigest()[:12]
    return images.cache_dir() / f"standin-wheels-{key}"


def _download_wheels(specs: list[str], log: Path) -> list[Path]:
    dest = wheels_cache(specs)
    done = dest / ".complete"
    if not done.exists():
        part = dest.with_name(dest.name + ".part")
        shutil.rmtree(part, ignore_errors=True)
        part.mkdir(parents=True)
        with open(log, "ab") as fh:
            proc = subprocess.run(
                [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps",
                 "--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311",
                 "--platform", "manylinux2014_x86_64", "--dest", str(part), *specs],
                stdout=fh, stderr=subprocess.STDOUT, check=False,
            )
        if proc.returncode != 0:
            raise InfprovError(f"pip could not download {' '.join(specs)} for the stand-in download server",
                               f"see {log}; PyPI must be reachable from this machine once")
        (part / ".complete").touch()
        shutil.rmtree(dest, ignore_errors=True)
        part.rename(dest)
    return sorted(dest.glob("*.whl"))


def standin_wheel(project: str, version: str) -> tuple[str, bytes]:
    """A wheel of that name and version that holds no code but a note: it stands in for a Neuron package."""
    dist = project.replace("-", "_")
    info = f"{dist}-{version}.dist-info"
    module = f"infprov_standin_{dist}"
    files = {
        f"{module}.py": (f'"""infprov sandbox stand-in for {project} {version}: no Neuron code here."""\n'
                         f"STANDIN = {project!r}\n").encode(),
        f"{info}/METADATA": (f"Metadata-Version: 2.1\nName: {project}\nVersion: {version}\n"
                             f"Summary: infprov sandbox stand-in for {project} (holds no Neuron code)\n").encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: infprov\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = ""
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record += f"{name},sha256={digest},{len(data)}\n"
    record += f"{info}/RECORD,,\n"
    files[f"{info}/RECORD"] = record.encode()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zi = zipfile.ZipInfo(name, date_time=(2022, 4, 1, 0, 0, 0))
            zi.external_attr = 0o644 << 16
            zf.writestr(zi, data)
    return f"{dist}-{version}-py3-none-any.whl", out.getvalue()


def _simple_index(root: Path, index: str, wheels: dict[str, list[tuple[str, bytes]]]) -> None:
    """A PEP 503 simple index at root/index: one page per project, the files under root/index/../packages."""
    base = root / index
    packages = base.parent / "packages" if index.endswith("/simple") else base / "packages"
    packages.mkdir(parents=True, exist_ok=True)
    rel = "../../packages" if index.endswith("/simple") else "../packages"
    projects = []
    for project, files in sorted(wheels.items()):
        links = ""
        for name, data in files:
            (packages / name).write_bytes(data)
            links += f'<a href="{rel}/{name}#sha256={sha256(data)}">{name}</a><br>\n'
        page = base / project
        page.mkdir(parents=True, exist_ok=True)
        (page / "index.html").write_text(f"<!DOCTYPE html>\n<html><body>\n{links}</body></html>\n")
        projects.append(f'<a href="{project}/">{project}</a><br>\n')
    (base / "index.html").write_text("<!DOCTYPE html>\n<html><body>\n" + "".join(projects) + "</body></html>\n")


def _apt_repo(root: Path) -> None:
    """An apt repository with no packages: `apt-get update` reads its Release and Packages for real."""
    _apt_dist(root / "deb.debian.org" / "debian", "bookworm", [],
              "infprov sandbox stand-in (no packages: the image has them)")


def _apt_dist(base: Path, suite: str, debs: list[tuple[str, bytes, str]], label: str, *,
              release_files: tuple[str, ...] = ("Release",), index_files: tuple[str, ...] = ("Packages", "Packages.gz"),
              pool_path: str = "pool/main/{file}") -> None:
    """base/dists/SUITE (main, amd64) listing debs (file name, bytes, control text), the files in base/pool.

    release_files: which of Release and InRelease are written (an InRelease here is the Release text unsigned,
    which apt with trusted=yes passes over to read the index itself); index_files: the index files written and
    listed (Packages, Packages.gz, Packages.xz); pool_path: where a package goes ({file}, {package}, {version},
    {initial}: the package's first letter).
    """
    dist = base / "dists" / suite
    pkgs = dist / "main" / "binary-amd64"
    pkgs.mkdir(parents=True, exist_ok=True)
    stanzas = []
    for name, data, control in debs:
        package, version = name.split("_")[:2]
        rel = pool_path.format(file=name, package=package, version=version, initial=package[0])
        (base / rel).parent.mkdir(parents=True, exist_ok=True)
        (base / rel).write_bytes(data)
        stanzas.append(control.rstrip("\n") + f"\nFilename: {rel}\nSize: {len(data)}\nSHA256: {sha256(data)}\n")
    plain = "\n".join(stanzas).encode()
    packed = {"Packages": plain, "Packages.gz": gzip.compress(plain, mtime=0), "Packages.xz": lzma.compress(plain)}
    lines = []
    for name in index_files:
        (pkgs / name).write_bytes(packed[name])
        lines.append(f" {sha256(packed[name])} {len(packed[name]):>8} main/binary-amd64/{name}")
    release = (f"Origin: infprov\nLabel: {label}\nSuite: {suite}\n"
               f"Codename: {suite}\nDate: Fri, 01 Apr 2022 00:00:00 UTC\nArchitectures: amd64\nComponents: main\n"
               "SHA256:\n" + "\n".join(lines) + "\n")
    for name in release_files:
        (dist / name).write_text(release)


def _neuron_apt_repo(root: Path, v2: dict[str, str]) -> None:
    """The stand-in Neuron apt repository (Inf2/Trn1): the runtime packages setup-neuronx.sh installs, laid out
    as the record of the real repository says (sandbox/upstream/neuron-apt-repository.json)."""
    from infprov.sandbox import provenance

    record = provenance.load("neuron-apt-repository")
    _apt_dist(root / v2["NEURON_APT_REPO"].removeprefix(BASE + "/"), v2["NEURON_APT_SUITE"],
              [standin_deb(name, _deb_version(v2[key])) for name, key in NEURON_APT_PACKAGES],
              "infprov sandbox stand-in for the Neuron apt repository",
              release_files=tuple(record.fact("release_files")),
              index_files=tuple(record.fact("index_files", "main/binary-amd64")),
              pool_path=record.fact("pool_path"))


def _tar_gz(entries: list[tuple[str, bytes | None]], *, mtime: int = 1712707200, fmt: int = tarfile.GNU_FORMAT,
            compresslevel: int = 9) -> bytes:
    """A gzip'd tar of folders (None) and files, the same bytes on every build."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=fmt) as tar:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.mtime = mtime
            info.uname = info.gname = "root"
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), compresslevel=compresslevel, mtime=0)


def standin_deb(package: str, version: str) -> tuple[str, bytes, str]:
    """A real Debian package of that name and version that installs only a note (file name, bytes, control).

    The format (deb(5)): an ar archive of debian-binary, control.tar.gz and data.tar.gz, in that order.
    """
    control = (f"Package: {package}\nVersion: {version}\nArchitecture: amd64\n"
               "Maintainer: infprov sandbox <infprov@sandbox>\nInstalled-Size: 1\nSection: misc\n"
               f"Priority: optional\nDescription: infprov sandbox stand-in for {package}\n"
               " Holds no Neuron code: there is no Neuron hardware in the sandbox.\n")
    note = f"infprov sandbox stand-in for {package} {version}: no Neuron code here.\n".encode()
    members = [
        ("debian-binary", b"2.0\n"),
        ("control.tar.gz", _tar_gz([("./", None), ("./control", control.encode())])),
        ("data.tar.gz", _tar_gz([("./", None), ("./opt/", None), ("./opt/aws/", None), ("./opt/aws/neuron/", None),
                                 (f"./opt/aws/neuron/infprov-standin-{package}.txt", note)])),
    ]
    out = b"!<arch>\n"
    for name, data in members:
        out += f"{name:<16}{0:<12}{0:<6}{0:<6}{'100644':<8}{len(data):<10}`\n".encode() + data
        out += b"\n" if len(data) % 2 else b""
    return f"{package}_{version}_amd64.deb", out, control


# The stand-in packages' Debian version: the pinned upstream version (a glob such as 2.20.22.0*), with a
# revision of its own (the real ones carry a build hash there).
def _deb_version(pin: str) -> str:
    return pin.rstrip("*") + "-infprov1"


NEURON_APT_PACKAGES = (("aws-neuronx-runtime-lib", "NEURON_RUNTIME_LIB_VERSION"),
                       ("aws-neuronx-collectives", "NEURON_COLLECTIVES_VERSION"))


def recorded_repos(pins: dict[str, str]) -> list[str]:
    """The repositories (owner/name) whose refs the stand-in advertises for preflight, besides python_backend
    (the stand-in repository itself): the three Triton ones and the two the stub's CMake fetches."""
    def repo(url: str) -> str:
        return url.removeprefix(BASE + "/").removeprefix("github.com/")

    return [*(f"triton-inference-server/{r}" for r in ("common", "core", "backend")),
            repo(pins["PYBIND11_REPO"]), repo(pins["DLPACK_REPO"])]


def git_ref_files(pins: dict[str, str], records: Path | None = None) -> dict[str, str]:
    """info/refs (dumb http) of each recorded repository: exactly the branches and tags its upstream record
    lists, with their recorded commits (nothing here clones them; preflight only asks what exists)."""
    from infprov.sandbox import provenance

    return {f"github.com/{repo}/info/refs": "".join(f"{sha}\t{ref}\n"
                                                     for ref, sha in provenance.git_refs(repo, records).items())
            for repo in recorded_repos(pins)}


def expected_files(pins: dict[str, str]) -> list[str]:
    """Paths (under the tree) that must be there for the sandbox's pins to resolve."""
    def path(url: str) -> str:
        return url.removeprefix(BASE + "/")

    tf = pins["TENSORFLOW_NEURON_SPEC"].partition("==")[0]
    cc = pins["NEURON_CC_SPEC"].partition("==")[0]
    torch_v1 = pins["TORCH_NEURON_SPEC"].partition("==")[0]
    neuron = path(pins["NEURON_PIP_INDEX"])
    return [
        MARKER,
        path(pins["MINICONDA_URL"]),
        path(pins["BOOST_URL"]),
        "deb.debian.org/debian/dists/bookworm/Release",
        "pypi.org/simple/cmake/index.html",
        "pypi.org/simple/protobuf/index.html",
        f"{neuron}/{tf}/index.html",
        f"{neuron}/{cc}/index.html",
        f"{neuron}/{torch_v1}/index.html",
        path(pins["PYTHON_BACKEND_REPO"]) + "/info/refs",
        *(f"github.com/triton-inference-server/{r}/info/refs" for r in ("common", "core", "backend")),
        path(pins["PYBIND11_REPO"]) + "/info/refs",
        path(pins["DLPACK_REPO"]) + "/info/refs",
        *(_manifest_path(pins[k]) for k in ("SERVER_IMAGE", "SDK_IMAGE")),
        *(uri.split("://", 1)[1] + "InRelease" for uri in _cuda_uris()),
        *expected_files_v2(read_pins_v2()),
    ]


def _cuda_uris() -> list[str]:
    from infprov.sandbox import cudaapt

    return list(cudaapt.repository_uris().values())


def expected_files_v2(v2: dict[str, str]) -> list[str]:
    def path(url: str) -> str:
        return url.removeprefix(BASE + "/")

    return [
        path(v2["NEURON_APT_KEY_URL"]),
        *_neuron_apt_files(v2),
        *(f"{path(v2['NEURON_PIP_INDEX'])}/{v2[k].partition('==')[0]}/index.html"
          for k in ("NEURONX_CC_SPEC", "TORCH_NEURONX_SPEC")),
        *(f"pypi.org/simple/{v2[k].partition('==')[0]}/index.html" for k in PYPI_STANDINS_V2),
        *(_manifest_path(v2[k]) for k in ("SERVER_IMAGE", "SDK_IMAGE")),
    ]


def _neuron_apt_files(v2: dict[str, str]) -> list[str]:
    """The stand-in Neuron apt repository's release files and packages, where _neuron_apt_repo lays them out."""
    from infprov.sandbox import provenance

    record = provenance.load("neuron-apt-repository")
    apt = v2["NEURON_APT_REPO"].removeprefix(BASE + "/")
    return [*(f"{apt}/dists/{v2['NEURON_APT_SUITE']}/{name}" for name in record.fact("release_files")),
            *(f"{apt}/" + record.fact("pool_path").format(package=name, version=_deb_version(v2[key]),
                                                          initial=name[0])
              for name, key in NEURON_APT_PACKAGES)]


def _manifest_path(image: str) -> str:
    ref, _, tag = image.rpartition(":")
    registry, _, repo = ref.partition("/")
    return f"{registry}/v2/{repo}/manifests/{tag}"


def complete(root: Path) -> bool:
    pins = read_pins()
    try:
        if (root / MARKER).read_text().splitlines()[0] != f"version {TREE_VERSION}":
            return False
    except (OSError, IndexError):
        return False
    return all((root / rel).exists() for rel in expected_files(pins))


def build(root: Path, python_backend: Path, log: Path) -> None:
    """Lay out every file the sandbox's pins name, from scratch."""
    pins, v2 = read_pins(), read_pins_v2()
    installer = MINICONDA_INSTALLER.encode()
    boost = boost_archive()
    for key, data in (("MINICONDA_SHA256", installer), ("BOOST_SHA256", boost)):
        if pins[key] != sha256(data):
            raise InfprovError(f"{PINS} pins {key}={pins[key]}, but the stand-in's is {sha256(data)}",
                               "update the sandbox pins to the stand-in's checksum")
    real = _download_wheels([pins["CMAKE_PIP_SPEC"], pins["PROTOBUF_SPEC"]], log)
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    root.chmod(0o755)

    def put(url: str, data: bytes) -> None:
        dest = root / url.removeprefix(BASE + "/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)

    put(pins["MINICONDA_URL"], installer)
    put(pins["BOOST_URL"], boost)
    _apt_repo(root)
    by_project: dict[str, list[tuple[str, bytes]]] = {}
    for wheel in real:
        project = wheel.name.split("-")[0].lower().replace("_", "-")
        by_project.setdefault(project, []).append((wheel.name, wheel.read_bytes()))
    for key in PYPI_STANDINS_V2:
        project, _, version = v2[key].partition("==")
        by_project[project] = [standin_wheel(project, version)]
    v1_project, _, v1_version = pins["TORCHVISION_V1_SPEC"].partition("==")  # Inf1's torch path (up --model)
    by_project.setdefault(v1_project, []).append(standin_wheel(v1_project, v1_version))
    _simple_index(root, "pypi.org/simple", by_project)
    if pins["NEURON_PIP_INDEX"] != v2["NEURON_PIP_INDEX"]:
        raise InfprovError(f"{PINS} and {PINS_V2} name two Neuron pip indexes", "give both the same one")
    neuron: dict[str, list[tuple[str, bytes]]] = {}
    for spec in (pins["TENSORFLOW_NEURON_SPEC"], pins["NEURON_CC_SPEC"], pins["TORCH_NEURON_SPEC"],
                 v2["NEURONX_CC_SPEC"], v2["TORCH_NEURONX_SPEC"]):
        project, _, version = spec.partition("==")
        neuron[project] = [standin_wheel(project, version)]
    _simple_index(root, pins["NEURON_PIP_INDEX"].removeprefix(BASE + "/"), neuron)
    # the Neuron apt repository (Inf2/Trn1): the runtime packages setup-neuronx.sh installs
    _neuron_apt_repo(root, v2)
    put(v2["NEURON_APT_KEY_URL"], b"infprov sandbox stand-in: the stand-in Neuron apt repository is unsigned "
                                  b"(the sandbox pins say trusted), so this is no key\n")
    # python_backend: the stand-in repository itself, over git's dumb http (its info/refs)
    pb = root / pins["PYTHON_BACKEND_REPO"].removeprefix(BASE + "/")
    pb.parent.mkdir(parents=True, exist_ok=True)
    pb.symlink_to(python_backend)
    for rel, text in git_ref_files(pins).items():
        put(f"{BASE}/{rel}", text.encode())
    # NVIDIA's CUDA apt repositories, which the server images carry (sandbox/cudaapt.py, from the records)
    from infprov.sandbox import cudaapt

    for rel, data in cudaapt.tree_files().items():
        put(f"{BASE}/{rel}", data)
    for image in (pins["SERVER_IMAGE"], pins["SDK_IMAGE"], v2["SERVER_IMAGE"], v2["SDK_IMAGE"]):
        doc = {"schemaVersion": 2, "infprov": f"sandbox stand-in for {image}: the image is loaded into every "
               "host from the image cache"}
        put(f"{BASE}/{_manifest_path(image)}", json.dumps(doc).encode())
    (root / MARKER).write_text(f"version {TREE_VERSION}\ninfprov sandbox: stand-in download server\n")
    subprocess.run(["chmod", "-R", "a+rX", str(root)], check=True)


# ---------------------------------------------------------------- the server process


def url(address: str) -> str:
    return f"http://{address}:{PORT}" if PORT != 80 else f"http://{address}"


def standin_url(url_: str, address: str) -> str:
    """Where the stand-in download server at `address` serves a URL: the sandbox's pins name it
    (`http://infprov-downloads/<host>/<path>`), resolved as the server container resolves it; any other
    URL (GitHub, NGC: preflight's own) is looked for under its host's folder there."""
    parts = urllib.parse.urlsplit(url_)
    query = f"?{parts.query}" if parts.query else ""
    if parts.netloc == NAME:
        return f"{url(address)}{parts.path}{query}"
    return f"{url(address)}/{parts.netloc}{parts.path}{query}"


def _answers(address: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url(address)}/{MARKER}", timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def is_running(state_dir: Path, address: str) -> bool:
    return daemon.running(state_dir / PID_FILE) is not None and _answers(address)


def start(state_dir: Path, root: Path, address: str) -> str:
    """Serve root on address:PORT (or find it served already); return the server's URL."""
    state_dir.mkdir(parents=True, exist_ok=True)
    if is_running(state_dir, address):
        return url(address)
    stop(state_dir)
    daemon.check_port_free(address, PORT, "the stand-in downloads")
    daemon.spawn_until(lambda: _answers(address),
                       [sys.executable, "-m", "http.server", "--bind", address, "--directory", str(root), str(PORT)],
                       state_dir / PID_FILE, state_dir / LOG_FILE, cwd=root,
                       env={**os.environ, "PYTHONUNBUFFERED": "1"},
                       what=f"the stand-in download server on {address}:{PORT}")
    return url(address)


def stop(state_dir: Path) -> None:
    """End the server this state_dir started (only that PID)."""
    daemon.stop(state_dir / PID_FILE)
