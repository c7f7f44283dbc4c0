"""The baseline figures and the validation gates against a real Prometheus holding known scenarios.

Each gate passes on the good scenario and fails on the scenario built to break it, and only that gate
fails there; the verdict names the gate, the figures and the query. Nothing answers: every gate fails closed.
"""

from __future__ import annotations

import dataclasses
import json
import math
from datetime import UTC, datetime
from typing import Any

import pytest
from ansible.module_utils.migration_figures import (
    Measurer,
    capture_baseline,
)
from ansible.module_utils.migration_gates import (
    FAIL,
    GATE_NAMES,
    PASS,
    SKIP,
)

from lab.metrics.prometheus import PrometheusProcess
from tests.conftest import failures, run_playbook
from tests.validation.validation_data import HISTORY, LEGACY_CR, NODES, Scenario
from tests.validation.validation_setup import NEW_JOBS, baseline_spec, client, gate_settings, judge

PASSWORD = "s3cret-never-in-output"
# histogram_quantile interpolates inside the (0.1, 0.25] bucket every push falls into.
PUSH_P99 = 0.1 + 0.99 * 0.15


# --- the baseline ----------------------------------------------------------------------------------


def test_baseline_holds_what_prometheus_computed(baseline: dict[str, Any]) -> None:
    sources = baseline["sources"]
    assert set(sources) == {"cadvisor", "kubelet:/metrics/cadvisor", "kube-state-metrics", "node-exporter"}
    cadvisor = sources["cadvisor"]
    assert cadvisor["targets"] == 3
    assert cadvisor["scrape_duration_p99_seconds"] == pytest.approx(3.0)
    assert cadvisor["scrape_duration_p50_seconds"] == pytest.approx(3.0)
    assert cadvisor["scrape_interval_seconds"] == pytest.approx(15.0)
    assert sources["kubelet:/metrics/cadvisor"]["scrape_duration_p99_seconds"] == pytest.approx(0.2)
    # Six pods per node, CPU and memory each.
    assert cadvisor["active_series"] == 36
    assert cadvisor["metric_names"] == ["container_cpu_usage_seconds_total", "container_memory_working_set_bytes"]
    mimir = baseline["mimir"]
    assert mimir["push_p99_seconds"] == pytest.approx(PUSH_P99, rel=1e-3)
    assert mimir["received_samples_per_second"] == pytest.approx(100.0, rel=0.02)
    assert mimir["deduplicated_samples_per_second"] == pytest.approx(200.0, rel=0.02)
    assert mimir["incoming_samples_per_second"] == pytest.approx(300.0, rel=0.02)
    # Never discarded: the counter does not exist, which counts as zero while Mimir reports samples.
    assert mimir["discarded_samples_per_second"] == 0.0
    assert mimir["ha_clusters"] == [LEGACY_CR]
    assert baseline["resources"]["prometheus"]["pods"] == 3
    assert baseline["resources"]["prometheus"]["cpu_cores"] == pytest.approx(0.15, rel=0.02)
    assert baseline["resources_total"]["memory_bytes"] == pytest.approx(6 * 64 * 2**20)
    assert baseline["missing"] == ["mimir.received_bytes_per_second"]


def test_baseline_fails_closed_without_data(storage: PrometheusProcess, scenarios: dict[str, Scenario]) -> None:
    nowhere = dataclasses.replace(scenarios["good"], name="nowhere")
    _, problems = capture_baseline(Measurer(client(storage.url), nowhere.t0), baseline_spec(nowhere))
    assert any("job 'cadvisor': no series" in problem for problem in problems)
    assert any(
        problem.startswith("mimir.push_p99_seconds: no data (query: histogram_quantile(") for problem in problems
    )
    assert any(problem.startswith("resources.prometheus.cpu_cores: no data") for problem in problems)


def test_baseline_refuses_a_window_with_too_few_scrapes(
    storage: PrometheusProcess, scenarios: dict[str, Scenario]
) -> None:
    good = scenarios["good"]
    young = Measurer(client(storage.url), good.t0 - HISTORY + 60)
    _, problems = capture_baseline(young, baseline_spec(good))
    assert "cadvisor: a target has only 5 scrapes in the 10m window (at least 10 needed" in " ".join(problems)


# --- the gates -------------------------------------------------------------------------------------


def test_every_gate_passes_on_good_data(
    storage: PrometheusProcess, scenarios: dict[str, Scenario], baseline: dict[str, Any]
) -> None:
    verdicts = judge(storage.url, scenarios["good"], baseline)
    assert list(verdicts) == list(GATE_NAMES)
    not_passed = {gate: verdict.line for gate, verdict in verdicts.items() if verdict.status != PASS}
    assert not_passed == {"ha_dedup": not_passed.get("ha_dedup")}, not_passed
    assert verdicts["ha_dedup"].status == SKIP
    assert "3 legacy Prometheus replicas still running" in verdicts["ha_dedup"].figures
    for gate, verdict in verdicts.items():
        assert verdict.line.startswith(f"[{verdict.status}] {gate}: ")
        assert " (threshold " in verdict.line
        assert verdict.query and verdict.line.endswith(f"query: {verdict.query}")
    assert "kubelet:/metrics/cadvisor 100 ms" in verdicts["scrape_duration"].figures
    assert "containerd 15.00 s" in verdicts["scrape_interval"].figures
    assert verdicts["targets_up"].figures.startswith("10 targets up; expected 7 (3 nodes x 2 per-node sources + 1")
    assert "18 of 18 series (100%) join" in verdicts["container_id_join"].figures


BREAKAGES = [
    ("missing_target", "targets_up", "missing containerd on n2"),
    ("slow_scrape", "scrape_duration", "containerd on n1 p99 3.00 s"),
    ("gap", "continuity", "container cpu 18 members, 18 with a gap"),
    ("duplicate", "no_duplicate_targets", "kube-state-metrics: 2 targets (10.1.0.19:8080, 10.1.0.8:8080), expected 1"),
    ("slow_push", "push_latency", "above 1.00 s"),
    ("discards", "discarded_samples", "5 /s discarded now"),
    (
        "coverage",
        "metric_coverage",
        "kubelet:/metrics/cadvisor lacks container_memory_working_set_bytes (from cadvisor)",
    ),
    ("no_join", "container_id_join", "0 of 18 series (0%) join"),
    ("labels", "dashboard_labels", "cadvisor: 18 of 18 series lack one of namespace, pod, container, node, cluster"),
    ("collision", "cluster_label_collision", f"shared: {LEGACY_CR}"),
]


@pytest.mark.parametrize(("breakage", "gate", "figure"), BREAKAGES, ids=[item[0] for item in BREAKAGES])
def test_the_broken_gate_fails_alone_and_says_why(
    storage: PrometheusProcess,
    scenarios: dict[str, Scenario],
    baseline: dict[str, Any],
    breakage: str,
    gate: str,
    figure: str,
) -> None:
    verdicts = judge(storage.url, scenarios[breakage], baseline)
    failed = {name: verdict.line for name, verdict in verdicts.items() if verdict.status == FAIL}
    assert list(failed) == [gate], failed
    line = failed[gate]
    assert line.startswith(f"[FAIL] {gate}: ")
    assert figure in line
    assert verdicts[gate].query and line.endswith(f"query: {verdicts[gate].query}")


def test_two_writers_of_one_series_are_duplicates(
    storage: PrometheusProcess, scenarios: dict[str, Scenario], baseline: dict[str, Any]
) -> None:
    verdict = judge(storage.url, scenarios["duplicate"], baseline)["no_duplicate_targets"]
    assert "containerd on n3 written every" in verdict.figures
    assert "(two writers?)" in verdict.figures


def test_ha_dedup_passes_once_the_legacy_replicas_stopped(
    storage: PrometheusProcess, scenarios: dict[str, Scenario], baseline: dict[str, Any]
) -> None:
    stopped = judge(storage.url, scenarios["decommissioned"], baseline, legacy_replicas_running=0)
    assert stopped["ha_dedup"].status == PASS, stopped["ha_dedup"].line
    assert stopped["ha_dedup"].figures == "0 samples/s deduplicated"
    # Replicas reported stopped while Mimir still deduplicates: something still writes as a replica.
    still = judge(storage.url, scenarios["good"], baseline, legacy_replicas_running=0)["ha_dedup"]
    assert still.status == FAIL
    assert still.figures == "200 samples/s deduplicated"


def test_every_gate_fails_closed_when_mimir_is_unreachable(
    scenarios: dict[str, Scenario], baseline: dict[str, Any]
) -> None:
    verdicts = judge("http://127.0.0.1:1", scenarios["good"], baseline, legacy_replicas_running=0)
    assert {verdict.status for verdict in verdicts.values()} == {FAIL}, [v.line for v in verdicts.values()]
    for verdict in verdicts.values():
        assert "cannot be evaluated (fails closed): cannot query http://127.0.0.1:1/api/v1/" in verdict.figures


def test_no_gate_passes_without_data_of_the_new_pipeline(
    storage: PrometheusProcess, scenarios: dict[str, Scenario], baseline: dict[str, Any]
) -> None:
    nothing = dataclasses.replace(scenarios["good"], name="nothing")
    verdicts = judge(storage.url, nothing, baseline)
    passed = [verdict.line for verdict in verdicts.values() if verdict.status == PASS]
    # Mimir's own figures are real (the good scenario's), the rest has nothing to judge.
    assert {line.split(":")[0] for line in passed} <= {"[PASS] push_latency", "[PASS] discarded_samples"}, passed


# --- the module, as ansible-playbook runs it -------------------------------------------------------


def test_module_in_check_mode_returns_verdicts_without_the_password(
    storage: PrometheusProcess, scenarios: dict[str, Scenario], baseline: dict[str, Any], tmp_path: Any
) -> None:
    good = scenarios["good"]
    settings = gate_settings(good)
    task = {
        "name": "gates",
        "migration_gates": {
            "url": storage.url,
            "username": "reader",
            "password": PASSWORD,
            "mimir_selector": good.mimir_selector,
            "mimir_user": "lab",
            "baseline": baseline,
            "new_selector": good.new_selector,
            "legacy_selector": good.legacy_selector,
            "jobs": list(NEW_JOBS),
            "targets": {
                "nodes": list(NODES),
                "per_node": list(settings.node_sources),
                "singletons": {"kube-state-metrics": 1},
            },
            "coverage": settings.coverage,
            "label_rules": [
                {"name": rule.name, "metric": rule.metric, "selector": rule.selector, "labels": list(rule.labels)}
                for rule in settings.label_rules
            ],
            "legacy_replicas_running": 3,
            "continuity": {
                "series": [{"name": s.name, "selector": s.selector, "by": list(s.by)} for s in settings.continuity],
                "start": str(good.cutover - 300),
            },
            "resources": {"workloads": settings.workloads},
            "time": str(good.t0),
        },
    }
    results = run_playbook([task], {"TMPDIR": str(tmp_path)}, check=True)
    assert results["__rc__"] == 0, failures(results)
    result = results["gates"]
    assert result["passed"] is True
    assert not result["changed"]
    assert [line.split(":")[0] for line in result["lines"]] == [
        f"[{SKIP if gate == 'ha_dedup' else PASS}] {gate}" for gate in GATE_NAMES
    ]
    assert result["current"]["sources"]["containerd"]["targets"] == 3
    assert result["current"]["resources"]["alloy"]["pods"] == 3
    push = result["timeseries"]["push_p99_seconds"]["values"]
    assert push and all(math.isclose(value, PUSH_P99, rel_tol=1e-3) for _, value in push)
    assert PASSWORD not in json.dumps(results)


def test_a_gap_is_named_with_its_time(
    storage: PrometheusProcess, scenarios: dict[str, Scenario], baseline: dict[str, Any]
) -> None:
    gap = scenarios["gap"]
    verdict = judge(storage.url, gap, baseline)["continuity"]

    def clock(seconds: int) -> str:
        return datetime.fromtimestamp(seconds, tz=UTC).strftime("%H:%M:%S")

    # No container CPU sample in [t0-10m, t0-8m): the 30 s steps ending t0-570 .. t0-510 saw none.
    expected = [f"{clock(gap.t0 - 570)}-{clock(gap.t0 - 510)} UTC (3 steps)"]
    assert verdict.details["container cpu"]["gaps"]["shop/frontend-0/app"] == expected
    assert verdict.details["pods"]["gaps"] == {}
