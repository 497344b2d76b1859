"""Where infprov keeps its state (INFPROV_HOME), private whatever the umask, and trusted only if it is ours."""

from __future__ import annotations

import os
import re
import secrets
import stat
from pathlib import Path

from infprov.floor.errors import InfprovError
from infprov.floor.files import atomic_write


def _refuse(path: Path, what: str, fix: str) -> InfprovError:
    return InfprovError(f"{path} {what}", fix)


def make_private_parents(path: Path) -> None:
    """Make the missing folders of path (path included) one by one, each 0700 whatever the umask (mkdir's
    parents=True makes the intermediate ones with the umask's mode: 0777 under umask 000)."""
    missing = []
    for folder in [path, *path.parents]:
        if os.path.lexists(folder):
            break
        missing.append(folder)
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:
            continue
        os.chmod(folder, 0o700)


def private_dir(path: Path, *, role: str) -> Path:
    """Make path a folder of mode 0700 if it is missing; refuse one another user could have planted into.

    As ssh does with ~/.ssh: the folder must be a real folder (not a link), owned by this user, and not
    writable by group or others, or a key or inventory found there may not be the user's own.
    """
    try:
        made = False
        if not os.path.lexists(path):
            make_private_parents(path.parent)
            try:
                path.mkdir(mode=0o700)
                made = True
            except FileExistsError:
                pass
        st = os.lstat(path)
        if made:
            os.chmod(path, 0o700)  # mkdir's mode is masked by the umask; this is not
            st = os.lstat(path)
    except NotADirectoryError:
        raise _refuse(path, f"({role}) cannot be made: a file stands where a folder should be",
                      "move that file away or set INFPROV_HOME to another folder") from None
    except OSError as exc:
        raise _refuse(path, f"({role}) cannot be made: {exc.strerror}",
                      "set INFPROV_HOME to a folder you own") from None
    if stat.S_ISLNK(st.st_mode) and role != "INFPROV_HOME":
        raise _refuse(path, f"({role}) is a symbolic link", f"make it a real folder: rm {path} && mkdir -m 700 {path}")
    if stat.S_ISLNK(st.st_mode):
        st = os.stat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise _refuse(path, f"({role}) is not a folder", "move it away or set INFPROV_HOME to another folder")
    _check_owner_and_mode(path, st, role, writable_only=True)
    return path


def check_private_file(path: Path, *, role: str) -> Path:
    """A key or state file must be ours and readable by nobody else (ssh's rule for private keys)."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise _refuse(path, f"({role}) cannot be read: {exc.strerror}", "check the path") from None
    if not stat.S_ISREG(st.st_mode):
        raise _refuse(path, f"({role}) is not a regular file", "put the private key file there")
    _check_owner_and_mode(path, st, role, writable_only=False)
    return path


def _check_owner_and_mode(path: Path, st: os.stat_result, role: str, *, writable_only: bool) -> None:
    if st.st_uid != os.geteuid():
        raise _refuse(path, f"({role}) belongs to another user (uid {st.st_uid})",
                      "infprov uses only state you own: remove it, or set INFPROV_HOME to a folder of yours")
    loose = 0o022 if writable_only else 0o077
    if st.st_mode & loose:
        kind = "writable by other users" if writable_only else "readable or writable by other users"
        mode = "700" if writable_only else "600"
        raise _refuse(path, f"({role}) is {kind} (mode {stat.S_IMODE(st.st_mode):04o})",
                      f"chmod {mode} {path}, and check nothing in it was put there by someone else")


def home() -> Path:
    """INFPROV_HOME, default ~/.infprov: created 0700 on first use, refused if another user could write it."""
    return private_dir(Path(os.environ.get("INFPROV_HOME") or Path.home() / ".infprov"), role="INFPROV_HOME")


HOME_ID_RE = re.compile(r"[0-9a-f]{8}")


def home_id() -> str:
    """This home's id (INFPROV_HOME/home-id, 8 hex digits, made at random on first use): what infprov makes
    in a shared AWS account carries it (the key pair's name, the infprov:home tag), so two homes (two
    people, two laptops) sharing an account never take or remove each other's clusters."""
    folder = home()
    where = folder / "home-id"
    if not os.path.lexists(where):
        made = folder / f".home-id.{os.getpid()}.{secrets.token_hex(4)}"
        made.write_text(secrets.token_hex(4) + "\n")
        os.chmod(made, 0o600)
        try:
            os.link(made, where)  # never replaces one another process made first
        except FileExistsError:
            pass
        finally:
            made.unlink()
    check_private_file(where, role="this home's id")
    text = where.read_text(errors="replace").strip()
    if not HOME_ID_RE.fullmatch(text):
        raise _refuse(where, "(this home's id) is not 8 hex digits",
                      "restore the id this home had (it names the key pair and tags of its clusters), "
                      "or remove the file if this home made no cluster")
    return text


def inventory_file(override: str | os.PathLike[str] | None = None) -> Path:
    return Path(override) if override else home() / "inventory.yml"


def keys_dir() -> Path:
    return private_dir(home() / "keys", role="keys folder")


def known_hosts() -> Path:
    return home() / "known_hosts"


def runs_dir(create: bool = True) -> Path:
    """INFPROV_HOME/runs; with create=False (reading), a missing one is not made."""
    path = home() / "runs"
    return private_dir(path, role="runs folder") if create or os.path.lexists(path) else path


def write_private(path: Path, data: bytes | str) -> None:
    """Write a file of mode 0600 atomically (a temporary file beside it, then a rename)."""
    atomic_write(path, data, mode=0o600)
