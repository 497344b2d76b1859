"""`infprov types [--region R] [--json]`: the supported types with chips, NeuronCores, memory and price, from the
catalog, no network (issue 25, item 17)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from infprov.provision import catalog
from infprov.provision.cli import app


@pytest.fixture(autouse=True)
def _no_region(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("INFPROV_HOME", str(tmp_path / "home"))


def test_types_json_lists_every_catalog_type() -> None:
    r = CliRunner().invoke(app, ["types", "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["region"] == "us-east-1"
    assert [t["type"] for t in doc["types"]] == list(catalog.TYPES)
    six = next(t for t in doc["types"] if t["type"] == "inf1.6xlarge")
    assert (six["chips"], six["neuron_cores"], six["vcpus"], six["memory_gib"]) == (4, 16, 24, 48)
    assert six["hourly_price"] == pytest.approx(1.18) and six["generation"] == "Neuron v1"
    trn = next(t for t in doc["types"] if t["type"] == "trn1.32xlarge")
    assert (trn["chips"], trn["neuron_cores"], trn["generation"]) == (16, 32, "Neuron v2")


def test_types_table_and_a_region_without_prices() -> None:
    r = CliRunner().invoke(app, ["types"])
    assert r.exit_code == 0 and "inf2.xlarge" in r.stdout and "$0.228" in r.stdout and "NeuronCores" in r.stdout
    far = CliRunner().invoke(app, ["types", "--region", "ap-south-1", "--json"])
    assert all(t["hourly_price"] is None for t in json.loads(far.stdout)["types"])
    shown = CliRunner().invoke(app, ["types", "--region", "ap-south-1"])
    assert "price not in infprov's catalog" in shown.stdout


def test_a_bad_region_is_one_line() -> None:
    r = CliRunner().invoke(app, ["types", "--region", "mars\n"])
    assert r.exit_code == 2
    [line] = r.stderr.strip().splitlines()
    assert line.startswith("error: --region") and "hint:" in line
