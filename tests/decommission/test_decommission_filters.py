"""The decommission role's decisions, without a cluster: what goes, what stays, backups, coverage."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "roles" / "prometheus_decommission" / "filter_plugins"))

from decommission import (
    backup_filename,
    backup_object,
    component_of,
    duration_seconds,
    gates,
    human_duration,
    label_selectors,
    mimir_rule_namespace,
    monitor_coverage,
    part_of_query,
    pipeline_verdict,
    release_plan,
    release_query,
    ruler_coverage,
    seconds_since,
    selected_query,
    steps,
    storage_only,
    typed,
)

CHART = "kube-prometheus-stack"
REL = "kube-prometheus-stack"


def obj(kind: str, name: str, labels: dict, api_version: str = "v1", **extra) -> dict:
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"name": name, "namespace": "monitoring", "labels": labels, "uid": f"uid-{name}", **extra},
    }


def helm(app: str, **more: str) -> dict:
    return {"app": app, "release": REL, "app.kubernetes.io/instance": REL, "heritage": "Helm", **more}


RELEASE_OBJECTS = [
    obj("Deployment", f"{REL}-operator", helm(f"{CHART}-operator"), "apps/v1"),
    obj("Service", f"{REL}-operator", helm(f"{CHART}-operator")),
    obj("Service", f"{REL}-prometheus", helm(f"{CHART}-prometheus")),
    obj("ServiceAccount", f"{REL}-prometheus", helm(f"{CHART}-prometheus")),
    obj("Service", f"{REL}-alertmanager", helm(f"{CHART}-alertmanager")),
    obj("Alertmanager", f"{REL}-alertmanager", helm(f"{CHART}-alertmanager"), "monitoring.coreos.com/v1"),
    obj(
        "Deployment",
        f"{REL}-kube-state-metrics",
        helm("kube-state-metrics", **{"app.kubernetes.io/name": "kube-state-metrics"}),
        "apps/v1",
    ),
    obj("Service", f"{REL}-kube-state-metrics", helm(f"{CHART}-kube-state-metrics")),
    obj(
        "DaemonSet",
        f"{REL}-prometheus-node-exporter",
        helm("prometheus-node-exporter", **{"app.kubernetes.io/name": "prometheus-node-exporter"}),
        "apps/v1",
    ),
    obj("Service", f"{REL}-prometheus-node-exporter", helm(f"{CHART}-prometheus-node-exporter")),
    obj(
        "Deployment",
        f"{REL}-grafana",
        {"app.kubernetes.io/name": "grafana", "app.kubernetes.io/instance": REL},
        "apps/v1",
    ),
    obj(
        "Deployment",
        "alloy-migration-kube-state-metrics",
        {"app.kubernetes.io/name": "kube-state-metrics", "app.kubernetes.io/part-of": "alloy-migration"},
        "apps/v1",
    ),
]
KEEP = ["prometheus-node-exporter", "grafana"]


def actions(plan: list[dict]) -> dict[str, str]:
    return {item["ref"]: item["action"] for item in plan}


def test_components_follow_the_charts_labels() -> None:
    assert [component_of(o, CHART) for o in RELEASE_OBJECTS[:8]] == [
        "operator",
        "operator",
        "prometheus",
        "prometheus",
        "alertmanager",
        "alertmanager",
        "kube-state-metrics",
        "kube-state-metrics",
    ]
    assert component_of(RELEASE_OBJECTS[10], CHART) == "grafana"


def test_default_plan_removes_the_release_but_keeps_node_exporter_grafana_operator_and_alertmanager() -> None:
    plan = release_plan(RELEASE_OBJECTS, CHART, KEEP, [])
    got = actions(plan)
    assert got == {
        "Service monitoring/kube-prometheus-stack-prometheus": "remove",
        "Deployment monitoring/kube-prometheus-stack-kube-state-metrics": "remove",
        "Service monitoring/kube-prometheus-stack-kube-state-metrics": "remove",
        "ServiceAccount monitoring/kube-prometheus-stack-prometheus": "remove",
        "Alertmanager monitoring/kube-prometheus-stack-alertmanager": "keep",
        "Deployment monitoring/kube-prometheus-stack-operator": "keep",
        "Service monitoring/kube-prometheus-stack-operator": "keep",
        "Service monitoring/kube-prometheus-stack-alertmanager": "keep",
        "DaemonSet monitoring/kube-prometheus-stack-prometheus-node-exporter": "keep",
        "Service monitoring/kube-prometheus-stack-prometheus-node-exporter": "keep",
        "Deployment monitoring/kube-prometheus-stack-grafana": "keep",
    }
    assert "alloy-migration-kube-state-metrics" not in str(plan)
    removals = [item["ref"] for item in plan if item["action"] == "remove"]
    assert removals[0] == "Deployment monitoring/kube-prometheus-stack-kube-state-metrics"
    assert removals[-1] == "ServiceAccount monitoring/kube-prometheus-stack-prometheus"
    keep = next(item for item in plan if item["name"] == f"{REL}-alertmanager" and item["kind"] == "Alertmanager")
    assert keep["why"] == "alertmanager stays (prometheus_decommission_remove_alertmanager is false)"


def test_operator_goes_last_when_asked_for() -> None:
    plan = release_plan(RELEASE_OBJECTS, CHART, KEEP, ["alertmanager", "operator"])
    removals = [item["ref"] for item in plan if item["action"] == "remove"]
    assert removals[0] == "Alertmanager monitoring/kube-prometheus-stack-alertmanager"
    assert removals[-2:] == [
        "Deployment monitoring/kube-prometheus-stack-operator",
        "Service monitoring/kube-prometheus-stack-operator",
    ]


def test_dual_write_keeps_the_prometheus_component_and_its_operator() -> None:
    plan = release_plan(RELEASE_OBJECTS, CHART, KEEP, ["operator"], dual_write=True)
    got = actions(plan)
    assert got["Service monitoring/kube-prometheus-stack-prometheus"] == "keep"
    assert got["Deployment monitoring/kube-prometheus-stack-operator"] == "keep"
    assert got["Deployment monitoring/kube-prometheus-stack-kube-state-metrics"] == "remove"


def test_duplicates_from_two_selectors_are_planned_once() -> None:
    plan = release_plan(RELEASE_OBJECTS + RELEASE_OBJECTS[:3], CHART, KEEP, [])
    assert len(plan) == len(RELEASE_OBJECTS) - 1


def test_backup_is_creatable_again() -> None:
    service = obj("Service", "svc", {"a": "b"}, resourceVersion="7", creationTimestamp="x", managedFields=[{}])
    service["spec"] = {"clusterIP": "10.0.0.7", "clusterIPs": ["10.0.0.7"], "ports": [{"port": 80}]}
    service["status"] = {"loadBalancer": {}}
    clean = backup_object(service)
    assert clean == {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "svc", "namespace": "monitoring", "labels": {"a": "b"}},
        "spec": {"ports": [{"port": 80}]},
    }
    assert service["metadata"]["resourceVersion"] == "7", "the input is left as it was"
    headless = obj("Service", "h", {})
    headless["spec"] = {"clusterIP": "None"}
    assert backup_object(headless)["spec"] == {"clusterIP": "None"}


def test_backup_files_sort_into_a_restore_order() -> None:
    names = sorted(backup_filename(o) for o in RELEASE_OBJECTS[:6])
    assert names[0].startswith("10-serviceaccount-monitoring-")
    assert names[-1] == "50-alertmanager-monitoring-kube-prometheus-stack-alertmanager.yaml"
    cr = obj("Prometheus", "p", {}, "monitoring.coreos.com/v1")
    assert backup_filename(cr) == "60-prometheus-monitoring-p.yaml"


@pytest.mark.parametrize(
    ("text", "seconds"), [("24h", 86400), ("90m", 5400), ("1h30m", 5400), ("2d", 172800), (600, 600), ("45", 45)]
)
def test_durations(text, seconds) -> None:
    assert duration_seconds(text) == seconds


@pytest.mark.parametrize("text", ["", "1 day", "24x", "h"])
def test_bad_durations_are_refused(text) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        duration_seconds(text)


def test_seconds_since() -> None:
    assert seconds_since("2026-01-10T09:00:00Z", "2026-01-11T09:00:30Z") == 86430
    assert seconds_since("2020-01-01T00:00:00Z") > 0


def test_label_selectors_cover_expressions() -> None:
    selector = {
        "matchLabels": {"release": REL},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["a", "b"]},
            {"key": "env", "operator": "NotIn", "values": ["dev"]},
            {"key": "team", "operator": "Exists"},
            {"key": "legacy", "operator": "DoesNotExist"},
        ],
    }
    assert label_selectors(selector) == [f"release={REL}", "tier in (a,b)", "env notin (dev)", "team", "!legacy"]
    assert label_selectors(None) == []


def rule(name: str, groups: list[str]) -> dict:
    return {**obj("PrometheusRule", name, {}), "spec": {"groups": [{"name": g, "rules": []} for g in groups]}}


def test_ruler_coverage_finds_missing_rules_and_groups() -> None:
    apps, node = rule("apps", ["kubernetes-apps"]), rule("node", ["node-exporter", "node-network"])
    prefix = "lab-talos-alloy"
    assert mimir_rule_namespace(prefix, apps) == "lab-talos-alloy/monitoring/apps/uid-apps"
    ruler = {
        "lab-talos-alloy/monitoring/apps/uid-apps": [{"name": "kubernetes-apps", "rules": []}],
        "lab-talos-alloy/monitoring/node/uid-node": [{"name": "node-exporter", "rules": []}],
        "someone-else/x": [],
    }
    coverage = ruler_coverage([apps, node, rule("gone", ["g"])], ruler, prefix)
    assert coverage["covered"] == ["monitoring/apps"]
    assert coverage["missing"] == [
        "monitoring/node: groups node-network missing from lab-talos-alloy/monitoring/node/uid-node",
        "monitoring/gone: no Mimir rule namespace lab-talos-alloy/monitoring/gone/uid-gone",
    ]
    assert ruler_coverage([apps], {}, prefix)["missing"] == [
        "monitoring/apps: no Mimir rule namespace " + mimir_rule_namespace(prefix, apps)
    ]


def monitor(name: str, selector: dict, kind: str = "ServiceMonitor") -> dict:
    return {**obj(kind, name, {}, "monitoring.coreos.com/v1"), "spec": {"selector": {"matchLabels": selector}}}


def test_monitor_coverage_names_what_scrapes_each_or_drops_it() -> None:
    builtin = {
        "kubelet": "kubelet",
        "kube-state-metrics": "kube-state-metrics",
        "prometheus-node-exporter": "node-exporter",
    }
    monitors = [
        monitor("kubelet", {"app.kubernetes.io/name": "kubelet"}),
        monitor("operator", {"app": f"{CHART}-operator"}),
        monitor("prometheus", {"app.kubernetes.io/name": "prometheus"}),
        monitor("coredns", {"k8s-app": "kube-dns"}),
        monitor("app", {"app": "shop"}, kind="PodMonitor"),
    ]
    without = monitor_coverage(monitors, builtin, False, ["prometheus", "cadvisor"], CHART)
    assert [(m["ref"].split("/")[-1], m["coverage"]) for m in without] == [
        ("kubelet", "covered"),
        ("operator", "dropped"),
        ("prometheus", "dropped"),
        ("coredns", "dropped"),
        ("app", "dropped"),
    ]
    assert without[0]["how"] == "Alloy's kubelet job"
    assert without[2]["how"] == "its target (prometheus) is removed with the legacy stack"
    with_operator = monitor_coverage(monitors, builtin, True, ["prometheus", "cadvisor", "operator"], CHART)
    assert [m["coverage"] for m in with_operator] == ["covered", "dropped", "dropped", "covered", "covered"]
    assert with_operator[4]["how"] == "Alloy's prometheus.operator.podmonitors"


NOW = "2026-01-12T12:00:00Z"


def record(status: str, finished: str | None, **details) -> dict:
    out = {"status": status, "started": "2026-01-01T00:00:00Z", "details": details}
    if finished:
        out["finished"] = finished
    return out


def verdicts(phases: dict, max_age: str = "24h", soak: str = "24h") -> dict[str, tuple[bool, str]]:
    return {g["gate"]: (g["passed"], g["line"]) for g in gates(phases, max_age, soak, now=NOW)}


def test_gates_pass_after_a_fresh_passing_validation_of_soaked_collectors() -> None:
    phases = {
        "collectors": record("succeeded", "2026-01-11T10:00:00Z"),
        "validation": record("succeeded", "2026-01-12T11:00:00Z", passed=True, report_digest="sha256:ab"),
    }
    got = verdicts(phases)
    assert all(passed for passed, _ in got.values()), got
    assert got["soak period"][1] == (
        "[PASS] soak period: the collectors have run 1d 2h since 2026-01-11T10:00:00Z, soak period 1d"
    )


def test_a_failed_validation_is_refused_with_the_way_out() -> None:
    phases = {
        "collectors": record("succeeded", "2026-01-11T10:00:00Z"),
        "validation": {**record("failed", "2026-01-12T11:00:00Z"), "reason": "push p99 1.4 s > 1 s"},
    }
    passed, line = verdicts(phases)["validation passed"]
    assert not passed
    assert line == (
        "[FAIL] validation passed: the last validation is failed (push p99 1.4 s > 1 s); "
        "run playbooks/validation.yml until it passes"
    )


def test_a_succeeded_run_with_a_failing_verdict_is_refused() -> None:
    phases = {
        "collectors": record("succeeded", "2026-01-11T10:00:00Z"),
        "validation": record("succeeded", "2026-01-12T11:00:00Z", passed=False),
    }
    assert verdicts(phases)["validation passed"] == (
        False,
        "[FAIL] validation passed: the last validation recorded passed=False; run playbooks/validation.yml until it passes",
    )


def test_a_stale_validation_is_refused() -> None:
    phases = {
        "collectors": record("succeeded", "2026-01-09T10:00:00Z"),
        "validation": record("succeeded", "2026-01-10T11:00:00Z", passed=True),
    }
    passed, line = verdicts(phases)["validation fresh"]
    assert not passed
    assert "finished 2d 1h ago (2026-01-10T11:00:00Z), limit 1d (prometheus_decommission_max_validation_age)" in line
    assert verdicts(phases, max_age="3d")["validation fresh"][0]


def test_the_soak_period_must_have_elapsed() -> None:
    phases = {
        "collectors": record("succeeded", "2026-01-12T09:30:00Z"),
        "validation": record("succeeded", "2026-01-12T11:00:00Z", passed=True),
    }
    passed, line = verdicts(phases)["soak period"]
    assert not passed
    assert line.endswith("(prometheus_decommission_soak_period): wait 21h 30m more")
    assert verdicts(phases, soak="2h")["soak period"][0]


def test_a_validation_older_than_the_collectors_does_not_count() -> None:
    phases = {
        "collectors": record("succeeded", "2026-01-12T11:30:00Z"),
        "validation": record("succeeded", "2026-01-12T11:00:00Z", passed=True),
    }
    passed, line = verdicts(phases, soak="0s")["validation judged the running collectors"]
    assert not passed
    assert "the collectors changed since they were validated" in line


def test_nothing_recorded_fails_every_gate_closed() -> None:
    assert [passed for passed, _ in verdicts({}).values()] == [False, False, False, False]


def prometheus_cr(replicas: int, **spec) -> dict:
    return {
        **obj("Prometheus", f"{REL}-prometheus", helm(f"{CHART}-prometheus"), "monitoring.coreos.com/v1"),
        "spec": {"replicas": replicas, **spec},
    }


CADVISOR = [obj("DaemonSet", "cadvisor", {"app.kubernetes.io/name": "cadvisor"}, "apps/v1")]


def test_steps_scale_down_before_removing_and_list_only_what_is_left() -> None:
    plan = release_plan(RELEASE_OBJECTS, CHART, KEEP, [])
    got = [s["id"] for s in steps(prometheus_cr(3), CADVISOR, plan, [], False, False)]
    assert got == ["scale_to_1", "scale_to_0", "cadvisor", "prometheus", "release"]
    first = steps(prometheus_cr(3), CADVISOR, plan, [], False, False)[0]["text"]
    assert first == (
        "scale Prometheus monitoring/kube-prometheus-stack-prometheus from 3 to 1 replica, "
        "then check Mimir still receives the new pipeline"
    )
    resumed = steps(prometheus_cr(0), [], plan, [], False, False)
    assert [s["id"] for s in resumed] == ["scale_to_0", "prometheus", "release"]
    assert resumed[0]["text"].startswith(
        "Prometheus monitoring/kube-prometheus-stack-prometheus is at 0 replicas already: check Mimir"
    ), "a run stopped between scaling to 0 and its Mimir check still checks"
    assert steps({}, [], [p for p in plan if p["action"] == "keep"], [], False, False) == []


def test_pvcs_go_only_when_asked_and_never_with_dual_write() -> None:
    pvc = [obj("PersistentVolumeClaim", "db-0", {})]
    assert "pvcs" not in [s["id"] for s in steps(prometheus_cr(1), [], [], pvc, False, False)]
    assert [s["id"] for s in steps(prometheus_cr(1), [], [], pvc, False, True)][-1] == "pvcs"
    assert "pvcs" not in [s["id"] for s in steps(prometheus_cr(1), [], [], pvc, True, True)]


def test_dual_write_turns_the_cr_storage_only_once() -> None:
    got = [s["id"] for s in steps(prometheus_cr(3, remoteWrite=[{"url": "x"}]), CADVISOR, [], [], True, False)]
    assert got == ["scale_to_1", "storage_only", "cadvisor"]
    done = prometheus_cr(1, enableRemoteWriteReceiver=True, replicaExternalLabelName="", prometheusExternalLabelName="")
    assert storage_only(done)
    assert [s["id"] for s in steps(done, [], [], [], True, False)] == []
    assert not storage_only(prometheus_cr(1, enableRemoteWriteReceiver=True))


def test_typed_restores_kind_and_api_version_of_list_items() -> None:
    bare = {"metadata": {"name": "x", "namespace": "monitoring"}}
    results = [{"item": [{"kind": "Deployment", "api_version": "apps/v1"}, "release=r"], "resources": [bare]}]
    assert typed(results) == [{**bare, "kind": "Deployment", "apiVersion": "apps/v1"}]
    assert typed([bare], "DaemonSet", "apps/v1")[0]["kind"] == "DaemonSet"
    assert (
        typed([{**bare, "kind": "Prometheus", "apiVersion": "monitoring.coreos.com/v1"}], "X", "v")[0]["kind"]
        == "Prometheus"
    )


def test_human_durations() -> None:
    assert [human_duration(s) for s in (0, 59, 61, 3600 * 26 + 5, 90061)] == ["0s", "59s", "1m 1s", "1d 2h", "1d 1h"]


def test_selected_queries_follow_the_operators_selector_rules() -> None:
    cr = prometheus_cr(3, ruleSelector={"matchLabels": {"release": REL}}, serviceMonitorNamespaceSelector={})
    names = ["PrometheusRule", "ruleSelector", "ruleNamespaceSelector"]
    assert selected_query(names, cr, "x", REL) == {
        "api_version": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "namespace": "monitoring",
        "label_selectors": [f"release={REL}"],
    }
    monitors = selected_query(
        ["ServiceMonitor", "serviceMonitorSelector", "serviceMonitorNamespaceSelector"], cr, "x", REL
    )
    assert monitors["namespace"] is None, "a namespace selector means every namespace"
    assert monitors["label_selectors"] == ["release", "!release"], "a nil selector selects nothing"
    gone = selected_query(names, {}, "monitoring", REL)
    assert (gone["namespace"], gone["label_selectors"]) == ("monitoring", [f"release={REL}"])


def test_release_and_part_of_queries() -> None:
    kind = {"api_version": "apps/v1", "kind": "Deployment"}
    assert release_query([kind, "release"], "monitoring", REL)["label_selectors"] == [f"release={REL}"]
    cluster = {"api_version": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "cluster": True}
    assert part_of_query(cluster, "monitoring", "a=b")["namespace"] is None
    assert part_of_query(kind, "monitoring", "a=b")["namespace"] == "monitoring"


def by_job(**counts: int) -> list[dict]:
    return [
        {"metric": {"job": job.replace("_", "-")}, "value": float(n), "timestamp": 0.0} for job, n in counts.items()
    ]


GATES = by_job(kubelet=14, containerd=14, kube_state_metrics=1, pods=11)


def test_pipeline_holds_when_every_job_writes_as_before() -> None:
    verdict = pipeline_verdict(GATES, GATES, 10)
    assert verdict["passed"], verdict
    assert (
        verdict["line"] == "40 fresh series in 4 job(s), 40 at the gates (at least 36 needed), every job still writing"
    )


def test_pipeline_tolerates_pod_churn_within_the_tolerance() -> None:
    # Two application pods rescheduled during the step: their old series aged out, new ones not yet scraped.
    assert pipeline_verdict(by_job(kubelet=14, containerd=14, kube_state_metrics=1, pods=9), GATES, 10)["passed"]


def test_pipeline_fails_when_a_job_stops_writing_even_within_the_tolerance() -> None:
    verdict = pipeline_verdict(by_job(kubelet=14, containerd=14, pods=11), GATES, 10)
    assert not verdict["passed"]
    assert verdict["lost_jobs"] == ["kube-state-metrics"]
    assert verdict["line"] == "no fresh series any more from job(s) kube-state-metrics"


def test_pipeline_fails_when_more_than_the_tolerance_is_lost() -> None:
    # One Alloy replica of two stopped writing: half of every job's targets are gone.
    verdict = pipeline_verdict(by_job(kubelet=7, containerd=7, kube_state_metrics=1, pods=5), GATES, 10)
    assert not verdict["passed"]
    assert verdict["line"] == "20 fresh series where 40 were at the gates (at least 36 needed)"
    assert not pipeline_verdict(by_job(kubelet=13, containerd=14, kube_state_metrics=1, pods=11), GATES, 0)["passed"]


def test_pipeline_ignores_the_monitors_of_the_release_it_removes_and_new_jobs() -> None:
    before = [*GATES, *by_job(**{"serviceMonitor/monitoring/kube-prometheus-stack-prometheus/0": 3})]
    after = by_job(kubelet=14, containerd=14, kube_state_metrics=1, pods=11, other=5)
    assert not pipeline_verdict(after, before, 10)["passed"]
    verdict = pipeline_verdict(after, before, 10, r"^serviceMonitor/monitoring/kube-prometheus-stack-")
    assert verdict["passed"], verdict
    assert verdict["before"] == 40 and verdict["now"] == 40


def test_pipeline_fails_closed_without_a_count_at_the_gates() -> None:
    verdict = pipeline_verdict(GATES, [], 10)
    assert not verdict["passed"]
    assert "the gates counted no new-pipeline series" in verdict["line"]


def test_gates_made_only_of_jobs_that_may_end_are_refused_before_any_step() -> None:
    gates = by_job(**{"kube-prometheus-stack-prometheus": 3, "kube-prometheus-stack-operator": 1})
    verdict = pipeline_verdict(gates, gates, 10, r"^kube-prometheus-stack-")
    assert not verdict["passed"]
    assert verdict["line"] == "the gates counted no new-pipeline series to compare with"
