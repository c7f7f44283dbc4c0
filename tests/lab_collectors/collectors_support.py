"""A small lab of its own for the collectors tests, and the objects a deploy stage would apply.

The lab runs from a three-node inventory on loopback addresses and ports no other lab uses, so it
can run beside the session lab; it starts at `--stage containerd` (containerd metrics enabled on
every node). The manifests follow the names and shapes agreed for the deploy roles (StatefulSet
`alloy` with its headless Service and ConfigMap, the standalone kube-state-metrics, the OTel
Collector DaemonSet), built here so the lab runtime is tested on its own.
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import yaml

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "monitoring"
TENANT = "lab"
PART_OF = {"app.kubernetes.io/part-of": "alloy-migration", "app.kubernetes.io/managed-by": "alloy-migration"}
ALLOY_LABELS = {"app.kubernetes.io/name": "alloy", "app.kubernetes.io/instance": "alloy-migration"}
KSM_LABELS = {"app.kubernetes.io/name": "kube-state-metrics", "app.kubernetes.io/instance": "alloy-migration"}
OTEL_LABELS = {"app.kubernetes.io/name": "otel-collector", "app.kubernetes.io/instance": "alloy-migration"}
NODES = (
    ("talos-cp-1", "controlplane", "v1.13.2"),
    ("talos-worker-1", "worker", "v1.13.2"),
    ("talos-worker-2", "worker", "v1.14.0"),
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def write_inventory(directory: Path, subnet: str) -> Path:
    groups: dict[str, dict] = {"talos_control_plane": {"hosts": {}}, "talos_workers": {"hosts": {}}}
    for index, (name, role, version) in enumerate(NODES, start=1):
        group = "talos_control_plane" if role == "controlplane" else "talos_workers"
        groups[group]["hosts"][name] = {"talos_node_address": f"{subnet}.{index}", "talos_version": version}
    (directory / "group_vars" / "all").mkdir(parents=True)
    (directory / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": {"talos_nodes": {"children": groups}}}}))
    (directory / "group_vars" / "all" / "lab.yml").write_text(
        yaml.safe_dump(
            {
                "migration_cluster_name": "lab-talos",
                "migration_namespace": NAMESPACE,
                "migration_legacy_release": "kube-prometheus-stack",
                "lab_pod_ready_seconds": 0.5,
                "lab_apps": {"shop": {"frontend": 2}},
            }
        )
    )
    return directory


@dataclass
class SmallLab:
    run_dir: Path
    inventory: Path
    env: dict[str, str]
    state: dict
    mimir_url: str
    config_files: dict[str, str] = field(default_factory=dict)

    @property
    def api(self) -> str:
        return self.state["api"]

    @property
    def kubeconfig(self) -> Path:
        return self.run_dir / "kubeconfig"

    def _request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {
            "Authorization": f"Bearer {(self.run_dir / 'token').read_text().strip()}",
            **kwargs.pop("headers", {}),
        }
        # verify per request: a REQUESTS_CA_BUNDLE in the environment would override a session's.
        ca = str(self.run_dir / "pki" / "ca.crt")
        return requests.request(method, self.api + path, headers=headers, verify=ca, timeout=10, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self._request("GET", path, **kwargs)

    def delete(self, path: str) -> requests.Response:
        return self._request("DELETE", path)

    def post(self, path: str) -> requests.Response:
        return self._request("POST", path)

    def apply(self, obj: dict) -> dict:
        """Server-side apply, as kubernetes.core's `apply: true, server_side_apply` sends it."""
        api_version, kind, meta = obj["apiVersion"], obj["kind"], obj["metadata"]
        plural = {
            "ServiceAccount": "serviceaccounts",
            "ConfigMap": "configmaps",
            "Service": "services",
            "Secret": "secrets",
            "StatefulSet": "statefulsets",
            "Deployment": "deployments",
            "DaemonSet": "daemonsets",
            "ClusterRole": "clusterroles",
            "ClusterRoleBinding": "clusterrolebindings",
        }[kind]
        base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        scope = f"/namespaces/{meta['namespace']}" if "namespace" in meta else ""
        path = f"{base}{scope}/{plural}/{meta['name']}"
        reply = self._request(
            "PATCH",
            path,
            params={"fieldManager": "alloy-migration", "force": "true"},
            data=json.dumps(obj),
            headers={"Content-Type": "application/apply-patch+yaml"},
        )
        assert reply.status_code in (200, 201), reply.text
        return reply.json()

    def proxy(self, pod: str, port: int, path: str) -> requests.Response:
        return self.get(f"/api/v1/namespaces/{NAMESPACE}/pods/{pod}:{port}/proxy{path}")

    def query(self, promql: str) -> list[dict]:
        reply = requests.get(
            f"{self.mimir_url}/prometheus/api/v1/query",
            params={"query": promql},
            headers={"X-Scope-OrgID": TENANT},
            timeout=10,
        )
        reply.raise_for_status()
        return reply.json()["data"]["result"]

    def status(self) -> dict:
        request = requests.get(
            self.state["control"] + "/status",
            headers={"Authorization": f"Bearer {self.state['control_token']}"},
            timeout=10,
        )
        return request.json()

    def fault(self, **settings: str) -> dict:
        reply = requests.post(
            self.state["control"] + "/fault",
            headers={"Authorization": f"Bearer {self.state['control_token']}"},
            json=settings,
            timeout=10,
        )
        assert reply.status_code == 200, reply.text
        return reply.json()

    def ready_pods(self, selector: str) -> list[dict]:
        pods = self.get(f"/api/v1/namespaces/{NAMESPACE}/pods", params={"labelSelector": selector}).json()["items"]
        return [
            p
            for p in pods
            if any(c["type"] == "Ready" and c["status"] == "True" for c in p.get("status", {}).get("conditions", []))
        ]

    def lab_command(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "lab", "--inventory", str(self.inventory), "--run-dir", str(self.run_dir), *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


def small_lab(tmp: Path) -> SmallLab:
    """A lab on a loopback /24 and ports of its own (not started yet: see `up`)."""
    subnet = f"127.{random.Random(os.getpid()).randint(100, 199)}.{random.randint(1, 250)}"
    inventory = write_inventory(tmp / "inventory", subnet)
    metrics = {
        "storage_port": free_port(),
        "mimir_port": free_port(),
        "ksm_port": free_port(),
        "agent_base_port": free_port(),
        "scrape_interval_seconds": 5,
        "scrape_timeout_seconds": 2,
        "meta_scrape_interval_seconds": 2,
        "cadvisor_seconds_per_pod": 0.01,
    }
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LAB_METRICS": json.dumps(metrics)}
    env.pop("LAB_STAGE", None)
    return SmallLab(tmp / "run", inventory, env, {}, f"http://127.0.0.1:{metrics['mimir_port']}")


def up(lab: SmallLab, *args: str) -> None:
    started = lab.lab_command("up", *args)
    if started.returncode != 0:
        log = (lab.run_dir / "lab.log").read_text() if (lab.run_dir / "lab.log").exists() else ""
        raise AssertionError(f"lab up failed:\n{started.stdout}\n{started.stderr}\n{log}")
    lab.state = json.loads((lab.run_dir / "lab.json").read_text())


# --- what the deploy stage applies ---------------------------------------------------------------------------


def _meta(name: str, labels: dict[str, str]) -> dict:
    return {"name": name, "namespace": NAMESPACE, "labels": {**labels, **PART_OF}}


ALLOY_RULES = [
    {"apiGroups": [""], "resources": ["nodes", "pods", "services", "endpoints"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": [""], "resources": ["nodes/metrics"], "verbs": ["get"]},
]


def alloy_cluster_role(rules: list[dict]) -> dict:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "alloy-migration-alloy", "labels": {**ALLOY_LABELS, **PART_OF}},
        "rules": rules,
    }


def alloy_objects(config_files: dict[str, str], replicas: int = 3) -> list[dict]:
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta("alloy", ALLOY_LABELS)},
        alloy_cluster_role(ALLOY_RULES),
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "alloy-migration-alloy", "labels": {**ALLOY_LABELS, **PART_OF}},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "alloy-migration-alloy",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "alloy", "namespace": NAMESPACE}],
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": _meta("alloy-config", ALLOY_LABELS),
            "data": config_files,
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _meta("alloy-cluster", ALLOY_LABELS),
            "spec": {
                "clusterIP": "None",
                "publishNotReadyAddresses": True,
                "selector": ALLOY_LABELS,
                "ports": [{"name": "http", "port": 12345, "targetPort": "http"}],
            },
        },
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": _meta("alloy", ALLOY_LABELS),
            "spec": {
                "replicas": replicas,
                "serviceName": "alloy-cluster",
                "podManagementPolicy": "Parallel",
                "selector": {"matchLabels": ALLOY_LABELS},
                "template": {
                    "metadata": {"labels": {**ALLOY_LABELS, **PART_OF}},
                    "spec": {
                        "serviceAccountName": "alloy",
                        "containers": [
                            {
                                "name": "alloy",
                                "image": "grafana/alloy:v1.10.2",
                                "args": [
                                    "run",
                                    "/etc/alloy",
                                    "--storage.path=/tmp/alloy",
                                    "--server.http.listen-addr=0.0.0.0:12345",
                                    "--cluster.enabled=true",
                                    "--cluster.join-addresses=alloy-cluster",
                                    "--stability.level=generally-available",
                                ],
                                "ports": [{"name": "http", "containerPort": 12345}],
                                "readinessProbe": {"httpGet": {"path": "/-/ready", "port": 12345}},
                                "volumeMounts": [{"name": "config", "mountPath": "/etc/alloy"}],
                            }
                        ],
                        "volumes": [{"name": "config", "configMap": {"name": "alloy-config"}}],
                    },
                },
            },
        },
    ]


def kube_state_metrics_objects() -> list[dict]:
    name = "alloy-migration-kube-state-metrics"
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(name, KSM_LABELS)},
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": _meta(name, KSM_LABELS),
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": KSM_LABELS},
                "template": {
                    "metadata": {"labels": {**KSM_LABELS, **PART_OF}},
                    "spec": {
                        "serviceAccountName": name,
                        "containers": [
                            {
                                "name": "kube-state-metrics",
                                "image": "registry.k8s.io/kube-state-metrics/kube-state-metrics:v2.16.0",
                                "args": ["--port=8080", "--telemetry-port=8081"],
                                "ports": [
                                    {"name": "http", "containerPort": 8080},
                                    {"name": "telemetry", "containerPort": 8081},
                                ],
                            }
                        ],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _meta(name, KSM_LABELS),
            "spec": {
                "selector": KSM_LABELS,
                "ports": [
                    {"name": "http", "port": 8080, "targetPort": "http"},
                    {"name": "telemetry", "port": 8081, "targetPort": "telemetry"},
                ],
            },
        },
    ]


def otel_config(mimir_url: str, interval: str) -> str:
    return yaml.safe_dump(
        {
            "extensions": {"health_check": {"endpoint": "${env:POD_IP}:13133"}},
            "receivers": {
                "prometheus": {
                    "config": {
                        "scrape_configs": [
                            {
                                "job_name": "containerd",
                                "scrape_interval": interval,
                                "metrics_path": "/v1/metrics",
                                "static_configs": [{"targets": ["127.0.0.1:11234"]}],
                                "relabel_configs": [{"target_label": "node", "replacement": "${env:NODE_NAME}"}],
                            }
                        ]
                    }
                }
            },
            "processors": {"batch": {}},
            "exporters": {
                "prometheusremotewrite": {"endpoint": f"{mimir_url}/api/v1/push", "headers": {"X-Scope-OrgID": TENANT}}
            },
            "service": {
                "extensions": ["health_check"],
                "telemetry": {"metrics": {"address": "${env:POD_IP}:8888"}},
                "pipelines": {
                    "metrics": {
                        "receivers": ["prometheus"],
                        "processors": ["batch"],
                        "exporters": ["prometheusremotewrite"],
                    }
                },
            },
        }
    )


def otel_objects(config: str) -> list[dict]:
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta("otel-collector", OTEL_LABELS)},
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": _meta("otel-collector-config", OTEL_LABELS),
            "data": {"config.yaml": config},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": _meta("otel-collector", OTEL_LABELS),
            "spec": {
                "selector": {"matchLabels": OTEL_LABELS},
                "template": {
                    "metadata": {"labels": {**OTEL_LABELS, **PART_OF}},
                    "spec": {
                        "serviceAccountName": "otel-collector",
                        "hostNetwork": True,
                        "dnsPolicy": "ClusterFirstWithHostNet",
                        "tolerations": [{"operator": "Exists"}],
                        "containers": [
                            {
                                "name": "otel-collector",
                                "image": "otel/opentelemetry-collector-contrib:0.135.0",
                                "args": ["--config=/conf/config.yaml"],
                                "env": [
                                    {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                                    {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                                ],
                                "ports": [{"name": "health", "containerPort": 13133}],
                                "volumeMounts": [{"name": "config", "mountPath": "/conf"}],
                            }
                        ],
                        "volumes": [{"name": "config", "configMap": {"name": "otel-collector-config"}}],
                    },
                },
            },
        },
    ]
