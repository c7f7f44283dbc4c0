"""The validation gates: is the new pipeline (Alloy, OTel Collector) as good as the baseline says it must be?

Each gate reads Mimir, compares with a threshold (and the baseline where the issue asks for "not worse"),
and returns a verdict `[PASS|FAIL|SKIP] <gate>: <figures> (threshold ...) query: <promql>`. A gate that
cannot be evaluated (Mimir unreachable, no data) fails closed: FAIL with the reason. SKIP is reserved for a
gate whose precondition does not hold yet, with the reason (HA deduplication while the legacy replicas run).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ansible.module_utils.migration_figures import (
    Measurer,
    MimirQuery,
    ResourceQuery,
    ScrapeQuery,
    Target,
    cluster_values,
    duration_seconds,
    human_number,
    human_seconds,
    matchers,
    measure_metric_names,
    measure_mimir,
    measure_resources,
    measure_targets,
    one_of,
    resource_totals,
    selector,
    summarize_sources,
)
from ansible.module_utils.promql import PromQLError

PASS, FAIL, SKIP = "PASS", "FAIL", "SKIP"
SHOWN = 8


@dataclass
class Verdict:
    gate: str
    status: str
    figures: str
    threshold: str
    query: str
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def line(self) -> str:
        return f"[{self.status}] {self.gate}: {self.figures} (threshold {self.threshold}) query: {self.query}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "gate": self.gate,
            "status": self.status,
            "figures": self.figures,
            "threshold": self.threshold,
            "query": self.query,
            "details": self.details,
            "line": self.line,
        }


# --- settings -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LabelRule:
    """Series of `metric` matching `selector` must all carry `labels` with a value (dashboards select on them)."""

    name: str
    metric: str
    selector: str
    labels: tuple[str, ...]


@dataclass(frozen=True)
class Exclusion:
    """Baseline metric names (a regex) the new pipeline is allowed to lack, and why."""

    metric: str
    reason: str
    sources: tuple[str, ...] = ()

    def excludes(self, source: str, name: str) -> bool:
        return (not self.sources or source in self.sources) and re.fullmatch(self.metric, name) is not None


@dataclass(frozen=True)
class ContinuitySeries:
    """Key series whose presence is counted per step, whatever pipeline writes them."""

    name: str
    selector: str
    by: tuple[str, ...]


@dataclass(frozen=True)
class GateSettings:
    new_selector: str
    legacy_selector: str
    jobs: tuple[str, ...]
    window: str
    interval_window: str = "2m"
    interval_step: float = 2.0
    min_scrapes: int = 8
    scrape_p99_max_seconds: float = 2.0
    scrape_interval_seconds: float = 15.0
    scrape_interval_tolerance: float = 0.1
    duplicate_interval_ratio: float = 0.6
    nodes: tuple[str, ...] = ()
    node_sources: tuple[str, ...] = ()
    singleton_sources: dict[str, int] = field(default_factory=dict)
    push_p99_max_seconds: float = 1.0
    push_p99_tolerance_ratio: float = 0.25
    push_p99_tolerance_seconds: float = 0.05
    discarded_tolerance_per_second: float = 0.0
    coverage: dict[str, str] = field(default_factory=dict)
    exclusions: tuple[Exclusion, ...] = ()
    join_left: str = 'container_cpu_usage_usec_microseconds{job="containerd"}'
    join_right: str = 'kube_pod_container_info{job="kube-state-metrics", container_id!=""}'
    join_label: str = "container_id"
    join_min_series: int = 1
    label_rules: tuple[LabelRule, ...] = ()
    cluster_label: str = "cluster"
    legacy_replicas_running: int = 0
    dedup_window: str = "2m"
    continuity: tuple[ContinuitySeries, ...] = ()
    continuity_start: float | None = None
    continuity_step: float = 30.0
    continuity_min_ratio: float = 0.9
    mimir: MimirQuery | None = None
    resource_source: str = 'job="kubelet", metrics_path="/metrics/cadvisor"'
    namespace: str = "monitoring"
    workloads: dict[str, str] = field(default_factory=dict)
    plot_start: float | None = None
    plot_rate_window: str = "1m"

    @property
    def scrape(self) -> ScrapeQuery:
        return ScrapeQuery(self.new_selector, self.jobs, self.window, self.interval_window, self.interval_step)


# --- measuring once for every gate ----------------------------------------------------------------


@dataclass
class Context:
    """The queries shared by several gates, run once; an error is kept and fails each gate that needs it."""

    data: Measurer
    meta: Measurer
    settings: GateSettings
    baseline: dict[str, Any]
    _cache: dict[str, Any] = field(default_factory=dict)

    def shared(self, name: str, compute: Callable[[], Any]) -> Any:
        if name not in self._cache:
            try:
                self._cache[name] = compute()
            except (PromQLError, ValueError) as error:
                self._cache[name] = error
        value = self._cache[name]
        if isinstance(value, Exception):
            raise value
        return value

    @property
    def targets(self) -> list[Target]:
        return self.shared("targets", lambda: measure_targets(self.data, self.settings.scrape, "new"))

    @property
    def names(self) -> dict[str, dict[str, int]]:
        return self.shared("names", lambda: measure_metric_names(self.data, self.settings.scrape, "new"))

    @property
    def sources(self) -> dict[str, dict[str, Any]]:
        return self.shared("sources", lambda: summarize_sources(self.targets, self.names))

    def query(self, name: str) -> str:
        return self.data.queries.get(name) or self.meta.queries.get(name, "")


def _list(items: list[str]) -> str:
    shown = "; ".join(items[:SHOWN])
    return shown + (f" (and {len(items) - SHOWN} more)" if len(items) > SHOWN else "")


def _jobs_without_targets(ctx: Context) -> list[str]:
    """Jobs of the settings without any target: a gate over their sources would be vacuous."""
    present = {target.labels.get("job", "") for target in ctx.targets}
    return [job for job in ctx.settings.jobs if job not in present]


# --- gates ----------------------------------------------------------------------------------------


def gate_scrape_duration(ctx: Context) -> Verdict:
    limit = ctx.settings.scrape_p99_max_seconds
    threshold = f"p99 < {human_seconds(limit)} per source, at least {ctx.settings.min_scrapes} scrapes per target"
    sources = ctx.sources
    query = ctx.query("new.scrape_duration_p99")
    figures = ", ".join(
        f"{key} {human_seconds(source['scrape_duration_p99_seconds'])}" for key, source in sources.items()
    )
    problems = [f"job {job} has no target" for job in _jobs_without_targets(ctx)]
    for target in ctx.targets:
        if target.scrapes < ctx.settings.min_scrapes:
            problems.append(f"{target.describe()} has only {target.scrapes} scrapes in {ctx.settings.window}")
        elif target.p99 is None or math.isnan(target.p99):
            problems.append(f"{target.describe()} has no scrape duration")
        elif target.p99 >= limit:
            problems.append(f"{target.describe()} p99 {human_seconds(target.p99)}")
    details = {key: source["scrape_duration_p99_seconds"] for key, source in sources.items()}
    status = FAIL if problems or not sources else PASS
    shown = f"{figures}; {_list(problems)}" if problems else figures or "no target"
    return Verdict("scrape_duration", status, shown, threshold, query, details)


def gate_scrape_interval(ctx: Context) -> Verdict:
    wanted, tolerance = ctx.settings.scrape_interval_seconds, ctx.settings.scrape_interval_tolerance
    threshold = f"{human_seconds(wanted)} ± {tolerance:.0%} per source"
    sources = ctx.sources
    problems = [f"job {job} has no target" for job in _jobs_without_targets(ctx)]
    for key, source in sources.items():
        measured = source["scrape_interval_seconds"]
        if measured is None:
            problems.append(f"{key}: no interval (fewer than two samples in {ctx.settings.interval_window})")
        elif abs(measured - wanted) > tolerance * wanted:
            problems.append(f"{key} every {human_seconds(measured)}")
    figures = ", ".join(f"{key} {human_seconds(source['scrape_interval_seconds'])}" for key, source in sources.items())
    details = {key: source["scrape_interval_seconds"] for key, source in sources.items()}
    status = FAIL if problems or not sources else PASS
    shown = f"{figures}; {_list(problems)}" if problems else figures or "no target"
    return Verdict("scrape_interval", status, shown, threshold, ctx.query("new.scrape_interval"), details)


def gate_targets_up(ctx: Context) -> Verdict:
    settings = ctx.settings
    by_place: dict[tuple[str, str], list[Target]] = {}
    for target in ctx.targets:
        by_place.setdefault((target.key, target.node), []).append(target)
    missing, down, expected = [], [], 0
    for key in settings.node_sources:
        for node in settings.nodes:
            expected += 1
            found = by_place.get((key, node), [])
            if not found:
                missing.append(f"{key} on {node}")
            down += [target.describe() for target in found if target.up != 1]
    for key, count in settings.singleton_sources.items():
        expected += count
        found = [target for target in ctx.targets if target.key == key]
        if len(found) < count:
            missing.append(f"{key}: {len(found)} of {count} targets")
        down += [target.describe() for target in found if target.up != 1]
    up = sum(1 for target in ctx.targets if target.up == 1)
    figures = f"{up} targets up; expected {expected} ({len(settings.nodes)} nodes x {len(settings.node_sources)} "
    figures += f"per-node sources + {sum(settings.singleton_sources.values())} singletons)"
    problems = [f"missing {item}" for item in missing] + [f"down {item}" for item in down]
    status = FAIL if problems or expected == 0 else PASS
    if expected == 0:
        problems.append("no expected target given (fails closed)")
    shown = f"{figures}; {_list(problems)}" if problems else figures
    details = {"missing": missing, "down": down, "expected": expected, "up": up}
    return Verdict("targets_up", status, shown, "up == 1 for every expected target", ctx.query("new.up"), details)


def gate_no_duplicate_targets(ctx: Context) -> Verdict:
    settings = ctx.settings
    problems = []
    by_address: dict[tuple[str, str, str], list[Target]] = {}
    by_place: dict[tuple[str, str], list[Target]] = {}
    for target in ctx.targets:
        # A hostNetwork collector scrapes 127.0.0.1 on every node: the node tells its targets apart.
        address = (target.node, target.instance, target.labels.get("metrics_path", ""))
        by_address.setdefault(address, []).append(target)
        if target.node:
            by_place.setdefault((target.key, target.node), []).append(target)
    for (node, instance, path), found in sorted(by_address.items()):
        if len(found) > 1:
            jobs = ", ".join(sorted(target.key for target in found))
            where = f" on {node}" if node else ""
            problems.append(f"{instance}{path}{where} scraped as {len(found)} series ({jobs})")
    for (key, node), found in sorted(by_place.items()):
        if key in settings.node_sources and len(found) > 1:
            problems.append(f"{key} on {node}: {len(found)} targets")
    for key, count in settings.singleton_sources.items():
        found = [target for target in ctx.targets if target.key == key]
        if len(found) > count:
            instances = ", ".join(target.instance for target in found)
            problems.append(f"{key}: {len(found)} targets ({instances}), expected {count}")
    floor = settings.duplicate_interval_ratio * settings.scrape_interval_seconds
    for target in ctx.targets:
        if target.interval is not None and target.interval < floor:
            problems.append(f"{target.describe()} written every {human_seconds(target.interval)} (two writers?)")
    figures = f"{len(ctx.targets)} targets, {len(by_address)} distinct addresses"
    threshold = f"one series per target and address, sample spacing >= {human_seconds(floor)}"
    status = FAIL if problems or not ctx.targets else PASS
    shown = f"{figures}; {_list(problems)}" if problems else figures
    return Verdict("no_duplicate_targets", status, shown, threshold, ctx.query("new.up"), {"problems": problems})


def _mimir(ctx: Context) -> MimirQuery:
    if ctx.settings.mimir is None:
        raise ValueError("no Mimir settings given")
    return ctx.settings.mimir


def gate_push_latency(ctx: Context) -> Verdict:
    settings = ctx.settings
    query = _mimir(ctx).push_p99()
    now = ctx.meta.single("gate.push_p99", query)
    before = ctx.baseline.get("mimir", {}).get("push_p99_seconds")
    allowed = (
        None
        if before is None
        else before * (1 + settings.push_p99_tolerance_ratio) + (settings.push_p99_tolerance_seconds)
    )
    threshold = (
        f"< {human_seconds(settings.push_p99_max_seconds)} and <= baseline x "
        f"{1 + settings.push_p99_tolerance_ratio:g} + {human_seconds(settings.push_p99_tolerance_seconds)}"
    )
    figures = f"p99 {human_seconds(now)} over {settings.window}, baseline {human_seconds(before)}"
    if now is None or before is None:
        missing = "now" if now is None else "in the baseline"
        return Verdict("push_latency", FAIL, f"{figures}; no data {missing} (fails closed)", threshold, query)
    problems = []
    if now >= settings.push_p99_max_seconds:
        problems.append(f"above {human_seconds(settings.push_p99_max_seconds)}")
    if allowed is not None and now > allowed:
        problems.append(f"worse than the baseline allows ({human_seconds(allowed)})")
    shown = f"{figures}; {', '.join(problems)}" if problems else figures
    details = {"now_seconds": now, "baseline_seconds": before, "allowed_seconds": allowed}
    return Verdict("push_latency", FAIL if problems else PASS, shown, threshold, query, details)


def gate_discarded_samples(ctx: Context) -> Verdict:
    query = _mimir(ctx).discarded()
    now = ctx.meta.single("gate.discarded", query)
    before = ctx.baseline.get("mimir", {}).get("discarded_samples_per_second")
    tolerance = ctx.settings.discarded_tolerance_per_second
    threshold = f"<= baseline + {tolerance:g}/s"
    figures = f"{human_number(now, '/s')} discarded now, {human_number(before, '/s')} at baseline"
    if now is None or before is None:
        return Verdict("discarded_samples", FAIL, f"{figures} (no data: fails closed)", threshold, query)
    status = PASS if now <= before + tolerance else FAIL
    details = {"now_per_second": now, "baseline_per_second": before}
    return Verdict("discarded_samples", status, figures, threshold, query, details)


def gate_metric_coverage(ctx: Context) -> Verdict:
    settings = ctx.settings
    baseline_sources = ctx.baseline.get("sources", {})
    current = ctx.names
    problems, covered, excluded = [], [], []
    for legacy_key, new_key in settings.coverage.items():
        if legacy_key not in baseline_sources:
            problems.append(f"the baseline has no source {legacy_key}")
            continue
        wanted = baseline_sources[legacy_key].get("metric_names", [])
        skipped = [name for name in wanted if any(rule.excludes(legacy_key, name) for rule in settings.exclusions)]
        excluded += [f"{legacy_key}/{name}" for name in skipped]
        lacking = sorted(set(wanted) - set(skipped) - set(current.get(new_key, {})))
        covered.append(
            f"{legacy_key} -> {new_key} {len(wanted) - len(skipped) - len(lacking)}/{len(wanted) - len(skipped)}"
        )
        problems += [f"{new_key} lacks {name} (from {legacy_key})" for name in lacking]
    unmapped = sorted(set(baseline_sources) - set(settings.coverage))
    figures = ", ".join(covered) or "nothing mapped"
    if excluded:
        figures += f"; excluded {len(excluded)}"
    if unmapped:
        figures += f"; not carried over (no new source mapped): {', '.join(unmapped)}"
    status = FAIL if problems or not settings.coverage else PASS
    shown = f"{figures}; {_list(problems)}" if problems else figures
    details = {"missing": problems, "excluded": excluded, "unmapped": unmapped}
    threshold = "every baseline metric name present, minus documented exclusions"
    return Verdict("metric_coverage", status, shown, threshold, ctx.query("new.metric_names"), details)


def _with(selector_text: str, *extra: str) -> str:
    """Add matchers to a selector written as metric{...} or {...}."""
    metric, brace, inner = selector_text.partition("{")
    inner = inner.rstrip().removesuffix("}") if brace else ""
    return selector(metric.strip(), inner, *extra)


def gate_container_id_join(ctx: Context) -> Verdict:
    settings = ctx.settings
    label = settings.join_label
    left = _with(settings.join_left, settings.new_selector)
    right = _with(settings.join_right, settings.new_selector)
    joined_query = (
        f"count({left} * on ({label}) group_left (namespace, pod, container) "
        f"max by ({label}, namespace, pod, container) ({right}))"
    )
    joined = ctx.data.single("gate.join", joined_query) or 0.0
    total = ctx.data.single("gate.join_left", f"count({left})")
    threshold = f">= {settings.join_min_series} joined series"
    if total is None:
        return Verdict("container_id_join", FAIL, f"no series {left} (fails closed)", threshold, joined_query)
    figures = f"{joined:.0f} of {total:.0f} series ({joined / total:.0%}) join a {right} on {label}"
    status = PASS if joined >= settings.join_min_series else FAIL
    return Verdict("container_id_join", status, figures, threshold, joined_query, {"joined": joined, "total": total})


def gate_dashboard_labels(ctx: Context) -> Verdict:
    settings = ctx.settings
    problems, figures, queries = [], [], []
    for rule in settings.label_rules:
        labels = rule.labels + ((settings.cluster_label,) if settings.cluster_label else ())
        base = selector(rule.metric, settings.new_selector, rule.selector)
        required = [f'{name}!=""' for name in labels if f'{name}!=""' not in rule.selector]
        complete = selector(rule.metric, settings.new_selector, rule.selector, *required)
        total = ctx.data.single(f"gate.labels.{rule.name}", f"count({base})")
        full = ctx.data.single(f"gate.labels.{rule.name}.complete", f"count({complete})") or 0.0
        queries.append(f"count({complete})")
        if total is None:
            problems.append(f"{rule.name}: no series {base}")
            continue
        figures.append(f"{rule.name} {full:.0f}/{total:.0f}")
        if full < total:
            problems.append(f"{rule.name}: {total - full:.0f} of {total:.0f} series lack one of {', '.join(labels)}")
    threshold = "every series carries the labels dashboards select on"
    status = FAIL if problems or not settings.label_rules else PASS
    shown = ", ".join(figures) + (f"; {_list(problems)}" if problems else "")
    return Verdict("dashboard_labels", status, shown or "no rule", threshold, "; ".join(queries))


def gate_ha_dedup(ctx: Context) -> Verdict:
    settings = ctx.settings
    mimir = _mimir(ctx)
    window = settings.dedup_window
    query = (
        f"{mimir.rate('cortex_distributor_deduped_samples_total', window=window)} or on() "
        f"(0 * {mimir.rate('cortex_distributor_samples_in_total', window=window)})"
    )
    if settings.legacy_replicas_running > 0:
        count = settings.legacy_replicas_running
        reason = (
            f"{count} legacy Prometheus replica{'' if count == 1 else 's'} still running: Mimir deduplicates "
            "their samples until they are decommissioned"
        )
        return Verdict("ha_dedup", SKIP, reason, f"0 samples/s over {window} once they stop", query)
    now = ctx.meta.single("gate.dedup", query)
    threshold = f"0 samples/s over {window}"
    if now is None:
        return Verdict("ha_dedup", FAIL, "no data (fails closed)", threshold, query)
    status = PASS if now == 0 else FAIL
    return Verdict("ha_dedup", status, f"{human_number(now, 'samples/s')} deduplicated", threshold, query)


def gate_cluster_label_collision(ctx: Context) -> Verdict:
    label = ctx.settings.cluster_label
    # The new pipeline's own jobs only: Mimir's meta-monitoring series carry no prometheus label either.
    new_values = cluster_values(
        ctx.data, matchers(ctx.settings.new_selector, one_of("job", ctx.settings.jobs)), label, "gate.cluster.new"
    )
    legacy_now = cluster_values(ctx.data, ctx.settings.legacy_selector, label, "gate.cluster.legacy")
    legacy = sorted(set(ctx.baseline.get("mimir", {}).get("ha_clusters", [])) | {v for v in legacy_now if v})
    query = ctx.query("gate.cluster.new")
    threshold = f"no {label} value shared with the legacy HA series"
    if not new_values:
        return Verdict(
            "cluster_label_collision", FAIL, "no series of the new pipeline (fails closed)", threshold, query
        )
    shared = sorted(set(new_values) & set(legacy))
    shown_new = ", ".join(value or "(none)" for value in new_values)
    figures = f"new {label}: {shown_new}; legacy HA: {', '.join(legacy) or '(none)'}"
    if shared:
        figures += f"; shared: {', '.join(shared)}"
    details = {"new": new_values, "legacy": legacy, "shared": shared}
    return Verdict("cluster_label_collision", FAIL if shared else PASS, figures, threshold, query, details)


def _continuity_query(series: ContinuitySeries, step: float) -> str:
    return f"count by ({', '.join(series.by)}) (count_over_time({series.selector}[{step:g}s]))"


def _clock(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%H:%M:%S")


def _silent_runs(present: set[float], steps: list[float], trailing: bool) -> list[list[float]]:
    """Runs of steps without data after the first step with data (and before the last one, unless `trailing`)."""
    seen = [index for index, t in enumerate(steps) if t in present]
    if not seen:
        return []
    end = len(steps) if trailing else seen[-1] + 1
    runs: list[list[float]] = []
    current: list[float] = []
    for t in steps[seen[0] : end]:
        if t not in present:
            current.append(t)
        elif current:
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    return runs


def _describe_run(run: list[float]) -> str:
    return f"{_clock(run[0])}-{_clock(run[-1])} UTC ({len(run)} steps)"


def _continuity_of(ctx: Context, series: ContinuitySeries, steps: list[float]) -> tuple[str, list[str], dict[str, Any]]:
    """(figures, problems, details) of one key series: a member's interior gap, or every member's silence."""
    step = ctx.settings.continuity_step
    rows = ctx.data.range(f"gate.continuity.{series.name}", _continuity_query(series, step), steps[0], step)
    if not rows:
        return "", [f"{series.name}: no data from {_clock(steps[0])} UTC"], {}
    members: dict[str, set[float]] = {}
    for labels, values in rows:
        name = "/".join(labels.get(label, "") for label in series.by)
        members[name] = {round(t, 3) for t, _ in values}
    union = set().union(*members.values())
    problems = [f"{series.name}: every member silent {_describe_run(run)}" for run in _silent_runs(union, steps, True)]
    gapped = {
        name: [_describe_run(run) for run in _silent_runs(present, steps, False)]
        for name, present in sorted(members.items())
    }
    gapped = {name: runs for name, runs in gapped.items() if runs}
    problems += [f"{series.name} {name} gap {', '.join(runs)}" for name, runs in gapped.items()]
    first = min(union)
    late = f", data from {_clock(first)} UTC" if first > steps[0] else ""
    figures = f"{series.name} {len(members)} members, {len(gapped)} with a gap{late}"
    return figures, problems, {"members": len(members), "gaps": gapped}


def gate_continuity(ctx: Context) -> Verdict:
    settings = ctx.settings
    start, step = settings.continuity_start, settings.continuity_step
    threshold = f"no member of a key series without samples for a {step:g} s step between two with samples"
    queries = [_continuity_query(series, step) for series in settings.continuity]
    if start is None or start >= ctx.data.at - step:
        return Verdict("continuity", FAIL, "no cutover window to check (fails closed)", threshold, "; ".join(queries))
    count = int((ctx.data.at - start) // step) + 1
    steps = [round(ctx.data.at - step * index, 3) for index in range(count)][::-1]
    figures, problems, details = [], [], {}
    for series in settings.continuity:
        shown, found, detail = _continuity_of(ctx, series, steps)
        figures += [shown] if shown else []
        problems += found
        details[series.name] = detail
    window = f"{_clock(steps[0])}-{_clock(steps[-1])} UTC"
    shown = f"{window}: " + ", ".join(figures) + (f"; {_list(problems)}" if problems else "")
    status = FAIL if problems or not settings.continuity else PASS
    return Verdict("continuity", status, shown, threshold, "; ".join(queries), details)


GATES: tuple[tuple[str, Callable[[Context], Verdict]], ...] = (
    ("scrape_duration", gate_scrape_duration),
    ("scrape_interval", gate_scrape_interval),
    ("targets_up", gate_targets_up),
    ("no_duplicate_targets", gate_no_duplicate_targets),
    ("push_latency", gate_push_latency),
    ("discarded_samples", gate_discarded_samples),
    ("metric_coverage", gate_metric_coverage),
    ("container_id_join", gate_container_id_join),
    ("dashboard_labels", gate_dashboard_labels),
    ("ha_dedup", gate_ha_dedup),
    ("cluster_label_collision", gate_cluster_label_collision),
    ("continuity", gate_continuity),
)
GATE_NAMES = tuple(name for name, _ in GATES)


def run_gate(name: str, gate: Callable[[Context], Verdict], ctx: Context) -> Verdict:
    try:
        return gate(ctx)
    except (PromQLError, ValueError) as error:
        return Verdict(name, FAIL, f"cannot be evaluated (fails closed): {error}", "-", "")


def evaluate(ctx: Context, only: tuple[str, ...] = ()) -> list[Verdict]:
    return [run_gate(name, gate, ctx) for name, gate in GATES if not only or name in only]


# --- what the report needs beyond verdicts --------------------------------------------------------


def measure_current(ctx: Context) -> dict[str, Any]:
    """The new pipeline's figures in the baseline's shape; what cannot be measured is None."""
    current: dict[str, Any] = {}
    try:
        current["sources"] = ctx.sources
    except (PromQLError, ValueError):
        current["sources"] = {}
    try:
        current["mimir"] = measure_mimir(ctx.meta, _mimir(ctx), "current.mimir")
    except (PromQLError, ValueError):
        current["mimir"] = {}
    settings = ctx.settings
    try:
        query = ResourceQuery(settings.new_selector, settings.resource_source, settings.namespace, settings.window)
        current["resources"] = measure_resources(ctx.data, query, settings.workloads, "current.resources")
    except (PromQLError, ValueError):
        current["resources"] = {}
    current["resources_total"] = resource_totals(current["resources"]) if current["resources"] else {}
    seconds = duration_seconds(settings.window)
    try:
        current["pipeline_samples_per_second"] = ctx.data.single(
            "current.pipeline_samples_per_second",
            f"sum(sum_over_time({_new_pipeline_samples(settings)}[{settings.window}])) / {seconds:g}",
        )
    except (PromQLError, ValueError):
        current["pipeline_samples_per_second"] = None
    return current


def _new_pipeline_samples(settings: GateSettings) -> str:
    """Samples each scrape of the new pipeline's jobs kept: what it sends to Mimir."""
    return selector(
        "scrape_samples_post_metric_relabeling",
        matchers(settings.new_selector, one_of("job", settings.jobs)),
    )


def timeseries(ctx: Context) -> dict[str, Any]:
    """Push p99 and samples/s per pipeline over the migration window, for the report's plots."""
    settings = ctx.settings
    start = settings.plot_start or (ctx.data.at - duration_seconds(settings.window))
    span = max(ctx.data.at - start, 60.0)
    step = max(round(span / 240), 15)
    window = settings.plot_rate_window
    seconds = duration_seconds(window)
    legacy_samples = selector("scrape_samples_post_metric_relabeling", settings.legacy_selector)
    new_samples = _new_pipeline_samples(settings)
    series: dict[str, Any] = {
        "start": start,
        "end": ctx.data.at,
        "step": step,
        "cutover": settings.continuity_start,
    }
    wanted = {
        "push_p99_seconds": (ctx.meta, _mimir(ctx).push_p99(window) if settings.mimir else ""),
        "legacy_samples_per_second": (ctx.data, f"sum(sum_over_time({legacy_samples}[{window}])) / {seconds:g}"),
        "new_samples_per_second": (ctx.data, f"sum(sum_over_time({new_samples}[{window}])) / {seconds:g}"),
        "deduplicated_samples_per_second": (
            ctx.meta,
            _mimir(ctx).rate("cortex_distributor_deduped_samples_total", window=window) if settings.mimir else "",
        ),
    }
    for name, (measurer, query) in wanted.items():
        if not query:
            continue
        try:
            rows = measurer.range(f"plot.{name}", query, start, step)
        except (PromQLError, ValueError) as error:
            series[name] = {"query": query, "error": str(error), "values": []}
            continue
        values = [[t, v] for t, v in rows[0][1] if not math.isnan(v)] if rows else []
        series[name] = {"query": query, "values": values}
    return series
