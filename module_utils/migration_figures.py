"""Figures of a metrics pipeline as Mimir stores them: what the baseline records and validation compares.

A pipeline is a label selector. The legacy HA Prometheus replicas write the operator's external label
`prometheus="<namespace>/<cr>"`; the new pipeline (Alloy, OTel Collector) writes none. A *source* is one
scrape job, split by the `metrics_path` label kube-prometheus-stack puts on the kubelet's two endpoints
(`kubelet:/metrics/cadvisor`). Baseline and validation measure both pipelines with the same functions and
the same definitions, so a before/after ratio compares like with like:

- scrape duration p99 of a source: the slowest target's 99th percentile of `scrape_duration_seconds`
  over the window (`quantile_over_time` per target, the maximum across targets);
- p50: the median across targets of each target's median;
- scrape interval: the median spacing of the stored samples of `up`, read with `timestamp(up)` in a range
  query whose step is finer than any interval (a series written by two scrapers shows half the interval);
- active series: series of the source at the evaluation time; metric names likewise (without the
  synthetic `up` and `scrape_*` series every scrape produces);
- Mimir: push p99 from `cortex_request_duration_seconds` over the push routes, bytes received from
  `cortex_request_message_bytes` (dskit's request-size histogram), samples from the distributor counters;
- CPU and memory of workloads from the kubelet's cAdvisor series (`container_cpu_usage_seconds_total`,
  `container_memory_working_set_bytes`) of containers matched by pod name.
"""

from __future__ import annotations

import fnmatch
import itertools
import math
import re
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ansible.module_utils.promql import PromQLClient, parse_duration

SYNTHETIC_METRICS = re.compile(r"^(up|scrape_.+)$")
# Mimir's write routes (contracts: the mixin's push-latency matcher) and the HTTP ones that carry a body.
PUSH_ROUTES = "/distributor.Distributor/Push|/httpgrpc.*|api_(v1|prom)_push|otlp_v1_metrics"
PUSH_BODY_ROUTES = "api_(v1|prom)_push|otlp_v1_metrics"
_RE2_SPECIAL = re.compile(r"([\\.+*?()\[\]{}|^$])")


# --- PromQL text ----------------------------------------------------------------------------------


def promql_string(value: str) -> str:
    """A PromQL double-quoted string literal."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def regex_alternatives(values: Iterable[str]) -> str:
    """An RE2 alternation matching exactly these values."""
    return "|".join(_RE2_SPECIAL.sub(r"\\\1", value) for value in values)


def matchers(*parts: str) -> str:
    """Label matchers joined with commas; empty parts (an unset selector) are left out."""
    return ", ".join(part.strip().strip(",") for part in parts if part and part.strip())


def selector(metric: str, *parts: str) -> str:
    inner = matchers(*parts)
    return f"{metric}{{{inner}}}" if inner else metric


def equals(label: str, value: str) -> str:
    return f"{label}={promql_string(value)}"


def one_of(label: str, values: Iterable[str]) -> str:
    return f"{label}=~{promql_string(regex_alternatives(values))}"


def source_key(job: str, metrics_path: str = "") -> str:
    """`job`, or `job:<metrics_path>` for sources split by kube-prometheus-stack's metrics_path label."""
    return f"{job}:{metrics_path}" if metrics_path else job


def split_source_key(key: str) -> tuple[str, str]:
    job, _, path = key.partition(":")
    return job, path


def source_matchers(key: str) -> str:
    job, path = split_source_key(key)
    return matchers(equals("job", job), equals("metrics_path", path) if path else "")


# --- queries --------------------------------------------------------------------------------------


@dataclass
class Measurer:
    """Queries one API at one evaluation time, remembering the text of every query by figure name."""

    client: PromQLClient
    at: float
    queries: dict[str, str] = field(default_factory=dict)

    def instant(self, name: str, query: str) -> list[tuple[dict[str, str], float]]:
        """(labels, value) per series; a scalar result is one unlabelled value."""
        self.queries[name] = query
        result = self.client.query_instant(query, at=f"{self.at:.3f}")
        if result.result_type == "scalar":
            return [({}, result.result["value"])]
        if result.result_type != "vector":
            raise ValueError(f"{name}: expected a vector from `{query}`, got {result.result_type}")
        return [(item["metric"], item["value"]) for item in result.result]

    def single(self, name: str, query: str) -> float | None:
        """The one value of an aggregated query; None when there is no data or it is NaN."""
        rows = self.instant(name, query)
        if not rows or math.isnan(rows[0][1]):
            return None
        return rows[0][1]

    def range(self, name: str, query: str, start: float, step: float) -> list[tuple[dict[str, str], list[list[float]]]]:
        self.queries[name] = query
        result = self.client.query_range(query, f"{start:.3f}", f"{self.at:.3f}", f"{step:g}")
        return [(item["metric"], item["values"]) for item in result.result]


def duration_seconds(text: str) -> float:
    seconds = parse_duration(text)
    if seconds <= 0:
        raise ValueError(f"a window must be longer than zero, got {text!r}")
    return seconds


# --- scrape targets and sources -------------------------------------------------------------------


@dataclass
class Target:
    """One scrape target of a pipeline, identified by the labels of its `up` series."""

    labels: dict[str, str]
    up: float | None = None
    scrapes: int = 0
    p50: float | None = None
    p99: float | None = None
    interval: float | None = None

    @property
    def key(self) -> str:
        return source_key(self.labels.get("job", ""), self.labels.get("metrics_path", ""))

    @property
    def instance(self) -> str:
        return self.labels.get("instance", "")

    @property
    def node(self) -> str:
        return self.labels.get("node", "")

    def describe(self) -> str:
        where = self.node or self.instance or "?"
        return f"{self.key} on {where}"


def _identity(labels: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, v) for k, v in labels.items() if k != "__name__"))


def series_interval(values: list[list[float]]) -> float | None:
    """Median spacing of the distinct sample timestamps `timestamp(up)` returned at each step."""
    stamps = sorted({value for _, value in values if not math.isnan(value)})
    gaps = [later - earlier for earlier, later in itertools.pairwise(stamps)]
    return statistics.median(gaps) if gaps else None


@dataclass(frozen=True)
class ScrapeQuery:
    """Which series of a pipeline to measure and over which windows."""

    pipeline: str  # matchers that select the pipeline, e.g. prometheus="monitoring/kps-prometheus"
    jobs: tuple[str, ...]
    window: str  # duration figures are computed over, e.g. 1h
    interval_window: str = "2m"  # range read to measure intervals
    interval_step: float = 2.0  # seconds, finer than any scrape interval

    def select(self, metric: str) -> str:
        return selector(metric, self.pipeline, one_of("job", self.jobs))


def measure_targets(measurer: Measurer, query: ScrapeQuery, prefix: str) -> list[Target]:
    """Every target of the pipeline's jobs with its current `up`, scrape count, p50, p99 and interval."""
    window = query.window
    targets: dict[tuple[tuple[str, str], ...], Target] = {}

    def target(labels: dict[str, str]) -> Target:
        identity = _identity(labels)
        if identity not in targets:
            targets[identity] = Target(dict(identity))
        return targets[identity]

    for labels, value in measurer.instant(f"{prefix}.scrapes", f"count_over_time({query.select('up')}[{window}])"):
        target(labels).scrapes = int(value)
    for labels, value in measurer.instant(f"{prefix}.up", query.select("up")):
        target(labels).up = value
    duration = query.select("scrape_duration_seconds")
    for labels, value in measurer.instant(
        f"{prefix}.scrape_duration_p99", f"quantile_over_time(0.99, {duration}[{window}])"
    ):
        target(labels).p99 = value
    for labels, value in measurer.instant(
        f"{prefix}.scrape_duration_p50", f"quantile_over_time(0.5, {duration}[{window}])"
    ):
        target(labels).p50 = value
    start = measurer.at - duration_seconds(query.interval_window)
    for labels, values in measurer.range(
        f"{prefix}.scrape_interval", f"timestamp({query.select('up')})", start, query.interval_step
    ):
        target(labels).interval = series_interval(values)
    return sorted(targets.values(), key=lambda item: (item.key, item.node, item.instance))


def measure_metric_names(measurer: Measurer, query: ScrapeQuery, prefix: str) -> dict[str, dict[str, int]]:
    """Series per metric name, per source, at the evaluation time (synthetic scrape series left out)."""
    names: dict[str, dict[str, int]] = {}
    rows = measurer.instant(
        f"{prefix}.metric_names",
        f"count by (job, metrics_path, __name__) ({{{matchers(query.pipeline, one_of('job', query.jobs))}}})",
    )
    for labels, value in rows:
        name = labels.get("__name__", "")
        if SYNTHETIC_METRICS.match(name):
            continue
        key = source_key(labels.get("job", ""), labels.get("metrics_path", ""))
        names.setdefault(key, {})[name] = int(value)
    return names


def _present(values: Iterable[float | None]) -> list[float]:
    return [value for value in values if value is not None and not math.isnan(value)]


def summarize_sources(targets: list[Target], names: dict[str, dict[str, int]]) -> dict[str, dict[str, Any]]:
    """Per source: targets, scrapes, p50, p99, interval, series and metric names."""
    keys = sorted({target.key for target in targets} | set(names))
    sources = {}
    for key in keys:
        members = [target for target in targets if target.key == key]
        job, path = split_source_key(key)
        p99 = _present(target.p99 for target in members)
        p50 = _present(target.p50 for target in members)
        intervals = _present(target.interval for target in members)
        up = _present(target.up for target in members)
        metric_names = names.get(key, {})
        sources[key] = {
            "job": job,
            "metrics_path": path,
            "targets": len(members),
            "targets_up": sum(1 for value in up if value == 1),
            "scrapes_min": min((target.scrapes for target in members), default=0),
            "scrape_duration_p50_seconds": statistics.median(p50) if p50 else None,
            "scrape_duration_p99_seconds": max(p99) if p99 else None,
            "scrape_interval_seconds": statistics.median(intervals) if intervals else None,
            "scrape_interval_min_seconds": min(intervals) if intervals else None,
            "active_series": sum(metric_names.values()) if metric_names else None,
            "metric_names": sorted(metric_names),
        }
    return sources


# --- Mimir ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MimirQuery:
    """Where Mimir's own metrics are and whose figures to read.

    `selector` narrows Mimir's metrics (e.g. `namespace="mimir"` in a meta-monitoring tenant); `user` is
    the tenant whose per-tenant distributor counters count (`anonymous` when multitenancy is off).
    """

    selector: str
    user: str
    window: str
    discard_reasons: tuple[str, ...] = ()

    def select(self, metric: str, *extra: str, per_user: bool = True) -> str:
        return selector(metric, self.selector, equals("user", self.user) if per_user else "", *extra)

    def push_p99(self, window: str | None = None) -> str:
        buckets = self.select(
            "cortex_request_duration_seconds_bucket", f"route=~{promql_string(PUSH_ROUTES)}", per_user=False
        )
        return f"histogram_quantile(0.99, sum by (le) (rate({buckets}[{window or self.window}])))"

    def rate(self, metric: str, *extra: str, per_user: bool = True, window: str | None = None) -> str:
        return f"sum(rate({self.select(metric, *extra, per_user=per_user)}[{window or self.window}]))"

    def discarded(self, window: str | None = None) -> str:
        """Discards of the given reasons; 0 (not nothing) when Mimir reports samples but never discarded one."""
        reasons = f"reason=~{promql_string(regex_alternatives(self.discard_reasons))}" if self.discard_reasons else ""
        seen = self.rate("cortex_distributor_samples_in_total", window=window)
        return f"{self.rate('cortex_discarded_samples_total', reasons, window=window)} or on() (0 * {seen})"


MIMIR_FIGURES = (
    "push_p99_seconds",
    "received_bytes_per_second",
    "received_samples_per_second",
    "incoming_samples_per_second",
    "deduplicated_samples_per_second",
    "discarded_samples_per_second",
)


def measure_mimir(measurer: Measurer, query: MimirQuery, prefix: str = "mimir") -> dict[str, float | None]:
    bytes_query = query.rate(
        "cortex_request_message_bytes_sum", f"route=~{promql_string(PUSH_BODY_ROUTES)}", per_user=False
    )
    texts = {
        "push_p99_seconds": query.push_p99(),
        "received_bytes_per_second": bytes_query,
        "received_samples_per_second": query.rate("cortex_distributor_received_samples_total"),
        "incoming_samples_per_second": query.rate("cortex_distributor_samples_in_total"),
        "deduplicated_samples_per_second": query.rate("cortex_distributor_deduped_samples_total"),
        "discarded_samples_per_second": query.discarded(),
    }
    return {name: measurer.single(f"{prefix}.{name}", text) for name, text in texts.items()}


def cluster_values(measurer: Measurer, pipeline: str, label: str, name: str) -> list[str]:
    """Values of the cluster label on a pipeline's `up` series (empty string: the label is absent)."""
    rows = measurer.instant(name, f"count by ({label}) ({selector('up', pipeline)})")
    return sorted({labels.get(label, "") for labels, _ in rows})


# --- workloads' CPU and memory --------------------------------------------------------------------


@dataclass(frozen=True)
class ResourceQuery:
    """cAdvisor series of one pipeline (`pipeline` + `source`), containers of pods matching a regex."""

    pipeline: str
    source: str  # e.g. job="kubelet", metrics_path="/metrics/cadvisor"
    namespace: str
    window: str

    def select(self, metric: str, pod_regex: str) -> str:
        return selector(
            metric,
            self.pipeline,
            self.source,
            equals("namespace", self.namespace),
            f"pod=~{promql_string(pod_regex)}",
            'container!=""',
            'container!="POD"',
        )


def measure_resources(
    measurer: Measurer, query: ResourceQuery, workloads: dict[str, str], prefix: str
) -> dict[str, dict[str, float | None]]:
    """Per workload (name -> pod regex): pods, CPU cores and working-set bytes averaged over the window."""
    figures = {}
    for name, pod_regex in workloads.items():
        cpu = query.select("container_cpu_usage_seconds_total", pod_regex)
        memory = query.select("container_memory_working_set_bytes", pod_regex)
        pods = measurer.single(f"{prefix}.{name}.pods", f"count(count by (pod) ({memory}))")
        figures[name] = {
            "pods": int(pods) if pods is not None else None,
            "cpu_cores": measurer.single(f"{prefix}.{name}.cpu_cores", f"sum(rate({cpu}[{query.window}]))"),
            "memory_bytes": measurer.single(
                f"{prefix}.{name}.memory_bytes", f"sum(avg_over_time({memory}[{query.window}]))"
            ),
        }
    return figures


def resource_totals(resources: dict[str, dict[str, float | None]]) -> dict[str, float | None]:
    def total(field_name: str) -> float | None:
        values = [figures[field_name] for figures in resources.values()]
        return None if not values or any(value is None for value in values) else math.fsum(values)

    return {"cpu_cores": total("cpu_cores"), "memory_bytes": total("memory_bytes")}


# --- formatting -----------------------------------------------------------------------------------


def human_seconds(value: float | None) -> str:
    if value is None:
        return "no data"
    if value < 1:
        return f"{value * 1000:.0f} ms" if value >= 0.001 else f"{value * 1000:.2f} ms"
    return f"{value:.2f} s"


def human_bytes(value: float | None, per_second: bool = False) -> str:
    if value is None:
        return "no data"
    suffix = "/s" if per_second else ""
    for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if abs(value) >= size:
            return f"{value / size:.2f} {unit}{suffix}"
    return f"{value:.0f} B{suffix}"


def human_number(value: float | None, unit: str = "") -> str:
    if value is None:
        return "no data"
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
    return f"{text} {unit}".strip()


# --- the baseline ---------------------------------------------------------------------------------

SOURCE_FIGURES = (
    "scrape_duration_p50_seconds",
    "scrape_duration_p99_seconds",
    "scrape_interval_seconds",
    "active_series",
)


@dataclass(frozen=True)
class BaselineSpec:
    """What the baseline captures from the legacy pipeline, and which figures may lack data."""

    scrape: ScrapeQuery
    mimir: MimirQuery
    resources: ResourceQuery
    workloads: dict[str, str]
    cluster_label: str = "cluster"
    min_scrapes: int = 10
    optional: tuple[str, ...] = ()

    def is_optional(self, figure: str) -> bool:
        return any(fnmatch.fnmatchcase(figure, pattern) for pattern in self.optional)


def capture_baseline(
    measurer: Measurer, spec: BaselineSpec, mimir_measurer: Measurer | None = None
) -> tuple[dict[str, Any], list[str]]:
    """The baseline figures and the reasons they cannot stand as a baseline (empty when they can).

    `mimir_measurer` reads Mimir's own metrics when they live in another tenant or cluster.
    """
    meta = mimir_measurer or measurer
    targets = measure_targets(measurer, spec.scrape, "sources")
    sources = summarize_sources(targets, measure_metric_names(measurer, spec.scrape, "sources"))
    mimir: dict[str, Any] = measure_mimir(meta, spec.mimir)
    mimir["ha_clusters"] = [
        value
        for value in cluster_values(measurer, spec.scrape.pipeline, spec.cluster_label, "mimir.ha_clusters")
        if value
    ]
    resources = measure_resources(measurer, spec.resources, spec.workloads, "resources")
    document = {
        "sources": sources,
        "mimir": mimir,
        "resources": resources,
        "resources_total": resource_totals(resources),
    }
    queries = {**measurer.queries, **meta.queries}
    missing = sorted(name for name, value in _figure_values(document).items() if value is None)
    problems = [
        f"{name}: no data (query: {_query_of(queries, name)})" for name in missing if not spec.is_optional(name)
    ]
    problems += _coverage_problems(spec, sources)
    document["missing"] = missing
    document["queries"] = queries
    return document, problems


def _figure_values(document: dict[str, Any]) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for key, source in document["sources"].items():
        for name in SOURCE_FIGURES:
            figures[f"sources.{key}.{name}"] = source[name]
    for name in MIMIR_FIGURES:
        figures[f"mimir.{name}"] = document["mimir"][name]
    for workload, values in document["resources"].items():
        for name, value in values.items():
            figures[f"resources.{workload}.{name}"] = value
    return figures


# The query each per-source figure comes from, by the figure's field name.
_SOURCE_FIGURE_QUERIES = {
    "scrape_duration_p50_seconds": "sources.scrape_duration_p50",
    "scrape_duration_p99_seconds": "sources.scrape_duration_p99",
    "scrape_interval_seconds": "sources.scrape_interval",
    "active_series": "sources.metric_names",
}


def _query_of(queries: dict[str, str], figure: str) -> str:
    """The query behind a figure name such as sources.kubelet.scrape_duration_p99_seconds."""
    if figure.startswith("sources."):
        figure = _SOURCE_FIGURE_QUERIES.get(figure.rpartition(".")[2], "")
    return queries.get(figure, "?")


def _coverage_problems(spec: BaselineSpec, sources: dict[str, dict[str, Any]]) -> list[str]:
    """Every job has data, and enough scrapes in the window for its figures to mean something."""
    problems = []
    query = measure_query_text(spec.scrape)
    for job in spec.scrape.jobs:
        if not any(source["job"] == job for source in sources.values()):
            problems.append(f"job {job!r}: no series of the pipeline {spec.scrape.pipeline} (query: {query})")
    for key, source in sources.items():
        if source["targets"] and source["scrapes_min"] < spec.min_scrapes:
            problems.append(
                f"{key}: a target has only {source['scrapes_min']} scrapes in the {spec.scrape.window} window "
                f"(at least {spec.min_scrapes} needed for the figures to stand; wait, or shorten the window)"
            )
    return problems


def measure_query_text(query: ScrapeQuery) -> str:
    return f"count_over_time({query.select('up')}[{query.window}])"


def baseline_summary(document: dict[str, Any]) -> dict[str, Any]:
    """The headline figures a migration state record carries."""
    sources = document["sources"]
    return {
        "sources": len(sources),
        "scrape_duration_p99_seconds": {key: source["scrape_duration_p99_seconds"] for key, source in sources.items()},
        "push_p99_seconds": document["mimir"]["push_p99_seconds"],
        "received_samples_per_second": document["mimir"]["received_samples_per_second"],
        "deduplicated_samples_per_second": document["mimir"]["deduplicated_samples_per_second"],
        "cpu_cores": document["resources_total"]["cpu_cores"],
        "memory_bytes": document["resources_total"]["memory_bytes"],
    }


def baseline_headline(document: dict[str, Any]) -> list[str]:
    """The baseline in a few lines for an operator's terminal."""
    mimir, total = document["mimir"], document["resources_total"]
    lines = [
        f"{key}: {source['targets']} targets, scrape p50 {human_seconds(source['scrape_duration_p50_seconds'])}, "
        f"p99 {human_seconds(source['scrape_duration_p99_seconds'])}, "
        f"every {human_seconds(source['scrape_interval_seconds'])}, "
        f"{human_number(source['active_series'])} series"
        for key, source in document["sources"].items()
    ]
    lines.append(
        f"Mimir: push p99 {human_seconds(mimir['push_p99_seconds'])}, "
        f"{human_bytes(mimir['received_bytes_per_second'], per_second=True)}, "
        f"{human_number(mimir['received_samples_per_second'], 'samples/s')} kept, "
        f"{human_number(mimir['deduplicated_samples_per_second'], 'samples/s')} deduplicated"
    )
    lines += [
        f"{name}: {human_number(figures['pods'], 'pods')}, {human_number(figures['cpu_cores'], 'CPU cores')}, "
        f"{human_bytes(figures['memory_bytes'])}"
        for name, figures in document["resources"].items()
    ]
    lines.append(f"total: {human_number(total['cpu_cores'], 'CPU cores')}, {human_bytes(total['memory_bytes'])}")
    if document.get("missing"):
        lines.append(f"no data (allowed): {', '.join(document['missing'])}")
    return lines
