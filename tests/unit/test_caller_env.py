"""The tests never take the caller's INFPROV_* settings: with a second sandbox of the user's exported in the shell
(INFPROV_SANDBOX_ID and the rest, INFPROV_HOME), the sandbox fixture would otherwise reset that sandbox's EC2
endpoint and release its hosts, and every shard would share it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

USERS_OWN = {"INFPROV_SANDBOX_ID": "usersown", "INFPROV_SANDBOX_SUBNET": "10.200.0.0/24",
             "INFPROV_SANDBOX_DIR": "/nonexistent/usersown", "INFPROV_SANDBOX_EC2_PORT": "5999",
             "INFPROV_HOME": "/nonexistent/home", "INFPROV_NO_CACHE": "0"}


@pytest.mark.skipif(os.environ.get("INFPROV_TEST_CALLER_PROBE") != "1", reason="run by the test below")
def test_probe() -> None:
    from tests.conftest import TEST_SANDBOX

    for key in ("INFPROV_SANDBOX_ID", "INFPROV_SANDBOX_SUBNET", "INFPROV_SANDBOX_DIR", "INFPROV_SANDBOX_EC2_PORT",
                "INFPROV_HOME"):
        assert os.environ.get(key) != USERS_OWN[key], key
    assert os.environ["INFPROV_NO_CACHE"] == "1"
    assert TEST_SANDBOX["INFPROV_SANDBOX_ID"] == "infpts"
    assert os.environ["INFPROV_TEST_CALLER_PROBE"] == "1"  # the runner's own knobs stay


def test_a_callers_sandbox_and_home_never_reach_the_tests() -> None:
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, **USERS_OWN, "INFPROV_TEST_CALLER_PROBE": "1"}
    env.pop("INFPROV_TEST_SHARD", None)
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "tests/unit/test_caller_env.py::test_probe"], cwd=root, env=env, capture_output=True,
                         text=True, timeout=300)  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 passed" in run.stdout, run.stdout
