"""End to end with real Prometheus: storage + Mimir front + three legacy agents against the endpoints."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from metrics_support import TOKEN, free_port, populated_store, prometheus_cr, wait_for

from lab.metrics.config import MetricsConfig
from lab.metrics.mimir import gateway_prefix
from lab.metrics.plane import PROMETHEUSES, MetricsPlane
from lab.metrics.prometheus import PrometheusProcess, start_agent

CR = "kps-kube-prometheus-stack-prometheus"
CLUSTER = f"monitoring/{CR}"


class Lab:
    def __init__(self, plane: MetricsPlane, store, tmp_path: Path) -> None:
        self.plane, self.store, self.tmp_path = plane, store, tmp_path

    def query(self, promql: str) -> list[dict]:
        assert self.plane.mimir is not None
        reply = requests.get(
            f"{self.plane.mimir.url}/prometheus/api/v1/query",
            params={"query": promql},
            headers={"X-Scope-OrgID": "lab"},
            timeout=10,
        )
        reply.raise_for_status()
        return reply.json()["data"]["result"]

    def scalar(self, promql: str) -> float | None:
        result = self.query(promql)
        return float(result[0]["value"][1]) if result else None


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    subnet = f"127.{free_port() % 200 + 20}.{free_port() % 250 + 1}"
    tmp_path = tmp_path_factory.mktemp("plane")
    config = MetricsConfig(
        storage_port=free_port(),
        mimir_port=free_port(),
        ksm_port=free_port(),
        agent_base_port=free_port(),
        cadvisor_seconds_per_pod=0.08,
        scrape_interval_seconds=1.0,
        scrape_timeout_seconds=1.0,
        meta_scrape_interval_seconds=1.0,
    )
    store = populated_store(subnet, nodes=2, pods_per_node=5)
    store.put(PROMETHEUSES, prometheus_cr("monitoring", CR, 3))
    plane = MetricsPlane(store, config, tmp_path, authenticate=lambda token: token == TOKEN, scrape_token=TOKEN)
    plane.set_containerd_address("worker-1", "0.0.0.0:11234")  # a node already patched when the lab starts
    plane.start()
    processes: list[PrometheusProcess] = [*plane.agents.values()]
    assert plane.storage is not None
    processes.append(plane.storage)
    try:
        yield Lab(plane, store, tmp_path)
    finally:
        plane.stop()
        assert not [process.name for process in processes if process.running()]


def test_status_reports_every_component_healthy(lab: Lab) -> None:
    components = {item["name"]: item for item in lab.plane.status()}
    expected = {"storage", "mimir", *(f"prometheus-{CR}-{i}" for i in range(3))}
    expected |= {f"{kind}/worker-{n}" for kind in ("kubelet", "cadvisor", "node-exporter") for n in (0, 1)}
    expected |= {"kube-state-metrics", "containerd/worker-1"}
    assert expected <= set(components)
    assert all(components[name]["healthy"] for name in expected)
    assert components["kubelet/worker-0"]["address"].startswith("https://")
    assert "containerd/worker-0" not in components


def test_legacy_cadvisor_scrapes_slower_than_the_kubelet(lab: Lab) -> None:
    cadvisor = 'avg(scrape_duration_seconds{job="cadvisor"})'
    kubelet = 'avg(scrape_duration_seconds{job="kubelet", metrics_path="/metrics/cadvisor"})'
    wait_for(lambda: lab.scalar(cadvisor) is not None and lab.scalar(kubelet) is not None, timeout=30)
    assert lab.scalar(cadvisor) > 5 * 0.08 > lab.scalar(kubelet)
    # cAdvisor's container labels were mapped to the names dashboards use.
    wait_for(lambda: lab.query('container_memory_working_set_bytes{job="cadvisor", pod="web-1-4", container="app"}'))


def test_mimir_keeps_one_replica_and_deduplicates_the_rest(lab: Lab) -> None:
    ratio = (
        'sum(cortex_distributor_deduped_samples_total{job="mimir"})'
        ' / sum(cortex_distributor_samples_in_total{job="mimir"})'
    )
    # Every replica sends the same series, so the share deduplicated settles at two thirds.
    wait_for(lambda: abs((lab.scalar(ratio) or 0) - 2 / 3) < 0.05, timeout=30)
    kubelets = 'up{job="kubelet", metrics_path="/metrics/cadvisor"} == 1'
    up = wait_for(lambda: len(result := lab.query(kubelets)) == 2 and result, timeout=15)
    assert all(item["metric"]["cluster"] == CLUSTER and "__replica__" not in item["metric"] for item in up)
    push_p99 = (
        'histogram_quantile(0.99, sum by (le) (rate(cortex_request_duration_seconds_bucket{route="api_v1_push"}[1m])))'
    )
    wait_for(lambda: (lab.scalar(push_p99) or 0) > 0, timeout=15)  # NaN until two scrapes of the front


def test_containerd_metrics_join_kube_state_metrics_by_container_id(lab: Lab) -> None:
    lab.plane.set_containerd_address("worker-0", "127.0.0.1:11234")
    assert lab.plane.exporters is not None
    node = next(e for e in lab.plane.exporters.endpoints() if e.kind == "containerd" and e.node == "worker-0")
    assert lab.plane.mimir is not None
    collector = start_agent(
        "containerd-collector",
        lab.tmp_path / "collector",
        free_port(),
        {
            "global": {"scrape_interval": "1s"},
            "scrape_configs": [
                {
                    "job_name": "containerd",
                    "metrics_path": "/v1/metrics",
                    "static_configs": [{"targets": [node.url.removeprefix("http://")]}],
                }
            ],
            "remote_write": [
                {
                    "url": f"{lab.plane.mimir.url}{gateway_prefix('lab')}/api/v1/push",
                    "queue_config": {"batch_send_deadline": "1s"},
                }
            ],
        },
    )
    join = (
        'container_memory_usage_bytes{job="containerd"}'
        " * on (container_id) group_left (namespace, pod, container)"
        ' label_replace(kube_pod_container_info, "container_id", "$1", "container_id", "containerd://(.+)")'
    )
    try:
        joined = wait_for(lambda: lab.query(join), timeout=30)
    finally:
        collector.stop()
    pods = {(item["metric"]["pod"], item["metric"]["container"]) for item in joined}
    assert pods == {(f"web-0-{n}", c) for n in range(5) for c in ("app", "sidecar")}


def test_scaling_the_prometheus_cr_changes_the_replicas(lab: Lab) -> None:
    lab.store.put(PROMETHEUSES, prometheus_cr("monitoring", CR, 1))
    wait_for(lambda: list(lab.plane.agents) == [f"prometheus-{CR}-0"], timeout=20)
    lab.store.put(PROMETHEUSES, prometheus_cr("monitoring", CR, 0))
    wait_for(lambda: not lab.plane.agents, timeout=20)
    assert not [item for item in lab.plane.status() if item["name"].startswith("prometheus-")]
