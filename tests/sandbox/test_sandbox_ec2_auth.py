"""The sandbox's EC2 endpoint takes only calls signed with its own credentials (issue 23, item 13).

Before, moto answered anyone on the machine: an unprivileged local user terminated an instance. Now the
endpoint checks each call's SigV4 signature against credentials made at its start in the sandbox's private
folder (root only), and moto's own pages want the secret key in a header.
"""

from __future__ import annotations

import os
import stat
import subprocess
import urllib.error
import urllib.request
from typing import Any

import pytest

pytestmark = pytest.mark.sandbox


def _client(endpoint: str, access_key: str, secret_key: str) -> Any:
    import boto3

    return boto3.client("ec2", region_name="us-east-1", endpoint_url=endpoint, aws_access_key_id=access_key,
                        aws_secret_access_key=secret_key)


def test_only_the_sandboxs_own_credentials_are_taken(sandbox_status: dict[str, Any]) -> None:
    from botocore.exceptions import ClientError

    from infprov.sandbox import core

    endpoint = sandbox_status["ec2_endpoint"]
    access_key, secret_key = core.ec2_credentials()
    assert _client(endpoint, access_key, secret_key).describe_regions()["Regions"]
    for ak, sk, why in (("testing", "testing", "the access key is not the sandbox's"),
                        (access_key, "not-the-secret", "the signature does not match")):
        with pytest.raises(ClientError) as err:
            _client(endpoint, ak, sk).describe_instances()
        assert err.value.response["Error"]["Code"] == "AuthFailure"
        assert why in err.value.response["Error"]["Message"]
    # moto's own pages: the key in a header, or nothing
    with pytest.raises(urllib.error.HTTPError) as page:
        urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"), timeout=10)
    assert page.value.code == 403


def test_the_credentials_are_root_only_and_another_user_is_refused(sandbox_status: dict[str, Any]) -> None:
    from infprov.sandbox import core

    folder = core.private_dir() / "ec2"
    path = folder / "credentials.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.stat().st_uid == 0
    assert stat.S_IMODE(core.private_dir().stat().st_mode) == 0o700
    # an unprivileged user on the machine, as in the audit: it cannot read them, and a call without them
    # (what it can send) is refused, its terminate included
    nobody = ["runuser", "-u", "nobody", "--"]
    read = subprocess.run([*nobody, "cat", str(path)], capture_output=True, text=True, timeout=30)
    assert read.returncode != 0 and "Permission denied" in read.stderr
    form = "Action=TerminateInstances&InstanceId.1=i-0123456789abcdef0&Version=2016-11-15"
    call = subprocess.run([*nobody, "curl", "-s", "-o", "-", "-w", "%{http_code}", "-X", "POST", "-d", form,
                           sandbox_status["ec2_endpoint"] + "/"], capture_output=True, text=True, timeout=30,
                          env={**os.environ, "HOME": "/"})
    assert call.stdout.endswith("403") and "AuthFailure" in call.stdout, call
