"""Build the two Triton images (server, SDK) from Debian packages and PyPI wheels, once, into a cache."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

from provision.errors import InfprovError
from provision.sandbox import system

SERVER_IMAGE = "nvcr.io/nvidia/tritonserver:22.04-py3"
SDK_IMAGE = "nvcr.io/nvidia/tritonserver:22.04-py3-sdk"
SUITE = "bookworm"
# Debian's python3 in bookworm is 3.11: the SDK's wheels and the backend stub must match it.
IMAGE_PYTHON = "3.11"
TRITONCLIENT = "tritonclient[http]==2.51.0"
BASE_PACKAGES = ["python3", "python3-numpy", "libpython3.11", "ca-certificates", "curl", "procps"]
# Bumped whenever what goes into an image changes, so old caches are not reused.
RECIPE_VERSION = "4"


def cache_dir() -> Path:
    """The fixed folder where built images live between runs (INFPROV_CACHE overrides)."""
    path = Path(os.environ.get("INFPROV_CACHE", "/var/cache/infprov"))
    path.mkdir(parents=True, exist_ok=True)
    return path


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

    parts = [RECIPE_VERSION, SUITE, ",".join(BASE_PACKAGES), TRITONCLIENT, version("nvidia-pytriton")]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:12]


def image_tars() -> dict[str, Path]:
    key = recipe_key()
    return {
        SERVER_IMAGE: cache_dir() / f"tritonserver-22.04-py3-{key}.tar",
        SDK_IMAGE: cache_dir() / f"tritonserver-22.04-py3-sdk-{key}.tar",
    }


def ensure_built(log: Path, progress: "system.Progress | None" = None) -> dict[str, Path]:
    """Return the image tarballs, building the missing ones (about a minute the first time)."""
    tars = image_tars()
    if all(t.exists() for t in tars.values()):
        return tars
    system.require_tools({"debootstrap": "debootstrap", "tar": "tar"})
    system.check_free_space(cache_dir(), 2 << 30, "build the sandbox's images")
    with tempfile.TemporaryDirectory(prefix="infprov-img-", dir=cache_dir()) as tmp:
        work = Path(tmp)
        base = _base_rootfs(work, log, progress)
        if not tars[SERVER_IMAGE].exists():
            _note(progress, "adding the Triton server to the server image")
            root = work / "server"
            _copy_tree(base, root)
            _add_server(root)
            _tar(root, tars[SERVER_IMAGE])
        if not tars[SDK_IMAGE].exists():
            _note(progress, "adding tritonclient and perf_analyzer to the SDK image")
            root = work / "sdk"
            _copy_tree(base, root)
            _add_sdk(root, log)
            _tar(root, tars[SDK_IMAGE])
    return tars


def _note(progress: "system.Progress | None", text: str) -> None:
    if progress is not None:
        progress(text)


def _base_rootfs(work: Path, log: Path, progress: "system.Progress | None") -> Path:
    """A minimal Debian root file system with python3 and numpy, cached as a tarball."""
    cached = cache_dir() / f"rootfs-{SUITE}-{recipe_key()}.tar"
    root = work / "base"
    root.mkdir()
    if cached.exists():
        system.run(["tar", "-xf", str(cached), "-C", str(root)], what="unpack the cached rootfs")
        return root
    _note(progress, f"debootstrap {SUITE} (minbase + python3, numpy; about 40 s)")
    with open(log, "ab") as fh:
        proc = subprocess.run(
            ["debootstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}", SUITE, str(root),
             _debian_mirror()],
            stdout=fh, stderr=subprocess.STDOUT, check=False,
        )
    if proc.returncode != 0:
        raise InfprovError(
            f"debootstrap of {SUITE} failed (exit {proc.returncode})",
            f"see {log}; the Debian package mirror must be reachable",
        )
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
    return root


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


def _copy_tree(src: Path, dst: Path) -> None:
    system.run(["cp", "-a", "--reflink=auto", str(src), str(dst)], what="copy the rootfs")


def _tar(root: Path, dest: Path) -> None:
    tmp = dest.with_suffix(".part")
    system.run(["tar", "--numeric-owner", "-cf", str(tmp), "-C", str(root), "."], what=f"pack {dest.name}")
    tmp.rename(dest)


def _add_server(root: Path) -> None:
    """Lay PyTriton's real Triton server out as the NGC image does: /opt/tritonserver/{bin,lib,backends}."""
    pyt = _pytriton_root() / "tritonserver"
    libs = _pytriton_root().parent / "nvidia_pytriton.libs"
    opt = root / "opt" / "tritonserver"
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


def _add_sdk(root: Path, log: Path) -> None:
    """tritonclient[http] for the image's python3, and perf_analyzer with the two libraries it needs."""
    target = root / "usr" / "local" / "lib" / f"python{IMAGE_PYTHON}" / "dist-packages"
    target.mkdir(parents=True, exist_ok=True)
    if sysconfig.get_python_version() != IMAGE_PYTHON:
        platform_args = ["--python-version", IMAGE_PYTHON, "--only-binary=:all:"]
    else:
        platform_args = []
    with open(log, "ab") as fh:
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
             "--target", str(target), *platform_args, TRITONCLIENT],
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
    system.run(["chroot", str(root), "/sbin/ldconfig"], what="ldconfig in the SDK rootfs")
