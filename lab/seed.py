"""The cluster as the lab starts it: nodes, kube-system, a running kube-prometheus-stack with HA
Prometheus, a cAdvisor DaemonSet, and application workloads."""

from __future__ import annotations

from lab.config import LabConfig
from lab.k8s.api import Api, Options

MONITORING_CRDS = {
    # plural: (kind, short names, has status subresource)
    "alertmanagerconfigs": ("AlertmanagerConfig", ["amcfg"], False),
    "alertmanagers": ("Alertmanager", ["am"], True),
    "podmonitors": ("PodMonitor", ["pmon"], False),
    "probes": ("Probe", ["prb"], False),
    "prometheusagents": ("PrometheusAgent", ["promagent"], True),
    "prometheuses": ("Prometheus", ["prom"], True),
    "prometheusrules": ("PrometheusRule", ["promrule"], False),
    "scrapeconfigs": ("ScrapeConfig", ["scfg"], False),
    "servicemonitors": ("ServiceMonitor", ["smon"], False),
    "thanosrulers": ("ThanosRuler", ["ruler"], True),
}
CHART = "kube-prometheus-stack-77.12.0"
OPERATOR_VERSION = "v0.86.1"


def crd(plural: str, kind: str, short: list[str], status: bool) -> dict:
    version = "v1alpha1" if kind in ("AlertmanagerConfig", "PrometheusAgent", "ScrapeConfig") else "v1"
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.monitoring.coreos.com",
            "annotations": {"operator.prometheus.io/version": OPERATOR_VERSION.lstrip("v")},
        },
        "spec": {
            "group": "monitoring.coreos.com",
            "scope": "Namespaced",
            "names": {
                "plural": plural,
                "singular": kind.lower(),
                "kind": kind,
                "listKind": f"{kind}List",
                "shortNames": short,
                "categories": ["prometheus-operator"],
            },
            "versions": [
                {
                    "name": version,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
                    **({"subresources": {"status": {}}} if status else {}),
                }
            ],
        },
    }


class Seeder:
    def __init__(self, api: Api, config: LabConfig) -> None:
        self.api = api
        self.config = config
        self.release = config.legacy_release
        self.fullname = (
            self.release if "kube-prometheus-stack" in self.release else (f"{self.release}-kube-prometheus-stack")[:26]
        )

    def create(self, obj: dict) -> dict:
        rtype = self.api.type_of(obj["apiVersion"], obj["kind"])
        namespace = obj["metadata"].get("namespace", "")
        existing = self.api.store.get(rtype.key, namespace, obj["metadata"]["name"])
        return existing or self.api.create(rtype, namespace, obj, Options())

    def helm_meta(self, name: str, namespace: str, app: str, **extra_labels: str) -> dict:
        return {
            "name": name,
            "namespace": namespace,
            "labels": {
                "app": app,
                "release": self.release,
                "chart": CHART,
                "heritage": "Helm",
                "app.kubernetes.io/managed-by": "Helm",
                "app.kubernetes.io/instance": self.release,
                "app.kubernetes.io/part-of": "kube-prometheus-stack",
                **extra_labels,
            },
            "annotations": {
                "meta.helm.sh/release-name": self.release,
                "meta.helm.sh/release-namespace": self.config.namespace,
            },
        }

    def run(self) -> None:
        for name in ("kube-system", "kube-public", "default", *self.config.apps):
            self.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        # Talos enforces the baseline Pod Security level by default; node-exporter's hostNetwork needs
        # the monitoring namespace labelled privileged, as operators of such clusters do.
        self.create(
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {
                    "name": self.config.namespace,
                    "labels": {"pod-security.kubernetes.io/enforce": "privileged"},
                },
            }
        )
        for plural, (kind, short, status) in MONITORING_CRDS.items():
            self.create(crd(plural, kind, short, status))
        self.kube_system()
        self.legacy_stack()
        self.cadvisor()
        self.apps()

    # -- kube-system ----------------------------------------------------------------------------
    def kube_system(self) -> None:
        self.create(
            deployment(
                "coredns",
                "kube-system",
                {"k8s-app": "kube-dns"},
                "registry.k8s.io/coredns/coredns:v1.12.1",
                2,
                ports=[("dns", 53), ("metrics", 9153)],
                tolerations=[
                    {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}
                ],
            )
        )
        self.create(
            service(
                "kube-dns",
                "kube-system",
                {"k8s-app": "kube-dns"},
                [("dns", 53), ("metrics", 9153)],
                labels={"k8s-app": "kube-dns"},
            )
        )
        self.create(
            daemonset(
                "kube-proxy",
                "kube-system",
                {"k8s-app": "kube-proxy"},
                "registry.k8s.io/kube-proxy:v1.32.4",
                host_network=True,
                tolerations=[{"operator": "Exists"}],
            )
        )
        self.create(
            daemonset(
                "kube-flannel",
                "kube-system",
                {"k8s-app": "flannel"},
                "ghcr.io/siderolabs/flannel:v0.26.7",
                host_network=True,
                tolerations=[{"operator": "Exists"}],
            )
        )

    # -- kube-prometheus-stack ------------------------------------------------------------------
    def legacy_stack(self) -> None:
        ns, rel, full = self.config.namespace, self.release, self.fullname
        operator = deployment(
            f"{full}-operator",
            ns,
            {"app": f"{full}-operator", "release": rel},
            f"quay.io/prometheus-operator/prometheus-operator:{OPERATOR_VERSION}",
            1,
            ports=[("https", 10250)],
        )
        operator["metadata"] = self.helm_meta(f"{full}-operator", ns, "kube-prometheus-stack-operator")
        operator["spec"]["template"]["metadata"]["labels"]["app"] = "kube-prometheus-stack-operator"
        operator["spec"]["selector"]["matchLabels"]["app"] = "kube-prometheus-stack-operator"
        self.create(operator)
        self.create(
            {
                "apiVersion": "monitoring.coreos.com/v1",
                "kind": "Prometheus",
                "metadata": self.helm_meta(f"{full}-prometheus", ns, "kube-prometheus-stack-prometheus"),
                "spec": {
                    "replicas": 3,
                    "version": "v3.5.0",
                    "image": "quay.io/prometheus/prometheus:v3.5.0",
                    "scrapeInterval": "30s",
                    "evaluationInterval": "30s",
                    "replicaExternalLabelName": "__replica__",
                    "prometheusExternalLabelName": "cluster",
                    "externalLabels": {"cluster": self.config.cluster_name},
                    "remoteWrite": [
                        {
                            "url": "http://mimir-distributor.mimir.svc:8080/api/v1/push",
                            "headers": {"X-Scope-OrgID": self.config.cluster_name},
                        }
                    ],
                    "serviceAccountName": f"{full}-prometheus",
                    "serviceMonitorSelector": {"matchLabels": {"release": rel}},
                    "podMonitorSelector": {"matchLabels": {"release": rel}},
                    "ruleSelector": {"matchLabels": {"release": rel}},
                    "storage": {"volumeClaimTemplate": {"spec": {"resources": {"requests": {"storage": "50Gi"}}}}},
                    "resources": {"requests": {"cpu": "2", "memory": "6Gi"}},
                },
            }
        )
        self.create(
            {
                "apiVersion": "monitoring.coreos.com/v1",
                "kind": "Alertmanager",
                "metadata": self.helm_meta(f"{full}-alertmanager", ns, "kube-prometheus-stack-alertmanager"),
                "spec": {"replicas": 1, "version": "v0.28.1", "image": "quay.io/prometheus/alertmanager:v0.28.1"},
            }
        )
        ksm = deployment(
            f"{rel}-kube-state-metrics",
            ns,
            {"app.kubernetes.io/name": "kube-state-metrics", "app.kubernetes.io/instance": rel},
            "registry.k8s.io/kube-state-metrics/kube-state-metrics:v2.16.0",
            1,
            ports=[("http", 8080)],
        )
        ksm["metadata"]["labels"] = {
            **self.helm_meta(ksm["metadata"]["name"], ns, "kube-state-metrics")["labels"],
            "app.kubernetes.io/name": "kube-state-metrics",
        }
        self.create(ksm)
        exporter = daemonset(
            f"{rel}-prometheus-node-exporter",
            ns,
            {"app.kubernetes.io/name": "prometheus-node-exporter", "app.kubernetes.io/instance": rel},
            "quay.io/prometheus/node-exporter:v1.9.1",
            host_network=True,
            tolerations=[{"operator": "Exists", "effect": "NoSchedule"}],
            ports=[("http-metrics", 9100)],
        )
        exporter["metadata"]["labels"] = {
            **self.helm_meta(exporter["metadata"]["name"], ns, "prometheus-node-exporter")["labels"],
            "app.kubernetes.io/name": "prometheus-node-exporter",
        }
        self.create(exporter)
        self.create(
            deployment(
                f"{rel}-grafana",
                ns,
                {"app.kubernetes.io/name": "grafana", "app.kubernetes.io/instance": rel},
                "docker.io/grafana/grafana:12.1.1",
                1,
                ports=[("http", 3000)],
            )
        )
        for name, selector, ports in (
            (f"{full}-prometheus", {"app.kubernetes.io/name": "prometheus"}, [("http-web", 9090)]),
            (f"{full}-alertmanager", {"app.kubernetes.io/name": "alertmanager"}, [("http-web", 9093)]),
            (f"{full}-operator", {"app": "kube-prometheus-stack-operator"}, [("https", 443)]),
            (
                f"{rel}-kube-state-metrics",
                {"app.kubernetes.io/name": "kube-state-metrics", "app.kubernetes.io/instance": rel},
                [("http", 8080)],
            ),
            (
                f"{rel}-prometheus-node-exporter",
                {"app.kubernetes.io/name": "prometheus-node-exporter", "app.kubernetes.io/instance": rel},
                [("http-metrics", 9100)],
            ),
            (
                f"{rel}-grafana",
                {"app.kubernetes.io/name": "grafana", "app.kubernetes.io/instance": rel},
                [("http-web", 80)],
            ),
        ):
            svc = service(name, ns, selector, ports)
            svc["metadata"] = self.helm_meta(name, ns, name.replace(f"{rel}-", "kube-prometheus-stack-"))
            if name.startswith(f"{rel}-"):
                # Subchart Services (kube-state-metrics, node-exporter, grafana) carry their chart's
                # standard labels: name = the chart, instance = the release.
                svc["metadata"]["labels"] |= selector
            self.create(svc)
        kubelet_svc = service(
            f"{full}-kubelet",
            "kube-system",
            {},
            [("https-metrics", 10250), ("http-metrics", 10255), ("cadvisor", 4194)],
            headless=True,
        )
        kubelet_svc["metadata"]["labels"] = {
            "app.kubernetes.io/managed-by": "prometheus-operator",
            "app.kubernetes.io/name": "kubelet",
            "k8s-app": "kubelet",
        }
        self.create(kubelet_svc)
        self.create(
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": self.helm_meta(f"{full}-prometheus", ns, "kube-prometheus-stack-prometheus"),
            }
        )
        self.service_monitors()
        self.prometheus_rules()

    def service_monitors(self) -> None:
        ns, full = self.config.namespace, self.fullname
        monitors = {
            "kubelet": (
                {"app.kubernetes.io/name": "kubelet"},
                ["kube-system"],
                [
                    {"port": "https-metrics", "scheme": "https", "path": "/metrics", "honorLabels": True},
                    {"port": "https-metrics", "scheme": "https", "path": "/metrics/cadvisor", "honorLabels": True},
                ],
            ),
            "kube-state-metrics": (
                {"app.kubernetes.io/name": "kube-state-metrics"},
                [ns],
                [{"port": "http", "honorLabels": True}],
            ),
            "node-exporter": ({"app.kubernetes.io/name": "prometheus-node-exporter"}, [ns], [{"port": "http-metrics"}]),
            "operator": ({"app": "kube-prometheus-stack-operator"}, [ns], [{"port": "https", "scheme": "https"}]),
            "prometheus": ({"app.kubernetes.io/name": "prometheus"}, [ns], [{"port": "http-web"}]),
            "alertmanager": ({"app.kubernetes.io/name": "alertmanager"}, [ns], [{"port": "http-web"}]),
            "coredns": ({"k8s-app": "kube-dns"}, ["kube-system"], [{"port": "metrics"}]),
            "apiserver": ({"component": "apiserver"}, ["default"], [{"port": "https", "scheme": "https"}]),
        }
        for short, (labels, namespaces, endpoints) in monitors.items():
            self.create(
                {
                    "apiVersion": "monitoring.coreos.com/v1",
                    "kind": "ServiceMonitor",
                    "metadata": self.helm_meta(f"{full}-{short}", ns, f"kube-prometheus-stack-{short}"),
                    "spec": {
                        "selector": {"matchLabels": labels},
                        "namespaceSelector": {"matchNames": namespaces},
                        "endpoints": [{"interval": "30s", **e} for e in endpoints],
                        "jobLabel": "app.kubernetes.io/name",
                    },
                }
            )

    def prometheus_rules(self) -> None:
        ns, full = self.config.namespace, self.fullname
        rules = {
            "kubernetes-apps": [
                {
                    "alert": "KubePodCrashLooping",
                    "expr": (
                        'max_over_time(kube_pod_container_status_waiting_reason{reason="CrashLoopBackOff"}[5m]) >= 1'
                    ),
                    "for": "15m",
                    "labels": {"severity": "warning"},
                },
                {
                    "alert": "KubeDeploymentReplicasMismatch",
                    "expr": "kube_deployment_spec_replicas != kube_deployment_status_replicas_available",
                    "for": "15m",
                    "labels": {"severity": "warning"},
                },
            ],
            "k8s.rules.container-cpu-usage-seconds-total": [
                {
                    "record": "node_namespace_pod_container:container_cpu_usage_seconds_total:sum_irate",
                    "expr": "sum by (cluster, namespace, pod, container) (irate(container_cpu_usage_seconds_total"
                    '{job="kubelet", metrics_path="/metrics/cadvisor", image!=""}[5m]))',
                },
            ],
            "node-exporter": [
                {
                    "alert": "NodeFilesystemAlmostOutOfSpace",
                    "expr": 'node_filesystem_avail_bytes{job="node-exporter",fstype!=""} / '
                    'node_filesystem_size_bytes{job="node-exporter",fstype!=""} * 100 < 5',
                    "for": "30m",
                    "labels": {"severity": "warning"},
                },
            ],
        }
        for name, group_rules in rules.items():
            self.create(
                {
                    "apiVersion": "monitoring.coreos.com/v1",
                    "kind": "PrometheusRule",
                    "metadata": self.helm_meta(f"{full}-{name.replace('.', '-')}", ns, "kube-prometheus-stack"),
                    "spec": {"groups": [{"name": name, "rules": group_rules}]},
                }
            )

    def cadvisor(self) -> None:
        self.create(
            daemonset(
                "cadvisor",
                self.config.namespace,
                {"app.kubernetes.io/name": "cadvisor"},
                "gcr.io/cadvisor/cadvisor:v0.52.1",
                host_network=False,
                tolerations=[{"operator": "Exists"}],
                ports=[("http", 8080)],
            )
        )

    def apps(self) -> None:
        for namespace, workloads in self.config.apps.items():
            for name, replicas in workloads.items():
                labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": namespace}
                dep = deployment(
                    name,
                    namespace,
                    labels,
                    f"registry.example.com/{namespace}/{name}:1.4.2",
                    replicas,
                    ports=[("http", 8080)],
                )
                dep["spec"]["template"]["metadata"]["annotations"] = {
                    "prometheus.io/scrape": "true",
                    "prometheus.io/port": "8080",
                }
                self.create(dep)
                self.create(service(name, namespace, labels, [("http", 8080)]))
                if replicas > 1:
                    self.create(
                        {
                            "apiVersion": "policy/v1",
                            "kind": "PodDisruptionBudget",
                            "metadata": {"name": name, "namespace": namespace},
                            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": labels}},
                        }
                    )


def _ports(ports: list[tuple[str, int]]) -> list[dict]:
    return [{"name": name, "containerPort": port} for name, port in ports]


def deployment(
    name: str,
    namespace: str,
    labels: dict,
    image: str,
    replicas: int,
    ports: list[tuple[str, int]] = (),
    tolerations: list[dict] = (),
) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": dict(labels)},
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {
                    "containers": [
                        {
                            "name": name.rsplit("-", 1)[-1] if "-" in name else name,
                            "image": image,
                            "ports": _ports(ports),
                        }
                    ],
                    **({"tolerations": list(tolerations)} if tolerations else {}),
                },
            },
        },
    }


def daemonset(
    name: str,
    namespace: str,
    labels: dict,
    image: str,
    host_network: bool,
    tolerations: list[dict] = (),
    ports: list[tuple[str, int]] = (),
) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "spec": {
            "selector": {"matchLabels": dict(labels)},
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {
                    "hostNetwork": host_network,
                    "tolerations": list(tolerations),
                    "containers": [{"name": name.rsplit("-", 1)[-1], "image": image, "ports": _ports(ports)}],
                },
            },
        },
    }


def service(
    name: str,
    namespace: str,
    selector: dict,
    ports: list[tuple[str, int]],
    labels: dict | None = None,
    headless: bool = False,
) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels or selector)},
        "spec": {
            **({"selector": dict(selector)} if selector else {}),
            **({"clusterIP": "None"} if headless else {}),
            "ports": [{"name": n, "port": p, "targetPort": n if selector else p} for n, p in ports],
        },
    }
