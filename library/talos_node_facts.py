#!/usr/bin/python
"""Ansible module: what a Talos node says about itself, for health gates around a rolling change."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: talos_node_facts
short_description: Read a Talos node's version, boot ID, CRI health, containerd metrics address and etcd membership
description:
  - Read-only; never reports a change and runs in check mode too.
  - The Talos version comes from C(talosctl version) (the server C(Tag)), the boot ID from
    C(talosctl read /proc/sys/kernel/random/boot_id) (what C(talosctl reboot) compares to see a node came back),
    the CRI service state and health from C(talosctl service cri).
  - The containerd metrics address in effect is computed from the active machine configuration
    (C(talosctl get mc -o yaml)) the way Talos merges CRI fragments for that version. Up to Talos 1.13 the
    C(machine.files) entry is read at boot, so it is in effect once the node booted with that configuration.
  - For control-plane nodes, the node's etcd member (C(talosctl etcd status)) and the member list
    (C(talosctl etcd members)). An etcd failure is reported in C(etcd.error), not as a task failure, so that
    a health gate can decide.
options:
  node:
    description: The node to read, as C(talosctl --nodes) takes it (address or name).
    type: str
    required: true
  talosconfig:
    description: Path of the talosconfig; talosctl's own default (C($TALOSCONFIG), then C(~/.talos/config)) when omitted.
    type: path
  talosctl_path:
    description: The talosctl binary; looked up on the PATH when omitted.
    type: path
  timeout:
    description: Seconds allowed for each talosctl call.
    type: int
    default: 30
notes:
  - Runs on the controller (Talos nodes have no Python); delegate to localhost.
author:
  - alloy-migration maintainers
"""

EXAMPLES = r"""
- name: Read the node before patching it
  talos_node_facts:
    node: "{{ ansible_host }}"
    talosconfig: "{{ talos_talosconfig }}"
  delegate_to: localhost
  register: __talos_before

- name: Wait until the node runs with a new boot ID and a healthy CRI
  talos_node_facts:
    node: "{{ ansible_host }}"
    talosconfig: "{{ talos_talosconfig }}"
  delegate_to: localhost
  register: __talos_after
  until: >-
    __talos_after is succeeded and __talos_after.boot_id != __talos_before.boot_id
    and __talos_after.cri.health == 'OK'
  retries: 60
  delay: 10
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
  sample: v1.14.1
machine_type:
  description: C(controlplane), C(init) or C(worker), from the active configuration.
  returned: always
  type: str
boot_id:
  description: The kernel boot ID; null (with a warning) when talosctl cannot read it.
  returned: always
  type: str
  sample: 3f6c1f0e-5d1c-4bd2-9d3e-6a1b2c3d4e5f
cri:
  description: The CRI service as C(talosctl service cri) shows it; C(health) is C(OK), C(Fail) or C(?).
  returned: always
  type: dict
  sample: {"state": "Running", "health": "OK"}
containerd_metrics_address:
  description: The address containerd serves C(/v1/metrics) on with the active configuration, or null.
  returned: always
  type: str
  sample: 127.0.0.1:11234
etcd:
  description:
    - The node's etcd member and the members it knows, for control-plane nodes; null for workers.
    - C(error) holds talosctl's message when etcd could not be read (the other fields are then null or empty).
  returned: always
  type: dict
  sample: {"member_id": "4bced57497dcb644", "leader_id": "4bced57497dcb644", "is_leader": true, "learner": false,
           "errors": "", "members": [{"id": "4bced57497dcb644", "hostname": "cp-1", "learner": false}], "error": null}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.talos import (
    TalosctlError,
    TalosNode,
    effective_metrics_address,
    is_control_plane,
    machine_type,
    read_boot_id,
    read_config,
    read_cri,
    read_etcd,
    read_version,
)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "node": {"type": "str", "required": True},
            "talosconfig": {"type": "path"},
            "talosctl_path": {"type": "path"},
            "timeout": {"type": "int", "default": 30},
        },
        supports_check_mode=True,
    )
    params = module.params
    node = params["node"]
    binary = params["talosctl_path"] or module.get_bin_path("talosctl", required=True)
    talos = TalosNode(node, params["talosconfig"], binary, params["timeout"])
    try:
        version = read_version(talos)
        docs = read_config(talos)
        cri = read_cri(talos)
    except TalosctlError as exc:
        module.fail_json(
            msg=f"talosctl failed on node {node}: {exc.command}\n{exc.stderr.strip()}",
            node=node,
            rc=exc.rc,
            stderr=exc.stderr,
        )
    except ValueError as exc:
        module.fail_json(msg=f"node {node}: cannot read what talosctl printed: {exc}", node=node)
    boot_id, boot_id_problem = read_boot_id(talos)
    if boot_id_problem:
        module.warn(f"node {node}: no boot ID: {boot_id_problem}")
    module.exit_json(
        changed=False,
        node=node,
        talos_version=str(version),
        machine_type=machine_type(docs),
        boot_id=boot_id,
        cri=cri,
        containerd_metrics_address=effective_metrics_address(docs, version),
        etcd=read_etcd(talos) if is_control_plane(docs) else None,
    )


if __name__ == "__main__":
    main()
