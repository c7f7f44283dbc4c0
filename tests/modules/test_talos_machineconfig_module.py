"""talos_machineconfig end to end: main() drives the lab's talosctl shim over mutual TLS to lab Talos nodes.

Each test starts its own cluster (w-13 on 1.13.2, w-14 on 1.14.1, w-15 on 1.15.0; client 1.15.0, so the
1.13/1.14 nodes get talosctl's older-server WARNING on every patch).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import talos_machineconfig
from talos_module_support import (
    CP,
    W13,
    W14,
    W15,
    LabTalos,
    ModuleRun,
    cri_documents,
    cri_entries,
    lab_talos,
    run_module,
    wait_until,
)

from tests.conftest import failures, run_playbook

FILE_PATCH = """\
machine:
  files:
    - content: |
        [metrics]
          address = "127.0.0.1:11234"
      path: /etc/cri/conf.d/20-customization.part
      op: create
"""


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[LabTalos]:
    with lab_talos(tmp_path) as running:
        yield running


def apply(lab: LabTalos, node: str, **extra: object) -> ModuleRun:
    return run_module(talos_machineconfig.main, lab.module_args(node, **extra))


def settled(lab: LabTalos, name: str, boots: int) -> bool:
    state = lab.state(name)
    return state["state"] == "running" and state["boots"] == boots


def test_check_mode_on_113_reports_the_diff_and_a_reboot_but_changes_nothing(lab: LabTalos):
    before = lab.config(W13)

    run = apply(lab, W13, _ansible_check_mode=True, _ansible_diff=True)

    assert run.status == "ok", run.result
    result = run.result
    assert result["changed"] is True and result["reboot_required"] is True
    assert (result["mechanism"], result["talos_version"]) == ("machine.files", "v1.13.2")
    diff = result["diff"]["prepared"]
    assert "+    files:" in diff and '+                address = "127.0.0.1:11234"' in diff
    assert "Dry run summary:" in result["stderr_lines"]
    assert result["stderr"].splitlines() == result["stderr_lines"]
    assert lab.config(W13) == before and lab.config(W13, "persistent") == before
    assert lab.state("w-13")["state"] == "running"


def test_apply_on_113_reboots_the_node_and_a_rerun_adds_no_duplicate(lab: LabTalos):
    first = apply(lab, W13)

    assert first.status == "ok", first.result
    assert first.result["changed"] is True and first.result["reboot_required"] is True
    assert first.result["stderr_lines"][0].startswith("WARNING: ")
    assert any(line.startswith("Applied configuration with a reboot") for line in first.result["stderr_lines"])
    wait_until(lambda: settled(lab, "w-13", boots=2))
    assert lab.cluster.metrics_address("w-13") == "127.0.0.1:11234"

    second = apply(lab, W13)

    assert second.status == "ok", second.result
    assert (second.result["changed"], second.result["reboot_required"], second.result["patches"]) == (False, False, [])
    assert len(cri_entries(lab.config(W13))) == 1
    assert lab.state("w-13")["boots"] == 2


def test_duplicated_entries_left_by_a_blind_patch_are_repaired_to_one(lab: LabTalos):
    lab.patch(W13, FILE_PATCH + FILE_PATCH.removeprefix("machine:\n  files:\n"))
    wait_until(lambda: settled(lab, "w-13", boots=2))
    assert len(cri_entries(lab.config(W13))) == 2

    run = apply(lab, W13)

    assert run.status == "ok", run.result
    assert run.result["changed"] is True
    wait_until(lambda: settled(lab, "w-13", boots=3))
    assert len(cri_entries(lab.config(W13))) == 1


def test_apply_on_114_is_live_without_a_reboot_and_idempotent(lab: LabTalos):
    first = apply(lab, W14, _ansible_diff=True)

    assert first.status == "ok", first.result
    assert first.result["changed"] is True and first.result["reboot_required"] is False
    assert first.result["mechanism"] == "CRICustomizationConfig"
    assert "+kind: CRICustomizationConfig" in first.result["diff"]["prepared"]
    assert lab.cluster.metrics_address("w-14") == "127.0.0.1:11234"
    assert lab.state("w-14")["boots"] == 1
    assert ("cri_restarted", "w-14") in lab.hooks.calls

    second = apply(lab, W14)

    assert (second.status, second.result["changed"]) == ("ok", False)
    assert len(cri_documents(lab.config(W14))) == 1


def test_apply_on_115_writes_the_plugin_table(lab: LabTalos):
    run = apply(lab, W15, metrics_address="127.0.0.1:11300")

    assert run.status == "ok", run.result
    (document,) = cri_documents(lab.config(W15))
    assert document["content"] == '[plugins."io.containerd.server.v1.metrics"]\n  address = "127.0.0.1:11300"\n'
    assert lab.cluster.metrics_address("w-15") == "127.0.0.1:11300"


def test_absent_on_114_removes_the_document_live(lab: LabTalos):
    assert apply(lab, W14).result["changed"] is True

    removed = apply(lab, W14, state="absent")

    assert removed.status == "ok", removed.result
    assert removed.result["changed"] is True and removed.result["reboot_required"] is False
    assert cri_documents(lab.config(W14)) == []
    assert lab.cluster.metrics_address("w-14") is None
    assert apply(lab, W14, state="absent").result["changed"] is False


def test_absent_on_113_removes_the_entry_at_the_next_boot(lab: LabTalos):
    assert apply(lab, W13).status == "ok"
    wait_until(lambda: settled(lab, "w-13", boots=2))

    removed = apply(lab, W13, state="absent")

    assert removed.status == "ok", removed.result
    assert removed.result["reboot_required"] is True
    wait_until(lambda: settled(lab, "w-13", boots=3))
    assert cri_entries(lab.config(W13)) == []
    assert lab.cluster.metrics_address("w-13") is None


def test_staged_mode_writes_the_next_boot_config_and_asks_for_a_reboot(lab: LabTalos):
    run = apply(lab, W13, mode="staged")

    assert run.status == "ok", run.result
    assert run.result["reboot_required"] is True
    assert len(cri_entries(lab.config(W13, "persistent"))) == 1
    assert cri_entries(lab.config(W13)) == []
    assert lab.state("w-13")["state"] == "running"


def test_a_non_loopback_address_is_refused_before_talking_to_the_node(lab: LabTalos):
    before = lab.config(W14)

    run = apply(lab, W14, metrics_address="0.0.0.0:11234")

    assert run.status == "failed"
    assert W14 in run.result["msg"] and "without TLS or authentication" in run.result["msg"]
    assert lab.config(W14) == before


def test_a_non_loopback_address_with_the_override_is_applied(lab: LabTalos):
    run = apply(lab, W14, metrics_address="0.0.0.0:11234", allow_non_loopback=True)

    assert run.status == "ok", run.result
    assert lab.cluster.metrics_address("w-14") == "0.0.0.0:11234"


def test_no_reboot_mode_on_113_fails_with_talosctl_stderr_the_node_and_a_hint(lab: LabTalos):
    run = apply(lab, W13, mode="no-reboot")

    assert run.status == "failed"
    message = run.result["msg"]
    assert message.startswith(f"talosctl failed on node {W13}: ")
    assert "patch machineconfig --patch @" in message and "--mode no-reboot" in message
    assert "can't be applied in immediate mode" in message
    assert "use mode auto" in message
    assert cri_entries(lab.config(W13)) == []
    assert lab.state("w-13")["state"] == "running"


def test_an_unreachable_node_fails_with_the_command_and_its_error(lab: LabTalos):
    run = apply(lab, "127.0.29.9")

    assert run.status == "failed"
    assert "talosctl failed on node 127.0.29.9" in run.result["msg"]
    assert "version --short" in run.result["msg"] and "no route to host" in run.result["msg"]


def test_through_ansible_playbook_check_then_apply_then_facts(lab: LabTalos, tmp_path: Path):
    """Ansible packages module_utils/talos.py with the modules: the same run as a play, with --check --diff."""
    args = lab.module_args(W14)
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    tasks = [
        {"name": "enable", "talos_machineconfig": args, "register": "enabled"},
        {"name": "facts", "talos_node_facts": {k: v for k, v in args.items() if k != "mode"}},
    ]

    checked = run_playbook(tasks, env, check=True, extra_args=["--diff"])

    assert checked["__rc__"] == 0, failures(checked)
    assert checked["enable"]["changed"] is True
    assert "+kind: CRICustomizationConfig" in checked["enable"]["diff"]["prepared"]
    assert checked["facts"]["containerd_metrics_address"] is None
    assert cri_documents(lab.config(W14)) == []

    applied = run_playbook(tasks, env)

    assert applied["__rc__"] == 0, failures(applied)
    assert applied["enable"]["changed"] is True and applied["enable"]["reboot_required"] is False
    assert applied["facts"]["containerd_metrics_address"] == "127.0.0.1:11234"
    assert applied["facts"]["changed"] is False


# --- wait: the node back and healthy before the module returns ---------------------------------------


def test_wait_on_113_returns_once_the_node_runs_a_new_boot_with_the_setting(lab: LabTalos):
    boot_before = lab.state("w-13")["boot_id"]

    run = apply(lab, W13, wait=True, wait_interval=0.05, wait_timeout=30)

    assert run.status == "ok", run.result
    result = run.result
    assert result["changed"] is True and result["reboot_required"] is True and result["rebooted"] is True
    assert result["boot_id_before"] == boot_before
    assert result["health"]["boot_id"] == lab.state("w-13")["boot_id"] != boot_before
    assert result["health"]["unmet"] == []
    assert result["health"]["containerd_metrics_address"] == "127.0.0.1:11234"
    assert lab.state("w-13")["state"] == "running" and lab.state("w-13")["boots"] == 2
    assert lab.cluster.metrics_address("w-13") == "127.0.0.1:11234"


def test_wait_on_114_checks_the_live_change_without_a_reboot(lab: LabTalos):
    run = apply(lab, W14, wait=True, mode="no-reboot", wait_interval=0.05)

    assert run.status == "ok", run.result
    assert run.result["rebooted"] is False and run.result["health"]["unmet"] == []
    assert lab.state("w-14")["boots"] == 1


def test_wait_on_the_control_plane_includes_etcd(lab: LabTalos):
    run = apply(lab, CP, wait=True, etcd_members=1, wait_interval=0.05, wait_timeout=30)

    assert run.status == "ok", run.result
    assert run.result["rebooted"] is True
    assert [m["hostname"] for m in run.result["health"]["etcd"]["members"]] == ["cp-1"]


def test_wait_with_nothing_to_change_still_checks_the_node(lab: LabTalos):
    assert apply(lab, W14).result["changed"] is True

    run = apply(lab, W14, wait=True, etcd_members=3)

    assert run.status == "ok", run.result
    assert run.result["changed"] is False and run.result["rebooted"] is False
    assert "boot_id_before" not in run.result


def test_wait_for_a_node_that_never_returns_fails_with_what_was_last_seen(lab: LabTalos):
    lab.cluster.inject_fault("w-13", "never_returns")

    run = apply(lab, W13, wait=True, wait_timeout=1, wait_interval=0.1)

    assert run.status == "failed"
    # The last observation may end past the timeout (later still on a loaded machine); the message says when.
    assert re.match(
        rf"node {re.escape(W13)}: not healthy (\d+) s after the change; last seen: no answer from", run.result["msg"]
    )
    assert run.result["waited"] >= 1
    assert "connection refused" in run.result["msg"]
    assert run.result["changed"] is True and run.result["rebooted"] is False


def test_wait_on_an_absent_change_waits_for_the_listener_to_be_gone(lab: LabTalos):
    assert apply(lab, W13, wait=True, wait_interval=0.05, wait_timeout=30).status == "ok"

    run = apply(lab, W13, state="absent", wait=True, wait_interval=0.05, wait_timeout=30)

    assert run.status == "ok", run.result
    assert run.result["rebooted"] is True and run.result["health"]["containerd_metrics_address"] is None
    assert lab.cluster.metrics_address("w-13") is None


def test_wait_refuses_modes_that_do_not_take_effect_by_themselves(lab: LabTalos):
    before = lab.config(W13, "persistent")

    run = apply(lab, W13, wait=True, mode="staged")

    assert run.status == "failed" and "wait needs mode auto or no-reboot" in run.result["msg"]
    assert lab.config(W13, "persistent") == before
