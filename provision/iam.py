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


def action_of(operation: str) -> str:
    """The IAM action of a boto3 EC2 method name: describe_instances -> ec2:DescribeInstances."""
    import botocore.session

    model = botocore.session.get_session().get_service_model("ec2")
    wanted = operation.replace("_", "").lower()
    for name in model.operation_names:
        if name.lower() == wanted:
            return f"ec2:{name}"
    raise KeyError(f"no EC2 operation {operation}")
