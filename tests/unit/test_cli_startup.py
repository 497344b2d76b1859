"""What a command loads before it works: `play` never pulls pydantic, boto3 or the sandbox, and the
quick option conversion that keeps pydantic out returns exactly what typer's own conversion does."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer import _click
from typer._coercion import build_runtime_param
from typer.testing import CliRunner

from infprov.provision import quickparse
from infprov.provision.cli import app

RAW = ["0", "1", "8", "42", "150", "3600", "007", "-1", "+3", " 5", "5 ", "1_000", "1e3", "3.5", "0.25", "2.",
       ".5", "abc", "", "inf", "nan", "99999999999999999999", "x=1", "@file", 7, 30.0, True, None,
       ("a", "b"), ["k=v"], (), ("1", 2)]  # fmt: skip


def _params() -> list[tuple[Any, Any]]:
    found = []

    def walk(cmd: Any) -> None:
        found.extend((cmd, p) for p in cmd.params if hasattr(p, "type_descriptor"))
        if hasattr(cmd, "list_commands"):  # the plugged-in commands (sandbox, demo) too
            ctx = _click.Context(cmd)
            for name in cmd.list_commands(ctx):
                walk(cmd.get_command(ctx, name))

    walk(typer.main.get_command(app))
    return found


def test_quick_conversion_equals_typers_own_or_leaves_it_to_typer() -> None:
    params = _params()
    kinds = {repr(p.type_descriptor.annotation) for _, p in params}
    assert {"<class 'str'>", "<class 'int'>", "<class 'float'>", "<class 'bool'>", "list[str]"} <= kinds
    taken = 0
    for cmd, param in params:
        full = build_runtime_param(param.type_descriptor)
        ctx = _click.Context(cmd)
        multi = bool(param.multiple or param.nargs == -1)
        for raw in RAW:
            quick = quickparse.quick_value(param.type_descriptor.annotation, param.type_descriptor.parameter_info,
                                           multi, raw)  # fmt: skip
            if quick is quickparse._DECLINE:
                continue
            if multi and isinstance(raw, str):
                continue  # the wrapper hands that case to typer before asking quick_value
            expected = full.coerce(raw, param=param, ctx=ctx)
            assert (type(quick), quick) == (type(expected), expected), (cmd.name, param.name, raw)
            taken += 1
    assert taken > 100  # the quick path is really taken for the usual values


@pytest.mark.parametrize(("argv", "message"), [
    (["play", "x.yml", "--forks", "0"], "Invalid value for '--forks'"),
    (["play", "x.yml", "--forks", "two"], "Invalid value for '--forks'"),
    (["up", "--type", "inf1.xlarge", "--count", "abc"], "Invalid value for '--count'"),
    (["bench", "--limit", "soon"], "Invalid value for '--limit'"),
])  # fmt: skip
def test_values_the_quick_path_declines_get_typers_own_error(argv: list[str], message: str) -> None:
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 2
    [line] = result.stderr.strip().splitlines()
    assert message in line and "hint:" in line


HEAVY = ("pydantic", "boto3", "botocore", "rich", "matplotlib", "numpy", "tritonclient", "paramiko", "jinja2",
         "yaml", "ansible", "infprov.sandbox.core", "infprov.client.build", "infprov.provision.cloud")


def _loaded_after(code: str, tmp_path: Path) -> set[str]:
    probe = f"import sys\n{code}\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path, timeout=120,
                         env={"PATH": "/usr/bin:/bin", "INFPROV_HOME": str(tmp_path / "home")})  # fmt: skip
    assert run.returncode == 0, run.stderr
    return set(run.stdout.split())


def test_importing_the_cli_loads_none_of_the_heavy_parts(tmp_path: Path) -> None:
    assert _loaded_after("import infprov.provision.cli", tmp_path) == set()


def test_play_loads_neither_pydantic_boto3_nor_the_sandbox(tmp_path: Path) -> None:
    """A playbook file (run by ansible-core, in its own process) and a built-in one (infprov's engine, here)."""
    book = tmp_path / "book.yml"
    book.write_text("- hosts: nowhere\n  gather_facts: false\n  tasks:\n    - ansible.builtin.debug: {msg: hi}\n")
    inventory = tmp_path / "inventory.yml"
    inventory.write_text("all:\n  hosts:\n    h1: {ansible_host: 192.0.2.1}\n")
    argv = ["play", str(book), "--inventory", str(inventory), "--json", "-e", "a=1", "--forks", "2", "-t", "x"]
    code = ("from infprov.provision.cli import app\n"
            f"try:\n    app({argv!r})\nexcept SystemExit as exc:\n    assert exc.code == 1, exc.code")  # fmt: skip
    loaded = _loaded_after(code, tmp_path)
    assert "yaml" in loaded and "ansible" not in loaded  # ansible-core stays in ansible-playbook's process
    assert not loaded & {"pydantic", "boto3", "botocore", "infprov.sandbox.core", "infprov.provision.cloud",
                         "infprov.client.build", "matplotlib", "numpy", "tritonclient"}
    builtin = ["play", "server", "--inventory", str(tmp_path / "none.yml"), "--json", "-e", "a=1"]
    code = ("from infprov.provision.cli import app\n"
            f"try:\n    app({builtin!r})\nexcept SystemExit as exc:\n    assert exc.code == 1, exc.code")  # fmt: skip
    loaded = _loaded_after(code, tmp_path)
    assert {"paramiko", "jinja2", "yaml"} <= loaded  # the engine itself, as it should
    assert not loaded & {"pydantic", "boto3", "botocore", "infprov.sandbox.core", "infprov.provision.cloud",
                         "infprov.client.build", "matplotlib", "numpy", "tritonclient"}


def test_a_command_refused_before_it_asks_ec2_never_loads_boto3(tmp_path: Path) -> None:
    """boto3 and botocore load at one seam, ec2._sdk(), on the first EC2 call; `up` with a type that does not
    exist is refused before that."""
    code = ("from infprov.provision.cli import app\n"
            "try:\n    app(['up', '--type', 'bogus.large', '--yes'])\n"
            "except SystemExit as exc:\n    assert exc.code == 2, exc.code")  # fmt: skip
    loaded = _loaded_after(code, tmp_path)
    assert not loaded & {"boto3", "botocore"}, loaded
    seam = "import infprov.provision.ec2 as ec2\nec2.retry_config()"
    assert {"boto3", "botocore"} <= _loaded_after(seam, tmp_path)  # the seam itself does load them
