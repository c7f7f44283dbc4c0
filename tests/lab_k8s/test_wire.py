"""The lab API over raw HTTPS and through the real kubectl: auth, errors, discovery, watch."""

from __future__ import annotations

import json
import subprocess
import time

import pytest
import requests


def _req(lab, method: str, path: str, token: str | None = "", **kw) -> requests.Response:
    headers = kw.pop("headers", {})
    if token is not None:
        headers["Authorization"] = f"Bearer {token or lab.token}"
    return requests.request(method, lab.api + path, headers=headers, verify=lab.ca, timeout=10, **kw)


def _eventually(read, timeout: float = 10.0):
    """Controllers reconcile asynchronously, as in a real cluster: poll a read until it is truthy."""
    deadline = time.monotonic() + timeout
    while not (value := read()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return value


def _kubectl(lab, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["kubectl", *args], env=lab.env(), input=stdin, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_request_without_valid_token_is_401_status(lab, token):
    resp = _req(lab, "GET", "/api/v1/namespaces", token=token)
    assert resp.status_code == 401
    body = resp.json()
    assert (body["kind"], body["reason"], body["code"]) == ("Status", "Unauthorized", 401)


def test_discovery_serves_every_kind_the_toolkit_uses(lab):
    core = {r["name"] for r in _req(lab, "GET", "/api/v1").json()["resources"]}
    assert {
        "namespaces",
        "nodes",
        "pods",
        "pods/eviction",
        "services",
        "endpoints",
        "configmaps",
        "secrets",
        "serviceaccounts",
        "events",
    } <= core
    groups = {g["name"] for g in _req(lab, "GET", "/apis").json()["groups"]}
    assert {
        "apps",
        "batch",
        "policy",
        "rbac.authorization.k8s.io",
        "discovery.k8s.io",
        "apiextensions.k8s.io",
        "monitoring.coreos.com",
    } <= groups
    monitoring = {r["name"] for r in _req(lab, "GET", "/apis/monitoring.coreos.com/v1").json()["resources"]}
    assert {"prometheuses", "alertmanagers", "servicemonitors", "podmonitors", "prometheusrules"} <= monitoring
    assert _req(lab, "GET", "/version").json()["gitVersion"] == "v1.32.4"


def test_invalid_manifest_is_422_naming_the_field(lab):
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "no-image"},
        "spec": {"containers": [{"name": "main"}]},
    }
    resp = _req(lab, "POST", "/api/v1/namespaces/default/pods", json=pod)
    assert resp.status_code == 422
    body = resp.json()
    assert body["reason"] == "Invalid"
    assert body["details"]["causes"][0]["field"] == "spec.containers[0].image"
    assert body["message"] == 'Pod "no-image" is invalid: spec.containers[0].image: Required value'


def test_wrong_type_and_unknown_field_follow_field_validation(lab):
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "typed"}, "data": {"a": "1"}, "extra": 1}
    strict = _req(lab, "POST", "/api/v1/namespaces/default/configmaps?fieldValidation=Strict", json=cm)
    assert strict.status_code == 400
    assert 'unknown field "extra"' in strict.json()["message"]
    warned = _req(lab, "POST", "/api/v1/namespaces/default/configmaps?dryRun=All", json=cm)
    assert warned.status_code == 201
    assert "extra" not in warned.json()
    assert warned.headers["Warning"] == '299 - "unknown field \\"extra\\""'
    bad_type = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "typed"},
        "spec": {"replicas": "three"},
    }
    resp = _req(lab, "POST", "/apis/apps/v1/namespaces/default/deployments", json=bad_type)
    assert resp.status_code == 400
    assert "spec.replicas" in resp.json()["message"]


def test_stale_resource_version_is_409_conflict(lab):
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "versioned"}, "data": {"v": "1"}}
    created = _req(lab, "POST", "/api/v1/namespaces/default/configmaps", json=cm).json()
    stale = created["metadata"]["resourceVersion"]
    _req(lab, "PUT", "/api/v1/namespaces/default/configmaps/versioned", json=created | {"data": {"v": "2"}})
    resp = _req(
        lab,
        "PUT",
        "/api/v1/namespaces/default/configmaps/versioned",
        json=created | {"data": {"v": "3"}, "metadata": created["metadata"] | {"resourceVersion": stale}},
    )
    assert resp.status_code == 409
    assert resp.json()["reason"] == "Conflict"


def test_dry_run_persists_nothing(lab):
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "dry"}, "data": {}}
    assert _req(lab, "POST", "/api/v1/namespaces/default/configmaps?dryRun=All", json=cm).status_code == 201
    assert _req(lab, "GET", "/api/v1/namespaces/default/configmaps/dry").status_code == 404


def test_json_patch_and_merge_patch(lab):
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "patched"}, "data": {"a": "1", "b": "2"}}
    _req(lab, "POST", "/api/v1/namespaces/default/configmaps", json=cm)
    ops = [{"op": "replace", "path": "/data/a", "value": "10"}, {"op": "remove", "path": "/data/b"}]
    resp = _req(
        lab,
        "PATCH",
        "/api/v1/namespaces/default/configmaps/patched",
        data=json.dumps(ops),
        headers={"Content-Type": "application/json-patch+json"},
    )
    assert resp.json()["data"] == {"a": "10"}
    resp = _req(
        lab,
        "PATCH",
        "/api/v1/namespaces/default/configmaps/patched",
        data=json.dumps({"data": {"a": None, "c": "3"}}),
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert resp.json()["data"] == {"c": "3"}


def test_owner_deletion_collects_dependents_and_finalizers_hold(lab):
    dep = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "gc-demo"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "gc-demo"}},
            "template": {
                "metadata": {"labels": {"app": "gc-demo"}},
                "spec": {"containers": [{"name": "c", "image": "nginx:1.27"}]},
            },
        },
    }
    replicasets = "/apis/apps/v1/namespaces/default/replicasets?labelSelector=app%3Dgc-demo"
    _req(lab, "POST", "/apis/apps/v1/namespaces/default/deployments", json=dep)
    assert _eventually(lambda: _req(lab, "GET", replicasets).json()["items"])
    _req(lab, "DELETE", "/apis/apps/v1/namespaces/default/deployments/gc-demo")
    assert _req(lab, "GET", replicasets).json()["items"] == []
    held = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "held", "finalizers": ["lab/hold"]}}
    _req(lab, "POST", "/api/v1/namespaces/default/configmaps", json=held)
    deleting = _req(lab, "DELETE", "/api/v1/namespaces/default/configmaps/held").json()
    assert deleting["metadata"]["deletionTimestamp"]
    _req(
        lab,
        "PATCH",
        "/api/v1/namespaces/default/configmaps/held",
        data=json.dumps({"metadata": {"finalizers": None}}),
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert _req(lab, "GET", "/api/v1/namespaces/default/configmaps/held").status_code == 404


def test_prometheus_operator_scales_statefulset_from_cr(lab):
    path = "/apis/monitoring.coreos.com/v1/namespaces/monitoring/prometheuses/kube-prometheus-stack-prometheus"
    sts_path = "/apis/apps/v1/namespaces/monitoring/statefulsets/prometheus-kube-prometheus-stack-prometheus"
    assert _req(lab, "GET", sts_path).json()["spec"]["replicas"] == 3
    try:
        _req(
            lab,
            "PATCH",
            path,
            data=json.dumps({"spec": {"replicas": 1}}),
            headers={"Content-Type": "application/merge-patch+json"},
        )
        watch = _req(
            lab,
            "GET",
            "/apis/apps/v1/namespaces/monitoring/statefulsets?watch=true&timeoutSeconds=5"
            "&fieldSelector=metadata.name%3Dprometheus-kube-prometheus-stack-prometheus",
            stream=True,
        )
        replicas = [json.loads(line)["object"]["spec"]["replicas"] for line in watch.iter_lines() if line]
        assert 1 in replicas
    finally:
        _req(
            lab,
            "PATCH",
            path,
            data=json.dumps({"spec": {"replicas": 3}}),
            headers={"Content-Type": "application/merge-patch+json"},
        )


def test_kubectl_get_and_server_side_apply(lab):
    nodes = _kubectl(lab, "get", "nodes")
    assert nodes.returncode == 0, nodes.stderr
    assert len(nodes.stdout.strip().splitlines()) == 15  # header + 14 nodes
    pods = _kubectl(lab, "get", "pods", "-A")
    assert pods.returncode == 0 and "prometheus-kube-prometheus-stack-prometheus-0" in pods.stdout
    manifest = """
apiVersion: v1
kind: ConfigMap
metadata: {name: kubectl-applied, namespace: default}
data: {k: v}
"""
    applied = _kubectl(lab, "apply", "--server-side", "-f", "-", stdin=manifest)
    assert applied.returncode == 0, applied.stderr
    assert "serverside-applied" in applied.stdout
    bad = manifest.replace("\ndata:", "\ndta:")
    rejected = _kubectl(lab, "apply", "--server-side", "-f", "-", stdin=bad)
    assert rejected.returncode != 0
    assert 'unknown field "dta"' in rejected.stderr


def test_invalid_annotation_key_is_422(lab):
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "keys", "annotations": {"{{ k }}": "x"}}}
    resp = _req(lab, "POST", "/api/v1/namespaces/default/configmaps", json=cm)
    assert resp.status_code == 422
    assert resp.json()["details"]["causes"][0]["field"] == "metadata.annotations"
