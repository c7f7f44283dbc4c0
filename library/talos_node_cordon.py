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
    a node someone else cordoned (unschedulable without the mark); the rollout must not take it over and, later,
    uncordon it. A node already carrying the mark is left as it is.
  - I(state=drained) cordons the same way, then evicts the node's pods as C(kubectl drain) does, through the Eviction
    API so that PodDisruptionBudgets are honoured; DaemonSet pods and mirror pods stay (the DaemonSet controller
    would recreate them at once; the API cannot delete mirror pods), pods with C(emptyDir) volumes are evicted only
    with I(delete_emptydir_data), pods no controller manages only with I(force). An eviction a budget refuses (429)
    is tried again every I(drain_retry_interval) seconds until I(drain_timeout); the module then watches the node's
    pods until every evicted pod is gone.
  - I(state=released) waits (a watch on the node, no polling) until the node reports C(Ready), and, with I(boot_id),
    until the kubelet reports that boot (C(status.nodeInfo.bootID)), so that a C(Ready) left over from before a
    reboot is never taken for the node being back. With I(probe_url) it then proves the node serves that URL; a
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
    description:
      - C(cordoned) takes the node out of scheduling; C(drained) also evicts its pods; C(released) waits for the node,
        proves it and gives it back.
    type: str
    choices: [cordoned, drained, released]
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
  drain_timeout:
    description: Seconds I(state=drained) may take to evict the pods and see them gone.
    type: int
    default: 600
  drain_retry_interval:
    description: Seconds between two evictions of a pod a PodDisruptionBudget refused (C(kubectl drain) waits 5).
    type: float
    default: 5
  delete_emptydir_data:
    description: With I(state=drained), evict pods that use C(emptyDir) volumes too (their data is lost).
    type: bool
    default: false
  force:
    description: With I(state=drained), evict pods that no controller manages too (nothing recreates them).
    type: bool
    default: false
  request_timeout:
    description:
      - Seconds allowed for each Kubernetes API request. A read that times out, loses its connection or is
        answered 429 or 5xx is asked twice more (1 s, then 2 s later) before the module fails; a watch that
        fails the same way is replaced by a fresh read, as informers relist.
      - Writes are asked again the same way only where that is safe. Evictions and deletions do no harm twice.
        The Node's cordon mark is written with its resourceVersion, so a write whose answer was lost is read
        back before it is sent again. The probe Job is created under a generated name, so a lost creation is
        looked for by the node's probe label before another is created.
    type: int
    default: 30
requirements:
  - the Python C(kubernetes) client, only for a kubeconfig with an C(exec) plugin, an C(auth-provider) or a proxy
notes:
  - The probe Job carries the labels C(app.kubernetes.io/name=containerd-metrics-probe),
    C(app.kubernetes.io/part-of=alloy-migration), C(app.kubernetes.io/managed-by=alloy-migration); a probe left
    over from an interrupted run on the same node is deleted before a new one starts.
author:
  - alloy-migration maintainers
"""

EXAMPLES = r"""
- name: Cordon the node under the toolkit's mark and evict its pods, PodDisruptionBudgets honoured
  talos_node_cordon:
    name: "{{ inventory_hostname }}"
    state: drained
    kubeconfig: "{{ migration_kubeconfig }}"
    delete_emptydir_data: true
    drain_timeout: 600
  delegate_to: localhost
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
  description: Seconds spent waiting for the node and the probe (I(state=released)) or for the evictions (I(state=drained)).
  returned: always
  type: float
evicted:
  description: The pods evicted (C(namespace/name)); in check mode, those that would be.
  returned: when state is drained
  type: list
  elements: str
kept:
  description: The pods left on the node (DaemonSet and mirror pods, C(namespace/name)).
  returned: when state is drained
  type: list
  elements: str
"""

import hashlib
import time
import traceback
from collections.abc import Iterator
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.kube_api import REQUEST_ERRORS, KubeApi, KubeApiError, KubeConfigError, is_transient

MERGE_PATCH = "application/merge-patch+json"
CONFLICT_RETRIES = 5
# A node that reboots under a loaded control plane: one slow or refused read must not stop the rollout.
READ_RETRIES = 2
WATCH_FIRST_WINDOW = 5.0
WATCH_LONGEST_WINDOW = 30.0
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
    """The few Kubernetes API calls this module makes, as plain JSON (module_utils/kube_api: the module runs once
    per node of a rollout, and the `kubernetes` package's import alone would cost a third of a CPU second)."""

    def __init__(self, kubeconfig: str | None, context: str | None, request_timeout: int) -> None:
        self.api = KubeApi(kubeconfig, context, request_timeout, read_retries=READ_RETRIES)
        self.timeout = request_timeout

    def json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        return self.api.request(method, path, **kwargs)

    def node(self, name: str) -> dict[str, Any]:
        return self.json("GET", f"/api/v1/nodes/{name}")

    def patch_node(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.json("PATCH", f"/api/v1/nodes/{name}", body=body, content_type=MERGE_PATCH)

    def events(
        self, collection: str, selector: str, resource_version: str, seconds: int, timeout: float
    ) -> Iterator[dict[str, Any]]:
        """Watch events of the objects of `collection` (its list path) a field selector picks, from a resourceVersion.

        A watch the server drops, leaves silent past `timeout`, or refuses for now (429, 5xx) just ends, after
        the rest of its window: the caller reads again, as informers relist, and that read is retried or fails.
        """
        query = [("fieldSelector", selector), ("resourceVersion", resource_version)]
        started = time.monotonic()
        try:
            yield from self.api.watch(collection, query, seconds, timeout)
            return
        except REQUEST_ERRORS as error:
            if not is_transient(error):
                raise
        time.sleep(max(0.0, started + seconds - time.monotonic()))

    def watch_until(self, read: Any, collection: str, done: Any, deadline: float) -> tuple[Any, dict]:
        """Read one object, then watch it until `done(obj)` returns something.

        (what `done` returned or None at the deadline, the object last seen). Each watch window
        (watch_windows) is followed by a fresh read, as informers relist.
        """
        windows = watch_windows(deadline)
        while True:
            obj = read()
            found = done(obj)
            if found is not None or (seconds := next(windows, None)) is None:
                return found, obj
            selector, version = f"metadata.name={obj['metadata']['name']}", obj["metadata"]["resourceVersion"]
            for event in self.events(collection, selector, version, seconds, seconds + self.timeout):
                if event.get("type") not in ("ADDED", "MODIFIED"):
                    break  # ERROR (expired version) or DELETED: read again
                obj = event["object"]
                found = done(obj)
                if found is not None:
                    return found, obj


def watch_windows(deadline: float) -> Iterator[int]:
    """Seconds of each watch until the deadline: 5, 10, 20, then 30 s. Events end a wait as they come, so a
    window's length only says how often the object is read again in case a watch missed one (informers
    relist the same way): a long wait (a reboot, a busy cluster) makes few requests, and a missed event
    costs at most a window."""
    window = WATCH_FIRST_WINDOW
    while (remaining := deadline - time.monotonic()) > 0:
        yield max(1, int(min(remaining, window)))
        window = min(window * 2, WATCH_LONGEST_WINDOW)


def update_node(cluster: Cluster, name: str, change: Any) -> tuple[dict[str, Any], bool]:
    """Read the node, let `change(node)` return a merge patch (None: nothing to do), write it with the node's
    resourceVersion; retried on a conflict. (node after, whether it was written).

    A write that got no answer or a transient one is retried the same way: the resourceVersion makes the
    write conditional, so if the lost write was applied, the next read shows it done (or the write meets a
    409), and it is never applied twice over someone else's change."""
    lost_write = False
    for attempt in range(CONFLICT_RETRIES):
        node = cluster.node(name)
        patch = change(node)
        if patch is None:
            return node, lost_write  # a lost write that shows as done was most likely ours
        patch.setdefault("metadata", {})["resourceVersion"] = node["metadata"]["resourceVersion"]
        try:
            return cluster.patch_node(name, patch), True
        except REQUEST_ERRORS as exc:
            if isinstance(exc, KubeApiError) and exc.status == 409:
                continue
            if not is_transient(exc) or attempt == CONFLICT_RETRIES - 1:
                raise
            lost_write = True
            time.sleep(2**attempt)
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


def pod_key(pod: dict[str, Any]) -> str:
    return f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"


def pods_on(cluster: Cluster, name: str) -> dict[str, Any]:
    return cluster.json("GET", "/api/v1/pods", query=[("fieldSelector", f"spec.nodeName={name}")])


def sort_pods(pods: list[dict[str, Any]], params: dict[str, Any]) -> tuple[list, list, list[str]]:
    """(pods to evict, pods kept on the node, why some pods stop the drain), as `kubectl drain` sorts them."""
    evict, kept, refused = [], [], []
    for pod in pods:
        meta = pod["metadata"]
        # As kubectl drain (metav1.GetControllerOf): only a reference with `controller: true` manages the pod.
        owners = [ref.get("kind") for ref in meta.get("ownerReferences") or [] if ref.get("controller") is True]
        if "kubernetes.io/config.mirror" in (meta.get("annotations") or {}) or "DaemonSet" in owners:
            kept.append(pod)
        elif (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            evict.append(pod)
        elif not owners and not params["force"]:
            refused.append(f"{pod_key(pod)} (no controller would recreate it: set force to evict it)")
        elif (
            any("emptyDir" in volume for volume in pod["spec"].get("volumes") or [])
            and not params["delete_emptydir_data"]
        ):
            refused.append(f"{pod_key(pod)} (its emptyDir data would be lost: set delete_emptydir_data to evict it)")
        else:
            evict.append(pod)
    return evict, kept, refused


def evict(cluster: Cluster, pod: dict[str, Any]) -> str | None:
    """Ask the Eviction API to evict the pod: None when it is evicted or gone, the refusal while a budget says no."""
    meta = pod["metadata"]
    body = {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
    }
    try:
        # An eviction asked twice (its first answer lost) finds the pod evicted, going or gone: 200 or 404.
        path = f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/eviction"
        cluster.json("POST", path, body=body, idempotent=True)
    except KubeApiError as exc:
        if exc.status == 404:
            return None
        if exc.status == 429:
            return exc.message
        raise
    return None


def drain(cluster: Cluster, name: str, params: dict[str, Any], check_mode: bool) -> dict[str, Any]:
    """Evict the node's pods (budgets honoured, refusals retried) and wait until every evicted pod is gone."""
    started = time.monotonic()
    deadline = started + params["drain_timeout"]
    pods, kept, refused = sort_pods(pods_on(cluster, name)["items"], params)
    result = {"evicted": sorted(map(pod_key, pods)), "kept": sorted(map(pod_key, kept))}
    if refused:
        raise CordonError(f"node {name} cannot be drained: " + "; ".join(refused), **result)
    if check_mode:
        return {**result, "changed": bool(pods)}
    pending = pods
    while True:
        refusals = {pod_key(pod): why for pod in pending if (why := evict(cluster, pod)) is not None}
        pending = [pod for pod in pending if pod_key(pod) in refusals]
        if not pending:
            break
        if time.monotonic() + params["drain_retry_interval"] > deadline:
            reasons = "; ".join(f"{key}: {why}" for key, why in sorted(refusals.items()))
            raise CordonError(
                f"node {name}: evictions still refused after {params['drain_timeout']} s (PodDisruptionBudgets): "
                f"{reasons}. The node stays cordoned; once the budgets allow it, re-run.",
                **result,
            )
        time.sleep(params["drain_retry_interval"])  # the budget answered 429: ask again later, as kubectl drain does
    left = wait_gone(cluster, name, {pod["metadata"]["uid"] for pod in pods}, deadline)
    if left:
        raise CordonError(
            f"node {name}: evicted pods still there after {params['drain_timeout']} s: {', '.join(sorted(left))}",
            **result,
        )
    return {**result, "changed": bool(pods), "waited": round(time.monotonic() - started, 2)}


def wait_gone(cluster: Cluster, name: str, uids: set[str], deadline: float) -> list[str]:
    """List the node's pods, watch them until every one of `uids` is gone (listing again after each watch
    window): the pods still there at the deadline."""
    selector = f"spec.nodeName={name}"
    windows = watch_windows(deadline)
    while True:
        listing = pods_on(cluster, name)
        left = {pod["metadata"]["uid"]: pod_key(pod) for pod in listing["items"] if pod["metadata"]["uid"] in uids}
        if not left or (seconds := next(windows, None)) is None:
            return list(left.values())
        version = listing["metadata"]["resourceVersion"]
        for event in cluster.events("/api/v1/pods", selector, version, seconds, seconds + cluster.timeout):
            if event.get("type") == "DELETED":
                left.pop(event["object"]["metadata"].get("uid"), None)
                if not left:
                    return []
            elif event.get("type") == "ERROR":
                break  # expired version: list again


def wait_ready(cluster: Cluster, name: str, boot_id: str | None, deadline: float) -> dict[str, Any]:
    def back(node: dict[str, Any]) -> bool | None:
        return True if is_ready(node) and (not boot_id or boot_of(node) == boot_id) else None

    found, node = cluster.watch_until(lambda: cluster.node(name), "/api/v1/nodes", back, deadline)
    if found is None:
        seen = f"Ready={is_ready(node)}, kubelet boot {boot_of(node) or 'unknown'}"
        want = f"Ready on boot {boot_id}" if boot_id else "Ready"
        raise CordonError(f"node {name} did not report {want} in time; last seen: {seen}")
    return node


def create_probe_job(cluster: Cluster, jobs: str, body: dict[str, Any], selector: str) -> dict[str, Any]:
    """POST the probe Job. A POST that got no answer (or a transient one) may still have created it, under a
    name only the lost answer knew (generateName): the node's probe leftovers were deleted just before, so a
    live Job with the node's probe label is that one and is taken; with none, the POST is sent again."""
    attempt = 0
    while True:
        try:
            return cluster.json("POST", jobs, body=body)
        except REQUEST_ERRORS as error:
            if not is_transient(error) or attempt == READ_RETRIES:
                raise
        time.sleep(2**attempt)
        attempt += 1
        listed = cluster.json("GET", jobs, query=[("labelSelector", selector)])["items"]
        created = [job for job in listed if not job["metadata"].get("deletionTimestamp")]
        if created:
            return created[0]


def delete_probe_job(cluster: Cluster, job: str) -> None:
    try:
        cluster.json("DELETE", job, query=[("propagationPolicy", "Background")], idempotent=True)
    except KubeApiError as exc:
        if exc.status != 404:  # 404: a repeated DELETE whose first answer was lost, or the Job already gone
            raise


def run_probe(cluster: Cluster, name: str, params: dict[str, Any]) -> dict[str, Any]:
    namespace = params["probe_namespace"]
    jobs = f"/apis/batch/v1/namespaces/{namespace}/jobs"
    started = time.monotonic()
    selector = f"{PROBE_NODE_LABEL}={node_key(name)}"
    cluster.json(
        "DELETE", jobs, query=[("labelSelector", selector), ("propagationPolicy", "Background")], idempotent=True
    )
    body = probe_job(name, params["probe_url"], namespace, params["probe_image"], params["probe_timeout"])
    job = create_probe_job(cluster, jobs, body, selector)
    job_name = job["metadata"]["name"]
    try:
        deadline = started + params["probe_timeout"] + cluster.timeout
        verdict, _ = cluster.watch_until(lambda: cluster.json("GET", f"{jobs}/{job_name}"), jobs, job_verdict, deadline)
    finally:
        delete_probe_job(cluster, f"{jobs}/{job_name}")
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
            "state": {"type": "str", "choices": ["cordoned", "drained", "released"], "required": True},
            "kubeconfig": {"type": "path"},
            "context": {"type": "str"},
            "mark": {"type": "str", "default": "alloy-migration.io/cordoned-by=talos_containerd_metrics"},
            "boot_id": {"type": "str"},
            "ready_timeout": {"type": "int", "default": 900},
            "probe_url": {"type": "str"},
            "probe_namespace": {"type": "str", "default": "default"},
            "probe_image": {"type": "str", "default": "busybox:1.37.0"},
            "probe_timeout": {"type": "int", "default": 180},
            "drain_timeout": {"type": "int", "default": 600},
            "drain_retry_interval": {"type": "float", "default": 5.0},
            "delete_emptydir_data": {"type": "bool", "default": False},
            "force": {"type": "bool", "default": False},
            "request_timeout": {"type": "int", "default": 30},
        },
        supports_check_mode=True,
    )
    params = module.params
    name = params["name"]
    try:
        mark = split_mark(params["mark"])
        cluster = Cluster(params["kubeconfig"], params["context"], params["request_timeout"])
        if params["state"] in ("cordoned", "drained"):
            node, changed = cordon(cluster, name, mark, module.check_mode)
            outcome: dict[str, Any] = {"changed": changed, "node": node, "ready": None, "probe": None, "waited": 0.0}
            if params["state"] == "drained":
                drained = drain(cluster, name, params, module.check_mode)
                outcome.update(drained, changed=changed or drained["changed"])
        else:
            outcome = release(module, cluster, mark)
    except CordonError as exc:
        module.fail_json(msg=str(exc), name=name, **exc.fields)
    except KubeApiError as exc:
        module.fail_json(msg=f"node {name}: Kubernetes API error {exc.status}: {exc.message}")
    except KubeConfigError as exc:
        module.fail_json(msg=f"node {name}: {exc}")
    except Exception as exc:
        # connection errors come in many types (TLS, timeouts, OS errors, a credential plugin's)
        module.fail_json(msg=f"node {name}: cannot reach the Kubernetes API: {exc}", exception=traceback.format_exc())
    node = outcome.pop("node")
    module.exit_json(
        name=name,
        unschedulable=unschedulable(node),
        marked=annotations(node).get(mark[0]) == mark[1],
        boot_id=boot_of(node),
        **{"waited": 0.0, **outcome},
    )


if __name__ == "__main__":
    main()
