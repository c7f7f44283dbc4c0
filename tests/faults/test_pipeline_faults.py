"""Faults while validation judges the new pipeline, on a lab migrated up to the collectors phase (the
baseline, the containerd patch on every node, kube-state-metrics, Alloy and the OTel Collector deployed
by site.yml as an operator would run it):

- an Alloy replica is killed mid-validation: its targets move to the replicas left and back when the
  StatefulSet brings it back; no target goes unscraped, none is scraped twice, and validation passes;
- Mimir goes down mid-validation: validation fails closed (an earlier pass stops counting) and
  decommission refuses; once Mimir is back, the agents deliver what they queued.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import kubernetes
import pytest

from tests.faults.fault_support import (
    FAULT_INVENTORY,
    Cluster,
    Continuity,
    continuity,
    fresh_lab,
    group_vars,
    wait_for,
)

pytestmark = pytest.mark.fault_full

NEW_INTERVAL = 5.0  # alloy_scrape_interval in fast.yml
LEGACY_INTERVAL = 2.0  # the lab's LAB_METRICS in the fault suite


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    directory = tmp_path_factory.mktemp("pipeline")
    run_dir = directory / "lab"
    run_dir.mkdir()
    with fresh_lab(run_dir) as state:
        cluster = Cluster(run_dir, FAULT_INVENTORY, directory / "artifacts", state, group_vars(FAULT_INVENTORY))
        history = cluster.lab("wait-history", "--window", "30s", "--scrapes", "6", "--timeout", "120", timeout=180)
        assert history.returncode == 0, history.stderr
        run = cluster.playbook("site.yml", "--tags", "preflight,baseline,containerd_metrics,collectors", timeout=1800)
        assert run.rc == 0, run.tail(80)
        yield cluster


def alloy_pods(cluster: Cluster) -> dict[str, str]:
    core = kubernetes.client.CoreV1Api(cluster.api())
    pods = core.list_namespaced_pod(cluster.namespace, label_selector="app.kubernetes.io/name=alloy").items
    return {pod.metadata.name: pod.metadata.uid for pod in pods if pod.status.phase == "Running"}


def at_task(name: str):
    """The playbook's output has reached the start of a task whose title contains `name`."""
    return lambda output: f"{name}" in output.rsplit("\nTASK [", 1)[-1].split("]", 1)[0]


def failed_gates(output: str) -> list[str]:
    return sorted(set(re.findall(r"\[FAIL\] (\w+):", output)))


def delivered(cluster: Cluster, start: float, end: float) -> tuple[Continuity, Continuity]:
    """Both pipelines' continuity over [start, end]; agents that queued samples while Mimir was
    unreachable deliver them late, so each is judged again for up to a minute."""
    legacy = continuity(cluster, start, end, 'prometheus!=""', LEGACY_INTERVAL, settle=60)
    new = continuity(cluster, start, end, cluster.new_pipeline_selector, NEW_INTERVAL, settle=60)
    return legacy, new


def test_an_alloy_replica_killed_mid_validation_loses_no_target_and_duplicates_none(pipeline, table_row):
    cluster = pipeline
    before = alloy_pods(cluster)
    assert len(before) >= 2, before
    victim = sorted(before)[-1]
    core = kubernetes.client.CoreV1Api(cluster.api())
    killed: list[float] = []

    def kill(_process: object) -> None:
        # As `kubectl delete pod --grace-period=0 --force`: the replica is gone at once.
        core.delete_namespaced_pod(victim, cluster.namespace, grace_period_seconds=0)
        killed.append(time.time())

    # Validation waits for data, then judges the last 30 s: the replica dies as it starts waiting, so the
    # window it judges holds the kill, the rebalance and the replica's return.
    run = cluster.playbook_watched("validation.yml", when=at_task("Settle | wait"), then=kill)
    assert run.interrupted, "validation never reached its settle step"
    wait_for(lambda: alloy_pods(cluster).get(victim) not in (None, before[victim]), 60, what=f"{victim} back")
    ended = time.time()
    record = cluster.migration_state().phases["validation"]
    new = continuity(cluster, killed[0] - 20, ended, cluster.new_pipeline_selector, NEW_INTERVAL, allowance=4)
    legacy = continuity(cluster, killed[0] - 20, ended, 'prometheus!=""', LEGACY_INTERVAL)
    table_row(
        fault=f"an Alloy replica killed mid-validation ({victim} force-deleted, recreated by its StatefulSet)",
        expected="targets rebalance, no target lost, no duplicate series; validation passes",
        seen=(
            f"validation rc {run.rc}, state {record['status']}, failed gates: {failed_gates(run.output) or 'none'}; "
            f"{new.series} new-pipeline targets: {len(new.ended)} stopped, {len(new.duplicates)} duplicated, "
            f"{len(new.gaps)} with a gap beyond the rebalance, longest step {new.longest:.0f} s"
        ),
        data_lost=f"new: {new.summary()}; legacy (still running): {legacy.summary()}",
    )
    assert new.series > 0
    assert not new.lost, f"gaps {new.gaps}, stopped {new.ended}"
    assert not new.duplicates, new.duplicates
    assert not legacy.lost, legacy.gaps
    assert run.rc == 0, run.tail(60)
    assert record["status"] == "succeeded", record


def test_mimir_down_mid_validation_fails_closed_and_decommission_refuses(pipeline, table_row):
    cluster = pipeline
    if cluster.migration_state().status("validation") != "succeeded":
        cluster.record_phases(["validation"], {"validation": {"passed": True}})
    before = cluster.snapshot()
    down: list[float] = []

    def take_mimir_down(_process: object) -> None:
        cluster.fault_now("mimir", down="true")
        down.append(time.time())

    # Validation has waited for its data (Mimir answered); Mimir goes down as the gates are judged.
    try:
        run = cluster.playbook_watched("validation.yml", when=at_task("Gates | judge"), then=take_mimir_down)
        decommission = cluster.playbook("decommission.yml")
    finally:
        cluster.fault_now("mimir", down="false")
    up_at = time.time()
    assert run.interrupted, "validation never reached its gates"
    record = cluster.migration_state().phases["validation"]
    after = cluster.snapshot()
    # The agents queued what they scraped while Mimir was down; once it is back they deliver it.
    legacy, new = delivered(cluster, down[0] - 10, up_at)
    refusal = next((line.strip() for line in decommission.output.splitlines() if "cannot start" in line), "")
    table_row(
        fault=f"Mimir down mid-validation, as the gates are judged ({up_at - down[0]:.0f} s, after an earlier pass)",
        expected="validation fails closed, decommission refuses",
        seen=(
            f"validation rc {run.rc} in {run.seconds:.0f} s, state {record['status']}, failed gates: "
            f"{len(failed_gates(run.output))}; decommission rc {decommission.rc}: {refusal[:90] or 'no refusal'}"
        ),
        data_lost=f"legacy: {legacy.summary()}; new: {new.summary()}",
    )
    assert run.rc != 0, run.tail(60)
    assert record["status"] == "failed", record
    assert decommission.rc != 0, decommission.tail()
    assert "phase decommission cannot start: it requires validation" in decommission.output
    assert after == before
    assert not legacy.lost and not new.lost, f"legacy: {legacy.gaps}, new: {new.gaps}"
