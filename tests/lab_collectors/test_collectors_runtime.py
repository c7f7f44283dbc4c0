"""The lab runs what the toolkit deploys: the alloy role's real configuration and an OTel Collector.

One small lab of its own (three nodes, `--stage containerd`) gets the standalone kube-state-metrics,
a three-replica Alloy StatefulSet whose ConfigMap holds what the alloy role rendered (2 s scrapes),
and an OTel Collector DaemonSet. Everything is checked the way a user would: PromQL on the lab's
Mimir front and HTTP through the API server's pod proxy.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from collectors_support import (
    ALLOY_RULES,
    NAMESPACE,
    SmallLab,
    alloy_cluster_role,
    alloy_objects,
    kube_state_metrics_objects,
    otel_config,
    otel_objects,
    small_lab,
    up,
    wait_for,
)

from tests.conftest import failures, run_playbook

INTERVAL = 2.0
# A sample is fresh when younger than this: a scrape interval plus Alloy's 5 s remote-write batch deadline.
FRESH = 10.0
ALLOY = 'cluster="lab-talos"'
CADVISOR_UP = f'up{{{ALLOY}, job="kubelet", metrics_path="/metrics/cadvisor"}}'
UNSUPPORTED = 'prometheus.exporter.self "lab" { }\n'
LEFTOVERS = (
    "metrics/storage/data/01EARLIERLABBLOCK/meta.json",
    "collectors/alloy/monitoring/alloy/alloy-0/agent/wal/00000009",
)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmallLab]:
    tmp = tmp_path_factory.mktemp("collectors")
    small = small_lab(tmp)
    rendered: dict = {}
    config_dir = tmp / "alloy-config"
    render = threading.Thread(target=lambda: rendered.update(_render(config_dir, small)))
    render.start()  # ansible-playbook renders while the lab starts
    # What an earlier lab of the same run directory left: its Mimir's blocks and an agent's WAL.
    for leftover in LEFTOVERS:
        (small.run_dir / leftover).parent.mkdir(parents=True, exist_ok=True)
        (small.run_dir / leftover).write_text("an earlier lab's data\n")
    try:
        up(small, "--stage", "containerd")
        render.join()
        assert rendered.get("__rc__") == 0, failures(rendered)
        files = {path.name: path.read_text() for path in sorted(config_dir.glob("*.alloy"))}
        for obj in (
            kube_state_metrics_objects()
            + alloy_objects(files)
            + otel_objects(otel_config(small.mimir_url, f"{INTERVAL:.0f}s"))
        ):
            small.apply(obj)
        small.config_files = files
        wait_for(lambda: len(small.ready_pods("app.kubernetes.io/name=alloy")) == 3, 30, "three ready Alloy replicas")
        wait_for(lambda: len(small.query(CADVISOR_UP + " == 1")) == 3, 40, "cAdvisor targets of every node up")
        yield small
    finally:
        render.join()
        small.lab_command("down")


def _render(directory: Path, lab: SmallLab) -> dict:
    variables = {
        "alloy_cluster_name": "lab-talos",
        "alloy_mimir_url": lab.mimir_url,
        "alloy_mimir_tenant": "lab",
        "alloy_scrape_interval": f"{INTERVAL:.0f}s",
        "alloy_scrape_timeout": f"{INTERVAL:.0f}s",
        "alloy_config_dir": str(directory),
        "alloy_deploy": False,  # render and validate only: the test applies the objects itself
        "ansible_python_interpreter": sys.executable,
    }
    task = {
        "name": "render the alloy configuration",
        "ansible.builtin.include_role": {"name": "alloy"},
        "vars": variables,
    }
    return run_playbook([task], dict(lab.env))


def _running_containers(lab: SmallLab) -> dict[str, set[str]]:
    """Container ids per node, as the kubelet reports them."""
    pods = lab.get("/api/v1/pods").json()["items"]
    found: dict[str, set[str]] = {}
    for pod in pods:
        for status in pod.get("status", {}).get("containerStatuses") or []:
            if "running" in (status.get("state") or {}) and "://" in status.get("containerID", ""):
                found.setdefault(pod["spec"]["nodeName"], set()).add(status["containerID"].split("://", 1)[1])
    return found


def _fresh(lab: SmallLab, selector: str, seconds: float) -> dict[str, int]:
    rows = lab.query(f"count by (job) ((time() - timestamp({selector})) < {seconds})")
    return {row["metric"].get("job", ""): int(float(row["value"][1])) for row in rows}


def _scalar(lab: SmallLab, promql: str) -> float:
    rows = lab.query(promql)
    return float(rows[0]["value"][1]) if rows else 0.0


def _alloy_status(lab: SmallLab, pod: str) -> dict:
    """The replica's line in the lab status (what `python -m lab status` prints)."""
    found = [c for c in lab.status()["components"] if c["name"] == f"alloy/{NAMESPACE}/{pod}"]
    return found[0] if found else {"healthy": False, "detail": ""}


def _peers(lab: SmallLab, pod: str) -> list[dict]:
    reply = lab.proxy(pod, 12345, "/api/v0/web/peers")
    return reply.json() if reply.status_code == 200 else []


def test_a_lab_keeps_nothing_of_an_earlier_lab_in_its_run_directory(lab: SmallLab) -> None:
    """A fresh cluster comes with a fresh Mimir: an earlier lab's series would count as this one's."""
    assert not [leftover for leftover in LEFTOVERS if (lab.run_dir / leftover).exists()]
    assert lab.query(f"timestamp(up) < {lab.state['started']}") == []


def test_kubelet_cadvisor_series_arrive_with_the_dashboard_labels(lab: SmallLab) -> None:
    nodes = {row["metric"]["node"] for row in lab.query(CADVISOR_UP)}
    assert nodes == {"talos-cp-1", "talos-worker-1", "talos-worker-2"}
    usage = lab.query(f'container_cpu_usage_seconds_total{{{ALLOY}, job="kubelet", container!=""}}')
    assert usage, "no container series from Alloy's cAdvisor scrape"
    for series in usage:
        labels = series["metric"]
        assert labels["metrics_path"] == "/metrics/cadvisor", labels
        assert labels["namespace"] and labels["pod"] and labels["container"] and labels["node"], labels
    running = _running_containers(lab)
    per_node = {n: {s["metric"]["name"] for s in usage if s["metric"]["node"] == n} for n in running}
    assert per_node == running, "one cAdvisor container series per running container, on the node it runs on"


def test_each_series_is_written_once_across_the_replicas(lab: SmallLab) -> None:
    window = 6 * INTERVAL
    samples = f"count_over_time(up{{{ALLOY}}}[{window:.0f}s])"
    wait_for(lambda: _scalar(lab, f"min({samples})") >= 4, 30, "a window of samples")
    most = _scalar(lab, f"max({samples})")
    assert most <= window / INTERVAL + 1, f"a target was scraped by more than one replica ({most:.0f} samples)"
    jobs = _fresh(lab, f"up{{{ALLOY}}}", FRESH)
    assert jobs["kubelet"] == 3 and jobs["node-exporter"] == 3, jobs


def test_containerd_series_arrive_from_every_node(lab: SmallLab) -> None:
    up_nodes = {row["metric"]["node"] for row in lab.query('up{job="containerd"} == 1')}
    assert up_nodes == {"talos-cp-1", "talos-worker-1", "talos-worker-2"}
    throttled = lab.query("container_cpu_throttled_usec_microseconds")
    seen: dict[str, set[str]] = {}
    for series in throttled:
        seen.setdefault(series["metric"]["node"], set()).add(series["metric"]["container_id"])
    assert seen == _running_containers(lab)


def test_kube_pod_container_info_joins_containerd_on_container_id(lab: SmallLab) -> None:
    join = (
        "container_cpu_throttled_usec_microseconds * on (container_id) group_left (pod, container)"
        f' max by (container_id, pod, container) (kube_pod_container_info{{{ALLOY}, job="kube-state-metrics"}})'
    )
    joined = wait_for(lambda: lab.query(join), 20, "the container_id join")
    expected = sum(len(ids) for ids in _running_containers(lab).values())
    assert len(joined) == expected
    assert all(row["metric"]["pod"] and row["metric"]["container"] for row in joined)


def test_the_pod_proxy_answers_as_alloy_and_the_collector_do(lab: SmallLab) -> None:
    ready = lab.proxy("alloy-0", 12345, "/-/ready")
    assert (ready.status_code, ready.text.strip()) == (200, "Alloy is ready.")
    healthy = lab.proxy("alloy-0", 12345, "/-/healthy")
    assert (healthy.status_code, healthy.text.strip()) == (200, "All Alloy components are healthy.")
    peers = _peers(lab, "alloy-1")
    assert sorted(p["name"] for p in peers) == ["alloy-0", "alloy-1", "alloy-2"]
    assert {p["state"] for p in peers} == {"participant"}
    assert [p["name"] for p in peers if p["isSelf"]] == ["alloy-1"]
    components = {c["localID"]: c for c in lab.proxy("alloy-2", 12345, "/api/v0/web/components").json()}
    assert components["prometheus.scrape.kubelet_cadvisor"]["health"]["state"] == "healthy"
    assert "discovery.relabel.kubelet_cadvisor" in components["prometheus.scrape.kubelet_cadvisor"]["referencesTo"]
    metrics = lab.proxy("alloy-0", 12345, "/metrics").text
    assert "alloy_config_last_load_successful 1" in metrics
    assert 'cluster_node_peers{state="participant"} 3' in metrics
    assert re.search(r"^prometheus_remote_storage_samples_total\{.*\} [1-9]", metrics, re.M), metrics[-2000:]
    missing = lab.get(f"/api/v1/namespaces/{NAMESPACE}/pods/alloy-9:12345/proxy/-/ready")
    assert (missing.status_code, missing.json()["reason"]) == (404, "NotFound")
    closed = lab.proxy("alloy-0", 9999, "/metrics")
    assert (closed.status_code, closed.json()["reason"]) == (503, "ServiceUnavailable")
    assert closed.json()["message"].startswith("error trying to reach service: dial tcp 10.244.")
    collectors = lab.get(
        f"/api/v1/namespaces/{NAMESPACE}/pods", params={"labelSelector": "app.kubernetes.io/name=otel-collector"}
    )
    for pod in collectors.json()["items"]:
        health = lab.proxy(pod["metadata"]["name"], 13133, "/")
        assert (health.status_code, health.json()["status"]) == (200, "Server available")
        telemetry = lab.proxy(pod["metadata"]["name"], 8888, "/metrics").text
        assert re.search(
            r'^otelcol_exporter_sent_metric_points_total\{exporter="prometheusremotewrite"\} [1-9]', telemetry, re.M
        )
    cadvisor = lab.get("/api/v1/nodes/talos-worker-1/proxy/metrics/cadvisor")
    assert cadvisor.status_code == 200 and "container_cpu_usage_seconds_total" in cadvisor.text


def test_a_replica_going_away_hands_its_targets_to_the_others(lab: SmallLab) -> None:
    rows = lab.query(f"count by (job) (up{{{ALLOY}}})")
    everyone = {row["metric"].get("job", ""): int(float(row["value"][1])) for row in rows}
    lab.fault(target="pod", namespace=NAMESPACE, name="alloy-2", kind="unready")
    try:
        wait_for(lambda: len(_peers(lab, "alloy-0")) == 2, 20, "the ring without alloy-2")
        left = time.time()  # alloy-2 stopped scraping before the ring showed it gone
        after = f"count by (job) (timestamp(up{{{ALLOY}}}) > {left:.3f})"
        wait_for(
            lambda: {r["metric"].get("job", ""): int(float(r["value"][1])) for r in lab.query(after)} == everyone,
            20,
            "every target scraped since alloy-2 left, by the two replicas left",
        )
        most = _scalar(lab, f"max(count_over_time(up{{{ALLOY}}}[{FRESH:.0f}s]))")
        assert most <= FRESH / INTERVAL + 1, f"a target was scraped twice after the rebalance ({most:.0f} samples)"
    finally:
        lab.fault(target="pod", namespace=NAMESPACE, name="alloy-2", kind="clear")
    wait_for(lambda: len(_peers(lab, "alloy-0")) == 3, 20, "alloy-2 back in the ring")
    assert lab.delete(f"/api/v1/namespaces/{NAMESPACE}/pods/alloy-1").status_code == 200
    wait_for(lambda: len(_peers(lab, "alloy-0")) == 3 and _peers(lab, "alloy-1"), 30, "a new alloy-1 in the ring")
    assert "alloy_config_load_failures_total 0" in lab.proxy("alloy-1", 12345, "/metrics").text


def test_the_service_accounts_rbac_decides_what_alloy_may_scrape_and_discover(lab: SmallLab) -> None:
    without_metrics = [rule for rule in ALLOY_RULES if rule["resources"] != ["nodes/metrics"]]
    lab.apply(alloy_cluster_role(without_metrics))
    try:
        wait_for(lambda: len(lab.query(CADVISOR_UP + " == 0")) == 3, 20, "the kubelets refusing Alloy's token")
        status = lab.status()
        assert all(c["healthy"] for c in status["components"] if c["name"].startswith("alloy/")), status
    finally:
        lab.apply(alloy_cluster_role(ALLOY_RULES))
    wait_for(lambda: len(lab.query(CADVISOR_UP + " == 1")) == 3, 20, "the kubelets serving Alloy again")
    no_pods = [
        {**rule, "resources": ["nodes", "services", "endpoints"]} if "pods" in rule["resources"] else rule
        for rule in ALLOY_RULES
    ]
    lab.apply(alloy_cluster_role(no_pods))
    try:
        denied = wait_for(
            lambda: [
                c for c in lab.status()["components"] if c["name"] == "alloy/monitoring/alloy-0" and not c["healthy"]
            ],
            20,
            "discovery denied in the lab status",
        )
        assert (
            'pods is forbidden: User "system:serviceaccount:monitoring:alloy" cannot list resource "pods"'
            in denied[0]["detail"]
        )
    finally:
        lab.apply(alloy_cluster_role(ALLOY_RULES))


def test_a_configuration_the_lab_cannot_run_is_reported_naming_the_component(lab: SmallLab) -> None:
    config_map = next(obj for obj in alloy_objects(lab.config_files) if obj["kind"] == "ConfigMap")
    broken = {**config_map, "data": {**lab.config_files, "zz_lab.alloy": UNSUPPORTED}}
    lab.apply(broken)
    try:
        reload = lab.post(f"/api/v1/namespaces/{NAMESPACE}/pods/alloy-0:12345/proxy/-/reload")
        assert reload.status_code == 400 and "prometheus.exporter.self.lab" in reload.text
        healthy = lab.proxy("alloy-0", 12345, "/-/healthy")
        assert (healthy.status_code, healthy.text.strip()) == (
            500,
            "unhealthy components: prometheus.exporter.self.lab",
        )
        metrics = lab.proxy("alloy-0", 12345, "/metrics").text
        assert "alloy_config_last_load_successful 0" in metrics
        assert "alloy_config_load_failures_total 1" in metrics
        status = lab.lab_command("status")
        assert status.returncode == 1 and "prometheus.exporter.self.lab" in status.stdout
        assert lab.proxy("alloy-0", 12345, "/-/ready").status_code == 200, "the previous configuration keeps running"
        invalid = {
            **config_map,
            "data": {**lab.config_files, "zz_lab.alloy": 'prometheus.relabel "x" {\n  bogus = 1\n}\n'},
        }
        lab.apply(invalid)
        reload = lab.post(f"/api/v1/namespaces/{NAMESPACE}/pods/alloy-0:12345/proxy/-/reload")
        assert reload.status_code == 400 and 'unrecognized attribute name "bogus"' in reload.text
    finally:
        lab.apply(config_map)
    reload = lab.post(f"/api/v1/namespaces/{NAMESPACE}/pods/alloy-0:12345/proxy/-/reload")
    assert (reload.status_code, reload.text.strip()) == (200, "config reloaded")
    assert "alloy_config_last_load_successful 1" in lab.proxy("alloy-0", 12345, "/metrics").text


def test_a_rollout_to_a_configuration_alloy_rejects_stalls_on_the_first_replica(lab: SmallLab) -> None:
    objects = alloy_objects(lab.config_files)
    config_map = next(obj for obj in objects if obj["kind"] == "ConfigMap")
    statefulset = next(obj for obj in objects if obj["kind"] == "StatefulSet")
    rolled = json.loads(json.dumps(statefulset))
    rolled["spec"]["template"]["metadata"]["annotations"] = {"alloy-migration.io/config-sha256": "broken"}
    sts_path = f"/apis/apps/v1/namespaces/{NAMESPACE}/statefulsets/alloy"
    lab.apply({**config_map, "data": {**lab.config_files, "zz_lab.alloy": 'prometheus.relabel "x" {\n'}})
    lab.apply(rolled)
    try:
        wait_for(lambda: lab.get(sts_path).json()["status"].get("updatedReplicas") == 1, 20, "alloy-2 replaced")
        wait_for(
            lambda: _alloy_status(lab, "alloy-2")["detail"].startswith("zz_lab.alloy"), 20, "alloy-2 failing to load"
        )
        status = lab.get(sts_path).json()["status"]
        assert (status.get("readyReplicas", 0), status["updatedReplicas"]) == (2, 1), status
        assert lab.proxy("alloy-2", 12345, "/-/ready").status_code == 503
        failing = _alloy_status(lab, "alloy-2")
        assert not failing["healthy"] and "zz_lab.alloy:2:1" in failing["detail"], failing
    finally:
        lab.apply(config_map)
        lab.apply(statefulset)
        # Kubernetes' forced rollback: reverting the template does not replace a pod that never got
        # ready; it has to be deleted (StatefulSet docs, "Forced rollback").
        lab.delete(f"/api/v1/namespaces/{NAMESPACE}/pods/alloy-2")
    wait_for(
        lambda: (
            lab.get(sts_path).json()["status"].get("readyReplicas") == 3
            and lab.get(sts_path).json()["status"].get("updatedReplicas") == 3
        ),
        30,
        "the rollout completing with the valid configuration",
    )
