"""The environment cache's control plane against moto's ECR: the repository made once and tagged, the login
token, an entry found by its key only, status and teardown --all --cache; every call in the IAM policy."""

from __future__ import annotations

import json
from typing import Any

import pytest

from infprov.floor.errors import InfprovError
from infprov.provision import envcache, iam
from infprov.provision.cli import app
from infprov.provision.specs import TAG_MANAGED
from tests.conftest import EC2_CALLS
from tests.unit.test_iam_policy import _static_calls, runner

MANIFEST = {
    "schemaVersion": 2,
    "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
    "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 7023,
               "digest": "sha256:" + "b" * 64},
    "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 32654,
                "digest": "sha256:" + "c" * 64}],
}


def _push(prov: Any, tag: str) -> None:
    """What a docker push leaves in ECR (moto's put_image, as the sandbox's registry reports a push)."""
    prov.ecr_client().put_image(repositoryName=envcache.REPOSITORY, imageManifest=json.dumps(MANIFEST), imageTag=tag)


def test_the_repository_is_made_once_tagged_and_an_entry_is_found_by_its_key_only(prov: Any) -> None:
    key = envcache.env_key("inf1.xlarge", "inf1")
    assert prov.repository(envcache.REPOSITORY) is None
    envcache.ensure_repository(prov)
    envcache.ensure_repository(prov)  # a second time changes nothing
    repos = prov.ecr_client().describe_repositories()["repositories"]
    assert [r["repositoryName"] for r in repos] == [envcache.REPOSITORY]
    assert prov.repository_tags(repos[0]["repositoryArn"]) == {TAG_MANAGED: "true"}

    assert not envcache.has(prov, key)
    _push(prov, key.tag)
    assert envcache.has(prov, key)
    # another generation, other pins (the sandbox's) or another setup script: another key, never this entry
    for other in (envcache.env_key("inf2.xlarge", "inf2"), envcache.env_key("inf1.xlarge", "sandbox")):
        assert other.tag != key.tag and not envcache.has(prov, other)
    assert key.tag.startswith("env-neuron-v1-") and len(key.digest) == 64


def test_status_marks_the_entries_this_infprov_would_never_use(prov: Any) -> None:
    """An entry made from another setup, other pins or another compiler (an older infprov's) is shown stale with
    its size; the environment and the model this infprov looks for are not."""
    env = envcache.env_key("inf1.xlarge", "inf1")
    model = envcache.model_key("inf1.xlarge", 4, env)
    old = "env-neuron-v1-" + "0" * 64  # what an earlier setup.sh or pins.env made
    envcache.ensure_repository(prov)
    for tag in (env.tag, model.tag, old):
        _push(prov, tag)
    assert {env.tag, model.tag} <= envcache.current_tags() and old not in envcache.current_tags()
    doc = json.loads(runner.invoke(app, ["status", "--json"]).stdout)["cache"]
    assert {e["tag"]: e["current"] for e in doc["entries"]} == {env.tag: True, model.tag: True, old: False}
    assert doc["stale_size_bytes"] == 32654
    shown = runner.invoke(app, ["status"]).output
    assert "3 entries" in shown and "1 stale (0.0 MB): made by another setup, pins or compiler" in shown
    assert [line for line in shown.splitlines() if line.rstrip().endswith("stale")] == [
        line for line in shown.splitlines() if old in line]


def test_a_repository_of_that_name_infprov_did_not_make_is_refused(prov: Any) -> None:
    prov.ecr_client().create_repository(repositoryName=envcache.REPOSITORY)
    with pytest.raises(InfprovError, match="infprov did not make it"):
        envcache.ensure_repository(prov)


def test_the_login_is_ecrs_token_for_the_registry_it_names(prov: Any) -> None:
    reg = envcache.login(prov)
    assert reg.user == "AWS" and reg.password
    assert reg.address.endswith(".dkr.ecr.us-east-1.amazonaws.com") and "://" not in reg.address
    assert reg.password not in repr(reg)  # never shown, even in a traceback's locals
    assert reg.ref("env-x") == f"{reg.address}/{envcache.REPOSITORY}:env-x"


def test_status_shows_the_cache_and_teardown_keeps_it_unless_asked(prov: Any) -> None:
    envcache.ensure_repository(prov)
    _push(prov, envcache.env_key("inf1.xlarge", "inf1").tag)
    shown = runner.invoke(app, ["status", "--json"])
    assert shown.exit_code == 0, shown.output
    cache = json.loads(shown.stdout)["cache"]
    assert cache["repository"] == envcache.REPOSITORY and len(cache["entries"]) == 1
    assert cache["size_bytes"] == 32654  # the compressed layers, as ECR counts them (moto alone: the config)
    assert cache["monthly_usd"] == pytest.approx(
        cache["size_bytes"] / 2**30 * envcache.STORAGE_USD_PER_GB_MONTH, abs=1e-4)
    assert "aws.amazon.com/ecr/pricing" in cache["price_source"]
    human = runner.invoke(app, ["status"])
    assert "environment cache: ECR repository infprov-cache" in human.output

    kept = runner.invoke(app, ["teardown", "--all", "--yes"])
    assert kept.exit_code == 0, kept.output
    assert "kept for the next cluster" in kept.output and prov.repository(envcache.REPOSITORY) is not None
    wrong = runner.invoke(app, ["teardown", "--name", "x", "--cache", "--yes"])
    assert wrong.exit_code == 2 and "--cache goes with --all" in wrong.output
    gone = runner.invoke(app, ["teardown", "--all", "--cache", "--yes", "--json"])
    assert gone.exit_code == 0, gone.output
    assert json.loads(gone.stdout)["cache"] == "removed"
    assert prov.repository(envcache.REPOSITORY) is None
    again = runner.invoke(app, ["teardown", "--all", "--cache", "--yes", "--json"])
    assert json.loads(again.stdout)["cache"] == "none"


def test_every_ecr_call_the_cache_makes_is_in_the_policy(prov: Any) -> None:
    before = set(EC2_CALLS)
    EC2_CALLS.clear()
    try:
        envcache.ensure_repository(prov)
        envcache.has(prov, envcache.env_key("inf1.xlarge", "inf1"))
        envcache.login(prov)
        envcache.info(prov)
        envcache.remove(prov)
        calls = {c for c in EC2_CALLS if c.startswith("ecr:")}
    finally:
        EC2_CALLS.update(before)
    assert {"ecr:CreateRepository", "ecr:DescribeImages", "ecr:GetAuthorizationToken",
            "ecr:DeleteRepository"} <= calls
    assert calls <= iam.actions(), sorted(calls - iam.actions())
    assert calls <= _static_calls(), sorted(calls - _static_calls())
