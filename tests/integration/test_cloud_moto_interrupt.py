"""Ctrl-C during `up` against moto: wherever it lands once instances may exist, between two steps too, the user
is told once how to continue or remove the cluster."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from infprov.provision import cloud, ui
from infprov.provision.providers import AwsProvider
from tests.moto_cloud import _live, _up

HINT = "again to continue or `infprov teardown --name"


@pytest.fixture()
def warned(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    said: list[str] = []
    monkeypatch.setattr(ui, "warn", said.append)
    return said


def test_ctrl_c_as_the_cluster_lock_is_let_go_after_the_launch_says_how_to_continue(
        prov: AwsProvider, warned: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Between the launch and the wait for SSH (no step of its own running): before, no hint was given."""
    real = cloud._lock

    @contextlib.contextmanager
    def interrupted_on_release(name: str, timeouts: Any) -> Iterator[None]:
        with real(name, timeouts):
            yield
        if name.startswith("cluster-"):
            raise KeyboardInterrupt

    monkeypatch.setattr(cloud, "_lock", interrupted_on_release)
    with pytest.raises(KeyboardInterrupt):
        _up(prov, name="gap")
    assert len(_live(prov, "gap")) == 1  # launched: the hint matters
    assert len(warned) == 1 and HINT in warned[0] and "--name gap" in warned[0], warned


def test_ctrl_c_in_a_step_with_its_own_words_is_said_once(prov: AwsProvider, warned: list[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    def launch(*args: Any, **kwargs: Any) -> list[str]:
        raise KeyboardInterrupt

    monkeypatch.setattr(cloud, "launch_shortfall", launch)
    with pytest.raises(KeyboardInterrupt):
        _up(prov, name="inlaunch")
    assert len(warned) == 1 and warned[0].startswith("interrupted while starting or launching instances: ")
    assert HINT in warned[0]


def test_ctrl_c_while_waiting_for_the_instances_is_said_once(prov: AwsProvider, warned: list[str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    def wait(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cloud, "wait_running", wait)
    with pytest.raises(KeyboardInterrupt):
        _up(prov, name="inwait")
    assert len(warned) == 1 and HINT in warned[0], warned
