"""Helpers for the metrics plane tests: ports, polling, a fake cluster store, a capturing storage."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from lab.metrics.httpserve import Endpoint, Request, Response
from lab.metrics.remote_write import WriteRequest, decode_body

TOKEN = "lab-prometheus-token"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(condition: Callable[[], Any], timeout: float = 20.0, interval: float = 0.1) -> Any:
    """Poll until the condition returns something truthy; fail with the last value at the deadline."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s (last value: {value!r})")


class FakeStore:
    """The lab store's interface: list by resource (and namespace), subscribe to changes."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[tuple[str, str], dict]] = {}
        self.callbacks: list[Callable[[str, str, dict], None]] = []
        self._lock = threading.Lock()

    def list(self, resource: str, namespace: str | None = None) -> list[dict]:
        with self._lock:
            return [
                obj
                for (ns, _), obj in sorted(self.objects.get(resource, {}).items())
                if namespace is None or ns == namespace
            ]

    def subscribe(self, callback: Callable[[str, str, dict], None]) -> None:
        self.callbacks.append(callback)

    def put(self, resource: str, obj: dict) -> None:
        key = (obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        with self._lock:
            event = "MODIFIED" if key in self.objects.get(resource, {}) else "ADDED"
            self.objects.setdefault(resource, {})[key] = obj
        for callback in self.callbacks:
            callback(event, resource, obj)

    def delete(self, resource: str, namespace: str, name: str) -> None:
        with self._lock:
            obj = self.objects.get(resource, {}).pop((namespace, name))
        for callback in self.callbacks:
            callback("DELETED", resource, obj)


def node(name: str, address: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "status": {
            "addresses": [{"type": "InternalIP", "address": address}, {"type": "Hostname", "address": name}],
            "conditions": [{"type": "Ready", "status": "True"}],
            "nodeInfo": {"kubeletVersion": "v1.32.0", "containerRuntimeVersion": "containerd://2.0.2"},
        },
    }


def pod(namespace: str, name: str, node_name: str, containers: list[str], index: int) -> dict:
    uid = f"0000{index:04d}-aaaa-bbbb-cccc-{index:012d}"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"namespace": namespace, "name": name, "uid": uid},
        "spec": {
            "nodeName": node_name,
            "containers": [{"name": c, "image": f"registry.example/{c}:1.0"} for c in containers],
        },
        "status": {
            "phase": "Running",
            "qosClass": "Burstable",
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [
                {
                    "name": c,
                    "image": f"registry.example/{c}:1.0",
                    "imageID": f"registry.example/{c}@sha256:{index:064d}",
                    "containerID": f"containerd://{index:08d}{position:056d}",
                    "ready": True,
                    "restartCount": 0,
                    "state": {"running": {"startedAt": "2026-11-21T00:00:00Z"}},
                }
                for position, c in enumerate(containers)
            ],
        },
    }


def workload(kind: str, namespace: str, name: str, app: str) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": {"namespace": namespace, "name": name, "labels": {"app.kubernetes.io/name": app}},
        "spec": {},
        "status": {},
    }


def prometheus_cr(namespace: str, name: str, replicas: int) -> dict:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "Prometheus",
        "metadata": {"namespace": namespace, "name": name},
        "spec": {"replicas": replicas},
    }


def populated_store(subnet: str, nodes: int = 2, pods_per_node: int = 3) -> FakeStore:
    """Nodes on the subnet, application pods on each, and the legacy stack's workloads."""
    store = FakeStore()
    for index in range(nodes):
        name = f"worker-{index}"
        store.put("nodes", node(name, f"{subnet}.{index + 1}"))
        for number in range(pods_per_node):
            serial = index * 100 + number
            store.put("pods", pod("shop", f"web-{index}-{number}", name, ["app", "sidecar"], serial))
    store.put("daemonsets.apps", workload("DaemonSet", "monitoring", "cadvisor", "cadvisor"))
    store.put(
        "daemonsets.apps",
        workload("DaemonSet", "monitoring", "kps-prometheus-node-exporter", "prometheus-node-exporter"),
    )
    store.put(
        "deployments.apps",
        workload("Deployment", "monitoring", "kps-kube-state-metrics", "kube-state-metrics"),
    )
    return store


class CapturingStorage:
    """A stand-in for the storage's /api/v1/write that keeps what it receives."""

    def __init__(self) -> None:
        self.writes: list[WriteRequest] = []
        self.endpoint = Endpoint("127.0.0.1", 0, self._handle)

    def _handle(self, request: Request) -> Response:
        if request.path != "/api/v1/write":
            return Response(200, b'{"status":"success","data":{"resultType":"vector","result":[]}}', "application/json")
        self.writes.append(decode_body(request.body))
        return Response(204)

    def series(self) -> list[dict[str, str]]:
        return [dict(item.labels) for write in self.writes for item in write.timeseries]


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_exposition(body: str) -> list[tuple[str, dict[str, str], float]]:
    """Samples of a text exposition as (name, labels, value)."""
    samples = []
    for line in body.splitlines():
        match = _SAMPLE.match(line)
        if line.startswith("#") or not match:
            continue
        labels = dict(_LABEL.findall(match.group(2) or ""))
        samples.append((match.group(1), labels, float(match.group(3))))
    return samples


def total(samples: list[tuple[str, dict[str, str], float]], name: str, **labels: str) -> float:
    """Sum of the samples of a metric whose labels include the given ones."""
    return sum(
        value for key, have, value in samples if key == name and all(have.get(k) == v for k, v in labels.items())
    )
