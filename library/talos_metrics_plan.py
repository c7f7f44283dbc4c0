#!/usr/bin/python
"""Ansible module: read every Talos node at once and say what the containerd metrics rollout must do to each."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: talos_metrics_plan
short_description: Plan the containerd metrics rollout over many Talos nodes in one read
description:
  - Read-only; never reports a change and runs in check mode too.
  - Reads every node with one C(talosctl version) and one C(talosctl get mc -o yaml) over all of them (talosctl
    fans out to the nodes); when that fails, node by node, concurrently (I(parallel) at a time), to name the
    node that does not answer. It decides, the way M(talos_machineconfig) does, which patches bring each node
    to I(state). For a node that
    needs a change it asks Talos what the change would do (C(talosctl patch mc --dry-run)); the patches are
    validated by Talos before any node is touched, and I(reboot_required) is Talos's own answer.
  - For control-plane nodes it also reads C(talosctl etcd status) and C(talosctl etcd members), so that a caller can
    check etcd from every control-plane node's point of view before a rolling change.
  - Fails, naming every node concerned, when a node cannot be read or holds a configuration the rollout must not
    change on its own; nothing is changed either way.
options:
  nodes:
    description: The nodes, in rollout order; each needs C(name) (the Kubernetes Node name) and C(address) (C(-n)).
    type: list
    elements: dict
    required: true
  talosconfig:
    description: Path of the talosconfig; talosctl's own default (C($TALOSCONFIG), then C(~/.talos/config)) when omitted.
    type: path
  talosctl_path:
    description: The talosctl binary; looked up on the PATH when omitted.
    type: path
  state:
    description: Whether containerd should serve its metrics.
    type: str
    choices: [present, absent]
    default: present
  metrics_address:
    description: The C(host:port) containerd should listen on; a non-loopback one needs I(allow_non_loopback).
    type: str
    default: 127.0.0.1:11234
  allow_non_loopback:
    description: Accept a I(metrics_address) reachable from the network.
    type: bool
    default: false
  mode:
    description: The apply mode the dry runs use (as the rollout will apply).
    type: str
    choices: [auto, no-reboot, staged, try]
    default: auto
  timeout:
    description: Seconds allowed for each talosctl call.
    type: int
    default: 60
  parallel:
    description: How many nodes are read at the same time.
    type: int
    default: 8
  etcd_members:
    description: How many etcd members each control-plane node must see; I(etcd_problems) reports any difference.
    type: int
notes:
  - Runs on the controller (Talos nodes have no Python); delegate to localhost.
author:
  - alloy-migration maintainers
"""

EXAMPLES = r"""
- name: Plan the rollout over these nodes
  talos_metrics_plan:
    nodes:
      - {name: talos-worker-1, address: 10.5.0.11}
      - {name: talos-cp-1, address: 10.5.0.2}
    talosconfig: "{{ migration_talosconfig }}"
  delegate_to: localhost
  run_once: true
  register: __plan

- name: Plan the removal (rollback)
  talos_metrics_plan:
    nodes: "{{ __nodes }}"
    state: absent
  delegate_to: localhost
  run_once: true
  register: __plan
"""

RETURN = r"""
nodes:
  description: One entry per node, in the order given.
  returned: always
  type: list
  elements: dict
  contains:
    name: {description: The node's name as given., type: str}
    address: {description: The node's address as given., type: str}
    talos_version: {description: The Talos version the node runs., type: str, sample: v1.13.2}
    machine_type: {description: C(controlplane), C(init) or C(worker)., type: str}
    control_plane: {description: Whether the node is a control-plane node., type: bool}
    mechanism: {description: How this version enables containerd metrics., type: str, sample: machine.files}
    containerd_metrics_address:
      description: The address containerd serves /v1/metrics on with the active configuration, or null.
      type: str
    configured: {description: The configuration already holds the wanted state (no patch needed)., type: bool}
    in_effect: {description: The wanted address (null for absent) is the one in effect., type: bool}
    patches: {description: How many patches the node needs., type: int}
    reboot_required: {description: Applying the patches reboots the node (Talos's dry-run answer)., type: bool}
    notes: {description: What the plan left alone and why., type: list, elements: str}
    diff: {description: The configuration diff of the dry run (redacted), null without a change., type: str}
    etcd:
      description: For control-plane nodes, the node's etcd member and the members it sees (as talos_node_facts).
      type: dict
    etcd_problems:
      description: Why this control-plane node's etcd is not whole (unreadable, no member, a learner, errors, count).
      type: list
      elements: str
pending:
  description: Names of the nodes whose configuration needs a change or whose wanted address is not in effect.
  returned: always
  type: list
  elements: str
"""

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.talos import (
    MetricsAddressError,
    NodePlan,
    PlanError,
    TalosctlError,
    TalosNode,
    check_metrics_address,
    effective_metrics_address,
    etcd_problems,
    failure_message,
    machine_type,
    plan_metrics,
    preview_patches,
    read_config,
    read_etcd,
    read_many,
    read_version,
    retried,
)


class NodePlanError(Exception):
    """A node the plan cannot be made for; the message names it."""


def plan_node(talos: TalosNode, name: str, params: dict[str, Any], known: tuple | None = None) -> NodePlan:
    """The plan for one node; `known` is its (version, configuration) when already read with the others."""
    try:
        version, docs = known or retried(lambda: (read_version(talos), read_config(talos)))
        plan = plan_metrics(docs, version, params["state"], params["metrics_address"])
        node = NodePlan(
            name,
            talos.node,
            talos_version=str(version),
            machine_type=machine_type(docs),
            mechanism=str(plan.mechanism),
            metrics_address=effective_metrics_address(docs, version),
            patches=len(plan.patches),
            reboot_required=plan.reboot_expected,
            notes=list(plan.notes),
        )
        wanted = params["metrics_address"] if params["state"] == "present" else None
        node.in_effect = node.metrics_address == wanted
        if plan.patches:
            outcome, _ = preview_patches(talos, plan.patches, params["mode"])
            node.reboot_required, node.diff = outcome.reboot_required, outcome.diff
        if node.control_plane:
            node.etcd = read_etcd(talos)
            node.etcd_problems = etcd_problems(node.etcd, params["etcd_members"])
    except TalosctlError as exc:
        raise NodePlanError(failure_message(f"{name} ({talos.node})", exc)) from None
    except PlanError as exc:
        raise NodePlanError(f"node {name} ({talos.node}): {exc}") from None
    except ValueError as exc:
        raise NodePlanError(f"node {name} ({talos.node}): cannot read what talosctl printed: {exc}") from None
    return node


def node_list(module: AnsibleModule) -> list[tuple[str, str]]:
    nodes = []
    for index, entry in enumerate(module.params["nodes"]):
        name, address = entry.get("name"), entry.get("address")
        if not name or not address:
            module.fail_json(msg=f"nodes[{index}] needs a name and an address, got {entry!r}")
        nodes.append((str(name), str(address)))
    return nodes


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "nodes": {"type": "list", "elements": "dict", "required": True},
            "talosconfig": {"type": "path"},
            "talosctl_path": {"type": "path"},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            "metrics_address": {"type": "str", "default": "127.0.0.1:11234"},
            "allow_non_loopback": {"type": "bool", "default": False},
            "mode": {"type": "str", "choices": ["auto", "no-reboot", "staged", "try"], "default": "auto"},
            "timeout": {"type": "int", "default": 60},
            "parallel": {"type": "int", "default": 8},
            "etcd_members": {"type": "int"},
        },
        supports_check_mode=True,
    )
    params = module.params
    if params["state"] == "present":
        try:
            check_metrics_address(params["metrics_address"], params["allow_non_loopback"])
        except MetricsAddressError as exc:
            module.fail_json(msg=str(exc))
    nodes = node_list(module)
    binary = params["talosctl_path"] or module.get_bin_path("talosctl", required=True)

    known = read_many([address for _, address in nodes], params["talosconfig"], binary, params["timeout"]) or {}

    def plan_one(node: tuple[str, str]) -> NodePlan | NodePlanError:
        talos = TalosNode(node[1], params["talosconfig"], binary, params["timeout"])
        try:
            return plan_node(talos, node[0], params, known.get(node[1]))
        except NodePlanError as problem:
            return problem

    with ThreadPoolExecutor(max_workers=max(1, min(params["parallel"], len(nodes)))) as pool:
        outcomes = list(pool.map(plan_one, nodes))
    problems = [str(outcome) for outcome in outcomes if isinstance(outcome, NodePlanError)]
    if problems:
        module.fail_json(
            msg=f"{len(problems)} of {len(nodes)} nodes cannot be planned; nothing was changed.\n" + "\n".join(problems)
        )
    plans = [outcome for outcome in outcomes if isinstance(outcome, NodePlan)]
    for plan in plans:
        for note in plan.notes:
            module.warn(f"node {plan.name}: {note}")
    module.exit_json(
        changed=False,
        nodes=[plan.as_dict() for plan in plans],
        pending=[plan.name for plan in plans if plan.patches or not plan.in_effect],
    )


if __name__ == "__main__":
    main()
