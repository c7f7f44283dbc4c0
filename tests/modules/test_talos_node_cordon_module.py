"""talos_node_cordon against the lab's Kubernetes API (the session lab): cordon under a mark, release once proven.

Each test uses its own node and leaves it schedulable and unmarked, as it found it.
"""

from __future__ import annotations

import os
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
