"""`infprov logs --bundle` against the sandbox: a served cluster whose container, host files, inventory and
this machine's environment hold planted secrets; the archive holds each host's real logs, inspect output and
model config, and none of the secrets. A host that cannot be reached keeps the other's part."""

from __future__ import annotations

import json
import os
import re
import shlex
import stat
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from infprov.provision.cli import app
from tests.hostshell import on_host

pytestmark = pytest.mark.sandbox
runner = CliRunner()
CLUSTER = "bundletest"
MODEL = "rn50-4neuroncores-default"
DEAD = "i-0deadbeef00000000"

# what is planted (none of it may be in the archive)
AWS_KEY_ID = "AKIAQBUNDLETEST00001"
AWS_SECRET = "bUnDlEsEcReT/K7MDENG/bPxRfiCYPLANTED0001"
AWS_SESSION = "FwoGZXIvYXdzEPlantedSessionTokenForTheBundleTest0123456789"
HF_TOKEN = "hf_plantedBundleTokenValue0123456789"
INDEX_PASSWORD = "planted-index-password-0001"
URL_PASSWORD = "planted-url-password-0002"
GROUP_TOKEN = "planted-group-var-token-0003"
LOCAL_SECRET = "planted-local-env-secret-0004"
KEY_BODY = "b3BlbnNzaC1rZXktdjEAAAAAPlantedKeyBodyLine0001"
PLANTED = (AWS_KEY_ID, AWS_SECRET, AWS_SESSION, HF_TOKEN, INDEX_PASSWORD, URL_PASSWORD, GROUP_TOKEN, LOCAL_SECRET,
           KEY_BODY)


@pytest.fixture(scope="module")
def one_host(sandbox_hosts: list[dict[str, Any]]) -> dict[str, Any]:
    """The test sandbox (conftest's: its EC2 endpoint emptied and its hosts wiped once per session)."""
    return sandbox_hosts[0]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("bundle-home")
    old = os.environ.get("INFPROV_HOME")
    os.environ["INFPROV_HOME"] = str(path)
    yield path
    if old is None:
        os.environ.pop("INFPROV_HOME", None)
    else:
        os.environ["INFPROV_HOME"] = old


@pytest.fixture(scope="module")
def cluster(one_host: dict[str, Any], home: Path) -> Iterator[dict[str, Any]]:
    """`infprov up --sandbox --type inf1.xlarge --yes`; torn down at the end, whatever happened."""
    try:
        up = runner.invoke(app, ["up", "--sandbox", "--type", "inf1.xlarge", "--name", CLUSTER, "--yes", "--json"])
        assert up.exit_code == 0, up.output
        doc = json.loads(up.stdout)
        assert doc["server"]["ok"] is True
        yield doc["server"]["hosts"][0]
    finally:
        from infprov.floor import paths
        from infprov.inventory import store

        store.remove_hosts(paths.inventory_file(), [DEAD])
        down = runner.invoke(app, ["teardown", "--sandbox", "--name", CLUSTER, "--yes", "--json"])
        assert down.exit_code == 0, down.output
        assert json.loads(down.stdout)["leftovers"] == []


def _on_host(instance_id: str, command: str, timeout: float = 120) -> str:
    return on_host(instance_id, command, timeout=timeout)


def _plant(host: dict[str, Any]) -> None:
    """Secrets where a support bundle reads: the server container's environment (restarted from the committed
    image with them) and its log, pins.env on the host, and a group variable in the inventory."""
    iid = host["instance_id"]
    envs = " ".join(f"-e {shlex.quote(f'{k}={v}')}" for k, v in (
        ("AWS_ACCESS_KEY_ID", AWS_KEY_ID), ("AWS_SECRET_ACCESS_KEY", AWS_SECRET), ("AWS_SESSION_TOKEN", AWS_SESSION),
        ("HF_TOKEN", HF_TOKEN)))
    _on_host(iid, f"""set -e
args=$(docker inspect -f '{{{{ index .Config.Labels "infprov.args" }}}}' infprov-triton)
docker rm -f infprov-triton >/dev/null
args=$(printf '%s' "$args" | sed 's# nvcr.io/nvidia/tritonserver:22.04-py3 # infprov/tritonserver-neuron:22.04 #')
docker run -d --name infprov-triton --label "infprov.args=$args" {envs} $args >/dev/null
for i in $(seq 120); do
  curl -sf -o /dev/null http://127.0.0.1:8000/v2/models/{MODEL}/ready && break
  sleep 1
done
curl -sf -o /dev/null http://127.0.0.1:8000/v2/models/{MODEL}/ready
""", timeout=180)
    # the server's own output: what a leaky start script or model would print
    key = f"-----BEGIN OPENSSH PRIVATE KEY-----\\n{KEY_BODY}\\n-----END OPENSSH PRIVATE KEY-----"
    _on_host(iid, "docker exec infprov-triton sh -c "
             + shlex.quote(f'echo "debug: key id $AWS_ACCESS_KEY_ID secret $AWS_SECRET_ACCESS_KEY '
                           f'token $AWS_SESSION_TOKEN hf $HF_TOKEN" > /proc/1/fd/1; '
                           f'printf "%b\\n" "{key}" > /proc/1/fd/2'))
    _on_host(iid, f"printf '%s\\n' 'INDEX_PASSWORD={INDEX_PASSWORD}' "
                  f"'EXTRA_INDEX=https://pip:{URL_PASSWORD}@index.example/simple' "
                  ">> /home/ubuntu/python_backend/inferentia/scripts/pins.env")
    from infprov.floor import paths
    from infprov.inventory import store

    store.set_group_vars(paths.inventory_file(), CLUSTER, {"hf_token": GROUP_TOKEN})


def _members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        out = {}
        for m in tar.getmembers():
            assert m.isreg() and m.mode == 0o600, m.name
            assert not m.name.startswith("/") and ".." not in m.name.split("/"), m.name
            assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*", m.name), m.name
            out[m.name.split("/", 1)[1]] = tar.extractfile(m).read()  # type: ignore[union-attr]
    return out


def _no_secret_anywhere(path: Path, members: dict[str, bytes], extra: tuple[str, ...]) -> None:
    raw = path.read_bytes()
    for name, data in members.items():
        text = data.decode("utf-8", "replace")
        for secret in PLANTED + extra:
            assert secret not in text, f"{secret!r} is in {name}"
        assert re.search(r"(AKIA|ASIA)[A-Z0-9]{16}", text) is None, name
        assert "PRIVATE KEY-----" not in text, name
    assert not any(s.encode() in raw for s in PLANTED)  # (compressed: a cheap second look)


def test_bundle_of_a_served_cluster_holds_the_real_parts_and_no_secret(
    cluster: dict[str, Any], home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    iid = cluster["instance_id"]
    # the container's first start: setup.sh's output is in its log, and so in the bundle
    first = tmp_path / "first"
    first.mkdir()
    res = runner.invoke(app, ["logs", "--bundle", str(first), "--name", CLUSTER])
    assert res.exit_code == 0, res.output
    [archive] = first.iterdir()
    log = _members(archive)[f"hosts/{iid}/container.log"].decode()
    for line in ("stand-in Miniconda installed in /home/ubuntu/miniconda", "Built target triton-python-backend-stub",
                 "setup.sh: environment test_conda_env ready", 'Started HTTPService at 0.0.0.0:8000'):
        assert line in log, f"{line!r} not in the bundled container log:\n{log}"

    _plant(cluster)
    monkeypatch.setenv("INFPROV_TEST_API_TOKEN", LOCAL_SECRET)  # this machine's environment, too
    out = tmp_path / "bundles"
    out.mkdir()
    started = time.monotonic()
    res = runner.invoke(app, ["logs", "--bundle", str(out), "--name", CLUSTER, "--json"])
    took = time.monotonic() - started
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    [made] = doc["bundles"]
    assert doc["ok"] is True and made["hosts"] == [
        {"host": iid, "address": cluster["address"], "ok": True, "error": ""}]
    path = Path(made["path"])
    assert path.parent == out and os.listdir(out) == [path.name]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.stat().st_size == made["bytes"]
    members = _members(path)
    print(f"\nbundle {path.name}: {made['bytes']} bytes in {took:.1f} s; members:")
    for name, data in members.items():
        print(f"  {name} ({len(data)} bytes)")
    h = f"hosts/{iid}"
    expected = {"manifest.json", "infprov/version.json", "infprov/server-play.log", f"{h}/inventory.yml",
                f"{h}/container.log", f"{h}/container-inspect.json", f"{h}/images-inspect.json", f"{h}/images.txt",
                f"{h}/neuron-ls.txt", f"{h}/neuron-packages.txt", f"{h}/neuron-driver.txt",
                f"{h}/container-packages.txt", f"{h}/model-config.json", f"{h}/model-index.json",
                f"{h}/server-health.txt", f"{h}/pins.env", f"{h}/setup-version.txt", f"{h}/system.txt"}
    assert set(members) == expected
    text = {n: d.decode() for n, d in members.items()}

    # real content: the served config, the container's log lines, inspect output, the pins in use
    config = json.loads(text[f"{h}/model-config.json"])
    assert config["name"] == MODEL and config["max_batch_size"] == 64 and config["backend"] == "python"
    assert [i["name"] for i in json.loads(text[f"{h}/model-index.json"])] == [MODEL]
    log = text[f"{h}/container.log"]
    assert "start.sh: the environment from the committed image (/opt/infprov/env.sh)" in log
    assert "debug: key id ******** secret ******** token ******** hf ********" in log
    assert "[private key masked by infprov]" in log
    inspect = json.loads(text[f"{h}/container-inspect.json"])[0]
    env = inspect["Config"]["Env"]
    assert "AWS_SECRET_ACCESS_KEY=********" in env and "HF_TOKEN=********" in env and "MAX_BATCH_SIZE=64" in env
    assert inspect["Config"]["Image"] == "infprov/tritonserver-neuron:22.04" and inspect["State"]["Running"] is True
    tags = {t for image in json.loads(text[f"{h}/images-inspect.json"]) for t in image.get("RepoTags") or []}
    assert {"nvcr.io/nvidia/tritonserver:22.04-py3", "infprov/tritonserver-neuron:22.04"} <= tags
    assert "server ready: HTTP 200" in text[f"{h}/server-health.txt"]
    assert f"model {MODEL} ready: HTTP 200" in text[f"{h}/server-health.txt"]
    assert "INDEX_PASSWORD=********" in text[f"{h}/pins.env"] and "https://pip:********@index.example" in \
        text[f"{h}/pins.env"]
    assert text[f"{h}/setup-version.txt"].startswith("setup.sh infprov-")
    made = text[f"{h}/setup-version.txt"]
    assert re.search(r"infprov/tritonserver-neuron:22.04 made from setup sha256 [0-9a-f]{64}\n", made), made
    assert re.search(r"served model made from sha256 [0-9a-f]{64}\n", made), made
    assert "/dev/neuron0" in text[f"{h}/neuron-driver.txt"]
    # no Neuron tools in the sandbox: said so, not an error
    assert "neuron-ls: not present on this host" in text[f"{h}/neuron-ls.txt"]
    assert "tensorflow-neuron" in text[f"{h}/container-packages.txt"]
    assert "infprov_version" in json.loads(text["infprov/version.json"])
    inventory = text[f"{h}/inventory.yml"]
    assert f"ansible_host: {cluster['address']}" in inventory and "hf_token: '********'" in inventory
    assert "ansible_ssh_private_key_file: " in inventory
    manifest = json.loads(text["manifest.json"])
    assert {f["path"] for f in manifest["files"]} == expected - {"manifest.json"}
    assert all(f["what"] and f["how"] for f in manifest["files"])

    # no secret anywhere: what was planted, and the host's login key (named in the inventory, never read)
    from infprov.floor import paths
    from infprov.inventory import store

    found = store.load(paths.inventory_file()).find(iid)
    assert found is not None and found.key_file
    key_lines = tuple(line for line in Path(found.key_file).read_text().splitlines()
                      if line and "-----" not in line)
    _no_secret_anywhere(path, members, key_lines)
    # nor in the run logs this machine keeps (bundle.yml's output stays out of them: no_log)
    logs = sorted((home / "runs").glob("*-play-bundle-*.log"))
    assert logs
    for run_log in (home / "runs").glob("*.log"):
        said = run_log.read_text(errors="replace")
        assert not [s for s in PLANTED if s in said], run_log


def test_a_host_that_cannot_be_reached_keeps_the_others(cluster: dict[str, Any], home: Path, tmp_path: Path) -> None:
    from infprov.floor import paths
    from infprov.inventory import store
    from infprov.inventory.model import Host

    store.upsert_hosts(paths.inventory_file(), CLUSTER, [Host(
        name=DEAD, address="127.0.0.1", port=1, instance_type="inf1.xlarge", neuron_devices=1, neuron_cores=4)])
    try:
        res = runner.invoke(app, ["logs", "--bundle", str(tmp_path), "--name", CLUSTER])
    finally:
        store.remove_hosts(paths.inventory_file(), [DEAD])
    assert res.exit_code == 1, res.output
    assert f"{DEAD}: could not be read" in res.stderr and "1 of 2 host(s) could not be read" in res.stderr
    [line] = [x for x in res.stdout.splitlines() if x.strip()]
    assert line.startswith(f"bundle: {tmp_path}/infprov-bundle-{CLUSTER}-") and "(1 of 2 host(s)" in line
    [archive] = [p for p in tmp_path.iterdir() if p.name.endswith(".tar.gz")]
    members = _members(archive)
    ok = f"hosts/{cluster['instance_id']}"
    assert json.loads(members[f"{ok}/model-config.json"])["name"] == MODEL
    assert b"127.0.0.1" in members[f"hosts/{DEAD}/error.txt"]
    manifest = json.loads(members["manifest.json"])
    assert [(h["host"], h["ok"]) for h in manifest["hosts"]] == [(cluster["instance_id"], True), (DEAD, False)]
