"""`infprov preflight` against a local stand-in of every server the pins name (nothing leaves the machine)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infprov.provision import preflight
from infprov.provision.cli import app
from tests.integration.test_preflight import (
    runner,
)

# as the Neuron repository lists them: several versions a package, a build hash as revision


# ---------------------------------------------------------------- apt indexes as real repositories publish them


# ---------------------------------------------------------------- the sandbox's pins, on its stand-in server
@pytest.fixture()
def standin_gone(sandbox_hosts: list[dict[str, Any]], infprov_home: Path) -> Iterator[Path]:
    """The stand-in download server's Miniconda installer, moved away for the test and put back after."""
    from infprov.sandbox import core

    pins = preflight.read_pins(preflight.SANDBOX_PINS)
    path = core.downloads_dir() / pins["MINICONDA_URL"].removeprefix("http://infprov-downloads/")
    aside = path.with_name(path.name + ".aside")
    path.rename(aside)
    try:
        yield path
    finally:
        aside.rename(path)


@pytest.mark.sandbox
def test_sandbox_preflight_checks_every_pin_on_the_stand_in_server(sandbox_hosts: list[dict[str, Any]],
                                                                    infprov_home: Path) -> None:
    result = runner.invoke(app, ["preflight", "--sandbox", "--no-ami", "--fresh", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    both = [preflight.read_pins(preflight.pins_file(g, sandbox=True)) for g in preflight.GENERATIONS]
    assert len(doc["items"]) == sum(len(preflight.items(p)) for p in both)
    assert all(i["ok"] for i in doc["items"]), doc
    by_name = {i["name"]: i["detail"] for i in doc["items"]}
    assert by_name["Miniconda installer"].startswith("http://infprov-downloads/repo.anaconda.com/")
    # the Neuron v2 pins too: the stand-in apt repository lists the pinned runtime packages
    assert by_name["aws-neuronx-runtime-lib 2.20.22.0*"].startswith("aws-neuronx-runtime-lib 2.20.22.0-")
    assert "python_backend r24.04" in by_name and "Neuron v2 server image" in by_name
    only_v2 = runner.invoke(app, ["preflight", "--sandbox", "--no-ami", "--type", "inf2.xlarge", "--json"])
    assert only_v2.exit_code == 0, only_v2.output
    assert len(json.loads(only_v2.stdout)["items"]) == len(preflight.items(both[1]))


@pytest.mark.sandbox
def test_sandbox_preflight_names_a_missing_stand_in_with_the_fix(standin_gone: Path) -> None:
    result = runner.invoke(app, ["preflight", "--sandbox", "--no-ami", "--fresh"])
    assert result.exit_code == 1
    failed = [line for line in result.stderr.splitlines() if line.startswith("FAIL")]
    assert len(failed) == 1, result.stderr
    assert failed[0].startswith("FAIL  Miniconda installer: http://infprov-downloads/repo.anaconda.com/")
    assert "HTTP 404" in failed[0] and "fix: `infprov sandbox up`" in failed[0]
    assert "ok    Boost archive" in result.stdout


@pytest.mark.sandbox
def test_up_sandbox_runs_preflight_on_the_stand_in_and_launches_nothing_when_it_fails(
        standin_gone: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("INFPROV_NO_PREFLIGHT")
    result = runner.invoke(app, ["up", "--sandbox", "--type", "inf1.xlarge", "--name", "pftest", "--yes"])
    assert result.exit_code == 1
    assert "stand-in download server" in result.stderr and "FAIL  Miniconda installer" in result.stderr
    assert "nothing was launched" in result.stderr
    from infprov.floor import paths
    from infprov.inventory import store

    assert not store.load(paths.inventory_file()).in_cluster("pftest"), "nothing was launched"
