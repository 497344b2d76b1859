"""`infprov bench` and `infprov results` against hostile input: --out, --model and host names never reach a
shell or a path unchecked, results are written atomically and privately, one corrupt run hides no other."""

from __future__ import annotations

import json
import os
import re
import shlex
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from typer.testing import CliRunner

from infprov.client import results as rs
from infprov.floor.errors import InfprovError, UsageError
from infprov.floor.files import atomic_write
from infprov.playbooks.connection import StreamResult
from infprov.playbooks.localconn import LocalConnection
from infprov.provision import bench, benchplan
from infprov.provision.cli import app

runner = CliRunner()

HOSTILE_RUN = "x y;touch PWNED;#"  # a shell command, and a space that once made docker pull an image named "y"
MODEL = "rn50-16neuroncores-default"


# ---------------------------------------------------------------------------------------------- a fake host
class LocalHost(LocalConnection):
    """Stands in for SSH: the engine's command lines run in a real local shell, where `curl` and `docker` are
    fakes (FAKE_BIN) that answer as a ready host would and record their argv."""

    made: list[LocalHost] = []

    def __init__(self, host: Any, known_hosts: Path | None = None, **kw: Any) -> None:
        super().__init__(host.name)
        self.host = host
        self.on_stop: list[str] = []
        LocalHost.made.append(self)

    def stream(self, command: str, on_line: Any, *, stop: Any = None, on_stop: str | None = None) -> StreamResult:
        if on_stop:
            self.on_stop.append(on_stop)
        return super().stream(command, on_line, stop=stop, on_stop=on_stop)


FAKE_BIN = {
    "curl": """
import json, os, sys
url = sys.argv[-1]
if url.endswith("/config"):
    print(os.environ["FAKE_CONFIG"])
elif url.endswith("/repository/index"):
    print("[]")
else:
    sys.stdout.write("200")
""",
    "docker": """
import json, os, sys
args = sys.argv[1:]
if args[0] == "run" and os.environ.get("FAKE_UNSTABLE") and "-f" in args:
    print("Failed to obtain stable measurement within 30 measurement windows for concurrency 2. Please try to "
          "increase the --measurement-interval.", file=sys.stderr)
    sys.exit(2)
if args[0] == "run":
    for flag, kind in (("--json", "json"), ("-f", "csv")):
        if flag in args:
            out = args[args.index(flag) + 1]
            with open(out, "w") as fh:
                fh.write(os.environ["FAKE_JSON"] if kind == "json" else os.environ["FAKE_CSV"])
    print("Request count: 40")
    print("Avg latency: 5000 usec")
""",
}


SERVED_CONFIG = {"name": "m", "max_batch_size": 64,
                 "input": [{"name": "input", "data_type": "TYPE_FP32", "dims": [224, 224, 3]}]}
PERF_CSV = ("Concurrency,Inferences/Second,p50 latency,p90 latency,p95 latency,p99 latency\n"
            "2,320.0,4000,5000,5500,6000\n")


def client_json(batch: int = 16, threads: int = 2) -> dict[str, Any]:
    per = [{"thread": i, "requests": 20, "seconds": 1.0, "images_per_s": 20.0 * batch, "errors": 0,
            "latency_ms": {"p50": 4.0, "p75": 4.5, "p90": 5.0, "p95": 5.5, "p99": 6.0, "mean": 4.2}}
           for i in range(threads)]
    return {"model": MODEL, "batch_size": batch, "threads": threads, "limit_s": 1.0, "duration_s": 1.0,
            "requests": 20 * threads, "images_per_s": 20.0 * threads * batch, "requests_per_s": 20.0 * threads,
            "latency_ms": {"p50": 4.0, "p75": 4.5, "p90": 5.0, "p95": 5.5, "p99": 6.0, "mean": 4.2},
            "per_thread": per, "errors": 0, "partial": False}


def fake_host(name: str = "i-0123456789abcdef0", address: str = "10.0.0.5") -> Any:
    # duck-typed on purpose: bench must hold even for a host the inventory never validated
    return SimpleNamespace(name=name, address=address, instance_type="inf1.6xlarge", region="us-east-1",
                           neuron_cores=16)


@pytest.fixture(autouse=True)
def own_home(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch,
             tmp_path_factory: pytest.TempPathFactory) -> None:
    """A private INFPROV_HOME outside tmp_path (the engine's logs and the run index go there, never to the
    user's), unless the test asked for infprov_home."""
    if "infprov_home" not in request.fixturenames:
        monkeypatch.setenv("INFPROV_HOME", str(tmp_path_factory.mktemp("home")))


@pytest.fixture()
def fake_ssh(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Iterator[type[LocalHost]]:
    from infprov.playbooks import runner as engine

    root = tmp_path_factory.mktemp("fakehost")
    (root / "bin").mkdir()
    (root / "cwd").mkdir()
    for name, body in FAKE_BIN.items():
        path = root / "bin" / name
        record = (f"with open({str(root / 'calls.jsonl')!r}, 'a') as log:\n"
                  f"    log.write(json.dumps([{name!r}, *sys.argv[1:]]) + chr(10))\n")
        head = "import json, os, sys\n"
        path.write_text(f"#!{sys.executable}\n" + body.replace(head, head + record, 1))
        path.chmod(0o755)
    monkeypatch.setenv("PATH", f"{root / 'bin'}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_CONFIG", json.dumps(SERVED_CONFIG))
    monkeypatch.setenv("FAKE_JSON", json.dumps(client_json()))
    monkeypatch.setenv("FAKE_CSV", PERF_CSV)
    monkeypatch.setattr(bench, "REMOTE_DIR", str(root / "remote"))
    monkeypatch.chdir(root / "cwd")  # where an injected `touch PWNED` would land
    LocalHost.made = []
    LocalHost.root = root  # type: ignore[attr-defined]
    monkeypatch.setattr(engine, "SshConnection", LocalHost)
    yield LocalHost
    assert not list(root.rglob("PWNED")), "a value ran as a shell command"


def calls(fake: type[LocalHost], tool: str | None = None) -> list[list[str]]:
    """The argv of every fake curl/docker the hosts ran, in order."""
    log = fake.root / "calls.jsonl"  # type: ignore[attr-defined]
    found = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return [argv for argv in found if tool is None or argv[0] == tool]


def shell_operators(command: str) -> list[str]:
    """The unquoted shell operators (; & | < > ( )) in a command line, as sh would see them."""
    lex = shlex.shlex(command, posix=True, punctuation_chars=True)
    lex.whitespace_split = True
    lex.commenters = ""  # an unquoted '#' must show up as a word, not vanish as a comment
    return [t for t in lex if t and set(t) <= set("();<>|&") or t.startswith("#")]


def docker_argv(command: str) -> list[str]:
    assert command.endswith(" 2>&1")
    return shlex.split(command[: -len(" 2>&1")])


def plan(tool: str = "client", **kw: Any) -> benchplan.BenchPlan:
    return benchplan.plan("inf1.6xlarge", limit_s=1, tool=tool, **kw)


def tree_modes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): stat.S_IMODE(p.lstat().st_mode) for p in [root, *root.rglob("*")]}


# ---------------------------------------------------------------------------------------------- 1. the shell
@pytest.mark.parametrize("tool", ["client", "perf_analyzer"])
def test_hostile_out_reaches_no_remote_shell(fake_ssh: type[LocalHost], tmp_path: Path, tool: str) -> None:
    run_dir = bench.make_run_dir(str(tmp_path / HOSTILE_RUN), "all")
    [done] = bench.run([fake_host()], plan(tool), run_dir, lambda h, line: None, tmp_path / "known_hosts")
    assert done.error == "" and done.points, done.error
    assert {c.host.address for c in fake_ssh.made} == {"10.0.0.5"}
    [docker] = calls(fake_ssh, "docker")
    # the image comes right after the fixed options: no word of the run's name slipped in before it
    remote_root = bench.REMOTE_DIR
    assert docker[:9] == ["docker", "run", "--rm", "--name", docker[4], "--net", "host",
                          "-v", f"{remote_root}:{remote_root}"] and docker[9] == bench.SDK_IMAGE
    name = docker[4]
    assert re.fullmatch(r"infprov-bench-x-y-touch-pwned-[0-9a-f]{6}-0", name), name
    assert not any("PWNED" in word or word == "y" for word in docker), docker
    [kill] = [k for c in fake_ssh.made for k in c.on_stop]
    assert "docker kill --signal INT " + name in kill and "PWNED" not in kill
    result = docker[docker.index("--json" if tool == "client" else "-f") + 1]
    remote = Path(result).parent
    assert remote.parent == Path(remote_root)
    assert re.fullmatch(r"x-y-touch-pwned-[0-9a-f]{6}", remote.name), remote
    assert list(Path(remote_root).iterdir()) == []  # the run's folder is removed once its results are home (#25.9)
    assert (run_dir / "i-0123456789abcdef0" / "results.json").exists()


def test_two_runs_of_one_folder_name_get_different_remote_names() -> None:
    a, b = bench.make_run_id(Path("/r/run")), bench.make_run_id(Path("/s/run"))
    assert a != b and bench.RUN_ID.fullmatch(a) and bench.RUN_ID.fullmatch(b)
    assert bench.make_run_id(Path("/r/;;;")).startswith("run-")
    assert bench.RUN_ID.fullmatch(bench.make_run_id(Path("/r/" + "Z" * 300)))


@pytest.mark.parametrize("model", ["m;touch PWNED", "m y", "$(id)", "a`b`", "..", "-x", "m/../n", "m\nx", "",
                                   "m'q"])
def test_hostile_model_is_a_usage_error(model: str, fake_ssh: type[LocalHost], tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--model"):
        bench.check_model(model)
    hostile = benchplan.BenchPlan(model=model, points=(benchplan.Point(16, 1),), limit_s=1.0, warmup=0,
                                  tool="client", neuron_cores=16)
    with pytest.raises(UsageError):  # the second line of defence: run() itself, before any host is touched
        bench.run([fake_host()], hostile, tmp_path, lambda h, line: None, tmp_path / "kh")
    assert fake_ssh.made == []
    res = runner.invoke(app, ["bench", "--model", model, "--inventory", str(tmp_path / "none.yml")])
    assert res.exit_code == 2, res.output
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "--model" in lines[0] and "not a model name" in lines[0], res.stderr


@pytest.mark.parametrize("model", ["rn50-16neuroncores-default", "my_model.v2", "A1"])
def test_good_model_names_pass_and_are_quoted_in_every_command(model: str) -> None:
    assert bench.check_model(model) == model
    p = plan(model=model)
    for cmd in (bench._client_command(p, p.points[0], "n", "/r/p.json"),
                bench._perf_analyzer_command(plan("perf_analyzer", model=model), p.points[0], "n", "/r/p.csv")):
        argv = docker_argv(cmd)
        assert model in argv and set(shell_operators(cmd)) <= {">&"}


def test_the_probe_asks_for_the_model_by_its_name(fake_ssh: type[LocalHost], tmp_path: Path) -> None:
    run_dir = bench.make_run_dir(str(tmp_path / "r"), "all")
    [done] = bench.run([fake_host()], plan(model="my_model.v2"), run_dir, lambda h, line: None, tmp_path / "kh")
    assert done.error == "", done.error
    assert [argv[-1] for argv in calls(fake_ssh, "curl")] == [
        "http://127.0.0.1:8000/v2/health/ready", "http://127.0.0.1:8000/v2/models/my_model.v2/ready",
        "http://127.0.0.1:8000/v2/models/my_model.v2/config"]


def test_cli_bench_with_hostile_out_end_to_end(fake_ssh: type[LocalHost], tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from infprov.provision import targets

    monkeypatch.setattr(targets, "select_hosts", lambda *a: [fake_host()])
    out = tmp_path / HOSTILE_RUN
    res = runner.invoke(app, ["bench", "--limit", "1", "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["path"] == str(out) and summary["hosts"][0]["error"] == ""
    for argv in calls(fake_ssh):
        assert not any("PWNED" in word for word in argv), argv
    assert json.loads((out / "summary.json").read_text())["run"] == HOSTILE_RUN


# ---------------------------------------------------------------------------------------------- 2. host names
@pytest.mark.parametrize("name", ["../../../../tmp/x", "..", ".", "a/b", "/etc", "x\ny", "", "a b", "~root",
                                  "i-1;id", "x" * 200])
def test_hostile_host_name_writes_nothing_outside_the_run(name: str, fake_ssh: type[LocalHost], tmp_path: Path) -> None:
    run_dir = bench.make_run_dir(str(tmp_path / "runs" / "r1"), "all")
    good, bad = fake_host("i-0aaa", "10.0.0.5"), fake_host(name, "10.0.0.6")
    done = bench.run([good, bad], plan(), run_dir, lambda h, line: None, tmp_path / "kh")
    assert done[0].error == "" and done[0].points
    assert "cannot name a results folder" in done[1].error and not done[1].points
    assert {c.host.address for c in fake_ssh.made} == {"10.0.0.5"}  # the bad one is never even contacted
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]
    # summary.json: written as each point comes home; output.log: the hosts' lines as they came
    assert sorted(p.name for p in run_dir.iterdir()) == ["i-0aaa", "output.log", "summary.json"]
    assert "\n" not in done[1].error
    bench.write_fleet(run_dir, done, False)
    assert sorted(p.name for p in run_dir.iterdir()) == ["i-0aaa", "output.log", "summary.json"]


@pytest.mark.parametrize("sent", [
    json.dumps({**client_json(), "images_per_s": float("nan")}),  # json.dumps writes NaN
    "this is not JSON",
    json.dumps({**client_json(), "images_per_s": "fast"}),
    json.dumps({**client_json(), "latency_ms": {"p99": "Infinity"}}),
    json.dumps([1, 2, 3]),
])
def test_one_hosts_malformed_result_is_that_hosts_error_and_the_run_is_kept(
        sent: str, fake_ssh: type[LocalHost], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 23, item 5: one host's NaN, non-JSON or text-for-a-number ended bench for the whole fleet with
    "internal error" and no summary.json, so the run vanished from `infprov results`."""
    from infprov.provision import benchruns

    real = bench._collect

    def collect(result: Any, host: Any, out: Any, hdir: Path, i: int, point: Any, config: Any,
                item: dict[str, Any], *rest: Any) -> None:
        # what the second host sent, as it lands here (the fake hosts share one file system, so their remote
        # files cannot differ)
        if host.address == "10.0.0.6":
            Path(item["fetch_to"]).write_text(sent)
        real(result, host, out, hdir, i, point, config, item, *rest)

    monkeypatch.setattr(bench, "_collect", collect)
    run_dir = bench.make_run_dir(str(tmp_path / "runs" / "r1"), "all")
    done = bench.run([fake_host("i-0aaa", "10.0.0.5"), fake_host("i-0bbb", "10.0.0.6")], plan(), run_dir,
                     lambda h, line: None, tmp_path / "kh")
    assert done[0].error == "" and done[0].points
    assert done[1].error.startswith("10.0.0.6: point 1's results cannot be read (") and not done[1].points
    assert "\n" not in done[1].error
    bench.write_fleet(run_dir, done, False)
    summary = benchruns.read_summary(run_dir / "summary.json")  # readable: listed by `infprov results`
    assert [h["error"] == "" for h in summary["hosts"]] == [True, False]


def test_host_dir_refuses_a_planted_link_and_a_second_host_of_one_name(tmp_path: Path) -> None:
    run_dir = bench.make_run_dir(str(tmp_path / "r"), "all")
    outside = tmp_path / "outside"
    outside.mkdir()
    (run_dir / "i-link").symlink_to(outside)
    with pytest.raises(InfprovError, match="outside the run folder"):
        bench.host_dir(run_dir, "i-link")
    assert bench.host_dir(run_dir, "i-ok") == run_dir / "i-ok"
    with pytest.raises(InfprovError, match="exists already"):
        bench.host_dir(run_dir, "i-ok")
    assert list(outside.iterdir()) == []


# ---------------------------------------------------------------------------------------------- 3. atomic files
def test_write_atomic_replaces_whole_or_not_at_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "summary.json"
    atomic_write(target, '{"old": 1}\n')

    def broken(src: Any, dst: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError, match="No space"):
        atomic_write(target, '{"new": 2}\n')
    monkeypatch.undo()
    assert target.read_text() == '{"old": 1}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]  # no temporary file left behind
    link_target = tmp_path / "elsewhere"
    link_target.write_text("keep")
    (tmp_path / "results.csv").symlink_to(link_target)
    atomic_write(tmp_path / "results.csv", "a,b\n")  # replaces the link, never writes through it
    assert link_target.read_text() == "keep" and not (tmp_path / "results.csv").is_symlink()


def test_summary_and_results_are_written_atomically(fake_ssh: type[LocalHost], tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    replaced: list[str] = []
    real = os.replace

    def spy(src: Any, dst: Any) -> None:
        assert Path(src).parent == Path(dst).parent and Path(src).name.startswith(".")
        replaced.append(str(dst))
        real(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    run_dir = bench.make_run_dir(str(tmp_path / "r"), "all")
    runs = bench.run([fake_host()], plan(), run_dir, lambda h, line: None, tmp_path / "kh")
    bench.write_fleet(run_dir, runs, False)
    # (summary.json twice: as the point came home, and at the end)
    written = sorted({str(Path(p).relative_to(run_dir)) for p in replaced if Path(p).is_relative_to(run_dir)})
    host = "i-0123456789abcdef0"
    assert written == [f"{host}/output-0.txt", f"{host}/results.csv", f"{host}/results.json", "summary.json"]
    # and output.log, the hosts' lines appended as they stream in (a log, not a document to replace)
    assert sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if p.is_file()) == [
        *written[:3], bench.RAW_LOG, "summary.json"]


# ---------------------------------------------------------------------------------------------- corrupt runs
def _summary(run: str, path: Path, images: float = 100.0) -> dict[str, Any]:
    point = {**client_json(), "images_per_s": images, "usd_per_million_images": 1.5}
    return {"run": run, "path": str(path), "partial": False, "fleet_images_per_s": images,
            "hosts": [{"host": "10.0.0.5", "instance_id": "i-1", "error": "", "partial": False, "points": [point]}]}


@pytest.fixture()
def runs_home(infprov_home: Path) -> Path:
    from infprov.floor import paths

    runs = paths.runs_dir()
    for name, body in [
        ("bench-20260101T000000Z-good", None),
        ("bench-20260102T000000Z-broken", "{\"run\": \"bench-2026"),  # cut off mid-write by an old version
        ("bench-20260103T000000Z-shape", json.dumps({"run": "x", "path": "y", "hosts": [{"host": 1}]})),
        ("bench-20260104T000000Z-binary", "\udcff"),
        ("bench-20260105T000000Z-[bold]x", None),  # Rich markup in a folder name (and a run) shows as written
        # issue 23, item 9: these broke `infprov results` for every run (or --compare with an internal error)
        ("bench-20260106T000000Z-deep", "[" * 200_000 + "]" * 200_000),
        ("bench-20260107T000000Z-nan", "NaN"),
        ("bench-20260108T000000Z-manifest", "manifest"),
    ]:
        d = runs / name
        d.mkdir()
        if body is None:
            (d / "summary.json").write_text(json.dumps(_summary(name + "[/x]", d)))
        elif body == "NaN":
            (d / "summary.json").write_text(json.dumps(_summary(name, d, images=float("nan"))))
        elif body == "manifest":
            doc = _summary(name, d)
            doc["hosts"][0]["points"][0]["manifest"] = ["not", "a", "mapping"]
            (d / "summary.json").write_text(json.dumps(doc))
        elif body == "\udcff":
            (d / "summary.json").write_bytes(b"\xff\xfe{")
        else:
            (d / "summary.json").write_text(body)
    return runs


def test_results_lists_every_run_and_marks_the_unreadable(runs_home: Path) -> None:
    res = runner.invoke(app, ["results"])
    assert res.exit_code == 0, res.output
    out = res.stdout
    [good] = [line for line in out.splitlines() if "bench-20260101T000000Z-good" in line]
    assert " 100 " in good and " ok " in good, out
    assert "bench-20260105T000000Z-[bold]x" in out
    for bad in ("broken", "shape", "binary", "deep", "nan", "manifest"):
        [line] = [line for line in out.splitlines() if bad in line]
        assert "unreadable" in line, out
    listed = json.loads(runner.invoke(app, ["results", "--json"]).stdout)
    assert {r["run"].rsplit("-", 1)[-1]: r["unreadable"] for r in listed} == {
        "good": False, "broken": True, "shape": True, "binary": True, "[bold]x": False, "deep": True, "nan": True,
        "manifest": True}
    assert all(r["error"] for r in listed if r["unreadable"])


@pytest.mark.parametrize("run", ["bench-20260102T000000Z-broken", "bench-20260103T000000Z-shape",
                                 "bench-20260104T000000Z-binary", "bench-20260106T000000Z-deep",
                                 "bench-20260107T000000Z-nan", "bench-20260108T000000Z-manifest"])
def test_results_of_an_unreadable_run_is_one_line(runs_home: Path, run: str) -> None:
    res = runner.invoke(app, ["results", run])
    assert res.exit_code == 1, res.output
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "unreadable" in lines[0] and "internal error" not in lines[0], res.stderr
    good = runner.invoke(app, ["results", "bench-20260101T000000Z-good", "--compare",
                               "bench-20260105T000000Z-[bold]x"])
    assert good.exit_code == 0 and "run bench-20260105T000000Z-[bold]x[/x]" in good.stdout, good.output


# ---------------------------------------------------------------------------------------------- 4. --out
def test_out_on_a_file_is_one_line_not_an_internal_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from infprov.provision import targets

    monkeypatch.setattr(targets, "select_hosts", lambda *a: [fake_host()])
    existing = tmp_path / "notes.txt"
    existing.write_text("mine")
    for out in (existing, existing / "sub"):
        res = runner.invoke(app, ["bench", "--limit", "1", "--out", str(out)])
        assert res.exit_code == 2, res.output
        lines = [line for line in res.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and "--out" in lines[0] and "internal error" not in lines[0], res.stderr
    assert existing.read_text() == "mine"


def test_out_into_a_folder_with_files_is_refused_and_nothing_is_overwritten(fake_ssh: type[LocalHost],
                                                                           tmp_path: Path) -> None:
    old = tmp_path / "run"
    (old / "i-0123456789abcdef0").mkdir(parents=True)
    (old / "summary.json").write_text("saved before")
    (old / "i-0123456789abcdef0" / "results.json").write_text("saved before")
    with pytest.raises(UsageError, match="already holds files"):
        bench.make_run_dir(str(old), "all")
    assert (old / "summary.json").read_text() == "saved before"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert bench.make_run_dir(str(empty), "all") == empty


def test_default_run_folders_never_collide(infprov_home: Path) -> None:
    a, b = bench.make_run_dir(None, "../x;y"), bench.make_run_dir(None, "../x;y")
    assert a != b and a.parent == b.parent and a.parent.name == "runs"
    assert "/" not in a.name[len("bench-"):] and ";" not in a.name


# ---------------------------------------------------------------------------------------------- 5. modes
def test_everything_bench_makes_is_private_under_umask_0(umask0: None, fake_ssh: type[LocalHost],
                                                         infprov_home: Path, tmp_path: Path) -> None:
    default = bench.make_run_dir(None, "all")
    nested = bench.make_run_dir(str(tmp_path / "a" / "b" / "c"), "all")
    for run_dir, p in ((default, plan()), (nested, plan(sweep=["batch=16,32"]))):
        runs = bench.run([fake_host()], p, run_dir, lambda h, line: None, tmp_path / "kh")
        bench.write_fleet(run_dir, runs, p.is_sweep)
    assert (nested / "sweep.png").exists() and (default / "summary.json").exists()
    for root in (infprov_home / "runs", tmp_path / "a"):
        modes = tree_modes(root)
        for name, mode in modes.items():
            is_dir = (root / name).is_dir()
            assert mode == (0o700 if is_dir else 0o600), (root, name, oct(mode))
    perf = bench.make_run_dir(str(tmp_path / "pa"), "all")
    bench.run([fake_host()], plan("perf_analyzer"), perf, lambda h, line: None, tmp_path / "kh")
    assert set(tree_modes(perf).values()) <= {0o700, 0o600}
    assert stat.S_IMODE((perf / "i-0123456789abcdef0" / "perf_analyzer-0.csv").stat().st_mode) == 0o600


def test_results_files_are_private_under_umask_0(umask0: None, tmp_path: Path) -> None:
    rs.write_results(tmp_path / "x" / "y", {**client_json()}, check=False)
    assert set(tree_modes(tmp_path / "x").values()) == {0o700, 0o600}


def test_results_reads_without_making_a_runs_folder_and_the_home_is_private_under_umask_0(
        umask0: None, infprov_home: Path) -> None:
    res = runner.invoke(app, ["results"])
    assert res.exit_code == 0, res.output
    assert "no benchmark runs yet" in res.stdout
    assert not (infprov_home / "runs").exists()
    assert stat.S_IMODE(infprov_home.stat().st_mode) == 0o700


# ---------------------------------------------------------------------------------------------- the sandbox


def test_perf_analyzer_without_a_stable_measurement_is_named_with_what_to_do(
        fake_ssh: type[LocalHost], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """perf_analyzer's own stability check failing (its recorded line, exit 2, no CSV) is said as that, with the
    way out, not as a CSV that went missing."""
    rec = json.loads((Path(__file__).resolve().parents[2] / "sandbox" / "upstream" /
                      "perf-analyzer-r22.04.json").read_text())
    assert rec["facts"]["unstable_exit"]["stderr_prefix"] == bench.PA_UNSTABLE
    monkeypatch.setenv("FAKE_UNSTABLE", "1")
    run_dir = bench.make_run_dir(str(tmp_path / "pa"), "all")
    [done] = bench.run([fake_host()], plan("perf_analyzer"), run_dir, lambda h, line: None, tmp_path / "kh")
    assert done.error.startswith("10.0.0.5: perf_analyzer found no stable measurement"), done.error
    assert "(exit 2)" in done.error and "give a longer --limit" in done.error and "--tool client" in done.error
    assert "\n" not in done.error and not done.points
    assert bench.PA_UNSTABLE in (run_dir / "i-0123456789abcdef0" / "output-0.txt").read_text()
