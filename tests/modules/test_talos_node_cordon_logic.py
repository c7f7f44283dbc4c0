"""talos_node_cordon's drain rules without a cluster: which pods a drain evicts, keeps, or refuses to touch,
as `kubectl drain --ignore-daemonsets` sorts them."""

from __future__ import annotations

import pytest
from talos_node_cordon import sort_pods

RULES = {"force": False, "delete_emptydir_data": False}


def pod(name: str, owner: str | None = None, controller: bool | None = True, **extra: object) -> dict:
    meta: dict = {"name": name, "namespace": "apps", **extra.pop("meta", {})}
    if owner:
        ref = {"kind": owner, "name": f"{name}-owner", "uid": "u"}
        if controller is not None:
            ref["controller"] = controller
        meta["ownerReferences"] = [ref]
    return {"metadata": meta, "spec": extra.pop("spec", {}), "status": extra.pop("status", {"phase": "Running"})}


def names(pods: list[dict]) -> list[str]:
    return [p["metadata"]["name"] for p in pods]


def test_daemonset_and_mirror_pods_stay_the_others_go():
    pods = [
        pod("web", "ReplicaSet"),
        pod("agent", "DaemonSet"),
        pod("static", meta={"annotations": {"kubernetes.io/config.mirror": "hash"}}),
        pod("done-job", status={"phase": "Succeeded"}),
    ]
    evict, kept, refused = sort_pods(pods, RULES)
    assert names(evict) == ["web", "done-job"]
    assert names(kept) == ["agent", "static"]
    assert refused == []


@pytest.mark.parametrize("controller", [False, None], ids=["controller false", "no controller field"])
def test_an_owner_reference_that_is_not_the_controller_leaves_the_pod_unmanaged(controller):
    evict, _, refused = sort_pods([pod("adopted", "ConfigMap", controller=controller)], RULES)
    assert evict == []
    assert refused == ["apps/adopted (no controller would recreate it: set force to evict it)"]
    assert names(sort_pods([pod("adopted", "ConfigMap", controller=controller)], {**RULES, "force": True})[0]) == [
        "adopted"
    ]


def test_emptydir_data_is_evicted_only_when_allowed():
    cache = pod("cache", "ReplicaSet", spec={"volumes": [{"name": "scratch", "emptyDir": {}}]})
    assert sort_pods([cache], RULES)[2] == [
        "apps/cache (its emptyDir data would be lost: set delete_emptydir_data to evict it)"
    ]
    assert names(sort_pods([cache], {**RULES, "delete_emptydir_data": True})[0]) == ["cache"]
