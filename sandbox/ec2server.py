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


def watch_power(port: int, every: float = 2.0) -> None:
    """Forever: an instance whose sandbox host powered itself off is terminated and its host freed."""
    import boto3

    from infprov.sandbox import core

    ec2 = boto3.client("ec2", region_name="us-east-1", endpoint_url=f"http://127.0.0.1:{port}",
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    while True:
        time.sleep(every)
        try:
            for instance_id in core.powered_off():
                ec2.terminate_instances(InstanceIds=[instance_id])
                print(f"infprov: {instance_id} powered itself off: terminated", file=sys.stderr, flush=True)
                core.release_host(instance_id)
        except Exception as exc:  # noqa: BLE001 - the watch must outlive any one bad round; logged
            print(f"infprov: power watch: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)


def main(argv: list[str]) -> None:
    from moto import server

    honour_client_tokens()
    if "--watch-sandbox-hosts" in argv:
        argv = [a for a in argv if a != "--watch-sandbox-hosts"]
        port = int(argv[argv.index("-p") + 1])
        threading.Thread(target=watch_power, args=(port,), daemon=True, name="power-watch").start()
    server.main(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
