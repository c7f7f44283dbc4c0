#!/usr/bin/python
"""Ansible module: take a Talos node out of scheduling under a mark, and give it back once it is proven healthy."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: talos_node_cordon
short_description: Cordon a Kubernetes node under this toolkit's mark, and release it once it is back and proven
description:
  - Kubernetes side of a rolling Talos change, with one read-check-write per step so that the toolkit only ever
    undoes its own cordon. Every write carries the node's C(resourceVersion); a conflict re-reads and retries.
  - I(state=cordoned) marks the node with the annotation I(mark) and makes it unschedulable in one patch. It refuses
    a node someone else cordoned (unschedulable without the mark): the rollout must not take it over and, later,
    uncordon it. A node already carrying the mark is left as it is.
  - I(state=released) waits (a watch on the node, no polling) until the node reports C(Ready), and, with I(boot_id),
    until the kubelet reports that boot (C(status.nodeInfo.bootID)), so that a C(Ready) left over from before a
    reboot is never taken for the node being back. With I(probe_url) it then proves the node serves that URL: a
    short-lived Job pinned to the node with C(hostNetwork) fetches it once (the endpoint may listen on the node's
    loopback, which nothing else can reach), watched until it completes or fails, then deleted. Last, it uncordons
    the node and drops the mark, only if the node carries the mark.
  - Check mode reads the node and reports what would be done, without waiting, probing or writing.
options:
  name:
    description: The Kubernetes Node's name.
    type: str
    required: true
  state:
    description: C(cordoned) takes the node out of scheduling; C(released) waits for it, proves it and gives it back.
    type: str
    choices: [cordoned, released]
    required: true
  kubeconfig:
    description: Path of the kubeconfig; the client's default (C($KUBECONFIG), then C(~/.kube/config)) when omitted.
    type: path
  context:
    description: The kubeconfig context; its current context when omitted.
    type: str
  mark:
    description: The annotation (C(key=value)) that says the node was cordoned by this toolkit.
    type: str
    default: alloy-migration.io/cordoned-by=talos_containerd_metrics
  boot_id:
    description: With I(state=released), the boot the kubelet must report (C(status.nodeInfo.bootID)) with C(Ready).
    type: str
  ready_timeout:
    description: Seconds I(state=released) waits for the node to report C(Ready) (and I(boot_id)).
    type: int
    default: 900
  probe_url:
    description: With I(state=released), a URL a hostNetwork Job on the node must fetch before the node is given back.
    type: str
  probe_namespace:
    description: Namespace of the probe Job; it must admit hostNetwork pods (Pod Security C(privileged)).
    type: str
    default: default
  probe_image:
    description: Image of the probe Job's container; it runs C(wget).
    type: str
    default: busybox:1.37.0
  probe_timeout:
    description: Seconds the probe Job may take (its C(activeDeadlineSeconds)).
    type: int
    default: 180
  request_timeout:
    description: Seconds allowed for each Kubernetes API request.
    type: int
    default: 30
requirements:
  - kubernetes (the Python client)
notes:
  - The probe Job carries the labels C(app.kubernetes.io/name=containerd-metrics-probe),
    C(app.kubernetes.io/part-of=alloy-migration), C(app.kubernetes.io/managed-by=alloy-migration); a probe left
    over from an interrupted run on the same node is deleted before a new one starts.
author:
  - alloy-migration maintainers
"""

EXAMPLES = r"""
- name: Cordon the node under the toolkit's mark
  talos_node_cordon:
    name: "{{ inventory_hostname }}"
    state: cordoned
    kubeconfig: "{{ migration_kubeconfig }}"
  delegate_to: localhost

- name: Wait for the node on its new boot, prove containerd metrics answer there, then uncordon it
  talos_node_cordon:
    name: "{{ inventory_hostname }}"
    state: released
    kubeconfig: "{{ migration_kubeconfig }}"
    boot_id: "{{ __patch.health.boot_id }}"
    probe_url: http://127.0.0.1:11234/v1/metrics
    probe_namespace: monitoring
  delegate_to: localhost
"""

RETURN = r"""
name:
  description: The node's name.
  returned: always
  type: str
unschedulable:
  description: Whether the node is unschedulable when the module returns (in check mode, as it is now).
  returned: always
  type: bool
marked:
  description: Whether the node carries the mark when the module returns (in check mode, as it is now).
  returned: always
  type: bool
ready:
  description: Whether the node reported C(Ready) (with I(boot_id)); null when not waited for.
  returned: always
  type: bool
boot_id:
  description: The boot the kubelet reports (C(status.nodeInfo.bootID)).
  returned: always
  type: str
probe:
  description: The probe Job's name, verdict (C(Complete) or C(Failed)), reason and seconds; null without a probe.
  returned: always
  type: dict
  sample: {"job": "containerd-probe-x7k2p", "verdict": "Complete", "reason": "", "seconds": 1.2}
waited:
  description: Seconds spent waiting for the node and the probe.
  returned: always
  type: float
"""

import hashlib
import json
import time
import traceback
from collections.abc import Iterator
from typing import Any

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

try:
    from kubernetes import config as k8s_config
    from kubernetes.client.exceptions import ApiException
except ImportError:
    KUBERNETES_IMPORT_ERROR: str | None = traceback.format_exc()
    ApiException = Exception
else:
    KUBERNETES_IMPORT_ERROR = None

MERGE_PATCH = "application/merge-patch+json"
CONFLICT_RETRIES = 5
PROBE_LABELS = {
    "app.kubernetes.io/name": "containerd-metrics-probe",
    "app.kubernetes.io/instance": "alloy-migration",
    "app.kubernetes.io/part-of": "alloy-migration",
    "app.kubernetes.io/managed-by": "alloy-migration",
}
PROBE_NODE_LABEL = "alloy-migration.io/probe-node"


class CordonError(Exception):
    """What stops the step; the message is for the operator, `fields` go with it into the result."""

    def __init__(self, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.fields = fields


def is_ready(node: dict[str, Any]) -> bool:
    conditions = (node.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def boot_of(node: dict[str, Any]) -> str:
    return ((node.get("status") or {}).get("nodeInfo") or {}).get("bootID") or ""


def annotations(node: dict[str, Any]) -> dict[str, str]:
    return (node.get("metadata") or {}).get("annotations") or {}


def unschedulable(node: dict[str, Any]) -> bool:
    return bool((node.get("spec") or {}).get("unschedulable"))


def split_mark(mark: str) -> tuple[str, str]:
    key, separator, value = mark.partition("=")
    if not separator or not key or not value:
        raise CordonError(
            f"mark {mark!r} must be key=value, e.g. alloy-migration.io/cordoned-by=talos_containerd_metrics"
        )
    return key, value


def probe_job(node: str, url: str, namespace: str, image: str, timeout: int) -> dict[str, Any]:
    """A Job that fetches `url` once from the node's own network namespace."""
    labels = {**PROBE_LABELS, PROBE_NODE_LABEL: node_key(node)}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"generateName": "containerd-probe-", "namespace": namespace, "labels": labels},
        "spec": {
            "backoffLimit": 2,
            "activeDeadlineSeconds": timeout,
            "ttlSecondsAfterFinished": 600,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "nodeName": node,
                    "hostNetwork": True,
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "tolerations": [{"operator": "Exists"}],
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 65534,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [
                        {
                            "name": "probe",
                            "image": image,
                            "command": ["wget", "-q", "-O", "/dev/null", "-T", "5", url],
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "readOnlyRootFilesystem": True,
                                "capabilities": {"drop": ["ALL"]},
                            },
                            "resources": {
                                "requests": {"cpu": "10m", "memory": "16Mi"},
                                "limits": {"memory": "32Mi"},
                            },
                        }
                    ],
                },
            },
        },
    }


def node_key(node: str) -> str:
    """A label value for any node name (names may be longer than a label value allows)."""
    return hashlib.sha256(node.encode()).hexdigest()[:16]


def job_verdict(job: dict[str, Any]) -> tuple[str, str] | None:
    """(`Complete` or `Failed`, reason) once the Job finished, else None."""
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("type") in ("Complete", "Failed") and condition.get("status") == "True":
            return condition["type"], condition.get("reason") or ""
    return None


class Cluster:
    """The few Kubernetes API calls this module makes, as plain JSON over the client's authenticated transport.

    The typed API classes are not used: importing them builds hundreds of models (about a CPU second per
    module run); the kubeconfig handling (tokens, client certificates, exec plugins) is the client's.
    """

    def __init__(self, kubeconfig: str | None, context: str | None, request_timeout: int) -> None:
        self.api = k8s_config.new_client_from_config(config_file=kubeconfig, context=context, persist_config=False)
        self.timeout = request_timeout

    def request(
        self,
        method: str,
        path: str,
        query: list[tuple[str, Any]] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float | None = None,
    ) -> Any:
        """The raw response (its body not read yet); ApiException for a status outside 2xx."""
        headers = {"Accept": "application/json", "Content-Type": content_type}
        serialized = self.api.param_serialize(
            method, path, query_params=query or [], header_params=headers, body=body, auth_settings=["BearerToken"]
        )
        response = self.api.call_api(*serialized, _request_timeout=timeout or self.timeout)
        if not 200 <= response.status <= 299:
            response.read()
            self.api.response_deserialize(response, {})
        return response

    def json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = self.request(method, path, **kwargs)
        response.read()
        return json.loads(response.data)

    def node(self, name: str) -> dict[str, Any]:
        return self.json("GET", f"/api/v1/nodes/{name}")

    def patch_node(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.json("PATCH", f"/api/v1/nodes/{name}", body=body, content_type=MERGE_PATCH)

    def events(self, collection: str, obj: dict[str, Any], seconds: int, timeout: float) -> Iterator[dict[str, Any]]:
        """Watch events of one object of `collection` (its list path) from its resourceVersion."""
        query = [
            ("watch", "true"),
            ("fieldSelector", f"metadata.name={obj['metadata']['name']}"),
            ("resourceVersion", obj["metadata"]["resourceVersion"]),
            ("timeoutSeconds", seconds),
        ]
        response = self.request("GET", collection, query=query, timeout=timeout)
        try:
            pending = b""
            for chunk in response.response.stream(amt=None, decode_content=False):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    if line.strip():
                        yield json.loads(line)
        finally:
            response.response.release_conn()

    def watch_until(self, read: Any, collection: str, done: Any, deadline: float) -> tuple[Any, dict]:
        """Read one object, then watch it until `done(obj)` returns something.

        (what `done` returned or None at the deadline, the object last seen). Each watch window is followed
        by a fresh read, as informers relist: the windows grow from 1 s to 30 s, so that a missed or expired
        watch (410 Gone, an ERROR event) costs little while a long wait makes few requests.
        """
        window = 1.0
        while True:
            obj = read()
            found = done(obj)
            if found is not None or (remaining := deadline - time.monotonic()) <= 0:
                return found, obj
            seconds = max(1, int(min(remaining, window)))
            for event in self.events(collection, obj, seconds, seconds + self.timeout):
                if event.get("type") not in ("ADDED", "MODIFIED"):
                    break  # ERROR (expired version) or DELETED: read again
                obj = event["object"]
                found = done(obj)
                if found is not None:
                    return found, obj
            window = min(window * 2, 30.0)


def update_node(cluster: Cluster, name: str, change: Any) -> tuple[dict[str, Any], bool]:
    """Read the node, let `change(node)` return a merge patch (None: nothing to do), write it with the node's
    resourceVersion; retried on a conflict. (node after, whether it was written)."""
    for _ in range(CONFLICT_RETRIES):
        node = cluster.node(name)
        patch = change(node)
        if patch is None:
            return node, False
        patch.setdefault("metadata", {})["resourceVersion"] = node["metadata"]["resourceVersion"]
        try:
            return cluster.patch_node(name, patch), True
        except ApiException as exc:
            if getattr(exc, "status", None) != 409:
                raise
    raise CordonError(f"node {name} kept changing under us: {CONFLICT_RETRIES} conflicting writes in a row")


def cordon(cluster: Cluster, name: str, mark: tuple[str, str], check_mode: bool) -> tuple[dict[str, Any], bool]:
    key, value = mark

    def change(node: dict[str, Any]) -> dict[str, Any] | None:
        ours = annotations(node).get(key) == value
        if unschedulable(node) and not ours:
            raise CordonError(
                f"node {name} is cordoned by someone else (no {key}={value} annotation); the rollout does not take it "
                "over. Finish that work and uncordon it, then re-run."
            )
        if ours and unschedulable(node):
            return None
        return {"metadata": {"annotations": {key: value}}, "spec": {"unschedulable": True}}

    if check_mode:
        node = cluster.node(name)
        return node, change(node) is not None
    return update_node(cluster, name, change)


def uncordon(cluster: Cluster, name: str, mark: tuple[str, str], check_mode: bool) -> tuple[dict[str, Any], bool]:
    key, value = mark

    def change(node: dict[str, Any]) -> dict[str, Any] | None:
        if annotations(node).get(key) != value:
            return None
        return {"metadata": {"annotations": {key: None}}, "spec": {"unschedulable": None}}

    if check_mode:
        node = cluster.node(name)
        return node, change(node) is not None
    return update_node(cluster, name, change)


def wait_ready(cluster: Cluster, name: str, boot_id: str | None, deadline: float) -> dict[str, Any]:
    def back(node: dict[str, Any]) -> bool | None:
        return True if is_ready(node) and (not boot_id or boot_of(node) == boot_id) else None

    found, node = cluster.watch_until(lambda: cluster.node(name), "/api/v1/nodes", back, deadline)
    if found is None:
        seen = f"Ready={is_ready(node)}, kubelet boot {boot_of(node) or 'unknown'}"
        want = f"Ready on boot {boot_id}" if boot_id else "Ready"
        raise CordonError(f"node {name} did not report {want} in time; last seen: {seen}")
    return node


def run_probe(cluster: Cluster, name: str, params: dict[str, Any]) -> dict[str, Any]:
    namespace = params["probe_namespace"]
    jobs = f"/apis/batch/v1/namespaces/{namespace}/jobs"
    started = time.monotonic()
    leftovers = [("labelSelector", f"{PROBE_NODE_LABEL}={node_key(name)}"), ("propagationPolicy", "Background")]
    cluster.json("DELETE", jobs, query=leftovers)
    body = probe_job(name, params["probe_url"], namespace, params["probe_image"], params["probe_timeout"])
    job = cluster.json("POST", jobs, body=body)
    job_name = job["metadata"]["name"]
    try:
        deadline = started + params["probe_timeout"] + cluster.timeout
        verdict, _ = cluster.watch_until(lambda: cluster.json("GET", f"{jobs}/{job_name}"), jobs, job_verdict, deadline)
    finally:
        cluster.json("DELETE", f"{jobs}/{job_name}", query=[("propagationPolicy", "Background")])
    kind, reason = verdict or ("Unfinished", f"no verdict within {params['probe_timeout']} s")
    result = {"job": job_name, "verdict": kind, "reason": reason, "seconds": round(time.monotonic() - started, 2)}
    if kind != "Complete":
        raise CordonError(
            f"the probe Job on node {name} could not fetch {params['probe_url']} ({kind}"
            f"{': ' + reason if reason else ''}); the node is not given back to the scheduler. Check what should "
            "serve it on the node.",
            probe=result,
        )
    return result


def release(module: AnsibleModule, cluster: Cluster, mark: tuple[str, str]) -> dict[str, Any]:
    """Wait for the node, probe it, then uncordon it if it carries the mark."""
    params = module.params
    name = params["name"]
    result: dict[str, Any] = {"probe": None, "ready": None}
    if module.check_mode:
        node, changed = uncordon(cluster, name, mark, check_mode=True)
        return {**result, "changed": changed, "node": node}
    started = time.monotonic()
    node = wait_ready(cluster, name, params["boot_id"], started + params["ready_timeout"])
    result["ready"] = True
    if params["probe_url"]:
        try:
            result["probe"] = run_probe(cluster, name, params)
        except CordonError as exc:
            fields = {**result, **exc.fields, "waited": round(time.monotonic() - started, 2)}
            raise CordonError(str(exc), **fields) from None
    node, changed = uncordon(cluster, name, mark, check_mode=False)
    return {**result, "changed": changed, "node": node, "waited": round(time.monotonic() - started, 2)}


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "state": {"type": "str", "choices": ["cordoned", "released"], "required": True},
            "kubeconfig": {"type": "path"},
            "context": {"type": "str"},
            "mark": {"type": "str", "default": "alloy-migration.io/cordoned-by=talos_containerd_metrics"},
            "boot_id": {"type": "str"},
            "ready_timeout": {"type": "int", "default": 900},
            "probe_url": {"type": "str"},
            "probe_namespace": {"type": "str", "default": "default"},
            "probe_image": {"type": "str", "default": "busybox:1.37.0"},
            "probe_timeout": {"type": "int", "default": 180},
            "request_timeout": {"type": "int", "default": 30},
        },
        supports_check_mode=True,
    )
    if KUBERNETES_IMPORT_ERROR:
        module.fail_json(msg=missing_required_lib("kubernetes"), exception=KUBERNETES_IMPORT_ERROR)
    params = module.params
    name = params["name"]
    try:
        mark = split_mark(params["mark"])
        cluster = Cluster(params["kubeconfig"], params["context"], params["request_timeout"])
        if params["state"] == "cordoned":
            node, changed = cordon(cluster, name, mark, module.check_mode)
            outcome: dict[str, Any] = {"changed": changed, "node": node, "ready": None, "probe": None, "waited": 0.0}
        else:
            outcome = release(module, cluster, mark)
    except CordonError as exc:
        module.fail_json(msg=str(exc), name=name, **exc.fields)
    except ApiException as exc:
        module.fail_json(msg=f"node {name}: Kubernetes API error {getattr(exc, 'status', '')}: {api_message(exc)}")
    except Exception as exc:
        # kubeconfig and connection errors come in many types (urllib3, config, OS errors)
        module.fail_json(msg=f"node {name}: cannot reach the Kubernetes API: {exc}", exception=traceback.format_exc())
    node = outcome.pop("node")
    module.exit_json(
        name=name,
        unschedulable=unschedulable(node),
        marked=annotations(node).get(mark[0]) == mark[1],
        boot_id=boot_of(node),
        **{"waited": 0.0, **outcome},
    )


def api_message(exc: Exception) -> str:
    body = getattr(exc, "body", None)
    try:
        return json.loads(body)["message"]
    except (TypeError, ValueError, KeyError):
        return str(getattr(exc, "reason", "") or exc)


if __name__ == "__main__":
    main()
