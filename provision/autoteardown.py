"""`up --auto-teardown DURATION`: each instance ends itself at a deadline, laptop closed or not.

How: RunInstances already sets InstanceInitiatedShutdownBehavior=terminate, so an instance that powers
itself off is terminated (and its encrypted root volume, DeleteOnTermination, deleted) by EC2. `up`
then runs `sudo shutdown -P +N` on each host over SSH. Why `shutdown` and not a systemd timer: it is on
every Ubuntu AMI, systemd keeps one scheduled shutdown and the next `shutdown +N` replaces it (so `up`
again moves the deadline, `shutdown -c` cancels it), it outlives the SSH session, and it warns anyone
logged in. Its limits: minutes only, logins are refused in the last 5 minutes (/run/nologin), and a
reboot forgets it (run `up` again after one). The deadline is also tagged on each instance
(infprov:auto-teardown, UTC) so `status` can show it from any machine.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from infprov.floor import paths
from infprov.floor.errors import InfprovError, UsageError
from infprov.provision import ui

if TYPE_CHECKING:
    from infprov.playbooks.connection import CommandResult, Connection

TAG = "infprov:auto-teardown"
MIN_SECONDS = 60
MAX_SECONDS = 7 * 24 * 3600
_PART_RE = re.compile(r"(\d+)([dhm])")
_UNITS = {"d": 86400, "h": 3600, "m": 60}


def parse_duration(text: str, option: str = "--auto-teardown") -> int:
    """`4h`, `90m`, `1h30m`, `2d` -> seconds, a whole number of minutes from 1 minute to 7 days."""
    raw = text.strip().lower()
    parts = _PART_RE.findall(raw)
    if not raw or not parts or "".join(n + u for n, u in parts) != raw:
        raise UsageError(f"{option} {text!r} is not a duration",
                         "give hours and/or minutes, e.g. 4h, 90m or 1h30m (the host's shutdown counts minutes)")
    seconds = sum(int(n) * _UNITS[u] for n, u in parts)
    if not MIN_SECONDS <= seconds <= MAX_SECONDS:
        raise UsageError(f"{option} {text} is out of range", "give 1m to 7d")
    return seconds


def shutdown_command(minutes: int) -> str:
    """What runs on the host: power off in `minutes`, replacing any shutdown scheduled before."""
    return f"sudo -n shutdown -P +{int(minutes)}"


def deadline_tag(deadline: datetime) -> str:
    return deadline.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def read_deadline(tags: Mapping[str, str]) -> datetime | None:
    value = tags.get(TAG)
    if not value:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        return None


def describe(deadline: datetime | None, now: datetime) -> str:
    if deadline is None:
        return "none"
    left = (deadline - now).total_seconds()
    when = deadline_tag(deadline)
    if left <= 0:
        return f"{when} (due)"
    hours, rest = divmod(int(left), 3600)
    return f"{when} (in {hours}h{rest // 60:02d}m)"


def schedule(prov: Any, hosts: Sequence[Any], seconds: int, now: datetime | None = None) -> datetime:
    """Schedule each host's power-off and tag its instance with the deadline; returns the deadline.

    hosts: the inventory's records of the cluster (name = instance id). Every host is tried; any that
    could not be scheduled fails the whole step afterwards, naming them.
    """
    minutes = math.ceil(seconds / 60)
    start = now or datetime.now(timezone.utc)
    deadline = (start + timedelta(minutes=minutes)).replace(microsecond=0)
    done, failed = on_each(hosts, shutdown_command(minutes))
    if done:
        prov.create_tags(done, {TAG: deadline_tag(deadline)})
    if failed:
        raise InfprovError(f"the auto-teardown could not be set on {len(failed)} host(s): {'; '.join(failed)}",
                           "they keep running (and costing) until `infprov teardown`; run `up` again to retry")
    ui.ok(f"auto-teardown: {len(done)} instance(s) power off and terminate at {deadline_tag(deadline)} "
          f"(in {minutes} min); `infprov auto-teardown --in D` moves it, `--cancel` cancels it, "
          "`infprov teardown` ends them now")
    return deadline


CANCEL_COMMAND = "sudo -n shutdown -c"
CANCELLED = "cancelled"  # the tag's value once cancelled (CreateTags is what the IAM policy allows; no DeleteTags)


def cancel(prov: Any, hosts: Sequence[Any]) -> None:
    """Cancel each host's scheduled power-off and mark its instance's deadline tag cancelled."""
    done, failed = on_each(hosts, CANCEL_COMMAND)
    if done:
        prov.create_tags(done, {TAG: CANCELLED})
    if failed:
        raise InfprovError(f"the auto-teardown could not be cancelled on {len(failed)} host(s): {'; '.join(failed)}",
                           "run `infprov auto-teardown --cancel` again, or the hosts power off at their deadline")
    ui.ok(f"auto-teardown cancelled on {len(done)} instance(s): they run until `infprov teardown`")


def on_each(hosts: Sequence[Any], steps: str | Callable[[Connection], CommandResult]) -> tuple[list[str], list[str]]:
    """Run a command (or steps on the host's connection, the last result deciding) on every host over SSH, one
    after another, each host tried whatever the others did: the names it worked on, and a line for each it
    failed on."""
    from infprov.playbooks.connection import SshConnection

    failed: list[str] = []
    done: list[str] = []
    for host in hosts:
        conn = SshConnection(host, paths.known_hosts())
        try:
            res = conn.run(steps, timeout=60) if isinstance(steps, str) else steps(conn)
        except Exception as exc:  # noqa: BLE001 - any SSH failure: reported with the host below
            failed.append(f"{host.name}: {exc}")
            continue
        finally:
            conn.close()
        if res.exit_code != 0:
            what = f"`{steps}` exited" if isinstance(steps, str) else "exited"
            failed.append(f"{host.name}: {what} {res.exit_code}: {(res.err or res.out).strip()[-200:]}")
        else:
            done.append(str(host.name))
    return done, failed
