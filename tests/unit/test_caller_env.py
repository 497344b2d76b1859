"""The tests never take the caller's INFPROV_* settings: with a second sandbox of the user's exported in the shell
(INFPROV_SANDBOX_ID and the rest, INFPROV_HOME), the sandbox fixture would otherwise reset that sandbox's EC2
endpoint and release its hosts, and every shard would share it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

USERS_OWN = {"INFPROV_SANDBOX_ID": "usersown", "INFPROV_SANDBOX_SUBNET": "10.200.0.0/24",
             "INFPROV_SANDBOX_DIR": "/nonexistent/usersown", "INFPROV_SANDBOX_EC2_PORT": "5999",
             "INFPROV_HOME": "/nonexistent/home", "INFPROV_NO_CACHE": "0"}
# what pytest does first with tests/conftest.py: import it; then what the tests would see
PROBE = ("import json, os, tests.conftest as c; "
         "print(json.dumps({'env': {k: v for k, v in os.environ.items() if k.startswith('INFPROV_')}, "
         "'sandbox': c.TEST_SANDBOX}))")


def test_a_callers_sandbox_and_home_never_reach_the_tests() -> None:
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, **USERS_OWN, "INFPROV_TEST_REPEAT": "1"}
    env.pop("INFPROV_TEST_SHARD", None)
    run = subprocess.run([sys.executable, "-c", PROBE], cwd=root, env=env, capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stderr
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    for key, value in USERS_OWN.items():
        assert seen["env"].get(key) != value, key
    assert seen["env"]["INFPROV_NO_CACHE"] == "1"
    assert seen["sandbox"]["INFPROV_SANDBOX_ID"] == "infpts"
    assert seen["env"]["INFPROV_TEST_REPEAT"] == "1"  # the runner's own knobs stay
