"""The IAM policy in the repository allows every EC2 call infprov makes, names only real actions,
and grants changes only on what infprov tagged."""

from __future__ import annotations

import copy
import re
from typing import Any

from infprov.provision import iam
from tests.unit.test_iam_policy import (
    ACCOUNT,
    LAUNCH_RESOURCE_TYPES,
    SAR_RESOURCE_KEYS,
    Authorization,
    Context,
    _allowed,
)

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
# Every resource type RunInstances authorizes in infprov's launches; the first six always, the spot
# request with --spot. (The SAR lists more, optional ones: launch templates, placement groups, ...)


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
