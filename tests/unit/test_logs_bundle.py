"""`infprov logs --bundle`: secrets masked, the archive private, whole or absent, with safe member names; one
host failing keeps the others; bad input is one line and leaves nothing. (The sandbox run is in
tests/sandbox/test_logs_bundle_sandbox.py.)"""

from __future__ import annotations

import functools
import json
import os
import re
import stat
import tarfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from infprov.floor.errors import InfprovError, UsageError
from infprov.inventory.model import Host, Inventory
from infprov.playbooks.connection import CommandResult, ShellFiles, StreamResult
from infprov.playbooks.errors import HostUnreachable
from infprov.playbooks.masking import PRIVATE_KEY_MASK, Masker, mask_text, mask_vars
from infprov.playbooks.results import MASK
from infprov.provision import bundle
from infprov.provision.cli import app

runner = CliRunner()

AKIA = "AKIAIOSFODNN7EXAMPLE"
ASIA = "ASIAY34FZKBOKMUTVV7A"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SESSION = "FwoGZXIvYXdzEBYaDHhBTEXAMPLETOKENxyz0123456789abcdefABCDEF"
PEM = ("-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gunVTLw\n"
       "7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxKLxoS2tFczGkPLPgizskuemMghRniWaoLcyeh\n"
       "-----END RSA PRIVATE KEY-----")
OPENSSH = ("-----BEGIN OPENSSH PRIVATE KEY-----\n"
           "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
           "QyNTUxOQAAACBzZWNyZXQta2V5LWJvZHktZm9yLXRlc3RzLW9ubHkAAAAA\n-----END OPENSSH PRIVATE KEY-----\n")
KEY_BODY = "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gunVTLw"
TOKEN = "hf_plantedTokenValue0123456789"
TS = "2026-12-07T02:44:59.249720636Z"
PASSWORD = "correct-horse-battery-staple"
ALL_SECRETS = (AKIA, ASIA, SECRET_KEY, SESSION, KEY_BODY, TOKEN, PASSWORD, "PRIVATE KEY-----", "b3BlbnNzaC1rZXkt",
               "PRIVATE KEY BLOCK-----", "lQOYBGPlantedPgpBody0001")


def _clean(text: str) -> None:
    for secret in ALL_SECRETS:
        assert secret not in text, f"{secret!r} left in:\n{text}"


# ---------------------------------------------------------------- masking
@pytest.mark.parametrize("text, keeps", [
    (f"AWS_SECRET_ACCESS_KEY={SECRET_KEY}\n", "AWS_SECRET_ACCESS_KEY=********"),
    (f"export AWS_SESSION_TOKEN=\"{SESSION}\"\n", 'AWS_SESSION_TOKEN="********"'),
    (f"declare -x HF_TOKEN='{TOKEN}'\n", "HF_TOKEN='********'"),
    (f"aws_secret_access_key = {SECRET_KEY}\n", "aws_secret_access_key = ********"),
    (f"db_password: {PASSWORD}\n", "db_password: ********"),
    (f'{{"api_key": "{TOKEN}", "n": 1}}', '"api_key": "********"'),
    (f"docker run -e MY_API_TOKEN={TOKEN} -e MODEL_NAME=rn50 img", "-e MY_API_TOKEN=******** -e MODEL_NAME=rn50 img"),
    (f"key id {AKIA} and {ASIA}.", "key id ******** and ********."),
    (f"session {SESSION} end", "session ******** end"),
    (f"pip install --index-url https://user:{PASSWORD}@pypi.example/simple x", "https://user:********@pypi.example"),
    (f"Authorization: Bearer {TOKEN}", "Authorization: Bearer ********"),
    (f"before\n{PEM}\nafter", f"before\n{PRIVATE_KEY_MASK}\nafter"),
    (OPENSSH, PRIVATE_KEY_MASK),
    (f"cut short: {PEM[:120]}", f"cut short: {PRIVATE_KEY_MASK}"),
    # a log's last bytes cut a key: its header gone, or its END (docker's timestamps on every line)
    (f"{TS} {KEY_BODY}\n{TS} b3BlbnNzaC1rZXktdjEAAAA=\n{TS} -----END RSA PRIVATE KEY-----\n{TS} next line\n",
     f"{PRIVATE_KEY_MASK}\n{TS} next line\n"),
    (f"{TS} start\n{TS} -----BEGIN OPENSSH PRIVATE KEY-----\n{TS} b3BlbnNzaC1rZXktdjEAAAA=\n{TS} {KEY_BODY[:30]}",
     f"{TS} start\n{TS} {PRIVATE_KEY_MASK}"),
    ("-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nlQOYBGPlantedPgpBody0001\n-----END PGP PRIVATE KEY BLOCK-----\n",
     PRIVATE_KEY_MASK),
    (f'{{"key": "-----BEGIN PRIVATE KEY-----\\n{KEY_BODY}\\n-----END PRIVATE KEY-----\\n"}}',
     f'"key": "{MASK}"'),
])
def test_secrets_in_text_are_masked(text: str, keeps: str) -> None:
    masked = mask_text(text)
    _clean(masked)
    assert keeps in masked


@pytest.mark.parametrize("text", [
    "ansible_ssh_private_key_file: /home/u/.infprov/keys/k.pem",  # a key's path is not a secret
    "SSH_KEY_FILE=/etc/ssh/key",
    "MODEL_NAME=rn50-4neuroncores-default NEURON_RT_VISIBLE_CORES=0-3",
    "http://127.0.0.1:8000/v2/models/m/config",
    "sha 0123456789abcdef0123456789abcdef01234567 git",
    '{"max_batch_size": 64, "input": [{"name": "input", "dims": ["224", "224", "3"]}]}',
])
def test_plain_text_is_left_alone(text: str) -> None:
    assert mask_text(text) == text


def test_docker_inspect_env_masked_and_still_json() -> None:
    inspect = [{"Config": {
        "Env": [f"AWS_SECRET_ACCESS_KEY={SECRET_KEY}", f"AWS_ACCESS_KEY_ID={AKIA}", f"AWS_SESSION_TOKEN={SESSION}",
                f"DB_PASSWORD={PASSWORD}", "MODEL_NAME=rn50-4neuroncores-default", "PATH=/usr/bin"],
        "Labels": {"infprov.args": f"-e HF_TOKEN={TOKEN} -e MODEL_NAME=rn50 img", "api_token": 12345678},
        "Cmd": ["bash", "-c", f"echo {PASSWORD}"],
    }}]
    text = json.dumps(inspect, indent=2)
    masker = Masker()
    masker.learn_text(text)
    masked = masker(text)
    _clean(masked)
    doc = json.loads(masked)  # still a JSON document
    env = doc[0]["Config"]["Env"]
    assert "MODEL_NAME=rn50-4neuroncores-default" in env and "PATH=/usr/bin" in env
    assert f"AWS_SECRET_ACCESS_KEY={MASK}" in env and f"AWS_ACCESS_KEY_ID={MASK}" in env
    assert doc[0]["Config"]["Labels"]["api_token"] == MASK
    # the password the Env named is masked where it shows up without its name, too
    assert doc[0]["Config"]["Cmd"] == ["bash", "-c", f"echo {MASK}"]


def test_learnt_values_masked_everywhere_and_vars_masked() -> None:
    masker = Masker()
    masker.learn_vars({"all": {"hf_token": TOKEN}, "nested": [{"db_password": PASSWORD}], "region": "us-east-1"})
    masker.learn_environ({"AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_ACCESS_KEY_ID": AKIA, "HOME": "/root"})
    masked = masker(f"log: using {TOKEN} and {PASSWORD}; {SECRET_KEY} from /root in us-east-1")
    _clean(masked)
    assert "/root" in masked and "us-east-1" in masked
    assert mask_vars({"a_token": TOKEN, "ansible_ssh_private_key_file": "/k", "x": [{"password": 1}]}) == \
        {"a_token": MASK, "ansible_ssh_private_key_file": "/k", "x": [{"password": MASK}]}


# ---------------------------------------------------------------- the archive
def test_archive_is_private_whole_and_plainly_named(tmp_path: Path, umask0: None) -> None:
    with bundle.pending_archive(tmp_path) as (fd, tmp):
        size = bundle.write_archive(fd, "top", [("a.txt", b"one\n"), ("hosts/i-1/b.log", b"two\n")])
        path = bundle.publish(tmp, tmp_path, "top")
    assert path == tmp_path / "top.tar.gz" and path.stat().st_size == size
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert os.listdir(tmp_path) == ["top.tar.gz"]  # the temporary file is gone
    with tarfile.open(path) as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == ["top/a.txt", "top/hosts/i-1/b.log"]
        assert all(m.isreg() and m.mode == 0o600 and m.uid == 0 and not m.uname for m in members)
        assert tar.extractfile("top/hosts/i-1/b.log").read() == b"two\n"  # type: ignore[union-attr]
    # a second bundle of the same name never replaces the first
    with bundle.pending_archive(tmp_path) as (fd, tmp):
        bundle.write_archive(fd, "top", [("a.txt", b"three\n")])
        again = bundle.publish(tmp, tmp_path, "top")
    assert again == tmp_path / "top-2.tar.gz" and sorted(os.listdir(tmp_path)) == ["top-2.tar.gz", "top.tar.gz"]


@pytest.mark.parametrize("name", ["../x", "/etc/passwd", "a/../../b", ".hidden", "a//b", "a/", "a b", "a\nb", ""])
def test_unsafe_member_names_are_refused(name: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError), bundle.pending_archive(tmp_path) as (fd, _):
        bundle.write_archive(fd, "top", [(name, b"x")])
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("stop", [KeyboardInterrupt, RuntimeError])
def test_nothing_half_written_on_failure_or_ctrl_c(stop: type[BaseException], tmp_path: Path) -> None:
    def members() -> Any:
        yield ("a.txt", b"x" * 100_000)
        raise stop()

    with pytest.raises(stop), bundle.pending_archive(tmp_path) as (fd, tmp):
        assert Path(tmp).exists()
        bundle.write_archive(fd, "top", members())  # type: ignore[arg-type]
        bundle.publish(tmp, tmp_path, "top")
    assert os.listdir(tmp_path) == []


def test_folder_checks(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such folder"):
        bundle.check_folder(str(tmp_path / "missing"))
    (tmp_path / "f").write_text("x")
    with pytest.raises(UsageError, match="is not a folder"):
        bundle.check_folder(str(tmp_path / "f"))
    with pytest.raises(UsageError, match="needs a folder"):
        bundle.check_folder("")
    assert bundle.check_folder(str(tmp_path)) == tmp_path


# ---------------------------------------------------------------- collecting, with hosts stood in for
HOSTILE = "\x1b[2J\x1b]0;pwned\x07[bold red]markup[/] {{ lookup('pipe', 'id') }} :smile:"
CONFIG = json.dumps({"name": "rn50-4neuroncores-default", "max_batch_size": 64, "backend": "python"})


class FakeHost(ShellFiles):
    """A host whose commands answer canned text: a container log and inspect with secrets in them."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.commands: list[str] = []

    def run(self, command: str, *, stdin: bytes | None = None, timeout: float | None = None,
            keep: int = 8 << 20) -> CommandResult:
        self.commands.append(command)
        out = ""
        if "docker logs" in command:
            out = f"start.sh: started\nsetup.sh: environment ready\n{HOSTILE}\nleaked {SECRET_KEY} and {AKIA}\n{PEM}\n"
        elif "docker inspect" in command:
            out = json.dumps([{"Config": {"Env": [f"AWS_SECRET_ACCESS_KEY={SECRET_KEY}", f"HF_TOKEN={TOKEN}"]}}])
        elif "/config" in command:
            out = CONFIG
        elif "pins.env" in command:
            out = f"MINICONDA_URL=https://repo.example/x.sh\nINDEX_PASSWORD={PASSWORD}\n"
        return CommandResult(command, 0, out.encode(), b"")

    def stream(self, command: str, on_line: Callable[[str], object], **kw: Any) -> StreamResult:
        raise AssertionError("bundle.yml streams nothing")

    def close(self) -> None:
        pass


class DeadHost(FakeHost):
    def run(self, command: str, *, stdin: bytes | None = None, timeout: float | None = None,
            keep: int = 8 << 20) -> CommandResult:
        raise HostUnreachable(f"10.0.0.2:22: connection refused {HOSTILE}", "is the instance running?")


def _hosts() -> list[Host]:
    extra = {"my_api_token": TOKEN}
    return [Host(name="i-0aaa", address="10.0.0.1", neuron_cores=4, instance_type="inf1.xlarge", cluster="c",
                 key_file="/k/key.pem", extra=extra),
            Host(name="i-0bbb", address="10.0.0.2", neuron_cores=4, instance_type="inf1.xlarge", cluster="c")]


def _connector(host: Host) -> Any:
    return DeadHost(host.name) if host.name == "i-0bbb" else FakeHost(host.name)


def _read(path: Path) -> dict[str, str]:
    with tarfile.open(path) as tar:
        out = {}
        for m in tar.getmembers():
            assert m.isreg() and not m.name.startswith("/") and ".." not in m.name.split("/")
            out[m.name.split("/", 1)[1]] = tar.extractfile(m).read().decode()  # type: ignore[union-attr]
        return out


def test_one_host_failing_keeps_the_other_and_no_secret_leaves(tmp_path: Path, umask0: None) -> None:
    hosts = _hosts()
    inv = Inventory(hosts=tuple(hosts), group_vars={"c": {"db_password": PASSWORD}})
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "20260101-000000-play-server-1.log").write_text(f"i-0aaa: setup ... AWS_SESSION_TOKEN={SESSION}\n")
    made = bundle.make("c", hosts, inv, tmp_path, connector=_connector, known_hosts=tmp_path / "kh", runs_dir=runs,
                       environ={"AWS_SECRET_ACCESS_KEY": SECRET_KEY})
    assert [(h.host, h.ok) for h in made.hosts] == [("i-0aaa", True), ("i-0bbb", False)]
    assert "connection refused" in made.hosts[1].error
    assert stat.S_IMODE(made.path.stat().st_mode) == 0o600
    files = _read(made.path)
    for name in ("container.log", "container-inspect.json", "model-config.json", "neuron-ls.txt", "pins.env",
                 "setup-version.txt", "inventory.yml"):
        assert f"hosts/i-0aaa/{name}" in files
    assert set(files) >= {"manifest.json", "infprov/version.json", "infprov/server-play.log",
                          "hosts/i-0bbb/error.txt", "hosts/i-0bbb/inventory.yml"}
    assert "connection refused" in files["hosts/i-0bbb/error.txt"]
    assert json.loads(files["hosts/i-0aaa/model-config.json"])["max_batch_size"] == 64
    assert "setup.sh: environment ready" in files["hosts/i-0aaa/container.log"]
    assert HOSTILE in files["hosts/i-0aaa/container.log"]  # host output is kept as it was sent, never rendered
    assert "ansible_ssh_private_key_file: /k/key.pem" in files["hosts/i-0aaa/inventory.yml"]  # named, not read
    for name, text in files.items():
        _clean(text)
        assert re.search(r"AKIA[A-Z0-9]{16}", text) is None, name
    manifest = json.loads(files["manifest.json"])
    listed = {f["path"] for f in manifest["files"]}
    assert listed == set(files) - {"manifest.json"}
    how = {f["path"]: f["how"] for f in manifest["files"]}
    assert "docker logs --timestamps infprov-triton" in how["hosts/i-0aaa/container.log"]
    assert "v2/models/rn50-4neuroncores-default/config" in how["hosts/i-0aaa/model-config.json"]
    assert manifest["hosts"][1] == {"host": "i-0bbb", "address": "10.0.0.2", "ok": False,
                                    "error": made.hosts[1].error}
    assert sorted(os.listdir(tmp_path)) == sorted(["runs", made.path.name])


def test_ctrl_c_while_hosts_answer_leaves_nothing(tmp_path: Path, sigint_as_in_a_terminal: None) -> None:
    import _thread

    pressed = threading.Event()

    class Slow(FakeHost):
        def run(self, command: str, *, stdin: bytes | None = None, timeout: float | None = None,
            keep: int = 8 << 20) -> CommandResult:
            if not pressed.is_set():
                pressed.set()
                _thread.interrupt_main()  # Ctrl-C, while the hosts are being read
                time.sleep(0.5)
            return super().run(command, stdin=stdin, timeout=timeout)

    hosts = _hosts()[:1]
    with pytest.raises(KeyboardInterrupt):
        bundle.make("c", hosts, Inventory(hosts=tuple(hosts)), tmp_path, connector=lambda h: Slow(h.name),
                    known_hosts=tmp_path / "kh", runs_dir=tmp_path / "runs")
    assert [p.name for p in tmp_path.iterdir()] == ["runs"]


# ---------------------------------------------------------------- the command line
INVENTORY = """all:
  children:
    c:
      hosts:
        i-0aaa: {ansible_host: 10.0.0.1, instance_type: inf1.xlarge, neuron_devices: 1, neuron_cores: 4}
        i-0bbb: {ansible_host: 10.0.0.2, instance_type: inf1.xlarge, neuron_devices: 1, neuron_cores: 4}
"""


@pytest.fixture()
def cli_home(infprov_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    infprov_home.mkdir(mode=0o700)
    (infprov_home / "inventory.yml").write_text(INVENTORY)
    monkeypatch.setattr(bundle, "make", functools.partial(bundle.make, connector=_connector))
    return infprov_home


def test_cli_json_and_line(cli_home: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    res = runner.invoke(app, ["logs", "--bundle", str(out), "--json"])
    assert res.exit_code == 1, res.output  # a host could not be read: said, and the bundle is there
    doc = json.loads(res.stdout)
    [made] = doc["bundles"]
    assert doc["ok"] is False and made["cluster"] == "c" and Path(made["path"]).parent == out
    assert [(h["host"], h["ok"]) for h in made["hosts"]] == [("i-0aaa", True), ("i-0bbb", False)]
    assert "i-0bbb: could not be read" in res.stderr and "1 of 2 host(s) could not be read" in res.stderr
    # what the host said is shown as written (no markup, no template), its control characters made harmless
    assert "[bold red]markup[/] {{ lookup('pipe', 'id') }} :smile:" in res.stderr and "\x1b" not in res.stderr
    plain = runner.invoke(app, ["logs", "--bundle", str(out), "--name", "c"])
    lines = [line for line in plain.stdout.splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith(f"bundle: {out}/infprov-bundle-c-") and "1 of 2 host(s)" in lines[0]
    assert len(list(out.iterdir())) == 2


@pytest.mark.parametrize("argv, code, said", [
    (["--name", "nope"], 2, "no cluster 'nope'"),
    (["--host", "i-0aaa"], 2, "--bundle collects whole clusters"),
    (["-f"], 2, "--bundle collects whole clusters"),
])
def test_cli_bad_input(argv: list[str], code: int, said: str, cli_home: Path, tmp_path: Path) -> None:
    res = runner.invoke(app, ["logs", "--bundle", str(tmp_path), *argv])
    assert res.exit_code == code and said in res.stderr and "Traceback" not in res.output
    assert len(res.stderr.strip().splitlines()) == 1
    assert os.listdir(tmp_path) == ["infprov-home"]


def test_cli_bad_folder(cli_home: Path, tmp_path: Path) -> None:
    missing = runner.invoke(app, ["logs", "--bundle", str(tmp_path / "no" / "such")])
    assert missing.exit_code == 2 and "no such folder" in missing.stderr
    assert not (tmp_path / "no").exists()
    (tmp_path / "f").write_text("x")
    afile = runner.invoke(app, ["logs", "--bundle", str(tmp_path / "f")])
    assert afile.exit_code == 2 and "is not a folder" in afile.stderr
    json_alone = runner.invoke(app, ["logs", "--json"])
    assert json_alone.exit_code == 2 and "--json goes with --bundle" in json_alone.stderr


def test_cli_unwritable_folder(cli_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(bundle.tempfile, "mkstemp", refuse)  # root may write anywhere; this is what others meet
    res = runner.invoke(app, ["logs", "--bundle", str(ro)])
    assert res.exit_code == 1 and "cannot write there: Permission denied" in res.stderr
    assert os.listdir(ro) == []


def test_cli_empty_inventory(infprov_home: Path, tmp_path: Path) -> None:
    res = runner.invoke(app, ["logs", "--bundle", str(tmp_path)])
    assert res.exit_code == 1 and "has no hosts" in res.stderr
    with pytest.raises(InfprovError):
        from infprov.provision import lifecycle

        lifecycle.logs_bundle(str(tmp_path), None, None)
