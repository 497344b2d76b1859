"""The sandbox's network: the bridge, each host's namespace link, and the seal (no default route in
a host; the machine's iptables chain that drops whatever a host sends beyond the sandbox subnet)."""

from __future__ import annotations

import ipaddress
import subprocess
from pathlib import Path
from typing import Any

from infprov.floor.errors import InfprovError
from infprov.sandbox import system
from infprov.sandbox.places import HostSpec, bridge, gateway, prefix, seal_chain, subnet


def check_subnet_free() -> None:
    """Refuse a subnet that another interface already uses: routes would clash."""
    net = subnet()
    out = system.run(["ip", "-o", "-4", "addr", "show"], what="list addresses").stdout
    for line in out.splitlines():
        parts = line.split()
        if "inet" not in parts:
            continue
        iface = parts[1]
        addr = ipaddress.IPv4Interface(parts[parts.index("inet") + 1])
        if iface != bridge() and addr.network.overlaps(net):
            raise InfprovError(
                f"the sandbox subnet {net} is taken: {iface} has {addr}",
                "choose another with INFPROV_SANDBOX_SUBNET=10.x.y.0/24",
            )


def link_exists(name: str) -> bool:
    return Path(f"/sys/class/net/{name}").exists()


def set_link(name: str, up: bool) -> None:
    """Take the host's link to the sandbox bridge down or bring it back (a network outage)."""
    spec = HostSpec(int(name[1:]))
    system.run(["ip", "link", "set", spec.veth, "up" if up else "down"], what=f"set {spec.name}'s link")


def forget_neighbour(spec: HostSpec) -> None:
    """Drop the bridge's ARP entry for a host's address: a rebuilt host has a new MAC address,
    and a stale entry would black-hole its traffic for half a minute."""
    if link_exists(bridge()):
        system.run(["ip", "neigh", "flush", "to", spec.address, "dev", bridge()], what="flush ARP", check=False)


def make_network(spec: HostSpec, init_pid: int) -> None:
    """Name the host's network namespace (made by its init, owned by its user namespace, so the host's root
    may change it: its dockerd makes a bridge there) and link it to the sandbox bridge."""
    net = subnet()
    ns = spec.netns
    forget_neighbour(spec)
    system.run(["ip", "netns", "attach", ns, str(init_pid)], what=f"name netns {ns}")
    system.run(["ip", "link", "add", spec.veth, "type", "veth", "peer", "name", "eth0", "netns", ns],
               what=f"create veth {spec.veth}")
    system.run(["ip", "link", "set", spec.veth, "master", bridge(), "up"], what=f"attach {spec.veth}")
    system.run(["ip", "-n", ns, "addr", "add", f"{spec.address}/{net.prefixlen}", "dev", "eth0"],
               what=f"address {spec.name}")
    system.run(["ip", "-n", ns, "link", "set", "lo", "up"], what=f"{spec.name} lo up")
    system.run(["ip", "-n", ns, "link", "set", "eth0", "up"], what=f"{spec.name} eth0 up")
    # No default route: the host reaches its subnet (the other hosts, the gateway address) on-link and
    # nothing else; anything else fails at once with "network is unreachable". (The machine's side of the
    # seal, `seal`, drops whatever a host sends beyond the subnet should it add a route of its own.)


def has_default_route(spec: HostSpec) -> bool | None:
    """Whether the host's network namespace has a default route (IPv4 or IPv6); None if it is gone."""
    if not Path(f"/run/netns/{spec.netns}").exists():
        return None
    out = ""
    for family in ("-4", "-6"):
        proc = system.run(["ip", "-n", spec.netns, family, "route", "show", "default"],
                          what=f"read {spec.name}'s routes", check=False, timeout=10)
        out += proc.stdout.strip()
    return bool(out)


def seal_comment() -> list[str]:
    return ["-m", "comment", "--comment", f"infprov sandbox {prefix()}: nothing leaves {subnet()}"]


def gateway_comment() -> list[str]:
    return ["-m", "comment", "--comment",
            f"infprov sandbox {prefix()}: at {gateway()} only the download server, port {DOWNLOADS_PORT}"]


# The stand-in download server's port on the gateway address (sandbox/downloads.py serves it there) and the
# registry's, ECR's stand-in data plane (sandbox/registry.py): the only things a host may open a connection to
# on the machine.
DOWNLOADS_PORT = 80
REGISTRY_PORT = 5000


def registry_comment() -> list[str]:
    return ["-m", "comment", "--comment",
            f"infprov sandbox {prefix()}: at {gateway()} the registry, port {REGISTRY_PORT}"]


def _seal_rules() -> list[tuple[str, list[str]]]:
    """(chain, rule) pairs: whatever comes in on the sandbox bridge, forwarded or addressed to the machine,
    is dropped unless it is addressed to the sandbox subnet itself (the hosts and the gateway address); at the
    gateway address (the machine itself) a host may only answer the machine's own connections (SSH from
    infprov) and open one to the stand-in download server or the registry: every other port of the machine is
    dropped."""
    chain, gw = seal_chain(), gateway()
    return [
        (chain, ["!", "-d", str(subnet()), *seal_comment(), "-j", "DROP"]),
        (chain, ["-d", gw, "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", *gateway_comment(), "-j", "RETURN"]),
        (chain, ["-d", gw, "-p", "tcp", "--dport", str(DOWNLOADS_PORT), *gateway_comment(), "-j", "RETURN"]),
        (chain, ["-d", gw, "-p", "tcp", "--dport", str(REGISTRY_PORT), *registry_comment(), "-j", "RETURN"]),
        (chain, ["-d", gw, *gateway_comment(), "-j", "DROP"]),
        ("FORWARD", ["-i", bridge(), *seal_comment(), "-j", chain]),
        ("INPUT", ["-i", bridge(), *seal_comment(), "-j", chain]),
    ]


def _iptables(*args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    return system.run(["iptables", "-w", "10", *args], what="change the machine's iptables rules",
                      check=check, timeout=30)


def seal_chain_exists() -> bool:
    if system.which("iptables") is None:
        return False
    return _iptables("-S", seal_chain()).returncode == 0


def seal() -> None:
    """Add the machine's drop rule for this sandbox; adds only what is missing (up twice adds nothing)."""
    if not seal_chain_exists():
        _iptables("-N", seal_chain(), check=True)
    own = 0
    for chain, rule in _seal_rules():
        if chain == seal_chain():
            own += 1
        if _iptables("-C", chain, *rule).returncode != 0:
            # the chain's own rules in their order (a rule added by a newer infprov lands where it belongs, ahead
            # of the drop that follows it); the jumps first in FORWARD and INPUT, ahead of any ACCEPT another tool
            # (docker) puts there
            op = ["-I", chain, str(own)] if chain == seal_chain() else ["-I", chain, "1"]
            _iptables(*op, *rule, check=True)
    # IPv6 is off on the bridge: the machine neither answers nor routes anything the hosts send over it
    sysctl = Path(f"/proc/sys/net/ipv6/conf/{bridge()}/disable_ipv6")
    if sysctl.exists() and sysctl.read_text().strip() != "1":
        sysctl.write_text("1")


def unseal() -> None:
    """Remove this sandbox's jumps and chain (another sandbox's, under another prefix, stay)."""
    if system.which("iptables") is None:
        return
    for chain, rule in [r for r in _seal_rules() if r[0] != seal_chain()]:
        for _ in range(20):  # also duplicates, should any have been added by hand
            if _iptables("-D", chain, *rule).returncode != 0:
                break
    if seal_chain_exists():
        _iptables("-F", seal_chain())
        _iptables("-X", seal_chain())


def seal_status() -> dict[str, Any]:
    """The machine's side of the seal: are its rules in place (the chain's rules, both jumps), how many
    packets the rule that drops what leaves the subnet has dropped since the chain was made (should stay 0:
    nothing tries to leave), and how many the gateway rule dropped (a host reaching for the machine's ports)."""
    result: dict[str, Any] = {"chain": seal_chain(), "rule": False, "jumps": [], "dropped_packets": None,
                              "dropped_bytes": None, "gateway_dropped_packets": None}
    if system.which("iptables") is None or not seal_chain_exists():
        return result
    rules = _seal_rules()
    own = [r for r in rules if r[0] == seal_chain()]
    jumps = [r for r in rules if r[0] != seal_chain()]
    result["jumps"] = [chain for chain, rule in jumps if _iptables("-C", chain, *rule).returncode == 0]
    has_rules = all(_iptables("-C", chain, *rule).returncode == 0 for chain, rule in own)
    result["rule"] = has_rules and len(result["jumps"]) == len(jumps)
    listing = _iptables("-L", seal_chain(), "-n", "-v", "-x").stdout
    packets = octets = gw_packets = 0
    leave, at_gateway = seal_comment()[-1], gateway_comment()[-1]
    for line in listing.splitlines()[2:]:
        fields = line.split()
        if len(fields) > 2 and fields[2] == "DROP":
            if at_gateway in line:
                gw_packets += int(fields[0])
            elif leave in line:
                packets += int(fields[0])
                octets += int(fields[1])
    if has_rules:
        result["dropped_packets"], result["dropped_bytes"] = packets, octets
        result["gateway_dropped_packets"] = gw_packets
    return result
