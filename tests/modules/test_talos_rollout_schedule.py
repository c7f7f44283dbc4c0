"""The rollout schedule (role talos_containerd_metrics, filter plugin): order, what each node needs, what stops it."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
_SPEC = importlib.util.spec_from_file_location(
    "rollout_schedule", ROOT / "roles/talos_containerd_metrics/filter_plugins/rollout_schedule.py"
)
schedule_module = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(schedule_module)
rollout_schedule = schedule_module.rollout_schedule
batch_label = schedule_module.batch_label

MARK = "alloy-migration.io/cordoned-by=talos_containerd_metrics"
CONTROL_PLANE = ["cp-1"]


def planned(name: str, version: str = "v1.13.2", *, done: bool = False, **extra: Any) -> dict[str, Any]:
    """A talos_metrics_plan entry; 1.13 nodes reboot for their change, 1.14 ones apply live."""
    files = version < "v1.14"
    entry = {
        "name": name,
        "address": f"10.0.0.{len(name)}",
        "talos_version": version,
        "machine_type": "controlplane" if name.startswith("cp") else "worker",
        "control_plane": name.startswith("cp"),
        "mechanism": "machine.files" if files else "CRICustomizationConfig",
        "patches": 0 if done else 1,
        "reboot_required": files and not done,
        "in_effect": done,
        "etcd_problems": [],
    }
    return {**entry, **extra}


def kube_node(name: str, *, ready: bool = True, cordoned: bool = False, ours: bool = False) -> dict[str, Any]:
    annotations = {"alloy-migration.io/cordoned-by": "talos_containerd_metrics"} if ours else {}
    return {
        "metadata": {"name": name, "annotations": annotations},
        "spec": {"unschedulable": True} if cordoned else {},
        "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


def schedule(plan: list[dict[str, Any]], kube: list[dict[str, Any]] | None = None, state: str = "present") -> dict:
    kube = kube if kube is not None else [kube_node(entry["name"]) for entry in plan]
    return rollout_schedule(plan, kube, CONTROL_PLANE, MARK, state)


def test_rebooting_workers_go_first_then_live_ones_then_the_control_plane():
    plan = [planned("cp-1"), planned("w-live", "v1.14.1"), planned("w-boot")]

    result = schedule(plan)

    assert result["order"] == ["w-boot", "w-live", "cp-1"]
    assert result["queues"] == {"reboot": ["w-boot"], "live": ["w-live"], "control_plane": ["cp-1"]}
    assert [result["nodes"][n]["label"] for n in result["order"]] == [
        "[node 1/3 w-boot]",
        "[node 2/3 w-live]",
        "[node 3/3 cp-1]",
    ]
    assert result["report"][0] == (
        "[node 1/3 w-boot] Talos v1.13.2: will enable containerd metrics via machine.files (drain + reboot)"
    )
    assert result["report"][1].endswith("via CRICustomizationConfig (live, no reboot)")


def test_a_node_keeps_its_number_once_done_and_is_not_queued():
    first = schedule([planned("w-1"), planned("w-2"), planned("w-3", "v1.14.1")])
    again = schedule([planned("w-1", done=True), planned("w-2"), planned("w-3", "v1.14.1", done=True)])

    for name in ("w-1", "w-2", "w-3"):
        assert again["nodes"][name]["label"] == first["nodes"][name]["label"]
    assert again["queues"] == {"reboot": ["w-2"], "live": [], "control_plane": []}
    assert again["nodes"]["w-1"]["what"] == "[node 1/3 w-1] Talos v1.13.2: already done, nothing to change"


def test_a_node_an_earlier_run_left_cordoned_is_finished_even_when_its_config_is_done():
    plan = [planned("w-1", done=True), planned("w-2", done=True)]
    kube = [kube_node("w-1", cordoned=True, ours=True), kube_node("w-2")]

    result = schedule(plan, kube)

    assert result["nodes"]["w-1"]["action"] == "finish"
    assert result["nodes"]["w-1"]["cordoned_by_us"] is True
    assert result["queues"]["reboot"] == ["w-1"]
    assert "configured by an earlier run; finishing its checks" in result["nodes"]["w-1"]["what"]
    assert result["foreign_cordons"] == []


def test_a_setting_configured_but_not_in_effect_is_finished_too():
    result = schedule([planned("w-1", done=True, in_effect=False)])

    assert result["nodes"]["w-1"]["action"] == "finish"


def test_what_stops_the_rollout_before_it_starts():
    plan = [
        planned("cp-1", etcd_problems=["etcd: 2 of 3 members"]),
        planned("w-1", machine_type="controlplane", control_plane=True),
        planned("w-2"),
        planned("w-ghost"),
    ]
    kube = [
        kube_node("cp-1"),
        kube_node("w-1", ready=False),
        kube_node("w-2", cordoned=True),
        kube_node("other", cordoned=True, ours=True),
    ]

    result = schedule(plan, kube)

    assert result["not_ready"] == ["w-1"]
    assert result["foreign_cordons"] == ["w-2"]
    assert result["missing"] == ["w-ghost"]
    assert result["role_mismatches"] == ["w-1 (inventory: worker, Talos: controlplane)"]
    assert result["etcd_problems"] == ["cp-1: etcd: 2 of 3 members"]


def test_absent_says_remove_and_a_live_removal_that_touches_files_goes_with_the_rebooting_workers():
    plan = [planned("w-1", "v1.14.1", reboot_required=True), planned("w-2", "v1.14.1")]

    result = schedule(plan, state="absent")

    assert result["queues"]["reboot"] == ["w-1"] and result["queues"]["live"] == ["w-2"]
    assert "will remove containerd metrics via CRICustomizationConfig (drain + reboot)" in result["report"][0]


def test_batch_labels_name_every_node_of_the_batch_in_rollout_order():
    result = schedule([planned("w-1", "v1.14.1"), planned("w-2", "v1.14.1"), planned("w-3", "v1.14.1")])

    assert batch_label(["w-2"], result) == "[node 2/3 w-2]"
    assert batch_label(["w-3", "w-1"], result) == "[nodes 1,3/3 w-1, w-3]"
