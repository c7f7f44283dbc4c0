"""What the fake endpoints expose, computed from the cluster state at scrape time.

Counters grow with wall time at a steady, per-series rate (so `rate()` is non-zero); gauges wobble
around a per-series level. Rates and levels derive from a hash of the series' identity, so two
scrapes of the same endpoint agree and every replica of a scraper sees the same values.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from lab.metrics.exposition import Family, LabelSet

MIB = 1024 * 1024
CONTAINERD_NAMESPACE = "k8s.io"


def unit(key: str) -> float:
    """A stable number in [0, 1) for a key."""
    return zlib.crc32(key.encode()) / 2**32


@dataclass(frozen=True)
class Container:
    """A running container as the pod's status reports it."""

    namespace: str
    pod: str
    pod_uid: str
    name: str
    image: str
    image_id: str
    container_id: str  # bare id, without the `containerd://` runtime prefix
    qos: str
    node: str
    restarts: int

    @property
    def cgroup(self) -> str:
        return f"{_pod_cgroup(self.qos, self.pod_uid)}/{self.container_id}"

    def cpu_cores(self) -> float:
        return 0.01 + 0.25 * unit(self.container_id + "cpu")

    def memory_bytes(self, now: float) -> float:
        level = (20 + 280 * unit(self.container_id + "mem")) * MIB
        return round(level * (1 + 0.05 * math.sin(now / 60 + 10 * unit(self.container_id))))

    def throttle_ratio(self) -> float:
        return 0.3 * unit(self.container_id + "throttle")


def _pod_cgroup(qos: str, uid: str) -> str:
    tier = "" if qos == "guaranteed" else f"/{qos}"
    return f"/kubepods{tier}/pod{uid}"


def _qos(pod: dict) -> str:
    return str(pod.get("status", {}).get("qosClass", "BestEffort")).lower()


def running_containers(pods: Iterable[dict]) -> list[Container]:
    """Containers with a running state and a runtime id, as the kubelet reports them."""
    found = []
    for pod in pods:
        meta, spec = pod.get("metadata", {}), pod.get("spec", {})
        images = {item.get("name"): item.get("image", "") for item in spec.get("containers", [])}
        for status in pod.get("status", {}).get("containerStatuses") or []:
            container_id = str(status.get("containerID") or "")
            if "running" not in (status.get("state") or {}) or "://" not in container_id:
                continue
            found.append(
                Container(
                    namespace=meta.get("namespace", "default"),
                    pod=meta.get("name", ""),
                    pod_uid=meta.get("uid", ""),
                    name=status.get("name", ""),
                    image=status.get("image") or images.get(status.get("name"), ""),
                    image_id=status.get("imageID", ""),
                    container_id=container_id.split("://", 1)[1],
                    qos=_qos(pod),
                    node=spec.get("nodeName", ""),
                    restarts=int(status.get("restartCount", 0)),
                )
            )
    return found


# --- cAdvisor (kubelet /metrics/cadvisor and the standalone DaemonSet) ----------------------------

CadvisorLabels = Callable[[Container | None, str, str, str], dict[str, str]]


def kubelet_cadvisor_labels(container: Container | None, namespace: str, pod: str, cgroup: str) -> dict[str, str]:
    """The kubelet's labels: pod-level cgroups have empty container, image and name."""
    return {
        "container": container.name if container else "",
        "id": cgroup,
        "image": container.image if container else "",
        "name": container.container_id if container else "",
        "namespace": namespace,
        "pod": pod,
    }


def standalone_cadvisor_labels(container: Container | None, namespace: str, pod: str, cgroup: str) -> dict[str, str]:
    """Standalone cAdvisor names Kubernetes objects through the runtime's container labels."""
    labels = {"id": cgroup, "image": container.image if container else "", "name": ""}
    if container:
        labels |= {
            "container_label_io_kubernetes_container_name": container.name,
            "container_label_io_kubernetes_pod_name": pod,
            "container_label_io_kubernetes_pod_namespace": namespace,
            "container_label_io_kubernetes_pod_uid": container.pod_uid,
            "name": container.container_id,
        }
    return labels


def cadvisor_families(containers: list[Container], now: float, uptime: float, label: CadvisorLabels) -> list[Family]:
    families = {
        name: Family(name, kind, text)
        for name, kind, text in (
            ("container_cpu_usage_seconds_total", "counter", "Cumulative cpu time consumed in seconds."),
            ("container_cpu_user_seconds_total", "counter", "Cumulative user cpu time consumed in seconds."),
            (
                "container_cpu_system_seconds_total",
                "counter",
                "Cumulative system cpu time consumed in seconds.",
            ),
            ("container_cpu_cfs_periods_total", "counter", "Number of elapsed enforcement period intervals."),
            ("container_cpu_cfs_throttled_periods_total", "counter", "Number of throttled period intervals."),
            (
                "container_cpu_cfs_throttled_seconds_total",
                "counter",
                "Total time duration the container has been throttled.",
            ),
            ("container_memory_working_set_bytes", "gauge", "Current working set in bytes."),
            ("container_memory_rss", "gauge", "Size of RSS in bytes."),
            (
                "container_memory_usage_bytes",
                "gauge",
                "Current memory usage in bytes, including all memory regardless of when it was accessed",
            ),
            ("container_network_receive_bytes_total", "counter", "Cumulative count of bytes received"),
            ("container_network_transmit_bytes_total", "counter", "Cumulative count of bytes transmitted"),
        )
    }
    pods: dict[tuple[str, str, str, str], list[Container]] = {}
    for container in containers:
        pods.setdefault((container.namespace, container.pod, container.pod_uid, container.qos), []).append(container)
        _container_cadvisor(
            families,
            label(container, container.namespace, container.pod, container.cgroup),
            container,
            now,
            uptime,
        )
    for (namespace, pod, uid, qos), members in pods.items():
        labels = label(None, namespace, pod, _pod_cgroup(qos, uid))
        cpu = sum(member.cpu_cores() for member in members) * uptime
        memory = sum(member.memory_bytes(now) for member in members)
        families["container_cpu_usage_seconds_total"].add(labels, round(cpu, 6))
        families["container_memory_working_set_bytes"].add(labels, memory)
        network = {**labels, "interface": "eth0"}
        traffic = 2000 + 50000 * unit(uid)
        families["container_network_receive_bytes_total"].add(network, round(traffic * uptime))
        families["container_network_transmit_bytes_total"].add(network, round(traffic * 0.6 * uptime))
    return list(families.values())


def _container_cadvisor(
    families: dict[str, Family], labels: LabelSet, container: Container, now: float, uptime: float
) -> None:
    cpu = container.cpu_cores() * uptime
    periods = math.floor(uptime * 10)  # 100 ms CFS periods
    throttled = math.floor(periods * container.throttle_ratio())
    memory = container.memory_bytes(now)
    for name, value in (
        ("container_cpu_usage_seconds_total", round(cpu, 6)),
        ("container_cpu_user_seconds_total", round(cpu * 0.7, 6)),
        ("container_cpu_system_seconds_total", round(cpu * 0.3, 6)),
        ("container_cpu_cfs_periods_total", periods),
        ("container_cpu_cfs_throttled_periods_total", throttled),
        ("container_cpu_cfs_throttled_seconds_total", round(throttled * 0.02, 3)),
        ("container_memory_working_set_bytes", memory),
        ("container_memory_rss", round(memory * 0.8)),
        ("container_memory_usage_bytes", round(memory * 1.2)),
    ):
        families[name].add(labels, value)


# --- containerd /v1/metrics ---------------------------------------------------------------------


def containerd_families(containers: list[Container], now: float, uptime: float) -> list[Family]:
    """containerd's cgroup v2 metrics (all gauges), per container id in the k8s.io namespace."""
    rows: list[tuple[str, str, Callable[[Container], float]]] = [
        (
            "container_cpu_usage_usec_microseconds",
            "The total cpu usage",
            lambda c: round(c.cpu_cores() * uptime * 1e6),
        ),
        (
            "container_cpu_user_usec_microseconds",
            "The user cpu usage",
            lambda c: round(c.cpu_cores() * uptime * 0.7e6),
        ),
        (
            "container_cpu_system_usec_microseconds",
            "The system cpu usage",
            lambda c: round(c.cpu_cores() * uptime * 0.3e6),
        ),
        ("container_cpu_nr_periods_total", "The total number of periods", lambda c: math.floor(uptime * 10)),
        (
            "container_cpu_nr_throttled_total",
            "The total number of throttled periods",
            lambda c: math.floor(uptime * 10 * c.throttle_ratio()),
        ),
        (
            "container_cpu_throttled_usec_microseconds",
            "The total throttled cpu time",
            lambda c: round(uptime * 10 * c.throttle_ratio() * 2e4),
        ),
        ("container_memory_usage_bytes", "Current memory usage (cgroup v2)", lambda c: c.memory_bytes(now)),
        ("container_memory_usage_limit_bytes", "Current memory usage limit (cgroup v2)", lambda c: 512 * MIB),
        (
            "container_memory_oom_total",
            "The number of times a container has received an oom event",
            lambda c: 0,
        ),
        (
            "container_pids_current",
            "The current number of pids",
            lambda c: 1 + math.floor(20 * unit(c.container_id + "pids")),
        ),
        ("container_pids_limit", "The limit to the number of pids allowed", lambda c: 4096),
        (
            "container_io_rbytes_bytes",
            "IO bytes read",
            lambda c: round(uptime * 4096 * (1 + 50 * unit(c.container_id + "r"))),
        ),
        (
            "container_io_wbytes_bytes",
            "IO bytes written",
            lambda c: round(uptime * 4096 * (1 + 20 * unit(c.container_id + "w"))),
        ),
    ]
    families = []
    for name, text, value in rows:
        family = Family(name, "gauge", text)
        for container in containers:
            family.add({"container_id": container.container_id, "namespace": CONTAINERD_NAMESPACE}, value(container))
        families.append(family)
    return families


# --- kubelet /metrics -----------------------------------------------------------------------------


def kubelet_families(node: str, containers: list[Container], uptime: float) -> list[Family]:
    node_name = Family("kubelet_node_name", "gauge", "The node's name. The count is always 1.")
    node_name.add({"node": node}, 1)
    running_pods = Family("kubelet_running_pods", "gauge", "Number of pods that have a running pod sandbox")
    running_pods.add({}, len({(c.namespace, c.pod) for c in containers}))
    running = Family("kubelet_running_containers", "gauge", "Number of containers currently running")
    running.add({"container_state": "running"}, len(containers))
    operations = Family(
        "kubelet_runtime_operations_total",
        "counter",
        "Cumulative number of runtime operations by operation type.",
    )
    for operation, per_second in (
        ("container_status", 2.0),
        ("list_containers", 1.0),
        ("list_podsandbox", 1.0),
    ):
        operations.add({"operation_type": operation}, math.floor(uptime * per_second))
    cpu = Family("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.")
    cpu.add({}, round(uptime * 0.05, 3))
    return [node_name, running_pods, running, operations, cpu]


# --- node-exporter ---------------------------------------------------------------------------------


def node_exporter_families(node: str, address: str, now: float, uptime: float, cpus: int = 2) -> list[Family]:
    cpu = Family("node_cpu_seconds_total", "counter", "Seconds the CPUs spent in each mode.")
    for index in range(cpus):
        for mode, share in (("idle", 0.8), ("user", 0.12), ("system", 0.06), ("iowait", 0.02)):
            cpu.add({"cpu": str(index), "mode": mode}, round(uptime * share, 2))
    total = (8 + 8 * math.floor(4 * unit(node))) * 1024 * MIB
    gauges = [
        ("node_memory_MemTotal_bytes", "Memory information field MemTotal_bytes.", total),
        (
            "node_memory_MemAvailable_bytes",
            "Memory information field MemAvailable_bytes.",
            round(total * (0.6 + 0.05 * math.sin(now / 120))),
        ),
        ("node_load1", "1m load average.", round(0.5 + 0.3 * math.sin(now / 30), 2)),
        ("node_boot_time_seconds", "Node boot time, in unixtime.", round(now - uptime - 3600)),
    ]
    families = [cpu]
    for name, text, value in gauges:
        family = Family(name, "gauge", text)
        family.add({}, value)
        families.append(family)
    for direction, per_second in (("receive", 80000), ("transmit", 50000)):
        network = Family(
            f"node_network_{direction}_bytes_total", "counter", f"Network device statistic {direction}_bytes."
        )
        network.add({"device": "eth0"}, round(uptime * per_second))
        families.append(network)
    uname = Family("node_uname_info", "gauge", "Labeled system information as provided by the uname system call.")
    uname.add(
        {
            "machine": "x86_64",
            "nodename": node,
            "release": "6.12.6-talos",
            "sysname": "Linux",
            "address": address,
        },
        1,
    )
    families.append(uname)
    return families


# --- an application's own /metrics ---------------------------------------------------------------------------


def application_families(pod: dict, now: float, uptime: float) -> list[Family]:
    """What a typical instrumented web service exposes: requests by code, latency, its process."""
    key = pod["metadata"].get("uid", "")
    rate = 5 + 45 * unit(key + "rps")
    requests = Family("http_requests_total", "counter", "Total HTTP requests handled.")
    for code, share in (("200", 0.97), ("404", 0.02), ("500", 0.01)):
        requests.add({"code": code, "method": "GET"}, math.floor(uptime * rate * share))
    latency = Family("http_request_duration_seconds", "histogram", "HTTP request latency.")
    total = math.floor(uptime * rate)
    for bound, share in (("0.05", 0.7), ("0.1", 0.9), ("0.5", 0.99), ("1", 1.0)):
        latency.add({"le": bound}, math.floor(total * share), "_bucket")
    latency.add({"le": "+Inf"}, total, "_bucket")
    latency.add({}, round(total * 0.04, 3), "_sum")
    latency.add({}, total, "_count")
    cpu = Family("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.")
    cpu.add({}, round(uptime * (0.02 + 0.2 * unit(key + "cpu")), 3))
    memory = Family("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.")
    memory.add({}, round((40 + 200 * unit(key + "mem")) * MIB * (1 + 0.03 * math.sin(now / 90))))
    return [requests, latency, cpu, memory]


# --- kube-state-metrics --------------------------------------------------------------------------


def _pod_ready(pod: dict) -> str:
    conditions = pod.get("status", {}).get("conditions") or []
    ready = next((c.get("status") for c in conditions if c.get("type") == "Ready"), "Unknown")
    return {"True": "true", "False": "false"}.get(str(ready), "unknown")


def _owner(meta: dict) -> tuple[str, str]:
    owners = meta.get("ownerReferences") or [{}]
    return owners[0].get("kind", "<none>"), owners[0].get("name", "<none>")


def ksm_pod_families(pods: list[dict]) -> list[Family]:
    info = Family("kube_pod_info", "gauge", "Information about pod.")
    phase = Family("kube_pod_status_phase", "gauge", "The pods current phase.")
    ready = Family("kube_pod_status_ready", "gauge", "Describes whether the pod is ready to serve requests.")
    container_info = Family("kube_pod_container_info", "gauge", "Information about a container in a pod.")
    running = Family(
        "kube_pod_container_status_running",
        "gauge",
        "Describes whether the container is currently in running state.",
    )
    restarts = Family(
        "kube_pod_container_status_restarts_total",
        "counter",
        "The number of container restarts per container.",
    )
    for pod in pods:
        meta, spec, status = pod.get("metadata", {}), pod.get("spec", {}), pod.get("status", {})
        ident = {
            "namespace": meta.get("namespace", "default"),
            "pod": meta.get("name", ""),
            "uid": meta.get("uid", ""),
        }
        kind, owner = _owner(meta)
        info.add(
            ident
            | {
                "host_ip": status.get("hostIP", ""),
                "pod_ip": status.get("podIP", ""),
                "node": spec.get("nodeName", ""),
                "created_by_kind": kind,
                "created_by_name": owner,
                "priority_class": spec.get("priorityClassName", ""),
                "host_network": str(bool(spec.get("hostNetwork"))).lower(),
            },
            1,
        )
        current = status.get("phase", "Pending")
        for name in ("Pending", "Succeeded", "Failed", "Unknown", "Running"):
            phase.add(ident | {"phase": name}, int(name == current))
        state = _pod_ready(pod)
        for condition in ("true", "false", "unknown"):
            ready.add(ident | {"condition": condition}, int(condition == state))
        images = {c.get("name"): c.get("image", "") for c in spec.get("containers", [])}
        for container in status.get("containerStatuses") or []:
            name = container.get("name", "")
            labels = ident | {"container": name}
            container_info.add(
                labels
                | {
                    "image_spec": images.get(name, ""),
                    "image": container.get("image", ""),
                    "image_id": container.get("imageID", ""),
                    "container_id": container.get("containerID", ""),
                },
                1,
            )
            running.add(labels, int("running" in (container.get("state") or {})))
            restarts.add(labels, int(container.get("restartCount", 0)))
    return [info, phase, ready, container_info, running, restarts]


def ksm_node_families(nodes: list[dict]) -> list[Family]:
    info = Family("kube_node_info", "gauge", "Information about a cluster node.")
    conditions = Family("kube_node_status_condition", "gauge", "The condition of a cluster node.")
    for node in nodes:
        name = node.get("metadata", {}).get("name", "")
        status = node.get("status", {})
        system = status.get("nodeInfo", {})
        addresses = {a.get("type"): a.get("address", "") for a in status.get("addresses") or []}
        info.add(
            {
                "node": name,
                "kernel_version": system.get("kernelVersion", ""),
                "os_image": system.get("osImage", ""),
                "container_runtime_version": system.get("containerRuntimeVersion", ""),
                "kubelet_version": system.get("kubeletVersion", ""),
                "kubeproxy_version": system.get("kubeProxyVersion", ""),
                "provider_id": node.get("spec", {}).get("providerID", ""),
                "pod_cidr": node.get("spec", {}).get("podCIDR", ""),
                "system_uuid": system.get("systemUUID", ""),
                "internal_ip": addresses.get("InternalIP", ""),
            },
            1,
        )
        for condition in status.get("conditions") or []:
            for value in ("true", "false", "unknown"):
                conditions.add(
                    {"node": name, "condition": condition.get("type", ""), "status": value},
                    int(str(condition.get("status", "Unknown")).lower() == value),
                )
    return [info, conditions]


def ksm_workload_families(deployments: list[dict], daemonsets: list[dict], statefulsets: list[dict]) -> list[Family]:
    def family(name: str, text: str, objects: list[dict], key: str, field: str) -> Family:
        result = Family(name, "gauge", text)
        for obj in objects:
            meta = obj.get("metadata", {})
            result.add(
                {"namespace": meta.get("namespace", ""), key: meta.get("name", "")},
                int(obj.get("status", {}).get(field, 0)),
            )
        return result

    return [
        family(
            "kube_deployment_status_replicas_available",
            "The number of available replicas per deployment.",
            deployments,
            "deployment",
            "availableReplicas",
        ),
        family(
            "kube_daemonset_status_number_ready",
            "The number of nodes that should be running the daemon pod and have one or more of the daemon "
            "pod running and ready.",
            daemonsets,
            "daemonset",
            "numberReady",
        ),
        family(
            "kube_statefulset_status_replicas_ready",
            "The number of ready replicas per StatefulSet.",
            statefulsets,
            "statefulset",
            "readyReplicas",
        ),
    ]
