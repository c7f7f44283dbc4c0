"""The lab's shape, read from an inventory (hosts.yml and group_vars/all/*.yml)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_INVENTORY = ROOT / "inventories" / "lab"


@dataclass(frozen=True)
class Node:
    name: str
    address: str
    role: str  # "controlplane" or "worker"
    talos_version: str


@dataclass
class LabConfig:
    inventory: Path
    run_dir: Path
    nodes: list[Node]
    cluster_name: str
    namespace: str
    legacy_release: str
    kubernetes_version: str = "1.32.4"
    pod_ready_seconds: float = 1.0
    reboot_seconds: float = 4.0
    apps: dict[str, dict[str, int]] = field(default_factory=dict)
    api_port: int = 0
    apid_port: int = 0
    # MetricsConfig overrides (lab_metrics in group_vars), e.g. scrape_interval_seconds.
    metrics: dict = field(default_factory=dict)
    # Migration phase the lab starts after: "" (the legacy cluster) or "containerd" (every node's
    # machine config already enables containerd metrics, as after the Talos phase).
    stage: str = ""

    @property
    def control_plane(self) -> list[Node]:
        return [n for n in self.nodes if n.role == "controlplane"]


def _group_vars(inventory: Path) -> dict:
    merged: dict = {}
    directory = inventory / "group_vars" / "all"
    for path in sorted(directory.glob("*.yml")):
        text = path.read_text()
        if text.startswith("$ANSIBLE_VAULT"):
            continue
        merged.update(yaml.safe_load(text) or {})
    return merged


def _nodes(inventory: Path) -> list[Node]:
    hosts = yaml.safe_load((inventory / "hosts.yml").read_text())
    groups = hosts["all"]["children"]["talos_nodes"]["children"]
    nodes = []
    for group, role in (("talos_control_plane", "controlplane"), ("talos_workers", "worker")):
        for name, host_vars in (groups.get(group, {}).get("hosts") or {}).items():
            nodes.append(Node(name, host_vars["talos_node_address"], role, host_vars["talos_version"]))
    return nodes


def load(inventory: Path | None = None, run_dir: Path | None = None, stage: str | None = None) -> LabConfig:
    inventory = Path(inventory or os.environ.get("LAB_INVENTORY") or DEFAULT_INVENTORY).resolve()
    run_dir = Path(run_dir or os.environ.get("LAB_RUN_DIR") or ROOT / ".lab").resolve()
    gvars = _group_vars(inventory)
    return LabConfig(
        inventory=inventory,
        run_dir=run_dir,
        nodes=_nodes(inventory),
        cluster_name=gvars.get("migration_cluster_name", "lab"),
        namespace=gvars.get("migration_namespace", "monitoring"),
        legacy_release=gvars.get("migration_legacy_release", "kube-prometheus-stack"),
        kubernetes_version=str(gvars.get("lab_kubernetes_version", "1.32.4")),
        pod_ready_seconds=float(gvars.get("lab_pod_ready_seconds", 1.0)),
        reboot_seconds=float(gvars.get("lab_reboot_seconds", 4.0)),
        apps=gvars.get("lab_apps") or {},
        api_port=int(os.environ.get("LAB_API_PORT", gvars.get("lab_api_port", 0))),
        apid_port=int(os.environ.get("LAB_APID_PORT", gvars.get("lab_apid_port", 0))),
        # LAB_METRICS (JSON) overrides single fields, e.g. tests shortening the scrape interval.
        metrics={**(gvars.get("lab_metrics") or {}), **json.loads(os.environ.get("LAB_METRICS") or "{}")},
        stage=stage if stage is not None else os.environ.get("LAB_STAGE", ""),
    )
