#!/usr/bin/python
"""Ansible module: enable (or disable) containerd's metrics listener through a Talos machine-config patch."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: talos_machineconfig
short_description: Enable containerd metrics on a Talos node with a machine-config patch
description:
  - Reads the node's active machine configuration (C(talosctl get mc -o yaml)), decides which patch brings it
    to the wanted state, and applies it with C(talosctl patch mc -p @file --mode MODE).
  - The mechanism follows the node's Talos version. Up to 1.13 it is a C(machine.files) entry at
    C(/etc/cri/conf.d/20-customization.part), which containerd reads only at boot, so the change needs a reboot
    (C(mode=auto) lets Talos reboot the node by itself). From 1.14 it is a C(CRICustomizationConfig) document
    named C(zz-containerd-metrics), applied live by restarting CRI. From 1.15 the fragment uses the
    C([plugins."io.containerd.server.v1.metrics"]) table instead of the deprecated C([metrics]) table.
  - Idempotent. C(machine.files) has no merge key, so patching blindly would append a duplicate entry; the module
    compares path and content first and patches only when they differ, replacing any metrics-only entries it finds.
  - With I(state=absent) it removes the document and the metrics-only C(machine.files) entries (Talos C($patch) C(delete)
    selectors, or an RFC 6902 patch that tests each entry before removing it in a single-document configuration).
  - In check mode it runs C(talosctl patch mc --dry-run) and reports the configuration diff talosctl printed.
    Secrets in diff context lines (tokens, keys) are redacted.
  - With I(wait) the module returns only once the node runs the change and is healthy, probing it every
    I(wait_interval) seconds for at most I(wait_timeout) seconds for a new boot ID when Talos rebooted the node
    (the ID read just before the patch must change), the CRI service C(Running) with health C(OK), the wanted
    containerd metrics address in effect (none for I(state=absent)), and for a control-plane node its etcd member
    present, not a learner, without errors, among I(etcd_members) members. With nothing to change it still checks
    the node (a rollout resuming after an interruption). On timeout it fails with what was last seen.
  - Without I(wait) the module does not wait for a reboot; the caller waits when I(reboot_required) is true.
options:
  node:
    description: The node to patch, as C(talosctl --nodes) takes it (address or name).
    type: str
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
    description:
      - The C(host:port) containerd listens on for C(/v1/metrics).
      - A non-loopback address is refused unless I(allow_non_loopback) is set, because containerd serves the
        endpoint without TLS or authentication.
    type: str
    default: 127.0.0.1:11234
  allow_non_loopback:
    description: Accept a I(metrics_address) reachable from the network.
    type: bool
    default: false
  mode:
    description:
      - The apply mode passed to C(talosctl patch mc --mode). Talos 1.14 and later have no C(reboot) mode.
      - C(auto) reboots a node up to 1.13 by itself; C(no-reboot) and C(try) fail there, since containerd reads the
        file at boot only; C(staged) writes the change for the next boot (I(reboot_required) is then true).
    type: str
    choices: [auto, no-reboot, staged, try]
    default: auto
  timeout:
    description: Seconds allowed for each talosctl call.
    type: int
    default: 60
  wait:
    description: Return only once the node is healthy with the change in effect (see the description).
    type: bool
    default: false
  wait_timeout:
    description: Seconds I(wait) allows for the node to come back and be healthy.
    type: int
    default: 900
  wait_interval:
    description: Seconds between two probes of the node while waiting.
    type: float
    default: 0.5
  etcd_members:
    description: For a control-plane node, the number of etcd members it must see before I(wait) is satisfied.
    type: int
notes:
  - Runs on the controller (Talos nodes have no Python); delegate to localhost.
author:
  - alloy-migration maintainers
"""

EXAMPLES = r"""
- name: Enable containerd metrics on this node
  talos_machineconfig:
    node: "{{ ansible_host }}"
    talosconfig: "{{ talos_talosconfig }}"
  delegate_to: localhost
  register: __containerd_metrics

- name: Remove the containerd metrics listener again
  talos_machineconfig:
    node: "{{ ansible_host }}"
    talosconfig: "{{ talos_talosconfig }}"
    state: absent
  delegate_to: localhost

- name: Enable it on a control-plane node and wait until it is back, healthy, with etcd whole
  talos_machineconfig:
    node: "{{ ansible_host }}"
    talosconfig: "{{ talos_talosconfig }}"
    wait: true
    wait_timeout: 900
    etcd_members: 3
  delegate_to: localhost
"""

RETURN = r"""
node:
  description: The node as given.
  returned: always
  type: str
talos_version:
  description: The Talos version the node runs.
  returned: always
  type: str
  sample: v1.13.2
mechanism:
  description: How this Talos version enables containerd metrics.
  returned: always
  type: str
  sample: machine.files
reboot_required:
  description:
    - True when the change takes effect only at a boot. With C(mode=auto) Talos is already rebooting the node;
      with C(mode=staged) the caller has to reboot it.
  returned: always
  type: bool
patches:
  description: The patches given to C(talosctl patch mc), in order (empty when nothing had to change).
  returned: always
  type: list
  elements: str
stderr:
  description: What talosctl printed on stderr for the patch (redacted).
  returned: always
  type: str
stderr_lines:
  description: I(stderr) split into lines.
  returned: always
  type: list
  elements: str
  sample: ["patched MachineConfigs.config.talos.dev/v1alpha1 at the node 10.5.0.3", "Applied configuration without a reboot"]
boot_id_before:
  description: The node's boot ID read just before the patch (with I(wait) and a patch to apply).
  returned: when wait is true and a patch was applied
  type: str
rebooted:
  description: Whether the node came back with another boot ID than before the patch.
  returned: when wait is true
  type: bool
health:
  description:
    - The last observation of the node while waiting; C(unmet) lists what was not true yet (empty when healthy).
  returned: when wait is true
  type: dict
  sample: {"boot_id": "3f6c1f0e-5d1c-4bd2-9d3e-6a1b2c3d4e5f", "cri": {"state": "Running", "health": "OK"},
           "containerd_metrics_address": "127.0.0.1:11234", "etcd": null, "unmet": []}
waited:
  description: Seconds spent waiting for the node.
  returned: when wait is true
  type: float
diff:
  description: The configuration diff talosctl computed in a dry run (redacted).
  returned: when diff mode is on and a patch was needed
  type: dict
  sample: {"prepared": "--- a\n+++ b\n@@ -40,3 +40,8 @@\n..."}
"""

from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.talos import (
    HealthTarget,
    MetricsAddressError,
    MetricsPlan,
    PatchOutcome,
    PlanError,
    TalosctlError,
    TalosctlResult,
    TalosNode,
    TalosVersion,
    check_metrics_address,
    concurrently,
    current_boot_id,
    failure_message,
    is_control_plane,
    observe_health,
    parse_patch_output,
    patch_files,
    patch_node,
    plan_metrics,
    read_config,
    read_version,
    residual_metrics_address,
    retried,
    wait_for_health,
)

WAIT_MODES = ("auto", "no-reboot")


def outcome_fields(outcome: PatchOutcome, result: TalosctlResult) -> dict[str, Any]:
    return {"changed": outcome.changed, "reboot_required": outcome.reboot_required, **stderr_fields(result.stderr)}


def stderr_fields(stderr: str) -> dict[str, Any]:
    """Ansible's convention: `stderr` a string, `stderr_lines` its lines."""
    return {"stderr": stderr, "stderr_lines": stderr.splitlines()}


def wanted_address(params: dict[str, Any], docs: list[dict[str, Any]], version: TalosVersion) -> str | None:
    """The address that must be in effect once the plan is applied."""
    if params["state"] == "present":
        return params["metrics_address"]
    return residual_metrics_address(docs, version)


def wait_until_healthy(
    module: AnsibleModule,
    talos: TalosNode,
    version: TalosVersion,
    docs: list[dict[str, Any]],
    boot_before: str | None,
    result: dict[str, Any],
) -> dict[str, Any]:
    params = module.params
    target = HealthTarget(wanted_address(params, docs, version), boot_before, params["etcd_members"])
    control_plane = is_control_plane(docs)
    health, waited = wait_for_health(
        lambda: observe_health(talos, version, control_plane, target), params["wait_timeout"], params["wait_interval"]
    )
    fields = {
        "health": health.as_dict(),
        "waited": round(waited, 2),
        "rebooted": boot_before is not None and health.boot_id not in (None, boot_before),
    }
    if health.unmet:
        module.fail_json(
            msg=f"node {talos.node}: not healthy {waited:.0f} s after the change; last seen: {'; '.join(health.unmet)}",
            **result,
            **fields,
        )
    return fields


def apply_plan(module: AnsibleModule, talos: TalosNode, plan: MetricsPlan, result: dict[str, Any]) -> dict[str, Any]:
    """Preview (check or diff mode) and apply the patches; the fields that describe what happened."""
    params = module.params
    with patch_files(plan.patches) as files:
        if module.check_mode or module._diff:
            preview = patch_node(talos, files, params["mode"], dry_run=True)
            predicted = parse_patch_output(preview.stderr_lines)
            if module._diff:
                result["diff"] = {"prepared": predicted.diff or ""}
            if module.check_mode:
                module.exit_json(**{**result, **outcome_fields(predicted, preview)})
        applied = patch_node(talos, files, params["mode"], dry_run=False)
    return outcome_fields(parse_patch_output(applied.stderr_lines), applied)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "node": {"type": "str", "required": True},
            "talosconfig": {"type": "path"},
            "talosctl_path": {"type": "path"},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            "metrics_address": {"type": "str", "default": "127.0.0.1:11234"},
            "allow_non_loopback": {"type": "bool", "default": False},
            "mode": {"type": "str", "choices": ["auto", "no-reboot", "staged", "try"], "default": "auto"},
            "timeout": {"type": "int", "default": 60},
            "wait": {"type": "bool", "default": False},
            "wait_timeout": {"type": "int", "default": 900},
            "wait_interval": {"type": "float", "default": 0.5},
            "etcd_members": {"type": "int"},
        },
        supports_check_mode=True,
    )
    params = module.params
    node = params["node"]
    if params["wait"] and params["mode"] not in WAIT_MODES:
        module.fail_json(
            msg=f"node {node}: wait needs mode auto or no-reboot; with mode {params['mode']} the change does not take "
            "effect by itself (staged waits for a reboot nobody starts, try reverts)",
            node=node,
        )
    if params["state"] == "present":
        try:
            check_metrics_address(params["metrics_address"], params["allow_non_loopback"])
        except MetricsAddressError as exc:
            module.fail_json(msg=f"node {node}: {exc}", node=node)
    binary = params["talosctl_path"] or module.get_bin_path("talosctl", required=True)
    talos = TalosNode(node, params["talosconfig"], binary, params["timeout"])
    # The boot id a reboot must change is read with the configuration, before anything is applied.
    reads = [lambda: read_version(talos), lambda: read_config(talos)]
    if params["wait"] and not module.check_mode:
        reads.append(lambda: current_boot_id(talos))
    try:
        version, docs, *boot = retried(lambda: concurrently(*reads))
    except TalosctlError as exc:
        module.fail_json(msg=failure_message(node, exc), node=node, rc=exc.rc, **stderr_fields(exc.stderr))
    except ValueError as exc:
        module.fail_json(msg=f"node {node}: cannot read what talosctl printed: {exc}", node=node)
    try:
        plan = plan_metrics(docs, version, params["state"], params["metrics_address"])
    except PlanError as exc:
        module.fail_json(msg=f"node {node}: {exc}", node=node, talos_version=str(version))
    for note in plan.notes:
        module.warn(f"node {node}: {note}")
    result: dict[str, Any] = {
        "changed": False,
        "node": node,
        "talos_version": str(version),
        "mechanism": str(plan.mechanism),
        "reboot_required": False,
        "patches": list(plan.patches),
        **stderr_fields(""),
    }
    wait = params["wait"] and not module.check_mode
    boot_before = None
    if plan.patches:
        if wait:
            boot_before = result["boot_id_before"] = boot[0]
        try:
            result.update(apply_plan(module, talos, plan, result))
        except TalosctlError as exc:
            failure = {**result, "rc": exc.rc, "command": exc.command, **stderr_fields(exc.stderr)}
            module.fail_json(msg=failure_message(node, exc), **failure)
    if wait:
        boot_changing = boot_before if result["reboot_required"] else None
        result.update(wait_until_healthy(module, talos, version, docs, boot_changing, result))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
