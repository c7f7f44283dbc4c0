"""The apply is skipped only when the dry run says, object by object, that nothing would change."""

from __future__ import annotations

from filter_plugins.k8s_dry_run import k8s_pending_changes

MANIFESTS = [
    {"kind": "ServiceAccount", "metadata": {"name": "alloy", "namespace": "monitoring"}},
    {"kind": "ClusterRole", "metadata": {"name": "alloy"}},
]


def dry_run(*changed: bool) -> dict:
    return {"changed": False, "result": {"results": [{"changed": value, "result": {}} for value in changed]}}


def test_nothing_pending_when_no_object_would_change():
    assert k8s_pending_changes(dry_run(False, False), MANIFESTS) == []


def test_the_objects_that_would_change_are_named():
    assert k8s_pending_changes(dry_run(False, True), MANIFESTS) == ["ClusterRole alloy"]


def test_an_unreadable_result_counts_every_object_as_pending():
    everything = ["ServiceAccount monitoring/alloy", "ClusterRole alloy"]
    assert k8s_pending_changes({"changed": False, "result": {"kind": "ServiceAccount"}}, MANIFESTS) == everything
    assert k8s_pending_changes({"skipped": True}, MANIFESTS) == everything
    assert k8s_pending_changes(dry_run(False), MANIFESTS) == everything
