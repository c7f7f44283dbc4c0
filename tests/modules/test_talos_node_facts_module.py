"""talos_node_facts: read-only node state through the lab's talosctl shim, and through a stand-in talosctl
for the failures the lab does not produce (etcd down on a control-plane node, a boot ID read refused)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import talos_node_facts
from talos_module_support import CP, W13, W14, LabTalos, ModuleRun, lab_talos, run_module, wait_until

BOOT_ID = "8f1ac2e4-5c1d-4bd2-9d3e-6a1b2c3d4e5f"


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[LabTalos]:
    with lab_talos(tmp_path) as running:
        yield running


def facts(lab: LabTalos, node: str, **extra: object) -> ModuleRun:
    return run_module(talos_node_facts.main, lab.module_args(node, **extra))


def test_worker_facts_follow_the_metrics_patch_and_never_report_a_change(lab: LabTalos):
    before = facts(lab, W14, _ansible_check_mode=True)
    assert before.status == "ok", before.result
    assert before.result["changed"] is False
    assert before.result["talos_version"] == "v1.14.1"
    assert before.result["machine_type"] == "worker"
    assert before.result["cri"] == {"state": "Running", "health": "OK"}
    assert before.result["containerd_metrics_address"] is None
    assert before.result["etcd"] is None

    lab.patch(
        W14,
        'apiVersion: v1alpha1\nkind: CRICustomizationConfig\nname: m\ncontent: |\n  [metrics]\n    address = "127.0.0.1:11234"\n',
    )

    after = facts(lab, W14)
    assert after.result["containerd_metrics_address"] == "127.0.0.1:11234"
    assert after.result["changed"] is False


def test_boot_id_is_the_nodes_and_changes_across_a_reboot(lab: LabTalos):
    before = facts(lab, W13)
    assert before.status == "ok", before.result
    assert before.warnings == []
    assert before.result["boot_id"] == lab.state("w-13")["boot_id"]

    lab.cluster.reboot("w-13")
    wait_until(lambda: lab.state("w-13")["state"] == "running")

    after = facts(lab, W13)
    assert after.result["boot_id"] == lab.state("w-13")["boot_id"] != before.result["boot_id"]


def test_a_node_that_cannot_show_its_boot_id_yields_null_and_a_warning(tmp_path: Path):
    binary = fake_talosctl(tmp_path, etcd_fails=False, boot_id=None)

    run = run_module(talos_node_facts.main, {"node": "10.5.0.2", "talosctl_path": str(binary)})

    assert run.status == "ok", run.result
    assert run.result["boot_id"] is None
    (warning,) = run.warnings
    assert warning.startswith("node 10.5.0.2: no boot ID: ") and "read /proc/sys/kernel/random/boot_id" in warning
    assert "PermissionDenied" in warning


def test_control_plane_facts_carry_its_etcd_membership(lab: LabTalos):
    run = facts(lab, CP)

    assert run.status == "ok", run.result
    etcd = run.result["etcd"]
    assert etcd["error"] is None
    assert etcd["is_leader"] is True and etcd["learner"] is False
    assert etcd["member_id"] == etcd["leader_id"] and len(etcd["member_id"]) == 16
    assert etcd["members"] == [{"id": etcd["member_id"], "hostname": "cp-1", "learner": False}]


def test_an_unreachable_node_fails_with_the_node_and_the_command(lab: LabTalos):
    run = facts(lab, "127.0.29.9")

    assert run.status == "failed"
    assert run.result["msg"].startswith("talosctl failed on node 127.0.29.9: ")
    assert "version --short" in run.result["msg"]


GET_MC = """\
node: 10.5.0.2
metadata:
    namespace: config
    type: MachineConfigs.config.talos.dev
    id: v1alpha1
spec: |
    version: v1alpha1
    machine:
        type: controlplane
"""
SERVICE = "NODE     10.5.0.2\nID       cri\nSTATE    Running\nHEALTH   Fail\nEVENTS   [Running]: Health check failed (1s ago)\n"
ETCD_STATUS = "NODE       MEMBER   LEADER   LEARNER   ERRORS\n10.5.0.2   aa       bb       false     \n"
ETCD_MEMBERS = "NODE       ID   HOSTNAME   PEER URLS   CLIENT URLS   LEARNER\n10.5.0.2   aa   cp-1       x           y             false\n"
READ_DENIED = "error reading file: rpc error: code = PermissionDenied desc = not authorized\n"
ETCD_DOWN = "error from node 10.5.0.2: rpc error: code = FailedPrecondition desc = etcd is not running on this node\n"


def fake_talosctl(tmp_path: Path, etcd_fails: bool, boot_id: str | None = BOOT_ID) -> Path:
    """A talosctl stand-in printing what a real one prints for a control-plane node, `read` included."""
    answers = {
        "version": (0, "Client:\nTalos v1.14.1\nServer:\n\tNODE:        10.5.0.2\n\tTag:         v1.14.1\n", ""),
        "get": (0, GET_MC, ""),
        "read": (0, f"{boot_id}\n", "") if boot_id else (1, "", READ_DENIED),
        "service": (0, SERVICE, ""),
        "etcd status": (1, "", ETCD_DOWN) if etcd_fails else (0, ETCD_STATUS, ""),
        "etcd members": (0, ETCD_MEMBERS, ""),
    }
    script = tmp_path / "talosctl"
    script.write_text(
        f"#!{sys.executable}\n"
        "import sys\n"
        f"answers = {answers!r}\n"
        "words = sys.argv[1:3] if sys.argv[1] == 'etcd' else sys.argv[1:2]\n"
        "rc, out, err = answers[' '.join(words)]\n"
        "sys.stdout.write(out)\n"
        "sys.stderr.write(err)\n"
        "sys.exit(rc)\n"
    )
    script.chmod(0o755)
    return script


def test_boot_id_and_etcd_as_a_real_talosctl_prints_them(tmp_path: Path):
    binary = fake_talosctl(tmp_path, etcd_fails=False)

    run = run_module(talos_node_facts.main, {"node": "10.5.0.2", "talosctl_path": str(binary)})

    assert run.status == "ok", run.result
    assert run.warnings == []
    assert run.result["boot_id"] == BOOT_ID
    assert run.result["cri"] == {"state": "Running", "health": "Fail"}
    assert run.result["etcd"] == {
        "member_id": "aa",
        "leader_id": "bb",
        "is_leader": False,
        "learner": False,
        "errors": "",
        "members": [{"id": "aa", "hostname": "cp-1", "learner": False}],
        "error": None,
    }


def test_an_etcd_failure_is_reported_in_the_facts_not_as_a_task_failure(tmp_path: Path):
    binary = fake_talosctl(tmp_path, etcd_fails=True)

    run = run_module(talos_node_facts.main, {"node": "10.5.0.2", "talosctl_path": str(binary)})

    assert run.status == "ok", run.result
    assert "etcd is not running" in run.result["etcd"]["error"]
    assert run.result["etcd"]["member_id"] is None and run.result["etcd"]["members"] == []
