"""Fault: Mimir down during validation. Validation must fail closed (an earlier pass stops counting), and
decommission must refuse, leaving the legacy stack as it was. CI runs the validation role alone with
Mimir down; the full suite runs validation.yml and decommission.yml (and test_pipeline_faults takes Mimir
down in the middle of a validation of a deployed pipeline)."""

from __future__ import annotations

import hashlib
import json
import re
import socket
import time

import pytest
from ansible.module_utils.promql import ClientSettings, PromQLClient, PromQLError

from tests.faults.fault_support import continuity

BASELINE = {"kind": "alloy-migration-baseline", "schema_version": 1}


def test_validation_role_fails_closed_with_mimir_down(cluster, table_row, tmp_path):
    baseline = tmp_path / "baseline.json"
    baseline.write_text(json.dumps(BASELINE))
    started = time.time()
    cluster.fault("mimir", down="true")
    try:
        run = cluster.play(
            [{"name": "Validation", "ansible.builtin.include_role": {"name": "migration_validation"}}],
            "-e",
            f"migration_validation_baseline_file={baseline}",
            # Judge the window ending now without waiting for data, one retry per query: CI's budget.
            "-e",
            f"migration_validation_time={int(started)}",
            "-e",
            "migration_validation_mimir_retries=1",
        )
    finally:
        cluster.fault("mimir", down="false")
    verdicts = [line.strip() for line in run.output.splitlines() if re.search(r"\[(PASS|FAIL|SKIP)\]", line)]
    failed = [line for line in verdicts if "[FAIL]" in line]
    table_row(
        fault="Mimir down, the validation role alone (CI)",
        expected="every gate fails closed, the role stops",
        seen=(
            f"rc {run.rc} after {run.seconds:.0f} s; gate lines: {len(failed)} FAIL, "
            f"{sum('[PASS]' in line for line in verdicts)} PASS, {sum('[SKIP]' in line for line in verdicts)} SKIP"
        ),
        data_lost=continuity(cluster, started, time.time(), 'prometheus!=""', 2.0).summary(),
    )
    assert run.rc != 0, run.tail()
    assert "Validation failed" in run.output, run.tail()
    assert failed, run.tail()
    assert not any("[PASS]" in line for line in verdicts), verdicts
    assert "Connection refused" in run.output


@pytest.mark.fault_full
def test_validation_fails_closed_with_mimir_down_and_decommission_refuses(cluster, table_row, tmp_path):
    # A baseline the migration recorded, and an earlier validation that passed: a run that cannot reach
    # Mimir must not leave that pass standing.
    baseline = tmp_path / "baseline.json"
    baseline.write_text(json.dumps(BASELINE))
    digest = hashlib.sha256(baseline.read_bytes()).hexdigest()
    cluster.record_phases(
        ["preflight", "baseline", "containerd_metrics", "collectors", "validation"],
        {
            "baseline": {"path": str(baseline), "digest": digest},
            "validation": {"passed": True, "report": str(tmp_path / "old.md"), "digest": "0" * 64},
        },
    )
    before = cluster.snapshot()
    started = time.time()
    cluster.fault("mimir", down="true")
    try:
        validation = cluster.playbook("validation.yml", "-e", "migration_validation_settle_timeout=4")
        decommission = cluster.playbook("decommission.yml")
    finally:
        cluster.fault("mimir", down="false")

    record = cluster.migration_state().phases["validation"]
    refusal = next((line for line in decommission.output.splitlines() if "cannot start" in line), "")
    table_row(
        fault="Mimir down when validation.yml starts (an earlier validation had passed), then decommission.yml",
        expected="validation fails closed, decommission refuses",
        seen=(
            f"validation rc {validation.rc}, state {record['status']}: {record.get('reason', '')[:80]}; "
            f"decommission rc {decommission.rc}: {refusal.strip()[:90] or 'no refusal'}"
        ),
        data_lost=continuity(cluster, started, time.time(), 'prometheus!=""', 2.0).summary(),
    )
    assert validation.rc != 0, validation.tail()
    assert record["status"] == "failed", record
    assert "Connection refused" in record["reason"] or "unreachable" in record["reason"], record["reason"]
    assert decommission.rc != 0, decommission.tail()
    assert "phase decommission cannot start: it requires validation" in decommission.output, decommission.tail()
    assert cluster.snapshot() == before


def test_a_mimir_that_refuses_connections_is_retried_once_per_run_not_once_per_query():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    slept: list[float] = []
    client = PromQLClient(
        ClientSettings(url=f"http://127.0.0.1:{port}/prometheus", retries=3, timeout=2), sleep=slept.append
    )
    with pytest.raises(PromQLError, match="Connection refused"):
        client.query_instant("up")
    assert len(slept) == 3
    with pytest.raises(PromQLError, match="not tried again"):
        client.query_range("sum(up)", "0", "60", "15")
    assert len(slept) == 3
