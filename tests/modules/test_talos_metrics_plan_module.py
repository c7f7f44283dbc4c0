"""talos_metrics_plan end to end: every node of a lab Talos cluster read at once through the talosctl shim."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import talos_machineconfig
import talos_metrics_plan
from ansible.module_utils.talos import read_many
from talos_module_support import CP, SHIM, W13, W14, W15, LabTalos, ModuleRun, lab_talos, run_module, wait_until

NODES = [
    {"name": "w-13", "address": W13},
    {"name": "w-14", "address": W14},
    {"name": "w-15", "address": W15},
    {"name": "cp-1", "address": CP},
]


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[LabTalos]:
    with lab_talos(tmp_path) as running:
        yield running


def plan(lab: LabTalos, nodes: list[dict] = NODES, **extra: object) -> ModuleRun:
    args = {k: v for k, v in lab.module_args("unused", **extra).items() if k != "node"}
    return run_module(talos_metrics_plan.main, {**args, "nodes": nodes})


def by_name(run: ModuleRun) -> dict[str, dict]:
    return {node["name"]: node for node in run.result["nodes"]}


def test_a_fresh_cluster_needs_every_node_and_talos_says_which_reboot(lab: LabTalos):
    before = {spec: lab.config(spec) for spec in (W13, W14, CP)}

    run = plan(lab, etcd_members=1)

    assert run.status == "ok", run.result
    assert run.result["changed"] is False
    assert [node["name"] for node in run.result["nodes"]] == ["w-13", "w-14", "w-15", "cp-1"]
    assert run.result["pending"] == ["w-13", "w-14", "w-15", "cp-1"]
    nodes = by_name(run)
    assert (nodes["w-13"]["mechanism"], nodes["w-13"]["reboot_required"]) == ("machine.files", True)
    assert (nodes["w-14"]["mechanism"], nodes["w-14"]["reboot_required"]) == ("CRICustomizationConfig", False)
    assert nodes["cp-1"]["control_plane"] is True and nodes["w-13"]["control_plane"] is False
    assert "+kind: CRICustomizationConfig" in nodes["w-15"]["diff"]
    assert nodes["cp-1"]["etcd_problems"] == [] and nodes["cp-1"]["etcd"]["members"][0]["hostname"] == "cp-1"
    assert nodes["w-13"]["etcd"] is None
    assert all(not node["configured"] and not node["in_effect"] for node in nodes.values())
    assert {spec: lab.config(spec) for spec in (W13, W14, CP)} == before


def test_nodes_already_done_are_not_pending_and_need_no_dry_run(lab: LabTalos):
    assert run_module(talos_machineconfig.main, lab.module_args(W14)).status == "ok"
    assert run_module(talos_machineconfig.main, lab.module_args(W13)).status == "ok"
    wait_until(lambda: lab.state("w-13")["boots"] == 2 and lab.state("w-13")["state"] == "running")

    run = plan(lab)

    assert run.status == "ok", run.result
    assert run.result["pending"] == ["w-15", "cp-1"]
    nodes = by_name(run)
    assert nodes["w-13"]["configured"] and nodes["w-13"]["in_effect"] and nodes["w-13"]["diff"] is None
    assert nodes["w-13"]["reboot_required"] is False and nodes["w-14"]["patches"] == 0


def test_absent_plans_the_removal_where_the_setting_is(lab: LabTalos):
    assert run_module(talos_machineconfig.main, lab.module_args(W14)).status == "ok"

    run = plan(lab, state="absent")

    assert run.status == "ok", run.result
    assert run.result["pending"] == ["w-14"]
    assert by_name(run)["w-14"]["reboot_required"] is False
    assert by_name(run)["w-13"]["in_effect"] is True


def test_etcd_seen_short_of_members_is_reported_per_control_plane_node(lab: LabTalos):
    run = plan(lab, [{"name": "cp-1", "address": CP}], etcd_members=3)

    assert run.status == "ok", run.result
    assert run.result["nodes"][0]["etcd_problems"] == ["etcd: 1 of 3 members"]


def test_every_node_that_cannot_be_planned_is_named_and_nothing_changes(lab: LabTalos):
    lab.patch(W13, FOREIGN_FILE_PATCH)
    wait_until(lambda: lab.state("w-13")["boots"] == 2 and lab.state("w-13")["state"] == "running")
    nodes = [*NODES, {"name": "ghost", "address": "127.0.29.9"}]

    run = plan(lab, nodes)

    assert run.status == "failed"
    message = run.result["msg"]
    assert message.startswith("2 of 5 nodes cannot be planned; nothing was changed.")
    assert "node w-13 (127.0.21.1): machine.files already has an entry" in message
    assert "talosctl failed on node ghost (127.0.29.9)" in message and "no route to host" in message


def test_a_non_loopback_address_is_refused_before_reading_any_node(lab: LabTalos):
    run = plan(lab, metrics_address="0.0.0.0:11234")

    assert run.status == "failed" and "without TLS or authentication" in run.result["msg"]


def test_a_node_entry_without_an_address_is_refused(lab: LabTalos):
    run = plan(lab, [{"name": "w-13"}])

    assert run.status == "failed" and run.result["msg"].startswith("nodes[0] needs a name and an address")


FOREIGN_FILE_PATCH = """\
machine:
  files:
    - content: |
        [metrics]
          address = "127.0.0.1:11234"
        [plugins."io.containerd.grpc.v1.cri"]
          enable_unprivileged_ports = true
      path: /etc/cri/conf.d/20-customization.part
      op: create
"""


def test_all_nodes_are_read_in_two_talosctl_calls_and_a_missing_node_makes_it_step_aside(lab: LabTalos):
    addresses = [node["address"] for node in NODES]

    together = read_many(addresses, str(lab.talosconfig), str(SHIM), 30)
    with_a_ghost = read_many([*addresses, "127.0.29.9"], str(lab.talosconfig), str(SHIM), 30)

    assert together is not None and list(together) == addresses
    assert {address: str(version) for address, (version, _) in together.items()} == {
        W13: "v1.13.2",
        W14: "v1.14.1",
        W15: "v1.15.0",
        CP: "v1.13.2",
    }
    assert together[CP][1][0]["machine"]["type"] == "controlplane"
    assert with_a_ghost is None
