"""talos_node_cordon against the lab's Kubernetes API (the session lab): cordon under a mark, release once proven.

Each test uses its own node and leaves it schedulable and unmarked, as it found it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import talos_node_cordon
from talos_module_support import ModuleRun, run_module

from tests.conftest import failures, run_playbook

MARK_KEY = "alloy-migration.io/cordoned-by"
SERVED = "http://127.0.0.1:9100/metrics"  # node-exporter answers on every lab node
NOT_SERVED = "http://127.0.0.1:1/metrics"


class Api:
    def __init__(self, lab) -> None:
        self.lab = lab

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.lab.token}", **kwargs.pop("headers", {})}
        response = requests.request(
            method, self.lab.api + path, headers=headers, verify=self.lab.ca, timeout=10, **kwargs
        )
        response.raise_for_status()
        return response

    def node(self, name: str) -> dict:
        return self.request("GET", f"/api/v1/nodes/{name}").json()

    def merge(self, name: str, patch: dict) -> None:
        self.request(
            "PATCH", f"/api/v1/nodes/{name}", json=patch, headers={"Content-Type": "application/merge-patch+json"}
        )

    def create(self, path: str, body: dict) -> None:
        self.request("POST", path, json=body)

    def delete(self, path: str) -> None:
        self.request("DELETE", path)

    def pods_on(self, name: str) -> list[dict]:
        return self.request("GET", f"/api/v1/pods?fieldSelector=spec.nodeName={name}").json()["items"]

    def probe_jobs(self) -> list[dict]:
        selector = "app.kubernetes.io/name=containerd-metrics-probe"
        return self.request("GET", f"/apis/batch/v1/namespaces/monitoring/jobs?labelSelector={selector}").json()[
            "items"
        ]


@pytest.fixture
def api(lab) -> Api:
    return Api(lab)


@pytest.fixture
def node(api: Api, request: pytest.FixtureRequest) -> Iterator[str]:
    name = request.param
    yield name
    api.merge(name, {"metadata": {"annotations": {MARK_KEY: None}}, "spec": {"unschedulable": None}})


def cordon(lab, name: str, state: str, **extra: object) -> ModuleRun:
    args = {"name": name, "state": state, "kubeconfig": str(lab.kubeconfig), "probe_namespace": "monitoring"}
    return run_module(talos_node_cordon.main, {**args, **extra})


def unschedulable(api: Api, name: str) -> bool:
    return bool(api.node(name)["spec"].get("unschedulable"))


def marked(api: Api, name: str) -> bool:
    return api.node(name)["metadata"].get("annotations", {}).get(MARK_KEY) == "talos_containerd_metrics"


@pytest.mark.parametrize("node", ["talos-worker-6"], indirect=True)
def test_cordon_marks_the_node_once_and_release_proves_it_then_gives_it_back(lab, api: Api, node: str):
    first = cordon(lab, node, "cordoned")
    again = cordon(lab, node, "cordoned")

    assert first.status == "ok" and first.result["changed"] is True, first.result
    assert again.result["changed"] is False
    assert unschedulable(api, node) and marked(api, node)

    released = cordon(lab, node, "released", probe_url=SERVED)

    assert released.status == "ok", released.result
    assert released.result["changed"] is True and released.result["ready"] is True
    assert released.result["probe"]["verdict"] == "Complete"
    assert not unschedulable(api, node) and not marked(api, node)
    assert [job["metadata"]["name"] for job in api.probe_jobs()] == []


@pytest.mark.parametrize("node", ["talos-worker-9"], indirect=True)
def test_a_node_someone_else_cordoned_is_neither_taken_over_nor_uncordoned(lab, api: Api, node: str):
    api.merge(node, {"spec": {"unschedulable": True}})

    refused = cordon(lab, node, "cordoned")
    released = cordon(lab, node, "released")

    assert refused.status == "failed"
    assert refused.result["msg"].startswith(f"node {node} is cordoned by someone else")
    assert not marked(api, node)
    assert released.status == "ok" and released.result["changed"] is False
    assert unschedulable(api, node)


@pytest.mark.parametrize("node", ["talos-worker-10"], indirect=True)
def test_a_failed_probe_keeps_the_node_cordoned_and_says_what_failed(lab, api: Api, node: str):
    assert cordon(lab, node, "cordoned").status == "ok"

    run = cordon(lab, node, "released", probe_url=NOT_SERVED, probe_timeout=60)

    assert run.status == "failed"
    assert (
        f"the probe Job on node {node} could not fetch {NOT_SERVED} (Failed: BackoffLimitExceeded)" in run.result["msg"]
    )
    assert run.result["probe"]["verdict"] == "Failed"
    assert unschedulable(api, node) and marked(api, node)
    assert api.probe_jobs() == []


@pytest.mark.parametrize("node", ["talos-worker-10"], indirect=True)
def test_release_waits_for_the_boot_it_is_told_and_fails_with_what_it_saw(lab, node: str):
    run = cordon(lab, node, "released", boot_id="not-this-boot", ready_timeout=1)

    assert run.status == "failed"
    assert run.result["msg"].startswith(f"node {node} did not report Ready on boot not-this-boot in time")
    assert "last seen: Ready=True" in run.result["msg"]


@pytest.mark.parametrize("node", ["talos-worker-11"], indirect=True)
def test_check_mode_reports_without_writing(lab, api: Api, node: str):
    run = cordon(lab, node, "cordoned", _ansible_check_mode=True)

    assert run.status == "ok" and run.result["changed"] is True
    assert not unschedulable(api, node) and not marked(api, node)


@pytest.mark.parametrize("node", ["talos-worker-11"], indirect=True)
def test_through_ansible_playbook(lab, api: Api, node: str, tmp_path: Path):
    """Ansible packages the module with its imports: cordon then release, as the role runs them."""
    args = {"name": node, "kubeconfig": str(lab.kubeconfig), "probe_namespace": "monitoring"}
    tasks = [
        {"name": "cordon", "talos_node_cordon": {**args, "state": "cordoned"}},
        {"name": "release", "talos_node_cordon": {**args, "state": "released", "probe_url": SERVED}},
    ]

    results = run_playbook(tasks, {**os.environ, "TMPDIR": str(tmp_path)})

    assert results["__rc__"] == 0, failures(results)
    assert results["cordon"]["changed"] is True and results["cordon"]["unschedulable"] is True
    assert results["release"]["probe"]["verdict"] == "Complete" and results["release"]["unschedulable"] is False
    assert not unschedulable(api, node)


DRAIN_NS = "drain-test"


def pinned_deployment(name: str, node: str) -> dict:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": DRAIN_NS},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "nodeSelector": {"kubernetes.io/hostname": node},
                    "containers": [{"name": "app", "image": "busybox:1.37.0"}],
                },
            },
        },
    }


@pytest.fixture
def guarded(api: Api) -> Iterator[str]:
    """A one-replica Deployment pinned to talos-worker-5, Ready, and the name of its pod."""
    node = "talos-worker-5"
    api.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": DRAIN_NS}})
    api.create(f"/apis/apps/v1/namespaces/{DRAIN_NS}/deployments", pinned_deployment("guarded", node))
    deadline = time.monotonic() + 30
    while not (pods := [p for p in api.pods_on(node) if p["metadata"]["namespace"] == DRAIN_NS and ready(p)]):
        assert time.monotonic() < deadline, "the pinned pod did not turn Ready"
        time.sleep(0.2)
    yield pods[0]["metadata"]["name"]
    api.delete(f"/api/v1/namespaces/{DRAIN_NS}")


def ready(pod: dict) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def budget(minimum: int) -> dict:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "guarded", "namespace": DRAIN_NS},
        "spec": {"minAvailable": minimum, "selector": {"matchLabels": {"app": "guarded"}}},
    }


def owners(pod: dict) -> set[str]:
    return {ref["kind"] for ref in pod["metadata"].get("ownerReferences") or []}


@pytest.mark.parametrize("node", ["talos-worker-5"], indirect=True)
def test_drain_evicts_every_pod_but_daemonset_ones_and_sees_them_gone(lab, api: Api, node: str, guarded: str):
    before = api.pods_on(node)
    daemonset_pods = sorted(
        f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in before if "DaemonSet" in owners(p)
    )
    evictable = sorted(
        f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in before if "DaemonSet" not in owners(p)
    )

    run = cordon(lab, node, "drained", delete_emptydir_data=True, drain_retry_interval=0.5)

    assert run.status == "ok", run.result
    assert run.result["changed"] is True and run.result["unschedulable"] is True and run.result["marked"] is True
    assert f"{DRAIN_NS}/{guarded}" in run.result["evicted"] and run.result["evicted"] == evictable
    assert run.result["kept"] == daemonset_pods
    left = {f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in api.pods_on(node)}
    assert left.isdisjoint(evictable), "an evicted pod is still on the node"
    assert unschedulable(api, node) and marked(api, node)


@pytest.mark.parametrize("node", ["talos-worker-5"], indirect=True)
def test_a_budget_that_refuses_stops_the_drain_with_the_node_cordoned(lab, api: Api, node: str, guarded: str):
    api.create(f"/apis/policy/v1/namespaces/{DRAIN_NS}/poddisruptionbudgets", budget(1))

    checked = cordon(lab, node, "drained", delete_emptydir_data=True, _ansible_check_mode=True)
    refused = cordon(lab, node, "drained", delete_emptydir_data=True, drain_timeout=2, drain_retry_interval=0.5)

    assert checked.status == "ok" and f"{DRAIN_NS}/{guarded}" in checked.result["evicted"]
    assert refused.status == "failed"
    assert f"evictions still refused after 2 s (PodDisruptionBudgets): {DRAIN_NS}/{guarded}" in refused.result["msg"]
    assert "The disruption budget guarded needs 1 healthy pods" in refused.result["msg"]
    assert guarded in {p["metadata"]["name"] for p in api.pods_on(node)}
    assert unschedulable(api, node) and marked(api, node)

    api.delete(f"/apis/policy/v1/namespaces/{DRAIN_NS}/poddisruptionbudgets/guarded")
    resumed = cordon(lab, node, "drained", delete_emptydir_data=True, drain_retry_interval=0.5)

    assert resumed.status == "ok", resumed.result
    assert guarded not in {p["metadata"]["name"] for p in api.pods_on(node)}
