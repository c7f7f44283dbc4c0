#!/usr/bin/python
"""Ansible module: GET a pod's HTTP endpoint through the Kubernetes API server's pod proxy."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: k8s_pod_proxy
short_description: GET a pod's own HTTP endpoint through the Kubernetes API server's pod proxy
description:
  - Sends C(GET /api/v1/namespaces/<namespace>/pods/[https:]<pod>:<port>/proxy/<path>) to the API server,
    which relays it to the container and passes its status and body back.
  - Reaches health and metrics endpoints (Alloy's C(/-/ready), C(/api/v0/web/peers), the OpenTelemetry
    Collector's health check, any C(/metrics)) from the controller with only the kubeconfig, whatever its
    authentication, and without a port-forward or a route to pod IPs.
  - Takes the connection options of kubernetes.core that the toolkit's own client honours (below), with the
    same C(K8S_AUTH_*) environment fallbacks; a kubeconfig's credential plugins and proxies work too.
  - Fails when the answer's status is not in I(status_code), naming the pod, port and path and what was
    answered (the API server's own message when it could not reach the pod). Every call has a timeout.
  - With I(pods), asks every pod in one task (one answer each in RV(responses)) and fails naming each pod
    that did not answer as expected; an C(until) loop then retries the whole set at once.
  - Read-only, so it runs in check mode too and never reports a change.
  - Needs the C(get) verb on C(pods/proxy) in the namespace.
extends_documentation_fragment:
  - kube_auth
options:
  namespace:
    description: Namespace of the pod.
    type: str
    required: true
  pod:
    description: Name of the pod. Exactly one of I(pod) and I(pods) is required.
    type: str
  pods:
    description: Names of several pods, asked in turn with the same request.
    type: list
    elements: str
  port:
    description: Container port to reach (a number; the pod proxy does not resolve port names).
    type: int
    required: true
  path:
    description: Path on the container, e.g. C(/-/ready); percent-encoded by the module.
    type: str
    default: /
  query:
    description: Query parameters appended to the path.
    type: dict
  scheme:
    description: Scheme the API server uses towards the container.
    type: str
    choices: [http, https]
    default: http
  status_code:
    description: Statuses that count as success; any other fails the task.
    type: list
    elements: int
    default: [200]
  metric_names:
    description:
      - Names of metrics to pick out of a Prometheus text exposition in the body (e.g. a C(/metrics) answer),
        returned in RV(samples).
    type: list
    elements: str
    default: []
  timeout:
    description: Seconds the whole request may take.
    type: float
    default: 10
author:
  - alloy-migration maintainers
"""

EXAMPLES = r"""
- name: Ask one Alloy replica whether it is ready (a 503 is an answer, not a failure, here)
  k8s_pod_proxy:
    kubeconfig: "{{ migration_kubeconfig }}"
    namespace: monitoring
    pod: alloy-0
    port: 12345
    path: /-/ready
    status_code: [200, 503]
  register: ready

- name: Read the cluster peers as this replica sees them
  k8s_pod_proxy:
    kubeconfig: "{{ migration_kubeconfig }}"
    namespace: monitoring
    pod: alloy-0
    port: 12345
    path: /api/v0/web/peers
  register: peers   # peers.json is the decoded list

- name: Ask every replica at once, retrying the whole set until all are ready
  k8s_pod_proxy:
    kubeconfig: "{{ migration_kubeconfig }}"
    namespace: monitoring
    pods: [alloy-0, alloy-1, alloy-2]
    port: 12345
    path: /-/ready
  register: ready_all
  until: ready_all is succeeded
  retries: 30
  delay: 2

- name: Read whether the configuration loaded
  k8s_pod_proxy:
    kubeconfig: "{{ migration_kubeconfig }}"
    namespace: monitoring
    pod: alloy-0
    port: 12345
    path: /metrics
    metric_names: [alloy_config_last_load_successful]
  register: self_metrics   # self_metrics.samples.alloy_config_last_load_successful[0].value == 1.0
"""

RETURN = r"""
status:
  description: HTTP status of the answer (the container's, or the API server's own when it could not reach it).
  returned: when the API server answered
  type: int
  sample: 200
body:
  description: The answer's body as text.
  returned: when the API server answered
  type: str
  sample: Alloy is ready.
json:
  description: The body decoded as JSON, or null when it is not JSON.
  returned: when the API server answered
  type: raw
  sample: [{"name": "alloy-0", "addr": "10.244.1.5:12345", "isSelf": true, "state": "participant"}]
content_type:
  description: The answer's Content-Type.
  returned: when the API server answered
  type: str
  sample: text/plain; charset=utf-8
samples:
  description: For each of I(metric_names), its samples in the body, each with C(labels) and C(value) (float).
  returned: when the API server answered
  type: dict
  sample: {"alloy_config_last_load_successful": [{"labels": {}, "value": 1.0}]}
api_path:
  description: The API server path that was requested.
  returned: with I(pod)
  type: str
  sample: /api/v1/namespaces/monitoring/pods/alloy-0:12345/proxy/-/ready
responses:
  description:
    - With I(pods), one entry per pod in the order given - C(pod), C(api_path), C(status), C(body), C(json),
      C(content_type), C(samples) as above, C(ok) (the status is in I(status_code)) and C(error) (why there
      was no answer, or null).
  returned: with I(pods)
  type: list
  elements: dict
"""

from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.k8s_pod_proxy import (
    PodProxyError,
    ProxyTarget,
    api_client,
    failure_message,
    parse_samples,
    proxy_get,
)
from ansible.module_utils.kube_api import AUTH_ARGUMENT_SPEC, KubeApi

PROXY_ARGS: dict[str, Any] = {
    "namespace": {"type": "str", "required": True},
    "pod": {"type": "str"},
    "pods": {"type": "list", "elements": "str"},
    "port": {"type": "int", "required": True},
    "path": {"type": "str", "default": "/"},
    "query": {"type": "dict"},
    "scheme": {"type": "str", "choices": ["http", "https"], "default": "http"},
    "status_code": {"type": "list", "elements": "int", "default": [200]},
    "metric_names": {"type": "list", "elements": "str", "default": []},
    "timeout": {"type": "float", "default": 10},
}


def ask(module: AnsibleModule, client: KubeApi, pod: str) -> dict[str, Any]:
    """One pod's answer as a result dict; `ok` says whether its status is an expected one."""
    params = module.params
    target = ProxyTarget(params["namespace"], pod, params["port"], params["path"], params["scheme"])
    outcome: dict[str, Any] = {"pod": pod, "api_path": target.api_path(params["query"])}
    try:
        target.validate()
        response = proxy_get(client, target, params["query"])
    except (ValueError, PodProxyError) as error:
        return outcome | {
            "ok": False,
            "error": f"{target.describe()}: {error}" if isinstance(error, PodProxyError) else str(error),
            "status": None,
            "body": "",
            "json": None,
            "samples": {},
        }
    outcome |= {
        "status": response.status,
        "body": response.body,
        "json": response.json(),
        "content_type": response.content_type,
        "samples": parse_samples(response.body, params["metric_names"]),
        "ok": response.status in params["status_code"],
        "error": None,
    }
    if not outcome["ok"]:
        outcome["error"] = failure_message(target, response, params["status_code"])
    return outcome


def main() -> None:
    module = AnsibleModule(
        argument_spec={**AUTH_ARGUMENT_SPEC, **PROXY_ARGS},
        supports_check_mode=True,
        required_one_of=[("pod", "pods")],
        mutually_exclusive=[("pod", "pods")],
    )
    params = module.params
    if params["timeout"] <= 0:
        module.fail_json(msg=f"timeout must be more than 0, got {params['timeout']}")
    try:
        client = api_client({key: params[key] for key in AUTH_ARGUMENT_SPEC}, params["timeout"])
    except PodProxyError as error:
        module.fail_json(msg=str(error))
    if params["pods"] is not None:
        responses = [ask(module, client, pod) for pod in params["pods"]]
        failed = [answer["error"] for answer in responses if not answer["ok"]]
        if failed:
            module.fail_json(msg="; ".join(failed), changed=False, responses=responses)
        module.exit_json(changed=False, responses=responses)
    answer = ask(module, client, params["pod"])
    outcome = {key: value for key, value in answer.items() if key not in ("pod", "ok", "error")}
    if answer["status"] is None:
        module.fail_json(msg=answer["error"], api_path=answer["api_path"])
    if not answer["ok"]:
        module.fail_json(msg=answer["error"], changed=False, **outcome)
    module.exit_json(changed=False, **outcome)


if __name__ == "__main__":
    main()
