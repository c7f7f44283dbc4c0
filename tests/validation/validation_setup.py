"""How the tests judge a scenario: the settings the validation role would pass, for the scenario's series."""

from __future__ import annotations

import dataclasses
from typing import Any

from ansible.module_utils.migration_figures import BaselineSpec, Measurer, MimirQuery, ResourceQuery, ScrapeQuery
from ansible.module_utils.migration_gates import (
    Context,
    ContinuitySeries,
    GateSettings,
    LabelRule,
    Verdict,
    evaluate,
)
from ansible.module_utils.promql import ClientSettings, PromQLClient

from tests.validation.validation_data import BASELINE_AGO, NODES, Scenario

LEGACY_JOBS = ("kubelet", "cadvisor", "kube-state-metrics", "node-exporter")
NEW_JOBS = ("kubelet", "containerd", "kube-state-metrics", "node-exporter")


def client(url: str, retries: int = 0) -> PromQLClient:
    return PromQLClient(ClientSettings(url=url, timeout=10, retries=retries))


def baseline_spec(scenario: Scenario, window: str = "10m") -> BaselineSpec:
    return BaselineSpec(
        scrape=ScrapeQuery(scenario.legacy_selector, LEGACY_JOBS, window, "2m", 2.0),
        mimir=MimirQuery(scenario.mimir_selector, "lab", window),
        resources=ResourceQuery(
            scenario.legacy_selector, 'job="kubelet", metrics_path="/metrics/cadvisor"', "monitoring", window
        ),
        workloads={"prometheus": "prometheus-kps-prometheus-[0-9]+", "cadvisor": "cadvisor-.+"},
        min_scrapes=10,
        optional=("mimir.received_bytes_per_second",),
    )


def gate_settings(scenario: Scenario, **changes: Any) -> GateSettings:
    scoped = f'scenario="{scenario.name}"'
    settings = GateSettings(
        new_selector=scenario.new_selector,
        legacy_selector=scenario.legacy_selector,
        jobs=NEW_JOBS,
        window="10m",
        nodes=NODES,
        node_sources=("kubelet:/metrics/cadvisor", "containerd"),
        singleton_sources={"kube-state-metrics": 1},
        coverage={
            "cadvisor": "kubelet:/metrics/cadvisor",
            "kubelet:/metrics/cadvisor": "kubelet:/metrics/cadvisor",
            "kube-state-metrics": "kube-state-metrics",
            "node-exporter": "node-exporter",
        },
        label_rules=(
            LabelRule(
                "cadvisor",
                "container_cpu_usage_seconds_total",
                'job="kubelet", metrics_path="/metrics/cadvisor", container!=""',
                ("namespace", "pod", "container", "node"),
            ),
            LabelRule(
                "containerd", "container_cpu_usage_usec_microseconds", 'job="containerd"', ("container_id", "node")
            ),
            LabelRule(
                "ksm", "kube_pod_container_info", 'job="kube-state-metrics"', ("namespace", "pod", "container_id")
            ),
        ),
        legacy_replicas_running=3,
        continuity=(
            ContinuitySeries(
                "container cpu",
                f'container_cpu_usage_seconds_total{{{scoped}, job=~"kubelet|cadvisor", container!=""}}',
                ("namespace", "pod", "container"),
            ),
            ContinuitySeries(
                "pods", f'kube_pod_container_info{{{scoped}, job="kube-state-metrics"}}', ("namespace", "pod")
            ),
        ),
        continuity_start=scenario.cutover - 300,
        plot_start=scenario.t0 - BASELINE_AGO - 600,
        mimir=MimirQuery(scenario.mimir_selector, "lab", "10m"),
        workloads={"alloy": "alloy-[0-9]+", "otel-collector": "otel-collector-.+"},
    )
    return dataclasses.replace(settings, **changes)


def context(url: str, scenario: Scenario, baseline: dict[str, Any], **changes: Any) -> Context:
    """What the migration_gates module builds: one measurer for the series, one for Mimir's own metrics."""
    settings = gate_settings(scenario, **changes)
    return Context(Measurer(client(url), scenario.t0), Measurer(client(url), scenario.t0), settings, baseline)


def judge(url: str, scenario: Scenario, baseline: dict[str, Any], **changes: Any) -> dict[str, Verdict]:
    return {verdict.gate: verdict for verdict in evaluate(context(url, scenario, baseline, **changes))}
