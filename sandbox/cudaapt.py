"""The stand-in for NVIDIA's CUDA apt repositories, and what the stand-in server images trust, from the records.

The real 22.04-py3 server image carries the CUDA repository for Ubuntu 20.04 and trusts it with the key NVIDIA
rotated out on 2022-04-27, so its `apt-get update` fails (records server-r22.04-apt-sources and
cuda-repository-key-rotation); the 24.04-py3 image trusts the current key through cuda-keyring (record
server-r24.04-apt-sources). The sandbox presents the same: two keys of its own stand in for the old and the
current one, the stand-in download server publishes both repositories (flat, empty, InRelease signed with
the current key), the 22.04 stand-in image trusts only the old key and the 24.04 one the current key.
Nothing here is NVIDIA's: the key ids differ, the repositories hold no packages.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from infprov.floor.errors import InfprovError
from infprov.sandbox import provenance

# Bumped when the keys or the repositories' layout change (part of the images' recipe).
VERSION = "1"
BASE = "http://infprov-downloads"
KEYRING_V2 = "/usr/share/keyrings/cuda-archive-keyring.gpg"
LIST_V2 = "/etc/apt/sources.list.d/cuda-ubuntu2204-x86_64.list"
# A fixed date in the past: apt refuses a Release dated in the future.
RELEASE_DATE = "Fri, 01 Apr 2022 00:00:00 UTC"


def _records(folder: Path | None = None) -> tuple[provenance.Record, provenance.Record, provenance.Record]:
    return (provenance.load("server-r22.04-apt-sources", folder), provenance.load("server-r24.04-apt-sources", folder),
            provenance.load("cuda-repository-key-rotation", folder))


def standin_uri(uri: str) -> str:
    """https://HOST/PATH -> http://infprov-downloads/HOST/PATH (how every sandbox pin names the stand-in)."""
    return BASE + "/" + uri.split("://", 1)[1]


def repository_uris(folder: Path | None = None) -> dict[str, str]:
    """The CUDA repositories the records name: {"22.04": uri, "24.04": uri}."""
    r22, r24, _ = _records(folder)
    return {"22.04": str(r22.fact("cuda_source", "uri")), "24.04": str(r24.fact("cuda_source", "uri"))}


# ---------------------------------------------------------------- the two stand-in keys
def keys_dir() -> Path:
    from infprov.sandbox import images

    return images.cache_dir() / f"standin-cuda-keys-{VERSION}"


def _gpg(home: Path, *args: str, input_: bytes | None = None) -> bytes:
    proc = subprocess.run(["gpg", "--batch", "--quiet", "--homedir", str(home), "--pinentry-mode", "loopback",
                           "--passphrase", "", *args], input=input_, capture_output=True, check=False, timeout=120)
    if proc.returncode != 0:
        raise InfprovError(f"gpg {args[0]} failed for the sandbox's CUDA apt stand-in: "
                           f"{proc.stderr.decode(errors='replace').strip()[-300:]}",
                           "install gnupg (apt-get install -y gnupg), then `infprov sandbox up`")
    return proc.stdout


@contextlib.contextmanager
def _gpg_home(secret: bytes | None = None) -> Iterator[Path]:
    """A throwaway gpg home (with the stand-in keys' secrets imported, if given); its agent is ended and the
    folder removed on the way out, so no gpg-agent outlives the call."""
    home = Path(tempfile.mkdtemp(prefix="infprov-gpg-"))
    home.chmod(0o700)
    try:
        if secret is not None:
            _gpg(home, "--import", input_=secret)
        yield home
    finally:
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], capture_output=True,
                       check=False, timeout=30)
        shutil.rmtree(home, ignore_errors=True)


def ensure_keys() -> Path:
    """Two signing keys made once into the image cache: `old` (what the 22.04 image trusts, standing in for
    7fa2af80) and `current` (what signs the repositories now, standing in for 3bf863cc). Returns the folder:
    old.gpg and current.gpg (binary public keys, as apt reads them), secret.gpg (both secret keys) and
    ids (the two long key ids)."""
    dest = keys_dir()
    if all((dest / name).exists() for name in ("old.gpg", "current.gpg", "secret.gpg", "ids")):
        return dest
    if shutil.which("gpg") is None:
        raise InfprovError("the sandbox needs gpg to sign its stand-in CUDA apt repositories",
                           "apt-get install -y gnupg, then `infprov sandbox up`")
    _, _, rotation = _records()
    old_id, new_id = rotation.fact("old_key_short_id"), rotation.fact("new_key_long_id")
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = Path(tempfile.mkdtemp(prefix=dest.name + ".", dir=dest.parent))
    try:
        ids = []
        with _gpg_home() as home:
            for name, stands_for in (("old", old_id), ("current", new_id)):
                uid = f"infprov sandbox stand-in for NVIDIA's CUDA repository key {stands_for} ({name})"
                _gpg(home, "--quick-gen-key", uid, "ed25519", "sign", "never")
                (part / f"{name}.gpg").write_bytes(_gpg(home, "--export", uid))
                listing = _gpg(home, "--with-colons", "--list-keys", uid).decode()
                ids.append(next(line.split(":")[4].upper() for line in listing.splitlines()
                                if line.startswith("pub:")))
            (part / "secret.gpg").write_bytes(_gpg(home, "--export-secret-keys"))
        (part / "ids").write_text(f"old {ids[0]}\ncurrent {ids[1]}\n")
        shutil.rmtree(dest, ignore_errors=True)
        os.replace(part, dest)
    finally:
        shutil.rmtree(part, ignore_errors=True)
    return dest


def fingerprint(name: str) -> str:
    """The long key id of the `old` or `current` stand-in key (as apt names it in NO_PUBKEY)."""
    for line in (ensure_keys() / "ids").read_text().splitlines():
        key, _, value = line.partition(" ")
        if key == name:
            return value
    raise InfprovError(f"the stand-in CUDA key {name} is missing", f"delete {keys_dir()}, then `infprov sandbox up`")


# ---------------------------------------------------------------- what the images carry
def image_files(release: str, debian_source: str) -> dict[str, bytes]:
    """The apt files (path in the image -> bytes) of the 22.04 or 24.04 stand-in server image: the stand-in
    Debian source, and the CUDA repository that release's record names, trusted as the record says."""
    keys = ensure_keys()
    uris = repository_uris()
    if release == "22.04":
        return {
            # add-apt-repository's line, beside the distribution's; the key where apt-key put it
            "etc/apt/sources.list": (debian_source + f"deb {standin_uri(uris['22.04'])} /\n").encode(),
            "etc/apt/trusted.gpg": (keys / "old.gpg").read_bytes(),
        }
    if release == "24.04":
        return {
            "etc/apt/sources.list": debian_source.encode(),
            LIST_V2.lstrip("/"): f"deb [signed-by={KEYRING_V2}] {standin_uri(uris['24.04'])} /\n".encode(),
            KEYRING_V2.lstrip("/"): (keys / "current.gpg").read_bytes(),
        }
    raise ValueError(f"no stand-in server image for release {release!r}")


# ---------------------------------------------------------------- what the download server publishes
def tree_files() -> dict[str, bytes]:
    """Each recorded CUDA repository as a flat apt repository with no packages (path under the download
    server's root -> bytes): Packages, Packages.gz, Release, and InRelease signed with the current key."""
    keys = ensure_keys()
    files: dict[str, bytes] = {}
    plain = b""
    packed = gzip.compress(plain, mtime=0)
    for uri in repository_uris().values():
        rel = uri.split("://", 1)[1].rstrip("/")
        sums = "".join(f" {hashlib.sha256(data).hexdigest()} {len(data):>8} {name}\n"
                       for name, data in (("Packages", plain), ("Packages.gz", packed)))
        release = (f"Origin: infprov\nLabel: infprov sandbox stand-in for {uri} (no packages)\n"
                   f"Date: {RELEASE_DATE}\nArchitectures: amd64\nSHA256:\n{sums}").encode()
        files[f"{rel}/Packages"] = plain
        files[f"{rel}/Packages.gz"] = packed
        files[f"{rel}/Release"] = release
        files[f"{rel}/InRelease"] = release
    with _gpg_home((keys / "secret.gpg").read_bytes()) as home:
        for name in [n for n in files if n.endswith("/InRelease")]:
            files[name] = _gpg(home, "--local-user", fingerprint("current"), "--clearsign", "--output", "-",
                               input_=files[name])
    return files
