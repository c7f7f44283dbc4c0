#!/usr/bin/python
"""Ansible module: capture the legacy pipeline's figures from Mimir as the migration's baseline."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: migration_baseline_capture
short_description: Capture the figures a migration is judged against, from Mimir's Prometheus-compatible API
description:
  - Reads, for the series of one pipeline (a label selector, for the legacy HA Prometheus the operator's external
    label C(prometheus="<namespace>/<cr>")), per source (scrape job, split by the C(metrics_path) label) the
    number of targets, scrape duration p50 and p99, the scrape interval, active series and metric names; Mimir's
    push p99, received bytes, samples, incoming samples, deduplicated and discarded samples per second and the
    HA cluster label values; and CPU and memory of workloads (pods matched by name) from cAdvisor series.
  - "Definitions: p99 is the slowest target's 99th percentile of C(scrape_duration_seconds) over I(window); p50 the
    median of the targets' medians; the interval the median spacing of stored C(up) samples (from
    C(timestamp(up)) over I(interval_window)); CPU is C(rate(container_cpu_usage_seconds_total)) and memory
    the average C(container_memory_working_set_bytes) over I(window), summed over the workload's containers."
  - Fails closed, without returning a baseline, when the API cannot be queried, when a figure has no data
    (unless listed in I(optional_figures)), when a job of I(jobs) has no series, or when a target has fewer
    than I(min_scrapes) scrapes in the window (the baseline would not be representative).
  - Read-only; runs in check mode and never reports a change. Credentials never appear in the result.
options:
  url:
    description: Base URL of the query API including any prefix, without C(/api/v1) (Mimir C(https://mimir/prometheus)).
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
    description:
      - Query API holding Mimir's own metrics (C(cortex_*)), when they live elsewhere (a meta-monitoring
        cluster or tenant); I(url) when omitted. Same credentials.
    type: str
  mimir_tenant:
    description: Tenant of I(mimir_url); I(tenant) when omitted.
    type: str
  pipeline_selector:
    description: Label matchers selecting the pipeline's series, without braces.
    type: str
    required: true
  jobs:
    description: Jobs to capture; each must have series.
    type: list
    elements: str
    required: true
  window:
    description: Window of the figures (a Prometheus duration).
    type: str
    default: 1h
  interval_window:
    description: Window read to measure scrape intervals.
    type: str
    default: 2m
  interval_step:
    description: Step in seconds of that read; finer than the shortest scrape interval.
    type: float
    default: 2
  min_scrapes:
    description: Fewest scrapes a target must have in I(window).
    type: int
    default: 10
  mimir_selector:
    description: Label matchers narrowing Mimir's own metrics (e.g. C(namespace="mimir")), without braces.
    type: str
    default: ""
  mimir_user:
    description: Tenant whose per-tenant distributor counters are read (C(anonymous) when multitenancy is off).
    type: str
    required: true
  discard_reasons:
    description: Values of C(cortex_discarded_samples_total)'s C(reason) label that count as discarded samples.
    type: list
    elements: str
    default: []
  cluster_label:
    description: The HA cluster label whose values on the pipeline's series are recorded.
    type: str
    default: cluster
  resource_source:
    description: Label matchers of the cAdvisor series that measure workloads (added to I(pipeline_selector)).
    type: str
    default: job="kubelet", metrics_path="/metrics/cadvisor"
  namespace:
    description: Namespace of the workloads.
    type: str
    required: true
  workloads:
    description: Workload name to a regular expression of its pods' names.
    type: dict
    required: true
  optional_figures:
    description:
      - Figures allowed to have no data, as dotted names or shell patterns
        (C(mimir.received_bytes_per_second), C(resources.cadvisor.*)); they are listed in C(baseline.missing).
    type: list
    elements: str
    default: []
  time:
    description: Evaluation time (Unix seconds or RFC 3339); now when omitted.
    type: str
author:
  - alloy-migration maintainers
"""

EXAMPLES = r"""
- name: Capture the legacy pipeline's figures over the last hour
  migration_baseline_capture:
    url: https://mimir.example/prometheus
    tenant: production
    username: "{{ mimir_username }}"
    password: "{{ mimir_password }}"
    pipeline_selector: prometheus="monitoring/kube-prometheus-stack-prometheus"
    jobs: [kubelet, cadvisor, kube-state-metrics, node-exporter]
    mimir_user: production
    namespace: monitoring
    workloads:
      prometheus: prometheus-kube-prometheus-stack-prometheus-[0-9]+
      cadvisor: cadvisor-.*
  register: baseline
"""

RETURN = r"""
baseline:
  description:
    - The figures. C(sources) per source key (C(job) or C(job:metrics_path)) with C(targets), C(targets_up),
      C(scrapes_min), C(scrape_duration_p50_seconds), C(scrape_duration_p99_seconds), C(scrape_interval_seconds),
      C(scrape_interval_min_seconds), C(active_series), C(metric_names); C(mimir) with C(push_p99_seconds),
      C(received_bytes_per_second), C(received_samples_per_second), C(incoming_samples_per_second),
      C(deduplicated_samples_per_second), C(discarded_samples_per_second), C(ha_clusters); C(resources) per
      workload C(pods), C(cpu_cores), C(memory_bytes) and C(resources_total); C(missing) optional figures without
      data; C(queries) every query by figure name; C(captured_at) (UTC, ISO 8601), C(evaluated_at) (Unix seconds), C(window), C(pipeline_selector),
      C(query_url) (without credentials), C(tenant).
  returned: success
  type: dict
summary:
  description: Headline figures for a state record.
  returned: success
  type: dict
headline:
  description: The baseline in a few lines for an operator.
  returned: success
  type: list
  elements: str
problems:
  description: Why the figures cannot stand as a baseline.
  returned: failure
  type: list
  elements: str
"""

import time
from datetime import UTC, datetime
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.migration_figures import (
    BaselineSpec,
    Measurer,
    MimirQuery,
    ResourceQuery,
    ScrapeQuery,
    baseline_headline,
    baseline_summary,
    capture_baseline,
    duration_seconds,
)
from ansible.module_utils.promql import (
    CONNECTION_ARGUMENT_SPEC,
    CONNECTION_CONSTRAINTS,
    PromQLClient,
    PromQLError,
    redact_url,
    settings_from_params,
    unix_seconds,
)

ARGUMENT_SPEC: dict[str, Any] = {
    **CONNECTION_ARGUMENT_SPEC,
    "mimir_url": {"type": "str"},
    "mimir_tenant": {"type": "str"},
    "pipeline_selector": {"type": "str", "required": True},
    "jobs": {"type": "list", "elements": "str", "required": True},
    "window": {"type": "str", "default": "1h"},
    "interval_window": {"type": "str", "default": "2m"},
    "interval_step": {"type": "float", "default": 2},
    "min_scrapes": {"type": "int", "default": 10},
    "mimir_selector": {"type": "str", "default": ""},
    "mimir_user": {"type": "str", "required": True},
    "discard_reasons": {"type": "list", "elements": "str", "default": []},
    "cluster_label": {"type": "str", "default": "cluster"},
    "resource_source": {"type": "str", "default": 'job="kubelet", metrics_path="/metrics/cadvisor"'},
    "namespace": {"type": "str", "required": True},
    "workloads": {"type": "dict", "required": True},
    "optional_figures": {"type": "list", "elements": "str", "default": []},
    "time": {"type": "str"},
}


def spec_from_params(params: dict[str, Any]) -> BaselineSpec:
    for name in ("window", "interval_window"):
        duration_seconds(params[name])
    if not params["jobs"]:
        raise ValueError("jobs must name at least one job")
    return BaselineSpec(
        scrape=ScrapeQuery(
            params["pipeline_selector"],
            tuple(params["jobs"]),
            params["window"],
            params["interval_window"],
            params["interval_step"],
        ),
        mimir=MimirQuery(
            params["mimir_selector"], params["mimir_user"], params["window"], tuple(params["discard_reasons"])
        ),
        resources=ResourceQuery(
            params["pipeline_selector"], params["resource_source"], params["namespace"], params["window"]
        ),
        workloads={str(name): str(regex) for name, regex in params["workloads"].items()},
        cluster_label=params["cluster_label"],
        min_scrapes=params["min_scrapes"],
        optional=tuple(params["optional_figures"]),
    )


def evaluation_time(params: dict[str, Any]) -> float:
    now = time.time()
    return unix_seconds(params["time"], now) if params["time"] else now


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True, **CONNECTION_CONSTRAINTS)
    params = module.params
    try:
        spec = spec_from_params(params)
        at = evaluation_time(params)
        data = Measurer(PromQLClient(settings_from_params(params)), at)
        meta = Measurer(PromQLClient(settings_from_params(params, params["mimir_url"], params["mimir_tenant"])), at)
        document, problems = capture_baseline(data, spec, meta)
    except (ValueError, PromQLError) as error:
        module.fail_json(msg=f"no baseline captured: {error}")
    if problems:
        module.fail_json(
            msg=f"no baseline captured (fails closed): {'; '.join(problems)}",
            problems=problems,
        )
    document |= {
        "captured_at": datetime.fromtimestamp(at, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "evaluated_at": at,
        "window": params["window"],
        "pipeline_selector": params["pipeline_selector"],
        "jobs": params["jobs"],
        "query_url": redact_url(params["url"]),
        "mimir_query_url": redact_url(params["mimir_url"] or params["url"]),
        "tenant": params["tenant"] or "",
    }
    module.exit_json(
        changed=False, baseline=document, summary=baseline_summary(document), headline=baseline_headline(document)
    )


if __name__ == "__main__":
    main()
