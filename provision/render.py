"""What the commands show: every Rich table and summary line, from the lifecycles' results."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from infprov.provision import ui

# Rich is imported inside the functions that draw (a `--json` run never loads it).
if TYPE_CHECKING:
    from infprov.inventory.model import Inventory
    from infprov.playbooks.results import RunResult
    from infprov.provision.ansible_play import AnsibleRun
    from infprov.provision.bundle import Bundle
    from infprov.provision.lifecycle import UpOutcome
    from infprov.provision.preflight import Outcome
    from infprov.provision.specs import StatusResult, TeardownResult, UpResult


def render_sandbox(status: dict[str, Any], json_out: bool) -> None:
    if json_out:
        ui.emit_json(status)
        return
    from rich.table import Table

    ui.out.print(f"EC2 endpoint: {status['ec2_endpoint'] or '-'}")
    ui.out.print(f"stand-in download server: {status.get('downloads') or '-'}")
    ui.out.print(f"registry (ECR's data plane): {status.get('registry') or '-'}")
    table = Table("name", "address", "port", "user", "healthy", "no default route")
    for h in status["hosts"]:
        table.add_row(h["name"], h["address"], str(h["port"]), h["user"], "yes" if h.get("healthy") else "NO",
                      "NO" if h.get("default_route") else "yes")
    ui.out.print(table if status["hosts"] else "no sandbox hosts: `infprov sandbox up --hosts N` makes them")
    if status["hosts"]:
        ui.out.print(f"login key: {status['hosts'][0]['key_file']}")
    seal = status.get("seal") or {}
    if seal.get("rule"):
        ui.out.print(f"seal: iptables chain {seal['chain']} drops what leaves the subnet "
                     f"(from FORWARD and INPUT); dropped so far: {seal['dropped_packets']} packet(s)")
    elif status["hosts"]:
        ui.out.print(f"seal: MISSING (iptables chain {seal.get('chain')}); `infprov sandbox up` adds it")


def render_bundles(made: list[Bundle], json_out: bool) -> None:
    """`logs --bundle`: a line on stderr per host that could not be read, then where each archive is (one
    line each), or one JSON document."""
    from infprov.provision.bundle import shown

    for b in made:
        for h in b.hosts:
            if not h.ok:
                ui.warn(f"{b.cluster}: {h.host}: could not be read: {shown(h.error)} (its error is in the bundle)")
    if json_out:
        ui.emit_json({"ok": all(b.ok for b in made), "bundles": [b.to_dict() for b in made]})
        return
    for b in made:
        good = sum(h.ok for h in b.hosts)
        ui.out.print(f"bundle: {b.path} ({good} of {len(b.hosts)} host(s), {b.bytes} bytes)",
                     markup=False, highlight=False, soft_wrap=True)


def show_event(event: Any) -> None:
    """The runner's progress events (`infprov play`, `up`'s server step) as Ansible-like lines on stderr."""
    from infprov.playbooks import report

    line = report.event_line(event)
    if line:
        ui.err.print(line, markup=False, highlight=False, soft_wrap=True)


def show_line(line: str) -> None:
    """A line of `infprov play` on ansible-core (already masked and made printable) on stderr."""
    ui.err.print(line, markup=False, highlight=False, soft_wrap=True)


def render_recap(result: RunResult | AnsibleRun, json_out: bool) -> None:
    if json_out:
        ui.emit_json(result.to_dict())
        return
    from infprov.playbooks import report
    from infprov.playbooks.results import RunResult as EngineResult

    if isinstance(result, EngineResult):
        ui.out.print(report.recap(result), markup=False, highlight=False)
        log = result.log_path
    else:
        from infprov.provision import ansible_play

        if result.started:  # (else ansible-playbook refused the playbook: the error line says why)
            ui.out.print(ansible_play.recap(result), markup=False, highlight=False)
        log = result.result.log_path
    if log:
        ui.err.print(f"log: {log}", markup=False, highlight=False)


def before_server(result: UpResult) -> None:
    """`up`'s cloud part done: its table, then the server step begins."""
    render_up(result, False)
    ui.step(f"provisioning Triton on {len(result.hosts)} host(s) (server playbook)")


def render_up_outcome(outcome: UpOutcome, json_out: bool) -> None:
    if outcome.served is None:
        render_up(outcome.cloud, json_out)
    elif json_out:
        ui.emit_json(outcome.to_dict())
    else:
        render_served(outcome.cloud, outcome.served)


def render_served(result: Any, served: Any) -> None:
    from rich.table import Table

    table = Table("instance", "endpoint", "model", "ready", "changed", "took", "environment")
    for h in served.hosts:
        table.add_row(h.instance_id, h.endpoint, h.model, "yes" if h.ready else "NO", str(h.changed),
                      f"{h.seconds:.1f} s", f"{h.environment} ({h.environment_s:.1f} s)" if h.environment else "-")
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
    table = Table("instance", "address", "zone", "user", "neuron devices", "cores", "this run")
    for h in result.hosts:
        how = "reused"
        if h.instance_id in result.launched:
            how = "launched"
        elif h.instance_id in result.started:
            how = "started"
        table.add_row(
            h.name, f"{h.address}:{h.port}", result.zones.get(h.name, ""), h.user,
            str(h.neuron_devices), str(h.neuron_cores), how,
        )
    ui.out.print(table)


def render_preflight(outcomes: list[Outcome], json_out: bool) -> None:
    if json_out:
        ui.emit_json({"ok": all(o.ok for o in outcomes), "items": [o.to_dict() for o in outcomes]})
        return
    for outcome in outcomes:
        (ui.err if not outcome.ok else ui.out).print(outcome.line(), soft_wrap=True)


def render_status(result: StatusResult, json_out: bool) -> None:
    if json_out:
        ui.emit_json(result.to_dict())
        return
    from rich.table import Table

    if not result.clusters:
        if not result.region:
            ui.out.print("no clusters: the inventory holds none and no AWS region is configured "
                         "(give --region R or --sandbox to look in EC2)")
            return
        ui.out.print(f"no infprov clusters in {result.region}" + (" (sandbox)" if result.sandbox else ""))
        _render_cache(result.cache)
        return
    from infprov.provision import autoteardown

    now = datetime.now(timezone.utc)
    table = Table("cluster", "instance", "state", "address", "type", "zone", "uptime", "$/h", "cost so far",
                  "auto-teardown")
    for c in result.clusters:
        for i in c.instances:
            deadline = autoteardown.read_deadline({autoteardown.TAG: i.auto_teardown or ""})
            table.add_row(
                c.name if c.mine else f"{c.name} (another home's: {c.home})",
                i.instance_id, i.state + (" (spot)" if i.spot else ""), i.address or "-", i.instance_type,
                i.availability_zone, duration(i.uptime_s), usd(i.hourly_price), usd(i.cost_so_far),
                autoteardown.describe(deadline, now),
            )
    ui.out.print(table)
    total = sum(c.hourly_cost or 0 for c in result.clusters if c.mine)
    others = sum(c.hourly_cost or 0 for c in result.clusters if not c.mine)
    ui.out.print(f"{result.region}: running now ${total:.2f}/h"
                 + (f" (and ${others:.2f}/h of other infprov homes' clusters)" if others else "")
                 + (" (sandbox: not billed)" if result.sandbox else ""))
    _render_cache(result.cache)


def _render_cache(cache: Any) -> None:
    """One line (and one per entry) for the region's environment cache."""
    if not cache:
        ui.out.print("environment cache: none in this region (the next `up` makes it)")
        return
    if "error" in cache:
        ui.out.print(f"environment cache: cannot be read ({cache['error']})")
        return
    entries = cache.get("entries", [])
    ui.out.print(
        f"environment cache: ECR repository {cache['repository']} ({cache['region']}), {len(entries)} entr"
        f"{'y' if len(entries) == 1 else 'ies'}, {cache['size_bytes'] / 1e6:.1f} MB, ${cache['monthly_usd']:.2f}/month "
        f"at ${cache['price_usd_per_gb_month']:.2f}/GB-month ({cache['price_source']})")
    for e in entries:
        ui.out.print(f"  {e['tag']}  {e['size_bytes'] / 1e6:.1f} MB  pushed {e['pushed_at']}")


def render_teardown(result: TeardownResult, json_out: bool) -> None:
    if json_out:
        ui.emit_json(result.to_dict())
        return
    if not result.region:
        ui.out.print("nothing to tear down: the inventory holds no cluster and no AWS region is configured "
                     "(give --region R or --sandbox to look in EC2)")
        return
    verb = "would remove" if result.dry_run else "removed"
    ui.out.print(
        f"{result.scope} in {result.region}: {verb} {len(result.instances)} instance(s), "
        f"{len(result.security_groups)} security group(s), {len(result.volumes)} volume(s), "
        f"{len(result.key_pairs)} key pair(s)"
    )
    for kind, ids in (
        ("instance", result.instances), ("security group", result.security_groups),
        ("volume", result.volumes), ("key pair", result.key_pairs),
    ):
        for resource_id in ids:
            ui.out.print(f"  {kind} {resource_id}")
    if not result.dry_run and result.ok:
        ui.ok("nothing tagged for it is left")
    cache_line = {
        "removed": "environment cache (ECR repository): removed",
        "would remove": "environment cache (ECR repository): would be removed",
        "kept": "environment cache (ECR repository) kept for the next cluster: "
                "`infprov teardown --all --cache` removes it",
    }.get(result.cache)
    if cache_line:
        ui.out.print(cache_line)


def render_inventory(inv: Inventory, json_out: bool) -> None:
    if json_out:
        ui.emit_json(inv.to_dict())
        return
    from rich.table import Table

    ui.out.print(f"inventory: {inv.path}")
    if not inv.hosts:
        ui.out.print("no hosts yet: `infprov up --type T` makes a cluster (or `--sandbox` to try it locally)")
        return
    table = Table("cluster", "instance", "address", "user", "port", "type", "neuron devices/cores", "region")
    for h in inv.hosts:
        table.add_row(
            h.cluster, h.name, h.address, h.user, str(h.port), h.instance_type or "-",
            f"{h.neuron_devices if h.neuron_devices is not None else '-'}/"
            f"{h.neuron_cores if h.neuron_cores is not None else '-'}",
            h.region or "-",
        )  # fmt: skip
    ui.out.print(table)


def render_runs(runs: list[dict[str, Any]], json_out: bool) -> None:
    """`infprov results`: the past runs, one line each; a corrupt one is marked and hides none of the others."""
    if json_out:
        ui.emit_json(runs)
        return
    from rich.table import Table
    from rich.text import Text

    from infprov.provision.bench import printable

    table = Table("run", "hosts", "fleet images/s", "status")
    for r in runs:
        fleet = r["fleet_images_per_s"]
        if r.get("unreadable"):
            table.add_row(Text(printable(r["run"])), "-", "-", Text(printable(f"unreadable: {r['error']}")))
            continue
        status = r.get("status") or ("partial" if r["partial"] else "ok")
        table.add_row(Text(printable(r["run"])), str(r["hosts"]),
                      "-" if fleet is None or status == "failed" else f"{fleet:.1f}", status)
    ui.out.print(table if runs else "no benchmark runs yet: `infprov bench`")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes = int(seconds // 60)
    return f"{minutes // 60}h{minutes % 60:02d}m"


def usd(value: float | None) -> str:
    return "-" if value is None else f"${value:,.2f}"


def render_run(summary: dict[str, Any]) -> None:
    from rich.table import Table
    from rich.text import Text

    from infprov.provision.bench import printable

    # names, paths and errors come from files and hosts: plain Text, never Rich markup
    title = Text(printable(f"run {summary['run']}" + (" (partial)" if summary.get("partial") else "")))
    table = Table("host", "batch", "threads", "images/s", "req/s", "p50 ms", "p90 ms", "p99 ms", "errors",
                  "$/M images", "spread", "host CPU", title=title)
    unstable: list[str] = []
    for h in summary["hosts"]:
        for k, p in enumerate(h["points"], 1):
            lat = p.get("latency_ms") or {}
            cost = p.get("usd_per_million_images")
            spread = p.get("spread_pct")
            busy = (p.get("host_load") or {}).get("cpu_busy_pct")
            shaky = p.get("stable") is False and not p.get("partial")
            if shaky:
                unstable.append(printable(f"{h['host']} point {k} (batch {p['batch_size']}, {p['threads']} "
                                          f"thread(s)): spread {pct(spread)}, host CPU {pct(busy)} busy"))
            table.add_row(Text(printable(h["host"])), str(p["batch_size"]), str(p["threads"]),
                          f"{p['images_per_s']:.1f}", f"{p['requests_per_s']:.2f}", ms(lat.get("p50")),
                          ms(lat.get("p90")), ms(lat.get("p99")), Text(printable(str(p.get("errors", 0)))),
                          "-" if cost is None else f"{cost:.2f}", pct(spread) + (" unstable" if shaky else ""),
                          pct(busy))
        if h.get("error"):
            table.add_row(Text(printable(h["host"])), "-", "-", "-", "-", "-", "-", "-", "failed (below)", "-", "-",
                          "-")
    ui.out.print(table)
    for h in summary["hosts"]:  # whole, under the table: a cell would cut it
        if h.get("error"):
            ui.out.print(ui.styled("failed:", "red", printable(f"{h['host']}: {h['error']}")), soft_wrap=True)
    for line in unstable:
        ui.warn(f"unstable: {line}: its windows did not agree within the stability percentage; measure again on "
                "a quieter host or with a longer --limit")
    if summary.get("fleet_images_per_s") is not None and len(summary["hosts"]) > 1:
        ui.out.print(f"fleet total: {summary['fleet_images_per_s']:.1f} images/s")
    ui.out.print(printable(f"saved in {summary['path']}"), markup=False)


def render_compare(summaries: list[dict[str, Any]]) -> None:
    """Two runs' points in one table: images/s, p99 and $ per million images, and each against the first
    run's best point (e.g. an Inf2 run beside an Inf1 run)."""
    from rich.table import Table
    from rich.text import Text

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


def render_types(doc: dict[str, Any], json_out: bool) -> None:
    """`infprov types`: one row per supported instance type."""
    if json_out:
        ui.emit_json(doc)
        return
    from rich.table import Table

    table = Table("type", "family", "generation", "chips", "NeuronCores", "vCPUs", "memory GiB",
                  f"$/h in {doc['region']}")
    for t in doc["types"]:
        table.add_row(t["type"], t["family"], t["generation"], str(t["chips"]), str(t["neuron_cores"]),
                      str(t["vcpus"]), str(t["memory_gib"]),
                      "-" if t["hourly_price"] is None else f"${t['hourly_price']:,.4f}".rstrip("0"))
    ui.out.print(table)
    if any(t["hourly_price"] is None for t in doc["types"]):
        ui.out.print("-: price not in infprov's catalog for this region (see the EC2 on-demand pricing page)")


def pct(value: Any) -> str:
    return "-" if value is None else f"{value:.0f} %"


def render_recommend(doc: dict[str, Any]) -> None:
    """`infprov recommend`: one row per type, cheapest $ per million images at the budget first."""
    from rich.table import Table
    from rich.text import Text

    from infprov.provision.bench import printable

    budget = doc["budget_p99_ms"]
    table = Table("rank", "type", "batch", "concurrency", "images/s", "p99 ms", "$/h", "$/M images", "points",
                  title=Text(f"within p99 {budget:g} ms, cheapest first"))
    for k, r in enumerate(doc["ranking"], 1):
        cost = r["usd_per_million_images"]
        found = r["images_per_s"] is not None
        table.add_row(str(k) if found else "-", Text(printable(r["instance_type"])),
                      "-" if r["batch_size"] is None else str(r["batch_size"]),
                      "-" if r["concurrency"] is None else str(r["concurrency"]),
                      f"{r['images_per_s']:.1f}" if found else Text(printable(r["error"] or "none within budget")),
                      ms(r["p99_ms"]), usd(r["hourly_usd"]) if r["hourly_usd"] is not None else "-",
                      "-" if cost is None else f"{cost:.2f}", str(len(r["points"])))
    ui.out.print(table)
    for t in doc["teardown"]:
        gone = ", ".join(t["instances"]) or "nothing"
        ui.out.print(printable(f"torn down {t['cluster']}: {gone}; left: {', '.join(t['left']) or 'nothing'}"),
                     markup=False)
    if doc.get("note"):
        ui.out.print(printable(f"note: {doc['note']}"), markup=False)
    ui.out.print(printable(f"saved in {doc['path']}"), markup=False)
