"""Fault: the Kubernetes API answers 5xx in bursts and 409 conflicts on writes. What is safe to retry is
retried; either the run succeeds, or it stops cleanly (the phase recorded failed with the API's answer)
and the same command completes once the API is healthy again. CI counts on an exact burst against the
identity check every phase begins with and the migration state's writes; the full suite runs
preflight.yml while a quarter of all requests fail."""

from __future__ import annotations

import collections
import time

import pytest

from tests.faults.fault_support import continuity


def summary(requests: list[dict]) -> str:
    answered = collections.Counter(str(entry["code"]) for entry in requests if entry["code"] in (409, 503))
    return ", ".join(f"{count}x {code}" for code, count in sorted(answered.items())) or "no error answered"


def test_identity_reads_and_state_writes_are_retried_through_a_burst(cluster, table_row):
    state = {"kubeconfig": "{{ migration_kubeconfig }}", "namespace": "{{ migration_namespace }}"}
    tasks = [
        {"name": "Identity", "ansible.builtin.include_role": {"name": "preflight", "tasks_from": "cluster.yml"}},
        {"name": "Begin", "migration_state": {"action": "begin", "phase": "preflight", **state}},
        {"name": "Succeed", "migration_state": {"action": "succeed", "phase": "preflight", **state}},
    ]
    started = time.time()
    # The next two requests answer 503 (the identity check's first read, then its first retry), the
    # next two writes 409 (the state's record of success, twice).
    cluster.fault("api", errors=2, error_code=503, conflicts=2)
    try:
        run = cluster.play(tasks)
    finally:
        cluster.fault("api", errors=0, conflicts=0)
    during = cluster.api_requests(started)
    record = cluster.migration_state().phases.get("preflight", {})
    table_row(
        fault="API burst: the next 2 requests 503, the next 2 writes 409 (identity check and state, CI)",
        expected="retried, the run succeeds",
        seen=f"{summary(during)} answered; rc {run.rc}, preflight recorded {record.get('status')}",
        data_lost=continuity(cluster, started, time.time(), 'prometheus!=""', 2.0).summary(),
    )
    assert [entry["code"] for entry in during if entry["code"] in (409, 503)] == [503, 503, 409, 409], during
    assert run.rc == 0, run.tail()
    assert record.get("status") == "succeeded", record


@pytest.mark.fault_full
def test_preflight_rides_out_api_errors_or_stops_cleanly_and_resumes(cluster, table_row):
    started = time.time()
    cluster.fault("api", error_rate=0.25, error_code=503, conflict_rate=0.5)
    try:
        first = cluster.playbook("preflight.yml")
    finally:
        cluster.fault("api", error_rate=0, conflict_rate=0)
    during = cluster.api_requests(started)
    record = cluster.migration_state().phases.get("preflight", {})
    answer = next((line.strip() for line in first.output.splitlines() if "Reason: " in line), "")
    first_outcome = (
        "succeeded"
        if first.rc == 0
        else f"stopped cleanly ({answer}), recorded: {record.get('reason', '')[:80]}"
        if record.get("status") == "failed"
        else f"stopped cleanly ({answer}) before the phase began, nothing written"
        if not record
        else f"stopped, state {record.get('status')}"
    )
    again = cluster.playbook("preflight.yml") if first.rc != 0 else None
    final = cluster.migration_state().phases.get("preflight", {})
    table_row(
        fault="API errors during preflight.yml (25 % of requests 503, half the writes 409)",
        expected="retried where safe; success, or a clean stop and a re-run that completes",
        seen=(
            f"{summary(during)} answered; first run {first_outcome}"
            + (f"; re-run rc {again.rc}, preflight {final.get('status')}" if again else "")
        ),
        data_lost=continuity(cluster, started, time.time(), 'prometheus!=""', 2.0).summary(),
    )
    assert any(entry["code"] == 503 for entry in during), "the fault never hit a request"
    if first.rc == 0:
        assert record.get("status") == "succeeded", record
    else:
        # A clean stop: in the input checks, before the phase began (nothing written), or recorded failed.
        assert record.get("status", "failed") == "failed", f"not a clean stop: {record}\n{first.tail()}"
        assert "Service Unavailable" in first.output or "Conflict" in first.output, first.tail()
        assert again is not None and again.rc == 0, again.tail() if again else ""
        assert final.get("status") == "succeeded", final
