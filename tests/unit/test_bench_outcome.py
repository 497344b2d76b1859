"""bench's typed outcome (lifecycle.BenchOutcome): which error a run ends with, from its hosts' parts."""

from __future__ import annotations

from pathlib import Path

from infprov.provision.bench import HostRun
from infprov.provision.lifecycle import BenchOutcome


def _outcome(runs: list[HostRun], partial: bool = False) -> BenchOutcome:
    return BenchOutcome(Path("/runs/bench-1"), tuple(runs), {"partial": partial})


def test_a_run_whose_hosts_all_measured_ends_without_an_error() -> None:
    assert _outcome([HostRun("i-1", "10.0.0.1", [{}]), HostRun("i-2", "10.0.0.2", [{}])]).error() is None


def test_one_host_failing_keeps_the_others_and_names_it() -> None:
    error = _outcome([HostRun("i-1", "10.0.0.1", [{}]), HostRun("i-2", "10.0.0.2", [], error="ssh: refused")]).error()
    assert error is not None
    assert str(error) == "1 of 2 host(s) failed: ssh: refused"
    assert error.hint == "what the others measured is in /runs/bench-1"


def test_every_host_failing_points_at_the_runs_files() -> None:
    error = _outcome([HostRun("i-1", "10.0.0.1", [], error="boom")]).error()
    assert error is not None and error.hint == "the run's files are in /runs/bench-1"


def test_a_host_error_is_shown_without_its_control_characters() -> None:
    error = _outcome([HostRun("i-1", "10.0.0.1", [], error="bad\x1b[31m red\nline")]).error()
    assert error is not None and "\x1b" not in str(error) and "\n" not in str(error)


def test_an_interrupted_run_says_what_was_saved() -> None:
    outcome = _outcome([HostRun("i-1", "10.0.0.1", [{}], partial=True)], partial=True)
    error = outcome.error()
    assert outcome.partial and error is not None
    assert str(error) == "the run was interrupted; what was measured is saved (partial) in /runs/bench-1"
