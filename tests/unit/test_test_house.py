"""The test run's own rules: the sandbox tier's files dealt to shards, and no socket of a test reaching past
the loopback and the sandbox."""

from __future__ import annotations

import socket

import pytest

from tests import conftest


def test_shards_take_every_file_once_and_balance_by_time() -> None:
    times = {"a.py": 400.0, "b.py": 150.0, "c.py": 150.0, "d.py": 100.0}
    files = ["a.py", "b.py", "c.py", "d.py", "e.py", "f.py"]  # e and f are untimed: UNTIMED_FILE_SECONDS each
    shards = conftest.shard_files(files, 2, times)
    assert sorted(f for shard in shards for f in shard) == files
    loads = [sum(times.get(f, conftest.UNTIMED_FILE_SECONDS) for f in shard) for shard in shards]
    untimed = conftest.UNTIMED_FILE_SECONDS
    assert shards == [["a.py", "e.py"], ["b.py", "c.py", "d.py", "f.py"]] and loads == [400 + untimed] * 2
    assert conftest.shard_files(list(reversed(files)), 2, times) == shards  # the same deal in every process
    assert conftest.shard_files(files, 1, times) == [sorted(files, key=lambda f: (-times.get(f, untimed), f))]


def test_each_shard_gets_its_own_sandbox() -> None:
    one, two, three = (conftest._test_sandbox(k) for k in (1, 2, 3))
    for key in one:
        assert len({one[key], two[key], three[key]}) == 3, key
    assert one["INFPROV_SANDBOX_ID"] == "infpts"  # the sandbox a run without shards used, left up between runs


@pytest.mark.parametrize("shard", ["0/2", "3/2", "x", "1/"])
def test_a_bad_shard_is_refused(shard: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFPROV_TEST_SHARD", shard)
    with pytest.raises(pytest.UsageError, match="INFPROV_TEST_SHARD"):
        conftest._shard()


def test_a_socket_to_an_outside_address_is_refused_and_noted() -> None:
    with socket.socket() as sock, pytest.raises(OSError, match="may not reach"):
        sock.connect(("192.0.2.1", 9))  # TEST-NET-1: nothing is there, and nothing is sent
    with socket.socket() as sock:
        assert sock.connect_ex(("198.51.100.7", 9)) != 0
    assert conftest._OUTSIDE == ["('192.0.2.1', 9)", "('198.51.100.7', 9)"]
    conftest._OUTSIDE.clear()  # this test meant to try; the run's check is for the others


def test_the_loopback_and_the_sandbox_subnet_are_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFPROV_SANDBOX_SUBNET", "10.235.0.0/24")
    assert conftest._may_reach(("127.0.0.1", 22)) and conftest._may_reach(("::1", 22, 0, 0))
    assert conftest._may_reach(("10.235.0.11", 22)) and conftest._may_reach("/run/docker.sock")
    assert not conftest._may_reach(("10.236.0.11", 22)) and not conftest._may_reach(("example.com", 22))
