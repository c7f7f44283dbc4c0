"""k8s_object_lists against the lab's API server: several
queries in one module run, objects typed, kinds the server does not serve reported, not fatal."""

from __future__ import annotations

from tests.conftest import ROOT, failures, run_playbook


def test_queries_answer_in_order_with_kind_and_api_version(lab):
    env = {**lab.env(), "ANSIBLE_LIBRARY": str(ROOT / "library")}
    queries = [
        {
            "api_version": "apps/v1",
            "kind": "Deployment",
            "namespace": "monitoring",
            "label_selectors": ["release=kube-prometheus-stack"],
        },
        {"api_version": "monitoring.coreos.com/v1", "kind": "Prometheus", "namespace": "monitoring"},
        {"api_version": "v1", "kind": "Namespace", "name": "kube-system"},
        {"api_version": "v1", "kind": "ConfigMap", "namespace": "monitoring", "name": "no-such-configmap"},
        {
            "api_version": "monitoring.coreos.com/v1",
            "kind": "ServiceMonitor",
            "label_selectors": ["release", "!release"],
        },
        {"api_version": "example.com/v1", "kind": "Widget", "namespace": "monitoring"},
        {
            "api_version": "apps/v1",
            "kind": "DaemonSet",
            "label_selectors": ["app.kubernetes.io/name in (cadvisor,prometheus-node-exporter)"],
        },
        {"api_version": "apps/v1", "kind": "DaemonSet", "label_selectors": ["k8s-app"]},
    ]
    task = {
        "name": "lists",
        "k8s_object_lists": {"kubeconfig": str(lab.kubeconfig), "queries": queries},
        "register": "out",
    }
    res = run_playbook([task], env, check=True)
    result = res["lists"]
    assert not result.get("failed"), failures(res)
    lists = result["lists"]
    assert result["changed"] is False
    assert {d["metadata"]["name"] for d in lists[0]} == {
        "kube-prometheus-stack-operator",
        "kube-prometheus-stack-kube-state-metrics",
    }
    assert {(d["kind"], d["apiVersion"]) for d in lists[0]} == {("Deployment", "apps/v1")}
    assert [p["spec"]["replicas"] for p in lists[1]] == [3]
    assert lists[2][0]["metadata"]["name"] == "kube-system" and lists[2][0]["kind"] == "Namespace"
    assert lists[3] == []
    assert lists[4] == []
    assert lists[5] == [] and result["missing"] == ["example.com/v1/Widget"]
    assert sorted(d["metadata"]["name"] for d in lists[6]) == [
        "cadvisor",
        "kube-prometheus-stack-prometheus-node-exporter",
    ]
    assert sorted((d["metadata"]["namespace"], d["metadata"]["name"]) for d in lists[7]) == [
        ("kube-system", "kube-flannel"),
        ("kube-system", "kube-proxy"),
    ], "no namespace means every namespace"
