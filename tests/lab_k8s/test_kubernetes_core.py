"""kubernetes.core, the toolkit's client, against the lab API over real HTTPS."""

from __future__ import annotations

from tests.conftest import failures, run_playbook

NS = "kcore"


def _cm(data: dict) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": NS}, "data": data}


def _workload(kind: str, name: str, replicas: int | None = 2) -> dict:
    labels = {"app": name}
    spec: dict = {
        "selector": {"matchLabels": labels},
        "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "main", "image": "nginx:1.27"}]}},
    }
    if replicas is not None:
        spec["replicas"] = replicas
    if kind == "StatefulSet":
        spec["serviceName"] = name
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name, "namespace": NS}, "spec": spec}


def test_object_lifecycle_create_rerun_update_check_delete(lab):
    tasks = [
        {"name": "namespace", "kubernetes.core.k8s": {"name": NS, "api_version": "v1", "kind": "Namespace"}},
        {"name": "create", "kubernetes.core.k8s": {"definition": _cm({"a": "1"})}, "register": "r"},
        {"name": "rerun", "kubernetes.core.k8s": {"definition": _cm({"a": "1"})}},
        {"name": "update", "kubernetes.core.k8s": {"definition": _cm({"a": "2"})}},
        {"name": "check mode update", "kubernetes.core.k8s": {"definition": _cm({"a": "3"})}, "check_mode": True},
        {
            "name": "read after check",
            "kubernetes.core.k8s_info": {"kind": "ConfigMap", "namespace": NS, "name": "settings"},
        },
        {"name": "delete", "kubernetes.core.k8s": {"definition": _cm({}), "state": "absent", "wait": True}},
        {
            "name": "read after delete",
            "kubernetes.core.k8s_info": {"kind": "ConfigMap", "namespace": NS, "name": "settings"},
        },
    ]
    res = run_playbook(tasks, lab.env())
    assert res["__rc__"] == 0, failures(res)
    assert res["create"]["changed"] is True
    assert res["rerun"]["changed"] is False
    assert res["update"]["changed"] is True
    assert res["update"]["result"]["data"] == {"a": "2"}
    assert (
        res["update"]["result"]["metadata"]["resourceVersion"] != res["create"]["result"]["metadata"]["resourceVersion"]
    )
    assert res["check mode update"]["changed"] is True
    assert res["check mode update"]["result"]["data"] == {"a": "3"}
    assert res["read after check"]["resources"][0]["data"] == {"a": "2"}, "check mode must persist nothing"
    assert res["delete"]["changed"] is True
    assert res["read after delete"]["resources"] == []


def test_apply_and_server_side_apply_are_idempotent(lab):
    ssa = {"field_manager": "alloy-migration", "force_conflicts": True}
    deployment = _workload("Deployment", "ssa-web")
    tasks = [
        {"name": "namespace", "kubernetes.core.k8s": {"name": NS, "api_version": "v1", "kind": "Namespace"}},
        {
            "name": "apply",
            "kubernetes.core.k8s": {
                "definition": _cm({"x": "1"}) | {"metadata": {"name": "applied", "namespace": NS}},
                "apply": True,
            },
        },
        {
            "name": "apply again",
            "kubernetes.core.k8s": {
                "definition": _cm({"x": "1"}) | {"metadata": {"name": "applied", "namespace": NS}},
                "apply": True,
            },
        },
        {
            "name": "ssa create",
            # Settled first: controllers updating status between the module's GET and PATCH would show as a change.
            "kubernetes.core.k8s": {"definition": deployment, "apply": True, "server_side_apply": ssa, "wait": True},
        },
        {
            "name": "ssa again",
            "kubernetes.core.k8s": {"definition": deployment, "apply": True, "server_side_apply": ssa},
        },
        {
            "name": "ssa scale",
            "kubernetes.core.k8s": {
                "definition": deployment | {"spec": deployment["spec"] | {"replicas": 3}},
                "apply": True,
                "server_side_apply": ssa,
            },
        },
    ]
    res = run_playbook(tasks, lab.env())
    assert res["__rc__"] == 0, failures(res)
    assert res["apply"]["changed"] is True
    assert "kubectl.kubernetes.io/last-applied-configuration" in res["apply"]["result"]["metadata"]["annotations"]
    assert res["apply again"]["changed"] is False
    assert res["ssa create"]["changed"] is True
    managers = [m["manager"] for m in res["ssa create"]["result"]["metadata"]["managedFields"]]
    assert managers == ["alloy-migration"]
    assert res["ssa again"]["changed"] is False
    assert res["ssa scale"]["changed"] is True
    assert res["ssa scale"]["result"]["spec"]["replicas"] == 3


def test_wait_for_deployment_statefulset_daemonset(lab):
    tasks = [
        {"name": "namespace", "kubernetes.core.k8s": {"name": NS, "api_version": "v1", "kind": "Namespace"}},
        *[
            {
                "name": f"wait {kind}",
                "kubernetes.core.k8s": {
                    "definition": _workload(kind, f"w-{kind.lower()}", None if kind == "DaemonSet" else 3),
                    "wait": True,
                    "wait_timeout": 60,
                    "wait_sleep": 1,
                },
            }
            for kind in ("Deployment", "StatefulSet", "DaemonSet")
        ],
    ]
    res = run_playbook(tasks, lab.env())
    assert res["__rc__"] == 0, failures(res)
    dep = res["wait Deployment"]["result"]["status"]
    assert dep["readyReplicas"] == dep["availableReplicas"] == 3
    sts = res["wait StatefulSet"]["result"]["status"]
    assert sts["readyReplicas"] == sts["replicas"] == 3
    assert sts["currentRevision"] == sts["updateRevision"]
    ds = res["wait DaemonSet"]["result"]["status"]
    # No toleration for the control-plane taint: one pod per worker node.
    assert ds["desiredNumberScheduled"] == ds["numberReady"] == 11


def test_info_with_label_and_field_selectors(lab):
    tasks = [
        {
            "name": "by label",
            "kubernetes.core.k8s_info": {
                "kind": "Pod",
                "namespace": "shop",
                "label_selectors": ["app.kubernetes.io/name=frontend"],
            },
        },
        {
            "name": "by set label",
            "kubernetes.core.k8s_info": {
                "kind": "Pod",
                "namespace": "shop",
                "label_selectors": ["app.kubernetes.io/name in (cart,checkout)"],
            },
        },
        {
            "name": "by node",
            "kubernetes.core.k8s_info": {"kind": "Pod", "field_selectors": ["spec.nodeName=talos-worker-1"]},
        },
        {
            "name": "by phase",
            "kubernetes.core.k8s_info": {
                "kind": "Pod",
                "namespace": "shop",
                "field_selectors": ["status.phase!=Running"],
            },
        },
    ]
    res = run_playbook(tasks, lab.env())
    assert res["__rc__"] == 0, failures(res)
    frontend = res["by label"]["resources"]
    assert len(frontend) == 3
    assert all(p["metadata"]["labels"]["app.kubernetes.io/name"] == "frontend" for p in frontend)
    assert {p["metadata"]["labels"]["app.kubernetes.io/name"] for p in res["by set label"]["resources"]} == {
        "cart",
        "checkout",
    }
    on_node = res["by node"]["resources"]
    assert on_node and all(p["spec"]["nodeName"] == "talos-worker-1" for p in on_node)
    assert res["by phase"]["resources"] == []


def test_drain_evicts_honours_pdb_and_uncordons(lab):
    guarded = _workload("Deployment", "guarded", 1)
    pdb = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "guarded", "namespace": NS},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "guarded"}}},
    }
    drain_opts = {"ignore_daemonsets": True, "wait_timeout": 30}
    tasks = [
        {"name": "namespace", "kubernetes.core.k8s": {"name": NS, "api_version": "v1", "kind": "Namespace"}},
        {"name": "guarded", "kubernetes.core.k8s": {"definition": guarded, "wait": True}},
        {"name": "pdb", "kubernetes.core.k8s": {"definition": pdb}},
        {
            "name": "find",
            "kubernetes.core.k8s_info": {"kind": "Pod", "namespace": NS, "label_selectors": ["app=guarded"]},
            "register": "found",
        },
        {
            "name": "blocked drain",
            "kubernetes.core.k8s_drain": {
                "name": "{{ found.resources[0].spec.nodeName }}",
                # k8s_drain retries a refused eviction until wait_timeout: a short one keeps the test short.
                "delete_options": {**drain_opts, "wait_timeout": 5},
            },
            "ignore_errors": True,
        },  # the failure is what this test asserts
        {"name": "remove pdb", "kubernetes.core.k8s": {"definition": pdb, "state": "absent"}},
        {
            "name": "drain",
            "kubernetes.core.k8s_drain": {
                "name": "{{ found.resources[0].spec.nodeName }}",
                "delete_options": drain_opts,
            },
        },
        {
            "name": "node after drain",
            "kubernetes.core.k8s_info": {"kind": "Node", "name": "{{ found.resources[0].spec.nodeName }}"},
        },
        {
            "name": "pods left",
            "kubernetes.core.k8s_info": {
                "kind": "Pod",
                "field_selectors": ["spec.nodeName={{ found.resources[0].spec.nodeName }}"],
            },
        },
        {
            "name": "uncordon",
            "kubernetes.core.k8s_drain": {"name": "{{ found.resources[0].spec.nodeName }}", "state": "uncordon"},
        },
        {
            "name": "node after uncordon",
            "kubernetes.core.k8s_info": {"kind": "Node", "name": "{{ found.resources[0].spec.nodeName }}"},
        },
    ]
    res = run_playbook(tasks, lab.env())
    assert res["blocked drain"]["failed"] is True
    assert "disruption budget" in res["blocked drain"]["msg"]
    assert res["__rc__"] == 0, failures(res)
    assert res["drain"]["changed"] is True
    assert res["node after drain"]["resources"][0]["spec"]["unschedulable"] is True
    owners = {
        ref["kind"] for pod in res["pods left"]["resources"] for ref in pod["metadata"].get("ownerReferences", [])
    }
    assert owners <= {"DaemonSet"}, "only DaemonSet pods stay on a drained node"
    assert not res["node after uncordon"]["resources"][0]["spec"].get("unschedulable")
