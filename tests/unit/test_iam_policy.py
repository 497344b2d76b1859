"""The IAM policy in the repository allows every EC2 call infprov makes, names only real actions,
and grants changes only on what infprov tagged."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from typer.testing import CliRunner

from infprov.provision import iam

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def _static_calls() -> set[str]:
    """Every EC2 and ECR operation the code names in its one call path (Ec2Provider._call/_pages/_invoke for
    EC2, _ecr_call for ECR)."""
    source = "\n".join(p.read_text() for p in (ROOT / "provision").rglob("*.py"))
    ops = set(re.findall(r'(?<![a-z])(?:_call|_pages)\(\s*"([a-z_]+)"', source))
    ops |= set(re.findall(r'_invoke\(\s*self\.(?:launch_)?client,\s*"([a-z_]+)"', source))
    ecr = set(re.findall(r'_ecr_call\(\s*"([a-z_]+)"', source))
    return {iam.action_of(op) for op in ops} | {iam.action_of(op, "ecr") for op in ecr}


def test_boto3_is_used_through_the_one_provider_only() -> None:
    """The static scan sees every call only if no other module makes its own EC2 client."""
    makers = [p.relative_to(ROOT) for room in ("provision", "sandbox") for p in sorted((ROOT / room).rglob("*.py"))
              if re.search(r"\.client\(\s*[\"']ec[2r]|boto3\.client\(", p.read_text())]
    # the sandbox's endpoint talks to itself (a host that powered off is terminated), never to AWS
    assert makers == [Path("provision/ec2.py"), Path("sandbox/ec2server.py")]
    assert 'endpoint_url=f"http://127.0.0.1:{port}"' in (ROOT / "sandbox/ec2server.py").read_text()
    raw = re.findall(r"self\.(?:launch_)?client\.(\w+)\(", (ROOT / "provision/ec2.py").read_text())
    assert raw == [], raw  # every call goes through _invoke, where the scan finds its name


def test_every_ec2_call_in_the_code_is_in_the_policy() -> None:
    called = _static_calls()
    assert len(called) >= 20 and "ec2:RunInstances" in called
    assert called <= iam.actions(), sorted(called - iam.actions())


def test_the_policy_names_only_real_ec2_and_ecr_actions_and_no_wildcards() -> None:
    session = botocore.session.get_session()
    models = {service: session.get_service_model(service) for service in ("ec2", "ecr")}
    actions = iam.actions()
    assert all(a.split(":")[0] in models and "*" not in a for a in actions), actions
    unknown = sorted(a for a in actions if a.split(":", 1)[1] not in models[a.split(":")[0]].operation_names)
    assert unknown == []


def test_the_policy_is_least_privilege() -> None:
    """Reads on everything; every change only on resources tagged infprov:managed=true, or made with
    that tag; nothing the code never calls."""
    doc = iam.policy()
    assert doc["Version"] == "2012-10-17"
    # tags are set with TagSpecifications (CreateTags on create) and, for the cache's repository, with
    # CreateRepository's tags (which ECR authorizes as TagResource too); docker on the hosts does the rest
    needed = _static_calls() | {"ec2:CreateTags", "ecr:TagResource"} | iam.ECR_DOCKER_ACTIONS
    assert iam.actions() == needed, sorted(iam.actions() ^ needed)
    for st in doc["Statement"]:
        listed = [st["Action"]] if isinstance(st["Action"], str) else st["Action"]
        if any(a.startswith("ecr:") for a in listed):
            # ECR: only on infprov's cache repository; its login token is the one action with no resource
            assert all(a.startswith("ecr:") for a in listed), st
            if listed == ["ecr:GetAuthorizationToken"]:
                assert st["Resource"] == "*"
                continue
            assert st["Resource"] == "arn:aws:ecr:*:*:repository/infprov-cache", st
            changes = [a for a in listed if not a.split(":")[1].startswith(("Describe", "List"))]
            assert not changes or "infprov:managed" in json.dumps(st.get("Condition", {})), st
            continue
        reads = all(a.split(":")[1].startswith("Describe") for a in listed)
        tagged = json.dumps(st.get("Condition", {}))
        if reads:
            continue
        if "infprov:managed" in tagged or "ec2:CreateAction" in tagged:
            continue
        # what remains: the things a launch or a group only uses (image, subnet, vpc...), never makes
        resources = [st["Resource"]] if isinstance(st["Resource"], str) else st["Resource"]
        assert all(":instance/" not in r and ":volume/" not in r and r != "*" for r in resources), st


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


def test_the_evaluator_follows_iams_rules_for_what_it_models() -> None:
    """The evaluator's own checks: wildcards, ARN parts, absent keys, Null, Deny over Allow, and a refusal
    (not a guess) for what it does not model."""
    assert _glob("inf1.*", "inf1.xlarge") and not _glob("inf1.*", "inf1n.xlarge") and not _glob("inf1.*", "INF1.xlarge")
    assert _glob("trn1.*", "trn1.32xlarge") and not _glob("trn1.*", "trn1n.32xlarge")
    assert _glob("a?c", "abc") and not _glob("a[b]c", "abc")  # brackets are plain characters in IAM
    assert _arn_like("arn:aws:ec2:*::image/*", "arn:aws:ec2:us-east-1::image/ami-1")
    assert not _arn_like("arn:aws:ec2:*::image/*", f"arn:aws:ec2:us-east-1:{ACCOUNT}:image/ami-1")  # account part
    assert not _arn_like("arn:aws:ec2:*:*:instance/*", f"arn:aws:ec2:us-east-1:{ACCOUNT}:volume/vol-1")
    assert not _condition_holds("StringEquals", "ec2:MetadataHttpTokens", "required", {})
    tokens: Context = {"ec2:MetadataHttpTokens": "required"}
    assert _condition_holds("StringEquals", "EC2:metadatahttptokens", "required", tokens)
    assert not _condition_holds("StringEquals", "ec2:MetadataHttpTokens", "Required", tokens)
    assert _condition_holds("Null", "ec2:InstanceType", "true", {})
    assert not _condition_holds("Null", "ec2:InstanceType", "true", {"ec2:InstanceType": "p5.48xlarge"})
    assert _condition_holds("StringLike", "ec2:InstanceType", ["x.*", "inf2.*"], {"ec2:InstanceType": "inf2.xlarge"})
    statement = {"Effect": "Allow", "Action": "ec2:RunInstances", "Resource": "*"}
    deny = {"Effect": "Deny", "Action": "ec2:Run*", "Resource": "arn:aws:ec2:*:*:instance/*"}
    assert _allowed({"Statement": [statement]}, "ec2:runinstances", "arn:aws:ec2:r:1:instance/*", {})
    assert not _allowed({"Statement": [statement, deny]}, "ec2:RunInstances", "arn:aws:ec2:r:1:instance/*", {})
    assert not _allowed({"Statement": [statement]}, "ec2:TerminateInstances", "arn:aws:ec2:r:1:instance/i-1", {})
    for operator in ("StringEqualsIfExists", "ForAllValues:StringLike", "NumericLessThanEquals", "Bool"):
        with pytest.raises(NotImplementedError):
            _condition_holds(operator, "k", "v", {"k": "v"})
    with pytest.raises(NotImplementedError):
        _condition_holds("StringEquals", "aws:TagKeys", "a", {"aws:TagKeys": ["a"]})
    with pytest.raises(NotImplementedError):
        _allowed({"Statement": [{**statement, "NotResource": "x"}]}, "ec2:RunInstances", "arn:aws:ec2:r:1:x/y", {})


def test_every_condition_of_the_launch_is_on_a_key_its_resource_type_has() -> None:
    """Each RunInstances statement conditions only on keys the Service Authorization Reference lists for
    every resource type it names, and every resource type an infprov launch uses has a statement."""
    covered: set[str] = set()
    for st in iam.policy()["Statement"]:
        listed = [st["Action"]] if isinstance(st["Action"], str) else st["Action"]
        if "ec2:RunInstances" not in listed:
            continue
        assert listed == ["ec2:RunInstances"], st  # its conditions are written for this one action
        resources = [st["Resource"]] if isinstance(st["Resource"], str) else st["Resource"]
        assert "*" not in resources, st
        kinds = {r.split(":", 5)[5].split("/")[0] for r in resources}
        covered |= kinds
        keys = {re.sub(r"^((?:aws|ec2):(?:Request|Resource)Tag)/.*$", r"\1/${TagKey}", k)
                for keys in st.get("Condition", {}).values() for k in keys}
        for kind in kinds:
            assert keys <= SAR_RESOURCE_KEYS[kind], (st["Sid"], kind, keys - SAR_RESOURCE_KEYS[kind])
    assert covered == set(LAUNCH_RESOURCE_TYPES), covered ^ set(LAUNCH_RESOURCE_TYPES)


