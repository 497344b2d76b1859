"""The environment cache's key is the one server.yml computes on a host, and its secret never shows."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from infprov.playbooks.connection import CommandResult
from infprov.playbooks.parsing import BUILTIN_DIR
from infprov.provision import envcache


@pytest.mark.parametrize(("itype", "profile", "setup", "pins"), [
    ("inf1.xlarge", "inf1", "setup.sh", "pins.env"),
    ("inf1.6xlarge", "sandbox", "setup.sh", "sandbox/pins.env"),
    ("inf2.xlarge", "inf2", "setup-neuronx.sh", "pins-neuronx.env"),
    ("trn1.2xlarge", "sandbox", "setup-neuronx.sh", "sandbox/pins-neuronx.env"),
])
def test_the_key_is_what_the_hosts_shell_computes(itype: str, profile: str, setup: str, pins: str) -> None:
    """server.yml's task: `{ cat setup.sh pins.sh pins.env; echo IMAGE; } | sha256sum`, run here on the same
    files."""
    key = envcache.env_key(itype, profile)
    files = BUILTIN_DIR / "files"
    line = '{ cat "$1" "$2" "$3"; echo "$4"; } | sha256sum | cut -d" " -f1'
    shell = subprocess.run(["sh", "-c", line, "sh", str(files / setup), str(files / "pins.sh"), str(files / pins),
                            key.base_image],
                           capture_output=True, text=True, check=True).stdout.strip()
    assert key.digest == shell
    assert key.tag == f"env-{envcache.generation_of(itype)}-{shell}"


def test_the_images_and_files_are_server_ymls() -> None:
    """The table the key is computed from names what server.yml's vars name, generation by generation."""
    play = yaml.safe_load((BUILTIN_DIR / "server.yml").read_text())[0]["vars"]
    for generation, (setup, pins, base, image) in envcache._GENERATIONS.items():
        v2 = generation == "neuron-v2"
        for var, wanted in (("server_image", base), ("env_image", image), ("setup_script", f"files/{setup}")):
            expr = play[var]
            chosen = expr.split("'")[1] if v2 else expr.split("'")[5]
            assert chosen == wanted, (var, expr)
        assert pins in play["pins_file"]
    assert "sha256sum" in (BUILTIN_DIR / "server.yml").read_text()


def test_a_failed_docker_command_never_shows_the_token() -> None:
    done = CommandResult("docker login", 1, b"", b"Error: bad credentials s3cr3t-token\n", 0.1, 0)
    shown = envcache._last(done, "s3cr3t-token")
    assert "s3cr3t-token" not in shown and "***" in shown


@pytest.mark.parametrize(("itype", "cores", "batch"), [("inf1.6xlarge", 16, 64), ("inf2.xlarge", 2, 8)])
def test_the_model_key_is_what_the_hosts_shell_computes(itype: str, cores: int, batch: int) -> None:
    """server.yml's task: `{ cat start.sh compile_rn50.py compile_rn50_neuronx.py; echo 'GEN NAME BATCH RANGE'; }`."""
    env = envcache.env_key(itype, "sandbox")
    mkey = envcache.model_key(itype, cores, env)
    files = BUILTIN_DIR / "files"
    line = '{ cat "$1" "$2" "$3"; echo "$4"; } | sha256sum | cut -d" " -f1'
    said = f"{env.generation} rn50-{cores}neuroncores-default {batch} 0:{cores - 1}"
    shell = subprocess.run(["sh", "-c", line, "sh", str(files / "inf1/start.sh"), str(files / "inf1/compile_rn50.py"),
                            str(files / "neuronx/compile_rn50.py"), said],
                           capture_output=True, text=True, check=True).stdout.strip()
    assert mkey.digest == shell and mkey.name == f"rn50-{cores}neuroncores-default"
    # the environment it was compiled in (the compiler's pins) is part of the cache's tag
    other = envcache.model_key(itype, cores, envcache.env_key(itype, itype.split(".")[0]))
    assert other.digest == mkey.digest and other.tag != mkey.tag
    assert "{{ (generation ~ ' ' ~ model_name ~ ' ' ~ max_batch_size ~ ' ' ~ neuron_core_range) | quote }}" in \
        (BUILTIN_DIR / "server.yml").read_text()
