"""Deterministic metrics of a migration, as Mimir would hold them, for the gates to judge.

One *scenario* is a whole cluster's story over the last 40 minutes: the legacy HA Prometheus pipeline
writing all along (series with `prometheus="monitoring/kps-prometheus"`), the new pipeline (Alloy's kubelet
cAdvisor, kube-state-metrics, node-exporter; the OTel Collector's containerd job) from the cutover 15
minutes ago, and Mimir's own metrics. Every series of a scenario carries `scenario="<name>"`, so one
Prometheus holds every scenario and a test selects one with its selectors. A *breakage* changes exactly
what one gate looks at: a missing target, a slow scrape, a gap, duplicate series, ...
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from lab.metrics.remote_write import Sample, TimeSeries, WriteRequest

INTERVAL = 15
NODES = ("n1", "n2", "n3")
LEGACY_CR = "monitoring/kps-prometheus"
NEW_CLUSTER = "lab-talos"
HISTORY = 40 * 60
CUTOVER_AGO = 15 * 60
BASELINE_AGO = 16 * 60  # the baseline is captured from legacy data only, before the cutover
PUSH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0)
BREAKAGES = (
    "missing_target",
    "slow_scrape",
    "gap",
    "duplicate",
    "slow_push",
    "discards",
    "coverage",
    "no_join",
    "labels",
    "collision",
    "decommissioned",
)


@dataclass(frozen=True)
class Pod:
    namespace: str
    name: str
    container: str
    node: str


def pods(nodes: tuple[str, ...]) -> list[Pod]:
    """Applications, the legacy stack and the new collectors, spread over the nodes."""
    found = []
    for index, node in enumerate(nodes):
        found += [
            Pod("shop", f"frontend-{index}", "app", node),
            Pod("payments", f"api-{index}", "api", node),
            Pod("monitoring", f"prometheus-kps-prometheus-{index}", "prometheus", node),
            Pod("monitoring", f"cadvisor-{node}", "cadvisor", node),
            Pod("monitoring", f"alloy-{index}", "alloy", node),
            Pod("monitoring", f"otel-collector-{node}", "otel-collector", node),
        ]
    return found


def stable_id(pod: Pod) -> str:
    """A container id that does not depend on Python's hash seed."""
    text = f"{pod.namespace}/{pod.name}/{pod.container}"
    value = 0
    for char in text:
        value = (value * 131 + ord(char)) % (1 << 64)
    return f"{value:016x}"


@dataclass
class Series:
    labels: dict[str, str]
    points: dict[int, float] = field(default_factory=dict)


@dataclass
class Scenario:
    """The series of one scenario; `t0` is the evaluation time (Unix seconds, on the scrape grid)."""

    name: str
    t0: int
    breakage: str = ""
    nodes: tuple[str, ...] = NODES
    series: dict[tuple[tuple[str, str], ...], Series] = field(default_factory=dict)

    @property
    def cutover(self) -> int:
        return self.t0 - CUTOVER_AGO

    @property
    def legacy_selector(self) -> str:
        return f'prometheus="{LEGACY_CR}", scenario="{self.name}"'

    @property
    def new_selector(self) -> str:
        return f'prometheus="", scenario="{self.name}"'

    @property
    def mimir_selector(self) -> str:
        return f'job="mimir", scenario="{self.name}"'

    def add(self, labels: dict[str, str], t: int, value: float) -> None:
        full = {**labels, "scenario": self.name}
        key = tuple(sorted(full.items()))
        self.series.setdefault(key, Series(full)).points[t] = value

    def timeseries(self) -> Iterator[TimeSeries]:
        for item in self.series.values():
            samples = [Sample(value, t * 1000) for t, value in sorted(item.points.items())]
            yield TimeSeries(tuple(sorted(item.labels.items())), samples)


def _grid(start: int, end: int, offset: int = 0) -> range:
    return range(start + offset, end + 1, INTERVAL)


def _scrape(
    scenario: Scenario,
    target: dict[str, str],
    metrics: list[tuple[str, dict[str, str], Callable[[int], float]]],
    start: int,
    end: int,
    duration: float,
    offset: int = 0,
    skip: Callable[[str, int], bool] = lambda _name, _t: False,
) -> None:
    """One target scraped every INTERVAL from start to end: its synthetic series and its metrics."""
    for t in _grid(start, end, offset):
        scenario.add({**target, "__name__": "up"}, t, 1)
        scenario.add({**target, "__name__": "scrape_duration_seconds"}, t, duration)
        scenario.add({**target, "__name__": "scrape_samples_post_metric_relabeling"}, t, len(metrics))
        for name, labels, value in metrics:
            if not skip(name, t):
                scenario.add({**target, **labels, "__name__": name}, t, value(t))


def _counter(rate: float) -> Callable[[int], float]:
    return lambda t: rate * (t % 100000)


def _cadvisor_metrics(
    scenario: Scenario, node: str, new: bool
) -> list[tuple[str, dict[str, str], Callable[[int], float]]]:
    breakage = scenario.breakage
    metrics = []
    for pod in pods(scenario.nodes):
        if pod.node != node:
            continue
        labels = {"namespace": pod.namespace, "pod": pod.name, "container": pod.container}
        metrics.append(("container_cpu_usage_seconds_total", labels, _counter(0.05)))
        if not (new and breakage == "coverage"):
            metrics.append(("container_memory_working_set_bytes", labels, lambda _t: 64 * 2**20))
    return metrics


def _containerd_metrics(scenario: Scenario, node: str) -> list[tuple[str, dict[str, str], Callable[[int], float]]]:
    return [
        (
            "container_cpu_usage_usec_microseconds",
            {"container_id": stable_id(pod), "namespace": "k8s.io"},
            _counter(5e4),
        )
        for pod in pods(scenario.nodes)
        if pod.node == node
    ]


def _ksm_metrics(scenario: Scenario, strip_runtime: bool) -> list[tuple[str, dict[str, str], Callable[[int], float]]]:
    metrics = []
    for pod in pods(scenario.nodes):
        container_id = stable_id(pod) if strip_runtime else f"containerd://{stable_id(pod)}"
        ident = {"namespace": pod.namespace, "pod": pod.name, "container": pod.container}
        metrics.append(("kube_pod_container_info", {**ident, "container_id": container_id}, lambda _t: 1))
    return metrics


def _node_exporter_metrics(node: str) -> list[tuple[str, dict[str, str], Callable[[int], float]]]:
    return [
        ("node_uname_info", {"nodename": node}, lambda _t: 1),
        ("node_load1", {}, lambda t: 0.5 + 0.2 * math.sin(t / 60)),
    ]


def _legacy(scenario: Scenario) -> None:
    start, end = scenario.t0 - HISTORY, scenario.t0
    if scenario.breakage == "decommissioned":
        end = scenario.t0 - 5 * 60
    base = {"prometheus": LEGACY_CR, "cluster": LEGACY_CR}
    gap = _gap(scenario)
    for index, node in enumerate(scenario.nodes):
        address = f"10.0.0.{index + 1}"
        _scrape(
            scenario,
            {**base, "job": "cadvisor", "instance": f"{address}:8080", "node": node},
            _cadvisor_metrics(scenario, node, new=False),
            start,
            end,
            duration=3.0,
            skip=gap,
        )
        _scrape(
            scenario,
            {
                **base,
                "job": "kubelet",
                "metrics_path": "/metrics/cadvisor",
                "instance": f"{address}:10250",
                "node": node,
            },
            _cadvisor_metrics(scenario, node, new=False),
            start,
            end,
            duration=0.2,
            skip=gap,
        )
        _scrape(
            scenario,
            {**base, "job": "node-exporter", "instance": f"{address}:9100", "node": node},
            _node_exporter_metrics(node),
            start,
            end,
            duration=0.02,
        )
    _scrape(
        scenario,
        {**base, "job": "kube-state-metrics", "instance": "10.1.0.8:8080"},
        _ksm_metrics(scenario, strip_runtime=False),
        start,
        end,
        duration=0.1,
    )


def _gap(scenario: Scenario) -> Callable[[str, int], bool]:
    """The `gap` breakage: no container CPU from any pipeline for two minutes during the cutover window."""
    lost_from, lost_to = scenario.t0 - 10 * 60, scenario.t0 - 8 * 60

    def skip(name: str, t: int) -> bool:
        return scenario.breakage == "gap" and name == "container_cpu_usage_seconds_total" and lost_from <= t < lost_to

    return skip


def _new(scenario: Scenario) -> None:
    start, end, breakage = scenario.cutover, scenario.t0, scenario.breakage
    base = {"cluster": LEGACY_CR if breakage == "collision" else NEW_CLUSTER}
    gap = _gap(scenario)
    # `labels`: the kubelet job lost the cluster external label dashboards select on.
    kubelet = {} if breakage == "labels" else base
    for index, node in enumerate(scenario.nodes):
        address = f"10.0.0.{index + 1}"
        _scrape(
            scenario,
            {
                **kubelet,
                "job": "kubelet",
                "metrics_path": "/metrics/cadvisor",
                "instance": f"{address}:10250",
                "node": node,
            },
            _cadvisor_metrics(scenario, node, new=True),
            start,
            end,
            duration=0.1,
            offset=3,
            skip=gap,
        )
        _scrape(
            scenario,
            {**base, "job": "node-exporter", "instance": node, "node": node},
            _node_exporter_metrics(node),
            start,
            end,
            duration=0.02,
            offset=4,
        )
        if breakage == "missing_target" and node == "n2":
            continue
        containerd = {**base, "job": "containerd", "instance": "127.0.0.1:11234", "node": node}
        slow = breakage == "slow_scrape" and node == "n1"
        _scrape(
            scenario,
            containerd,
            _containerd_metrics(scenario, node),
            start,
            end,
            duration=3.0 if slow else 0.03,
            offset=5,
        )
        if breakage == "duplicate" and node == "n3":
            _scrape(scenario, containerd, _containerd_metrics(scenario, node), start, end, duration=0.03, offset=12)
    ksm = {**base, "job": "kube-state-metrics", "instance": "10.1.0.19:8080"}
    _scrape(
        scenario, ksm, _ksm_metrics(scenario, strip_runtime=breakage != "no_join"), start, end, duration=0.05, offset=6
    )
    if breakage == "duplicate":
        legacy_ksm = {**base, "job": "kube-state-metrics", "instance": "10.1.0.8:8080"}
        _scrape(scenario, legacy_ksm, _ksm_metrics(scenario, strip_runtime=True), start, end, duration=0.05, offset=7)


def _mimir(scenario: Scenario) -> None:
    """Mimir's own counters, scraped by meta-monitoring every INTERVAL."""
    start, t0, breakage = scenario.t0 - HISTORY, scenario.t0, scenario.breakage
    legacy_end = t0 - 5 * 60 if breakage == "decommissioned" else t0
    route = {"job": "mimir", "method": "POST", "route": "api_v1_push", "status_code": "200", "ws": "false"}
    requests = observed_slow = 0.0
    kept = incoming = deduped = discarded = 0.0
    for t in _grid(start, t0):
        legacy = t <= legacy_end
        new = t >= scenario.cutover
        per_step = 10.0 * (3 * legacy + new)
        slow = breakage == "slow_push" and new
        requests += per_step
        observed_slow += per_step if slow else 0.0
        for bound in (*PUSH_BUCKETS, math.inf):
            fast_count = requests - observed_slow if bound >= 0.25 else 0.0
            slow_count = observed_slow if bound >= 5.0 else 0.0
            le = "+Inf" if math.isinf(bound) else f"{bound:g}"
            scenario.add(
                {**route, "__name__": "cortex_request_duration_seconds_bucket", "le": le}, t, fast_count + slow_count
            )
        scenario.add({**route, "__name__": "cortex_request_duration_seconds_count"}, t, requests)
        kept += INTERVAL * (100.0 * legacy + 120.0 * new)
        deduped += INTERVAL * 200.0 * legacy
        incoming += INTERVAL * (300.0 * legacy + 120.0 * new)
        user = {"job": "mimir", "user": "lab"}
        scenario.add({**user, "__name__": "cortex_distributor_received_samples_total"}, t, kept)
        scenario.add({**user, "__name__": "cortex_distributor_samples_in_total"}, t, incoming)
        scenario.add({**user, "cluster": LEGACY_CR, "__name__": "cortex_distributor_deduped_samples_total"}, t, deduped)
        if breakage == "discards":
            discarded += INTERVAL * 5.0 * new
            reason = {**user, "reason": "sample-out-of-order", "__name__": "cortex_discarded_samples_total"}
            scenario.add(reason, t, discarded)


def build(name: str, t0: int, breakage: str = "", nodes: tuple[str, ...] = NODES) -> Scenario:
    if breakage and breakage not in BREAKAGES:
        raise ValueError(f"unknown breakage {breakage!r}")
    scenario = Scenario(name, t0, breakage, nodes)
    _legacy(scenario)
    _new(scenario)
    _mimir(scenario)
    return scenario


def write_request(scenario: Scenario) -> WriteRequest:
    return WriteRequest(list(scenario.timeseries()))
