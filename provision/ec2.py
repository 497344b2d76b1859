"""The EC2 provider: the only module that speaks boto3; everything it returns is plain data."""

from __future__ import annotations

import base64
import ipaddress
import os
import random
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from types import ModuleType
from typing import TYPE_CHECKING, Any

from infprov.floor.errors import InfprovError

if TYPE_CHECKING:
    import botocore.config
    import botocore.exceptions


@cache
def _sdk() -> tuple[ModuleType, ModuleType]:
    """boto3 and botocore, imported here on first use only (about 0.1 s): the one place infprov loads them, so
    every module may import this one at its top and a command that never calls EC2 never pays for them."""
    import boto3
    import botocore.config
    import botocore.exceptions

    return boto3, botocore


def _errors() -> ModuleType:
    return _sdk()[1].exceptions


# Throttling and 5xx are retried by botocore itself (standard mode: exponential backoff with jitter
# and a retry quota); infprov's own logic only handles what needs a decision, e.g. a full zone.
@cache
def retry_config() -> botocore.config.Config:
    return _sdk()[1].config.Config(retries={"max_attempts": 8, "mode": "standard"}, connect_timeout=10,
                                   read_timeout=60)


# RunInstances goes through a client of its own that botocore never retries. EC2 answers a full zone
# (InsufficientInstanceCapacity) with HTTP 500, and botocore's standard mode retries every 500:
# botocore 1.43.11, botocore/retries/standard.py, TransientRetryableChecker._TRANSIENT_STATUS_CODES =
# [500, 502, 503, 504] (the legacy mode likewise: botocore/data/_retry.json, "general_server_error":
# http_status_code 500). retry_config()'s max_attempts 8 counts retries (botocore/config.py; args.py
# turns it into total_max_attempts 9), so that is 8 backed-off retries, up to a minute and more, of a
# zone that has no capacity before infprov may try the next one. Hence total_max_attempts 1 (one
# request, no retry; "max_attempts": 1 would still retry once). Ec2Provider.run_instances retries by
# itself what is worth retrying (throttling, other 5xx, a lost connection) and hands capacity errors
# back at once; a retry resends the same ClientToken, so it can never launch twice.
@cache
def launch_config() -> botocore.config.Config:
    return retry_config().merge(_sdk()[1].config.Config(retries={"total_max_attempts": 1, "mode": "standard"}))


LAUNCH_RETRY_DELAYS = (1.0, 2.0, 4.0)  # seconds before the 2nd, 3rd and 4th attempt (times a jitter)
# EC2's own throttling code (RequestLimitExceeded) and the generic ones botocore treats as throttling
# or transient (botocore/retries/standard.py: ThrottledRetryableChecker, TransientRetryableChecker).
LAUNCH_RETRY_CODES = frozenset({
    "RequestLimitExceeded", "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottled",
    "RequestThrottledException", "EC2ThrottledException", "TooManyRequestsException", "RequestTimeout",
    "RequestTimeoutException", "PriorRequestNotComplete", "InternalError", "InternalFailure",
    "ServerInternal", "ServiceUnavailable", "Unavailable",
})
# Images per DescribeImages page: AWS recommends paginated DescribeImages calls, since unpaginated
# ones are prone to throttling and timeouts; 200 is within any page size EC2's describe calls take.
IMAGE_PAGE_SIZE = 200


class Ec2ApiError(Exception):
    """An EC2 API error, reduced to its code and message so callers never import botocore."""

    def __init__(self, operation: str, code: str, message: str, status: int = 0) -> None:
        super().__init__(f"{operation}: {code}: {message}")
        self.operation = operation
        self.code = code
        self.message = message
        self.status = status  # the HTTP status EC2 answered with, 0 if unknown


def launch_retryable(code: str, status: int) -> bool:
    """Whether infprov itself retries a RunInstances error: throttling and passing server trouble, yes;
    a zone without capacity (InsufficientInstanceCapacity and kin, HTTP 500 too), never: that one moves
    to the next zone at once."""
    if code.startswith("Insufficient"):
        return False
    return code in LAUNCH_RETRY_CODES or status in (502, 503, 504)


def tag_list(tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def tag_map(resource: Mapping[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in resource.get("Tags", []) or []}


_INSTANCE_ID = re.compile(r"i-[0-9a-f]{8,17}")
_INSTANCE_TYPE = re.compile(r"[a-z][a-z0-9-]*\.[a-z0-9-]+")
_ZONE = re.compile(r"[a-z0-9-]{1,40}")
INSTANCE_STATES = frozenset({"pending", "running", "shutting-down", "terminated", "stopping", "stopped"})


@dataclass(frozen=True)
class Instance:
    """One EC2 instance as infprov uses it, read from DescribeInstances or RunInstances and checked on
    the way in: an answer from the API is data from outside, and these fields reach shells, SSH and the
    inventory."""

    id: str
    state: str
    instance_type: str
    zone: str = ""
    public_ip: str | None = None
    private_ip: str | None = None
    key_name: str | None = None
    launch_time: datetime | None = None
    spot: bool = False
    state_reason: str = ""
    client_token: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def address(self) -> str:
        """Where it is reached: its public address, else its private one ("" before it has either)."""
        return self.public_ip or self.private_ip or ""

    @classmethod
    def from_api(cls, raw: Mapping[str, Any]) -> Instance:
        iid = str(raw.get("InstanceId", ""))
        if not _INSTANCE_ID.fullmatch(iid):
            raise _odd(f"an instance id {iid[:40]!r}")
        state = str((raw.get("State") or {}).get("Name", ""))
        if state not in INSTANCE_STATES:
            raise _odd(f"instance {iid} in state {state[:40]!r}")
        itype = str(raw.get("InstanceType", ""))
        if not _INSTANCE_TYPE.fullmatch(itype):
            raise _odd(f"instance {iid} of type {itype[:40]!r}")
        zone = str((raw.get("Placement") or {}).get("AvailabilityZone", ""))
        if zone and not _ZONE.fullmatch(zone):
            raise _odd(f"instance {iid} in zone {zone[:40]!r}")
        launched = raw.get("LaunchTime")
        key = raw.get("KeyName")
        token = raw.get("ClientToken")
        return cls(
            id=iid,
            state=state,
            instance_type=itype,
            zone=zone,
            public_ip=_ip(raw.get("PublicIpAddress"), iid),
            private_ip=_ip(raw.get("PrivateIpAddress"), iid),
            key_name=str(key) if key else None,
            launch_time=launched if isinstance(launched, datetime) else None,
            spot=raw.get("InstanceLifecycle") == "spot",
            state_reason=str((raw.get("StateReason") or {}).get("Message", "")),
            client_token=str(token) if token else None,
            tags=tag_map(raw),
        )


def _ip(value: Any, iid: str) -> str | None:
    if not value:
        return None
    try:
        return str(ipaddress.ip_address(str(value)))
    except ValueError:
        raise _odd(f"instance {iid} at address {str(value)[:40]!r}") from None


def _odd(what: str) -> InfprovError:
    return InfprovError(f"EC2 answered with {what}, which infprov cannot use",
                        "check the endpoint infprov talks to (AWS_ENDPOINT_URL, the profile's endpoint)")


def default_region() -> str | None:
    """AWS_REGION (the other AWS SDKs' variable, which boto3 itself ignores), else boto3's own choice
    (AWS_DEFAULT_REGION, then the profile), if any."""
    return os.environ.get("AWS_REGION") or _sdk()[0].session.Session().region_name


class Ec2Provider:
    """EC2 in one region. endpoint_url None: AWS, or whatever AWS_ENDPOINT_URL(_EC2) names."""

    def __init__(
        self,
        region: str,
        *,
        endpoint_url: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
    ) -> None:
        self.region = region
        kwargs: dict[str, Any] = {"region_name": region}
        if endpoint_url:
            kwargs["endpoint_url"] = endpoint_url
        if access_key and secret_key:
            kwargs["aws_access_key_id"] = access_key
            kwargs["aws_secret_access_key"] = secret_key
        session = _sdk()[0].session.Session()
        self.client: Any = session.client("ec2", config=retry_config(), **kwargs)
        # RunInstances only: no botocore retries (see launch_config); run_instances retries itself.
        self.launch_client: Any = session.client("ec2", config=launch_config(), **kwargs)
        self.sleep: Callable[[float], None] = time.sleep
        self._session, self._client_kwargs = session, kwargs
        self._ecr_client: Any = None

    @property
    def endpoint(self) -> str:
        return str(self.client.meta.endpoint_url)

    # ------------------------------------------------------------ the one call path

    def _call(self, operation: str, **params: Any) -> dict[str, Any]:
        return self._invoke(self.client, operation, params)

    def _invoke(
        self,
        client: Any,
        operation: str,
        params: Mapping[str, Any],
        passthrough: tuple[type[BaseException], ...] = (),
    ) -> dict[str, Any]:
        """One call; errors become Ec2ApiError or a one-line InfprovError, except those in passthrough."""
        method = getattr(client, operation)
        try:
            result: dict[str, Any] = method(**params)
            return result
        except passthrough:
            raise
        except _errors().ClientError as exc:
            err = exc.response.get("Error", {})
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
            raise Ec2ApiError(
                operation, str(err.get("Code", "Unknown")), str(err.get("Message", exc)), int(status)
            ) from None
        except _errors().BotoCoreError as exc:
            raise self._boto_error(operation, exc) from None

    def ecr_client(self) -> Any:
        """The same region's ECR (the environment cache's control plane), made on first use: most commands
        never touch it. Same endpoint and credentials as EC2 (moto serves both on one port)."""
        if self._ecr_client is None:
            self._ecr_client = self._session.client("ecr", config=retry_config(), **self._client_kwargs)
        return self._ecr_client

    def _ecr_call(self, operation: str, **params: Any) -> dict[str, Any]:
        return self._invoke(self.ecr_client(), operation, params)

    def _boto_error(self, operation: str, exc: botocore.exceptions.BotoCoreError) -> InfprovError:
        if isinstance(exc, _errors().NoCredentialsError):
            return InfprovError(
                "no AWS credentials found",
                "run `aws configure`, set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
                "or use --sandbox",
            )
        if isinstance(exc, _errors().EndpointConnectionError):
            return InfprovError(
                f"cannot reach the EC2 API at {exc.kwargs.get('endpoint_url', self.endpoint)}",
                "check the network, AWS_ENDPOINT_URL and --region",
            )
        return InfprovError(f"EC2 {operation} failed: {exc}", "rerun with --debug for details")

    def _pages(self, operation: str, key: str, **params: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            page = self._call(operation, **params, **({"NextToken": token} if token else {}))
            items.extend(page.get(key, []))
            token = page.get("NextToken")
            if not token:
                return items

    # ------------------------------------------------------------ places

    def zones_offering(self, instance_type: str) -> list[str]:
        offers = self._pages(
            "describe_instance_type_offerings",
            "InstanceTypeOfferings",
            LocationType="availability-zone",
            Filters=[{"Name": "instance-type", "Values": [instance_type]}],
        )
        return sorted({o["Location"] for o in offers})

    def default_vpc(self) -> str | None:
        vpcs = self._call("describe_vpcs", Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"]
        return str(vpcs[0]["VpcId"]) if vpcs else None

    def default_subnets(self, vpc_id: str) -> dict[str, str]:
        """Availability zone -> the VPC's default subnet there."""
        subnets = self._pages(
            "describe_subnets",
            "Subnets",
            Filters=[
                {"Name": "vpc-id", "Values": [vpc_id]},
                {"Name": "default-for-az", "Values": ["true"]},
            ],
        )
        return {s["AvailabilityZone"]: s["SubnetId"] for s in subnets}

    # ------------------------------------------------------------ images

    def find_images(self, owners: Sequence[str], name_patterns: Sequence[str]) -> list[dict[str, Any]]:
        """Every available image of these owners whose name matches, deprecated ones included.

        AWS deprecates a DLAMI some time after its release, and DescribeImages leaves deprecated images
        out unless IncludeDeprecated is set; the last DLAMIs that drive Inf1 (release 2.26.0 and
        before) are exactly the ones that get deprecated. Deprecated images still launch. The call is
        paginated (MaxResults/NextToken): botocore 1.43.11, botocore/data/ec2/2016-11-15/service-2.json
        gives DescribeImagesRequest IncludeDeprecated, MaxResults and NextToken, and
        paginators-1.json lists DescribeImages (NextToken -> NextToken, limit MaxResults, Images).
        """
        return self._pages(
            "describe_images",
            "Images",
            Owners=list(owners),
            IncludeDeprecated=True,
            MaxResults=IMAGE_PAGE_SIZE,
            Filters=[
                {"Name": "name", "Values": list(name_patterns)},
                {"Name": "state", "Values": ["available"]},
            ],
        )

    def image(self, image_id: str) -> dict[str, Any] | None:
        try:
            images = self._call("describe_images", ImageIds=[image_id], IncludeDeprecated=True)["Images"]
        except Ec2ApiError as exc:
            if exc.code.startswith(("InvalidAMIID", "InvalidImage")):
                return None
            raise
        return images[0] if images else None

    # ------------------------------------------------------------ instances

    def instances(self, filters: Mapping[str, Iterable[str]]) -> list[Instance]:
        reservations = self._pages(
            "describe_instances",
            "Reservations",
            Filters=[{"Name": k, "Values": list(v)} for k, v in filters.items()],
        )
        return [Instance.from_api(i) for r in reservations for i in r.get("Instances", [])]

    def run_instances(self, **params: Any) -> list[Instance]:
        """RunInstances through the client botocore never retries; throttling and passing server or
        connection trouble are retried here (LAUNCH_RETRY_DELAYS), a full zone is answered at once.

        Every attempt sends the same parameters, ClientToken included, so EC2 answers a repeat of a
        request that did launch (the answer was lost, say) with the same instances.
        """
        transient = (_errors().ConnectionError, _errors().HTTPClientError)
        delays = list(LAUNCH_RETRY_DELAYS)
        while True:
            try:
                answer = self._invoke(self.launch_client, "run_instances", params, transient)
                return [Instance.from_api(i) for i in answer["Instances"]]
            except Ec2ApiError as exc:
                if not delays or not launch_retryable(exc.code, exc.status):
                    raise
            except transient as exc:
                # a certificate problem does not heal by waiting
                if not delays or isinstance(exc, _errors().SSLError):
                    raise self._boto_error("run_instances", exc) from None
            self.sleep(delays.pop(0) * random.uniform(0.5, 1.0))

    def console_output(self, instance_id: str) -> str:
        """The instance's console text (cloud-init prints the SSH host key fingerprints there), or ""."""
        try:
            data = self._call("get_console_output", InstanceId=instance_id, Latest=True)
        except Ec2ApiError:
            try:
                data = self._call("get_console_output", InstanceId=instance_id)
            except Ec2ApiError:
                return ""
        text = data.get("Output") or ""
        if not text:
            return ""
        try:
            return base64.b64decode(text).decode("utf-8", "replace")
        except ValueError:
            return str(text)

    def start_instances(self, ids: Sequence[str]) -> None:
        self._call("start_instances", InstanceIds=list(ids))

    def set_shutdown_behavior(self, instance_id: str, behavior: str) -> None:
        """What EC2 does when the instance powers itself off: `stop` or `terminate`."""
        self._call("modify_instance_attribute", InstanceId=instance_id,
                   Attribute="instanceInitiatedShutdownBehavior", Value=behavior)

    def stop_instances(self, ids: Sequence[str]) -> None:
        self._call("stop_instances", InstanceIds=list(ids))

    def terminate_instances(self, ids: Sequence[str]) -> None:
        self._call("terminate_instances", InstanceIds=list(ids))

    def instance_statuses(self, ids: Sequence[str]) -> dict[str, tuple[str, str, str]]:
        """Instance id -> (state, instance status check, system status check)."""
        statuses = self._pages(
            "describe_instance_status",
            "InstanceStatuses",
            InstanceIds=list(ids),
            IncludeAllInstances=True,
        )
        return {
            s["InstanceId"]: (
                s.get("InstanceState", {}).get("Name", "unknown"),
                s.get("InstanceStatus", {}).get("Status", "unknown"),
                s.get("SystemStatus", {}).get("Status", "unknown"),
            )
            for s in statuses
        }

    def spot_price(self, instance_type: str) -> float | None:
        """The lowest current Linux spot price over the region's zones, if EC2 reports one."""
        history = self._call(
            "describe_spot_price_history",
            InstanceTypes=[instance_type],
            ProductDescriptions=["Linux/UNIX", "Linux/UNIX (Amazon VPC)"],
            MaxResults=20,
        ).get("SpotPriceHistory", [])
        prices = [float(h["SpotPrice"]) for h in history if h.get("SpotPrice")]
        return min(prices) if prices else None

    # ------------------------------------------------------------ key pairs

    def key_pair(self, name: str) -> dict[str, Any] | None:
        try:
            pairs = self._call("describe_key_pairs", KeyNames=[name])["KeyPairs"]
        except Ec2ApiError as exc:
            if exc.code == "InvalidKeyPair.NotFound":
                return None
            raise
        return pairs[0] if pairs else None

    def key_pairs(self, filters: Mapping[str, Iterable[str]]) -> list[dict[str, Any]]:
        return self._call(
            "describe_key_pairs", Filters=[{"Name": k, "Values": list(v)} for k, v in filters.items()]
        )["KeyPairs"]

    def import_key_pair(self, name: str, public_key: bytes, tags: Mapping[str, str]) -> None:
        self._call(
            "import_key_pair",
            KeyName=name,
            PublicKeyMaterial=public_key,
            TagSpecifications=[{"ResourceType": "key-pair", "Tags": tag_list(tags)}],
        )

    def delete_key_pair(self, name: str) -> None:
        self._call("delete_key_pair", KeyName=name)

    # ------------------------------------------------------------ security groups

    def security_groups(self, filters: Mapping[str, Iterable[str]]) -> list[dict[str, Any]]:
        return self._pages(
            "describe_security_groups",
            "SecurityGroups",
            Filters=[{"Name": k, "Values": list(v)} for k, v in filters.items()],
        )

    def create_security_group(self, name: str, description: str, vpc_id: str, tags: Mapping[str, str]) -> str:
        return str(
            self._call(
                "create_security_group",
                GroupName=name,
                Description=description,
                VpcId=vpc_id,
                TagSpecifications=[{"ResourceType": "security-group", "Tags": tag_list(tags)}],
            )["GroupId"]
        )

    def authorize_ingress(self, group_id: str, permissions: list[dict[str, Any]]) -> None:
        self._call("authorize_security_group_ingress", GroupId=group_id, IpPermissions=permissions)

    def revoke_ingress(self, group_id: str, permissions: list[dict[str, Any]]) -> None:
        self._call("revoke_security_group_ingress", GroupId=group_id, IpPermissions=permissions)

    def delete_security_group(self, group_id: str) -> None:
        self._call("delete_security_group", GroupId=group_id)

    # ------------------------------------------------------------ volumes and tags

    def volumes(self, filters: Mapping[str, Iterable[str]]) -> list[dict[str, Any]]:
        return self._pages(
            "describe_volumes", "Volumes", Filters=[{"Name": k, "Values": list(v)} for k, v in filters.items()]
        )

    def create_tags(self, resource_ids: Sequence[str], tags: Mapping[str, str]) -> None:
        self._call("create_tags", Resources=list(resource_ids), Tags=tag_list(tags))

    def delete_volume(self, volume_id: str) -> None:
        self._call("delete_volume", VolumeId=volume_id)

    def tagged(self, filters: Mapping[str, Iterable[str]]) -> list[dict[str, Any]]:
        """Every resource carrying matching tags (ResourceId, ResourceType, Key, Value)."""
        return self._pages(
            "describe_tags", "Tags", Filters=[{"Name": k, "Values": list(v)} for k, v in filters.items()]
        )

    # ------------------------------------------------------------ ECR: the environment cache's repository

    def repository(self, name: str) -> dict[str, Any] | None:
        """The repository (repositoryName, repositoryUri, repositoryArn, ...), or None if there is none."""
        try:
            found = self._ecr_call("describe_repositories", repositoryNames=[name])["repositories"]
        except Ec2ApiError as exc:
            if exc.code == "RepositoryNotFoundException":
                return None
            raise
        return found[0] if found else None

    def create_repository(self, name: str, tags: Mapping[str, str]) -> dict[str, Any]:
        """A private repository tagged at creation (ECR authorizes the tags as ecr:TagResource too)."""
        made: dict[str, Any] = self._ecr_call(
            "create_repository", repositoryName=name, tags=tag_list(tags),
            imageScanningConfiguration={"scanOnPush": False},
        )["repository"]
        return made

    def repository_tags(self, arn: str) -> dict[str, str]:
        return tag_map({"Tags": self._ecr_call("list_tags_for_resource", resourceArn=arn).get("tags", [])})

    def repository_images(self, name: str, tag: str | None = None) -> list[dict[str, Any]]:
        """The images in the repository (imageTags, imageSizeInBytes, imagePushedAt, ...), or only the one
        tagged `tag` ([] when it has no such image)."""
        if tag is not None:
            try:
                found: list[dict[str, Any]] = self._ecr_call(
                    "describe_images", repositoryName=name, imageIds=[{"imageTag": tag}])["imageDetails"]
            except Ec2ApiError as exc:
                if exc.code == "ImageNotFoundException":
                    return []
                raise
            return found
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            page = self._ecr_call("describe_images", repositoryName=name, **({"nextToken": token} if token else {}))
            items.extend(page.get("imageDetails", []))
            token = page.get("nextToken")
            if not token:
                return items

    def delete_repository(self, name: str) -> None:
        """The repository and every image in it."""
        self._ecr_call("delete_repository", repositoryName=name, force=True)

    def registry_token(self) -> tuple[str, str, str]:
        """(registry endpoint, user, password) for `docker login`: ECR's authorization token, valid for 12 hours,
        made with this provider's credentials. The password is a secret: it goes to docker on stdin only."""
        data = self._ecr_call("get_authorization_token")["authorizationData"]
        if not data:
            raise InfprovError("ECR gave no authorization token", "check the credentials' ecr:GetAuthorizationToken")
        try:
            user, password = base64.b64decode(str(data[0]["authorizationToken"])).decode().split(":", 1)
        except (ValueError, KeyError, UnicodeDecodeError):
            raise _odd("an ECR authorization token it cannot read") from None
        return str(data[0].get("proxyEndpoint", "")), user, password
