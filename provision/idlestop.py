"""`up --idle-stop DURATION [--down]`: a cluster whose Triton serves no request for that long stops (or ends) itself.

How, reusing auto-teardown's mechanism: the decision and the power-off are the host's own, so it works with the
laptop closed. `up` sets each instance's InstanceInitiatedShutdownBehavior (stop, or terminate with --down:
what EC2 does when the host powers itself off), copies provision/idlewatch.py to the host and starts it
detached; the watch reads Triton's metrics on the host and runs `sudo -n shutdown -P now` once no request was
served for the duration. The setting is tagged on each instance (infprov:idle-stop, e.g. `30m stop`) so
`status` shows it from any machine and `start` arms the watch again (a stopped host's processes are gone, as a
reboot's are). `up` again replaces the watch (its clock starts over). Because the shutdown behaviour is per
instance, a stopping idle watch and an auto-teardown deadline (which must terminate) exclude each other.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from infprov.floor.errors import InfprovError, UsageError
from infprov.provision import autoteardown, ui

if TYPE_CHECKING:
    from infprov.playbooks.connection import CommandResult, Connection

TAG = "infprov:idle-stop"
STOP = "stop"
TERMINATE = "terminate"
_TAG_RE = re.compile(r"([1-9][0-9]{0,4})m (stop|terminate)")
FOLDER = ".infprov"  # in the login user's home on the host
MAX_EVERY = 30.0  # s between the watch's readings (at most; a tenth of a short idle time)


def parse(text: str) -> int:
    """The idle time in seconds (1m to 7d, whole minutes), as --auto-teardown takes it."""
    return autoteardown.parse_duration(text, "--idle-stop")


def check_options(idle_seconds: int | None, down: bool, lifetime: int | None) -> str | None:
    """The action (stop/terminate) for up's options, or None without --idle-stop; bad combinations refused."""
    if idle_seconds is None:
        if down:
            raise UsageError("--down goes with --idle-stop", "e.g. --idle-stop 30m --down (terminate when idle)")
        return None
    if not down and lifetime is not None:
        raise UsageError("--idle-stop without --down stops the instances, but --auto-teardown must terminate them "
                         "(an instance's own power-off does one or the other)",
                         "add --down (terminate when idle), or leave out one of the two")
    return TERMINATE if down else STOP


def check_cluster(cluster: str, tags_of: Sequence[Mapping[str, str]], idle: tuple[int, str] | None,
                  lifetime: int | None, now: datetime) -> None:
    """Refuse what `up` would leave contradicting itself on a cluster that exists: a stopping idle watch where an
    auto-teardown deadline is still pending (its power-off would then only stop the instance), or a new deadline
    where a stopping idle watch is set and this `up` does not replace it with one that terminates."""
    if idle is not None and idle[1] == STOP and lifetime is None:
        pending = [d for d in (autoteardown.read_deadline(t) for t in tags_of) if d is not None and d > now]
        if pending:
            when = autoteardown.deadline_tag(pending[0])
            raise UsageError(f"cluster {cluster} has an auto-teardown deadline ({when}), which must terminate it, "
                             "so its idle watch cannot stop it",
                             f"add --down, or cancel the deadline first: `infprov auto-teardown {cluster} --cancel`")
    if lifetime is not None and idle is None and any((read_tag(t) or (0, ""))[1] == STOP for t in tags_of):
        raise UsageError(f"cluster {cluster} stops itself when idle, so an auto-teardown deadline would only stop it",
                         "give --idle-stop D --down with --auto-teardown (both then terminate)")


def tag_value(seconds: int, action: str) -> str:
    return f"{max(1, seconds // 60)}m {action}"


def read_tag(tags: Mapping[str, str]) -> tuple[int, str] | None:
    """(seconds, action) from an instance's tags, or None (absent, or not a value infprov writes)."""
    match = _TAG_RE.fullmatch(tags.get(TAG, ""))
    if match is None:
        return None
    return int(match.group(1)) * 60, match.group(2)


def every(seconds: int) -> float:
    """How often the watch reads the metrics: a tenth of the idle time, at most MAX_EVERY, at least 2 s."""
    return max(2.0, min(MAX_EVERY, seconds / 10))


def watch_script() -> bytes:
    return Path(__file__).with_name("idlewatch.py").read_bytes()


def start_command(seconds: int) -> str:
    """The host's shell line that replaces any watch it runs by a new one (detached, its pid kept)."""
    folder = f"$HOME/{FOLDER}"
    pid, state, log = f"{folder}/idle-stop.pid", f"{folder}/idle-stop.json", f"{folder}/idle-stop.log"
    run = (f"python3 {folder}/idlewatch.py --idle {int(seconds)} --every {every(seconds):g} "
           f"--state {state}")
    return (
        f'old=$(cat "{pid}" 2>/dev/null); '
        f'if [ -n "$old" ] && grep -qs idlewatch.py "/proc/$old/cmdline"; then kill "$old"; fi; '
        f'rm -f "{state}"; '
        f'setsid nohup {run} </dev/null >"{log}" 2>&1 & echo $! > "{pid}"'
    )


def arm(prov: Any, hosts: Sequence[Any], seconds: int, action: str) -> None:
    """On each host: the instance's shutdown behaviour, the watch copied and (re)started, the tag. Every host is
    tried; any that failed fails the step afterwards, naming them."""
    failed: list[str] = []
    ready = []
    for host in hosts:
        try:
            prov.set_shutdown_behavior(str(host.name), action)
        except Exception as exc:  # noqa: BLE001 - EC2's refusal is reported with the host below
            failed.append(f"{host.name}: the instance's shutdown behaviour: {exc}")
        else:
            ready.append(host)
    script = watch_script()

    def copy_and_start(conn: Connection) -> CommandResult:
        copy = conn.run(f'mkdir -p "$HOME/{FOLDER}" && chmod 700 "$HOME/{FOLDER}" && '
                        f'cat > "$HOME/{FOLDER}/idlewatch.py"', stdin=script, timeout=60)
        return copy if copy.exit_code != 0 else conn.run(start_command(seconds), timeout=60)

    done, ssh_failed = autoteardown.on_each(ready, copy_and_start)
    failed += ssh_failed
    if done:
        prov.create_tags(done, {TAG: tag_value(seconds, action)})
    if failed:
        raise InfprovError(f"the idle watch could not be set on {len(failed)} host(s): {'; '.join(failed)}",
                           "they keep running (and costing) until `infprov stop` or `teardown`; run `up` again "
                           "to retry")
    verb = "stop" if action == STOP else "power off and terminate"
    ui.ok(f"idle-stop: {len(done)} instance(s) {verb} after {seconds // 60} min without a request served "
          f"(decided on each host from Triton's metrics)")


def describe(value: str | None) -> str:
    """What `status` shows for an instance's tag."""
    found = read_tag({TAG: value or ""})
    if found is None:
        return ""
    seconds, action = found
    return f"idle {seconds // 60}m -> {action}"

