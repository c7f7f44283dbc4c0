"""Fault: Ctrl-C (SIGINT to the foreground process group, as a terminal sends it) at a random point of
site.yml. Running the same command again resumes the interrupted phase and completes the migration.

The point is drawn from FAULT_SEED (random when unset; the table names it, so a run can be repeated): a
phase, uniformly, then how many tasks into it."""

from __future__ import annotations

import calendar
import os
import random
import re
import time

import kubernetes
import pytest

from tests.faults.fault_support import continuity

PHASES = ("Preflight", "Baseline", "Containerd metrics", "Collectors", "Validation", "Decommission")
MIGRATION = ("preflight", "baseline", "containerd_metrics", "collectors", "validation", "decommission")


def interrupt_point(seed: int) -> tuple[str, int]:
    chosen = random.Random(seed)
    return chosen.choice(PHASES), chosen.randint(1, 40)


def reached(phase: str, tasks: int):
    def condition(output: str) -> bool:
        start = output.find(f"\nPLAY [{phase} ")
        return start >= 0 and output.count("\nTASK [", start) >= tasks

    return condition


@pytest.mark.fault_full
def test_ctrl_c_at_a_random_point_of_site_yml_and_the_same_command_completes(cluster, table_row):
    seed = int(os.environ.get("FAULT_SEED") or random.SystemRandom().randrange(1_000_000))
    phase, tasks = interrupt_point(seed)
    history = cluster.lab("wait-history", "--window", "30s", "--scrapes", "6", "--timeout", "120", timeout=180)
    assert history.returncode == 0, history.stderr
    started = time.time()

    first = cluster.playbook_interrupted("site.yml", when=reached(phase, tasks), timeout=1800)

    at = re.findall(r"^TASK \[(.*?)\] \*", first.output, re.M)
    left = cluster.migration_state()
    unfinished = [name for name in MIGRATION if left.status(name) in ("running", "failed")]
    second = cluster.playbook("site.yml", timeout=1800)
    final = cluster.migration_state()
    resumed = [name for name in unfinished if int(final.phases[name].get("attempts", 1)) > 1]
    statefulsets = kubernetes.client.AppsV1Api(cluster.api()).list_namespaced_stateful_set(cluster.namespace).items
    replicas = {item.metadata.name: item.spec.replicas for item in statefulsets}
    # The new pipeline is judged from when its collectors were up (30 s after its phase began).
    collectors_started = calendar.timegm(time.strptime(final.phases["collectors"]["started"], "%Y-%m-%dT%H:%M:%SZ"))
    new = continuity(cluster, collectors_started + 30, time.time(), cluster.new_pipeline_selector, 5.0)
    legacy = continuity(cluster, started, time.time(), 'prometheus!=""', 2.0, may_end=True)
    table_row(
        fault=f"Ctrl-C during site.yml (seed {seed}: {phase}, task {tasks})",
        expected="the re-run resumes and completes",
        seen=(
            f"interrupted at '{at[-1] if at else '?'}' (rc {first.rc}); left {unfinished or 'no phase'} unfinished; "
            f"re-run rc {second.rc} in {second.seconds:.0f} s, resumed {resumed or 'nothing'}; "
            f"phases succeeded: {sum(final.status(name) == 'succeeded' for name in MIGRATION)}/{len(MIGRATION)}"
        ),
        data_lost=f"legacy: {legacy.summary()}; new: {new.summary()}",
    )
    assert first.interrupted and first.rc != 0, first.tail()
    assert second.rc == 0, second.tail(80)
    assert all(final.status(name) == "succeeded" for name in MIGRATION), final.phases
    assert set(resumed) == set(unfinished)
    assert replicas.get("alloy", 0) >= 1, replicas
    assert not any(name.startswith("prometheus-") and count for name, count in replicas.items()), replicas
    assert not legacy.lost and not new.lost, f"legacy: {legacy.gaps}, new: {new.gaps}"
