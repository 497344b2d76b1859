"""`up --auto-teardown`: the deadline parsed, tagged, shown by `status`, moved by `up` again, and in the
sandbox really ending the instance when its host powers itself off."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from typer.testing import CliRunner

from infprov.floor.errors import UsageError
from infprov.provision import autoteardown
from infprov.provision.cli import app

runner = CliRunner()
CLUSTER = "autotd"


@pytest.mark.parametrize(("text", "seconds"), [("4h", 14400), ("90m", 5400), ("1h30m", 5400), ("2d", 172800),
                                               ("1m", 60), (" 7d ", 604800)])
def test_durations(text: str, seconds: int) -> None:
    assert autoteardown.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "4", "4x", "0m", "8d", "-1h", "1h 30m", "30s", "h", "1.5h", "200d"])
def test_bad_durations_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError) as err:
        autoteardown.parse_duration(text)
    assert err.value.hint


def test_a_bad_duration_is_refused_before_anything_is_made(infprov_home: Path) -> None:
    result = runner.invoke(app, ["up", "--sandbox", "--type", "inf1.xlarge", "--auto-teardown", "soon", "--yes"])
    assert result.exit_code == 2
    [line] = result.stderr.strip().splitlines()
    assert "--auto-teardown 'soon' is not a duration" in line and "4h" in line
    assert not (infprov_home / "inventory.yml").exists()


def test_deadline_tag_round_trip_and_description() -> None:
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    tag = autoteardown.deadline_tag(now + timedelta(hours=2, minutes=5))
    assert tag == "2026-01-02T05:09:05Z"
    back = autoteardown.read_deadline({autoteardown.TAG: tag})
    assert back == now + timedelta(hours=2, minutes=5)
    assert autoteardown.describe(back, now) == "2026-01-02T05:09:05Z (in 2h05m)"
    assert autoteardown.describe(back, now + timedelta(days=1)).endswith("(due)")
    assert autoteardown.read_deadline({autoteardown.TAG: "next tuesday"}) is None
    assert autoteardown.shutdown_command(90) == "sudo -n shutdown -P +90"




@pytest.mark.parametrize(("args", "fragment"), [
    (["auto-teardown"], "give one of --in DURATION or --cancel"),
    (["auto-teardown", "--in", "2h", "--cancel"], "give one of --in DURATION or --cancel"),
    (["auto-teardown", "--in", "soon"], "is not a duration"),
    (["auto-teardown", "a", "--name", "b", "--cancel"], "disagree"),
    (["auto-teardown", "Bad;name", "--cancel"], "cluster name"),
    (["auto-teardown", "--cancel"], "no hosts in"),
])
def test_auto_teardown_bad_input_is_one_line(infprov_home: Path, args: list[str], fragment: str) -> None:
    """Moving or cancelling the deadline without `up` (issue 25, item 7): bad input says so, makes nothing."""
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error:") and fragment in line and "hint:" in line
    assert not (infprov_home / "inventory.yml").exists()
