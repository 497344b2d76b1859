"""`infprov sandbox up|status|down` and `infprov demo`: the local fleet that stands in for AWS and Inf1 hosts.

The CLI finds these through the `infprov.commands` entry points (pyproject.toml): the runtime never
imports the sandbox.
"""

from __future__ import annotations

import typer

from infprov.floor.errors import UsageError
from infprov.provision import render, ui

sandbox_app = typer.Typer(
    name="sandbox", help="A local fleet that stands in for AWS and Inf1 hosts (Linux, root).", no_args_is_help=True,
    add_completion=False,
)
demo_app = typer.Typer(add_completion=False)


@demo_app.command("demo")
def demo_cmd(
    hosts: int = typer.Option(2, "--hosts", help="How many sandbox hosts (and instances) to use (1 to 8)."),
    limit: int = typer.Option(10, "--limit", help="Seconds the benchmark measures on each host."),
) -> None:
    """The main job on the local sandbox (Linux, root): sandbox up, up, bench, results, teardown."""
    from infprov.sandbox import demo
    from infprov.sandbox.places import MAX_HOSTS

    if not 1 <= hosts <= MAX_HOSTS:
        raise UsageError(f"--hosts {hosts} is out of range", f"give a number from 1 to {MAX_HOSTS}")
    if not 1 <= limit <= 3600:
        raise UsageError(f"--limit {limit} is out of range", "give 1 to 3600 seconds")
    code = demo.main(hosts=hosts, limit=limit)
    if code:
        raise typer.Exit(code)


@sandbox_app.command("up")
def sandbox_up(
    hosts: int = typer.Option(1, "--hosts", help="How many hosts (1 to 8)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Build (or repair) the sandbox: hosts with sshd, dockerd, images; a moto EC2 endpoint."""
    from infprov.sandbox import core

    if not 1 <= hosts <= core.MAX_HOSTS:
        raise UsageError(
            f"--hosts {hosts} is out of range", f"give a number from 1 to {core.MAX_HOSTS}"
        )
    core.up(hosts)
    from infprov.sandbox import provider

    provider.connect(None).prepare()  # hosts held by instances the endpoint no longer runs are freed
    render.render_sandbox(core.status(), json_out)


@sandbox_app.command("status")
def sandbox_status(json_out: bool = typer.Option(False, "--json", help="Print one JSON document.")) -> None:
    """Show the sandbox's hosts and EC2 endpoint."""
    from infprov.sandbox import core

    render.render_sandbox(core.status(), json_out)


@sandbox_app.command("down")
def sandbox_down() -> None:
    """Remove everything the sandbox made: processes, namespaces, links, mounts, state."""
    from infprov.sandbox import core

    core.down()
    ui.ok("sandbox removed")


