#!/usr/bin/python
"""Ansible module: run a PromQL query against Prometheus or Mimir, optionally asserting on the figure."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: promql
short_description: Query a Prometheus-compatible API (Prometheus, Mimir) and optionally assert on the result
description:
  - Runs an instant (C(/api/v1/query)) or range (C(/api/v1/query_range)) PromQL query and returns the result
    typed (sample values as floats).
  - Works against a plain Prometheus and against Grafana Mimir, whose query API lives under C(/prometheus) and
    needs the tenant header C(X-Scope-OrgID).
  - Retries with exponential backoff on connection failures, HTTP 5xx and 429 (honouring C(Retry-After)),
    never on other 4xx answers or TLS certificate failures. Failures name the URL (without credentials), the
    HTTP status and Prometheus' C(errorType) and C(error).
  - With I(expect), fails unless the result meets a threshold. A vector gives one figure per series, a matrix
    every sample of every series, a scalar one figure.
  - I(expect.reduce) C(max), C(min) and C(sum) fold all figures into one (C(max) and C(min) skip NaN, as
    PromQL's aggregations do, unless every figure is NaN; C(sum) propagates it); C(count) is the number of
    series; C(each) (the default) requires every figure to meet the threshold and lists those that do not.
  - The assertion fails closed. An empty result fails with C(no data), whatever the reduction; to assert that
    something is absent, compare the expression count(<selector>) or vector(0) with C(== 0). A NaN figure meets no
    threshold, not even C(!=). A string result cannot be compared.
  - Read-only, so it runs in check mode too and never reports a change.
options:
  url:
    description:
      - Base URL of the query API, including any prefix, without C(/api/v1).
      - Mimir C(https://mimir.example/prometheus); Prometheus C(http://prometheus.example:9090).
      - Credentials embedded as C(user:password@) are used and masked in the output, but prefer
        I(username) and I(password).
    type: str
    required: true
  query:
    description: The PromQL expression.
    type: str
    required: true
  type:
    description: C(instant) evaluates at one time (I(time)); C(range) from I(start) to I(end) every I(step).
    type: str
    choices: [instant, range]
    default: instant
  time:
    description:
      - Evaluation time of an instant query; the server's current time when omitted.
      - RFC 3339, Unix seconds, C(now) or C(now-<duration>) such as C(now-10m) (computed by the module).
    type: str
  start:
    description: Start of a range query, in the same forms as I(time). Required with C(type=range).
    type: str
  end:
    description: End of a range query, in the same forms as I(time).
    type: str
    default: now
  step:
    description: Resolution of a range query, a Prometheus duration (C(30s)) or seconds. Required with C(type=range).
    type: str
  tenant:
    description: Tenant sent as C(X-Scope-OrgID); Mimir answers 401 without it when multitenancy is on.
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
    description: PEM file of the CA that signed the server's certificate; the system store when omitted.
    type: path
  validate_certs:
    description: Verify the server's TLS certificate. Turn off only for a rehearsal.
    type: bool
    default: true
  client_cert:
    description: PEM client certificate (with its key, unless I(client_key) is given) for mutual TLS.
    type: path
  client_key:
    description: PEM private key of I(client_cert).
    type: path
  timeout:
    description: Seconds allowed to connect and, separately, to read the answer, for each attempt.
    type: float
    default: 30
  retries:
    description: Attempts after the first on a transient failure, waiting 1, 2, 4... seconds (at most 30).
    type: int
    default: 3
  expect:
    description: Fail unless the result meets this threshold.
    type: dict
    suboptions:
      op:
        description: Comparison of the figure with I(value).
        type: str
        choices: ["<", "<=", ">", ">=", "==", "!="]
        required: true
      value:
        description: The threshold.
        type: float
        required: true
      reduce:
        description: How figures become what is compared (see the description above).
        type: str
        choices: [max, min, sum, count, each]
        default: each
author:
  - alloy-migration maintainers
"""

EXAMPLES = r"""
- name: Alloy writes at least as many series to Mimir as the baseline
  promql:
    url: https://mimir.example/prometheus
    tenant: production
    bearer_token: "{{ mimir_read_token }}"
    query: count({cluster="prod", job=~"integrations/kubernetes/.*"})
    expect:
      op: ">="
      value: "{{ baseline_series_count }}"
      reduce: sum

- name: Push p99 stayed under one second over the soak period
  promql:
    url: https://mimir.example/prometheus
    tenant: production
    username: reader
    password: "{{ mimir_password }}"
    type: range
    query: >-
      histogram_quantile(0.99, sum by (le) (rate(cortex_request_duration_seconds_bucket{route="api_v1_push"}[5m])))
    start: now-1h
    step: 1m
    expect:
      op: "<"
      value: 1
      reduce: max

- name: Every containerd target is up
  promql:
    url: http://prometheus.example:9090
    query: up{job="containerd"}
    expect:
      op: "=="
      value: 1
  register: containerd_up
"""

RETURN = r"""
result_type:
  description: The result type Prometheus reported.
  returned: success, or when the expectation failed
  type: str
  sample: vector
result:
  description:
    - The typed result. vector - a list of C(metric), C(value) (float) and C(timestamp) (Unix seconds);
      matrix - a list of C(metric) and C(values) (pairs of timestamp and value); scalar and string - a dict
      with C(timestamp) and C(value).
  returned: success, or when the expectation failed
  type: raw
  sample: [{"metric": {"__name__": "up", "job": "containerd"}, "value": 1.0, "timestamp": 1767225600.0}]
value:
  description:
    - The reduced figure when I(expect.reduce) is C(max), C(min), C(sum) or C(count); otherwise the only figure
      when the result has exactly one, else null.
  returned: success, or when the expectation failed
  type: float
  sample: 1.0
series:
  description: Number of series in the result (1 for a scalar or a string).
  returned: success, or when the expectation failed
  type: int
  sample: 3
status:
  description: HTTP status of the answer that made the query fail, when there was one.
  returned: when the query failed
  type: int
  sample: 422
url:
  description: The URL of the query that failed, without credentials.
  returned: when the query failed
  type: str
  sample: https://mimir.example/prometheus/api/v1/query
error_type:
  description: Prometheus' C(errorType) of the failed query, when it sent one.
  returned: when the query failed
  type: str
  sample: bad_data
"""

import time
from typing import Any
from urllib.parse import urlsplit

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.promql import (
    COMPARISONS,
    REDUCTIONS,
    ClientSettings,
    Expectation,
    PromQLClient,
    PromQLError,
    QueryResult,
    check,
    resolve_time,
    sole_figure,
)

ARGUMENT_SPEC: dict[str, Any] = {
    "url": {"type": "str", "required": True},
    "query": {"type": "str", "required": True},
    "type": {"type": "str", "choices": ["instant", "range"], "default": "instant"},
    "time": {"type": "str"},
    "start": {"type": "str"},
    "end": {"type": "str", "default": "now"},
    "step": {"type": "str"},
    "tenant": {"type": "str"},
    "username": {"type": "str"},
    "password": {"type": "str", "no_log": True},
    "bearer_token": {"type": "str", "no_log": True},
    "ca_path": {"type": "path"},
    "validate_certs": {"type": "bool", "default": True},
    "client_cert": {"type": "path"},
    "client_key": {"type": "path"},
    "timeout": {"type": "float", "default": 30},
    "retries": {"type": "int", "default": 3},
    "expect": {
        "type": "dict",
        "options": {
            "op": {"type": "str", "choices": list(COMPARISONS), "required": True},
            "value": {"type": "float", "required": True},
            "reduce": {"type": "str", "choices": list(REDUCTIONS), "default": "each"},
        },
    },
}


def client_settings(params: dict[str, Any]) -> ClientSettings:
    return ClientSettings(
        url=params["url"],
        tenant=params["tenant"],
        username=params["username"],
        password=params["password"],
        bearer_token=params["bearer_token"],
        ca_path=params["ca_path"],
        validate_certs=params["validate_certs"],
        client_cert=params["client_cert"],
        client_key=params["client_key"],
        timeout=params["timeout"],
        retries=params["retries"],
    )


def check_query_options(params: dict[str, Any]) -> None:
    """The time options of the other query type are a mistake, not something to ignore silently."""
    if params["type"] == "instant" and (params["start"] or params["step"]):
        raise ValueError("start and step apply to type=range; an instant query takes time")
    if params["type"] == "range" and params["time"]:
        raise ValueError("time applies to type=instant; a range query takes start, end and step")
    if params["retries"] < 0 or params["timeout"] <= 0:
        raise ValueError("retries must be 0 or more and timeout more than 0")


def run_query(client: PromQLClient, params: dict[str, Any], now: float) -> QueryResult:
    if params["type"] == "range":
        start, end = resolve_time(params["start"], now), resolve_time(params["end"], now)
        return client.query_range(params["query"], start, end, params["step"])
    at = resolve_time(params["time"], now) if params["time"] else None
    return client.query_instant(params["query"], at)


def mask_url_password(module: AnsibleModule) -> None:
    """A password written into the URL is as secret as the password option: mask it in every output."""
    embedded = urlsplit(module.params["url"]).password
    if embedded:
        module.no_log_values.add(embedded)


def main() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        supports_check_mode=True,
        required_if=[("type", "range", ("start", "step"))],
        required_together=[("username", "password")],
        mutually_exclusive=[("bearer_token", "username")],
        required_by={"client_key": "client_cert"},
    )
    mask_url_password(module)
    params = module.params
    try:
        check_query_options(params)
        client = PromQLClient(client_settings(params))
        result = run_query(client, params, time.time())
    except ValueError as error:
        module.fail_json(msg=str(error))
    except PromQLError as error:
        module.fail_json(msg=str(error), url=error.url, status=error.status, error_type=error.error_type)
    for warning in result.warnings:
        module.warn(f"the query API warned: {warning}")
    outcome = {
        "changed": False,
        "result_type": result.result_type,
        "result": result.result,
        "value": sole_figure(result),
        "series": result.series_count,
    }
    if params["expect"]:
        expect = params["expect"]
        verdict = check(params["query"], result, Expectation(expect["op"], expect["value"], expect["reduce"]))
        if expect["reduce"] != "each":
            outcome["value"] = verdict.value
        if not verdict.passed:
            module.fail_json(msg=verdict.message, **outcome)
        outcome["msg"] = verdict.message
    module.exit_json(**outcome)


if __name__ == "__main__":
    main()
