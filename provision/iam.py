"""The least-privilege IAM policy infprov needs on real AWS (provision/data/iam-policy.json)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

POLICY_FILE = Path(__file__).parent / "data" / "iam-policy.json"


def policy() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(POLICY_FILE.read_text())
    return doc


def actions(doc: dict[str, Any] | None = None) -> set[str]:
    """Every action the policy allows, e.g. {"ec2:RunInstances", ...} (no wildcards are used)."""
    found: set[str] = set()
    for statement in (doc or policy())["Statement"]:
        if statement.get("Effect") != "Allow":
            continue
        listed = statement["Action"]
        found.update([listed] if isinstance(listed, str) else listed)
    return found


def action_of(operation: str, service: str = "ec2") -> str:
    """The IAM action of a boto3 method name: describe_instances -> ec2:DescribeInstances (ECR: service "ecr")."""
    import botocore.session

    model = botocore.session.get_session().get_service_model(service)
    wanted = operation.replace("_", "").lower()
    for name in model.operation_names:
        if name.lower() == wanted:
            return f"{service}:{name}"
    raise KeyError(f"no {service} operation {operation}")


# What docker on a host does with the ECR login infprov hands it (the token carries the user's own rights):
# pulling needs BatchGetImage and GetDownloadUrlForLayer, pushing BatchCheckLayerAvailability,
# InitiateLayerUpload, UploadLayerPart, CompleteLayerUpload and PutImage (ECR User Guide, "IAM permissions for
# pushing an image", docs.aws.amazon.com/AmazonECR/latest/userguide/image-push-iam.html, and its pull page;
# read 2026-12-07). They never pass through boto3, so the tests cannot record them: they are listed here.
ECR_DOCKER_ACTIONS = frozenset({
    "ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:CompleteLayerUpload", "ecr:GetDownloadUrlForLayer",
    "ecr:InitiateLayerUpload", "ecr:PutImage", "ecr:UploadLayerPart",
})
