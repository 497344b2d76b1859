"""This home's id (INFPROV_HOME/home-id): made once, kept, refused when it is not one (issue 25, item 0)."""

from __future__ import annotations

from pathlib import Path

import pytest

from infprov.floor import paths
from infprov.floor.errors import InfprovError
from infprov.provision import planning


def test_the_id_is_made_once_private_and_names_the_key_pair(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFPROV_HOME", str(tmp_path / "h"))
    first = paths.home_id()
    assert paths.HOME_ID_RE.fullmatch(first) and paths.home_id() == first
    assert (tmp_path / "h" / "home-id").stat().st_mode & 0o077 == 0
    assert planning.managed_key_name("eu-west-1", first) == f"infprov-eu-west-1-{first}"
    assert planning.cluster_tags("c", (), first)["infprov:home"] == first
    assert list(planning.cluster_filter(None, first)) == ["tag:infprov:home", "tag:infprov:managed"]
    monkeypatch.setenv("INFPROV_HOME", str(tmp_path / "other"))
    assert paths.home_id() != first


def test_a_home_id_that_is_not_one_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "h"
    monkeypatch.setenv("INFPROV_HOME", str(home))
    paths.home()
    (home / "home-id").write_text("$(reboot)\n")
    (home / "home-id").chmod(0o600)
    with pytest.raises(InfprovError, match="not 8 hex digits"):
        paths.home_id()
