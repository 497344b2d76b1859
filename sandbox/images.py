"""Build the two Triton images (server, SDK) from Debian packages and PyPI wheels, once, into a cache."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from infprov.floor.errors import InfprovError
from infprov.sandbox import system
from infprov.sandbox.places import HOST_ID_BASE

SERVER_IMAGE = "nvcr.io/nvidia/tritonserver:22.04-py3"
SDK_IMAGE = "nvcr.io/nvidia/tritonserver:22.04-py3-sdk"
# The Neuron v2 (Inf2/Trn1) profile's server image: the 22.04 one's layers but for its apt sources, which
# follow server r24.04's record (the CUDA repository trusted with the current key; sandbox/cudaapt.py).
# The real 24.04-py3 is Ubuntu 22.04 with Python 3.10; the stand-in stays Debian 12 with Python 3.11 and
# the Triton server of nvidia-pytriton.
V2_SERVER_IMAGE = "nvcr.io/nvidia/tritonserver:24.04-py3"
# ... and its SDK image: the 22.04 one under the 24.04 name too (sandbox/nshost.py tags it when it makes or
# checks a host).
V2_TAGS = {SDK_IMAGE: "nvcr.io/nvidia/tritonserver:24.04-py3-sdk"}
STANDIN_IMAGES = (SERVER_IMAGE, SDK_IMAGE, V2_SERVER_IMAGE, *V2_TAGS.values())
SUITE = "bookworm"
# Debian's python3 in bookworm is 3.11: the SDK's wheels and the backend stub must match it.
IMAGE_PYTHON = "3.11"
TRITONCLIENT = "tritonclient[http]==2.51.0"
# tritonclient's HTTP client and what it needs, without a second numpy (Debian's 1.24 satisfies it)
# and without aiohttp (only its asyncio client uses that).
SDK_WHEELS = ["tritonclient==2.51.0", "geventhttpclient==2.0.2", "gevent", "greenlet", "zope.event",
              "zope.interface", "brotli", "certifi", "six", "python-rapidjson", "urllib3"]
BASE_PACKAGES = ["python3", "python3-numpy", "libpython3.11", "ca-certificates", "curl", "procps"]
# What infprov's setup.sh uses in the server container: its `apt-get install` list (rapidjson-dev ...
# build-essential: already installed here, as the sandbox's stand-in apt repository has no packages to
# give), pip for its `pip3 install cmake` and venv for the stand-in conda's environments.
SETUP_PACKAGES = ["wget", "git", "build-essential", "rapidjson-dev", "zlib1g-dev", "libarchive-dev",
                  "python3-pip", "python3-venv"]
# Bumped whenever what goes into an image changes, so old caches are not reused.
RECIPE_VERSION = "7"
# Bumped whenever what goes into the Debian base layer changes (it is cached on its own: debootstrap is
# the slow part of a build).
BASE_VERSION = "1"
# Each image's environment, as the NGC images set it.
IMAGE_PATH = "/opt/tritonserver/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
IMAGE_LD_PATH = "/opt/tritonserver/lib"


def cache_dir() -> Path:
    """The fixed folder where built images live between runs (INFPROV_CACHE overrides)."""
    path = Path(os.environ.get("INFPROV_CACHE", "/var/cache/infprov"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def cache_locked() -> Iterator[None]:
    """One builder of the machine's image cache at a time (several sandboxes may come up at once)."""
    with system.flocked(cache_dir() / ".build.lock"):
        yield


def _pytriton_root() -> Path:
    try:
        import pytriton
    except ImportError as exc:
        raise InfprovError(
            "the sandbox needs the nvidia-pytriton wheel (it carries the Triton server binary)",
            "pip install 'infprov[sandbox]'",
        ) from exc
    return Path(pytriton.__file__).parent


def recipe_key() -> str:
    """A short hash of everything that decides the images' contents."""
    from importlib.metadata import version

    from infprov.sandbox import cudaapt, downloads

    parts = [RECIPE_VERSION, base_key(), ",".join(SDK_WHEELS), version("nvidia-pytriton"), downloads.APT_SOURCE,
             downloads.PIP_CONF, cudaapt.VERSION, cudaapt.fingerprint("old"), cudaapt.fingerprint("current"),
             *cudaapt.repository_uris().values()]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:12]


def base_key() -> str:
    """A short hash of what decides the Debian base layer alone."""
    parts = [BASE_VERSION, SUITE, ",".join(BASE_PACKAGES + SETUP_PACKAGES)]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:12]


def bundle_path() -> Path:
    return cache_dir() / f"tritonserver-22.04-images-{recipe_key()}.tar"


def ensure_built(log: Path, progress: system.Progress | None = None) -> Path:
    """Return the image bundle (both images, `docker load` format), building it if missing.

    The two images share their Debian base layer, so a host unpacks it once.
    """
    bundle = bundle_path()
    if bundle.exists():
        return bundle
    system.require_tools({"debootstrap": "debootstrap", "tar": "tar"})
    system.check_free_space(cache_dir(), 2 << 30, "build the sandbox's images")
    _forget_old_builds()
    with tempfile.TemporaryDirectory(prefix="infprov-img-", dir=cache_dir()) as tmp:
        work = Path(tmp)
        base_tar = _base_rootfs(work, log, progress)
        _note(progress, "server layer: Triton server from nvidia-pytriton")
        server = work / "server"
        _add_server(server)
        server_tar = work / "server.tar"
        _tar(server, server_tar)
        _note(progress, "SDK layer: tritonclient and perf_analyzer")
        sdk = work / "sdk"
        _add_sdk(sdk, log)
        sdk_tar = work / "sdk.tar"
        _tar(sdk, sdk_tar)
        _note(progress, "apt layers: the CUDA repository as the 22.04 and 24.04 images trust it")
        apt_tars = {}
        for release in ("22.04", "24.04"):
            apt_tars[release] = work / f"apt-{release}.tar"
            _apt_layer(work / f"apt-{release}", release)
            _tar(work / f"apt-{release}", apt_tars[release])
        server_config = {"Env": [f"PATH={IMAGE_PATH}", f"LD_LIBRARY_PATH={IMAGE_LD_PATH}"],
                         "WorkingDir": "/opt/tritonserver"}
        _write_bundle(
            bundle,
            {"base": base_tar, "server": server_tar, "sdk": sdk_tar, "apt-22.04": apt_tars["22.04"],
             "apt-24.04": apt_tars["24.04"]},
            [
                (SERVER_IMAGE, ["base", "server", "apt-22.04"], server_config),
                (V2_SERVER_IMAGE, ["base", "server", "apt-24.04"], server_config),
                (SDK_IMAGE, ["base", "sdk"], {"Env": [f"PATH={IMAGE_PATH}", "LD_LIBRARY_PATH=/usr/local/lib",
                                                      "LANG=C.UTF-8"], "WorkingDir": "/workspace"}),
            ],
        )
    return bundle


def _forget_old_builds() -> None:
    """Drop cached builds of other recipes, so the cache does not grow with every change."""
    key = recipe_key()
    for old in cache_dir().glob("*.tar"):
        if key not in old.name and base_key() not in old.name:
            old.unlink(missing_ok=True)
    for old in cache_dir().glob("docker-root-*"):
        if key not in old.name:
            shutil.rmtree(old, ignore_errors=True)


def _write_bundle(dest: Path, layers: dict[str, Path], images: list[tuple[str, list[str], dict[str, Any]]]) -> None:
    """Write a `docker load` archive: one manifest entry per image, each layer stored once."""
    digests = {name: _sha256(path) for name, path in layers.items()}
    tmp = dest.with_suffix(".part")
    manifest = []
    with tarfile.open(tmp, "w") as tar:
        for name, path in layers.items():
            tar.add(path, arcname=f"{digests[name]}/layer.tar")
        for tag, names, config in images:
            doc = {
                "architecture": "amd64",
                "os": "linux",
                "created": "2022-04-01T00:00:00Z",
                "config": config,
                "rootfs": {"type": "layers", "diff_ids": [f"sha256:{digests[n]}" for n in names]},
                "history": [{"created": "2022-04-01T00:00:00Z", "created_by": f"infprov sandbox: {n}"}
                            for n in names],
            }
            raw = json.dumps(doc, sort_keys=True).encode()
            cfg_name = hashlib.sha256(raw).hexdigest() + ".json"
            _add_bytes(tar, cfg_name, raw)
            manifest.append({"Config": cfg_name, "RepoTags": [tag],
                             "Layers": [f"{digests[n]}/layer.tar" for n in names]})
        _add_bytes(tar, "manifest.json", json.dumps(manifest).encode())
    tmp.rename(dest)


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 1648771200
    tar.addfile(info, io.BytesIO(data))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _note(progress: system.Progress | None, text: str) -> None:
    if progress is not None:
        progress(text)


def _base_rootfs(work: Path, log: Path, progress: system.Progress | None) -> Path:
    """A minimal Debian root file system with python3 and numpy, cached as a tarball (the base layer)."""
    cached = cache_dir() / f"rootfs-{SUITE}-base-{base_key()}.tar"
    if cached.exists():
        return cached
    root = work / "base"
    root.mkdir()
    _note(progress, f"debootstrap {SUITE} (minbase + python3, numpy and setup.sh's build tools; about 90 s)")
    with open(log, "ab") as fh:
        proc = subprocess.run(
            ["debootstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES + SETUP_PACKAGES)}", SUITE,
             str(root),
             _debian_mirror()],
            stdout=fh, stderr=subprocess.STDOUT, check=False,
        )
    if proc.returncode != 0:
        raise InfprovError(
            f"debootstrap of {SUITE} failed (exit {proc.returncode})",
            f"see {log}; the Debian package mirror must be reachable",
        )
    # pip installs into the system Python as it does in the NGC image (Ubuntu 20.04, before PEP 668):
    # setup.sh's `pip3 install --upgrade cmake` runs as it does there.
    for marker in (root / "usr" / "lib").glob("python3*/EXTERNALLY-MANAGED"):
        marker.unlink()
    # Keep the image small: apt lists, caches and docs are not needed to run anything.
    for sub in ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/locale"):
        target = root / sub
        if target.is_dir():
            for child in target.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)
    _tar(root, cached)
    return cached


def _debian_mirror() -> str:
    """The mirror apt on this machine uses, so the build needs no other address."""
    for src in [Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list")]:
        if not src.exists():
            continue
        for line in src.read_text().splitlines():
            line = line.strip()
            if line.startswith("URIs:") and "security" not in line:
                return line.split()[1]
            if line.startswith("deb ") and "security" not in line:
                return line.split()[1]
    return "http://deb.debian.org/debian"


def _tar(root: Path, dest: Path) -> None:
    tmp = dest.with_suffix(".part")
    system.run(["tar", "--numeric-owner", "-cf", str(tmp), "-C", str(root), "."], what=f"pack {dest.name}")
    tmp.rename(dest)


def _add_server(root: Path) -> None:
    """Lay PyTriton's real Triton server out as the NGC image does: /opt/tritonserver/{bin,lib,backends}."""
    pyt = _pytriton_root() / "tritonserver"
    libs = _pytriton_root().parent / "nvidia_pytriton.libs"
    opt = root / "opt" / "tritonserver"
    root.mkdir()
    opt.mkdir(parents=True)
    shutil.copytree(pyt / "bin", opt / "bin", symlinks=True)
    shutil.copytree(pyt / "caches", opt / "caches", symlinks=True)
    shutil.copytree(libs, opt / "lib", symlinks=True)
    backend = opt / "backends" / "python"
    backend.mkdir(parents=True)
    for name in ("libtriton_python.so", "triton_python_backend_utils.py"):
        shutil.copy2(pyt / "backends" / "python" / name, backend / name)
    stub = pyt / "python_backend_stubs" / IMAGE_PYTHON / "triton_python_backend_stub"
    shutil.copy2(stub, backend / "triton_python_backend_stub")
    # libtriton_python.so looks for its libraries four levels up from itself.
    (root / "nvidia_pytriton.libs").symlink_to("opt/tritonserver/lib")
    # pip fetches from the sandbox's stand-in download server (its name is given to the server container by
    # `docker run --add-host`), where the NGC image's fetches from PyPI; apt too (_apt_layer).
    from infprov.sandbox import downloads

    etc = root / "etc"
    etc.mkdir(mode=0o755)
    (etc / "pip.conf").write_text(downloads.PIP_CONF)
    (etc / "pip.conf").chmod(0o644)


def _apt_layer(root: Path, release: str) -> None:
    """The 22.04 or 24.04 server image's apt sources and keys: the stand-in Debian repository where the NGC
    image has Ubuntu's, and the CUDA repository trusted as that release's record says (sandbox/cudaapt.py)."""
    from infprov.sandbox import cudaapt, downloads

    root.mkdir(mode=0o755)
    for rel, data in cudaapt.image_files(release, downloads.APT_SOURCE).items():
        path = root / rel
        for parent in reversed(path.relative_to(root).parents[:-1]):
            (root / parent).mkdir(mode=0o755, exist_ok=True)
        path.write_bytes(data)
        path.chmod(0o644)


def _add_sdk(root: Path, log: Path) -> None:
    """tritonclient[http] for the image's python3, and perf_analyzer with the two libraries it needs."""
    target = root / "usr" / "local" / "lib" / f"python{IMAGE_PYTHON}" / "dist-packages"
    target.mkdir(parents=True, exist_ok=True)
    (root / "workspace").mkdir()
    if sysconfig.get_python_version() != IMAGE_PYTHON:
        platform_args = ["--python-version", IMAGE_PYTHON, "--only-binary=:all:"]
    else:
        platform_args = []
    with open(log, "ab") as fh:
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
             "--no-deps", "--target", str(target), *platform_args, *SDK_WHEELS],
            stdout=fh, stderr=subprocess.STDOUT, check=False,
        )
    if proc.returncode != 0:
        raise InfprovError(f"pip could not install {TRITONCLIENT} into the SDK image", f"see {log}")
    bindir = root / "usr" / "local" / "bin"
    bindir.mkdir(parents=True, exist_ok=True)
    for exe in ("perf_analyzer", "perf_client"):
        src = target / "bin" / exe
        if src.exists():
            shutil.move(str(src), bindir / exe)
    libs = _pytriton_root().parent / "nvidia_pytriton.libs"
    libdir = root / "usr" / "local" / "lib"
    for pattern, soname in (("libb64-*.so.0d", "libb64.so.0d"), ("libcudart-*.so.12*", "libcudart.so.12")):
        found = sorted(libs.glob(pattern))
        if not found:
            raise InfprovError(f"nvidia-pytriton carries no {pattern}", "reinstall nvidia-pytriton==0.7.0")
        shutil.copy2(found[0], libdir / soname)


def _dockerd_version() -> str:
    out = system.run(["dockerd", "--version"], what="read dockerd's version").stdout
    return "".join(ch if ch.isalnum() or ch in ".-" else "-" for ch in out.split(",")[0].split()[-1])


def ensure_docker_root(bundle: Path, log: Path, progress: system.Progress | None = None) -> Path:
    """A docker data root with both images loaded, made once per recipe and dockerd version.

    New hosts get a hard-linked copy of it (see clone_docker_root) instead of unpacking the
    images again: that is what makes a warm `sandbox up` fast.
    """
    dest = _docker_root_path()
    if (dest / ".infprov-complete").exists():
        return dest
    _note(progress, "loading the images once into a docker root that hosts will share")
    part = dest.with_name(dest.name + ".part")
    shutil.rmtree(part, ignore_errors=True)
    shutil.rmtree(dest, ignore_errors=True)
    part.mkdir(mode=0o710)
    run_dir = Path(tempfile.mkdtemp(prefix="infprov-dockerd-"))
    sock = run_dir / "docker.sock"
    with open(log, "ab") as fh:
        proc = subprocess.Popen(
            ["dockerd", "--data-root", str(part), "--exec-root", str(run_dir / "exec"),
             "--pidfile", str(run_dir / "docker.pid"), "-H", f"unix://{sock}",
             "--bridge=none", "--iptables=false", "--ip-masq=false"],
            stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while subprocess.run(["docker", "-H", f"unix://{sock}", "version"], capture_output=True).returncode != 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise InfprovError("a temporary dockerd for the image cache did not start", f"see {log}")
            time.sleep(0.2)
        with open(bundle, "rb") as src:
            loaded = subprocess.run(["docker", "-H", f"unix://{sock}", "load", "-q"], stdin=src,
                                    capture_output=True, text=True, timeout=600)
        if loaded.returncode != 0:
            raise InfprovError(f"docker load into the image cache failed: {loaded.stderr.strip()[-300:]}",
                               f"delete {bundle} to rebuild it")
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        shutil.rmtree(run_dir, ignore_errors=True)
    # the hosts' dockerd runs in their user namespace: the layers must be root's there (sandbox/places.py)
    from infprov.sandbox import hostroot

    hostroot.shift_ids(part, HOST_ID_BASE)
    (part / ".infprov-complete").touch()
    part.rename(dest)
    return dest


def _docker_root_path() -> Path:
    return cache_dir() / f"docker-root-{recipe_key()}-{_dockerd_version()}-u{HOST_ID_BASE}"


def cached_docker_root() -> Path | None:
    """The docker root ensure_docker_root made for the current recipe, if it is there (nothing is built)."""
    dest = _docker_root_path()
    return dest if (dest / ".infprov-complete").exists() else None


def clone_docker_root(template: Path, dest: Path) -> None:
    """Give a host its own docker root: image layer files hard-linked, everything else copied.

    Layer contents (overlay2/<id>/diff) are never written in place (containers write to their own
    upper layer), so sharing their inodes is safe; databases and metadata are copied so that one
    host's daemon never changes another's.
    """
    system.run(["cp", "-a", "--link", f"{template}/.", str(dest)], what="clone the docker root", timeout=300)
    (dest / ".infprov-complete").unlink(missing_ok=True)
    for dirpath, dirnames, filenames in os.walk(dest):
        rel = Path(dirpath).relative_to(dest).parts
        if len(rel) == 2 and rel[0] == "overlay2" and "diff" in dirnames:
            dirnames.remove("diff")
        for name in filenames:
            path = Path(dirpath) / name
            st = path.lstat()
            if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
                tmp = path.with_name(f".{name}.infprov-copy")
                shutil.copy2(path, tmp)
                os.chown(tmp, st.st_uid, st.st_gid)
                os.replace(tmp, path)
