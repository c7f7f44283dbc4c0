"""The translation of collector configurations, without a lab: discovery labels, rules, agent configs.

The agent configurations are checked with the real `promtool check config`, so what the lab would
start is a configuration the lab's Prometheus accepts.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from lab.collectors import kubesd, otel
from lab.collectors.agent import agent_config, go_duration
from lab.collectors.alloy import Replica, Translator, go_format_duration
from lab.collectors.alloy_config import ConfigError, PodContext, load
from lab.k8s import rbac

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


def _pod(name: str, ip: str, node: str, labels: dict, ports: list[dict], ready: bool = True) -> dict:
    return {
        "metadata": {
            "name": name,
            "namespace": "monitoring",
            "uid": f"uid-{name}",
            "labels": labels,
            "annotations": {"prometheus.io/scrape": "true"},
            "ownerReferences": [{"kind": "ReplicaSet", "name": "ksm-abc", "controller": True}],
        },
        "spec": {"nodeName": node, "containers": [{"name": "main", "image": "img:1", "ports": ports}]},
        "status": {
            "phase": "Running",
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "hostIP": "127.0.10.1",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "containerStatuses": [{"name": "main", "containerID": "containerd://abc"}],
        },
    }


SNAPSHOT = kubesd.Snapshot(
    nodes=[
        {
            "metadata": {"name": "n1", "labels": {"kubernetes.io/hostname": "n1"}, "annotations": {}},
            "spec": {},
            "status": {
                "addresses": [{"type": "InternalIP", "address": "127.0.10.1"}, {"type": "Hostname", "address": "n1"}],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            },
        }
    ],
    pods=[
        _pod(
            "ksm-1",
            "10.244.1.5",
            "n1",
            {"app.kubernetes.io/name": "kube-state-metrics"},
            [{"name": "http", "containerPort": 8080}, {"name": "telemetry", "containerPort": 8081}],
        )
    ],
    services=[
        {
            "metadata": {
                "name": "ksm",
                "namespace": "monitoring",
                "labels": {"app.kubernetes.io/name": "kube-state-metrics"},
            },
            "spec": {"clusterIP": "10.96.0.10", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]},
        }
    ],
    endpointslices=[
        {
            "metadata": {
                "name": "ksm-x1",
                "namespace": "monitoring",
                "labels": {"kubernetes.io/service-name": "ksm"},
            },
            "addressType": "IPv4",
            "endpoints": [
                {
                    "addresses": ["10.244.1.5"],
                    "conditions": {"ready": True, "serving": True, "terminating": False},
                    "nodeName": "n1",
                    "targetRef": {"kind": "Pod", "namespace": "monitoring", "name": "ksm-1"},
                }
            ],
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        }
    ],
)


def test_node_role_targets_carry_the_address_types_and_the_node_name_as_instance() -> None:
    (group,) = kubesd.discover(kubesd.DiscoveryConfig("node"), SNAPSHOT)
    assert group["targets"] == ["127.0.10.1:10250"]
    labels = group["labels"]
    assert labels["instance"] == "n1"
    assert labels["__meta_kubernetes_node_address_InternalIP"] == "127.0.10.1"
    assert labels["__meta_kubernetes_node_address_Hostname"] == "n1"
    assert labels["__meta_kubernetes_node_label_kubernetes_io_hostname"] == "n1"
    assert labels["__meta_kubernetes_node_labelpresent_kubernetes_io_hostname"] == "true"


def test_endpointslice_targets_merge_service_pod_and_container_port_labels() -> None:
    groups = kubesd.discover(kubesd.DiscoveryConfig("endpointslice"), SNAPSHOT)
    by_address = {g["targets"][0]: g["labels"] for g in groups}
    assert set(by_address) == {"10.244.1.5:8080", "10.244.1.5:8081"}, "the telemetry port no endpoint covers too"
    http = by_address["10.244.1.5:8080"]
    assert http["__meta_kubernetes_endpointslice_port_name"] == "http"
    assert http["__meta_kubernetes_endpointslice_endpoint_conditions_ready"] == "true"
    assert http["__meta_kubernetes_endpointslice_endpoint_node_name"] == "n1"
    assert http["__meta_kubernetes_service_label_app_kubernetes_io_name"] == "kube-state-metrics"
    assert http["__meta_kubernetes_pod_name"] == "ksm-1"
    assert http["__meta_kubernetes_pod_controller_kind"] == "ReplicaSet"
    assert http["__meta_kubernetes_pod_container_port_name"] == "http"
    telemetry = by_address["10.244.1.5:8081"]
    assert "__meta_kubernetes_endpointslice_port_name" not in telemetry
    assert telemetry["__meta_kubernetes_pod_container_port_name"] == "telemetry"


def test_pod_role_has_one_target_per_container_port_and_selectors_filter() -> None:
    groups = kubesd.discover(kubesd.DiscoveryConfig("pod"), SNAPSHOT)
    assert [g["targets"][0] for g in groups] == ["10.244.1.5:8080", "10.244.1.5:8081"]
    assert groups[0]["labels"]["__meta_kubernetes_pod_container_id"] == "containerd://abc"
    assert groups[0]["labels"]["__meta_kubernetes_pod_annotation_prometheus_io_scrape"] == "true"
    selector = kubesd.Selector("pod", label="app.kubernetes.io/name=other")
    assert kubesd.discover(kubesd.DiscoveryConfig("pod", selectors=(selector,)), SNAPSHOT) == []
    assert kubesd.discover(kubesd.DiscoveryConfig("pod", namespaces=("default",)), SNAPSHOT) == []


CONFIG = """
discovery.kubernetes "slices" {
  role = "endpointslice"
}

discovery.relabel "ksm" {
  targets = discovery.kubernetes.slices.targets

  rule {
    source_labels = ["__meta_kubernetes_endpointslice_port_name"]
    regex         = "http"
    action        = "keep"
  }
}

prometheus.scrape "ksm" {
  targets         = discovery.relabel.ksm.output
  scrape_interval = "2s"
  scrape_timeout  = "2s"

  clustering {
    enabled = true
  }

  forward_to = [prometheus.relabel.strip.receiver]
}

prometheus.relabel "strip" {
  rule {
    source_labels = ["container_id"]
    regex         = "containerd://(.+)"
    target_label  = "container_id"
  }

  forward_to = [prometheus.remote_write.mimir.receiver]
}

prometheus.remote_write "mimir" {
  endpoint {
    url     = "http://127.0.0.1:8080/api/v1/push"
    headers = { "X-Scope-OrgID" = sys.env("TENANT") }
  }

  external_labels = { "cluster" = "lab-talos" }
}
"""


def _translate(tmp_path: Path, text: str):
    config = load({"main.alloy": text}, PodContext({"TENANT": "lab"}, lambda path: "", "alloy-1"))
    translator = Translator(
        config, SNAPSHOT, "monitoring", lambda p: tmp_path / p.lstrip("/"), tmp_path / "s", tmp_path / "t", True
    )
    return translator.translate(Replica(1, 3), [])


def _promtool(tmp_path: Path, config: dict) -> subprocess.CompletedProcess:
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    for target in tmp_path.glob("t/*.json"):
        target.touch()
    return subprocess.run(
        [PROMTOOL, "check", "config", "--syntax-only", str(path)], capture_output=True, text=True, check=False
    )


def test_an_alloy_pipeline_becomes_a_job_with_the_share_of_this_replica_and_a_routed_queue(tmp_path: Path) -> None:
    plan = _translate(tmp_path, CONFIG)
    (job,) = plan.jobs
    scrape = job.scrape_config()
    assert scrape["relabel_configs"][0] == {
        "target_label": "job",
        "replacement": "prometheus.scrape.ksm",
        "action": "replace",
    }
    assert {
        "source_labels": ["__meta_kubernetes_endpointslice_port_name"],
        "regex": "http",
        "action": "keep",
    } in scrape["relabel_configs"]
    hashmod = next(rule for rule in scrape["relabel_configs"] if rule["action"] == "hashmod")
    assert hashmod["modulus"] == 3 and "__address__" in hashmod["source_labels"]
    assert not any(name.startswith("__meta_") for name in hashmod["source_labels"])
    assert {"source_labels": ["__tmp_lab_shard"], "regex": "1", "action": "keep"} in scrape["relabel_configs"]
    (queue,) = plan.queues
    remote = queue.remote_write()
    assert remote["url"] == "http://127.0.0.1:8080/gateway/lab/api/v1/push"
    rules = remote["write_relabel_configs"]
    assert rules[2]["source_labels"] == ["container_id"] and rules[2]["regex"] == "containerd://(.+)"
    assert rules[3] == {
        "source_labels": ["cluster"],
        "regex": "",
        "target_label": "cluster",
        "replacement": "lab-talos",
        "action": "replace",
    }
    checked = _promtool(tmp_path, agent_config(plan.jobs, plan.queues))
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.parametrize(
    ("extra", "component", "words"),
    [
        ('prometheus.exporter.self "me" { }\n', "prometheus.exporter.self.me", "does not run prometheus.exporter.self"),
        (
            'prometheus.scrape "slow" {\n  targets = []\n  forward_to = []\n  scrape_interval = "1s"\n}\n',
            "prometheus.scrape.slow",
            'scrape_timeout (10s) greater than scrape_interval (1s) for scrape config with job name ""',
        ),
    ],
)
def test_what_the_lab_cannot_run_is_an_error_naming_the_component(
    tmp_path: Path, extra: str, component: str, words: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        _translate(tmp_path, CONFIG + extra)
    assert raised.value.component == component
    assert words in str(raised.value)


def test_an_otel_collector_config_expands_env_and_keeps_its_node_label(tmp_path: Path) -> None:
    text = """
receivers:
  prometheus:
    config:
      scrape_configs:
        - job_name: containerd
          scrape_interval: 5s
          metrics_path: /v1/metrics
          static_configs: [{targets: ['127.0.0.1:11234']}]
          relabel_configs:
            - {target_label: node, replacement: '${env:NODE_NAME}'}
            - {source_labels: [__address__], regex: '(.*):.*', target_label: host, replacement: '$$1'}
exporters:
  prometheusremotewrite:
    endpoint: http://127.0.0.1:8080/api/v1/push
    headers: {X-Scope-OrgID: lab}
    external_labels: {source: otel}
service:
  pipelines:
    metrics: {receivers: [prometheus], exporters: [prometheusremotewrite]}
"""
    config = otel.load(text, {"NODE_NAME": "talos-worker-1"})
    plan = otel.translate(config, "otel-abc", "127.0.11.1", "o0", True)
    (job,) = plan.jobs
    scrape = job.scrape_config()
    assert scrape["scrape_timeout"] == "5000ms", "the timeout defaults to the interval when the interval is shorter"
    assert {"target_label": "node", "replacement": "talos-worker-1", "action": "replace"} in scrape["relabel_configs"]
    assert any(rule.get("replacement") == "$1" for rule in scrape["relabel_configs"]), "$$ is a literal $"
    assert scrape["relabel_configs"][-2]["replacement"] == "127.0.11.1:$1", "loopback is the node's own address"
    (queue,) = plan.queues
    assert queue.url == "http://127.0.0.1:8080/gateway/lab/api/v1/push"
    checked = _promtool(tmp_path, agent_config(plan.jobs, plan.queues))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_durations_read_and_print_as_go_does() -> None:
    assert go_duration("1m30s") == 90 and go_duration("250ms") == 0.25 and go_duration("1.5s") == 1.5
    assert [go_format_duration(v) for v in (10, 60, 90, 0.25, 3600)] == ["10s", "1m0s", "1m30s", "250ms", "1h0m0s"]
    with pytest.raises(ValueError, match="invalid duration"):
        go_duration("10 seconds")


def test_rbac_grants_through_cluster_and_namespaced_bindings() -> None:
    account = rbac.ServiceAccount("monitoring", "alloy")
    objects = {
        "clusterroles.rbac.authorization.k8s.io": [
            {"metadata": {"name": "reader"}, "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}]},
            {
                "metadata": {"name": "metrics"},
                "rules": [{"apiGroups": [""], "resources": ["*/metrics"], "verbs": ["*"]}],
            },
        ],
        "clusterrolebindings.rbac.authorization.k8s.io": [
            {
                "metadata": {"name": "b"},
                "roleRef": {"kind": "ClusterRole", "name": "metrics"},
                "subjects": [{"kind": "Group", "name": "system:serviceaccounts:monitoring"}],
            }
        ],
        "rolebindings.rbac.authorization.k8s.io": [
            {
                "metadata": {"name": "r", "namespace": "shop"},
                "roleRef": {"kind": "ClusterRole", "name": "reader"},
                "subjects": [{"kind": "ServiceAccount", "name": "alloy", "namespace": "monitoring"}],
            }
        ],
    }

    def lister(key: str, namespace: str | None) -> list[dict]:
        found = objects.get(key, [])
        return [o for o in found if namespace is None or o["metadata"].get("namespace") == namespace]

    assert rbac.allowed(lister, account, "get", "", "nodes/metrics")
    assert not rbac.allowed(lister, account, "get", "", "nodes/proxy")
    assert rbac.allowed(lister, account, "list", "", "pods", "shop")
    assert not rbac.allowed(lister, account, "list", "", "pods"), "a RoleBinding grants nothing cluster-wide"
    assert not rbac.allowed(lister, account, "watch", "", "pods", "shop")
    assert rbac.forbidden_message(account, "list", "", "pods", None) == (
        'pods is forbidden: User "system:serviceaccount:monitoring:alloy" cannot list resource "pods" '
        'in API group "" at the cluster scope'
    )
