"""The legacy HA Prometheus replicas of kube-prometheus-stack, as agent configurations.

Job names follow kube-prometheus-stack's ServiceMonitors: `kubelet` (with `metrics_path` label
`/metrics` and `/metrics/cadvisor`), `node-exporter`, `kube-state-metrics`. The chart has no
job for a standalone cAdvisor DaemonSet; setups that run one add a scrape config, conventionally
`job_name: cadvisor`, that maps cAdvisor's `container_label_io_kubernetes_*` labels to
`container`/`pod`/`namespace`: this lab does the same.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.metrics.config import MetricsConfig
from lab.metrics.exporters import ClusterView
from lab.metrics.mimir import gateway_prefix
from lab.metrics.prometheus import duration

TARGET_FILES = ("kubelet", "node-exporter", "kube-state-metrics", "cadvisor")


@dataclass(frozen=True)
class Replica:
    """One pod of the Prometheus StatefulSet `prometheus-<cr>`."""

    namespace: str
    cr: str
    index: int

    @property
    def pod(self) -> str:
        return f"prometheus-{self.cr}-{self.index}"

    @property
    def fullname(self) -> str:
        return self.cr.removesuffix("-prometheus")


def wanted_replicas(prometheuses: list[dict]) -> list[Replica]:
    """One Replica per `spec.replicas` of each Prometheus CR (the operator defaults to 1)."""
    replicas = []
    for resource in prometheuses:
        meta = resource.get("metadata", {})
        count = resource.get("spec", {}).get("replicas", 1)
        replicas += [Replica(meta.get("namespace", ""), meta.get("name", ""), index) for index in range(int(count))]
    return replicas


def _group(target: str, labels: dict[str, str]) -> dict[str, Any]:
    return {"targets": [target], "labels": labels}


def target_groups(view: ClusterView, config: MetricsConfig, fullname: str) -> dict[str, list[dict[str, Any]]]:
    """file_sd target groups per target file, from what the cluster runs now."""
    namespace = config.legacy_namespace
    kubelet = [
        _group(
            f"{node.address}:{config.kubelet_port}",
            {
                "node": node.name,
                "namespace": "kube-system",
                "service": f"{fullname}-kubelet",
                "endpoint": "https-metrics",
            },
        )
        for node in view.nodes
    ]
    node_exporter = [
        _group(
            f"{node.address}:{config.node_exporter_port}",
            {
                "node": node.name,
                "namespace": namespace,
                "service": f"{fullname}-prometheus-node-exporter",
                "endpoint": "http-metrics",
            },
        )
        for node in view.nodes
        if view.node_exporter
    ]
    cadvisor = [
        _group(f"{node.address}:{config.cadvisor_port}", {"node": node.name}) for node in view.nodes if view.cadvisor
    ]
    ksm = (
        [
            _group(
                f"127.0.0.1:{config.ksm_port}",
                {"service": f"{fullname}-kube-state-metrics", "endpoint": "http"},
            )
        ]
        if view.kube_state_metrics
        else []
    )
    return {
        "kubelet": kubelet,
        "node-exporter": node_exporter,
        "kube-state-metrics": ksm,
        "cadvisor": cadvisor,
    }


def write_targets(directory: Path, groups: dict[str, list[dict[str, Any]]]) -> None:
    """Rewrite the file_sd files atomically (Prometheus watches the directory)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, content in groups.items():
        temporary = directory / f".{name}.json.tmp"
        temporary.write_text(json.dumps(content, indent=1))
        temporary.replace(directory / f"{name}.json")


def _file_sd(directory: Path, name: str) -> list[dict[str, Any]]:
    return [{"files": [str(directory / f"{name}.json")], "refresh_interval": "5s"}]


def _job(replacement: str) -> dict[str, Any]:
    return {"target_label": "job", "replacement": replacement, "action": "replace"}


_METRICS_PATH_LABEL = {
    "source_labels": ["__metrics_path__"],
    "target_label": "metrics_path",
    "action": "replace",
}
_CADVISOR_KUBERNETES_LABELS = [
    {
        "source_labels": [f"container_label_io_kubernetes_{source}"],
        "target_label": target,
        "action": "replace",
    }
    for source, target in (
        ("container_name", "container"),
        ("pod_name", "pod"),
        ("pod_namespace", "namespace"),
    )
] + [{"regex": "container_label_.+", "action": "labeldrop"}]


def scrape_configs(replica: Replica, targets_dir: Path, token_file: Path, ca_file: Path) -> list[dict[str, Any]]:
    monitor = f"serviceMonitor/{replica.namespace}/{replica.fullname}"
    kubelet_tls = {
        "scheme": "https",
        "bearer_token_file": str(token_file),
        "tls_config": {"ca_file": str(ca_file)},
        "honor_labels": True,
        "file_sd_configs": _file_sd(targets_dir, "kubelet"),
    }
    return [
        {
            "job_name": f"{monitor}-kubelet/0",
            "metrics_path": "/metrics",
            **kubelet_tls,
            "relabel_configs": [_job("kubelet"), _METRICS_PATH_LABEL],
        },
        {
            "job_name": f"{monitor}-kubelet/1",
            "metrics_path": "/metrics/cadvisor",
            **kubelet_tls,
            "relabel_configs": [_job("kubelet"), _METRICS_PATH_LABEL],
        },
        {
            "job_name": f"{monitor}-node-exporter/0",
            "file_sd_configs": _file_sd(targets_dir, "node-exporter"),
            "relabel_configs": [_job("node-exporter")],
        },
        {
            "job_name": f"{monitor}-kube-state-metrics/0",
            "honor_labels": True,
            "file_sd_configs": _file_sd(targets_dir, "kube-state-metrics"),
            "relabel_configs": [_job("kube-state-metrics")],
        },
        {
            "job_name": "cadvisor",
            "file_sd_configs": _file_sd(targets_dir, "cadvisor"),
            "metric_relabel_configs": _CADVISOR_KUBERNETES_LABELS,
        },
    ]


def agent_config(
    replica: Replica,
    config: MetricsConfig,
    mimir_url: str,
    *,
    targets_dir: Path,
    token_file: Path,
    ca_file: Path,
) -> dict[str, Any]:
    """The replica's Prometheus config: the operator's external labels, renamed to the HA labels.

    `prometheus_replica` is renamed to the HA replica label (the operator's replicaExternalLabelName)
    so Mimir can drop it; the cluster label repeats `prometheus` (spec.externalLabels).
    """
    interval = config.scrape_interval_seconds
    identity = f"{replica.namespace}/{replica.cr}"
    gateway = gateway_prefix(config.tenant_id) if config.multitenancy_enabled else ""
    remote_write = {
        "url": f"{mimir_url}{gateway}/api/v1/push",
        "queue_config": {
            "batch_send_deadline": duration(min(5.0, interval)),
            "max_shards": 2,
            "min_backoff": "100ms",
        },
    }
    return {
        "global": {
            "scrape_interval": duration(interval),
            "scrape_timeout": duration(min(config.scrape_timeout_seconds, interval)),
            "external_labels": {
                "prometheus": identity,
                config.ha_cluster_label: identity,
                config.ha_replica_label: replica.pod,
            },
        },
        "scrape_configs": scrape_configs(replica, targets_dir, token_file, ca_file),
        "remote_write": [remote_write],
    }
