"""Fault: Mimir down during validation. Validation must fail closed (an earlier pass stops counting), and
decommission must refuse, leaving the legacy stack as it was."""

from __future__ import annotations

import hashlib
import json
import socket
import time

import pytest
from ansible.module_utils.promql import ClientSettings, PromQLClient, PromQLError

from tests.faults.fault_support import continuity

BASELINE = {"kind": "alloy-migration-baseline", "schema_version": 1}


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
        fault="Mimir down when validation starts (an earlier validation had passed)",
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
