"""Waiting for instances and reaching their hosts over SSH, with their host keys pinned."""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence

from infprov.floor import paths
from infprov.floor.errors import InfprovError
from infprov.floor.wait import wait_until
from infprov.inventory.model import Host
from infprov.provision import catalog, ui
from infprov.provision.access import managed_key_file, this_home_key, user_key_file
from infprov.provision.ec2 import Instance
from infprov.provision.providers import Provider
from infprov.provision.specs import SSH_USER, Timeouts, ticker


def wait_state(prov: Provider, ids: Sequence[str], target: str, timeout: float, timeouts: Timeouts) -> None:
    states: dict[str, str] = {}

    def probe() -> bool:
        states.clear()
        states.update({i.id: i.state for i in prov.instances({"instance-id": list(ids)})})
        if target == "terminated":  # EC2 forgets terminated instances after a while
            return all(states.get(i, "terminated") == target for i in ids)
        return all(states.get(i) == target for i in ids)

    wait_until(
        probe,
        what=f"{len(ids)} instance(s) to be {target}",
        timeout=timeout,
        interval=timeouts.interval,
        on_tick=ticker(f"{len(ids)} instance(s) to be {target}"),
        last_state=lambda: ", ".join(f"{k}: {v}" for k, v in sorted(states.items())) or "none found",
    )


def wait_running(prov: Provider, ids: Sequence[str], timeouts: Timeouts) -> None:
    """Wait until every instance runs; one that ends meanwhile (e.g. no spot capacity) fails at once."""
    if not ids:
        return
    states: dict[str, tuple[str, str]] = {}

    def probe() -> str | None:
        for inst in prov.instances({"instance-id": list(ids)}):
            states[inst.id] = (inst.state, inst.state_reason)
        dead = {k: v for k, v in states.items() if v[0] in ("shutting-down", "terminated")}
        if dead:
            return "; ".join(f"{k}: {s} ({why or 'no reason given'})" for k, (s, why) in sorted(dead.items()))
        return "" if all(states.get(i, ("",))[0] == "running" for i in ids) else None

    ui.step(f"waiting for {len(ids)} instance(s) to run")
    dead = wait_until(
        probe,
        what=f"{len(ids)} instance(s) to be running",
        timeout=timeouts.running,
        interval=timeouts.interval,
        on_tick=ticker("the instances to run"),
        last_state=lambda: ", ".join(f"{k}: {v[0]}" for k, v in sorted(states.items())) or "none found",
    )
    if dead:
        raise InfprovError(f"instance(s) ended while starting: {dead}", "")


def wait_status_ok(prov: Provider, ids: Sequence[str], timeouts: Timeouts) -> None:
    if not ids:
        return
    checks: dict[str, tuple[str, str, str]] = {}

    def probe() -> bool:
        checks.update(prov.instance_statuses(ids))
        return all(checks.get(i, ("", "", ""))[1:] == ("ok", "ok") for i in ids)

    ui.step(f"waiting for the status checks of {len(ids)} instance(s)")
    wait_until(
        probe,
        what="the EC2 status checks to pass",
        timeout=timeouts.status_ok,
        interval=timeouts.interval,
        on_tick=ticker("the status checks"),
        last_state=lambda: ", ".join(f"{k}: instance {v[1]}, system {v[2]}" for k, v in sorted(checks.items()))
        or "no status yet",
    )


def wait_for_ssh(
    hosts: Sequence[Host], timeouts: Timeouts, console: Callable[[str], str] | None = None
) -> None:
    """The real SSH wait: the port answers, then a key login as the user runs a command.

    Host keys are pinned in INFPROV_HOME/known_hosts on first contact (by the playbook engine's
    connection, the one SSH path); a key that differs from a pinned one stops the wait at once.
    With `console` (instance id -> its console output), a first contact is checked against the host
    key fingerprints the instance printed there, when it printed any, instead of being trusted.
    """
    pending = list(hosts)
    ui.step(f"waiting for SSH on {', '.join(f'{h.address}:{h.port}' for h in hosts)}")

    def port_probe() -> bool:
        for host in list(pending):
            with socket.create_connection((host.address, host.port), timeout=3):
                pending.remove(host)
        return not pending

    wait_until(
        port_probe,
        what=f"SSH port on {len(hosts)} host(s)",
        timeout=timeouts.ssh_port,
        interval=timeouts.interval,
        on_tick=ticker("the SSH port"),
        hint="the security group allows SSH only from --ssh-cidr; check it matches the address you connect from",
    )
    pending = list(hosts)
    from infprov.playbooks.errors import HostKeyChanged

    expected: dict[str, list[str]] = {}

    def login_probe() -> HostKeyChanged | bool:
        for host in list(pending):
            if console is not None and not expected.get(host.instance_id):
                from infprov.playbooks.hostkeys import console_fingerprints

                expected[host.instance_id] = console_fingerprints(console(host.instance_id))
            try:
                ssh_login(host, expected=expected.get(host.instance_id) or None)
            except HostKeyChanged as exc:
                return exc  # waiting will not change a host key
            if console is not None and not expected.get(host.instance_id):
                ui.warn(f"{host.address}: its console output shows no SSH host key fingerprints yet, so the key "
                        "it presented was pinned unchecked (trust on first use); later logins must match it")
            pending.remove(host)
        return not pending

    outcome = wait_until(
        login_probe,
        what=f"an SSH login as {hosts[0].user if hosts else SSH_USER} on {len(hosts)} host(s)",
        timeout=timeouts.ssh_login,
        interval=timeouts.interval,
        on_tick=ticker("the SSH login"),
        hint="cloud-init may still be setting up the user; check the key file and the instance's console output",
    )
    if isinstance(outcome, HostKeyChanged):
        raise InfprovError(outcome.message, outcome.hint)


def ssh_login(host: Host, timeout: float = 15.0, expected: Sequence[str] | None = None) -> None:
    """One key login that runs `true`, through the playbook engine's SSH connection."""
    from infprov.playbooks.connection import SshConnection

    conn = SshConnection(host, paths.known_hosts(), connect_timeout=timeout, expected_fingerprints=expected)
    try:
        result = conn.run("true", timeout=timeout)
    finally:
        conn.close()
    if result.exit_code != 0:
        raise InfprovError(f"{host.address}: `true` exited {result.exit_code} over SSH: {result.tail(3)}", "")


def forget_host_keys(hosts: Sequence[tuple[str, int]]) -> None:
    """Drop pinned host keys of addresses that now belong to other machines (new or gone instances)."""
    from infprov.playbooks.hostkeys import forget_host_key

    for address, port in hosts:
        if address:
            forget_host_key(paths.known_hosts(), address, port)


def hosts_of(
    instances: Sequence[Instance], cluster: str, prov: Provider, user_key: str | None
) -> list[Host]:
    region = prov.region
    managed = this_home_key(region)

    def key_file(key_name: str) -> str:
        if key_name == managed:
            return str(managed_key_file(region))
        found = user_key_file(key_name)
        return str(found) if found else str(paths.keys_dir() / f"{key_name}.pem")

    hosts: list[Host] = []
    for inst in sorted(instances, key=lambda i: str(i.id)):
        itype = catalog.get(inst.instance_type)
        way = prov.reach(inst, itype, key_file, user_key, managed)
        hosts.append(
            Host(
                name=str(inst.id),
                address=way.address,
                user=way.user,
                key_file=way.key_file,
                port=way.port,
                instance_type=itype.name,
                neuron_devices=way.neuron_devices,
                neuron_cores=way.neuron_devices * itype.cores_per_device,
                region=region,
                cluster=cluster,
                extra=prov.inventory_extra(),
            )
        )
    return hosts
