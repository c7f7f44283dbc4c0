"""The rollout's schedule: which node goes when, what it needs, and what stops the rollout before it starts.

Input is what the plan read (talos_metrics_plan: one entry per Talos node) and the Kubernetes Node
objects (kubernetes.core.k8s_info). The order is fixed by each node's Talos version and role, not by
what it still needs, so a node keeps its `k/N` across runs: workers whose change needs a reboot
(Talos up to 1.13) first, then workers that apply live (1.14+), then control-plane nodes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

KINDS = ("reboot", "live", "control_plane")


def _ready(node: Mapping[str, Any]) -> bool:
    conditions = (node.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _kind(entry: Mapping[str, Any], control_plane_names: set[str]) -> str:
    if entry["name"] in control_plane_names:
        return "control_plane"
    if entry["patches"]:
        return "reboot" if entry["reboot_required"] else "live"
    return "reboot" if entry["mechanism"] == "machine.files" else "live"


def _action(entry: Mapping[str, Any], cordoned_by_us: bool) -> str:
    """`change` (a patch to apply), `finish` (an earlier run's change to check and hand back), `done`."""
    if entry["patches"]:
        return "change"
    if not entry["in_effect"] or cordoned_by_us:
        return "finish"
    return "done"


def _what(entry: Mapping[str, Any], action: str, state: str) -> str:
    if action == "done":
        return "already done, nothing to change"
    if action == "finish":
        return "configured by an earlier run; finishing its checks"
    verb = "enable" if state == "present" else "remove"
    how = " (drain + reboot)" if entry["reboot_required"] else " (live, no reboot)"
    return f"will {verb} containerd metrics via {entry['mechanism']}{how}"


def rollout_schedule(
    plan_nodes: Iterable[Mapping[str, Any]],
    k8s_nodes: Iterable[Mapping[str, Any]],
    control_plane_names: Iterable[str],
    mark: str,
    state: str = "present",
) -> dict[str, Any]:
    """The schedule of a rollout over `plan_nodes` (see the module docstring)."""
    plan = list(plan_nodes)
    control_plane = set(control_plane_names)
    mark_key, _, mark_value = mark.partition("=")
    kube = {n["metadata"]["name"]: n for n in k8s_nodes}
    buckets: dict[str, list[Mapping[str, Any]]] = {kind: [] for kind in KINDS}
    for entry in plan:
        buckets[_kind(entry, control_plane)].append(entry)
    order = [entry for kind in KINDS for entry in buckets[kind]]
    nodes: dict[str, dict[str, Any]] = {}
    queues: dict[str, list[str]] = {kind: [] for kind in KINDS}
    for k, entry in enumerate(order, start=1):
        name = entry["name"]
        node = kube.get(name) or {}
        notes = (node.get("metadata") or {}).get("annotations") or {}
        cordoned_by_us = notes.get(mark_key) == mark_value
        kind = _kind(entry, control_plane)
        action = _action(entry, cordoned_by_us)
        label = f"[node {k}/{len(order)} {name}]"
        nodes[name] = {
            **entry,
            "k": k,
            "label": label,
            "kind": kind,
            "action": action,
            "cordoned_by_us": cordoned_by_us,
            "what": f"{label} Talos {entry['talos_version']}: {_what(entry, action, state)}",
        }
        if action != "done":
            queues[kind].append(name)
    return {
        "order": [entry["name"] for entry in order],
        "nodes": nodes,
        "queues": queues,
        "report": [nodes[entry["name"]]["what"] for entry in order],
        "not_ready": sorted(name for name, node in kube.items() if not _ready(node)),
        "missing": sorted(entry["name"] for entry in plan if entry["name"] not in kube),
        "foreign_cordons": sorted(
            name
            for name, node in kube.items()
            if (node.get("spec") or {}).get("unschedulable")
            and ((node.get("metadata") or {}).get("annotations") or {}).get(mark_key) != mark_value
        ),
        "role_mismatches": sorted(
            f"{entry['name']} (inventory: {'control plane' if entry['name'] in control_plane else 'worker'}, "
            f"Talos: {entry['machine_type']})"
            for entry in plan
            if (entry["name"] in control_plane) != bool(entry["control_plane"])
        ),
        "etcd_problems": sorted(
            f"{entry['name']}: {problem}" for entry in plan for problem in entry.get("etcd_problems") or []
        ),
    }


def batch_label(batch: Iterable[str], schedule: Mapping[str, Any]) -> str:
    """`[node k/N name]` for a batch of one; `[nodes k1,k2/N name1, name2]` for a larger batch."""
    names = sorted(batch, key=lambda name: schedule["nodes"][name]["k"])
    if len(names) == 1:
        return schedule["nodes"][names[0]]["label"]
    total = len(schedule["order"])
    numbers = ",".join(str(schedule["nodes"][name]["k"]) for name in names)
    return f"[nodes {numbers}/{total} {', '.join(names)}]"


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "talos_containerd_metrics_schedule": rollout_schedule,
            "talos_containerd_metrics_batch_label": batch_label,
        }
