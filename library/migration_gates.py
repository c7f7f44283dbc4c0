#!/usr/bin/python
"""Ansible module: evaluate the migration's validation gates against Mimir and the baseline."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: migration_gates
short_description: Judge the new metrics pipeline against thresholds and the baseline, gate by gate
description:
  - "Evaluates every gate and returns one verdict per gate,
    C([PASS|FAIL|SKIP] <gate>: <figures> (threshold ...) query: <promql>)."
  - "Gates: C(scrape_duration) (p99 per source under a limit, enough scrapes per target), C(scrape_interval)
    (measured interval as configured), C(targets_up) (every expected target: each node's per-node sources and the
    singletons, up == 1), C(no_duplicate_targets) (one series per target and address, no two writers),
    C(push_latency) (Mimir push p99 under a limit and not worse than the baseline), C(discarded_samples) (no rise
    over the baseline), C(metric_coverage) (every baseline metric name from the mapped new source, minus
    exclusions), C(container_id_join) (containerd series join kube_pod_container_info), C(dashboard_labels)
    (series carry the labels dashboards select on), C(ha_dedup) (no deduplicated samples once the legacy replicas
    stopped; SKIP while they run), C(cluster_label_collision) (no cluster value shared with the legacy HA series),
    C(continuity) (no gap in key series over the cutover window)."
  - A gate that cannot be evaluated (the API unreachable, no data) fails closed.
  - The module itself succeeds whenever it could run, so that a report can be written; C(passed) says whether
    every gate passed or was skipped.
  - Read-only; runs in check mode and never reports a change. Credentials never appear in the result.
options:
  url:
    description: Base URL of the query API including any prefix (Mimir C(https://mimir/prometheus)).
    type: str
    required: true
  tenant:
    description: Tenant sent as C(X-Scope-OrgID).
    type: str
  username:
    description: User for basic auth.
    type: str
  password:
    description: Password for basic auth.
    type: str
  bearer_token:
    description: Token sent as C(Authorization Bearer); exclusive with basic auth.
    type: str
  ca_path:
    description: PEM file of the CA that signed the server's certificate.
    type: path
  validate_certs:
    description: Verify the server's TLS certificate.
    type: bool
    default: true
  client_cert:
    description: PEM client certificate for mutual TLS.
    type: path
  client_key:
    description: PEM private key of I(client_cert).
    type: path
  timeout:
    description: Seconds allowed to connect and to read each answer.
    type: float
    default: 30
  retries:
    description: Attempts after the first on a transient failure.
    type: int
    default: 3
  mimir_url:
    description: Query API holding Mimir's own metrics when they live elsewhere; I(url) when omitted.
    type: str
  mimir_tenant:
    description: Tenant of I(mimir_url); I(tenant) when omitted.
    type: str
  mimir_selector:
    description: Label matchers narrowing Mimir's own metrics, without braces.
    type: str
    default: ""
  mimir_user:
    description: Tenant whose per-tenant distributor counters are read.
    type: str
    required: true
  discard_reasons:
    description: Reasons of C(cortex_discarded_samples_total) that count; empty for every reason.
    type: list
    elements: str
    default: []
  baseline:
    description: The baseline document (baseline.json of the migration_baseline role).
    type: dict
    required: true
  sources:
    description:
      - Names for the new pipeline's source keys (C(job) or C(job:metrics_path)), e.g. C(cadvisor) for
        C(kubelet:/metrics/cadvisor). Wherever an option below takes a source, a name of this map or a key works.
    type: dict
    default: {}
  new_selector:
    description: Label matchers selecting the new pipeline's series, without braces.
    type: str
    default: prometheus=""
  legacy_selector:
    description: Label matchers selecting the legacy pipeline's series.
    type: str
    required: true
  jobs:
    description: Jobs of the new pipeline.
    type: list
    elements: str
    required: true
  window:
    description: Window of the scrape and Mimir figures.
    type: str
    default: 10m
  interval_window:
    description: Window read to measure scrape intervals.
    type: str
    default: 2m
  interval_step:
    description: Step in seconds of that read; finer than the shortest scrape interval.
    type: float
    default: 2
  scrape:
    description: Scrape thresholds.
    type: dict
    default: {}
    suboptions:
      p99_max_seconds:
        description: Largest allowed p99 of a target's scrape duration.
        type: float
        default: 2
      interval_seconds:
        description: The configured scrape interval.
        type: float
        default: 15
      interval_tolerance:
        description: Allowed relative deviation of the measured interval.
        type: float
        default: 0.1
      min_scrapes:
        description: Fewest scrapes a target must have in I(window).
        type: int
        default: 8
      duplicate_interval_ratio:
        description: A series whose samples come closer than this share of the interval has two writers.
        type: float
        default: 0.6
  targets:
    description: The targets that must exist and be up.
    type: dict
    required: true
    suboptions:
      nodes:
        description: Every node's name (the C(node) label of per-node targets).
        type: list
        elements: str
        required: true
      per_node:
        description: Source keys (C(job) or C(job:metrics_path)) expected once on every node.
        type: list
        elements: str
        default: []
      singletons:
        description: Source key to the number of targets expected cluster-wide.
        type: dict
        default: {}
  push:
    description: Mimir push latency thresholds.
    type: dict
    default: {}
    suboptions:
      p99_max_seconds:
        description: Largest allowed push p99.
        type: float
        default: 1
      tolerance_ratio:
        description: How much worse than the baseline, relatively, the p99 may be.
        type: float
        default: 0.25
      tolerance_seconds:
        description: And absolutely, on top (histogram buckets make small p99s jumpy).
        type: float
        default: 0.05
  discarded_tolerance_per_second:
    description: Discarded samples per second allowed above the baseline's.
    type: float
    default: 0
  coverage:
    description: Baseline source key to the new source key that must provide its metric names.
    type: dict
    required: true
  exclusions:
    description: Baseline metric names the new pipeline may lack.
    type: list
    elements: dict
    default: []
    suboptions:
      metric:
        description: Regular expression of metric names (fully matched).
        type: str
        required: true
      reason:
        description: Why they are not carried over (shown in the report).
        type: str
        required: true
      sources:
        description: Baseline source keys it applies to; all when empty.
        type: list
        elements: str
        default: []
  join:
    description: The container_id join dashboards rely on.
    type: dict
    default: {}
    suboptions:
      left_metric:
        description: Metric with the runtime's container id.
        type: str
        default: container_cpu_usage_usec_microseconds
      left_source:
        description: Source of I(left_metric).
        type: str
        default: containerd
      right_metric:
        description: kube-state-metrics' container info.
        type: str
        default: kube_pod_container_info
      right_source:
        description: Source of I(right_metric).
        type: str
        default: kube-state-metrics
      right_selector:
        description: Further matchers on I(right_metric).
        type: str
        default: container_id!=""
      label:
        description: The label joined on.
        type: str
        default: container_id
      min_series:
        description: Fewest joined series.
        type: int
        default: 1
  label_rules:
    description: Series that must carry labels dashboards select on.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Name of the rule in the verdict.
        type: str
        required: true
      metric:
        description: Metric name.
        type: str
        required: true
      source:
        description: Source of the series (its job and metrics_path matchers); any when empty.
        type: str
        default: ""
      selector:
        description: Further matchers, without braces.
        type: str
        default: ""
      labels:
        description: Labels that must have a value.
        type: list
        elements: str
        required: true
  cluster_label:
    description: The cluster label (Mimir's HA cluster label); added to every label rule when set.
    type: str
    default: cluster
  legacy_replicas_running:
    description: Legacy Prometheus replicas still running; the HA gate is skipped while there are any.
    type: int
    required: true
  dedup_window:
    description: Window of the deduplicated samples rate once the legacy replicas stopped.
    type: str
    default: 2m
  continuity:
    description: The no-gap check over the cutover window.
    type: dict
    default: {}
    suboptions:
      series:
        description: Key series, counted per step by C(by) whatever pipeline writes them.
        type: list
        elements: dict
        default: []
        suboptions:
          name:
            description: Name in the verdict.
            type: str
            required: true
          selector:
            description: Series selector.
            type: str
            required: true
          by:
            description: Labels identifying one member of the series (e.g. namespace, pod, container).
            type: list
            elements: str
            required: true
      start:
        description: Start of the cutover window (Unix seconds, RFC 3339, C(now-<duration>)).
        type: str
        default: now-30m
      step:
        description: Step in seconds; a step without samples is a gap.
        type: float
        default: 30
      min_ratio:
        description: Share of the series' maximum a step must hold.
        type: float
        default: 0.9
  resources:
    description: The new pipeline's workloads, measured for the report.
    type: dict
    default: {}
    suboptions:
      source:
        description: Source of the cAdvisor series measuring them.
        type: str
        default: kubelet:/metrics/cadvisor
      namespace:
        description: Their namespace.
        type: str
        default: monitoring
      workloads:
        description: Workload name to a regular expression of pod names.
        type: dict
        default: {}
  plot_start:
    description: Start of the plotted migration window; the baseline's start when omitted.
    type: str
  plot_rate_window:
    description: Rate window of the plotted series.
    type: str
    default: 1m
  gates:
    description: Evaluate only these gates (all when empty).
    type: list
    elements: str
    default: []
  time:
    description: Evaluation time (Unix seconds, RFC 3339, C(now-<duration>)); now when omitted.
    type: str
author:
  - alloy-migration maintainers
"""

EXAMPLES = r"""
- name: Judge the new pipeline
  migration_gates:
    url: https://mimir.example/prometheus
    tenant: production
    mimir_user: production
    baseline: "{{ lookup('file', 'artifacts/production/baseline/baseline.json') | from_json }}"
    legacy_selector: prometheus="monitoring/kube-prometheus-stack-prometheus"
    jobs: [kubelet, kube-state-metrics, node-exporter, containerd]
    targets:
      nodes: "{{ groups['talos_nodes'] }}"
      per_node: ["kubelet:/metrics/cadvisor", containerd]
      singletons: {kube-state-metrics: 1}
    coverage: {cadvisor: "kubelet:/metrics/cadvisor", kube-state-metrics: kube-state-metrics}
    legacy_replicas_running: 3
  register: gates
"""

RETURN = r"""
passed:
  description: Every gate passed or was skipped.
  returned: success
  type: bool
verdicts:
  description: One per gate, with C(gate), C(status), C(figures), C(threshold), C(query), C(details), C(line).
  returned: success
  type: list
  elements: dict
lines:
  description: The verdict lines.
  returned: success
  type: list
  elements: str
current:
  description: The new pipeline's figures in the baseline's shape (C(sources), C(mimir), C(resources), C(resources_total)).
  returned: success
  type: dict
timeseries:
  description: Push p99 and samples per second by pipeline over the migration window, with their queries.
  returned: success
  type: dict
evaluated_at:
  description: Evaluation time, Unix seconds.
  returned: success
  type: float
"""

import time
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.migration_figures import (
    Measurer,
    MimirQuery,
    duration_seconds,
    matchers,
    selector,
    source_matchers,
)
from ansible.module_utils.migration_gates import (
    GATE_NAMES,
    Context,
    ContinuitySeries,
    Exclusion,
    GateSettings,
    LabelRule,
    evaluate,
    measure_current,
    timeseries,
)
from ansible.module_utils.promql import (
    CONNECTION_ARGUMENT_SPEC,
    CONNECTION_CONSTRAINTS,
    PromQLClient,
    redact_url,
    settings_from_params,
    unix_seconds,
)


def _suboptions(**options: dict[str, Any]) -> dict[str, Any]:
    return {"type": "dict", "default": {}, "options": options}


ARGUMENT_SPEC: dict[str, Any] = {
    **CONNECTION_ARGUMENT_SPEC,
    "mimir_url": {"type": "str"},
    "mimir_tenant": {"type": "str"},
    "mimir_selector": {"type": "str", "default": ""},
    "mimir_user": {"type": "str", "required": True},
    "discard_reasons": {"type": "list", "elements": "str", "default": []},
    "baseline": {"type": "dict", "required": True},
    "sources": {"type": "dict", "default": {}},
    "new_selector": {"type": "str", "default": 'prometheus=""'},
    "legacy_selector": {"type": "str", "required": True},
    "jobs": {"type": "list", "elements": "str", "required": True},
    "window": {"type": "str", "default": "10m"},
    "interval_window": {"type": "str", "default": "2m"},
    "interval_step": {"type": "float", "default": 2},
    "scrape": _suboptions(
        p99_max_seconds={"type": "float", "default": 2},
        interval_seconds={"type": "float", "default": 15},
        interval_tolerance={"type": "float", "default": 0.1},
        min_scrapes={"type": "int", "default": 8},
        duplicate_interval_ratio={"type": "float", "default": 0.6},
    ),
    "targets": {
        "type": "dict",
        "required": True,
        "options": {
            "nodes": {"type": "list", "elements": "str", "required": True},
            "per_node": {"type": "list", "elements": "str", "default": []},
            "singletons": {"type": "dict", "default": {}},
        },
    },
    "push": _suboptions(
        p99_max_seconds={"type": "float", "default": 1},
        tolerance_ratio={"type": "float", "default": 0.25},
        tolerance_seconds={"type": "float", "default": 0.05},
    ),
    "discarded_tolerance_per_second": {"type": "float", "default": 0},
    "coverage": {"type": "dict", "required": True},
    "exclusions": {
        "type": "list",
        "elements": "dict",
        "default": [],
        "options": {
            "metric": {"type": "str", "required": True},
            "reason": {"type": "str", "required": True},
            "sources": {"type": "list", "elements": "str", "default": []},
        },
    },
    "join": _suboptions(
        left_metric={"type": "str", "default": "container_cpu_usage_usec_microseconds"},
        left_source={"type": "str", "default": "containerd"},
        right_metric={"type": "str", "default": "kube_pod_container_info"},
        right_source={"type": "str", "default": "kube-state-metrics"},
        right_selector={"type": "str", "default": 'container_id!=""'},
        label={"type": "str", "default": "container_id"},
        min_series={"type": "int", "default": 1},
    ),
    "label_rules": {
        "type": "list",
        "elements": "dict",
        "default": [],
        "options": {
            "name": {"type": "str", "required": True},
            "metric": {"type": "str", "required": True},
            "source": {"type": "str", "default": ""},
            "selector": {"type": "str", "default": ""},
            "labels": {"type": "list", "elements": "str", "required": True},
        },
    },
    "cluster_label": {"type": "str", "default": "cluster"},
    "legacy_replicas_running": {"type": "int", "required": True},
    "dedup_window": {"type": "str", "default": "2m"},
    "continuity": _suboptions(
        series={
            "type": "list",
            "elements": "dict",
            "default": [],
            "options": {
                "name": {"type": "str", "required": True},
                "selector": {"type": "str", "required": True},
                "by": {"type": "list", "elements": "str", "required": True},
            },
        },
        start={"type": "str", "default": "now-30m"},
        step={"type": "float", "default": 30},
        min_ratio={"type": "float", "default": 0.9},
    ),
    "resources": _suboptions(
        source={"type": "str", "default": "kubelet:/metrics/cadvisor"},
        namespace={"type": "str", "default": "monitoring"},
        workloads={"type": "dict", "default": {}},
    ),
    "plot_start": {"type": "str"},
    "plot_rate_window": {"type": "str", "default": "1m"},
    "gates": {"type": "list", "elements": "str", "default": []},
    "time": {"type": "str"},
}


def _time(text: str | None, now: float) -> float | None:
    return unix_seconds(text, now) if text else None


def source_resolver(names: dict[str, Any]) -> Any:
    """A source name of the `sources` option to its key; anything else is taken as a key."""

    def resolve(source: str) -> str:
        return str(names.get(source, source))

    return resolve


def gate_settings(params: dict[str, Any], at: float) -> GateSettings:
    for name in ("window", "interval_window", "dedup_window", "plot_rate_window"):
        duration_seconds(params[name])
    unknown = sorted(set(params["gates"]) - set(GATE_NAMES))
    if unknown:
        raise ValueError(f"unknown gates {', '.join(unknown)}; gates are {', '.join(GATE_NAMES)}")
    scrape, push, join = params["scrape"], params["push"], params["join"]
    key = source_resolver(params["sources"])
    targets, continuity, resources = params["targets"], params["continuity"], params["resources"]
    baseline_start = params["baseline"].get("evaluated_at")
    plot_start = _time(params["plot_start"], at)
    if plot_start is None and baseline_start is not None:
        plot_start = float(baseline_start) - duration_seconds(params["baseline"].get("window", "1h"))
    return GateSettings(
        new_selector=params["new_selector"],
        legacy_selector=params["legacy_selector"],
        jobs=tuple(params["jobs"]),
        window=params["window"],
        interval_window=params["interval_window"],
        interval_step=params["interval_step"],
        min_scrapes=scrape["min_scrapes"],
        scrape_p99_max_seconds=scrape["p99_max_seconds"],
        scrape_interval_seconds=scrape["interval_seconds"],
        scrape_interval_tolerance=scrape["interval_tolerance"],
        duplicate_interval_ratio=scrape["duplicate_interval_ratio"],
        nodes=tuple(targets["nodes"]),
        node_sources=tuple(key(source) for source in targets["per_node"]),
        singleton_sources={key(str(source)): int(count) for source, count in targets["singletons"].items()},
        push_p99_max_seconds=push["p99_max_seconds"],
        push_p99_tolerance_ratio=push["tolerance_ratio"],
        push_p99_tolerance_seconds=push["tolerance_seconds"],
        discarded_tolerance_per_second=params["discarded_tolerance_per_second"],
        coverage={str(legacy): key(str(new)) for legacy, new in params["coverage"].items()},
        exclusions=tuple(
            Exclusion(item["metric"], item["reason"], tuple(item["sources"])) for item in params["exclusions"]
        ),
        join_left=selector(join["left_metric"], source_matchers(key(join["left_source"]))),
        join_right=selector(join["right_metric"], source_matchers(key(join["right_source"])), join["right_selector"]),
        join_label=join["label"],
        join_min_series=join["min_series"],
        label_rules=tuple(
            LabelRule(
                item["name"],
                item["metric"],
                matchers(source_matchers(key(item["source"])) if item["source"] else "", item["selector"]),
                tuple(item["labels"]),
            )
            for item in params["label_rules"]
        ),
        cluster_label=params["cluster_label"],
        legacy_replicas_running=params["legacy_replicas_running"],
        dedup_window=params["dedup_window"],
        continuity=tuple(
            ContinuitySeries(item["name"], item["selector"], tuple(item["by"])) for item in continuity["series"]
        ),
        continuity_start=_time(continuity["start"], at),
        continuity_step=continuity["step"],
        continuity_min_ratio=continuity["min_ratio"],
        mimir=MimirQuery(
            params["mimir_selector"], params["mimir_user"], params["window"], tuple(params["discard_reasons"])
        ),
        resource_source=source_matchers(key(resources["source"])),
        namespace=resources["namespace"],
        workloads={str(name): str(regex) for name, regex in resources["workloads"].items()},
        plot_start=plot_start,
        plot_rate_window=params["plot_rate_window"],
    )


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True, **CONNECTION_CONSTRAINTS)
    params = module.params
    now = time.time()
    try:
        at = _time(params["time"], now) or now
        settings = gate_settings(params, at)
        client = PromQLClient(settings_from_params(params))
        meta_client = PromQLClient(settings_from_params(params, params["mimir_url"], params["mimir_tenant"]))
    except ValueError as error:
        module.fail_json(msg=f"the gates cannot run: {error}")
    context = Context(Measurer(client, at), Measurer(meta_client, at), settings, params["baseline"])
    verdicts = evaluate(context, tuple(params["gates"]))
    module.exit_json(
        changed=False,
        passed=all(verdict.status != "FAIL" for verdict in verdicts),
        verdicts=[verdict.as_dict() for verdict in verdicts],
        lines=[verdict.line for verdict in verdicts],
        current=measure_current(context),
        timeseries=timeseries(context),
        evaluated_at=at,
        query_url=redact_url(params["url"]),
    )


if __name__ == "__main__":
    main()
