"""What the rolling phase's API client does when the API server is slow or briefly refuses: reads are asked
again a bounded number of times, writes never; a watch that goes silent or is refused is replaced by a
fresh read, so a node that came back is still seen."""

from __future__ import annotations

import itertools
import ssl
import time

import pytest
from ansible.module_utils.kube_api import KubeApi, KubeApiError, is_transient
from talos_node_cordon import Cluster, wait_gone, wait_ready, watch_windows

from tests.modules.scripted_api import scripted_api


@pytest.fixture
def pauses(monkeypatch) -> list[float]:
    """The client's back-off pauses, recorded instead of slept."""
    seen: list[float] = []
    monkeypatch.setattr(time, "sleep", seen.append)
    return seen


def node(ready: bool, version: str, boot: str = "new-boot") -> dict:
    return {
        "kind": "Node",
        "metadata": {"name": "worker-1", "resourceVersion": version},
        "status": {"conditions": [{"type": "Ready", "status": str(ready)}], "nodeInfo": {"bootID": boot}},
    }


def test_a_read_rides_out_a_timeout_and_a_transient_answer(tmp_path, pauses):
    with scripted_api(tmp_path, ["hang", ("status", 503), ("json", {"kind": "Node"})]) as (api, kubeconfig):
        client = KubeApi(kubeconfig, None, 0.5, read_retries=2)
        assert client.request("GET", "/api/v1/nodes/worker-1") == {"kind": "Node"}
    assert len(api.requests) == 3
    assert pauses == [1, 2]


def test_reads_give_up_after_their_retries_with_the_last_answer(tmp_path, pauses):
    with scripted_api(tmp_path, [("status", 503)] * 3) as (api, kubeconfig), pytest.raises(KubeApiError) as raised:
        KubeApi(kubeconfig, None, 5, read_retries=2).request("GET", "/api/v1/nodes/worker-1")
    assert raised.value.status == 503 and len(api.requests) == 3


@pytest.mark.parametrize(
    ("method", "answer", "retries"),
    [("PATCH", 503, 2), ("GET", 404, 2), ("GET", 409, 2), ("GET", 503, 0)],
    ids=["a write", "a definite answer", "a conflict", "a client without retries"],
)
def test_what_is_not_asked_again(tmp_path, pauses, method, answer, retries):
    with scripted_api(tmp_path, [("status", answer)]) as (api, kubeconfig), pytest.raises(KubeApiError):
        KubeApi(kubeconfig, None, 5, read_retries=retries).request(method, "/api/v1/nodes/worker-1", body={})
    assert len(api.requests) == 1
    assert pauses == []


@pytest.mark.parametrize("failed_watch", ["hang", ("status", 503)], ids=["a silent watch", "a refused watch"])
def test_a_node_that_came_back_is_seen_after_a_failed_watch(tmp_path, pauses, failed_watch):
    script = [("json", node(False, "1", "old-boot")), failed_watch, ("json", node(True, "7"))]
    with scripted_api(tmp_path, script) as (api, kubeconfig):
        back = wait_ready(Cluster(kubeconfig, None, 1), "worker-1", "new-boot", time.monotonic() + 60)
    assert back["metadata"]["resourceVersion"] == "7"
    assert [path.split("?")[0] for path in api.requests] == [
        "/api/v1/nodes/worker-1",
        "/api/v1/nodes",
        "/api/v1/nodes/worker-1",
    ]
    # a refused watch waits out the rest of its first (5 s) window before the read; a silent one has used it up
    assert len(pauses) == 1 and (4.5 < pauses[0] <= 5 if failed_watch != "hang" else pauses[0] == 0)


def test_a_watch_event_ends_the_wait_without_another_read(tmp_path, pauses):
    script = [("json", node(False, "1", "old-boot")), ("events", [{"type": "MODIFIED", "object": node(True, "2")}])]
    with scripted_api(tmp_path, script) as (api, kubeconfig):
        back = wait_ready(Cluster(kubeconfig, None, 1), "worker-1", "new-boot", time.monotonic() + 60)
    assert back["metadata"]["resourceVersion"] == "2" and len(api.requests) == 2
    assert pauses == []


def test_a_watch_the_api_forbids_still_stops_the_wait(tmp_path, pauses):
    script = [("json", node(False, "1")), ("status", 403)]
    with scripted_api(tmp_path, script) as (_, kubeconfig), pytest.raises(KubeApiError) as raised:
        wait_ready(Cluster(kubeconfig, None, 1), "worker-1", None, time.monotonic() + 60)
    assert raised.value.status == 403


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (KubeApiError(503, "Service Unavailable", None), True),
        (KubeApiError(429, "Too Many Requests", None), True),
        (KubeApiError(501, "Not Implemented", None), False),
        (KubeApiError(409, "Conflict", None), False),
        (TimeoutError("timed out"), True),
        (ConnectionRefusedError(111, "refused"), True),
        (ssl.SSLCertVerificationError("certificate verify failed"), False),
    ],
    ids=["503", "429", "501", "409", "timeout", "refused", "bad certificate"],
)
def test_what_counts_as_transient(error, transient):
    assert is_transient(error) is transient


def test_watch_windows_grow_from_5_to_30_s_and_stop_at_the_deadline(monkeypatch):
    monkeypatch.setattr(time, "monotonic", lambda: 1000.0)
    assert list(itertools.islice(watch_windows(1100.0), 6)) == [5, 10, 20, 30, 30, 30]
    assert next(watch_windows(1003.0)) == 3
    assert list(watch_windows(999.0)) == []


def pod(uid: str) -> dict:
    return {"metadata": {"name": f"web-{uid}", "namespace": "apps", "uid": uid}}


def test_evicted_pods_going_one_after_the_other_are_seen_in_one_watch(tmp_path, pauses):
    listing = {"metadata": {"resourceVersion": "5"}, "items": [pod("a"), pod("b"), pod("kept")]}
    events = [{"type": "DELETED", "object": pod("a")}, {"type": "DELETED", "object": pod("b")}]
    with scripted_api(tmp_path, [("json", listing), ("events", events)]) as (api, kubeconfig):
        left = wait_gone(Cluster(kubeconfig, None, 5), "worker-1", {"a", "b"}, time.monotonic() + 60)
    assert left == []
    assert api.methods == ["GET", "GET"] and "watch=" in api.requests[1]
