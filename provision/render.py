"""What the commands show: every Rich table and summary line, from the lifecycles' results."""

from __future__ import annotations

from typing import Any

from rich.text import Text

from infprov.provision import ui


def render_sandbox(status: dict[str, Any], json_out: bool) -> None:
    if json_out:
        ui.emit_json(status)
        return
    from rich.table import Table

    ui.out.print(f"EC2 endpoint: {status['ec2_endpoint'] or '-'}")
    ui.out.print(f"stand-in download server: {status.get('downloads') or '-'}")
    table = Table("name", "address", "port", "user", "healthy", "no default route")
    for h in status["hosts"]:
        table.add_row(h["name"], h["address"], str(h["port"]), h["user"], "yes" if h.get("healthy") else "NO",
                      "NO" if h.get("default_route") else "yes")
    ui.out.print(table)
    if status["hosts"]:
        ui.out.print(f"login key: {status['hosts'][0]['key_file']}")
    seal = status.get("seal") or {}
    if seal.get("rule"):
        ui.out.print(f"seal: iptables chain {seal['chain']} drops what leaves the subnet "
                     f"(from FORWARD and INPUT); dropped so far: {seal['dropped_packets']} packet(s)")
    elif status["hosts"]:
        ui.out.print(f"seal: MISSING (iptables chain {seal.get('chain')}); `infprov sandbox up` adds it")


def show_event(event: Any) -> None:
    from infprov.playbooks import report

    line = report.event_line(event)
    if line:
        ui.err.print(line, markup=False, highlight=False, soft_wrap=True)


def render_served(result: Any, served: Any) -> None:
    from rich.table import Table

    table = Table("instance", "endpoint", "model", "ready", "changed", "took")
    for h in served.hosts:
        table.add_row(h.instance_id, h.endpoint, h.model, "yes" if h.ready else "NO", str(h.changed),
                      f"{h.seconds:.1f} s")
    ui.out.print(table)
    nothing = not result.launched and not result.started and served.changed == 0
    if served.ok and nothing:
        ui.out.print(f"cluster {result.cluster} is already up and serving: nothing changed")
    if served.ok:
        from infprov.provision.server import PORT as port

        ui.out.print(f"Triton listens on each host's loopback only; to reach it from here: "
                     f"infprov tunnel --host {served.hosts[0].instance_id} (then http://127.0.0.1:{port})")
        flag = " --sandbox" if result.sandbox else ""
        ui.out.print(f"next: infprov bench --name {result.cluster}")
        ui.out.print(f"then: infprov teardown --name {result.cluster}{flag}")


def render_up(result: Any, json_out: bool) -> None:
    if json_out:
        ui.emit_json(result.to_dict())
        return
    from rich.table import Table

    cost = "price unknown" if result.hourly_cost is None else f"${result.hourly_cost:.2f}/h"
    ui.out.print(
        f"cluster {result.cluster} in {result.region}: {len(result.hosts)} x {result.instance_type}, {cost}"
        + (" (sandbox)" if result.sandbox else "")
    )
    table = Table("instance", "address", "zone", "user", "neuron devices", "cores", "")
    for h in result.hosts:
        how = "reused"
        if h.instance_id in result.launched:
            how = "launched"
        elif h.instance_id in result.started:
            how = "started"
        table.add_row(
            h.instance_id, f"{h.address}:{h.port}", h.availability_zone, h.user,
            str(h.neuron_devices), str(h.neuron_cores), how,
        )
    ui.out.print(table)


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes = int(seconds // 60)
    return f"{minutes // 60}h{minutes % 60:02d}m"


def usd(value: float | None) -> str:
    return "-" if value is None else f"${value:,.2f}"


def render_run(summary: dict[str, Any]) -> None:
    from rich.table import Table

    from infprov.provision.bench import printable

    # names, paths and errors come from files and hosts: plain Text, never Rich markup
    title = Text(printable(f"run {summary['run']}" + (" (partial)" if summary.get("partial") else "")))
    table = Table("host", "batch", "threads", "images/s", "req/s", "p50 ms", "p90 ms", "p99 ms", "errors",
                  "$/M images", title=title)
    for h in summary["hosts"]:
        for p in h["points"]:
            lat = p.get("latency_ms") or {}
            cost = p.get("usd_per_million_images")
            table.add_row(Text(printable(h["host"])), str(p["batch_size"]), str(p["threads"]),
                          f"{p['images_per_s']:.1f}", f"{p['requests_per_s']:.2f}", ms(lat.get("p50")),
                          ms(lat.get("p90")), ms(lat.get("p99")), Text(printable(str(p.get("errors", 0)))),
                          "-" if cost is None else f"{cost:.2f}")
        if h.get("error"):
            table.add_row(Text(printable(h["host"])), "-", "-", "-", "-", "-", "-", "-",
                          Text(printable(h["error"][:40])), "-")
    ui.out.print(table)
    if summary.get("fleet_images_per_s") is not None and len(summary["hosts"]) > 1:
        ui.out.print(f"fleet total: {summary['fleet_images_per_s']:.1f} images/s")
    ui.out.print(printable(f"saved in {summary['path']}"), markup=False)


def render_compare(summaries: list[dict[str, Any]]) -> None:
    """Two runs' points in one table: images/s, p99 and $ per million images, and each against the first
    run's best point (e.g. an Inf2 run beside an Inf1 run)."""
    from rich.table import Table

    from infprov.client import results
    from infprov.floor.errors import UsageError
    from infprov.provision import catalog
    from infprov.provision.bench import printable

    table = Table("run", "type", "generation", "input", "batch", "images/s", "p99 ms", "$/M images",
                  "images/s x", "$/M x", title=Text(printable(f"compared with {summaries[0]['run']}'s best point")))
    for row in results.compare_rows(summaries):
        itype = str(row["instance_type"] or "-")
        try:
            generation = "Neuron v2" if catalog.generation(itype) == catalog.NEURON_V2 else "Neuron v1"
        except UsageError:  # a run from a type this version does not know (a hand-edited or old summary)
            generation = "-"
        cost = row["usd_per_million_images"]
        table.add_row(Text(printable(str(row["run"]))), Text(printable(itype)), generation,
                      Text(printable(f"{row['input'] or '-'} {row['layout'] or ''}".strip())),
                      str(row["batch_size"]), f"{row['images_per_s']:.1f}", ms(row["p99_ms"]),
                      "-" if cost is None else f"{cost:.2f}", times(row["images_per_s_x"]),
                      times(row["usd_per_million_images_x"]))
    ui.out.print(table)


def times(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def ms(value: Any) -> str:
    return "-" if value is None else f"{value:.1f}"
