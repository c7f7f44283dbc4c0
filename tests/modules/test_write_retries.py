"""Writes of the rolling phase that got no answer, or a "come back later" one, are asked again only where that
is safe: the cordon mark is read back before it is written again (the write carries the node's
resourceVersion), a probe Job created under a generated name is looked for by its label before another is
created, evictions are simply asked again. A write the API rejects is never repeated."""

from __future__ import annotations

import time

import pytest
from ansible.module_utils.kube_api import KubeApiError
from talos_node_cordon import Cluster, cordon, create_probe_job, delete_probe_job, evict, uncordon

from tests.modules.scripted_api import scripted_api

MARK = ("alloy-migration.io/cordoned-by", "containerd-metrics")
JOBS = "/apis/batch/v1/namespaces/monitoring/jobs"
SELECTOR = "alloy-migration.io/probe-node=worker-1"


@pytest.fixture
def pauses(monkeypatch) -> list[float]:
    seen: list[float] = []
    monkeypatch.setattr(time, "sleep", seen.append)
    return seen


def node(version: str, cordoned: bool) -> dict:
    metadata = {"name": "worker-1", "resourceVersion": version, "annotations": {MARK[0]: MARK[1]} if cordoned else {}}
    return {"kind": "Node", "metadata": metadata, "spec": {"unschedulable": True} if cordoned else {}}


def job(name: str, deleting: bool = False) -> dict:
    metadata = {
        "name": name,
        "namespace": "monitoring",
        **({"deletionTimestamp": "2026-11-22T03:00:00Z"} if deleting else {}),
    }
    return {"kind": "Job", "metadata": metadata}


def test_a_cordon_whose_answer_was_lost_is_read_back_not_written_twice(tmp_path, pauses):
    script = [("json", node("1", False)), "hang", ("json", node("2", True))]
    with scripted_api(tmp_path, script) as (api, kubeconfig):
        after, changed = cordon(Cluster(kubeconfig, None, 1), "worker-1", MARK, False)
    assert api.methods == ["GET", "PATCH", "GET"]
    assert changed and after["metadata"]["resourceVersion"] == "2"


def test_an_uncordon_refused_for_now_is_sent_again_after_a_fresh_read(tmp_path, pauses):
    script = [("json", node("1", True)), ("status", 503), ("json", node("2", True)), ("json", node("3", False))]
    with scripted_api(tmp_path, script) as (api, kubeconfig):
        after, changed = uncordon(Cluster(kubeconfig, None, 5), "worker-1", MARK, False)
    assert api.methods == ["GET", "PATCH", "GET", "PATCH"]
    assert changed and after["metadata"]["resourceVersion"] == "3"
    assert pauses == [1]


def test_a_node_write_the_api_rejects_is_not_repeated(tmp_path, pauses):
    script = [("json", node("1", False)), ("status", 422)]
    with scripted_api(tmp_path, script) as (api, kubeconfig), pytest.raises(KubeApiError) as raised:
        cordon(Cluster(kubeconfig, None, 5), "worker-1", MARK, False)
    assert raised.value.status == 422 and api.methods == ["GET", "PATCH"]


def test_a_probe_job_whose_creation_answer_was_lost_is_found_by_its_label(tmp_path, pauses):
    script = ["hang", ("json", {"items": [job("containerd-probe-x7k2p")]})]
    with scripted_api(tmp_path, script) as (api, kubeconfig):
        created = create_probe_job(Cluster(kubeconfig, None, 1), JOBS, {"kind": "Job"}, SELECTOR)
    assert created["metadata"]["name"] == "containerd-probe-x7k2p"
    assert api.methods == ["POST", "GET"]
    assert api.requests[1] == f"{JOBS}?labelSelector=alloy-migration.io%2Fprobe-node%3Dworker-1"


@pytest.mark.parametrize(
    "listed", [[], [job("containerd-probe-old", deleting=True)]], ids=["none created", "only a leftover being deleted"]
)
def test_a_probe_job_creation_refused_for_now_is_sent_again(tmp_path, pauses, listed):
    script = [("status", 503), ("json", {"items": listed}), ("json", job("containerd-probe-a1b2c"))]
    with scripted_api(tmp_path, script) as (api, kubeconfig):
        created = create_probe_job(Cluster(kubeconfig, None, 5), JOBS, {"kind": "Job"}, SELECTOR)
    assert created["metadata"]["name"] == "containerd-probe-a1b2c"
    assert api.methods == ["POST", "GET", "POST"]


def test_a_probe_job_the_api_forbids_is_not_created_again(tmp_path, pauses):
    with scripted_api(tmp_path, [("status", 403)]) as (api, kubeconfig), pytest.raises(KubeApiError):
        create_probe_job(Cluster(kubeconfig, None, 5), JOBS, {"kind": "Job"}, SELECTOR)
    assert api.methods == ["POST"]


@pytest.mark.parametrize("second", [("json", {"kind": "Status"}), ("status", 404)], ids=["evicted", "already gone"])
def test_an_eviction_whose_answer_was_lost_is_asked_again(tmp_path, pauses, second):
    pod = {"metadata": {"name": "web-0", "namespace": "apps"}}
    with scripted_api(tmp_path, ["hang", second]) as (api, kubeconfig):
        assert evict(Cluster(kubeconfig, None, 1), pod) is None
    assert api.methods == ["POST", "POST"]


def test_a_probe_job_delete_whose_answer_was_lost_ends_on_the_404_of_the_next(tmp_path, pauses):
    with scripted_api(tmp_path, [("status", 503), ("status", 404)]) as (api, kubeconfig):
        delete_probe_job(Cluster(kubeconfig, None, 5), f"{JOBS}/containerd-probe-x7k2p")
    assert api.methods == ["DELETE", "DELETE"]


def test_a_probe_job_delete_the_api_forbids_still_fails(tmp_path, pauses):
    with scripted_api(tmp_path, [("status", 403)]) as (api, kubeconfig), pytest.raises(KubeApiError):
        delete_probe_job(Cluster(kubeconfig, None, 5), f"{JOBS}/containerd-probe-x7k2p")
    assert api.methods == ["DELETE"]
