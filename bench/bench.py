"""`make bench`: how long a migration takes beyond the lab's unavoidable waits, how far it scales, in one table.

    .venv/bin/python bench/bench.py [--sizes 50,200] [--reboot-seconds S] [--skip migration,naive,scale] [--json FILE]

Every figure comes from this run, each stage in a fresh lab (one lab at a time: the lab binds fixed
loopback addresses and ports):

  migration  inventories/lab (14 nodes). Waits for the two minutes of legacy history the baseline reads,
             then runs the phases of playbooks/site.yml one after the other: preflight, baseline, the
             rolling Talos phase (timed: the 14-node rollout), the rolling phase again (its no-change
             re-run), collectors, validation (timed, with the Mimir front's query count), decommission,
             and last the whole playbooks/site.yml once more (the no-op re-run: changed must be 0). The
             pipeline figures are read from the lab's Mimir (bench/pipeline_bench.py) at three moments:
             the legacy pipeline alone (before the collectors phase), both side by side (after
             validation), the new pipeline alone (once the legacy samples left Mimir's 1-minute window).
  naive      a fresh 14-node lab: a shell loop over `talosctl patch mc` + wait for the Node to be Ready
             again, node after node, on the nodes whose change reboots them (bench/rollout_bench.py).
  scale      for each --sizes N: a generated copy of the lab inventory with N nodes (3 control-plane;
             workers split between Talos 1.13 and 1.14 as in the lab), the rolling phase with batches of
             10 % of N (-e rollout_batch / rollout_live_batch, and --forks at least the batch), the
             lab's reboot time from --reboot-seconds when given. The
             migration state is seeded (preflight and baseline recorded as done) and the lab's legacy
             scrapes slowed to every 5 minutes: the rollout reads no metrics, and the lab's own CPU
             would otherwise grow with N and eat the controller's share of the machine.

How to read the table. One row per figure: its value, the target when there is one and whether it is
met (`ok` / `MISS`), then the wall seconds, CPU seconds and the machine's 1-minute load average
(at the start -> the end) of the run that produced it. Wall times depend on what else the machine runs;
the CPU seconds (the playbook's process tree, talosctl and kubectl included; the lab not) are the
steady figure, and a MISS under a high load average says more about the machine than the toolkit.
  floor        the lab's reboot and readiness times along the rollout's critical path: per batch of
               nodes that reboot, the lab's reboot time plus a pod's readiness time (the probe pod),
               and per batch that applies live, a pod's readiness time (bench/rollout_bench.py).
  ratio        wall / floor. The naive loop's ratio is against its own floor (its reboots only).
  overhead per batch  (wall - floor) / the batches run one after the other: nearly independent of the
               reboot time, so 1 + overhead / (reboot + pod readiness) is the ratio at any reboot time.
  API req/node Kubernetes API requests in the lab API server's request log during the run, per node; the
               top six kinds (verb and resource) next to it say which calls grow with what.
  CPU busy     (the controller's CPU seconds + the lab process's) / (wall x cores): near 100 %, the run
               waited for this machine's cores rather than for the lab's reboots. The benchmarked runs
               are started with `nice -n 10` so that the lab, which stands in for machines of their own,
               answers first.
  memory peak  the largest sum, sampled every 0.2 s, of the proportional set size (PSS: shared pages
               split between the processes sharing them) of ansible-playbook and every process under it.
  growth       the figure at the largest N over the figure at 14 nodes; for wall time, against the
               growth of the floor (a flat overhead keeps wall growth near floor growth).
The last line is the whole table as JSON, for scripts.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import pipeline_bench  # noqa: E402
import rollout_bench  # noqa: E402
from pipeline_bench import ClientSettings, PromQLClient  # noqa: E402
from rollout_bench import ROOT, Lab, RunFailed, Timing, lab_config  # noqa: E402

from lab.metrics.config import MetricsConfig  # noqa: E402

LAB_INVENTORY = ROOT / "inventories" / "lab"
PLAYBOOKS = ROOT / "playbooks"
ANSIBLE_PLAYBOOK = str(Path(sys.executable).parent / "ansible-playbook")
# The scale labs' legacy agents scrape every 5 minutes: the rollout reads no metrics.
QUIET_METRICS = {"scrape_interval_seconds": 300, "scrape_timeout_seconds": 10, "meta_scrape_interval_seconds": 300}
TARGETS = {
    "ratio_14": 1.15,
    "ratio_max": 1.25,
    "api_per_node": 40.0,
    "rolling_rerun_seconds": 20.0,
    "site_rerun_seconds": 30.0,
}


@dataclass
class Row:
    figure: str
    value: str
    target: str = ""
    met: bool | None = None
    run: Timing | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def cells(self) -> list[str]:
        verdict = "" if self.met is None else ("ok" if self.met else "MISS")
        if self.run is None:
            return [self.figure, self.value, self.target, verdict, "", "", ""]
        load = f"{self.run.load[0]:.1f}->{self.run.load[1]:.1f}"
        return [self.figure, self.value, self.target, verdict, f"{self.run.wall:.1f}", f"{self.run.cpu:.1f}", load]


class Table:
    HEADER = ["figure", "value", "target", "met", "wall s", "CPU s", "load"]

    def __init__(self) -> None:
        self.rows: list[Row | str] = []

    def section(self, title: str) -> None:
        self.rows.append(title)

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        return row

    def render(self) -> str:
        cells = [row.cells() for row in self.rows if isinstance(row, Row)]
        widths = [max(len(line[i]) for line in [self.HEADER, *cells]) for i in range(len(self.HEADER))]

        def line(values: list[str]) -> str:
            left = [values[0].ljust(widths[0]), values[1].ljust(widths[1]), values[2].ljust(widths[2])]
            right = [value.rjust(width) for value, width in zip(values[3:], widths[3:], strict=True)]
            return "  ".join(left + right).rstrip()

        out = [line(self.HEADER)]
        for row in self.rows:
            out.append(f"-- {row}" if isinstance(row, str) else line(row.cells()))
        return "\n".join(out)

    def as_json(self) -> list[dict[str, Any]]:
        return [
            {"figure": row.figure, "value": row.value, "target": row.target, "met": row.met, **row.data}
            | ({"wall": round(row.run.wall, 2), "cpu": round(row.run.cpu, 2), "load": row.run.load} if row.run else {})
            for row in self.rows
            if isinstance(row, Row)
        ]


def at_most(value: float, limit: float) -> tuple[str, bool]:
    return f"<= {limit:g}", value <= limit


# --- labs and runs ----------------------------------------------------------------------------------------


def playbook(name: str, inventory: Path, *extra: str) -> list[str]:
    return [ANSIBLE_PLAYBOOK, str(PLAYBOOKS / name), "-i", str(inventory), *extra]


def scaled_inventory(tmp: Path, count: int, reboot_seconds: float | None) -> Path:
    """A copy of the lab inventory with `count` nodes: 3 control-plane nodes, workers on Talos 1.13 and 1.14
    in the lab's proportion (6 of its 11 workers reboot); their reboots take `reboot_seconds` when given."""
    source = yaml.safe_load((LAB_INVENTORY / "hosts.yml").read_text())
    groups = source["all"]["children"]["talos_nodes"]["children"]
    control_plane = groups["talos_control_plane"]["hosts"]
    lab_workers = list(groups["talos_workers"]["hosts"].values())
    old, new = lab_workers[0]["talos_version"], lab_workers[-1]["talos_version"]
    share = sum(1 for w in lab_workers if w["talos_version"] == old) / len(lab_workers)
    workers = count - len(control_plane)
    rebooting = round(workers * share)
    hosts = {}
    for k in range(1, workers + 1):
        third, fourth = divmod(k - 1, 250)
        hosts[f"talos-worker-{k}"] = {
            "talos_node_address": f"127.0.{11 + third}.{fourth + 1}",
            "talos_version": old if k <= rebooting else new,
        }
    groups["talos_workers"]["hosts"] = hosts
    copy = tmp / f"inventory-{count}"
    shutil.copytree(LAB_INVENTORY, copy)
    (copy / "hosts.yml").write_text(yaml.safe_dump(source, sort_keys=False))
    if reboot_seconds is not None:
        rollout_bench.set_reboot_seconds(copy, reboot_seconds)
    return copy


def mimir_read_requests(metrics: MetricsConfig) -> int:
    """Requests the lab's Mimir front served on its query API (`/prometheus/api/v1/...`) so far."""
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics.mimir_port}/metrics", timeout=30) as response:
        text = response.read().decode()
    pattern = re.compile(r'^cortex_request_duration_seconds_count\{[^}]*route="prometheus_api_v1_[^"]*"[^}]*\} (\S+)$')
    return int(sum(float(m.group(1)) for m in map(pattern.match, text.splitlines()) if m))


def wait_until(condition: Callable[[], bool], timeout: float, what: str, interval: float = 2.0) -> float:
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            sys.exit(f"bench: gave up after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)
    return time.monotonic() - start


# --- stages: each runs in a fresh lab and returns what it measured --------------------------------------------


@dataclass
class Rollout:
    nodes: int
    batch: str
    run: Timing
    floor: float
    batches: int = 0  # run one after the other; 0 when not counted

    @property
    def ratio(self) -> float:
        return self.run.wall / self.floor

    @property
    def api_per_node(self) -> float:
        return self.run.requests / self.nodes


@dataclass
class Migration:
    rollout: Rollout
    rerun: Timing
    validation: Timing
    queries: int
    site: Timing
    legacy_alone: dict[str, Any]
    side_by_side: dict[str, Any]
    new_alone: dict[str, Any]


def migration(tmp: Path) -> Migration:
    """The whole migration on the lab, phase after phase, then site.yml once more (see the docstring)."""
    cfg = lab_config.load(LAB_INVENTORY)
    metrics = MetricsConfig(**cfg.metrics)
    gvars = yaml.safe_load((LAB_INVENTORY / "group_vars" / "all" / "cluster.yml").read_text())
    url, tenant = gvars["migration_mimir_query_url"], gvars["migration_mimir_tenant"]
    extra = ("-e", f"migration_artifacts_dir={tmp / 'artifacts'}")

    def phase(name: str) -> Timing:
        return lab.timed(playbook(name, LAB_INVENTORY, *extra))

    with Lab(tmp / "migration", LAB_INVENTORY) as lab:
        lab.timed([sys.executable, "-m", "lab", "wait-history", "--window", "2m"])
        phase("preflight.yml")
        phase("baseline.yml")
        legacy_alone = pipeline_bench.measure(url, tenant, "1m")
        rollout = phase("containerd_metrics.yml")
        rerun = phase("containerd_metrics.yml")
        phase("collectors.yml")
        queries_before = mimir_read_requests(metrics)
        validation = phase("validation.yml")
        queries = mimir_read_requests(metrics) - queries_before
        side_by_side = pipeline_bench.measure(url, tenant, "2m")
        phase("decommission.yml")
        site = phase("site.yml")
        # Mimir's figures of the new pipeline alone: once no HA-deduplicated (legacy) sample is left in the window.
        new_only = (
            'sum(rate(cortex_distributor_deduped_samples_total{job="mimir"}[1m])) == 0'
            ' and on() sum(rate(cortex_distributor_received_samples_total{job="mimir"}[1m])) > 0'
        )
        wait_until(lambda: _query_true(url, tenant, new_only), 300, "the legacy samples to leave Mimir's window")
        new_alone = pipeline_bench.measure(url, tenant, "1m")
    floor = rollout_bench.toolkit_floor(cfg, 1, 5)
    serial = rollout_bench.critical_batches(cfg, 1, 5)
    return Migration(
        Rollout(len(cfg.nodes), "canary, then 1 rebooting / 5 live", rollout, floor, serial),
        rerun,
        validation,
        queries,
        site,
        legacy_alone,
        side_by_side,
        new_alone,
    )


def _query_true(url: str, tenant: str, query: str) -> bool:
    return bool(PromQLClient(ClientSettings(url=url, tenant=tenant, timeout=30)).query_instant(query).result)


def naive(tmp: Path) -> Rollout:
    cfg = lab_config.load(LAB_INVENTORY)
    rebooting = [n for n in cfg.nodes if rollout_bench._reboots(n)]
    patch = tmp / "patch.yaml"
    patch.write_text(yaml.safe_dump(rollout_bench.PATCH_113))
    with Lab(tmp / "naive", LAB_INVENTORY) as lab:
        lab.env.update(NODES=" ".join(f"{n.name}={n.address}" for n in rebooting), PATCH=str(patch))
        run = lab.timed(["bash", "-c", rollout_bench.NAIVE_LOOP])
    return Rollout(len(rebooting), "one at a time", run, len(rebooting) * cfg.reboot_seconds)


def scale(tmp: Path, count: int, reboot_seconds: float | None) -> Rollout:
    inventory = scaled_inventory(tmp, count, reboot_seconds)
    cfg = lab_config.load(inventory)
    batch = math.ceil(count / 10)
    forks = max(batch, 10)
    argv = playbook(
        "containerd_metrics.yml",
        inventory,
        *("-e", f"rollout_batch={batch}", "-e", f"rollout_live_batch={batch}", "--forks", str(forks)),
    )
    with Lab(tmp / f"scale-{count}", inventory, metrics=QUIET_METRICS) as lab:
        lab.seed_state()
        run = lab.timed(argv)
    floor = rollout_bench.toolkit_floor(cfg, batch, batch)
    serial = rollout_bench.critical_batches(cfg, batch, batch)
    label = f"canary, then {batch} (10 %), forks {forks}, lab reboot {cfg.reboot_seconds:g} s"
    return Rollout(count, label, run, floor, serial)


# --- the table ----------------------------------------------------------------------------------------------


def rollout_rows(table: Table, rollout: Rollout, ratio_target: float) -> None:
    limit, met = at_most(rollout.ratio, ratio_target)
    value = f"{rollout.run.wall:.1f} / {rollout.floor:.1f} s = {rollout.ratio:.2f}"
    table.add(Row("toolkit rollout: wall / floor", value, limit, met, rollout.run, {"ratio": round(rollout.ratio, 3)}))
    if rollout.batches:
        # What the toolkit adds to each batch whatever the reboot time: with it, the ratio at a reboot time R
        # is about 1 + overhead / (R + pod readiness), which says from which reboot time a target holds.
        overhead = (rollout.run.wall - rollout.floor) / rollout.batches
        value = f"{overhead:.1f} s over {rollout.batches} batches in a row"
        table.add(
            Row("toolkit rollout: overhead per batch (wall - floor) / batches", value, data={"overhead": overhead})
        )
    limit, met = at_most(rollout.api_per_node, TARGETS["api_per_node"])
    table.add(Row("toolkit rollout: API requests per node", f"{rollout.api_per_node:.1f}", limit, met))
    # On a machine whose cores the lab shares, the wall time cannot go below the controller's CPU seconds
    # spread over the cores: with the lab's short reboots that bound, not the floor, is what the ratio meets.
    cores = os.cpu_count() or 1
    value = f"{rollout.run.cpu / rollout.nodes:.2f} s ({rollout.run.cpu / cores:.0f} s of wall on {cores} cores)"
    table.add(
        Row("toolkit rollout: controller CPU per node", value, data={"cpu_per_node": rollout.run.cpu / rollout.nodes})
    )
    # Near 100 %, the run waited for the machine's cores, not for the lab's reboots: a figure of this machine.
    busy = (rollout.run.cpu + rollout.run.lab_cpu) / (rollout.run.wall * cores)
    value = f"{busy:.0%} (controller {rollout.run.cpu:.0f} s + lab {rollout.run.lab_cpu:.0f} s over {cores} cores)"
    table.add(Row("toolkit rollout: CPU busy (controller + lab) / (wall x cores)", value, data={"busy": busy}))
    mix = ", ".join(f"{kind} {count / rollout.nodes:.1f}" for kind, count in rollout.run.request_mix.most_common(6))
    table.add(Row("toolkit rollout: API requests per node, by kind (top 6)", mix))
    table.add(Row("toolkit rollout: controller memory peak", _mib(rollout.run.memory_peak)))


def build(table: Table, done: Migration | None, loop: Rollout | None, scaled: list[Rollout]) -> None:
    cfg = lab_config.load(LAB_INVENTORY)
    if done is not None or loop is not None:
        table.section(
            f"rolling Talos phase, {len(cfg.nodes)} nodes (lab: reboot {cfg.reboot_seconds:g} s, pod ready "
            f"{cfg.pod_ready_seconds:g} s)"
        )
    if done is not None:
        rollout_rows(table, done.rollout, TARGETS["ratio_14"])
        changed = rollout_bench.changed_count(done.rerun.stdout)
        limit, met = at_most(done.rerun.wall, TARGETS["rolling_rerun_seconds"])
        value = f"{done.rerun.wall:.1f} s, changed={changed}"
        table.add(Row("rolling phase re-run: wall, changed", value, limit, met and changed == 0, done.rerun))
    if loop is not None:
        value = f"{loop.run.wall:.1f} / {loop.floor:.1f} s = {loop.ratio:.2f}"
        figure = f"naive loop, {loop.nodes} rebooting nodes, no drain/checks: wall / floor"
        table.add(Row(figure, value, run=loop.run, data={"ratio": round(loop.ratio, 3)}))
        table.add(Row("naive loop: API requests per node", f"{loop.api_per_node:.1f}"))
    for rollout in scaled:
        table.section(f"scale: {rollout.nodes} nodes, batches {rollout.batch}")
        rollout_rows(table, rollout, TARGETS["ratio_max"])
    if done is not None and scaled:
        first, last = done.rollout, scaled[-1]
        table.section(f"growth from {first.nodes} to {last.nodes} nodes (x{last.nodes / first.nodes:.1f})")
        value = f"x{last.run.wall / first.run.wall:.2f} (floor x{last.floor / first.floor:.2f})"
        table.add(Row("wall time (floor)", value))
        growth = last.api_per_node / first.api_per_node
        table.add(Row("API requests per node", f"x{growth:.2f}", "flat: <= x1.25", growth <= 1.25))
        table.add(Row("controller memory peak", f"x{last.run.memory_peak / first.run.memory_peak:.2f}"))
    if done is not None:
        table.section("the migrated cluster: no-op re-run, validation")
        changed = rollout_bench.changed_count(done.site.stdout)
        limit, met = at_most(done.site.wall, TARGETS["site_rerun_seconds"])
        value = f"{done.site.wall:.1f} s, changed={changed}"
        table.add(Row("site.yml re-run", value, f"{limit}, changed=0", met and changed == 0, done.site))
        value = f"{done.validation.wall:.1f} s, {done.queries} queries"
        table.add(Row("validation phase: wall, Mimir queries", value, run=done.validation))
        pipeline_rows(table, done)


def pipeline_rows(table: Table, done: Migration) -> None:
    human_bytes, human_number, human_seconds = (
        pipeline_bench.human_bytes,
        pipeline_bench.human_number,
        pipeline_bench.human_seconds,
    )
    table.section("pipelines in the lab's Mimir: each alone over 1 minute, scrapes side by side over 2")
    for name, alone in (("legacy", done.legacy_alone), ("new", done.new_alone)):
        mimir = alone["mimir"]
        incoming, deduplicated = mimir["incoming_samples_per_second"], mimir["deduplicated_samples_per_second"]
        rate = deduplicated / incoming if incoming and deduplicated is not None else None
        table.add(Row(f"{name}: received bytes/s", human_bytes(mimir["received_bytes_per_second"], per_second=True)))
        value = f"{human_number(incoming)} in, {human_number(mimir['received_samples_per_second'])} kept"
        table.add(Row(f"{name}: samples/s", value))
        table.add(Row(f"{name}: HA dedup rate", "no data" if rate is None else f"{rate:.0%} of samples in"))
        table.add(Row(f"{name}: push p99", human_seconds(mimir["push_p99_seconds"])))
    for name, pipeline in done.side_by_side["pipelines"].items():
        table.add(Row(f"{name}: samples/s stored", human_number(pipeline["samples_per_second"])))
        for key, source in pipeline["sources"].items():
            value = f"{human_seconds(source['scrape_duration_p99_seconds'])} ({source['targets']} targets)"
            table.add(Row(f"{name}: scrape p99 {key}", value))


def _mib(value: float) -> str:
    return f"{value / 2**20:.0f} MiB"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="50,200", help="node counts of the scale stage (default 50,200)")
    parser.add_argument("--skip", default="", help="stages to skip: migration, naive, scale (comma-separated)")
    parser.add_argument("--json", type=Path, help="also write the table as JSON to this file")
    parser.add_argument(
        "--reboot-seconds", type=float, help="the scale labs' reboot time (default: the lab inventory's, 4 s)"
    )
    args = parser.parse_args()
    skip = {name for name in args.skip.split(",") if name}
    sizes = [int(size) for size in args.sizes.split(",") if size] if "scale" not in skip else []
    started, load = time.monotonic(), os.getloadavg()[0]
    done: Migration | None = None
    loop: Rollout | None = None
    scaled: list[Rollout] = []
    failed: RunFailed | None = None
    # A stage that fails ends the bench, but the figures of the stages before it are still printed.
    with tempfile.TemporaryDirectory(prefix="bench-") as directory:
        tmp = Path(directory)
        try:
            done = migration(tmp) if "migration" not in skip else None
            loop = naive(tmp) if "naive" not in skip else None
            for count in sizes:
                scaled.append(scale(tmp, count, args.reboot_seconds))
        except RunFailed as exc:
            failed = exc
    table = Table()
    build(table, done, loop, scaled)
    print(
        f"bench: {os.cpu_count()} CPUs, load average {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end, "
        f"{time.monotonic() - started:.0f} s in all"
    )
    print(table.render())
    document = table.as_json()
    if args.json:
        args.json.write_text(json.dumps(document, indent=2))
    print(json.dumps(document))
    if failed is not None:
        print(f"bench: stopped, a stage failed: {failed.code}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
