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
    from infprov.provision.specs import StatusResult, StopResult, TeardownResult, UpResult


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
    from infprov.provision import autoteardown, idlestop

    now = datetime.now(timezone.utc)
    from rich.table import Column

    # the zone is left to --json: with the triton column, the table keeps within 160 columns
    table = Table("cluster", Column("instance", no_wrap=True, min_width=19), "state", Column("triton", no_wrap=True),
                  "address", "type", "uptime", "$/h", "cost so far", "auto-teardown")
    for c in result.clusters:
        for i in c.instances:
            deadline = autoteardown.read_deadline({autoteardown.TAG: i.auto_teardown or ""})
            table.add_row(
                c.name if c.mine else f"{c.name} (another home's: {c.home})",
                i.instance_id, i.state + (" (spot)" if i.spot else ""), _triton_cell(i.triton), i.address or "-",
                i.instance_type, duration(i.uptime_s), usd(i.hourly_price), usd(i.cost_so_far),
                autoteardown.describe(deadline, now),
            )
    ui.out.print(table)
    for c in result.clusters:
        for i in c.instances:
            if i.triton and i.triton.get("error"):  # why a host is not serving, under the table (the cell is short)
                ui.out.print(f"{i.instance_id}: triton {_triton_cell(i.triton)}: {i.triton['error']}")
        idle = sorted({idlestop.describe(i.idle_stop) for i in c.instances} - {""})
        if idle:
            ui.out.print(f"{c.name}: {', '.join(idle)} (each host decides from its Triton's metrics)")
        if c.mine and c.stopped:
            kept = storage_line(c.storage_gib, c.storage_monthly_cost, None, result.sandbox)
            ui.out.print(f"{c.name}: stopped; {kept}; `infprov start {c.name}` starts it")
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
    stale = [e for e in entries if not e.get("current", True)]
    ui.out.print(
        f"environment cache: ECR repository {cache['repository']} ({cache['region']}), {len(entries)} entr"
        f"{'y' if len(entries) == 1 else 'ies'}, {cache['size_bytes'] / 1e6:.1f} MB, ${cache['monthly_usd']:.2f}/month "
        f"at ${cache['price_usd_per_gb_month']:.2f}/GB-month ({cache['price_source']})"
        + (f"; {len(stale)} stale ({cache.get('stale_size_bytes', 0) / 1e6:.1f} MB): made by another setup, pins or "
           "compiler, never used by this infprov" if stale else ""))
    for e in entries:
        ui.out.print(f"  {e['tag']}  {e['size_bytes'] / 1e6:.1f} MB  pushed {e['pushed_at']}"
                     + ("" if e.get("current", True) else "  stale"))


def render_stop(result: StopResult, json_out: bool) -> None:
    if json_out:
        ui.emit_json(result.to_dict())
        return
    where = "sandbox" if result.sandbox else result.region
    if result.stopped:
        ui.ok(f"cluster {result.cluster} ({where}): {len(result.stopped)} instance(s) stopped"
              + (f", {len(result.already_stopped)} already were" if result.already_stopped else ""))
    else:
        ui.ok(f"cluster {result.cluster} ({where}): already stopped ({len(result.already_stopped)} instance(s))")
    if result.auto_teardown_cancelled:
        ui.warn("their auto-teardown deadline ended with the power-off; after `infprov start`, `infprov "
                "auto-teardown --in D` sets one again")
    kept = storage_line(result.storage_gib, result.storage_monthly_cost, result.storage_price, result.sandbox)
    ui.out.print(f"{result.cluster}: compute billing stopped; {kept}")
    ui.out.print(f"start it again with `infprov start {result.cluster}`" + (" --sandbox" if result.sandbox else "")
                 + f", or remove it with `infprov teardown {result.cluster}`")


def storage_line(gib: int, monthly: float | None, price: float | None, sandbox: bool) -> str:
    """What a stopped cluster still costs: its kept EBS volumes."""
    if monthly is None:
        cost = "no price in infprov's catalog for its volumes here"
    else:
        cost = f"${monthly:.2f}/month" + (f" (gp3 ${price:g}/GB-month)" if price is not None else "")
    return f"its {gib} GiB of EBS volumes are kept: {cost}" + (" (sandbox: not billed)" if sandbox else "")


def _triton_cell(triton: Any) -> str:
    """The status table's triton column: what the host's Triton said, or "-" (not running, not asked)."""
    if not triton:
        return "-"
    from infprov.provision.health import Health

    return Health(**triton).summary()


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


def render_runs(runs: list[dict[str, Any]], json_out: bool, budget_ms: float | None = None) -> None:
    """`infprov results`: the past runs, one line each; a corrupt one is marked and hides none of the others."""
    if json_out:
        ui.emit_json(runs)
        return
    from rich.table import Table
    from rich.text import Text

    from infprov.provision.bench import printable

    best = "best images/s" + (f" (p99 <= {budget_ms:g} ms)" if budget_ms is not None else "")
    table = Table("run", "date (UTC)", "cluster", "type", "tool", "points", "status", best)
    for r in runs:
        if r.get("unreadable"):
            table.add_row(Text(printable(r["run"])), Text(printable(r.get("date") or "-")), "-", "-", "-", "-",
                          Text(printable(f"unreadable: {r['error']}")), "-")
            continue
        planned = r.get("points_planned")
        points = f"{r['points']}/{planned}" if planned and planned != r["points"] else str(r["points"])
        top = r.get("best_images_per_s")
        own = r.get("budget_p99_ms")
        shown_best = "-" if top is None else rate(top) + (f" (p99 <= {own:g} ms)" if budget_ms is None and own
                                                          is not None else "")
        if top is None and r["status"] != "failed" and r.get("budget_p99_ms") is not None:
            shown_best = "none within budget"
        table.add_row(Text(printable(r["run"])), Text(printable(r.get("date") or "-")),
                      Text(printable(r.get("cluster") or "-")), Text(printable(r.get("instance_type") or "-")),
                      Text(printable(r.get("tool") or "-")), points, r["status"], shown_best)
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
    # what one batch element is: images (ResNet-50), sequences (a text model of `up --model`), inferences
    units = {str((p.get("manifest") or {}).get("unit") or "images") for h in summary["hosts"] for p in h["points"]}
    unit = units.pop() if len(units) == 1 else "inferences"
    table = Table("host", "batch", "threads", f"{unit}/s", "req/s", "p50 ms", "p90 ms", "p99 ms", "errors",
                  f"$/M {unit}", "spread", "host CPU", title=title)
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
            load = p.get("load") or {}
            threads = str(p["threads"]) + (f" @ {load['request_rate']:g}/s" if load.get("mode") == "rate" else "")
            table.add_row(Text(printable(h["host"])), str(p["batch_size"]), Text(printable(threads)),
                          rate(p["images_per_s"]), rate(p["requests_per_s"]), ms(lat.get("p50")),
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
        ui.out.print(f"fleet total: {rate(summary['fleet_images_per_s'])} images/s")
    budget = summary.get("budget_p99_ms")
    if budget is not None:
        ui.out.print(printable(best_line(summary, budget)), markup=False)
    if summary.get("plot"):
        ui.out.print(printable(f"plot: {summary['plot']}"), markup=False)
    ui.out.print(printable(f"saved in {summary['path']}"), markup=False)


def best_line(summary: dict[str, Any], budget_ms: float) -> str:
    """'best within p99 100 ms: batch 32, 2 thread(s), 820 images/s at p99 95.0 ms' (or that none is)."""
    from infprov.provision import plots

    best = plots.best_within([d for h in summary["hosts"] for d in plots.dots(h.get("points") or [], h["host"])],
                             budget_ms)
    if best is None:
        return f"best within p99 {budget_ms:g} ms: none (no error-free point had its p99 within it)"
    paced = f" at {best.rate:g} requests/s" if best.rate is not None else ""
    return (f"best within p99 {budget_ms:g} ms: {best.host} batch {best.batch_size}, {best.concurrency} "
            f"thread(s){paced}, {rate(best.images_per_s)} images/s at p99 {best.p99_ms:.1f} ms")


def rate(value: float) -> str:
    """images/s with sensible precision: 3 significant digits below 100, whole numbers above."""
    return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"


def render_compare(summaries: list[dict[str, Any]], budget_ms: float | None = None) -> None:
    """Two runs' points in one table: images/s, p99 and $ per million images, and each against the first
    run's best point (within the p99 budget when one is given; e.g. an Inf2 run beside an Inf1 run)."""
    from rich.table import Table
    from rich.text import Text

    from infprov.client import results
    from infprov.floor.errors import UsageError
    from infprov.provision import catalog
    from infprov.provision.bench import printable

    within = f" within p99 {budget_ms:g} ms" if budget_ms is not None else ""
    rows = results.compare_rows(summaries, budget_ms)
    table = Table("run", "type", "generation", "tool", "input", "batch", "threads", "images/s", "p99 ms",
                  "$/M images", "images/s x", "$/M x", "status",
                  title=Text(printable(f"compared with {summaries[0]['run']}'s best point{within} (*: each run's "
                                       "best)")))
    for row in rows:
        itype = str(row["instance_type"] or "-")
        try:
            generation = "Neuron v2" if catalog.generation(itype) == catalog.NEURON_V2 else "Neuron v1"
        except UsageError:  # a run from a type this version does not know (a hand-edited or old summary)
            generation = "-"
        cost = row["usd_per_million_images"]
        failed = row["status"] == "failed"
        table.add_row(Text(printable(str(row["run"]))), Text(printable(itype)), generation,
                      Text(printable(str(row["tool"] or "-"))),
                      Text(printable(f"{row['input'] or '-'} {row['layout'] or ''}".strip())),
                      "-" if failed else str(row["batch_size"]), "-" if failed else str(row["threads"]),
                      "-" if failed else rate(float(row["images_per_s"])) + (" *" if row["best"] else ""),
                      ms(row["p99_ms"]), "-" if cost is None else f"{cost:.2f}", times(row["images_per_s_x"]),
                      times(row["usd_per_million_images_x"]),
                      row["status"] + (f", {row['errors']} errors" if row.get("errors") else ""))
    ui.out.print(table)
    for line in results.compare_warnings(rows):
        ui.warn(line)


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
                      rate(r["images_per_s"]) if found else Text(printable(r["error"] or "none within budget")),
                      ms(r["p99_ms"]), usd(r["hourly_usd"]) if r["hourly_usd"] is not None else "-",
                      "-" if cost is None else f"{cost:.2f}", str(len(r["points"])))
    ui.out.print(table)
    for t in doc["teardown"]:
        gone = ", ".join(t["instances"]) or "nothing"
        ui.out.print(printable(f"torn down {t['cluster']}: {gone}; left: {', '.join(t['left']) or 'nothing'}"),
                     markup=False)
    if doc.get("note"):
        ui.out.print(printable(f"note: {doc['note']}"), markup=False)
    if doc.get("plot"):
        ui.out.print(printable(f"plot: {doc['plot']}"), markup=False)
    ui.out.print(printable(f"saved in {doc['path']}"), markup=False)


class BenchView:
    """What `bench` shows while it runs, on stderr.

    compact (the default): a line per point, then one line per host when its point ends (its figures, or why
    it failed); the hosts' own lines go to the run folder's output.log, and only their ERROR and FAIL
    lines show here. On a terminal a transient status line follows the client's windows.
    verbose: every line of the hosts as well, as `<address>: <line>`.
    json_lines: each progress event as one JSON line (and infprov's own notes as {"event": "note"}), nothing else.
    """

    TROUBLE = ("ERROR", "FAIL")  # an unstable or interrupted point: its result line says so

    def __init__(self, *, verbose: bool = False, json_lines: bool = False) -> None:
        self.verbose = verbose
        self.json_lines = json_lines
        self.status: Any = None
        self.point = ""

    def emit(self, event: dict[str, Any]) -> None:
        import json
        import sys

        sys.stderr.write(json.dumps(event, default=str) + "\n")
        sys.stderr.flush()

    def line(self, host: str, line: str) -> None:
        from infprov.provision.bench import printable

        if self.json_lines:
            if host == "-":
                self.emit({"event": "note", "text": printable(line)})
            return
        if host == "-":
            if not line.startswith("point "):  # a point's header comes as its event
                self._print(printable(line))
        elif self.verbose or line.lstrip().startswith(self.TROUBLE):
            self._print(printable(f"{host}: {line}"))

    def event(self, event: dict[str, Any]) -> None:
        if self.json_lines:
            self.emit(event)
            return
        from infprov.provision.bench import printable

        kind = event.get("event")
        if kind == "point":
            what = (f": batch {event['batch_size']}, {event['threads']} thread(s)"
                    + (f", {event['request_rate']:g} requests/s" if event.get("request_rate") is not None else "")
                    if event.get("batch_size") is not None else "")
            self.point = f"point {event['index']}/{event['of']}"
            self._print(printable(self.point + what))
        elif kind == "result":
            self._print(printable("  " + result_line(event)))
        elif kind in ("measuring", "window") and self.status is not None:
            text = (f"{self.point}: {event['host']}: measuring" if kind == "measuring" else
                    f"{self.point}: {event['host']}: window {event['window']}: {rate(event['images_per_s'])} "
                    f"images/s, p99 {event['p99_ms']:.1f} ms")
            self.status.update(printable(text))

    def __enter__(self) -> BenchView:
        if not self.json_lines and not self.verbose and ui.err.is_terminal:
            self.status = ui.err.status("starting", spinner="dots")
            self.status.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.status is not None:
            self.status.stop()
            self.status = None

    def _print(self, text: str) -> None:
        ui.err.print(text, markup=False, highlight=False, soft_wrap=True)


def result_line(event: dict[str, Any]) -> str:
    """'10.0.0.5: 1167 images/s, p99 6.0 ms, stable (spread 8 %), host CPU 74 %' or what went wrong."""
    host = event["host"]
    if event["status"] == "failed":
        return f"{host}: failed: {event.get('error') or 'no result'}"
    if event.get("images_per_s") is None:
        return f"{host}: stopped before it measured anything"
    stable = {True: "stable", False: "UNSTABLE", None: "stability unknown"}[event.get("stable")]
    spread = event.get("spread_pct")
    text = (f"{host}: {rate(float(event['images_per_s']))} images/s, p99 {ms(event.get('p99_ms'))} ms, {stable}"
            + (f" (spread {pct(spread)})" if spread is not None else "")
            + (f", host CPU {pct(event['host_cpu_busy_pct'])}" if event.get("host_cpu_busy_pct") is not None else "")
            + (f", {event['errors']} errors" if event.get("errors") else ""))
    if event["status"] == "partial":
        text += " (stopped: partial)"
    if event.get("error"):
        text += f"; {event['error']}"
    return text
