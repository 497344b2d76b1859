"""The environment cache on the sandbox: moto's ECR for the API, the sandbox's registry for the bytes. With an
empty cache `up --count 3` builds the environment on one host and pulls it on two; after teardown a new cluster
builds nothing; a cache entry that cannot be pulled makes the host build it, said in one line."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from infprov.provision import envcache
from infprov.provision.cli import app
from tests.hostshell import on_host

pytestmark = pytest.mark.sandbox
runner = CliRunner()
KEY = envcache.env_key("inf1.xlarge", "sandbox")
MODEL = envcache.model_key("inf1.xlarge", 4, KEY)


def _run(*argv: str) -> Any:
    return runner.invoke(app, list(argv))


def _empty_cache() -> None:
    """No repository in moto's ECR and nothing in the sandbox's registry."""
    from infprov.sandbox import core

    done = _run("teardown", "--all", "--cache", "--sandbox", "--yes", "--json")
    assert done.exit_code == 0, done.output
    core.wipe_registry()


def _sources(doc: dict[str, Any], what: str = "environment") -> list[str]:
    return sorted(h[what]["source"] for h in doc["server"]["hosts"])


@pytest.fixture()
def cache_on(sandbox_hosts: list[dict[str, Any]], cluster_home: Path,
             monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("INFPROV_NO_CACHE", raising=False)
    _empty_cache()
    try:
        yield
    finally:
        _run("teardown", "--all", "--sandbox", "--yes")
        _empty_cache()


def test_one_host_builds_the_others_pull_and_a_later_cluster_builds_nothing(cache_on: None) -> None:
    from infprov.sandbox import core

    first = _run("up", "--sandbox", "--type", "inf1.xlarge", "--count", "3", "--name", "envc", "--yes", "--json")
    assert first.exit_code == 0, first.output
    # ECR's login (as moto hands it out) reached the hosts' docker on stdin only: in no output, log or state file
    _, password = core.registry_login()
    assert password not in first.output
    home = Path(os.environ["INFPROV_HOME"])
    leaked = [f for f in home.rglob("*") if f.is_file() and password.encode() in f.read_bytes()]
    assert leaked == []
    doc = json.loads(first.stdout)
    assert doc["server"]["ok"] is True
    assert _sources(doc) == ["built", "pulled", "pulled"], doc["server"]["hosts"]
    assert _sources(doc, "compiled_model") == ["built", "pulled", "pulled"], doc["server"]["hosts"]
    assert all(h["environment"]["seconds"] > 0 for h in doc["server"]["hosts"])
    for host in doc["server"]["hosts"]:
        label = on_host(host["instance_id"], "docker image inspect -f '{{ index .Config.Labels \"infprov.setup\" }}' "
                        + KEY.env_image).strip()
        assert label == KEY.digest
        # the model is the one made for this key, and the stage it came through is gone
        key = on_host(host["instance_id"], "cat python_backend/infprov/model-key; ls -d ~/.infprov-model-stage "
                      "2>/dev/null || true").split()
        assert key == [MODEL.digest]
        # who wrote the model: the server container (root) when it compiled it, the playbook (ubuntu) when it
        # copied it from the cache's stage
        owner = on_host(host["instance_id"], f"stat -c %U python_backend/models/{MODEL.name}/config.pbtxt").strip()
        assert owner == ("root" if host["compiled_model"]["source"] == "built" else "ubuntu"), host
        if host["environment"]["source"] == "pulled":
            # served from the pulled image: setup.sh never ran on this host
            assert on_host(host["instance_id"], "docker inspect -f '{{ .Config.Image }}' infprov-triton").strip() \
                == KEY.env_image
            log = on_host(host["instance_id"], "docker logs infprov-triton 2>&1 | head -5")
            assert "the environment from the committed image" in log
        # the login is gone from the host again: docker's own file keeps no credentials for the registry
        config = on_host(host["instance_id"], "cat ~/.docker/config.json 2>/dev/null || echo '{}'")
        assert "auth" not in json.loads(config).get("auths", {}).get(f"{_gateway()}:5000", {})

    shown = _run("status", "--sandbox", "--json")
    cache = json.loads(shown.stdout)["cache"]
    assert [e["tag"] for e in cache["entries"]] == sorted([KEY.tag, MODEL.tag])
    assert cache["size_bytes"] > 1_000_000  # the whole image, compressed, as ECR counts it

    kept = _run("teardown", "--name", "envc", "--sandbox", "--yes", "--json")
    assert kept.exit_code == 0, kept.output
    assert json.loads(kept.stdout)["cache"] == "kept"

    second = _run("up", "--sandbox", "--type", "inf1.xlarge", "--count", "2", "--name", "envd", "--yes", "--json")
    assert second.exit_code == 0, second.output
    again = json.loads(second.stdout)
    assert again["server"]["ok"] is True
    assert _sources(again) == ["pulled", "pulled"], again["server"]["hosts"]
    assert _sources(again, "compiled_model") == ["pulled", "pulled"], again["server"]["hosts"]


def test_an_entry_that_cannot_be_pulled_is_built_instead_in_one_line(cache_on: None) -> None:
    """ECR lists the entry but the registry has no bytes for it: the pull fails, the host builds the environment
    and pushes nothing over the entry that stands (one warning line says why)."""
    from infprov.provision import providers

    prov = providers.connect(None, True)
    envcache.ensure_repository(prov)
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 2,
                           "digest": "sha256:" + "d" * 64},
                "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 3,
                            "digest": "sha256:" + "e" * 64}]}
    prov.ecr_client().put_image(repositoryName=envcache.REPOSITORY, imageManifest=json.dumps(manifest),
                                imageTag=KEY.tag)
    done = _run("up", "--sandbox", "--type", "inf1.xlarge", "--name", "envbad", "--yes", "--json")
    assert done.exit_code == 0, done.output
    doc = json.loads(done.stdout)
    assert _sources(doc) == ["built"] and doc["server"]["ok"] is True
    why = [line for line in done.stderr.splitlines() if "builds the environment itself" in line]
    assert len(why) == 1 and "docker pull" in why[0], done.stderr


def _gateway() -> str:
    from infprov.sandbox import places

    return places.gateway()
