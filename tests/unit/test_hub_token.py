"""An hf: model's Hugging Face token: taken from the user's environment, checked before anything is launched,
staged as a private file of the run's own, copied to the host as a file's content (never a variable, a command
line, the plan or a key), read once and removed by make_model.py, and handed to the compile's environment only."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest
from typer.testing import CliRunner

from infprov.provision import usermodel
from infprov.provision.cli import app

runner = CliRunner()
FILES = Path(__file__).resolve().parents[2] / "playbooks" / "files"
SERVER_YML = FILES.parent / "server.yml"
TOKEN = "hf_" + "Ab3" * 11 + "z"


def _make_model() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_model_under_test", FILES / "model" / "make_model.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("env, want", [
    ({}, ("", "")),
    ({"HF_TOKEN": TOKEN}, (TOKEN, "")),
    ({"HUGGING_FACE_HUB_TOKEN": TOKEN}, (TOKEN, "")),
    ({"HF_TOKEN": TOKEN, "HUGGING_FACE_HUB_TOKEN": "hf_other"}, (TOKEN, "")),  # HF_TOKEN first, as the hub reads
    ({"HF_TOKEN": f" {TOKEN}\n"}, (TOKEN, "")),
])
def test_the_token_is_read_as_huggingface_hub_reads_it(env: dict[str, str], want: tuple[str, str]) -> None:
    assert usermodel.hub_token(env) == want


@pytest.mark.parametrize("value", ["hf_a b", "hf_a\nb", "hf_\x1b[31m", "é" * 4, "x" * 1025])
def test_a_malformed_token_is_one_line_that_does_not_show_it(value: str) -> None:
    token, problem = usermodel.hub_token({"HF_TOKEN": value})
    assert token == "" and problem.startswith("HF_TOKEN does not look like a Hugging Face token")
    assert value.strip() not in problem


def test_up_refuses_a_malformed_token_before_anything_is_launched(infprov_home: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_with a space")
    res = runner.invoke(app, ["up", "--type", "inf2.xlarge", "--model", "hf:org/name", "--task",
                              "text-classification", "--yes"])
    assert res.exit_code == 2, res.output
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "HF_TOKEN does not look like a Hugging Face token" in lines[0], res.stderr
    assert lines[0].endswith("hint: nothing was launched")
    assert "with a space" not in res.output and "Traceback" not in res.output
    assert not infprov_home.exists() or not any(infprov_home.rglob("*.upload"))


def test_stage_puts_the_token_in_a_private_file_and_nowhere_else(infprov_home: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    plan = usermodel.plan("hf:org/name", "inf2.xlarge", task="text-classification")
    assert plan is not None
    staged = usermodel.stage(plan, infprov_home / "models")
    token_file = Path(staged["infprov_model_token_file"])
    assert token_file.read_text() == TOKEN and token_file.stat().st_mode & 0o777 == 0o600
    # the key, the plan and the variables do not hold it: the same model with another token is the same model
    assert TOKEN not in json.dumps(staged) and TOKEN not in Path(staged["infprov_model_plan"]).read_text()
    monkeypatch.setenv("HF_TOKEN", "hf_another")
    assert usermodel.stage(plan, infprov_home / "models")["infprov_model_key"] == staged["infprov_model_key"]


def test_no_token_file_without_a_token_or_for_a_local_model(infprov_home: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    plan = usermodel.plan("hf:org/name", "inf2.xlarge", task="text-classification")
    assert plan is not None
    assert "infprov_model_token_file" not in usermodel.stage(plan, infprov_home / "models")
    monkeypatch.setenv("HF_TOKEN", TOKEN)  # a local model downloads nothing: the token stays home
    from tests import modelfiles

    local = usermodel.plan(str(modelfiles.tiny_bert(tmp_path / "tb")), "inf2.xlarge", task="text-classification")
    assert local is not None
    staged = usermodel.stage(local, infprov_home / "models")
    assert "infprov_model_token_file" not in staged
    assert not any(p.name == "hub-token" for p in (infprov_home / "models").rglob("*"))


def test_the_server_playbook_copies_the_token_without_logging_it_and_removes_it() -> None:
    import yaml

    tasks = yaml.safe_load(SERVER_YML.read_text())[0]["tasks"]
    copy = next(t for t in tasks if t.get("ansible.builtin.copy", {}).get("src") == "{{ infprov_model_token_file }}")
    assert copy["no_log"] is True and copy["ansible.builtin.copy"]["mode"] == "0600"
    dest = copy["ansible.builtin.copy"]["dest"]
    gone = [t for t in tasks if t.get("ansible.builtin.file", {}).get("path") == dest]
    assert len(gone) == 1 and gone[0]["ansible.builtin.file"]["state"] == "absent"
    names = [t["name"] for t in tasks]
    starts = next(i for i, t in enumerate(tasks) if "docker run" in json.dumps(t))
    assert names.index(copy["name"]) < starts < names.index(gone[0]["name"])
    assert "infprov_model_token_file" not in json.dumps(tasks[starts])  # not a docker run -e value


def test_make_model_reads_the_token_once_removes_it_and_gives_it_to_the_compile_only(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mm = _make_model()
    models = tmp_path / "models"
    models.mkdir()
    key = hashlib.sha256(b"m").hexdigest()
    plan = {"upload": str(models / f"{key}.upload")}
    (models / "hub-token").write_text(TOKEN + "\n")
    assert mm.take_token(plan) == TOKEN
    assert not (models / "hub-token").exists() and mm.take_token(plan) == ""
    monkeypatch.delenv("HF_TOKEN", raising=False)
    env = mm.compile_env(TOKEN)
    assert env["HF_TOKEN"] == env["HUGGING_FACE_HUB_TOKEN"] == TOKEN
    assert "HF_TOKEN" not in os.environ and "HF_TOKEN" not in mm.compile_env("")


def test_make_model_removes_the_token_even_when_the_compile_fails(tmp_path: Path) -> None:
    """The whole script on a plan whose compile fails: the token file is gone and not in its output."""
    import subprocess

    models = tmp_path / "models"
    models.mkdir()
    key = hashlib.sha256(b"m").hexdigest()
    upload = models / f"{key}.upload"
    upload.write_text(json.dumps({"hf": "org/name"}))
    (models / "hub-token").write_text(TOKEN)
    compiled = models / key / "compiled-x" / "model_neuron.pt"
    plan = {"upload": str(upload), "source_dir": str(models / key / "src"), "kind": "hf",
            "compiled": str(compiled), "compile_args": ["--kind", "hf", "--src", str(models / key / "src"),
                                                        "--generation", "neuron-v9", "--out", str(compiled),
                                                        "--batch", "1", "--task", "text-classification"]}
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(plan))
    # a generation compile_model.py does not take: its compile fails the same way on any machine (torch or not)
    run = subprocess.run([sys.executable, str(FILES / "model" / "make_model.py"), "--plan", str(plan_file),
                          "--python-backend", str(tmp_path)], capture_output=True, text=True,
                         env={k: v for k, v in os.environ.items() if k != "INFPROV_NEURON_STANDIN"})
    assert run.returncode != 0
    assert "the compile failed" in run.stderr or "make_model.py" in run.stderr, run.stderr
    assert not (models / "hub-token").exists()
    assert TOKEN not in run.stdout + run.stderr
