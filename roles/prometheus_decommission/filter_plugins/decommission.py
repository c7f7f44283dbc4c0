"""Filters of the prometheus_decommission role: what the legacy release consists of, what goes and what
stays, how objects are backed up, and whether rules and monitors survive the decommission.

Pure functions over Kubernetes objects (as kubernetes.core.k8s_info returns them) so the decisions are
unit-tested without a cluster (tests/decommission/test_decommission_filters.py).
"""

from __future__ import annotations

import copy
import math
import re
from datetime import UTC, datetime
from typing import Any

PART_OF = "app.kubernetes.io/part-of"
TOOLKIT = "alloy-migration"
# Restore order (the backup file names start with it): identities and services before workloads,
# the operator's custom resources last, once the operator that reconciles them is back.
RESTORE_ORDER = {
    "PersistentVolumeClaim": 5,
    "ServiceAccount": 10,
    "ConfigMap": 15,
    "Service": 20,
    "Deployment": 30,
    "DaemonSet": 40,
    "StatefulSet": 45,
    "Alertmanager": 50,
    "Prometheus": 60,
}
# Removal order inside the release step: workloads first, then what pointed at them.
REMOVAL_ORDER = {
    "Alertmanager": 0,
    "StatefulSet": 1,
    "DaemonSet": 2,
    "Deployment": 3,
    "Service": 4,
    "ConfigMap": 5,
    "ServiceAccount": 6,
}
# The operator goes last: it reconciles the custom resources removed before it.
OPERATOR_COMPONENT = "operator"
OPTIONAL_COMPONENTS = ("alertmanager", "operator")
_SERVER_FIELDS = (
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "generation",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "ownerReferences",
)
_DURATION = re.compile(r"(\d+)(ms|s|m|h|d|w)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _meta(obj: dict) -> dict:
    return obj.get("metadata") or {}


def _labels(obj: dict) -> dict:
    return _meta(obj).get("labels") or {}


def object_ref(obj: dict) -> str:
    """`Kind namespace/name` as the plan and the report print it."""
    meta = _meta(obj)
    where = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f"{obj.get('kind', '?')} {where}{meta.get('name', '?')}"


def typed(resources: list[dict], kind: str | None = None, api_version: str | None = None) -> list[dict]:
    """Objects with their `kind` and `apiVersion`, which the API leaves out of built-in list items.

    Either `resources` is a list of objects and `kind`/`api_version` are given, or it is the `results`
    of a k8s_info loop whose `item` (or `item[0]`) holds `kind` and `api_version`.
    """
    if kind is not None:
        return [
            {**obj, "kind": obj.get("kind") or kind, "apiVersion": obj.get("apiVersion") or api_version}
            for obj in resources
        ]
    out = []
    for result in resources:
        item = result.get("item")
        spec = item[0] if isinstance(item, (list, tuple)) else item
        out += typed(result.get("resources") or [], spec["kind"], spec["api_version"])
    return out


def release_query(kind_and_label: tuple | list, namespace: str, release: str) -> dict:
    """A k8s_object_lists query for one kind of the release's objects under one Helm release label."""
    kind, label = kind_and_label
    return {
        "api_version": kind["api_version"],
        "kind": kind["kind"],
        "namespace": namespace,
        "label_selectors": [f"{label}={release}"],
    }


def selected_query(names: list[str], cr: dict, namespace: str, release: str) -> dict:
    """A k8s_object_lists query for the rules or monitors a Prometheus CR selects.

    `names` is [kind, selector field, namespace selector field]. As the operator does: a nil selector
    selects nothing (the release label stands in when the CR is already gone, on a resumed run), and
    without a namespace selector only the CR's own namespace counts.
    """
    kind, selector_field, namespace_field = names
    spec = (cr or {}).get("spec") or {}
    selector = spec.get(selector_field) if cr else {"matchLabels": {"release": release}}
    query = {"api_version": "monitoring.coreos.com/v1", "kind": kind, "namespace": None, "label_selectors": []}
    # A contradiction (a label both present and absent) is how a label selector says "nothing".
    query["label_selectors"] = ["release", "!release"] if selector is None else label_selectors(selector)
    if namespace_field not in spec:
        query["namespace"] = (cr or {}).get("metadata", {}).get("namespace") or namespace
    return query


def part_of_query(kind: dict, namespace: str, selector: str) -> dict:
    """A k8s_object_lists query for one kind of what the toolkit deployed."""
    return {
        "api_version": kind["api_version"],
        "kind": kind["kind"],
        "namespace": None if kind.get("cluster") else namespace,
        "label_selectors": [selector],
    }


def duration_seconds(value: Any) -> float:
    """`24h`, `90m`, `1h30m`, `2d` or a number of seconds, as seconds."""
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    if not text or _DURATION.sub("", text):
        raise ValueError(f"'{value}' is not a duration such as 90s, 30m, 24h or 2d")
    return sum(int(number) * _UNITS[unit] for number, unit in _DURATION.findall(text))


def seconds_since(timestamp: str, now: str | None = None) -> float:
    """Seconds from a UTC ISO 8601 time (`2026-01-10T09:00:00Z`) to now (or `now`)."""

    def parse(text: str) -> datetime:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)

    current = parse(now) if now else datetime.now(UTC)
    return (current - parse(timestamp)).total_seconds()


def label_selectors(selector: dict | None) -> list[str]:
    """A Kubernetes LabelSelector as kubernetes.core `label_selectors` strings."""
    selector = selector or {}
    terms = [f"{key}={value}" for key, value in sorted((selector.get("matchLabels") or {}).items())]
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values") or []
        if operator == "In":
            terms.append(f"{key} in ({','.join(values)})")
        elif operator == "NotIn":
            terms.append(f"{key} notin ({','.join(values)})")
        elif operator == "Exists":
            terms.append(key)
        elif operator == "DoesNotExist":
            terms.append(f"!{key}")
        else:
            raise ValueError(f"unknown label selector operator {operator!r} for key {key!r}")
    return terms


def component_of(obj: dict, chart: str) -> str:
    """Which part of kube-prometheus-stack an object belongs to: `operator`, `prometheus`,
    `alertmanager`, `kube-state-metrics`, `prometheus-node-exporter`, `grafana`...

    The chart labels its own objects `app: <chart>-<component>`; its subcharts label theirs
    `app.kubernetes.io/name: <component>`.
    """
    labels = _labels(obj)
    app = labels.get("app", "")
    if app.startswith(f"{chart}-"):
        return app[len(chart) + 1 :]
    return labels.get("app.kubernetes.io/name") or app or _meta(obj).get("name", "")


def release_plan(
    objects: list[dict],
    chart: str,
    keep_components: list[str],
    remove_components: list[str],
    dual_write: bool = False,
) -> list[dict]:
    """Each release object with `action` (remove or keep), `why` and `component`, removal order first.

    Objects the toolkit created (part-of alloy-migration) are never touched; optional components
    (Alertmanager, operator) go only when asked; with dual-write the Prometheus component stays (its
    CR becomes the storage-only replica) and so does the operator that runs it.
    """
    seen: set[tuple[str, str, str]] = set()
    plan = []
    for obj in objects:
        meta = _meta(obj)
        key = (obj.get("kind", ""), meta.get("namespace", ""), meta.get("name", ""))
        if key in seen or _labels(obj).get(PART_OF) == TOOLKIT:
            continue
        seen.add(key)
        component = component_of(obj, chart)
        if component in keep_components:
            action, why = "keep", f"{component} stays (prometheus_decommission_keep_components)"
        elif dual_write and component in ("prometheus", OPERATOR_COMPONENT):
            action, why = "keep", f"{component} stays: dual-write keeps one storage-only Prometheus"
        elif component in OPTIONAL_COMPONENTS and component not in remove_components:
            action, why = "keep", f"{component} stays (prometheus_decommission_remove_{component} is false)"
        else:
            action, why = "remove", f"part of the legacy release ({component})"
        plan.append(
            {
                "kind": key[0],
                "api_version": obj.get("apiVersion", ""),
                "namespace": key[1],
                "name": key[2],
                "component": component,
                "action": action,
                "why": why,
                "ref": object_ref(obj),
                "object": obj,
            }
        )

    def order(item: dict) -> tuple:
        last = item["component"] == OPERATOR_COMPONENT
        return (item["action"] != "remove", last, REMOVAL_ORDER.get(item["kind"], 9), item["namespace"], item["name"])

    return sorted(plan, key=order)


def backup_object(obj: dict) -> dict:
    """The object as it can be created again: no status, no server-set metadata, no allocated IPs."""
    clean = copy.deepcopy(obj)
    clean.pop("status", None)
    meta = clean.get("metadata") or {}
    for name in _SERVER_FIELDS:
        meta.pop(name, None)
    spec = clean.get("spec") or {}
    if clean.get("kind") == "Service" and spec.get("clusterIP") not in (None, "None"):
        spec.pop("clusterIP", None)
        spec.pop("clusterIPs", None)
    if clean.get("kind") == "PersistentVolumeClaim":
        spec.pop("volumeName", None)
    return clean


def backup_filename(obj: dict) -> str:
    """`<restore order>-<kind>-<namespace>-<name>.yaml`: sorted names restore in a working order."""
    meta = _meta(obj)
    kind = obj.get("kind", "Object")
    return (
        f"{RESTORE_ORDER.get(kind, 70):02d}-{kind.lower()}-{meta.get('namespace') or 'cluster'}-{meta.get('name')}.yaml"
    )


def mimir_rule_namespace(prefix: str, rule: dict) -> str:
    """The Mimir ruler namespace mimir.rules.kubernetes gives a PrometheusRule (grafana/alloy
    internal/component/mimir/rules/kubernetes: `<prefix>/<namespace>/<name>/<uid>`)."""
    meta = _meta(rule)
    return f"{prefix}/{meta.get('namespace')}/{meta.get('name')}/{meta.get('uid')}"


def ruler_coverage(rules: list[dict], ruler: dict | None, prefix: str) -> dict[str, list[str]]:
    """Which PrometheusRules the Mimir ruler holds with all their groups.

    `ruler` is the ruler API's answer to GET <prometheus prefix>/config/v1/rules: a map of Mimir
    namespace to its rule groups.
    """
    ruler = ruler or {}
    covered, missing = [], []
    for rule in rules:
        meta = _meta(rule)
        name = f"{meta.get('namespace')}/{meta.get('name')}"
        expected = mimir_rule_namespace(prefix, rule)
        wanted = [group.get("name") for group in (rule.get("spec") or {}).get("groups") or []]
        if expected not in ruler:
            missing.append(f"{name}: no Mimir rule namespace {expected}")
            continue
        loaded = {group.get("name") for group in ruler[expected] or []}
        absent = [group for group in wanted if group not in loaded]
        if absent:
            missing.append(f"{name}: groups {', '.join(absent)} missing from {expected}")
        else:
            covered.append(name)
    return {"covered": covered, "missing": missing}


def monitor_coverage(
    monitors: list[dict], builtin: dict[str, str], operator_objects: bool, removed_components: list[str], chart: str
) -> list[dict]:
    """What becomes of each ServiceMonitor/PodMonitor: covered by an Alloy job, by Alloy's
    prometheus.operator.* components, or dropped (listed in the report)."""
    result = []
    for monitor in monitors:
        selector = ((monitor.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        target = next(
            (selector[key] for key in ("app.kubernetes.io/name", "k8s-app", "app") if key in selector),
            "",
        )
        app = target.removeprefix(f"{chart}-")
        ref = object_ref(monitor)
        if target in builtin:
            coverage, how = "covered", f"Alloy's {builtin[target]} job"
        elif app in removed_components:
            coverage, how = "dropped", f"its target ({app}) is removed with the legacy stack"
        elif operator_objects:
            kind = "podmonitors" if monitor.get("kind") == "PodMonitor" else "servicemonitors"
            coverage, how = "covered", f"Alloy's prometheus.operator.{kind}"
        else:
            coverage, how = (
                "dropped",
                "nothing scrapes it once Prometheus is gone (alloy_prometheus_operator_objects_enabled is off)",
            )
        result.append({"ref": ref, "coverage": coverage, "how": how})
    return result


def human_duration(seconds: float) -> str:
    """`1d 2h`, `3h 5m`, `4m 10s`: two units are enough to judge a gate."""
    seconds = int(abs(seconds))
    parts = [(seconds // 86400, "d"), (seconds % 86400 // 3600, "h"), (seconds % 3600 // 60, "m"), (seconds % 60, "s")]
    shown = [f"{value}{unit}" for value, unit in parts if value]
    return " ".join(shown[:2]) or "0s"


def gates(phases: dict, max_validation_age: Any, soak_period: Any, now: str | None = None) -> list[dict]:
    """The state's verdict on decommissioning: each gate with `passed` and what was seen.

    The last validation must have succeeded with a passing verdict, be younger than
    `max_validation_age` and newer than the collectors it judged; the collectors must have run
    (succeeded) for at least `soak_period`.
    """
    validation = phases.get("validation") or {}
    collectors = phases.get("collectors") or {}
    max_age, soak = duration_seconds(max_validation_age), duration_seconds(soak_period)
    result = []

    status = validation.get("status", "not run")
    verdict = (validation.get("details") or {}).get("passed", True)
    passed = status == "succeeded" and verdict is True
    if passed:
        seen = f"succeeded at {validation.get('finished')}"
    elif status == "succeeded":
        seen = f"recorded passed={verdict!r}"
    else:
        seen = f"is {status}" + (f" ({validation['reason']})" if validation.get("reason") else "")
    result.append(
        {
            "gate": "validation passed",
            "passed": passed,
            "detail": f"the last validation {seen}"
            + ("" if passed else "; run playbooks/validation.yml until it passes"),
        }
    )

    finished = validation.get("finished")
    if finished:
        age = seconds_since(finished, now)
        fresh = 0 <= age <= max_age
        detail = f"the last validation finished {human_duration(age)} ago ({finished}), limit {human_duration(max_age)}"
        if not fresh:
            detail += " (prometheus_decommission_max_validation_age); run playbooks/validation.yml again"
    else:
        fresh, detail = False, "no finished validation is recorded; run playbooks/validation.yml"
    result.append({"gate": "validation fresh", "passed": fresh, "detail": detail})

    collected = collectors.get("finished") if collectors.get("status") == "succeeded" else None
    if collected and finished:
        after = finished >= collected
        detail = f"validation {finished} {'after' if after else 'before'} the collectors' last change {collected}"
        if not after:
            detail += "; the collectors changed since they were validated: run playbooks/validation.yml again"
    else:
        after, detail = False, "needs both a succeeded collectors phase and a finished validation"
    result.append({"gate": "validation judged the running collectors", "passed": after, "detail": detail})

    if collected:
        running = seconds_since(collected, now)
        soaked = running >= soak
        detail = (
            f"the collectors have run {human_duration(running)} since {collected}, soak period {human_duration(soak)}"
        )
        if not soaked:
            detail += f" (prometheus_decommission_soak_period): wait {human_duration(soak - running)} more"
    else:
        soaked = False
        detail = f"the collectors phase is {collectors.get('status', 'not run')}; run playbooks/collectors.yml"
    result.append({"gate": "soak period", "passed": soaked, "detail": detail})
    for gate in result:
        gate["line"] = f"[{'PASS' if gate['passed'] else 'FAIL'}] {gate['gate']}: {gate['detail']}"
    return result


def fresh_series_by_job(result: list[dict]) -> dict[str, int]:
    """`count by (job) (...)` as the promql module returns it: {job: series}."""
    return {str((item.get("metric") or {}).get("job", "")): int(item.get("value") or 0) for item in result or []}


def pipeline_verdict(after: list[dict], before: list[dict], tolerance_percent: Any, jobs_may_end: str = "") -> dict:
    """Whether Mimir still receives the new pipeline after a step, judged against the count at the gates.

    `before` and `after` are `count by (job)` of the fresh new-pipeline series. Every job must still
    write (a job that stops entirely is a scrape config or a target that went with the legacy stack),
    and the jobs together may lose at most `tolerance_percent` of their series, since pods come and go
    in a live cluster while the decommission runs. Jobs matching `jobs_may_end` (the legacy release's
    own monitors, whose targets this decommission removes) are not judged.
    """
    may_end = re.compile(jobs_may_end) if jobs_may_end else None
    judged_before = {job: n for job, n in fresh_series_by_job(before).items() if not (may_end and may_end.search(job))}
    now = fresh_series_by_job(after)
    lost = sorted(job for job in judged_before if now.get(job, 0) == 0)
    total_before = sum(judged_before.values())
    total_now = sum(now.get(job, 0) for job in judged_before)
    needed = math.ceil(total_before * (100 - float(tolerance_percent)) / 100)
    problems = []
    if not judged_before:
        problems.append("the gates counted no new-pipeline series to compare with")
    if lost:
        problems.append("no fresh series any more from job(s) " + ", ".join(lost))
    if total_now < needed:
        problems.append(f"{total_now} fresh series where {total_before} were at the gates (at least {needed} needed)")
    passed = not problems
    seen = f"{total_now} fresh series in {sum(1 for job in judged_before if now.get(job, 0))} job(s)"
    line = (
        f"{seen}, {total_before} at the gates (at least {needed} needed), every job still writing"
        if passed
        else "; ".join(problems)
    )
    return {"passed": passed, "line": line, "lost_jobs": lost, "before": total_before, "now": total_now}


def steps(
    cr: dict, cadvisor: list[dict], plan: list[dict], pvcs: list[dict], dual_write: bool, delete_pvcs: bool
) -> list[dict]:
    """The ordered changes still to make, each with an `id` (recorded in the state when done) and a
    `text` for the plan. Derived from what the cluster holds now, so a resumed run lists only what is left."""
    result = []
    if cr:
        ref = object_ref(cr)
        spec = cr.get("spec") or {}
        replicas = int(spec.get("replicas", 1))
        statefulset = f"prometheus-{_meta(cr).get('name')}"
        if replicas > 1:
            result.append(
                {
                    "id": "scale_to_1",
                    "text": f"scale {ref} from {replicas} to 1 replica, then check Mimir still receives the new pipeline",
                }
            )
        if dual_write:
            if not storage_only(cr):
                result.append(
                    {
                        "id": "storage_only",
                        "text": f"turn {ref} into one storage-only replica: remote-write receiver on, no scrape "
                        "selectors, no remote write, no HA external labels",
                    }
                )
        else:
            # At 0 already, a run was stopped between scaling and its Mimir check: the check still runs.
            result.append(
                {
                    "id": "scale_to_0",
                    "text": (
                        f"scale {ref} to 0 replicas, then check Mimir still receives the new pipeline"
                        if replicas > 0
                        else f"{ref} is at 0 replicas already: check Mimir still receives the new pipeline"
                    ),
                }
            )
            result.append(
                {"id": "prometheus", "text": f"remove {ref} (the operator's StatefulSet {statefulset} goes with it)"}
            )
    if cadvisor:
        result.append({"id": "cadvisor", "text": "remove " + ", ".join(object_ref(ds) for ds in cadvisor)})
    removals = [item for item in plan if item["action"] == "remove"]
    if removals:
        result.append({"id": "release", "text": "remove " + ", ".join(item["ref"] for item in removals)})
    if pvcs and delete_pvcs and not dual_write:
        result.append(
            {"id": "pvcs", "text": "delete " + ", ".join(object_ref(pvc) for pvc in pvcs) + " (their data is lost)"}
        )
    order = ["scale_to_1", "scale_to_0", "storage_only", "cadvisor", "prometheus", "release", "pvcs"]
    return sorted(result, key=lambda step: order.index(step["id"]))


def storage_only(cr: dict) -> bool:
    """Whether a Prometheus CR is already the dual-write storage-only replica."""
    spec = cr.get("spec") or {}
    return (
        int(spec.get("replicas", 1)) == 1
        and spec.get("enableRemoteWriteReceiver") is True
        and not spec.get("remoteWrite")
        and not any(
            spec.get(key) is not None
            for key in ("serviceMonitorSelector", "podMonitorSelector", "probeSelector", "scrapeConfigSelector")
        )
        and spec.get("replicaExternalLabelName") == ""
        and spec.get("prometheusExternalLabelName") == ""
    )


class FilterModule:
    def filters(self) -> dict:
        return {
            "decommission_typed": typed,
            "decommission_release_query": release_query,
            "decommission_selected_query": selected_query,
            "decommission_part_of_query": part_of_query,
            "decommission_duration_seconds": duration_seconds,
            "decommission_seconds_since": seconds_since,
            "decommission_label_selectors": label_selectors,
            "decommission_component": component_of,
            "decommission_release_plan": release_plan,
            "decommission_backup_object": backup_object,
            "decommission_backup_filename": backup_filename,
            "decommission_object_ref": object_ref,
            "decommission_ruler_coverage": ruler_coverage,
            "decommission_monitor_coverage": monitor_coverage,
            "decommission_human_duration": human_duration,
            "decommission_gates": gates,
            "decommission_pipeline_verdict": pipeline_verdict,
            "decommission_steps": steps,
            "decommission_storage_only": storage_only,
        }
