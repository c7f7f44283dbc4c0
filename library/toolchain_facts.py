#!/usr/bin/python
"""Ansible module: the versions of the tools a migration runs with, read on the controller."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: toolchain_facts
short_description: Report the controller's ansible-core, kubernetes.core, kubernetes client, talosctl and kubectl versions
description:
  - Read-only; never reports a change and runs in check mode too.
  - ansible-core and the kubernetes Python client are read from the interpreter that runs the module (the
    controller's, since every task of this toolkit runs there); kubernetes.core from the C(MANIFEST.json) of the
    collection that interpreter imports.
  - talosctl and kubectl are asked for their client version only (C(talosctl version --client --short),
    C(kubectl version --client -o json)); they never contact a cluster here.
  - A tool that is missing is reported as null, not as a failure, so that the caller decides what is required.
options:
  talosconfig:
    description:
      - Path of the talosconfig handed to talosctl. The client version needs none, but talosctl reads it when given.
    type: path
  talosctl_path:
    description: The talosctl binary; looked up on the PATH when omitted.
    type: path
  kubectl_path:
    description: The kubectl binary; looked up on the PATH when omitted.
    type: path
  timeout:
    description: Seconds allowed for each version command.
    type: int
    default: 15
author:
  - alloy-migration maintainers
"""

EXAMPLES = r"""
- name: Read the toolchain
  toolchain_facts:
  register: __toolchain

- name: Require talosctl
  ansible.builtin.assert:
    that: __toolchain.talosctl is not none
    fail_msg: talosctl is not on the PATH
"""

RETURN = r"""
ansible_core:
  description: ansible-core version.
  returned: always
  type: str
  sample: 2.19.14
kubernetes_core:
  description: kubernetes.core collection version, or null when the collection is not installed.
  returned: always
  type: str
  sample: 6.2.0
kubernetes_client:
  description: Version of the kubernetes Python client, or null.
  returned: always
  type: str
  sample: 37.0.2
talosctl:
  description: talosctl client version without the leading v, or null when talosctl is not found.
  returned: always
  type: str
  sample: 1.14.1
kubectl:
  description: kubectl client version without the leading v, or null when kubectl is not found.
  returned: always
  type: str
  sample: 1.32.4
"""

import importlib.metadata
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from ansible.module_utils.ansible_release import __version__ as ansible_core_version
from ansible.module_utils.basic import AnsibleModule

_TALOSCTL_TAG = re.compile(r"\bTag:\s*v?(\S+)|^\s*Talos v?(\S+)", re.MULTILINE)


def collection_roots() -> list[Path]:
    """Where ansible-core looks for collections: COLLECTIONS_PATHS (env or default), then sys.path."""
    configured = os.environ.get("ANSIBLE_COLLECTIONS_PATH") or os.environ.get("ANSIBLE_COLLECTIONS_PATHS")
    paths = configured.split(os.pathsep) if configured else ["~/.ansible/collections", "/usr/share/ansible/collections"]
    return [Path(p).expanduser() for p in paths + sys.path if p]


def kubernetes_core_version() -> str | None:
    for root in collection_roots():
        manifest = root / "ansible_collections" / "kubernetes" / "core" / "MANIFEST.json"
        try:
            return json.loads(manifest.read_text())["collection_info"]["version"]
        except (OSError, ValueError, KeyError):
            continue
    return None


def python_package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def client_output(argv: list[str], timeout: int) -> str | None:
    """stdout of a version command, or None when it fails or takes longer than timeout seconds."""
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, check=False, env={**os.environ, "LC_ALL": "C"}
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def talosctl_version(binary: str | None, talosconfig: str | None, timeout: int) -> str | None:
    config = ["--talosconfig", talosconfig] if talosconfig else []
    out = client_output([binary, *config, "version", "--client", "--short"], timeout) if binary else None
    found = _TALOSCTL_TAG.search(out or "")
    return next((group for group in found.groups() if group), None) if found else None


def kubectl_version(binary: str | None, timeout: int) -> str | None:
    out = client_output([binary, "version", "--client", "-o", "json"], timeout) if binary else None
    try:
        return json.loads(out)["clientVersion"]["gitVersion"].lstrip("v") if out else None
    except (ValueError, KeyError):
        return None


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "talosconfig": {"type": "path"},
            "talosctl_path": {"type": "path"},
            "kubectl_path": {"type": "path"},
            "timeout": {"type": "int", "default": 15},
        },
        supports_check_mode=True,
    )
    params = module.params
    module.exit_json(
        changed=False,
        ansible_core=ansible_core_version,
        kubernetes_core=kubernetes_core_version(),
        kubernetes_client=python_package_version("kubernetes"),
        talosctl=talosctl_version(
            params["talosctl_path"] or module.get_bin_path("talosctl"), params["talosconfig"], params["timeout"]
        ),
        kubectl=kubectl_version(params["kubectl_path"] or module.get_bin_path("kubectl"), params["timeout"]),
    )


if __name__ == "__main__":
    main()
