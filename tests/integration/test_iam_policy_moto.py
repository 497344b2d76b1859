"""The IAM policy in the repository allows every EC2 call infprov makes, names only real actions,
and grants changes only on what infprov tagged."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from infprov.provision import iam

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


# ---------------------------------------------------------------- what RunInstances is allowed to launch
#
# EC2 authorizes RunInstances once per resource the launch uses or makes (the instance, its volumes and
# network interface, the image, subnet, security groups and key pair), each against that resource's ARN
# and condition keys, and the launch goes ahead only if every one is allowed. With TagSpecifications it
# also authorizes ec2:CreateTags on each resource tagged at launch, with ec2:CreateAction = RunInstances.
# Sources: the Service Authorization Reference, "Actions, resources, and condition keys for Amazon EC2"
# (https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonec2.html), and the EC2
# User Guide's "Example policies to control access the Amazon EC2 API"
# (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/ExamplePolicies_EC2.html).
#
# The condition keys the Service Authorization Reference lists for each resource type RunInstances
# authorizes (its resource types table; as cfn-lint 1.51.0's data/AdditionalSpecs/Policies.json, which
# is taken from that reference, records them). A policy key a resource type does not have is never in
# that resource's request context: a condition on it could never hold (or, under Null, always would).
SAR_RESOURCE_KEYS: dict[str, frozenset[str]] = {
    "instance": frozenset({
        "aws:RequestTag/${TagKey}", "aws:ResourceTag/${TagKey}", "aws:TagKeys", "ec2:Attribute",
        "ec2:Attribute/${AttributeName}", "ec2:AvailabilityZone", "ec2:AvailabilityZoneId", "ec2:CpuOptionsAmdSevSnp",
        "ec2:EbsOptimized", "ec2:InstanceAutoRecovery", "ec2:InstanceBandwidthWeighting", "ec2:InstanceID",
        "ec2:InstanceMarketType", "ec2:InstanceMetadataTags", "ec2:InstanceProfile", "ec2:InstanceType",
        "ec2:IsLaunchTemplateResource", "ec2:LaunchTemplate", "ec2:ManagedResourceOperator", "ec2:MetadataHttpEndpoint",
        "ec2:MetadataHttpPutResponseHopLimit", "ec2:MetadataHttpTokens", "ec2:NewInstanceProfile", "ec2:PlacementGroup",
        "ec2:ProductCode", "ec2:Region", "ec2:ResourceTag/${TagKey}", "ec2:RootDeviceType", "ec2:Tenancy",
    }),
    "volume": frozenset({
        "aws:RequestTag/${TagKey}", "aws:ResourceTag/${TagKey}", "aws:TagKeys", "ec2:Attribute",
        "ec2:Attribute/${AttributeName}", "ec2:AvailabilityZone", "ec2:AvailabilityZoneId", "ec2:Encrypted",
        "ec2:IsLaunchTemplateResource", "ec2:KmsKeyId", "ec2:LaunchTemplate", "ec2:ManagedResourceOperator",
        "ec2:ParentSnapshot", "ec2:ParentVolume", "ec2:Region", "ec2:ResourceTag/${TagKey}", "ec2:VolumeID",
        "ec2:VolumeInitializationRate", "ec2:VolumeIops", "ec2:VolumeSize", "ec2:VolumeThroughput", "ec2:VolumeType",
    }),
    "network-interface": frozenset({
        "aws:RequestTag/${TagKey}", "aws:ResourceTag/${TagKey}", "aws:TagKeys", "ec2:AssociatePublicIpAddress",
        "ec2:Attribute", "ec2:Attribute/${AttributeName}", "ec2:AuthorizedService", "ec2:AuthorizedUser",
        "ec2:AvailabilityZone", "ec2:IsLaunchTemplateResource", "ec2:LaunchTemplate", "ec2:ManagedResourceOperator",
        "ec2:NetworkInterfaceID", "ec2:Permission", "ec2:Region", "ec2:ResourceTag/${TagKey}", "ec2:Subnet", "ec2:Vpc",
    }),
    "security-group": frozenset({
        "aws:RequestTag/${TagKey}", "aws:ResourceTag/${TagKey}", "aws:TagKeys", "ec2:IsLaunchTemplateResource",
        "ec2:LaunchTemplate", "ec2:Region", "ec2:ResourceTag/${TagKey}", "ec2:SecurityGroupID", "ec2:Vpc",
    }),
    "subnet": frozenset({
        "aws:RequestTag/${TagKey}", "aws:ResourceTag/${TagKey}", "aws:TagKeys", "ec2:Attribute",
        "ec2:Attribute/${AttributeName}", "ec2:AvailabilityZone", "ec2:AvailabilityZoneId", "ec2:Ipv4IpamPoolId",
        "ec2:Ipv6IpamPoolId", "ec2:IsLaunchTemplateResource", "ec2:LaunchTemplate", "ec2:Region",
        "ec2:ResourceTag/${TagKey}", "ec2:SubnetID", "ec2:Vpc",
    }),
    "key-pair": frozenset({
        "aws:RequestTag/${TagKey}", "aws:ResourceTag/${TagKey}", "aws:TagKeys", "ec2:IsLaunchTemplateResource",
        "ec2:KeyPairName", "ec2:KeyPairType", "ec2:LaunchTemplate", "ec2:Region", "ec2:ResourceTag/${TagKey}",
    }),
    "image": frozenset({
        "aws:RequestTag/${TagKey}", "aws:ResourceTag/${TagKey}", "aws:TagKeys", "ec2:Attribute",
        "ec2:Attribute/${AttributeName}", "ec2:ImageID", "ec2:ImageType", "ec2:IsLaunchTemplateResource",
        "ec2:LaunchTemplate", "ec2:Owner", "ec2:Public", "ec2:Region", "ec2:ResourceTag/${TagKey}",
        "ec2:RootDeviceType",
    }),
    "spot-instances-request": frozenset({
        "aws:RequestTag/${TagKey}", "aws:ResourceTag/${TagKey}", "aws:TagKeys", "ec2:Region",
        "ec2:ResourceTag/${TagKey}",
    }),
}
# Every resource type RunInstances authorizes in infprov's launches; the first six always, the spot
# request with --spot. (The SAR lists more, optional ones: launch templates, placement groups, ...)
LAUNCH_RESOURCE_TYPES = ("instance", "volume", "network-interface", "security-group", "subnet", "key-pair",
                         "image", "spot-instances-request")

ACCOUNT = "123456789012"


def _glob(pattern: str, value: str) -> bool:
    """IAM's wildcards: * any run of characters, ? one character; nothing else is special; case matters."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.DOTALL) is not None


def _arn_like(pattern: str, arn: str) -> bool:
    """An ARN pattern (a statement's Resource, ArnLike): each of the six colon-separated parts is matched
    on its own, so a wildcard never reaches across a colon into the next part."""
    want, have = pattern.split(":", 5), arn.split(":", 5)
    return len(want) == len(have) == 6 and all(_glob(w, h) for w, h in zip(want, have, strict=True))


Context = dict[str, str | list[str]]


def _lookup(context: Context, key: str) -> str | list[str] | None:
    """Condition key names are not case-sensitive; their values are."""
    found = [v for k, v in context.items() if k.lower() == key.lower()]
    return found[0] if found else None


def _condition_holds(operator: str, key: str, wanted: Any, context: Context) -> bool:
    wanted = [wanted] if isinstance(wanted, str) else list(wanted)
    have = _lookup(context, key)
    if operator == "Null":  # "true": the key is absent from the request; "false": it is there
        assert wanted in (["true"], ["false"]), wanted
        return (have is None) == (wanted == ["true"])
    tests: dict[str, Any] = {"StringEquals": lambda w, h: w == h, "StringLike": _glob, "ArnLike": _arn_like}
    if operator not in tests:  # ForAllValues:, ForAnyValue:, ...IfExists, Numeric..., Bool: not modelled here
        raise NotImplementedError(f"condition operator {operator} is not modelled by this evaluator")
    if have is None:
        return False  # without IfExists, a condition on an absent key does not hold
    if isinstance(have, list):  # a multivalued key needs ForAllValues/ForAnyValue, which are not modelled
        raise NotImplementedError(f"{operator} on the multivalued key {key}")
    return any(tests[operator](w, have) for w in wanted)  # the values of one key: any may match


def _statement_allows(statement: dict[str, Any], action: str, arn: str, context: Context) -> bool:
    unknown = set(statement) - {"Sid", "Effect", "Action", "Resource", "Condition"}
    if unknown:  # NotAction, NotResource, Principal: not modelled
        raise NotImplementedError(f"statement elements {sorted(unknown)}")
    actions = [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]
    resources = [statement["Resource"]] if isinstance(statement["Resource"], str) else statement["Resource"]
    if not any(_glob(a.lower(), action.lower()) for a in actions):  # action names are not case-sensitive
        return False
    if not any(r == "*" or _arn_like(r, arn) for r in resources):
        return False
    return all(_condition_holds(op, key, wanted, context)  # every operator and every key in them must hold
               for op, keys in statement.get("Condition", {}).items() for key, wanted in keys.items())


def _allowed(doc: dict[str, Any], action: str, arn: str, context: Context) -> bool:
    """Identity-policy evaluation of one authorization: allowed if a statement allows it, unless one
    denies it (iam-policy.json has no Deny statement; the rule is here so that one would count)."""
    effects = {st["Effect"] for st in doc["Statement"] if _statement_allows(st, action, arn, context)}
    assert effects <= {"Allow", "Deny"}, effects
    return "Allow" in effects and "Deny" not in effects


Authorization = tuple[str, str, Context]


def _tags_of(params: dict[str, Any], resource_type: str) -> dict[str, str]:
    return {t["Key"]: t["Value"] for spec in params.get("TagSpecifications", [])
            if spec["ResourceType"] == resource_type for t in spec["Tags"]}


def _request_tags(tags: dict[str, str]) -> Context:
    context: Context = {f"aws:RequestTag/{k}": v for k, v in tags.items()}
    if tags:
        context["aws:TagKeys"] = sorted(tags)
    return context


def _resource_tags(tags: dict[str, str]) -> Context:
    context: Context = {f"aws:ResourceTag/{k}": v for k, v in tags.items()}
    context.update({f"ec2:ResourceTag/{k}": v for k, v in tags.items()})
    return context


def _run_instances_authorizations(params: dict[str, Any], group_tags: dict[str, dict[str, str]],
                                  key_tags: dict[str, str], region: str = "us-east-1") -> list[Authorization]:
    """The authorizations a RunInstances call with these parameters asks for, as this test models them:
    each resource's ARN and the condition keys it can derive from the parameters and the existing
    resources' tags (only keys SAR_RESOURCE_KEYS lists for the type; a key the request leaves out, e.g.
    MetadataOptions.HttpTokens, is absent, as EC2 cannot read it from the request)."""
    arn = f"arn:aws:ec2:{region}:{ACCOUNT}"
    base: Context = {"ec2:Region": region}
    found: list[Authorization] = []
    market = (params.get("InstanceMarketOptions") or {}).get("MarketType", "on-demand")
    instance: Context = {**base, **_request_tags(_tags_of(params, "instance")),
                         "ec2:InstanceType": params["InstanceType"], "ec2:InstanceMarketType": market}
    options = params.get("MetadataOptions") or {}
    for option, key in (("HttpTokens", "ec2:MetadataHttpTokens"), ("HttpEndpoint", "ec2:MetadataHttpEndpoint"),
                        ("HttpPutResponseHopLimit", "ec2:MetadataHttpPutResponseHopLimit")):
        if option in options:
            instance[key] = str(options[option])
    found.append(("ec2:RunInstances", f"{arn}:instance/*", instance))
    for mapping in params.get("BlockDeviceMappings", []):
        ebs = mapping.get("Ebs", {})
        volume: Context = {**base, **_request_tags(_tags_of(params, "volume")),
                           "ec2:Encrypted": str(bool(ebs.get("Encrypted"))).lower(),
                           "ec2:VolumeType": ebs["VolumeType"], "ec2:VolumeSize": str(ebs["VolumeSize"])}
        found.append(("ec2:RunInstances", f"{arn}:volume/*", volume))
    subnet = params["SubnetId"]
    found.append(("ec2:RunInstances", f"{arn}:network-interface/*",
                  {**base, **_request_tags(_tags_of(params, "network-interface")),
                   "ec2:Subnet": f"{arn}:subnet/{subnet}"}))
    found.append(("ec2:RunInstances", f"{arn}:subnet/{subnet}", {**base, "ec2:SubnetID": subnet}))
    for group in params["SecurityGroupIds"]:
        found.append(("ec2:RunInstances", f"{arn}:security-group/{group}",
                      {**base, **_resource_tags(group_tags[group]), "ec2:SecurityGroupID": group}))
    found.append(("ec2:RunInstances", f"{arn}:key-pair/{params['KeyName']}",
                  {**base, **_resource_tags(key_tags), "ec2:KeyPairName": params["KeyName"]}))
    found.append(("ec2:RunInstances", f"arn:aws:ec2:{region}::image/{params['ImageId']}",
                  {**base, "ec2:ImageID": params["ImageId"], "ec2:ImageType": "machine"}))
    if (params.get("InstanceMarketOptions") or {}).get("MarketType") == "spot":
        found.append(("ec2:RunInstances", f"{arn}:spot-instances-request/*",
                      {**base, **_request_tags(_tags_of(params, "spot-instances-request"))}))
    for spec in params.get("TagSpecifications", []):  # tags set at launch: CreateTags with ec2:CreateAction
        found.append(("ec2:CreateTags", f"{arn}:{spec['ResourceType']}/*",
                      {**base, **_request_tags(_tags_of(params, spec["ResourceType"])),
                       "ec2:CreateAction": "RunInstances"}))
    for _action, resource, context in found:
        kind = resource.split(":", 5)[5].split("/")[0]
        generic = {re.sub(r"^((?:aws|ec2):(?:Request|Resource)Tag)/.*$", r"\1/${TagKey}", k) for k in context}
        assert generic <= SAR_RESOURCE_KEYS[kind] | {"ec2:CreateAction"}, (kind, generic - SAR_RESOURCE_KEYS[kind])
    return found


def _refused(authorizations: list[Authorization], doc: dict[str, Any] | None = None) -> list[str]:
    """'action resource-type' of each authorization the policy does not allow (empty: the call is allowed)."""
    doc = doc or iam.policy()
    return [f"{action} {arn.split(':', 5)[5].split('/')[0]}" for action, arn, context in authorizations
            if not _allowed(doc, action, arn, context)]


def _launches_of(prov: Any, **up: Any) -> list[dict[str, Any]]:
    """The RunInstances parameters infprov itself sends during an `up` against moto (as built, before
    botocore serializes them)."""
    from tests.moto_cloud import _up

    sent: list[dict[str, Any]] = []

    def keep(params: dict[str, Any], **_: Any) -> None:
        sent.append(copy.deepcopy(params))

    prov.launch_client.meta.events.register("before-parameter-build.ec2.RunInstances", keep)
    try:
        _up(prov, **up)
    finally:
        prov.launch_client.meta.events.unregister("before-parameter-build.ec2.RunInstances", keep)
    return sent


def test_the_launch_infprov_makes_is_allowed_and_unsafe_ones_are_refused(prov: Any) -> None:
    """infprov's own RunInstances call (recorded from an `up` of inf1.xlarge against moto), with the tags
    its security group and key pair really carry there, passes every authorization; changing one thing
    (an untagged group, a p5.48xlarge, IMDSv1 allowed, an untagged key pair...) is refused on exactly the
    resource that changed."""
    from infprov.provision.ec2 import tag_map

    [params] = _launches_of(prov, name="iam", instance_type="inf1.xlarge")
    assert params["InstanceType"] == "inf1.xlarge"
    assert params["MetadataOptions"] == {"HttpTokens": "required", "HttpEndpoint": "enabled",
                                         "HttpPutResponseHopLimit": 1}
    [group] = params["SecurityGroupIds"]
    group_tags = {group: tag_map(prov.security_groups({"group-id": [group]})[0])}
    key_tags = tag_map(prov.key_pair(params["KeyName"]))
    assert group_tags[group]["infprov:managed"] == key_tags["infprov:managed"] == "true"

    def refused(params: dict[str, Any] = params, group_tags: dict[str, dict[str, str]] = group_tags,
                key_tags: dict[str, str] = key_tags) -> list[str]:
        return _refused(_run_instances_authorizations(params, group_tags, key_tags))

    asked = {f"{a} {arn.split(':', 5)[5].split('/')[0]}"
             for a, arn, _ in _run_instances_authorizations(params, group_tags, key_tags)}
    assert asked >= {f"ec2:RunInstances {kind}" for kind in LAUNCH_RESOURCE_TYPES[:-1]}
    assert refused() == []

    def changed(**values: Any) -> dict[str, Any]:
        return {**copy.deepcopy(params), **values}

    assert refused(group_tags={group: {}}) == ["ec2:RunInstances security-group"]
    assert refused(group_tags={group: {**group_tags[group], "infprov:managed": "false"}}) == \
        ["ec2:RunInstances security-group"]
    assert refused(key_tags={}) == ["ec2:RunInstances key-pair"]
    assert refused(changed(InstanceType="p5.48xlarge")) == ["ec2:RunInstances instance"]
    assert refused(changed(InstanceType="trn1n.32xlarge")) == ["ec2:RunInstances instance"]
    optional = {**params["MetadataOptions"], "HttpTokens": "optional"}
    assert refused(changed(MetadataOptions=optional)) == ["ec2:RunInstances instance"]
    unsaid = {k: v for k, v in params["MetadataOptions"].items() if k != "HttpTokens"}
    assert refused(changed(MetadataOptions=unsaid)) == ["ec2:RunInstances instance"]
    untagged = [{**s, "Tags": [t for t in s["Tags"] if t["Key"] != "infprov:managed"]}
                for s in params["TagSpecifications"]]
    assert refused(changed(TagSpecifications=untagged)) == ["ec2:RunInstances instance", "ec2:RunInstances volume"]


def test_every_type_infprov_offers_launches_on_demand_and_spot(prov: Any) -> None:
    """The policy keeps every catalog type launchable, spot too (the spot request is one more resource)."""
    from infprov.provision import catalog
    from infprov.provision.ec2 import tag_map

    [params] = _launches_of(prov, name="iamspot", instance_type="inf1.xlarge", spot=True)
    assert params["InstanceMarketOptions"]["MarketType"] == "spot"
    [group] = params["SecurityGroupIds"]
    group_tags = {group: tag_map(prov.security_groups({"group-id": [group]})[0])}
    key_tags = tag_map(prov.key_pair(params["KeyName"]))
    spot_asks = _run_instances_authorizations(params, group_tags, key_tags)
    assert any(arn.endswith(":spot-instances-request/*") for _, arn, _ in spot_asks)
    types = catalog.names()
    assert {t.split(".")[0] for t in types} == {"inf1", "inf2", "trn1"}
    for name in types:
        for market in (params, {k: v for k, v in params.items() if k != "InstanceMarketOptions"}):
            assert _refused(_run_instances_authorizations({**market, "InstanceType": name}, group_tags, key_tags)) == []
