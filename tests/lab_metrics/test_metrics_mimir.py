"""The Mimir front: HA dedup, failover, the first-series rule, tenants, validation, faults, queries."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator

import pytest
import requests
from metrics_support import CapturingStorage, parse_exposition, total

from lab.metrics.config import MetricsConfig
from lab.metrics.mimir import MimirFront, gateway_prefix
from lab.metrics.remote_write import Sample, TimeSeries, WriteRequest, encode_body

CLUSTER = "monitoring/kps-prometheus"
REPLICAS = ("prometheus-kps-prometheus-0", "prometheus-kps-prometheus-1", "prometheus-kps-prometheus-2")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def config() -> MetricsConfig:
    return MetricsConfig(mimir_port=0, ha_failover_timeout_seconds=30.0)


@pytest.fixture
def front(config: MetricsConfig, capturing_storage: CapturingStorage, clock: FakeClock) -> Iterator[MimirFront]:
    mimir = MimirFront(config, capturing_storage.endpoint.url, clock=clock)
    mimir.start()
    yield mimir
    mimir.stop()


def series(name: str, timestamp: int, replica: str | None = None, **labels: str) -> TimeSeries:
    pairs = [("__name__", name), *labels.items()]
    if replica is not None:
        pairs += [("cluster", CLUSTER), ("__replica__", replica)]
    return TimeSeries(tuple(pairs), [Sample(float(timestamp % 97), timestamp)])


def push(front: MimirFront, timeseries: list[TimeSeries], tenant: str | None = "lab") -> requests.Response:
    headers = {"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf"}
    if tenant is not None:
        headers["X-Scope-OrgID"] = tenant
    body = encode_body(WriteRequest(timeseries))
    return requests.post(f"{front.url}/api/v1/push", data=body, headers=headers, timeout=5)


def own_metrics(front: MimirFront) -> list[tuple[str, dict[str, str], float]]:
    return parse_exposition(requests.get(f"{front.url}/metrics", timeout=5).text)


def replica_batch(replica: str, timestamp: int, width: int = 5) -> list[TimeSeries]:
    return [series("container_memory_working_set_bytes", timestamp, replica, pod=f"web-{i}") for i in range(width)]


def test_three_replicas_store_one_copy(front: MimirFront, capturing_storage: CapturingStorage) -> None:
    statuses = {replica: set() for replica in REPLICAS}
    for step in range(6):
        for replica in REPLICAS:
            statuses[replica].add(push(front, replica_batch(replica, 1_700_000_000_000 + step * 1000)).status_code)

    assert statuses == {REPLICAS[0]: {200}, REPLICAS[1]: {202}, REPLICAS[2]: {202}}
    metrics = own_metrics(front)
    samples_in = total(metrics, "cortex_distributor_samples_in_total", user="lab")
    deduped = total(metrics, "cortex_distributor_deduped_samples_total", user="lab", cluster=CLUSTER)
    assert samples_in == 90
    assert deduped / samples_in == pytest.approx(2 / 3)
    assert total(metrics, "cortex_distributor_received_samples_total", user="lab") == 30
    assert total(metrics, "cortex_ha_tracker_elected_replica_changes_total", user="lab", cluster=CLUSTER) == 1
    stored = capturing_storage.series()
    assert len(stored) == 30
    assert all("__replica__" not in labels and labels["cluster"] == CLUSTER for labels in stored)


def test_failover_after_the_elected_replica_falls_silent(front: MimirFront, clock: FakeClock) -> None:
    assert push(front, replica_batch(REPLICAS[0], 1_000)).status_code == 200
    clock.now += 29
    assert push(front, replica_batch(REPLICAS[1], 2_000)).status_code == 202

    clock.now += 31  # REPLICAS[0] last seen 60 s ago, beyond the 30 s failover timeout
    assert push(front, replica_batch(REPLICAS[1], 62_000)).status_code == 200
    reply = push(front, replica_batch(REPLICAS[0], 62_500))

    assert reply.status_code == 202
    assert f"replica={REPLICAS[0]}, elected={REPLICAS[1]}" in reply.text
    changes = total(own_metrics(front), "cortex_ha_tracker_elected_replica_changes_total", cluster=CLUSTER)
    assert changes == 2
    status = requests.get(f"{front.url}/distributor/ha_tracker", headers={"Accept": "application/json"}, timeout=5)
    assert [(row["userID"], row["cluster"], row["replica"]) for row in status.json()["elected"]] == [
        ("lab", CLUSTER, REPLICAS[1])
    ]
    assert "Mimir HA Tracker Status" in requests.get(f"{front.url}/distributor/ha_tracker", timeout=5).text


def test_whole_request_is_judged_by_its_first_series(front: MimirFront, capturing_storage: CapturingStorage) -> None:
    assert push(front, replica_batch(REPLICAS[0], 1_000)).status_code == 200
    mixed = [series("up", 2_000, REPLICAS[1], job="a"), series("up", 2_000, REPLICAS[0], job="b")]
    assert push(front, mixed).status_code == 202

    unlabeled_first = [series("up", 3_000, job="c"), series("up", 3_000, REPLICAS[1], job="d")]
    assert push(front, unlabeled_first).status_code == 200

    stored = capturing_storage.series()
    assert {labels.get("job") for labels in stored} == {None, "c", "d"}
    # Not judged as HA, so the non-elected replica's series went in with its replica label.
    assert {"__name__": "up", "job": "d", "cluster": CLUSTER, "__replica__": REPLICAS[1]} in stored
    metrics = own_metrics(front)
    assert total(metrics, "cortex_distributor_non_ha_samples_received_total", user="lab") == 2
    assert total(metrics, "cortex_distributor_deduped_samples_total", cluster=CLUSTER) == 2


def test_tenant_header_is_required_when_multitenant(front: MimirFront) -> None:
    reply = push(front, replica_batch(REPLICAS[0], 1_000), tenant=None)
    assert (reply.status_code, reply.text.strip()) == (401, "no org id")
    query = requests.get(f"{front.url}/prometheus/api/v1/query", params={"query": "up"}, timeout=5)
    assert (query.status_code, query.text.strip()) == (401, "no org id")
    assert push(front, replica_batch(REPLICAS[0], 1_000), tenant="team-a").status_code == 200
    assert total(own_metrics(front), "cortex_distributor_received_samples_total", user="team-a") == 5


def test_single_tenant_mode_uses_anonymous(config: MetricsConfig, capturing_storage: CapturingStorage) -> None:
    mimir = MimirFront(dataclasses.replace(config, multitenancy_enabled=False), capturing_storage.endpoint.url)
    mimir.start()
    try:
        assert push(mimir, [series("up", 1_000)], tenant=None).status_code == 200
        assert total(own_metrics(mimir), "cortex_distributor_received_samples_total", user="anonymous") == 1
    finally:
        mimir.stop()


def test_bad_bodies_and_bad_series_are_refused(front: MimirFront, capturing_storage: CapturingStorage) -> None:
    garbage = requests.post(
        f"{front.url}/api/v1/push", data=b"\x00garbage", headers={"X-Scope-OrgID": "lab"}, timeout=5
    )
    assert garbage.status_code == 400

    assert push(front, [series("up", 5_000, job="x")]).status_code == 200
    duplicate = TimeSeries((("__name__", "up"), ("job", "y"), ("job", "z")), [Sample(1, 5_000)])
    reply = push(front, [series("up", 4_000, job="x"), duplicate, series("up", 4_000, job="fresh")])

    assert reply.status_code == 400
    assert "err-mimir-sample-out-of-order" in reply.text
    metrics = own_metrics(front)
    assert total(metrics, "cortex_discarded_samples_total", reason="sample-out-of-order", user="lab") == 1
    assert total(metrics, "cortex_discarded_samples_total", reason="duplicate_label_names", user="lab") == 1
    assert {labels["job"] for labels in capturing_storage.series()} == {"x", "fresh"}


def test_push_latency_histogram_and_slow_fault(front: MimirFront) -> None:
    assert push(front, replica_batch(REPLICAS[0], 1_000)).status_code == 200
    assert push(front, replica_batch(REPLICAS[1], 1_000)).status_code == 202
    front.set_latency(0.3)
    started = time.monotonic()
    assert push(front, replica_batch(REPLICAS[0], 2_000)).status_code == 200
    assert time.monotonic() - started >= 0.3

    metrics = own_metrics(front)
    route = {"method": "POST", "route": "api_v1_push", "ws": "false"}
    assert total(metrics, "cortex_request_duration_seconds_count", status_code="200", **route) == 2
    assert total(metrics, "cortex_request_duration_seconds_count", status_code="202", **route) == 1
    fast = total(metrics, "cortex_request_duration_seconds_bucket", status_code="200", le="0.25", **route)
    assert fast == 1  # the slowed push landed above 0.25 s
    assert total(metrics, "cortex_request_duration_seconds_sum", status_code="200", **route) >= 0.3


def test_down_fault_refuses_connections_until_lifted(front: MimirFront) -> None:
    front.set_down(True)
    with pytest.raises(requests.ConnectionError):
        push(front, [series("up", 1_000)])
    front.set_down(False)
    assert push(front, [series("up", 1_000)]).status_code == 200


def test_queries_are_proxied_under_the_prometheus_prefix(front: MimirFront) -> None:
    headers = {"X-Scope-OrgID": "lab"}
    reply = requests.get(f"{front.url}/prometheus/api/v1/query", params={"query": "up"}, headers=headers, timeout=5)
    assert reply.status_code == 200
    assert reply.json()["status"] == "success"
    assert requests.get(f"{front.url}/prometheus/api/v1/targets", headers=headers, timeout=5).status_code == 404
    routes = {
        labels["route"] for name, labels, _ in own_metrics(front) if name == "cortex_request_duration_seconds_count"
    }
    assert "prometheus_api_v1_query" in routes


def test_gateway_prefix_names_the_tenant_for_agents_that_cannot_send_headers(front: MimirFront) -> None:
    body = encode_body(WriteRequest([series("up", 1_000)]))
    url = f"{front.url}{gateway_prefix('team-b')}/api/v1/push"
    assert requests.post(url, data=body, timeout=5).status_code == 200
    metrics = own_metrics(front)
    assert total(metrics, "cortex_distributor_received_samples_total", user="team-b") == 1
    assert total(metrics, "cortex_request_duration_seconds_count", route="api_v1_push", status_code="200") == 1


def test_received_bytes_histogram_counts_every_push_body(front: MimirFront) -> None:
    bodies = [replica_batch(REPLICAS[0], 1_000), replica_batch(REPLICAS[0], 2_000)]
    for batch in bodies:
        assert push(front, batch).status_code == 200
    metrics = own_metrics(front)
    route = {"method": "POST", "route": "api_v1_push"}
    assert total(metrics, "cortex_request_message_bytes_count", **route) == 2
    wire = sum(len(encode_body(WriteRequest(batch))) for batch in bodies)
    assert total(metrics, "cortex_request_message_bytes_sum", **route) == wire
