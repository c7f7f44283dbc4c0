"""Fault: wrong credentials for Mimir (a basic-auth gateway in front of it refuses them). The run stops with
an error that says what Mimir answered and what to check, changes nothing, and never prints the secret,
however verbose the output. CI runs preflight's Mimir check alone; the full suite runs preflight.yml."""

from __future__ import annotations

import json
import re
import secrets
import time
import urllib.error

import pytest

from tests.faults.fault_support import Cluster, Run, continuity, mimir_query

USER = "fault-suite"
MESSAGE = re.compile(r"Mimir did not answer a query at (\S+) .*?: (.*?)\. Check", re.S)


def refuse_all_but(cluster: Cluster, right: str, wrong: str) -> None:
    cluster.fault("mimir", auth=f"{USER}:{right}")
    # The gateway is real: the right credentials pass it, others do not.
    assert mimir_query(cluster, "vector(1)", time.time(), auth=(USER, right))
    with pytest.raises(urllib.error.HTTPError) as refused:
        mimir_query(cluster, "vector(1)", time.time(), auth=(USER, wrong))
    assert refused.value.code == 401


def seen(run: Run, wrong: str, what: str) -> str:
    said = MESSAGE.search(run.output)
    message = re.sub(r"<[^>]*>|\s+", " ", said.group(2)).strip()[:150] if said else "no Mimir message"
    lines = len(run.output.splitlines())
    return (
        f"{what} stopped (rc {run.rc}): {message}; secret in {lines} lines of -vvv output: {run.output.count(wrong)}x"
    )


def assert_refused_without_the_secret(run: Run, wrong: str) -> None:
    assert run.rc != 0, run.tail()
    assert wrong not in run.output, "the password was printed"
    said = MESSAGE.search(run.output)
    assert said, run.tail()
    assert "HTTP 401" in said.group(2), said.group(0)
    assert "the credentials were refused" in said.group(2), said.group(0)
    assert "credentials in vault.yml" in run.output


def test_mimir_check_says_the_credentials_were_refused_and_never_prints_them(cluster, table_row):
    right, wrong = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    started = time.time()
    refuse_all_but(cluster, right, wrong)
    try:
        run = cluster.play(
            [{"name": "Mimir check", "ansible.builtin.include_role": {"name": "preflight", "tasks_from": "mimir.yml"}}],
            "-vvv",
            "-e",
            f"migration_mimir_username={USER}",
            "-e",
            f"migration_mimir_password={wrong}",
        )
    finally:
        cluster.fault("mimir", auth="")
    table_row(
        fault="wrong Mimir credentials, preflight's Mimir check alone (CI)",
        expected="clear error, the secret never printed",
        seen=seen(run, wrong, "the check"),
        data_lost=continuity(cluster, started, time.time(), 'prometheus!=""', 2.0).summary(),
    )
    assert_refused_without_the_secret(run, wrong)


@pytest.mark.fault_full
def test_wrong_mimir_password_stops_preflight_and_is_never_printed(cluster, table_row):
    right, wrong = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    started = time.time()
    refuse_all_but(cluster, right, wrong)
    before = cluster.snapshot()
    try:
        run = cluster.playbook(
            "preflight.yml",
            "-vvv",
            "-e",
            f"migration_mimir_username={USER}",
            "-e",
            f"migration_mimir_password={wrong}",
        )
    finally:
        cluster.fault("mimir", auth="")
    state = cluster.state_configmap()
    table_row(
        fault="wrong Mimir credentials (a basic-auth gateway refuses the password), preflight.yml",
        expected="clear error, nothing changed, the secret never printed",
        seen=seen(run, wrong, "preflight"),
        data_lost=continuity(cluster, started, time.time(), 'prometheus!=""', 2.0).summary(),
    )
    assert_refused_without_the_secret(run, wrong)
    assert wrong not in json.dumps(state, default=str), "the password reached the migration state"
    assert cluster.snapshot() == before
    assert cluster.migration_state().status("preflight") == "failed"
