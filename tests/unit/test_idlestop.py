"""`up --idle-stop`: the host-side watch's reading and clock, the options and the tag (issue 25, item 13)."""

from __future__ import annotations

import shlex

import pytest

from infprov.floor.errors import UsageError
from infprov.provision import idlestop, idlewatch

PAGE = """# HELP nv_inference_request_success Number of successful inference requests, all batch sizes
# TYPE nv_inference_request_success counter
nv_inference_request_success{model="a",version="1"} 12
nv_inference_request_success{model="b",version="1"} 3
nv_inference_request_failure{model="a",version="1"} 40
nv_inference_request_success_total 99
nv_inference_request_success{model="c",version="1"} garbage
nv_inference_count{model="a",version="1"} 192
"""


def test_served_sums_successful_requests_only() -> None:
    assert idlewatch.served(PAGE) == 15
    assert idlewatch.served("") == 0


def test_the_clock_starts_over_on_any_change_and_silence_counts_as_idle() -> None:
    state = {"requests": None, "since": 0.0}
    assert not idlewatch.step(state, None, 30, 60)  # Triton silent: nothing served, the clock runs
    assert idlewatch.step(state, None, 60, 60)
    state = {"requests": None, "since": 0.0}
    assert not idlewatch.step(state, 5, 50, 60)  # a first reading starts the clock
    assert not idlewatch.step(state, 5, 100, 60)
    assert not idlewatch.step(state, 6, 105, 60)  # a request served
    assert not idlewatch.step(state, 0, 150, 60)  # Triton restarted: its counters began again
    assert not idlewatch.step(state, None, 200, 60)
    assert idlewatch.step(state, None, 210, 60)


def test_options() -> None:
    assert idlestop.parse("30m") == 1800 and idlestop.parse("1h30m") == 5400
    assert idlestop.check_options(None, False, 3600) is None
    assert idlestop.check_options(1800, False, None) == idlestop.STOP
    assert idlestop.check_options(1800, True, 3600) == idlestop.TERMINATE
    with pytest.raises(UsageError, match="--down goes with --idle-stop"):
        idlestop.check_options(None, True, None)
    with pytest.raises(UsageError, match="--auto-teardown must terminate"):
        idlestop.check_options(1800, False, 3600)
    with pytest.raises(UsageError, match="--idle-stop 'soon' is not a duration"):
        idlestop.parse("soon")


def test_the_tag_round_trips_and_odd_values_are_ignored() -> None:
    value = idlestop.tag_value(1800, idlestop.STOP)
    assert value == "30m stop" and idlestop.read_tag({idlestop.TAG: value}) == (1800, "stop")
    assert idlestop.describe(value) == "idle 30m -> stop"
    for odd in ("", "30m", "0m stop", "30m reboot", "30m stop; rm -rf /", "999999m stop"):
        assert idlestop.read_tag({idlestop.TAG: odd}) is None
        assert idlestop.describe(odd) == ""


def test_the_start_command_replaces_only_its_own_watch() -> None:
    cmd = idlestop.start_command(60)
    assert "--idle 60 --every 6 " in cmd and "grep -qs idlewatch.py" in cmd and "setsid nohup python3" in cmd
    shlex.split(cmd)  # well-formed for a POSIX shell
    assert idlestop.every(60) == 6 and idlestop.every(7 * 86400) == idlestop.MAX_EVERY and idlestop.every(10) == 2


def test_an_existing_cluster_is_not_left_contradicting_itself() -> None:
    from datetime import datetime, timedelta, timezone

    from infprov.provision import autoteardown

    now = datetime(2026, 12, 7, 12, 0, tzinfo=timezone.utc)
    later = {autoteardown.TAG: autoteardown.deadline_tag(now + timedelta(hours=2))}
    past = {autoteardown.TAG: autoteardown.deadline_tag(now - timedelta(hours=2))}
    stopping = {idlestop.TAG: "30m stop"}
    with pytest.raises(UsageError, match="has an auto-teardown deadline"):
        idlestop.check_cluster("c", [later], (1800, idlestop.STOP), None, now)
    with pytest.raises(UsageError, match="stops itself when idle"):
        idlestop.check_cluster("c", [stopping], None, 3600, now)
    for tags, idle, lifetime in (([past], (1800, idlestop.STOP), None), ([later], (1800, idlestop.TERMINATE), None),
                                 ([stopping], (1800, idlestop.TERMINATE), 3600), ([{}], None, 3600),
                                 ([{autoteardown.TAG: autoteardown.CANCELLED}], (1800, idlestop.STOP), None)):
        idlestop.check_cluster("c", tags, idle, lifetime, now)  # nothing to refuse
