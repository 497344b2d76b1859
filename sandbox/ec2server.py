"""The sandbox's EC2 endpoint process: moto's server, plus what EC2 does that moto lacks."""

from __future__ import annotations

import sys
import threading
import time
from typing import Any


def honour_client_tokens() -> None:
    """RunInstances with a ClientToken already used answers with that launch's instances instead of
    launching again, as EC2 does; other settings under the same token are IdempotentParameterMismatch.

    EC2 documents this ("Ensuring idempotency in Amazon EC2 API requests", EC2 API reference); moto
    5.2 stores the token but launches anew, so a retry after a lost answer would double the instances
    in the sandbox where AWS would not.
    """
    from moto.ec2.exceptions import EC2ClientError
    from moto.ec2.models.instances import InstanceBackend

    if getattr(InstanceBackend.run_instances, "_infprov_tokens", False):
        return
    launch = InstanceBackend.run_instances

    def run_instances(self: Any, image_id: str, count: int, user_data: Any, security_group_names: list[str],
                      **kwargs: Any) -> Any:
        token = kwargs.get("client_token")
        if token:
            for reservation in list(self.reservations.values()):
                instances = reservation.instances
                if instances and all(getattr(i, "client_token", None) == token for i in instances):
                    same = (len(instances) == int(count) and instances[0].image_id == image_id
                            and instances[0].instance_type == kwargs.get("instance_type", instances[0].instance_type))
                    if not same:
                        raise EC2ClientError(
                            "IdempotentParameterMismatch",
                            "The client token you have provided is associated with a resource that is already "
                            "deleted or has other parameters.")
                    return reservation
        return launch(self, image_id, count, user_data, security_group_names, **kwargs)

    run_instances._infprov_tokens = True  # type: ignore[attr-defined]
    InstanceBackend.run_instances = run_instances  # type: ignore[method-assign]


def image_sizes_as_ecr() -> None:
    """DescribeImages' imageSizeInBytes counts the image's layers as pushed, compressed (ECR API reference,
    ImageDetail.imageSizeInBytes: docker compresses layers before a push, so `docker images` shows more; read
    2026-12-07): here the sum of the manifest's layer sizes, which is infprov's reading of it. moto 5.2 reports
    the size of the config blob alone (a few kB for any image)."""
    import json

    from moto.ecr.models import Image

    if getattr(Image.get_image_size_in_bytes, "_infprov_sizes", False):
        return
    moto_size = Image.get_image_size_in_bytes

    def get_image_size_in_bytes(self: Any) -> int | None:
        manifest = json.loads(self.image_manifest)
        layers = manifest.get("layers")
        if isinstance(layers, list) and layers:
            return sum(int(layer.get("size") or 0) for layer in layers)
        size: int | None = moto_size(self)
        return size

    get_image_size_in_bytes._infprov_sizes = True  # type: ignore[attr-defined]
    Image.get_image_size_in_bytes = get_image_size_in_bytes  # type: ignore[method-assign]


def require_credentials(app: Any, access_key: str, secret_key: str) -> Any:
    """moto's WSGI app behind a check: an EC2 call must carry a SigV4 signature made with these credentials,
    and moto's own pages (/moto-api/) the secret key in a header. Anything else is refused (403, AuthFailure),
    so that only who can read the credentials (root: they live in the sandbox's private folder) can use it."""
    import hmac
    import io

    def refuse(start_response: Any, why: str) -> list[bytes]:
        body = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>AuthFailure</Code>"
                f"<Message>infprov sandbox: {why}</Message></Error></Errors><RequestID>infprov</RequestID>"
                "</Response>").encode()
        start_response("403 Forbidden", [("Content-Type", "text/xml"), ("Content-Length", str(len(body)))])
        return [body]

    def wrapped(environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO", "").startswith("/moto-api"):
            given = environ.get("HTTP_X_INFPROV_SANDBOX_KEY", "")
            if not hmac.compare_digest(given.encode(), secret_key.encode()):
                return refuse(start_response, "moto's pages need the sandbox's key")
            return app(environ, start_response)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        environ["wsgi.input"] = io.BytesIO(body)
        why = sigv4_problem(environ, body, access_key, secret_key)
        if why:
            return refuse(start_response, why)
        return app(environ, start_response)

    return wrapped


def sigv4_problem(environ: dict[str, Any], body: bytes, access_key: str, secret_key: str) -> str | None:
    """Why a request's SigV4 signature is not one made with these credentials (None: it is)."""
    import hmac
    import re
    import urllib.parse

    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    found = re.fullmatch(r"AWS4-HMAC-SHA256 Credential=([^/,]+)/(\d{8})/([^/,]+)/([^/,]+)/aws4_request,\s*"
                         r"SignedHeaders=([a-z0-9;._-]+),\s*Signature=([0-9a-f]{64})",
                         environ.get("HTTP_AUTHORIZATION", ""))
    if not found:
        return "the request carries no SigV4 signature"
    key_id, _, region, service, signed, signature = found.groups()
    if not hmac.compare_digest(key_id.encode(), access_key.encode()):
        return "the access key is not the sandbox's"
    special = {"content-type": "CONTENT_TYPE", "content-length": "CONTENT_LENGTH"}
    headers = {name: environ.get(special.get(name, "HTTP_" + name.upper().replace("-", "_")), "")
               for name in signed.split(";")}
    query = environ.get("QUERY_STRING", "")
    url = f"http://{environ.get('HTTP_HOST', '')}{urllib.parse.quote(environ.get('PATH_INFO', '/'))}"
    request = AWSRequest(method=environ.get("REQUEST_METHOD", "GET"), url=url + (f"?{query}" if query else ""),
                         data=body, headers=headers)
    request.context["timestamp"] = headers.get("x-amz-date", "")
    signer = SigV4Auth(Credentials(access_key, secret_key), service, region)
    expected = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
    return None if hmac.compare_digest(expected.encode(), signature.encode()) else "the signature does not match"


def watch_power(port: int, every: float = 2.0, creds: tuple[str, str] = ("testing", "testing")) -> None:
    """Forever: an instance whose sandbox host powered itself off is stopped (its host powered off, its disk
    kept) or terminated (its host freed), as its InstanceInitiatedShutdownBehavior says: EC2's own rule."""
    import boto3

    from infprov.sandbox import core

    ec2 = boto3.client("ec2", region_name="us-east-1", endpoint_url=f"http://127.0.0.1:{port}",
                       aws_access_key_id=creds[0], aws_secret_access_key=creds[1])
    while True:
        time.sleep(every)
        try:
            for instance_id in core.powered_off():
                answer = ec2.describe_instance_attribute(InstanceId=instance_id,
                                                         Attribute="instanceInitiatedShutdownBehavior")
                if answer.get("InstanceInitiatedShutdownBehavior", {}).get("Value") == "stop":
                    core.power_off_host(instance_id)  # off first: EC2 says stopped once the host is off
                    ec2.stop_instances(InstanceIds=[instance_id])
                    print(f"infprov: {instance_id} powered itself off: stopped", file=sys.stderr, flush=True)
                    continue
                ec2.terminate_instances(InstanceIds=[instance_id])
                print(f"infprov: {instance_id} powered itself off: terminated", file=sys.stderr, flush=True)
                core.release_host(instance_id)
        except Exception as exc:  # noqa: BLE001 - the watch must outlive any one bad round; logged
            print(f"infprov: power watch: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)


def main(argv: list[str]) -> None:
    import json

    from moto import server

    honour_client_tokens()
    image_sizes_as_ecr()
    creds = ("testing", "testing")
    if "--require-credentials" in argv:
        at = argv.index("--require-credentials")
        with open(argv[at + 1]) as fh:
            doc = json.load(fh)
        creds = (str(doc["access_key"]), str(doc["secret_key"]))
        argv = argv[:at] + argv[at + 2:]
        run = server.run_simple

        def run_simple(host: str, port: int, app: Any, **kwargs: Any) -> None:
            run(host, port, require_credentials(app, *creds), **kwargs)

        server.run_simple = run_simple  # type: ignore[assignment]
    if "--watch-sandbox-hosts" in argv:
        argv = [a for a in argv if a != "--watch-sandbox-hosts"]
        port = int(argv[argv.index("-p") + 1])
        threading.Thread(target=watch_power, args=(port, 2.0, creds), daemon=True, name="power-watch").start()
    server.main(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
