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
  - The module does not wait for a reboot; the caller waits for the node when I(reboot_required) is true.
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
diff:
  description: The configuration diff talosctl computed in a dry run (redacted).
  returned: when diff mode is on and a patch was needed
  type: dict
  sample: {"prepared": "--- a\n+++ b\n@@ -40,3 +40,8 @@\n..."}
"""

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.talos import (
    MetricsAddressError,
    PatchOutcome,
    PlanError,
    TalosctlError,
    TalosctlResult,
    TalosNode,
    TalosVersion,
    active_config,
    check_metrics_address,
    parse_patch_output,
    parse_server_version,
    plan_metrics,
)

_IMMEDIATE_MODE_HINT = (
    "Up to Talos 1.13 containerd reads its CRI customization at boot only: use mode auto (Talos reboots the node) "
    "or staged (reboot it afterwards)."
)


def read_node(talos: TalosNode) -> tuple[TalosVersion, list[dict[str, Any]]]:
    version = parse_server_version(talos.run("version", "--short").stdout)
    return version, active_config(talos.run("get", "machineconfig", "-o", "yaml").stdout)


@contextlib.contextmanager
def patch_files(patches: tuple[str, ...]) -> Iterator[list[str]]:
    """The patches as files, for `-p @file`: never on the command line, where `ps` would show them."""
    with tempfile.TemporaryDirectory(prefix="talos-patch-") as directory:
        paths = []
        for index, text in enumerate(patches):
            path = Path(directory) / f"{index:02d}.yaml"
            path.write_text(text)
            paths.append(str(path))
        yield paths


def patch_node(talos: TalosNode, files: list[str], mode: str, dry_run: bool) -> TalosctlResult:
    args = ["patch", "machineconfig"]
    for path in files:
        args += ["--patch", f"@{path}"]
    args += ["--mode", mode]
    if dry_run:
        args.append("--dry-run")
    return talos.run(*args)


def failure_message(node: str, exc: TalosctlError) -> str:
    message = f"talosctl failed on node {node}: {exc.command}\n{exc.stderr.strip()}"
    if "can't be applied in immediate mode" in exc.stderr:
        message += f"\n{_IMMEDIATE_MODE_HINT}"
    return message


def outcome_fields(outcome: PatchOutcome, result: TalosctlResult) -> dict[str, Any]:
    return {"changed": outcome.changed, "reboot_required": outcome.reboot_required, **stderr_fields(result.stderr)}


def stderr_fields(stderr: str) -> dict[str, Any]:
    """Ansible's convention: `stderr` a string, `stderr_lines` its lines."""
    return {"stderr": stderr, "stderr_lines": stderr.splitlines()}


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
        },
        supports_check_mode=True,
    )
    params = module.params
    node = params["node"]
    if params["state"] == "present":
        try:
            check_metrics_address(params["metrics_address"], params["allow_non_loopback"])
        except MetricsAddressError as exc:
            module.fail_json(msg=f"node {node}: {exc}", node=node)
    binary = params["talosctl_path"] or module.get_bin_path("talosctl", required=True)
    talos = TalosNode(node, params["talosconfig"], binary, params["timeout"])
    try:
        version, docs = read_node(talos)
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
    if not plan.patches:
        module.exit_json(**result)
    try:
        with patch_files(plan.patches) as files:
            if module.check_mode or module._diff:
                preview = patch_node(talos, files, params["mode"], dry_run=True)
                predicted = parse_patch_output(preview.stderr_lines)
                if module._diff:
                    result["diff"] = {"prepared": predicted.diff or ""}
                if module.check_mode:
                    module.exit_json(**{**result, **outcome_fields(predicted, preview)})
            applied = patch_node(talos, files, params["mode"], dry_run=False)
    except TalosctlError as exc:
        failure = {**result, "rc": exc.rc, "command": exc.command, **stderr_fields(exc.stderr)}
        module.fail_json(msg=failure_message(node, exc), **failure)
    module.exit_json(**{**result, **outcome_fields(parse_patch_output(applied.stderr_lines), applied)})


if __name__ == "__main__":
    main()
