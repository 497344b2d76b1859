"""The command line: parse arguments, call one function, render its result."""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Sequence
from typing import Any

import typer
import typer.main
from typer.core import TyperGroup

from infprov.floor.errors import InfprovError, UsageError
from infprov.provision import __version__, lifecycle, quickparse, render, ui


class _Group(TyperGroup):
    """Turns InfprovError into one line on stderr and the contract's exit code (also under CliRunner)."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        """The CLI framework's own usage errors (unknown option or command, a bad value) as one line too."""
        quickparse.install(self)
        _plain_help_types(self)
        try:
            rv = super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        except Exception as exc:
            kind = _click_kind(exc)
            if kind is None or _debug() or not standalone_mode:
                raise
            if kind == "help":  # `infprov` alone: the help, as before
                exc.show()  # type: ignore[attr-defined]
            elif kind == "abort":
                ui.err.print(_red("interrupted"))
            else:
                message = exc.format_message()  # type: ignore[attr-defined]
                ctx = getattr(exc, "ctx", None)
                if kind == "usage":
                    where = ctx.command_path if ctx is not None else "infprov"
                    message = f"{message.rstrip('.')}. hint: see `{where} --help`"
                ui.err.print(ui.styled("error:", "red", _one_line(message)), soft_wrap=True)
            sys.exit(130 if kind == "abort" else int(getattr(exc, "exit_code", 2)))
        if not standalone_mode:
            return rv
        sys.exit(rv if isinstance(rv, int) else 0)

    def list_commands(self, ctx: Any) -> list[str]:
        own = list(super().list_commands(ctx))
        return own + sorted(name for name in _plugged_commands() if name not in own)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        """A command of infprov's own, or one a plugin added (`sandbox`, `demo`), loaded when first named."""
        command = super().get_command(ctx, cmd_name)
        if command is None and cmd_name in _plugged_commands():
            command = typer.main.get_command(_plugged_commands()[cmd_name].load())
            quickparse.install(command)
            _plain_help_types(command)
            self.add_command(command, cmd_name)
        return command

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort):
            raise
        except InfprovError as exc:
            if _debug():
                raise
            ui.err.print(ui.styled("error:", "red", _one_line(exc.line())), soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            ui.err.print(_red("interrupted"))
            raise typer.Exit(130) from None
        except BrokenPipeError:  # the reader went away (`infprov ... | head`): nothing left to say
            with contextlib.suppress(OSError):
                sys.stdout = open(os.devnull, "w")  # noqa: SIM115  (so the interpreter's final flush is quiet)
            raise typer.Exit(141) from None
        except Exception as exc:
            if _debug() or hasattr(exc, "show"):  # click's own usage errors render themselves
                raise
            ui.err.print(
                ui.styled("error:", "red", _one_line(f"internal error: {type(exc).__name__}: {exc}. "
                          "hint: rerun with --debug for the traceback and report it")),
                soft_wrap=True,
            )
            raise typer.Exit(1) from None


def _plain_help_types(command: Any) -> None:
    """--help shows what an option takes as a word (`--type TYPE`, `--name NAME`), and nothing for a flag,
    instead of typer's Python type tags (`<str>`, `<bool>`)."""

    def label(param: Any) -> str | None:
        if getattr(param, "is_flag", False) or getattr(param, "count", False):
            return None
        if getattr(param, "metavar", None):
            return str(param.metavar)
        longs = [o for o in getattr(param, "opts", ()) if o.startswith("--")]
        word = (longs[0][2:] if longs else str(param.name)).upper()
        return word + ("..." if getattr(param, "multiple", False) or getattr(param, "nargs", 1) == -1 else "")

    def walk(cmd: Any) -> None:
        for param in getattr(cmd, "params", ()):
            if hasattr(param, "display_type_rich"):
                param.display_type_rich = lambda ctx, shown=label(param): shown
        for sub in getattr(cmd, "commands", {}).values():
            walk(sub)
        made = getattr(cmd, "get_help_option", None)
        if made is not None and not getattr(made, "plain_types", False):

            def get_help_option(ctx: Any, made: Any = made) -> Any:
                option = made(ctx)
                if option is not None and hasattr(option, "display_type_rich"):
                    option.display_type_rich = lambda ctx: None
                return option

            get_help_option.plain_types = True  # type: ignore[attr-defined]
            cmd.get_help_option = get_help_option

    walk(command)


PLUGIN_COMMANDS = "infprov.commands"  # entry points: command name -> a typer app (the sandbox adds its own)


@functools.cache
def _plugged_commands() -> dict[str, Any]:
    """The commands other packages add (tooling above the runtime, which the runtime never imports): looked
    up only when a name is not infprov's own, or for the help, since reading them costs ~0.1 s."""
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=PLUGIN_COMMANDS)}


def _click_kind(exc: BaseException) -> str | None:
    """Which of the CLI framework's own errors this is (typer may carry its own copy of click, so the
    classes are told by name): help for no arguments, a usage error, another click error, or an abort."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    if "NoArgsIsHelpError" in names:
        return "help"
    if "UsageError" in names:
        return "usage"
    if "ClickException" in names:
        return "click"
    if "Abort" in names:
        return "abort"
    return None


def _red(text: str) -> Any:
    from rich.text import Text

    return Text(text, style="red")


def _one_line(text: str) -> str:
    """Control characters (a newline in a name from a hostile file) shown escaped: one error, one line."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def _debug() -> bool:
    return os.environ.get("INFPROV_DEBUG", "") not in ("", "0")


app = typer.Typer(
    cls=_Group,
    name="infprov",
    help="From nothing to a benchmarked Triton server on AWS Inferentia (Inf1, Inf2) or Trainium (Trn1), and back "
    "to nothing. New here? `infprov demo` (or `infprov sandbox up`, then `infprov up --sandbox --type inf1.xlarge`) "
    "runs it all locally.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion SHELL
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
    # paramiko logs a dropped connection ("Socket exception: Bad file descriptor (9)") at ERROR; with no
    # handler Python's last-resort handler printed it under infprov's one error line. --debug shows it.
    if not _debug():
        import logging

        logging.getLogger("paramiko").addHandler(logging.NullHandler())
        logging.getLogger("paramiko").propagate = False


# ---------------------------------------------------------------- cloud (up / status / teardown)
_CLUSTER_HELP = "Cluster name (default: infprov)."
_INVENTORY_HELP = "Inventory file (default: INFPROV_HOME/inventory.yml)."
_TYPE_HELP = ("Instance type: Inf1 (inf1.xlarge, inf1.2xlarge, inf1.6xlarge, inf1.24xlarge), Inf2 (inf2.xlarge, "
              "inf2.8xlarge, inf2.24xlarge, inf2.48xlarge) or Trn1 (trn1.2xlarge, trn1.32xlarge): `infprov types`.")
_TAG_OPTION = typer.Option(None, "--tag", help="Extra tag KEY=VALUE on every resource (repeatable).")


@app.command("up")
def cloud_up(
    instance_type: str = typer.Option(..., "--type", help=_TYPE_HELP),
    name: str = typer.Option("infprov", "--name", help=_CLUSTER_HELP),
    count: int = typer.Option(1, "--count", help="How many instances the cluster should have."),
    region: str | None = typer.Option(None, "--region", help="AWS region (default: AWS_REGION / the profile's)."),
    ami: str | None = typer.Option(None, "--ami", help="Pin the AMI (default: the newest Neuron DLAMI for the type)."),
    key_name: str | None = typer.Option(None, "--key-name", help="Use your own EC2 key pair instead of infprov's."),
    ssh_cidr: str | None = typer.Option(None, "--ssh-cidr", help="Allow SSH from here (default: your address/32)."),
    allow_wide_ssh: bool = typer.Option(
        False, "--allow-wide-ssh", help="Accept an --ssh-cidr wider than /8 (IPv6: /32)."
    ),
    tag: list[str] | None = _TAG_OPTION,
    spot: bool = typer.Option(False, "--spot", help="Launch spot instances."),
    disk: int = typer.Option(150, "--disk", help="Root volume size in GiB (encrypted gp3)."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Launch without asking."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document."),
    sandbox: bool = typer.Option(False, "--sandbox", help="Use the local sandbox instead of AWS."),
    inventory: str | None = typer.Option(None, "--inventory", help=_INVENTORY_HELP),
    skip_server: bool = typer.Option(False, "--skip-server", help="Only the cloud part: no Triton provisioning."),
    no_preflight: bool = typer.Option(
        False, "--no-preflight", help="Launch without first checking that the pinned downloads still exist."
    ),
    auto_teardown: str | None = typer.Option(
        None, "--auto-teardown", help="Each instance powers off and terminates itself after this long (4h, 90m); "
        "run again to move the deadline."
    ),
    idle_stop: str | None = typer.Option(
        None, "--idle-stop", help="Each instance stops itself once its Triton served no request for this long "
        "(30m, 2h), decided on the host from Triton's metrics; run again to restart the clock."
    ),
    down: bool = typer.Option(False, "--down", help="With --idle-stop: terminate when idle instead of stopping."),
    model: str = typer.Option(
        "rn50", "--model", help="What to serve: rn50 (default), a TorchScript file, a TensorFlow SavedModel folder, "
        "a Hugging Face folder (config.json, weights, tokenizer) or hf:ORG/NAME. See README, Your own model."
    ),
    task: str | None = typer.Option(
        None, "--task", help="A Hugging Face model's task: text-classification, feature-extraction, "
        "image-classification."
    ),
    seq_len: int | None = typer.Option(None, "--seq-len", help="A text model's sequence length (default 128)."),
    batch: int | None = typer.Option(None, "--batch", help="Your model's batch: traced at it on Inf2/Trn1, the "
                                     "largest batch on Inf1 (default 8)."),
    input_: list[str] = typer.Option([], "--input", help="Your model's input NAME:DTYPE:SHAPE, e.g. "
                                     "x:FP32:3x224x224 (one item, no batch axis; repeatable, in order)."),
    output: list[str] = typer.Option([], "--output", help="Your model's output NAME:DTYPE:SHAPE, e.g. y:FP32:1000 "
                                     "(repeatable, in order)."),
    no_cache: bool = typer.Option(
        False, "--no-cache", help="Build the Neuron environment on every host; neither read nor fill the account's "
        "environment cache (ECR)."
    ),
) -> None:
    """Find or launch Inferentia or Trainium instances, provision Triton on each over SSH, and wait until it serves."""
    from infprov.provision import autoteardown, idlestop, specs, usermodel

    lifetime = autoteardown.parse_duration(auto_teardown) if auto_teardown is not None else None
    idle_seconds = idlestop.parse(idle_stop) if idle_stop is not None else None
    action = idlestop.check_options(idle_seconds, down, lifetime)
    idle = (idle_seconds, action) if idle_seconds is not None and action is not None else None
    try:
        plan = usermodel.plan(model, instance_type, task=task, seq_len=seq_len, batch=batch, inputs=input_,
                              outputs=output)
    except usermodel.ModelSpecError as exc:
        for problem in exc.problems[:-1]:
            ui.err.print(ui.styled("error:", "red", _one_line(problem)), soft_wrap=True)
        raise
    note = "" if plan is None else (
        f"then upload {plan.name} ({plan.kind}, {usermodel.human_size(plan.upload_bytes)}) and compile it on the host"
    )
    spec = specs.UpSpec(
        instance_type=instance_type, name=name, count=count, region=region, ami=ami, key_name=key_name,
        ssh_cidr=ssh_cidr, allow_wide_ssh=allow_wide_ssh, tags=specs.parse_tags(tag or []), spot=spot, yes=yes,
        sandbox=sandbox, disk_gib=disk, inventory=inventory, model_note=note,
    )  # fmt: skip
    if plan is not None and not json_out:
        ui.step(f"model {plan.name}: {plan.kind}, {usermodel.human_size(plan.upload_bytes)} to upload; serves "
                + ", ".join(f"{t.name} {t.dtype} {list(plan.served_dims(t))}" for t in plan.inputs) + " -> "
                + ", ".join(f"{t.name} {t.dtype} {list(plan.served_dims(t))}" for t in plan.outputs))
    outcome = lifecycle.up(
        spec, preflight=not no_preflight, lifetime=lifetime, skip_server=skip_server, model=plan,
        before_server=None if json_out else render.before_server, on_event=None if json_out else render.show_event,
        idle=idle,
        cache=not no_cache,
    )  # fmt: skip
    render.render_up_outcome(outcome, json_out)
    _fail_on(outcome.error())


def _fail_on(error: InfprovError | None) -> None:
    """A lifecycle's result rendered, its failure (if any) becomes the one error line and the exit code."""
    if error is not None:
        raise error


@app.command("types")
def types_cmd(
    region: str | None = typer.Option(None, "--region", help="Prices for this region (default: AWS_REGION, "
                                      "else us-east-1)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """The instance types infprov supports: chips, NeuronCores, vCPUs, memory and the on-demand price."""
    render.render_types(lifecycle.types(region), json_out)


@app.command("preflight")
def preflight_cmd(
    region: str | None = typer.Option(None, "--region", help="AWS region for the AMI check."),
    sandbox: bool = typer.Option(
        False, "--sandbox",
        help="Check the sandbox's pins against its stand-in download server, and the AMI on its EC2 endpoint.",
    ),
    no_ami: bool = typer.Option(False, "--no-ami", help="Skip the AMI check (no AWS credentials needed)."),
    fresh: bool = typer.Option(False, "--fresh", help="Ask again what was checked within the last day."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document."),
    instance_type: str | None = typer.Option(
        None, "--type", help="Only what this instance type's Neuron generation fetches (default: both generations)."
    ),
) -> None:
    """Check from here that everything an instance will fetch still exists (one line per item)."""
    outcomes = lifecycle.preflight(region, sandbox, no_ami, fresh, instance_type)
    render.render_preflight(outcomes, json_out)
    if not all(o.ok for o in outcomes):
        raise typer.Exit(1)


@app.command("status")
def cloud_status(
    name: str | None = typer.Option(None, "--name", help="Only this cluster (default: all)."),
    region: str | None = typer.Option(None, "--region", help="AWS region (default: AWS_REGION / the profile's)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document."),
    sandbox: bool = typer.Option(False, "--sandbox", help="Look in the local sandbox instead of AWS."),
    inventory: str | None = typer.Option(None, "--inventory", help=_INVENTORY_HELP),
    no_health: bool = typer.Option(False, "--no-health", help="Do not ask each running host's Triton (EC2's view "
                                   "only)."),
) -> None:
    """Show infprov's clusters as EC2 sees them (state, address, uptime, cost so far) and what Triton says on each
    running host (server ready, model ready, requests served)."""
    render.render_status(lifecycle.status(name, region, sandbox, inventory, health=not no_health), json_out)


@app.command("stop")
def cloud_stop(
    cluster: str | None = typer.Argument(None, help="The cluster (as --name; default: the inventory's one)."),
    name: str | None = typer.Option(None, "--name", help=_CLUSTER_HELP),
    region: str | None = typer.Option(None, "--region", help="AWS region (default: AWS_REGION / the profile's)."),
    sandbox: bool = typer.Option(False, "--sandbox", help="The cluster lives in the local sandbox."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document."),
    inventory: str | None = typer.Option(None, "--inventory", help=_INVENTORY_HELP),
) -> None:
    """Stop a cluster's instances: their disks (EBS) stay, compute billing stops; `infprov start` brings them and
    the server back."""
    result = lifecycle.stop(_cluster_argument(cluster, name), region, sandbox, inventory)
    render.render_stop(result, json_out)


@app.command("start")
def cloud_start(
    cluster: str | None = typer.Argument(None, help="The cluster (as --name; default: the inventory's one)."),
    name: str | None = typer.Option(None, "--name", help=_CLUSTER_HELP),
    region: str | None = typer.Option(None, "--region", help="AWS region (default: AWS_REGION / the profile's)."),
    sandbox: bool = typer.Option(False, "--sandbox", help="The cluster lives in the local sandbox."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Start without asking."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document."),
    inventory: str | None = typer.Option(None, "--inventory", help=_INVENTORY_HELP),
    skip_server: bool = typer.Option(False, "--skip-server", help="Only start the instances: no Triton."),
) -> None:
    """Start a stopped cluster and bring Triton back up on it (from the kept environment image: no new setup)."""
    outcome = lifecycle.start(
        _cluster_argument(cluster, name), region, sandbox, inventory, yes=yes, skip_server=skip_server,
        before_server=None if json_out else render.before_server, on_event=None if json_out else render.show_event,
    )  # fmt: skip
    render.render_up_outcome(outcome, json_out)
    _fail_on(outcome.error())


@app.command("teardown")
def cloud_teardown(
    cluster: str | None = typer.Argument(None, help="The cluster (as --name; default: the inventory's one)."),
    name: str | None = typer.Option(None, "--name", help=_CLUSTER_HELP),
    all_clusters: bool = typer.Option(False, "--all", help="Every cluster this infprov home made in the region."),
    region: str | None = typer.Option(None, "--region", help="AWS region (default: AWS_REGION / the profile's)."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Remove without asking."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List what would be removed; change nothing."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document."),
    sandbox: bool = typer.Option(False, "--sandbox", help="Tear down in the local sandbox instead of AWS."),
    inventory: str | None = typer.Option(None, "--inventory", help=_INVENTORY_HELP),
    any_home: bool = typer.Option(
        False, "--any-home", help="Also clusters another infprov home (a teammate's INFPROV_HOME) made in this account."
    ),
    cache: bool = typer.Option(
        False, "--cache", help="With --all: also delete the region's environment cache (its ECR repository)."
    ),
) -> None:
    """Terminate and delete everything infprov made for the cluster, then prove nothing tagged is left."""
    name = _cluster_argument(cluster, name)
    result = lifecycle.teardown(name, all_clusters, region, sandbox, yes, dry_run, inventory, any_home, cache)
    render.render_teardown(result, json_out)
    _fail_on(lifecycle.teardown_error(result))


@app.command("auto-teardown")
def auto_teardown_cmd(
    cluster: str | None = typer.Argument(None, help="The cluster (default: the inventory's one cluster)."),
    name: str | None = typer.Option(None, "--name", help="The cluster, as an option."),
    in_: str | None = typer.Option(None, "--in", help="The new deadline from now (4h, 90m, 1h30m)."),
    cancel: bool = typer.Option(False, "--cancel", help="Cancel the deadline: the instances run until teardown."),
    inventory: str | None = typer.Option(None, "--inventory", help=_INVENTORY_HELP),
) -> None:
    """Move or cancel a cluster's auto-teardown deadline (set by `up --auto-teardown`)."""
    from infprov.provision import autoteardown

    chosen = _cluster_argument(cluster, name)
    if (in_ is None) == (not cancel):
        raise UsageError("give one of --in DURATION or --cancel", "e.g. infprov auto-teardown --in 2h")
    seconds = autoteardown.parse_duration(in_) if in_ is not None else None
    lifecycle.auto_teardown(chosen, inventory, seconds)


def _cluster_argument(positional: str | None, option: str | None) -> str | None:
    """A cluster named as an argument (`infprov teardown demo`) or with --name; both must agree."""
    from infprov.provision.specs import validate_name

    if positional is not None and option is not None and positional != option:
        raise UsageError(f"cluster {positional!r} and --name {option!r} disagree", "give the cluster once")
    chosen = positional if positional is not None else option
    return validate_name(chosen) if chosen is not None else None


# ---------------------------------------------------------------- inventory / play
@app.command("inventory")
def inventory_show(
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document."),
    ssh_config: bool = typer.Option(
        False, "--ssh-config", help="Print an OpenSSH config block per host, so `ssh <instance-id>` works."
    ),
    inventory: str | None = typer.Option(
        None, "--inventory", help="Inventory file (default: INFPROV_HOME/inventory.yml)."
    ),
) -> None:
    """Show the hosts infprov knows (an Ansible YAML inventory: `ansible -i` reads the same file)."""
    if ssh_config:
        typer.echo(lifecycle.ssh_config(inventory), nl=False)
    else:
        render.render_inventory(lifecycle.inventory(inventory), json_out)


@app.command("play")
def play(
    playbook: str = typer.Argument(..., help="A playbook file (run by ansible-core), or a built-in playbook's name "
                                   "(server, bench: run by infprov's engine)."),
    name: str | None = typer.Option(None, "--name", help="Only the hosts of this cluster."),
    host: str | None = typer.Option(None, "--host", help="Only this host (instance id or address)."),
    limit: str | None = typer.Option(None, "--limit", "-l", help="Only the hosts matching this Ansible pattern."),
    check: bool = typer.Option(False, "--check", "-C", help="Report what would change; change nothing."),
    diff: bool = typer.Option(False, "--diff", "-D", help="Show what changed in files and templates (ansible-core)."),
    extra_vars: list[str] = typer.Option(
        [], "-e", "--extra-vars", help="k=v (repeatable), a JSON/YAML mapping, or @file: variables for the run."
    ),
    forks: int | None = typer.Option(None, "--forks", "-f", min=1, help="Hosts worked on at a time (default: all)."),
    verbose: int = typer.Option(0, "-v", "--verbose", count=True,
                                help="More detail: each task's output; -vvv and on ansible-core's own."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document."),
    inventory: str | None = typer.Option(
        None, "--inventory", help="Inventory file (default: INFPROV_HOME/inventory.yml)."
    ),
    tags: list[str] = typer.Option([], "--tags", "-t", help="Only tasks with these tags (comma-separated)."),
    skip_tags: list[str] = typer.Option([], "--skip-tags", help="Leave out tasks with these tags (comma-separated)."),
    engine: str = typer.Option("auto", "--engine", help="ansible (ansible-core: the default for a playbook file) "
                               "or infprov (its own engine: the default for the built-in names)."),
    syntax_check: bool = typer.Option(False, "--syntax-check", help="Check the playbook; run nothing."),
) -> None:
    """Run a playbook over SSH against the inventory's hosts, in parallel, with Ansible's recap."""
    if syntax_check:
        checked = lifecycle.play_syntax_check(playbook, engine=engine, inventory=inventory)
        if json_out:
            ui.emit_json({"playbook": checked, "syntax": "ok"})
        else:
            ui.ok(f"{checked}: the syntax is fine (nothing ran)")
        return
    result = lifecycle.play(
        playbook, name=name, host=host, check=check, extra_vars=extra_vars, forks=forks, inventory=inventory,
        tags=tags, skip_tags=skip_tags, limit=limit, diff=diff, verbosity=verbose, engine=engine,
        on_event=None if json_out else render.show_event, on_line=None if json_out else render.show_line,
        on_output=None if json_out else render.show_line,
    )  # fmt: skip
    render.render_recap(result, json_out)
    _fail_on(lifecycle.play_error(result))


# ---------------------------------------------------------------- server (logs / ssh)


@app.command("logs")
def logs(
    name: str | None = typer.Option(
        None, "--name", help="The cluster (when it has one host); with --bundle, only this cluster (default: each)."
    ),
    host: str | None = typer.Option(None, "--host", help="Instance id or address."),
    follow: bool = typer.Option(False, "-f", "--follow", help="Keep printing new lines."),
    tail: int | None = typer.Option(200, "--tail", help="How many lines from the end (default 200)."),
    inventory: str | None = typer.Option(None, "--inventory", help=_INVENTORY_HELP),
    bundle: str | None = typer.Option(
        None, "--bundle", help="Write a support archive (tar.gz, secrets masked) per cluster into this folder."
    ),
    json_out: bool = typer.Option(False, "--json", help="With --bundle: print one JSON document."),
    setup: bool = typer.Option(False, "--setup", help="The setup run's log (setup.sh in the server container, kept "
                               "on the host) instead of the server's."),
) -> None:
    """Print the Triton server container's log from a host (or the setup run's: --setup), or (--bundle) collect
    a support archive."""
    import subprocess

    if bundle is not None:
        if follow or host or setup:
            raise UsageError("--bundle collects whole clusters: it takes --name, not --host, --follow or --setup",
                             "e.g. infprov logs --bundle . --name N")
        made = lifecycle.logs_bundle(bundle, name, inventory)
        render.render_bundles(made, json_out)
        _fail_on(lifecycle.bundle_error(made))
        return
    if json_out:
        raise UsageError("--json goes with --bundle", "logs prints the container's log as it is")
    raise typer.Exit(subprocess.call(lifecycle.logs_argv(name, host, inventory, tail, follow, setup)))


class _RemoteCommand(typer.core.TyperCommand):
    """`infprov ssh [CLUSTER] [-- COMMAND...]`: what follows `--` is the remote command, word for word; what
    comes before it is parsed as usual (so `infprov ssh demo -- ls` and `infprov ssh -- ls` both mean ls)."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if "--" in args:
            at = args.index("--")
            ctx.meta["infprov_remote"] = args[at + 1:]
            args = args[:at]
        return super().parse_args(ctx, args)


@app.command("ssh", cls=_RemoteCommand)
def ssh(
    ctx: typer.Context,
    cluster: str | None = typer.Argument(None, help="The cluster (as --name, when it has one host)."),
    command: list[str] | None = typer.Argument(None, help="A command to run instead of a shell (after --)."),
    name: str | None = typer.Option(None, "--name", help="The cluster (when it has one host)."),
    host: str | None = typer.Option(None, "--host", help="Instance id or address."),
    inventory: str | None = typer.Option(None, "--inventory", help=_INVENTORY_HELP),
) -> None:
    """Open an SSH session on a host (or run a command there), with infprov's key and pinned host keys."""
    words = [*(command or []), *ctx.meta.get("infprov_remote", [])]
    argv = lifecycle.ssh_argv(_cluster_argument(cluster, name), host, inventory, words)
    os.execvp(argv[0], argv)


@app.command("tunnel")
def tunnel(
    name: str | None = typer.Option(None, "--name", help="The cluster (when it has one host)."),
    host: str | None = typer.Option(None, "--host", help="Instance id or address."),
    port: int = typer.Option(8000, "--port", help="Triton's port to forward (8000 HTTP, 8001 gRPC, 8002 metrics)."),
    local_port: int | None = typer.Option(None, "--local-port", help="Port on this machine (default: the same)."),
    inventory: str | None = typer.Option(None, "--inventory", help=_INVENTORY_HELP),
) -> None:
    """Forward a host's Triton port to this machine over SSH (Triton listens on the host's loopback only)."""
    target, argv = lifecycle.tunnel_argv(name, host, inventory, port, local_port)
    ui.step(f"forwarding 127.0.0.1:{local_port or port} to {target.address}'s Triton port {port}; Ctrl-C stops")
    os.execvp(argv[0], argv)


# ---------------------------------------------------------------- bench / results
@app.command("bench")
def bench(
    cluster: str | None = typer.Argument(None, help="Every host of this cluster (as --name)."),
    host: str | None = typer.Option(None, "--host", help="Instance id or address (default: every host)."),
    name: str | None = typer.Option(None, "--name", help="Every host of this cluster."),
    model: str | None = typer.Option(None, "--model", help="Model name (default: the host type's rn50 model)."),
    batch_size: int | None = typer.Option(None, "--batch-size", help="Images per request (default: NeuronCores)."),
    threads: int = typer.Option(2, "--threads", help="Concurrent client workers, 1 to 64."),
    request_rate: float | None = typer.Option(None, "--request-rate", help="Send this many requests a second over "
                                              "the --threads connections, whatever the answers (client only)."),
    limit: float = typer.Option(30.0, "--limit", help="Seconds a benchmark point runs, 1 to 3600 (in 3 windows; "
                                "an unstable point runs up to 10 windows and is flagged)."),
    warmup: int = typer.Option(5, "--warmup", help="Warm-up requests per worker, not measured."),
    tool: str = typer.Option("client", "--tool", help="client (infprov's) or perf_analyzer."),
    sweep: list[str] | None = typer.Option(None, "--sweep", help="e.g. 'batch=16,32 threads=1,2,4'; ranges "
                                           "START:END[:STEP] (threads=1:8:2); concurrency= as threads=; "
                                           "rate=50,100 for request-rate points."),
    input_data: str | None = typer.Option(None, "--input-data", help="Send the requests in this perf_analyzer "
                                          "JSON input-data file (default: valid data made from the served config)."),
    allow_small_batch: bool = typer.Option(False, "--allow-small-batch", help="Allow batch < NeuronCores."),
    out: str | None = typer.Option(None, "--out", help="Results folder (default: INFPROV_HOME/runs/bench-...)."),
    p99: str | None = typer.Option(None, "--p99", help="A p99 budget, e.g. 100ms: the plot marks the best point "
                                   "within it."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show every line the clients print (they are "
                                 "always kept in the run folder's output.log)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document; progress as JSON lines on "
                                  "stderr."),
    inventory: str | None = typer.Option(None, "--inventory", help=_INVENTORY_HELP),
) -> None:
    """Benchmark Triton on the hosts (client in the SDK container, --net host) and bring the results home."""
    from infprov.provision import bench as bench_mod

    name = _cluster_argument(cluster, name)
    request = lifecycle.bench_request(
        name, host, inventory, model=model, batch_size=batch_size, threads=threads, request_rate=request_rate,
        limit=limit, warmup=warmup, tool=tool, sweep=sweep, input_data=input_data,
        allow_small_batch=allow_small_batch, p99=p99,
    )
    plan = request.plan
    run_dir = bench_mod.make_run_dir(out, name or host or "all")
    view = render.BenchView(verbose=verbose, json_lines=json_out)
    if json_out:
        view.emit({"event": "start", "run_dir": str(run_dir), "hosts": len(request.hosts),
                   "points": len(plan.points), "tool": plan.tool, "limit_s": plan.limit_s})
    else:
        ui.step(f"{len(request.hosts)} host(s), {len(plan.points)} point(s) of {plan.limit_s:g} s with "
                f"{plan.tool}: results in {run_dir}" + ("" if verbose else " (the clients' lines: output.log there)"))

    # Ctrl-C (once or more) stops the clients; what was measured is saved and shown before the command ends
    with bench_mod.Interrupts(view.line) as interrupts:
        outcome = lifecycle.bench(request, run_dir, on_line=view.line, on_progress=view.event,
                                  interrupts=interrupts, live=view)
        if json_out:
            ui.emit_json(outcome.summary)
        else:
            render.render_run(outcome.summary)
    error = outcome.error()
    if error is not None:
        raise error


def bench_shown(text: str) -> str:
    from infprov.provision.bench import shown

    return shown(text, 80)


@app.command("results")
def results_cmd(
    run: str | None = typer.Argument(None, help="A run's folder name (default: list the runs)."),
    compare: str | None = typer.Option(None, "--compare", help="Another run to show side by side."),
    p99: str | None = typer.Option(None, "--p99", help="A p99 budget, e.g. 100ms: 'best' is the most images/s "
                                   "within it."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """List past benchmark runs, show one, or compare two (and plot their frontiers)."""
    from infprov.provision.recommend import parse_budget

    if run is None and compare is not None:
        raise UsageError(f"--compare {bench_shown(compare)} needs a first run to compare it with",
                         f"give both: `infprov results RUN --compare {bench_shown(compare)}` (`infprov results` "
                         "lists the runs)")
    budget = None if p99 is None else parse_budget(p99)
    if run is None:
        render.render_runs(lifecycle.runs(budget), json_out, budget)
        return
    docs = lifecycle.load_runs([run, compare] if compare else [run])
    plot = lifecycle.plot_compare(docs, budget) if compare else None
    if json_out:
        from infprov.client import results

        rows = results.compare_rows(docs, budget)
        ui.emit_json({"runs": docs, "compare": rows, "budget_p99_ms": budget,
                      "warnings": results.compare_warnings(rows), "plot": plot and str(plot)}
                     if compare else docs[0])
        return
    for doc in docs:
        render.render_run(doc)
    if compare:
        render.render_compare(docs, budget)
        if plot is not None:
            from infprov.provision.bench import printable

            ui.out.print(printable(f"plot: {plot}"), markup=False, highlight=False, soft_wrap=True)


@app.command("recommend")
def recommend_cmd(
    types: str = typer.Option(..., "--types", help="Instance types to compare, e.g. inf1.xlarge,inf2.xlarge."),
    p99: str = typer.Option(..., "--p99", help="The p99 latency budget, e.g. 200ms or 0.2s."),
    model: str | None = typer.Option(None, "--model", help="Model name (default: each type's rn50 model)."),
    limit: float = typer.Option(10.0, "--limit", help="Seconds each point measures, 1 to 3600."),
    region: str | None = typer.Option(None, "--region", help="AWS region (default: AWS_REGION / the profile's)."),
    sandbox: bool = typer.Option(False, "--sandbox", help="Use the local sandbox instead of AWS."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Launch what is missing without asking."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """The cheapest type, batch and concurrency within a p99 budget: uses the clusters that exist (rec-<type>),
    launches the missing ones and tears them down at the end (on Ctrl-C too), ranked by $ per million images."""
    from infprov.provision import bench as bench_mod
    from infprov.provision import recommend

    chosen = recommend.parse_types(types)
    budget = recommend.parse_budget(p99)
    if not 1 <= limit <= 3600:
        raise UsageError(f"--limit {limit:g} is out of range", "give seconds from 1 to 3600")
    if model is not None:
        bench_mod.check_model(model)

    def say(line: str) -> None:
        if not json_out:
            ui.err.print(bench_mod.printable(line), markup=False, highlight=False, soft_wrap=True)

    doc = recommend.run(chosen, budget, model=model, limit=limit, region=region, sandbox=sandbox, yes=yes,
                        on_line=say, confirm=lambda q: typer.confirm(q, default=False, err=True))
    if json_out:
        ui.emit_json(doc)
    else:
        render.render_recommend(doc)
    left = [x for t in doc["teardown"] for x in t["left"]]
    if left:
        raise InfprovError(f"still left after teardown: {', '.join(left)}", "run `infprov teardown` again")
    if doc["interrupted"]:
        raise InfprovError("interrupted: the ranking covers what was measured; saved in " + doc["path"])


if __name__ == "__main__":
    app()
