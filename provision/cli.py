"""The command line: parse arguments, call one function, render its result."""

from __future__ import annotations

import os
import sys
from typing import Any

import typer

from provision import __version__, ui
from provision.errors import InfprovError, UsageError


class _App(typer.Typer):
    """Typer app that turns InfprovError into one line on stderr and the contract's exit code."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, standalone_mode=False, **kwargs)
        except InfprovError as exc:
            if _debug():
                raise
            ui.err.print(f"[red]error:[/] {exc.line()}", soft_wrap=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            ui.err.print("[red]interrupted[/]")
            sys.exit(130)
        except Exception as exc:  # click's own usage errors and anything unexpected
            import click

            if isinstance(exc, click.exceptions.Abort):
                ui.err.print("[red]aborted[/]")
                sys.exit(1)
            if isinstance(exc, click.ClickException):
                exc.show()
                sys.exit(exc.exit_code)
            if isinstance(exc, click.exceptions.Exit):
                sys.exit(exc.exit_code)
            if _debug():
                raise
            ui.err.print(
                f"[red]error:[/] internal error: {type(exc).__name__}: {exc}. "
                "hint: rerun with --debug for the traceback and report it",
                soft_wrap=True,
            )
            sys.exit(1)


def _debug() -> bool:
    return os.environ.get("INFPROV_DEBUG", "") not in ("", "0")


app = _App(
    name="infprov",
    help="From nothing to a benchmarked Triton server on AWS Inferentia (Inf1), and back to nothing.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"infprov {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks (same as INFPROV_DEBUG=1)."),
) -> None:
    if debug:
        os.environ["INFPROV_DEBUG"] = "1"


# ---------------------------------------------------------------- sandbox
sandbox_app = typer.Typer(
    help="A local fleet that stands in for AWS and Inf1 hosts (Linux, root).", no_args_is_help=True
)
app.add_typer(sandbox_app, name="sandbox")


@sandbox_app.command("up")
def sandbox_up(
    hosts: int = typer.Option(1, "--hosts", help="How many hosts (1 to 8)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Build (or repair) the sandbox: hosts with sshd, dockerd, images; a moto EC2 endpoint."""
    from provision.sandbox import core

    if not 1 <= hosts <= core.MAX_HOSTS:
        raise UsageError(
            f"--hosts {hosts} is out of range", f"give a number from 1 to {core.MAX_HOSTS}"
        )
    status = core.up(hosts)
    _render_sandbox(status, json_out)


@sandbox_app.command("status")
def sandbox_status(json_out: bool = typer.Option(False, "--json", help="Print one JSON document.")) -> None:
    """Show the sandbox's hosts and EC2 endpoint."""
    from provision.sandbox import core

    _render_sandbox(core.status(), json_out)


@sandbox_app.command("down")
def sandbox_down() -> None:
    """Remove everything the sandbox made: processes, namespaces, links, mounts, state."""
    from provision.sandbox import core

    core.down()
    ui.ok("sandbox removed")


def _render_sandbox(status: dict[str, Any], json_out: bool) -> None:
    if json_out:
        ui.emit_json(status)
        return
    from rich.table import Table

    ui.out.print(f"EC2 endpoint: {status['ec2_endpoint'] or '-'}")
    table = Table("name", "address", "port", "user", "key_file")
    for h in status["hosts"]:
        table.add_row(h["name"], h["address"], str(h["port"]), h["user"], h["key_file"])
    ui.out.print(table)


# ---------------------------------------------------------------- cloud (up / status / teardown)


# ---------------------------------------------------------------- inventory / play


# ---------------------------------------------------------------- server (logs / ssh)


# ---------------------------------------------------------------- bench / results
