"""The Triton probe's pure parts: what a host prints is checked field by field, the command quotes its model,
and the status table's cell says what was found (issue 25, item 14)."""

from __future__ import annotations

import json
import shlex

import pytest

from infprov.provision import health
from infprov.provision.health import Health, parse

MODEL = "rn50-4neuroncores-default"


def _answer(**fields: object) -> str:
    doc = {"server": 200, "server_error": "", "model": 200, "metrics": 200, "requests": 7, **fields}
    return json.dumps(doc) + "\n"


def test_a_serving_host() -> None:
    h = parse(MODEL, 0, _answer(), "")
    assert h == Health(True, True, MODEL, True, 7, "")
    assert h.summary() == "ready, 7 req"


def test_a_host_where_nothing_listens() -> None:
    h = parse(MODEL, 0, _answer(server=0, server_error="ConnectionRefusedError", model=0, requests=None), "")
    assert h.reachable and h.server_ready is False and h.requests is None
    assert h.summary() == "not serving"
    assert h.error == "nothing answers on 127.0.0.1:8000 (ConnectionRefusedError)"


def test_a_server_not_ready_and_a_model_not_ready() -> None:
    assert parse(MODEL, 0, _answer(server=503), "").error == "/v2/health/ready answered 503"
    assert parse(MODEL, 0, _answer(model=400), "").summary() == "model NOT ready"
    assert parse(MODEL, 0, _answer(requests=None), "").summary() == "ready, no metrics"


@pytest.mark.parametrize("out", [
    "", "not json\n", "[1, 2]\n", json.dumps({"server": "200", "model": 200}) + "\n",
    json.dumps({"server": 200}) + "\n", "{" + "x" * 5000 + "}\n",
])
def test_output_that_is_no_answer_is_an_error_not_a_crash(out: str) -> None:
    h = parse(MODEL, 0, out, "")
    assert h.reachable and h.server_ready is None and h.error


@pytest.mark.parametrize("requests", [-1, True, 1.5, "12", [3]])
def test_a_request_count_that_is_no_count_is_left_out(requests: object) -> None:
    assert parse(MODEL, 0, _answer(requests=requests), "").requests is None


def test_a_failed_probe_shows_its_last_line_as_one_printable_line() -> None:
    h = parse(MODEL, 127, "", "first\nbash: python3: command not found\x1b[31m\n")
    assert h.reachable and h.server_ready is None
    assert h.error == "the probe failed: bash: python3: command not found [31m"
    long = parse(MODEL, 1, "", "y" * 500)
    assert len(long.error) <= 120 and long.error.endswith("...")


def test_the_command_quotes_the_model() -> None:
    hostile = "m'; touch /tmp/pwned; echo '"
    words = shlex.split(health.command(hostile))
    assert words[:2] == ["python3", "-c"] and words[3] == hostile and len(words) == 4
    assert health.REQUESTS_METRIC in words[2]


def test_unreachable_summary_and_table_cell() -> None:
    from infprov.provision.render import _triton_cell

    h = Health(False, None, MODEL, None, None, "ubuntu@10.0.0.1:22: no answer within 5 s")
    assert h.summary() == "unreachable"
    assert _triton_cell(h.to_dict()) == h.summary()
    assert _triton_cell(None) == "-"
