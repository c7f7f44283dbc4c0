"""Shared pieces of the Talos module tests: a lab Talos cluster behind the real talosctl shim, module runs."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import yaml
from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

from lab.pki import Pki
from lab.talos import NodeSpec, TalosCluster, TalosContext
from lab.talos.apid import serve_talos_api, server_ssl_context
from lab.talos.talosconfig import write_talosconfig
from tests.lab_talos.talos_support import FakeHooks

SHIM = Path(__file__).resolve().parents[2] / "lab" / "bin" / "talosctl"

CP = "127.0.20.1"
W13 = "127.0.21.1"
W14 = "127.0.21.2"
W15 = "127.0.21.3"
NODES = (
    NodeSpec("cp-1", CP, "controlplane", "v1.13.2"),
    NodeSpec("w-13", W13, "worker", "v1.13.2"),
    NodeSpec("w-14", W14, "worker", "v1.14.1"),
    NodeSpec("w-15", W15, "worker", "v1.15.0"),
)
CRI_PATH = "/etc/cri/conf.d/20-customization.part"


@dataclass
class LabTalos:
    """A lab Talos cluster served over mutual TLS, and a talosconfig that reaches it through the shim."""

    cluster: TalosCluster
    hooks: FakeHooks
    talosconfig: Path

    def module_args(self, node: str, **extra: Any) -> dict[str, Any]:
        return {"node": node, "talosconfig": str(self.talosconfig), "talosctl_path": str(SHIM), **extra}

    def state(self, name: str) -> dict[str, Any]:
        return self.cluster.snapshot()[name]

    def config(self, address: str, resource: str = "v1alpha1") -> list[dict[str, Any]]:
        """A node's machine configuration documents, read in-process (not through the module under test)."""
        result = self.cluster.run(
            ["get", "mc", resource, "-n", address, "-o", "jsonpath={.spec}"], TalosContext((CP,), (CP,))
        )
        assert result.rc == 0, result.stderr
        return [doc for doc in yaml.safe_load_all(result.stdout) if doc]

    def patch(self, address: str, patch: str, mode: str = "auto") -> None:
        result = self.cluster.run(["patch", "mc", "-n", address, "-p", patch, "-m", mode], TalosContext((CP,), (CP,)))
        assert result.rc == 0, result.stderr


@contextmanager
def lab_talos(workdir: Path) -> Iterator[LabTalos]:
    pki = Pki(workdir / "pki")
    server_cert = pki.issue("apid", ["127.0.0.1"])
    client_cert = pki.issue("admin", client=True, org="os:admin")
    ca = pki.ca_cert.read_bytes()
    hooks = FakeHooks(ready={spec.name: True for spec in NODES})
    cluster = TalosCluster("rehearsal", list(NODES), hooks, reboot_seconds=0.2, health_poll_interval=0.02)
    context = server_ssl_context(ca, server_cert.cert.read_bytes(), server_cert.key.read_bytes())
    server = serve_talos_api(cluster, "127.0.0.1", 0, context)
    talosconfig = write_talosconfig(
        workdir / "talosconfig",
        "lab",
        [f"127.0.0.1:{server.port}"],
        [CP],
        ca,
        client_cert.cert.read_bytes(),
        client_cert.key.read_bytes(),
    )
    try:
        yield LabTalos(cluster, hooks, talosconfig)
    finally:
        server.shutdown()
        cluster.close()


def cri_entries(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [entry for entry in docs[0]["machine"].get("files") or [] if entry.get("path") == CRI_PATH]


def cri_documents(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc.get("kind") == "CRICustomizationConfig"]


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met before the deadline"
        time.sleep(0.02)


class ModuleExitError(Exception):
    def __init__(self, result: dict[str, Any]) -> None:
        super().__init__(result)
        self.result = result


class ModuleFailError(ModuleExitError):
    pass


@dataclass
class ModuleRun:
    status: str
    result: dict[str, Any]
    warnings: list[str]


def run_module(main: Callable[[], None], args: dict[str, Any]) -> ModuleRun:
    """Call a module's main() with exit_json/fail_json turned into exceptions (kubernetes.core's mock style)."""
    warnings: list[str] = []

    def exit_json(_module: basic.AnsibleModule, **result: Any) -> None:
        raise ModuleExitError(result)

    def fail_json(_module: basic.AnsibleModule, **result: Any) -> None:
        raise ModuleFailError(result)

    def warn(_module: basic.AnsibleModule, warning: str) -> None:
        warnings.append(warning)

    with (
        patch_module_args(args),
        mock.patch.object(basic.AnsibleModule, "exit_json", exit_json),
        mock.patch.object(basic.AnsibleModule, "fail_json", fail_json),
        mock.patch.object(basic.AnsibleModule, "warn", warn),
    ):
        try:
            main()
        except ModuleFailError as failure:
            return ModuleRun("failed", failure.result, warnings)
        except ModuleExitError as success:
            return ModuleRun("ok", success.result, warnings)
    raise AssertionError("the module returned without exit_json or fail_json")
