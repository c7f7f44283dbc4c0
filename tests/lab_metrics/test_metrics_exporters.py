"""Node endpoints: kubelet auth and series, containerd on demand, cAdvisor latency, kube-state-metrics."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from metrics_support import TOKEN, free_port, parse_exposition, pod, populated_store, total, wait_for

from lab.metrics.config import MetricsConfig
from lab.metrics.exporters import Exporters
from lab.metrics.plane import cluster_view

CONTAINERD_NAMES = {
    "container_cpu_usage_usec_microseconds",
    "container_cpu_user_usec_microseconds",
    "container_cpu_system_usec_microseconds",
    "container_cpu_nr_periods_total",
    "container_cpu_nr_throttled_total",
    "container_cpu_throttled_usec_microseconds",
    "container_memory_usage_bytes",
    "container_memory_usage_limit_bytes",
    "container_memory_oom_total",
    "container_pids_current",
    "container_pids_limit",
    "container_io_rbytes_bytes",
    "container_io_wbytes_bytes",
}


@pytest.fixture
def config() -> MetricsConfig:
    return MetricsConfig(ksm_port=free_port(), cadvisor_seconds_per_pod=0.05)


@pytest.fixture
def exporters(config: MetricsConfig, tmp_path: Path) -> Iterator[Exporters]:
    running = Exporters(config, tmp_path, lambda token: token == TOKEN)
    yield running
    running.stop()


def get(url: str, **kwargs: object) -> requests.Response:
    return requests.get(url, timeout=10, **kwargs)  # type: ignore[arg-type]


def kubelet_get(exporters: Exporters, address: str, path: str, token: str | None = TOKEN) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    url = f"https://{address}:{exporters.config.kubelet_port}{path}"
    return get(url, headers=headers, verify=str(exporters.ca_file))


def test_kubelet_requires_a_valid_bearer_token(exporters: Exporters, config: MetricsConfig, subnet: str) -> None:
    exporters.sync(cluster_view(populated_store(subnet, nodes=1), config))
    address = f"{subnet}.1"
    assert kubelet_get(exporters, address, "/metrics/cadvisor", token=None).status_code == 401
    assert kubelet_get(exporters, address, "/metrics/cadvisor", token="wrong").status_code == 401
    reply = kubelet_get(exporters, address, "/metrics/cadvisor")
    assert reply.status_code == 200
    samples = parse_exposition(reply.text)
    web = [
        labels
        for name, labels, _ in samples
        if name == "container_cpu_usage_seconds_total" and labels["pod"] == "web-0-0"
    ]
    assert {labels["container"] for labels in web} == {"app", "sidecar", ""}
    app = next(labels for labels in web if labels["container"] == "app")
    assert set(app) == {"container", "id", "image", "name", "namespace", "pod"}
    assert app["image"] == "registry.example/app:1.0"
    assert app["namespace"] == "shop"
    assert app["id"].startswith("/kubepods/burstable/pod")
    own = parse_exposition(kubelet_get(exporters, address, "/metrics").text)
    assert total(own, "kubelet_running_pods") == 3
    assert total(own, "kubelet_node_name", node="worker-0") == 1


def test_counters_grow_between_scrapes(exporters: Exporters, config: MetricsConfig, subnet: str) -> None:
    exporters.sync(cluster_view(populated_store(subnet, nodes=1), config))

    def cpu_seconds() -> float:
        reply = kubelet_get(exporters, f"{subnet}.1", "/metrics/cadvisor")
        return total(parse_exposition(reply.text), "container_cpu_usage_seconds_total")

    first = cpu_seconds()
    assert first > 0
    wait_for(lambda: cpu_seconds() > first, timeout=5)


def test_containerd_serves_only_when_told_with_pod_container_ids(
    exporters: Exporters, config: MetricsConfig, subnet: str
) -> None:
    store = populated_store(subnet, nodes=2)
    exporters.sync(cluster_view(store, config))
    address = f"{subnet}.1:11234"
    with pytest.raises(requests.ConnectionError):
        get(f"http://{address}/v1/metrics")

    exporters.set_containerd_address("worker-0", "127.0.0.1:11234")
    samples = parse_exposition(get(f"http://{address}/v1/metrics").text)
    assert {name for name, _, _ in samples} == CONTAINERD_NAMES
    assert all(labels["namespace"] == "k8s.io" for _, labels, _ in samples)
    expected = {
        status["containerID"].removeprefix("containerd://")
        for pod in store.list("pods")
        if pod["spec"]["nodeName"] == "worker-0"
        for status in pod["status"]["containerStatuses"]
    }
    assert {labels["container_id"] for _, labels, _ in samples} == expected
    with pytest.raises(requests.ConnectionError):
        get(f"http://{subnet}.2:11234/v1/metrics")

    exporters.set_containerd_address("worker-0", None)
    with pytest.raises(requests.ConnectionError):
        get(f"http://{address}/v1/metrics")


def test_legacy_cadvisor_slows_down_with_pods_and_follows_its_daemonset(
    exporters: Exporters, config: MetricsConfig, subnet: str
) -> None:
    store = populated_store(subnet, nodes=2, pods_per_node=2)
    for number in range(2, 8):
        store.put("pods", pod("shop", f"web-1-{number}", "worker-1", ["app", "sidecar"], 100 + number))
    exporters.sync(cluster_view(store, config))

    timings = {}
    for index in (1, 2):
        started = time.monotonic()
        reply = get(f"http://{subnet}.{index}:{config.cadvisor_port}/metrics")
        timings[index] = time.monotonic() - started
        assert reply.status_code == 200
    assert timings[1] >= 2 * 0.05
    assert timings[2] >= 8 * 0.05 > timings[1]
    samples = parse_exposition(reply.text)
    assert any(labels.get("container_label_io_kubernetes_pod_name") == "web-1-7" for _, labels, _ in samples)

    store.delete("daemonsets.apps", "monitoring", "cadvisor")
    exporters.sync(cluster_view(store, config))
    with pytest.raises(requests.ConnectionError):
        get(f"http://{subnet}.1:{config.cadvisor_port}/metrics")


def test_kube_state_metrics_describe_pods_with_container_ids(
    exporters: Exporters, config: MetricsConfig, subnet: str
) -> None:
    store = populated_store(subnet, nodes=1, pods_per_node=1)
    exporters.sync(cluster_view(store, config))
    samples = parse_exposition(get(f"http://127.0.0.1:{config.ksm_port}/metrics").text)
    info = [labels for name, labels, _ in samples if name == "kube_pod_container_info"]
    status = store.list("pods")[0]["status"]["containerStatuses"]
    assert {labels["container_id"] for labels in info} == {s["containerID"] for s in status}
    assert {labels["container"] for labels in info} == {"app", "sidecar"}
    assert total(samples, "kube_pod_status_ready", pod="web-0-0", condition="true") == 1
    assert total(samples, "kube_pod_info", pod="web-0-0", node="worker-0") == 1
    assert total(samples, "kube_node_info", node="worker-0", internal_ip=f"{subnet}.1") == 1

    store.delete("deployments.apps", "monitoring", "kps-kube-state-metrics")
    exporters.sync(cluster_view(store, config))
    with pytest.raises(requests.ConnectionError):
        get(f"http://127.0.0.1:{config.ksm_port}/metrics")


def test_node_exporter_follows_its_daemonset(exporters: Exporters, config: MetricsConfig, subnet: str) -> None:
    store = populated_store(subnet, nodes=1)
    exporters.sync(cluster_view(store, config))
    samples = parse_exposition(get(f"http://{subnet}.1:{config.node_exporter_port}/metrics").text)
    assert total(samples, "node_cpu_seconds_total", mode="idle") > 0
    store.delete("daemonsets.apps", "monitoring", "kps-prometheus-node-exporter")
    exporters.sync(cluster_view(store, config))
    with pytest.raises(requests.ConnectionError):
        get(f"http://{subnet}.1:{config.node_exporter_port}/metrics")
