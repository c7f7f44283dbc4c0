"""Fault: an invalid Alloy template override. An operator's customised copy of the alloy role (first on
the roles path, as a site fork would be) forwards the cAdvisor series to a remote_write that does not
exist. It must be refused before anything is applied: CI renders and validates the role's configuration
alone (nothing installed); the full suite runs the collectors phase, which must leave the cluster as it was."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pytest

from tests.faults.fault_support import ROOT, continuity, snapshot_difference

TEMPLATE = Path("templates/config/kubelet_cadvisor.alloy.j2")


def customised_alloy_role(roles: Path) -> str:
    """A copy of the alloy role whose cAdvisor template names a misspelt receiver; returns the bad line."""
    shutil.copytree(ROOT / "roles" / "alloy", roles / "alloy")
    template = roles / "alloy" / TEMPLATE
    edited, count = re.subn(
        r"forward_to = \{\{ _alloy_forward_to[^}]*\}\}",
        "forward_to = [prometheus.remote_write.mimri.receiver]",
        template.read_text(),
        count=1,
    )
    assert count == 1, "the cAdvisor template no longer forwards through _alloy_forward_to"
    template.write_text(edited)
    return "prometheus.remote_write.mimri.receiver"


def refusal_of(output: str) -> str:
    found = re.search(r"kubelet_cadvisor\.alloy:\d+:\d+: [^\n]*", output)
    return found.group(0).replace("\\", "") if found else ""


def test_invalid_alloy_override_is_refused_by_the_config_stage(cluster, table_row, tmp_path):
    bad = customised_alloy_role(tmp_path / "roles")
    installed = tmp_path / "installed"
    started = time.time()

    run = cluster.play(
        [{"name": "Alloy config", "ansible.builtin.include_role": {"name": "alloy", "tasks_from": "config.yml"}}],
        "-e",
        f"alloy_config_dir={installed}",
        env={"ANSIBLE_ROLES_PATH": f"{tmp_path / 'roles'}:{ROOT / 'roles'}"},
    )

    refusal = refusal_of(run.output)
    files = sorted(path.name for path in installed.glob("*")) if installed.exists() else []
    table_row(
        fault="invalid Alloy template override, the alloy role's config stage alone (CI)",
        expected="refused before anything is installed or applied",
        seen=f"refused (rc {run.rc}): {refusal[:110] or '-'}; files installed: {files or 'none'}",
        data_lost=continuity(cluster, started, time.time(), 'prometheus!=""', 2.0).summary(),
    )
    assert run.rc != 0, run.tail()
    assert bad in refusal, run.tail()
    assert files == []


@pytest.mark.fault_full
def test_invalid_alloy_override_is_refused_before_anything_is_applied(cluster, table_row, tmp_path):
    bad = customised_alloy_role(tmp_path / "roles")
    cluster.record_phases(["preflight", "baseline", "containerd_metrics"])
    before = cluster.snapshot()
    started = time.time()

    run = cluster.playbook("collectors.yml", env={"ANSIBLE_ROLES_PATH": f"{tmp_path / 'roles'}:{ROOT / 'roles'}"})

    changed = snapshot_difference(before, cluster.snapshot())
    refusal = refusal_of(run.output)
    record = cluster.migration_state().phases.get("collectors", {})
    table_row(
        fault="invalid Alloy template override (a forked role names a missing receiver), collectors.yml",
        expected="refused before apply, cluster untouched",
        seen=(
            f"collectors stopped (rc {run.rc}): {refusal[:110] or '-'}; "
            f"cluster: {', '.join(changed) if changed else 'unchanged'}; state: {record.get('status')}"
        ),
        data_lost=continuity(cluster, started, time.time(), 'prometheus!=""', 2.0).summary(),
    )
    assert run.rc != 0, run.tail()
    assert bad in refusal, run.tail()
    assert changed == [], f"the refused run changed the cluster: {changed}"
    assert record.get("status") == "failed"
    assert "kubelet_cadvisor.alloy" in record.get("reason", "")
