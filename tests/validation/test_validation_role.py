"""The baseline and validation roles as a phase playbook runs them: the lab's Kubernetes API for the
nodes and the legacy StatefulSet, a real Prometheus with known series (named after the lab's nodes) for
the figures. A passing run publishes its result and report; a failing gate stops the play only after
the report is written, naming the gate and the report.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from lab.metrics.prometheus import PrometheusProcess
from tests.conftest import ROOT, RunningLab, failures, run_playbook
from tests.validation.conftest import push
from tests.validation.validation_data import BASELINE_AGO, Scenario, build

PASSWORD = "role-pa55word-never-shown"


def lab_nodes() -> tuple[str, ...]:
    inventory = yaml.safe_load((ROOT / "inventories" / "lab" / "hosts.yml").read_text())
    groups = inventory["all"]["children"]["talos_nodes"]["children"]
    return tuple(sorted(host for group in groups.values() for host in group["hosts"]))


@pytest.fixture(scope="module")
def lab_scenarios(storage: PrometheusProcess, t0: int) -> dict[str, Scenario]:
    """A good and a slow-push migration of a cluster shaped like the lab (its node names)."""
    built = {
        "good": build("role-good", t0, nodes=lab_nodes()),
        "slow_push": build("role-slow-push", t0, breakage="slow_push", nodes=lab_nodes()),
    }
    for scenario in built.values():
        push(storage.url, scenario)
    return built


def baseline_vars(storage: PrometheusProcess, scenario: Scenario, directory: Path) -> dict[str, Any]:
    return {
        "migration_baseline_mimir_url": storage.url,
        "migration_baseline_mimir_username": "reader",
        "migration_baseline_mimir_password": PASSWORD,
        "migration_baseline_mimir_user": "lab",
        "migration_baseline_mimir_metrics_selector": scenario.mimir_selector,
        "migration_baseline_legacy_selector": scenario.legacy_selector,
        "migration_baseline_window": "10m",
        "migration_baseline_namespace": "monitoring",
        "migration_baseline_legacy_release": "kube-prometheus-stack",
        "migration_baseline_workloads": {"prometheus": "prometheus-kps-prometheus-[0-9]+", "cadvisor": "cadvisor-.+"},
        "migration_baseline_optional_figures": ["mimir.received_bytes_per_second"],
        "migration_baseline_dir": str(directory / "baseline"),
        "migration_baseline_time": str(scenario.t0 - BASELINE_AGO),
    }


def validation_vars(
    storage: PrometheusProcess, scenario: Scenario, lab: RunningLab, baseline: Path, directory: Path
) -> dict[str, Any]:
    scoped = f'scenario="{scenario.name}"'
    return {
        "migration_validation_mimir_url": storage.url,
        "migration_validation_mimir_username": "reader",
        "migration_validation_mimir_password": PASSWORD,
        "migration_validation_mimir_user": "lab",
        "migration_validation_mimir_metrics_selector": scenario.mimir_selector,
        "migration_validation_kubeconfig": str(lab.kubeconfig),
        "migration_validation_baseline_file": str(baseline / "baseline" / "baseline.json"),
        "migration_validation_namespace": "monitoring",
        "migration_validation_legacy_release": "kube-prometheus-stack",
        "migration_validation_legacy_selector": scenario.legacy_selector,
        "migration_validation_new_selector": scenario.new_selector,
        "migration_validation_continuity_series": [
            {
                "name": "cAdvisor containers",
                "selector": f'container_cpu_usage_seconds_total{{{scoped}, job=~"kubelet|cadvisor", container!=""}}',
                "by": ["namespace", "pod", "container"],
            }
        ],
        "migration_validation_cutover_start": str(scenario.cutover - 300),
        "migration_validation_time": str(scenario.t0),
        "migration_validation_report_dir": str(directory / "validation"),
    }


@pytest.fixture(scope="module")
def baseline_dir(
    storage: PrometheusProcess,
    lab_scenarios: dict[str, Scenario],
    lab: RunningLab,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """The baseline role's files, captured once from the good scenario before its cutover.

    The legacy half of every scenario is the same, so one baseline serves both."""
    directory = tmp_path_factory.mktemp("role-baseline")
    task = {
        "name": "baseline",
        "ansible.builtin.include_role": {"name": "migration_baseline"},
        "vars": baseline_vars(storage, lab_scenarios["good"], directory),
    }
    results = run_playbook([task], {**lab.env(), "TMPDIR": str(directory)})
    assert results["__rc__"] == 0, failures(results)
    return directory


def run_validation(
    storage: PrometheusProcess, scenario: Scenario, lab: RunningLab, baseline: Path, directory: Path
) -> dict:
    settings = validation_vars(storage, scenario, lab, baseline, directory)
    tasks = [
        {"name": "validation", "ansible.builtin.include_role": {"name": "migration_validation"}, "vars": settings},
        {"name": "result", "ansible.builtin.debug": {"var": "migration_validation_result"}},
    ]
    return run_playbook(tasks, {**lab.env(), "TMPDIR": str(directory)})


def test_a_passing_validation_publishes_its_result_and_report(
    storage: PrometheusProcess, lab_scenarios: dict[str, Scenario], lab: RunningLab, baseline_dir: Path, tmp_path: Path
) -> None:
    results = run_validation(storage, lab_scenarios["good"], lab, baseline_dir, tmp_path)
    assert results["__rc__"] == 0, failures(results)
    outcome = results["result"]["migration_validation_result"]
    assert outcome["passed"] is True
    # The lab's legacy StatefulSet has three ready replicas: HA deduplication is not judged yet.
    assert [line.split(":")[0] for line in outcome["verdicts"]].count("[SKIP] ha_dedup") == 1
    assert sum(line.startswith("[PASS]") for line in outcome["verdicts"]) == 11
    report = Path(outcome["report_path"])
    assert report == tmp_path / "validation" / "validation.md"
    assert hashlib.sha256((tmp_path / "validation" / "validation.json").read_bytes()).hexdigest() == outcome["digest"]
    assert "targets_up: 43 targets up; expected 29 (14 nodes x 2 per-node sources + 1 singletons)" in report.read_text()
    assert PASSWORD not in json.dumps(results)
    written = [*(baseline_dir / "baseline").glob("*.*"), *(tmp_path / "validation").glob("*.*")]
    written = [path for path in written if path.suffix in (".md", ".json")]
    assert len(written) == 4
    assert all(PASSWORD not in path.read_text() for path in written)


def test_a_failed_gate_stops_the_play_after_the_report(
    storage: PrometheusProcess, lab_scenarios: dict[str, Scenario], lab: RunningLab, baseline_dir: Path, tmp_path: Path
) -> None:
    results = run_validation(storage, lab_scenarios["slow_push"], lab, baseline_dir, tmp_path)
    assert results["__rc__"] != 0
    message = failures(results)
    assert "Validation failed: [FAIL] push_latency: p99 " in message
    assert f"Report: {tmp_path / 'validation' / 'validation.md'}" in message
    report = json.loads((tmp_path / "validation" / "validation.json").read_text())
    assert report["passed"] is False
    assert [verdict["gate"] for verdict in report["verdicts"] if verdict["status"] == "FAIL"] == ["push_latency"]
