"""Legacy HA replicas and their targets, derived from the cluster state (no processes started)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from metrics_support import node, populated_store, prometheus_cr

from lab.metrics import legacy
from lab.metrics.config import MetricsConfig
from lab.metrics.plane import cluster_view, node_addresses
from lab.metrics.prometheus import write_config


def test_replicas_follow_the_prometheus_cr() -> None:
    replicas = legacy.wanted_replicas([prometheus_cr("monitoring", "kps-kube-prometheus-stack-prometheus", 2)])
    assert [replica.pod for replica in replicas] == [
        "prometheus-kps-kube-prometheus-stack-prometheus-0",
        "prometheus-kps-kube-prometheus-stack-prometheus-1",
    ]
    assert replicas[0].fullname == "kps-kube-prometheus-stack"
    assert legacy.wanted_replicas([prometheus_cr("monitoring", "p", 0)]) == []


def test_nodes_keep_a_loopback_internal_ip_and_others_get_one() -> None:
    infos = node_addresses([node("b", "10.5.0.3"), node("a", "127.44.0.7")])
    assert [(info.name, info.address) for info in infos] == [("a", "127.44.0.7"), ("b", "127.0.10.2")]


def test_target_files_follow_the_legacy_workloads(tmp_path: Path) -> None:
    config = MetricsConfig()
    store = populated_store("127.45.0", nodes=2)
    groups = legacy.target_groups(cluster_view(store, config), config, "kps-kube-prometheus-stack")
    assert [group["targets"] for group in groups["cadvisor"]] == [["127.45.0.1:8080"], ["127.45.0.2:8080"]]
    assert groups["kubelet"][0]["labels"]["service"] == "kps-kube-prometheus-stack-kubelet"

    store.delete("daemonsets.apps", "monitoring", "cadvisor")
    store.delete("deployments.apps", "monitoring", "kps-kube-state-metrics")
    legacy.write_targets(tmp_path, legacy.target_groups(cluster_view(store, config), config, "kps"))
    assert json.loads((tmp_path / "cadvisor.json").read_text()) == []
    assert json.loads((tmp_path / "kube-state-metrics.json").read_text()) == []
    assert len(json.loads((tmp_path / "node-exporter.json").read_text())) == 2


def test_agent_config_carries_the_ha_labels_and_the_tenant(tmp_path: Path) -> None:
    replica = legacy.Replica("monitoring", "kps-kube-prometheus-stack-prometheus", 1)
    config = MetricsConfig(scrape_interval_seconds=30, tenant_id="prod")
    generated = legacy.agent_config(
        replica,
        config,
        "http://127.0.0.1:8080",
        targets_dir=tmp_path,
        token_file=tmp_path / "t",
        ca_file=tmp_path / "c",
    )
    assert generated["global"]["external_labels"] == {
        "prometheus": "monitoring/kps-kube-prometheus-stack-prometheus",
        "cluster": "monitoring/kps-kube-prometheus-stack-prometheus",
        "__replica__": "prometheus-kps-kube-prometheus-stack-prometheus-1",
    }
    assert generated["global"]["scrape_interval"] == "30000ms"
    assert generated["remote_write"][0]["url"] == "http://127.0.0.1:8080/gateway/prod/api/v1/push"
    jobs = {job["job_name"]: job for job in generated["scrape_configs"]}
    assert jobs["serviceMonitor/monitoring/kps-kube-prometheus-stack-kubelet/1"]["metrics_path"] == "/metrics/cadvisor"


def test_promtool_accepts_the_generated_agent_config(tmp_path: Path) -> None:
    for name in ("token", "ca.crt"):
        (tmp_path / name).write_text("x")
    generated = legacy.agent_config(
        legacy.Replica("monitoring", "kps-kube-prometheus-stack-prometheus", 0),
        MetricsConfig(scrape_interval_seconds=1, scrape_timeout_seconds=10),
        "http://127.0.0.1:8080",
        targets_dir=tmp_path,
        token_file=tmp_path / "token",
        ca_file=tmp_path / "ca.crt",
    )
    write_config(tmp_path / "prometheus.yml", generated)
    check = subprocess.run(
        ["promtool", "check", "config", "--agent", str(tmp_path / "prometheus.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
