"""The real AWS launch path: launch tokens across spent attempts, zone failover without botocore's
retries (against a small EC2 stand-in over HTTP on 127.0.0.1), and the AMI search and Inf1 verdict."""

from __future__ import annotations

import threading
import time
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import botocore.config
import pytest

from infprov.provision import ec2
from infprov.provision.ec2 import Ec2ApiError
from infprov.provision.providers import AwsProvider
from tests.unit.test_cloud_launch import (
    EC2_NS,
    IMAGE,
    REGION,
    TARGETS,
    _launch,
)

# ---------------------------------------------------------------- a provider that keeps tokens as EC2 does


# ---------------------------------------------------------------- an EC2 stand-in over real HTTP


class Ec2Http:
    """A tiny EC2 Query API on 127.0.0.1 that counts requests: RunInstances answers with an EC2 error
    XML and HTTP status for the subnets in `errors` (or for the next `throttle` calls), and keeps
    tokens as EC2 does; DescribeInstances answers with nothing."""

    def __init__(self) -> None:
        self.requests: list[dict[str, str]] = []
        self.errors: dict[str, tuple[int, str]] = {}
        self.throttle = 0
        self.drop_next_answer = False
        self.launched: dict[str, str] = {}  # token -> instance id
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                form = dict(urllib.parse.parse_qsl(body))
                owner.requests.append(form)
                status, text = owner.answer(form)
                if status == 0:  # the request was carried out, the answer is lost
                    self.close_connection = True
                    return
                data = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/xml;charset=UTF-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def answer(self, form: dict[str, str]) -> tuple[int, str]:
        action = form.get("Action")
        if action == "DescribeInstances":
            return 200, f'<DescribeInstancesResponse xmlns="{EC2_NS}"><requestId>r</requestId>' \
                        "<reservationSet/></DescribeInstancesResponse>"
        if action != "RunInstances":
            return 400, _error_xml("InvalidAction", f"{action} is not served here")
        if self.throttle:
            self.throttle -= 1
            return 503, _error_xml("RequestLimitExceeded", "Request limit exceeded.")
        if form.get("SubnetId") in self.errors:
            status, code = self.errors[form["SubnetId"]]
            return status, _error_xml(code, "We currently do not have sufficient inf1.6xlarge capacity in the "
                                      "Availability Zone you requested.")
        token = form["ClientToken"]
        iid = self.launched.setdefault(token, f"i-{len(self.launched):017x}")
        if self.drop_next_answer:
            self.drop_next_answer = False
            return 0, ""
        return 200, (
            f'<RunInstancesResponse xmlns="{EC2_NS}"><requestId>r</requestId><reservationId>r-1</reservationId>'
            f"<ownerId>123456789012</ownerId><instancesSet><item><instanceId>{iid}</instanceId>"
            f"<instanceType>inf1.6xlarge</instanceType>"
            f"<instanceState><code>0</code><name>pending</name></instanceState><clientToken>{token}</clientToken>"
            "</item></instancesSet></RunInstancesResponse>"
        )

    def run_instances_by_subnet(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for form in self.requests:
            if form.get("Action") == "RunInstances":
                counts[form["SubnetId"]] = counts.get(form["SubnetId"], 0) + 1
        return counts


def _error_xml(code: str, message: str) -> str:
    return (f'<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>{code}</Code>'
            f"<Message>{message}</Message></Error></Errors><RequestID>r</RequestID></Response>")


@pytest.fixture()
def ec2_http(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Ec2Http]:
    for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_EC2", "AWS_MAX_ATTEMPTS",
                "AWS_RETRY_MODE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    server = Ec2Http()
    server.thread.start()
    try:
        yield server
    finally:
        server.server.shutdown()
        server.server.server_close()


def _http_provider(server: Ec2Http) -> AwsProvider:
    return AwsProvider(REGION, endpoint_url=server.url, access_key="testing", secret_key="testing")


def test_a_full_zone_is_left_after_one_call(ec2_http: Ec2Http, infprov_home: Path) -> None:
    ec2_http.errors["subnet-aaaa"] = (500, "InsufficientInstanceCapacity")
    prov = _http_provider(ec2_http)
    started = time.monotonic()
    ids = _launch(prov, targets=TARGETS)
    elapsed = time.monotonic() - started
    assert ec2_http.run_instances_by_subnet() == {"subnet-aaaa": 1, "subnet-bbbb": 1}
    assert len(ids) == 1 and elapsed < 5, elapsed


def test_botocore_standard_mode_would_retry_that_500(ec2_http: Ec2Http) -> None:
    """The premise: botocore's standard mode retries InsufficientInstanceCapacity's HTTP 500 (one
    retry here, to keep the backoff short; infprov's main client makes up to eight)."""
    ec2_http.errors["subnet-aaaa"] = (500, "InsufficientInstanceCapacity")
    two = ec2.retry_config().merge(botocore.config.Config(retries={"total_max_attempts": 2, "mode": "standard"}))
    client = boto3.session.Session().client("ec2", region_name=REGION, endpoint_url=ec2_http.url, config=two,
                                            aws_access_key_id="testing", aws_secret_access_key="testing")
    with pytest.raises(client.exceptions.ClientError):
        client.run_instances(ImageId=IMAGE["ImageId"], MinCount=1, MaxCount=1, SubnetId="subnet-aaaa",
                             ClientToken="t")
    assert ec2_http.run_instances_by_subnet() == {"subnet-aaaa": 2}


def test_only_run_instances_goes_without_botocore_retries(ec2_http: Ec2Http) -> None:
    prov = _http_provider(ec2_http)
    # botocore turns a client config's max_attempts (retries) into total_max_attempts (requests)
    assert prov.launch_client.meta.config.retries == {"total_max_attempts": 1, "mode": "standard"}
    assert prov.client.meta.config.retries == {"total_max_attempts": 9, "mode": "standard"}
    assert prov.launch_client.meta.config.read_timeout == prov.client.meta.config.read_timeout == 60


def test_a_throttled_launch_is_retried_by_infprov_with_the_same_token(ec2_http: Ec2Http) -> None:
    ec2_http.throttle = 2
    prov = _http_provider(ec2_http)
    slept: list[float] = []
    prov.sleep = slept.append
    instances = prov.run_instances(ImageId=IMAGE["ImageId"], MinCount=1, MaxCount=1, SubnetId="subnet-aaaa",
                                   ClientToken="infprov-t1")
    runs = [f for f in ec2_http.requests if f["Action"] == "RunInstances"]
    assert len(runs) == 3 and {f["ClientToken"] for f in runs} == {"infprov-t1"}
    assert len(slept) == 2 and slept[0] <= 1.0 < slept[1] * 2 and len(instances) == 1


def test_a_lost_answer_is_retried_with_the_same_token_and_launches_once(ec2_http: Ec2Http) -> None:
    ec2_http.drop_next_answer = True
    prov = _http_provider(ec2_http)
    prov.sleep = lambda s: None
    (inst,) = prov.run_instances(ImageId=IMAGE["ImageId"], MinCount=1, MaxCount=1, SubnetId="subnet-aaaa",
                                 ClientToken="infprov-t2")
    runs = [f for f in ec2_http.requests if f["Action"] == "RunInstances"]
    assert len(runs) == 2 and runs[0]["ClientToken"] == runs[1]["ClientToken"]
    assert list(ec2_http.launched.values()) == [inst.id]


def test_infprov_retries_give_up_and_capacity_is_never_retried(ec2_http: Ec2Http) -> None:
    ec2_http.throttle = 10
    prov = _http_provider(ec2_http)
    prov.sleep = lambda s: None
    with pytest.raises(Ec2ApiError) as err:
        prov.run_instances(ImageId=IMAGE["ImageId"], MinCount=1, MaxCount=1, SubnetId="subnet-aaaa",
                           ClientToken="infprov-t3")
    assert err.value.code == "RequestLimitExceeded" and err.value.status == 503
    assert len(ec2_http.requests) == 1 + len(ec2.LAUNCH_RETRY_DELAYS)
    assert not ec2.launch_retryable("InsufficientInstanceCapacity", 500)
    assert not ec2.launch_retryable("InsufficientCapacity", 503)
    assert ec2.launch_retryable("InternalError", 500) and ec2.launch_retryable("Unavailable", 503)
    assert not ec2.launch_retryable("VcpuLimitExceeded", 400)


# ---------------------------------------------------------------- AMI search


# ---------------------------------------------------------------- the Inf1 verdict


