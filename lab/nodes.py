"""Kubernetes Node objects for the lab's Talos nodes, and their Ready transitions."""

from __future__ import annotations

from lab.config import LabConfig, Node
from lab.k8s.api import Api, Options, now
from lab.k8s.resources import BUILTIN

NODES = next(t for t in BUILTIN if t.plural == "nodes")
CONTROL_PLANE_TAINT = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}


def node_object(node: Node, index: int, kubernetes_version: str) -> dict:
    labels = {
        "beta.kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/hostname": node.name,
        "kubernetes.io/os": "linux",
    }
    if node.role == "controlplane":
        labels["node-role.kubernetes.io/control-plane"] = ""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": node.name,
            "labels": labels,
            "annotations": {"lab.alloy-migration/index": str(index), "talos.dev/version": node.talos_version},
        },
        "spec": {
            "podCIDR": f"10.244.{index}.0/24",
            "podCIDRs": [f"10.244.{index}.0/24"],
            **({"taints": [CONTROL_PLANE_TAINT]} if node.role == "controlplane" else {}),
        },
    }


def node_status(node: Node, kubernetes_version: str, ready: bool, previous: dict | None = None) -> dict:
    old = {c["type"]: c for c in (previous or {}).get("conditions") or []}
    stamp = now()

    def condition(kind: str, status: str, reason: str, message: str) -> dict:
        changed = kind not in old or old[kind]["status"] != status
        return {
            "type": kind,
            "status": status,
            "reason": reason,
            "message": message,
            "lastHeartbeatTime": stamp,
            "lastTransitionTime": stamp if changed else old[kind]["lastTransitionTime"],
        }

    return {
        "addresses": [{"type": "InternalIP", "address": node.address}, {"type": "Hostname", "address": node.name}],
        "capacity": {"cpu": "8", "memory": "32Gi", "pods": "110", "ephemeral-storage": "100Gi"},
        "allocatable": {"cpu": "7800m", "memory": "31Gi", "pods": "110", "ephemeral-storage": "95Gi"},
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        "nodeInfo": {
            "architecture": "amd64",
            "bootID": "",
            "containerRuntimeVersion": "containerd://2.1.4",
            "kernelVersion": "6.12.40-talos",
            "kubeProxyVersion": f"v{kubernetes_version}",
            "kubeletVersion": f"v{kubernetes_version}",
            "machineID": node.name,
            "operatingSystem": "linux",
            "osImage": f"Talos ({node.talos_version})",
            "systemUUID": node.name,
        },
        "conditions": [
            condition(
                "MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"
            ),
            condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            condition("Ready", "True", "KubeletReady", "kubelet is posting ready status")
            if ready
            else condition("Ready", "False", "KubeletNotReady", "node is rebooting"),
        ],
    }


class NodeLifecycle:
    """Flips a Node's Ready condition as its kubelet would around a reboot."""

    def __init__(self, api: Api, config: LabConfig) -> None:
        self.api = api
        self.config = config
        self.by_name = {n.name: n for n in config.nodes}

    def register(self) -> None:
        for index, node in enumerate(self.config.nodes, start=1):
            if self.api.store.get("nodes", "", node.name) is None:
                self.api.create(NODES, "", node_object(node, index, self.config.kubernetes_version), Options())
            self.set_ready(node.name, True)

    def set_ready(self, name: str, ready: bool, boot_id: str = "") -> None:
        with self.api._write_lock:
            current = self.api.get(NODES, "", name)
            status = node_status(self.by_name[name], self.config.kubernetes_version, ready, current.get("status"))
            status["nodeInfo"]["bootID"] = boot_id or (current.get("status") or {}).get("nodeInfo", {}).get(
                "bootID", ""
            )
            current["status"] = status
            self.api.replace(NODES, "", name, current, Options(), sub="status")
            if not ready:
                self._pods_not_ready(name)

    def _pods_not_ready(self, name: str) -> None:
        pods = next(t for t in BUILTIN if t.plural == "pods")
        for pod in self.api.store.list("pods"):
            if pod["spec"].get("nodeName") != name or "status" not in pod:
                continue
            status = pod["status"]
            for cond in status.get("conditions") or []:
                if cond["type"] in ("Ready", "ContainersReady") and cond["status"] == "True":
                    cond["status"], cond["lastTransitionTime"] = "False", now()
            for cs in status.get("containerStatuses") or []:
                cs["ready"] = False
            self.api.replace(pods, pod["metadata"]["namespace"], pod["metadata"]["name"], pod, Options(), sub="status")

    def ready(self) -> dict[str, bool]:
        return {
            n["metadata"]["name"]: any(
                c["type"] == "Ready" and c["status"] == "True" for c in (n.get("status") or {}).get("conditions") or []
            )
            for n in self.api.store.list("nodes")
        }
