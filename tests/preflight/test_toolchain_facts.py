"""toolchain_facts reports the versions the controller really runs, and null for a missing tool."""

from __future__ import annotations

import importlib.metadata
import stat
from pathlib import Path

from ansible.module_utils.ansible_release import __version__ as ansible_core_version

from library import toolchain_facts
from tests.modules.talos_module_support import run_module


def fake_tool(tmp_path: Path, name: str, script: str) -> str:
    path = tmp_path / name
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def test_reports_installed_python_side_versions(tmp_path):
    run = run_module(toolchain_facts.main, {"talosctl_path": str(tmp_path / "absent"), "kubectl_path": None})
    assert run.result["ansible_core"] == ansible_core_version
    assert run.result["kubernetes_client"] == importlib.metadata.version("kubernetes")
    assert run.result["kubernetes_core"].split(".")[0].isdigit()
    assert run.result["changed"] is False


def test_reads_talosctl_client_version_the_way_talosctl_prints_it(tmp_path):
    talosctl = fake_tool(tmp_path, "talosctl", 'printf "Client:\\nTalos v1.14.1\\n"')
    run = run_module(toolchain_facts.main, {"talosctl_path": talosctl})
    assert run.result["talosctl"] == "1.14.1"


def test_failing_or_hanging_tools_are_reported_unknown(tmp_path):
    broken = fake_tool(tmp_path, "talosctl", "echo boom >&2; exit 1")
    hanging = fake_tool(tmp_path, "kubectl", "exec sleep 30")
    run = run_module(toolchain_facts.main, {"talosctl_path": broken, "kubectl_path": hanging, "timeout": 1})
    assert run.result["talosctl"] is None
    assert run.result["kubectl"] is None


def test_kubectl_version_comes_from_its_json(tmp_path):
    kubectl = fake_tool(tmp_path, "kubectl", """echo '{"clientVersion": {"gitVersion": "v1.32.4"}}'""")
    run = run_module(toolchain_facts.main, {"kubectl_path": kubectl})
    assert run.result["kubectl"] == "1.32.4"
