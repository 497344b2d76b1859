"""Shared fixtures: the sandbox fleet that stands in for Inf1 hosts (real sshd, dockerd, Triton), a moto EC2
server, and the differential suite's work folder."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from infprov.provision.providers import AwsProvider
    from tests.moto_cloud import SshSeen

# The tests run on sandboxes and homes of their own, whatever the caller's shell holds. A caller's INFPROV_SANDBOX_*
# (a second sandbox of theirs), INFPROV_HOME or any other INFPROV_* setting would point the tests at the user's own
# sandbox and clusters, which the sandbox fixture empties (its EC2 endpoint reset, its hosts released), and would put
# every shard on that one sandbox. Kept: the test runner's own knobs, and where built images are cached.
RUNNER_ENV = ("INFPROV_TEST_", "INFPROV_NO_SKIPS", "INFPROV_CLIENT_PYTHONS", "INFPROV_CACHE")
for _key in [k for k in os.environ if k.startswith("INFPROV_") and not k.startswith(RUNNER_ENV)]:
    del os.environ[_key]

# `infprov up` checks the pinned downloads on the internet first; no test may reach past this machine,
# so the tests (and every infprov they start) skip it unless a test points it at a local mirror.
os.environ["INFPROV_NO_PREFLIGHT"] = "1"
# Nor the environment cache (the account's ECR; the sandbox's registry): the tests written before it expect every
# `up` to build the environment on its hosts. The cache's own tests (test_envcache*) turn it back on.
os.environ["INFPROV_NO_CACHE"] = "1"

SANDBOX_HOSTS = 3


def _can_sandbox() -> str | None:
    if sys.platform != "linux":
        return "the sandbox needs Linux"
    if os.geteuid() != 0:
        return "the sandbox needs root"
    return None


# The sandbox tier may run as several pytest processes at once (INFPROV_TEST_SHARD=K/N, as ./scripts/test
# does): shard K runs its share of tests/sandbox's files, balanced by their recorded times
# (tests/sandbox/file-times.json), on a sandbox of its own.
def _shard() -> tuple[int, int] | None:
    raw = os.environ.get("INFPROV_TEST_SHARD", "")
    if not raw:
        return None
    index, _, count = raw.partition("/")
    if not (index.isdigit() and count.isdigit() and 1 <= int(index) <= int(count)):
        raise pytest.UsageError(f"INFPROV_TEST_SHARD={raw!r}: give K/N with 1 <= K <= N, as 2/2")
    return int(index), int(count)


def _test_sandbox(shard: int) -> dict[str, str]:
    """The tests get a sandbox of their own (names, subnet, folder, EC2 port), apart from the one a user's
    demo runs on, so a test run never touches the user's clusters and may reset its own; each shard another."""
    if shard == 1:
        return {"INFPROV_SANDBOX_ID": "infpts", "INFPROV_SANDBOX_SUBNET": "10.241.0.0/24",
                "INFPROV_SANDBOX_DIR": "/var/lib/infprov-sandbox-test", "INFPROV_SANDBOX_EC2_PORT": "5066"}
    return {"INFPROV_SANDBOX_ID": f"infpt{shard}", "INFPROV_SANDBOX_SUBNET": f"10.{237 - shard}.0.0/24",
            "INFPROV_SANDBOX_DIR": f"/var/lib/infprov-sandbox-test{shard}",
            "INFPROV_SANDBOX_EC2_PORT": str(5065 + shard)}


TEST_SANDBOX = _test_sandbox((_shard() or (1, 1))[0])
FILE_TIMES = Path(__file__).parent / "sandbox" / "file-times.json"
UNTIMED_FILE_SECONDS = 15.0


def shard_files(files: list[str], count: int, times: dict[str, float]) -> list[list[str]]:
    """Files dealt to count shards, longest first to the least loaded (a file stays whole: its module
    fixtures, a shared cluster, are made once)."""
    shards: list[list[str]] = [[] for _ in range(count)]
    load = [0.0] * count
    for path in sorted(files, key=lambda f: (-times.get(f, UNTIMED_FILE_SECONDS), f)):
        least = load.index(min(load))
        shards[least].append(path)
        load[least] += times.get(path, UNTIMED_FILE_SECONDS)
    return shards


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """INFPROV_TEST_REPEAT=N runs every selected test N times in a row (ids run1..runN), to show a test holds."""
    raw = os.environ.get("INFPROV_TEST_REPEAT", "")
    if not raw:
        return
    if not raw.isdigit() or int(raw) < 1:
        raise pytest.UsageError(f"INFPROV_TEST_REPEAT={raw!r}: give a whole number from 1")
    if int(raw) > 1:
        metafunc.fixturenames.append("_repeat")
        metafunc.parametrize("_repeat", range(int(raw)), ids=lambda i: f"run{i + 1}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    shard = _shard()
    if shard is None:
        return
    index, count = shard
    import json

    times = json.loads(FILE_TIMES.read_text()) if FILE_TIMES.exists() else {}
    files = sorted({item.nodeid.split("::", 1)[0] for item in items})
    mine = set(shard_files(files, count, times)[index - 1])
    kept = [item for item in items if item.nodeid.split("::", 1)[0] in mine]
    dropped = [item for item in items if item.nodeid.split("::", 1)[0] not in mine]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture(scope="session")
def sandbox_hosts() -> Iterator[list[dict[str, Any]]]:
    """A sandbox of at least SANDBOX_HOSTS hosts: [{name, address, port, user, key_file, ...}].

    Built (or repaired) once per test session, its EC2 endpoint emptied and its hosts wiped, and
    left up for the next run; INFPROV_TEST_SANDBOX_DOWN=1 removes it at the end.
    """
    reason = _can_sandbox()
    if reason:
        pytest.skip(reason)
    os.environ.update(TEST_SANDBOX)
    import urllib.request

    from infprov.sandbox import core, records

    status = core.up(SANDBOX_HOSTS)
    _SEAL_AT_START.update(status["seal"])
    from infprov.sandbox import ec2endpoint

    reset = ec2endpoint.moto_api(status["ec2_endpoint"], core.private_dir() / "ec2", "/moto-api/reset", "POST")
    urllib.request.urlopen(reset, timeout=10).close()
    for instance_id in list(records.read_state().get("assignments", {})):
        core.release_host(instance_id)
    yield status["hosts"][:SANDBOX_HOSTS]
    if os.environ.get("INFPROV_TEST_SANDBOX_DOWN") == "1":
        core.down()


# The differential suite's (tests/sandbox/test_ansible_diff.py, tests/sandbox/test_ansible_refusals.py): its hosts,
# and a work folder per test module with the playbooks' files and templates.
@pytest.fixture(scope="module")
def fleet(sandbox_hosts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sandbox_hosts


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    from tests.ansible_diff_run import _book_dir

    root = tmp_path_factory.mktemp("ansible-diff")
    _book_dir(root / "book")
    (root / "home").mkdir()
    (root / "home" / "ansible-tmp").mkdir()
    (root / "home" / "cp").mkdir()
    yield root


@pytest.fixture(scope="session")
def sandbox_status(sandbox_hosts: list[dict[str, Any]]) -> dict[str, Any]:
    from infprov.sandbox import core

    return core.status()


# The moto suite's (tests/integration/test_cloud_moto*.py): a real moto EC2 server per test module, emptied for each
# test, and the SSH wait stood in for (plain moto has no hosts behind its addresses).
@pytest.fixture(scope="module")
def moto_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from infprov.sandbox import ec2endpoint
    from tests.moto_cloud import _free_port

    state = tmp_path_factory.mktemp("moto")
    url = ec2endpoint.start(state, _free_port())
    try:
        yield url
    finally:
        ec2endpoint.stop(state)
        assert ec2endpoint.is_running(state) is None


@pytest.fixture()
def prov(moto_url: str, infprov_home: Path, monkeypatch: pytest.MonkeyPatch) -> AwsProvider:
    """A fresh moto, a private INFPROV_HOME, and the environment a CLI run would see."""
    import urllib.request

    from infprov.provision.providers import AwsProvider
    from tests.moto_cloud import REGION

    req = urllib.request.Request(f"{moto_url}/moto-api/reset", method="POST")
    with urllib.request.urlopen(req, timeout=10):
        pass
    for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_EC2"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)  # boto3 honours it natively
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(infprov_home.parent / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(infprov_home.parent / "no-aws-credentials"))
    return AwsProvider(REGION, endpoint_url=moto_url, access_key="testing", secret_key="testing")


@pytest.fixture()
def no_ssh(monkeypatch: pytest.MonkeyPatch) -> SshSeen:
    from infprov.provision import reach, specs
    from tests.moto_cloud import FAST, SshSeen

    seen = SshSeen()
    monkeypatch.setattr(reach, "wait_for_ssh", seen)
    monkeypatch.setattr(specs, "DEFAULT_TIMEOUTS", FAST)
    return seen


@pytest.fixture()
def sigint_as_in_a_terminal() -> Iterator[None]:
    """SIGINT raises KeyboardInterrupt in this process, as in a terminal, even when the test run was started
    with it ignored (`nohup ./scripts/test &` from a script): for the tests that press Ctrl-C in-process."""
    import signal

    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


@pytest.fixture()
def umask0() -> Iterator[None]:
    """The most permissive umask, to show that what infprov writes is private anyway."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


@pytest.fixture()
def infprov_home(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A private INFPROV_HOME per test."""
    home = tmp_path / "infprov-home"
    monkeypatch.setenv("INFPROV_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def _shared_home(tmp_path_factory: pytest.TempPathFactory) -> Any:
    _SHARED_HOME["path"] = tmp_path_factory.mktemp("infprov-cluster-home")
    return _SHARED_HOME["path"]


@pytest.fixture()
def cluster_home(_shared_home: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """One INFPROV_HOME for every sandbox-cluster test of the session: the sandbox's EC2 endpoint is
    shared, and so is the region's key pair whose private key lives in INFPROV_HOME/keys."""
    monkeypatch.setenv("INFPROV_HOME", str(_shared_home))
    return _shared_home


# ---------------------------------------------------------------- nothing a sandbox test made outlives it
# Every test that uses the sandbox is checked after it ends, on failure too: instances it launched and left
# alive are terminated, their hosts released (wiped for the next tenant) and their inventory entries
# removed, so one failed test cannot spread into the next ones (a key pair "in use", a host still mapped
# as another type). Instances that existed before the test (a module's shared cluster) are left alone.
def _alive_instances(ec2: Any) -> set[str]:
    alive = ["pending", "running", "stopping", "stopped"]
    pages = ec2.get_paginator("describe_instances").paginate(
        Filters=[{"Name": "instance-state-name", "Values": alive}])
    return {i["InstanceId"] for page in pages for r in page["Reservations"] for i in r["Instances"]}


def _sweep(ec2: Any, left: set[str]) -> None:
    from infprov.inventory import store
    from infprov.sandbox import core

    ec2.terminate_instances(InstanceIds=sorted(left))
    for instance_id in sorted(left):
        core.release_host(instance_id)
    for home in {_SHARED_HOME.get("path"), os.environ.get("INFPROV_HOME")} - {None}:
        inventory = Path(str(home)) / "inventory.yml"
        if inventory.exists():
            store.remove_hosts(inventory, left)


_SHARED_HOME: dict[str, Path] = {}


@pytest.fixture(autouse=True)
def _sandbox_test_leaves_nothing(request: pytest.FixtureRequest) -> Iterator[None]:
    if "sandbox_hosts" not in request.fixturenames:
        yield
        return
    from tests.hostshell import sandbox_ec2

    ec2 = sandbox_ec2()
    before = _alive_instances(ec2)
    yield
    left = _alive_instances(ec2) - before
    if left:
        _sweep(ec2, left)
        print(f"\nsandbox: {request.node.nodeid} left {len(left)} instance(s) alive; "
              f"terminated: {', '.join(sorted(left))}")


# ---------------------------------------------------------------- no test reaches past this machine
# A socket of this process may connect to the loopback, a Unix socket, or the sandbox's subnet; any other address
# (a moto instance's made-up public address, which a real `status` would probe over SSH) is refused as an
# unreachable network would refuse it, and the test that tried fails at its end, naming the address.
_OUTSIDE: list[str] = []


def _may_reach(address: Any) -> bool:
    import ipaddress

    if not isinstance(address, tuple):
        return True  # AF_UNIX paths
    host = str(address[0]).split("%", 1)[0]
    if host == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    if ip.is_loopback or ip.is_unspecified:
        return True
    subnet = os.environ.get("INFPROV_SANDBOX_SUBNET", TEST_SANDBOX["INFPROV_SANDBOX_SUBNET"])
    try:
        return ip in ipaddress.ip_network(subnet, strict=False)
    except ValueError:
        return False


def _guard_sockets() -> None:
    import errno
    import socket

    if getattr(socket.socket.connect, "_guarded", False):
        return
    connect, connect_ex = socket.socket.connect, socket.socket.connect_ex

    def guarded_connect(self: socket.socket, address: Any) -> None:
        if self.type != socket.SOCK_DGRAM and not _may_reach(address):  # a UDP connect sends nothing
            _OUTSIDE.append(str(address))
            raise OSError(errno.ENETUNREACH, f"a test may not reach {address!r} (only loopback and the sandbox)")
        connect(self, address)

    def guarded_connect_ex(self: socket.socket, address: Any) -> int:
        if self.type != socket.SOCK_DGRAM and not _may_reach(address):
            _OUTSIDE.append(str(address))
            return errno.ENETUNREACH
        return connect_ex(self, address)

    guarded_connect._guarded = True  # type: ignore[attr-defined]
    socket.socket.connect = guarded_connect  # type: ignore[method-assign,assignment]
    socket.socket.connect_ex = guarded_connect_ex  # type: ignore[method-assign,assignment]


_guard_sockets()


@pytest.fixture(autouse=True)
def _reaches_nothing_outside() -> Iterator[None]:
    del _OUTSIDE[:]
    yield
    if _OUTSIDE:
        tried = ", ".join(sorted(set(_OUTSIDE)))
        del _OUTSIDE[:]
        pytest.fail(f"the test tried to connect past the loopback and the sandbox: {tried}")


# ---------------------------------------------------------------- the seal's counter (issue 16)
# The machine drops whatever a test sandbox host sends beyond the sandbox subnet and counts it; no
# test sends anything out, so the count must not move during a run. Reported at the end of the run
# (when the sandbox was used); a run whose tests passed fails if it moved.
_SEAL_AT_START: dict[str, Any] = {}
_SEAL_REPORT: list[str] = []


# ---------------------------------------------------------------- CI cannot pass by skipping
# With INFPROV_NO_SKIPS=1 (.ci/run sets it) a skipped test fails the run and its reason is printed:
# a machine that cannot build the sandbox, or lacks a part, must not count as green.
_SKIPPED: list[str] = []


# Where the run's time went, by tier and by file (setup + call + teardown), printed at the end so the
# slow parts stay visible next to --durations.
_TIME_BY_FILE: dict[str, float] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    path = report.nodeid.split("::", 1)[0]
    _TIME_BY_FILE[path] = _TIME_BY_FILE.get(path, 0.0) + report.duration
    if report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        _SKIPPED.append(f"{report.nodeid}: {reason}")


# ---------------------------------------------------------------- every EC2 call a test made (issue 12)
# Each Ec2Provider made in this process reports the operations it sends (botocore's before-call
# event); at the end of the run they must all be in the IAM policy infprov documents
# (provision/data/iam-policy.json), or the run fails. tests/unit/test_iam_policy.py reads the same set.
EC2_CALLS: set[str] = set()


_IN_INFPROV = threading.local()


def _record_ec2_calls() -> None:
    """botocore's before-call hook on every Ec2Provider's clients notes what goes on the wire, while
    infprov's own call path (Ec2Provider._invoke) is on the stack: the calls tests make themselves on
    prov.client to set a scene (stopping an instance, reading an attribute) are not infprov's."""
    from infprov.provision import ec2

    if getattr(ec2.Ec2Provider.__init__, "_records", False):
        return
    init = ec2.Ec2Provider.__init__
    invoke = ec2.Ec2Provider._invoke
    make_ecr = ec2.Ec2Provider.ecr_client

    def recording_init(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        for client in (self.client, self.launch_client):
            client.meta.events.register("before-call.ec2", _note_call)

    def recording_ecr(self: Any) -> Any:
        fresh = self._ecr_client is None
        client = make_ecr(self)
        if fresh:
            client.meta.events.register("before-call.ecr", _note_call)
        return client

    def marked_invoke(self: Any, *args: Any, **kwargs: Any) -> Any:
        _IN_INFPROV.depth = getattr(_IN_INFPROV, "depth", 0) + 1
        try:
            return invoke(self, *args, **kwargs)
        finally:
            _IN_INFPROV.depth -= 1

    recording_init._records = True  # type: ignore[attr-defined]
    ec2.Ec2Provider.__init__ = recording_init  # type: ignore[method-assign]
    ec2.Ec2Provider._invoke = marked_invoke  # type: ignore[method-assign]
    ec2.Ec2Provider.ecr_client = recording_ecr  # type: ignore[method-assign]


def _note_call(model: Any, **kwargs: Any) -> None:
    if getattr(_IN_INFPROV, "depth", 0):
        EC2_CALLS.add(f"{model.service_model.signing_name}:{model.name}")


_record_ec2_calls()


def _iam_finish(session: pytest.Session) -> None:
    if not EC2_CALLS:
        return
    from infprov.provision import iam

    missing = sorted(EC2_CALLS - iam.actions())
    if missing:
        _SEAL_REPORT.append(f"iam: the tests called EC2 actions the IAM policy lacks: {', '.join(missing)}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    else:
        _SEAL_REPORT.append(f"iam: the {len(EC2_CALLS)} EC2 actions the tests called are all in {iam.POLICY_FILE.name}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _iam_finish(session)
    if _SKIPPED and os.environ.get("INFPROV_NO_SKIPS") == "1":
        _SEAL_REPORT.append(f"ci: {len(_SKIPPED)} test(s) were skipped, which CI does not accept:")
        _SEAL_REPORT.extend(f"  {line}" for line in _SKIPPED[:20])
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    _seal_finish(session)


def _seal_finish(session: pytest.Session) -> None:
    if "chain" not in _SEAL_AT_START:
        return
    from infprov.sandbox import core

    now = core.seal_status()
    start = _SEAL_AT_START.get("dropped_packets") or 0
    moved = None if now["dropped_packets"] is None else now["dropped_packets"] - start
    if not now["rule"]:
        _SEAL_REPORT.append(f"sandbox seal: the drop rule (iptables chain {now['chain']}) is MISSING")
    else:
        _SEAL_REPORT.append(f"sandbox seal: iptables chain {now['chain']} dropped {moved} packet(s) during this "
                            f"run, {now['dropped_packets']} since the sandbox was sealed")
    if (moved or not now["rule"]) and session.exitstatus == 0:
        _SEAL_REPORT.append("sandbox seal: something tried to leave the sandbox (or the rule is gone): failing the run")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _time_report() -> list[str]:
    if not _TIME_BY_FILE:
        return []
    tiers: dict[str, float] = {}
    for path, seconds in _TIME_BY_FILE.items():
        parts = path.split("/")
        tier = parts[1] if len(parts) > 2 and parts[0] == "tests" else "other"
        tiers[tier] = tiers.get(tier, 0.0) + seconds
    lines = ["time by tier: " + ", ".join(f"{tier} {seconds:.0f} s" for tier, seconds in sorted(tiers.items()))]
    slowest = sorted(_TIME_BY_FILE.items(), key=lambda item: -item[1])[:12]
    lines.append("slowest files: " + ", ".join(f"{path.removeprefix('tests/')} {seconds:.0f} s"
                                               for path, seconds in slowest))
    return lines


def pytest_terminal_summary(terminalreporter: Any) -> None:
    times_out = os.environ.get("INFPROV_TEST_TIMES_OUT")
    if times_out and _TIME_BY_FILE:  # the run's seconds per file, to refresh tests/sandbox/file-times.json
        import json

        Path(times_out).write_text(json.dumps({k: round(v, 1) for k, v in sorted(_TIME_BY_FILE.items())}, indent=1))
    for line in _time_report():
        terminalreporter.write_line(line)
    for line in _SEAL_REPORT:
        terminalreporter.write_line(line)
