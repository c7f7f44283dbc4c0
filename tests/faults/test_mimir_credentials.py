"""Fault: wrong credentials for Mimir. The run stops with an error that says what Mimir answered and what
to check, changes nothing, and never prints the secret, however verbose the output."""

from __future__ import annotations

import json
import re
import secrets
import time
import urllib.error

import pytest

from tests.faults.fault_support import continuity, mimir_query

USER = "fault-suite"


def test_wrong_mimir_password_stops_preflight_and_is_never_printed(cluster, table_row):
    right, wrong = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    started = time.time()
    cluster.fault("mimir", auth=f"{USER}:{right}")
    # The gateway is real: the right credentials pass it, others do not.
    assert mimir_query(cluster, "vector(1)", time.time(), auth=(USER, right))
    with pytest.raises(urllib.error.HTTPError) as refused:
        mimir_query(cluster, "vector(1)", time.time(), auth=(USER, wrong))
    assert refused.value.code == 401
    before = cluster.snapshot()

    run = cluster.playbook(
        "preflight.yml",
        "-vvv",
        "-e",
        f"migration_mimir_username={USER}",
        "-e",
        f"migration_mimir_password={wrong}",
    )

    cluster.fault("mimir", auth="")
    said = run.output
    state = cluster.state_configmap()
    stopped_at = re.search(r"Mimir did not answer a query at (\S+) .*?: (.*?)\. Check", said, re.S)
    table_row(
        fault="wrong Mimir credentials (a basic-auth gateway refuses the password)",
        expected="clear error, nothing changed, the secret never printed",
        seen=(
            f"preflight stopped (rc {run.rc}): "
            + (re.sub(r"<[^>]*>|\s+", " ", stopped_at.group(2)).strip()[:150] if stopped_at else "no Mimir message")
            + f"; secret in {len(said.splitlines())} lines of -vvv output: {said.count(wrong)} times"
        ),
        data_lost=continuity(cluster, started, time.time(), 'prometheus!=""', 2.0).summary(),
    )
    assert run.rc != 0, run.tail()
    assert wrong not in said, "the password was printed"
    assert wrong not in json.dumps(state, default=str), "the password reached the migration state"
    assert stopped_at, run.tail()
    assert "HTTP 401" in stopped_at.group(2), stopped_at.group(0)
    assert "the credentials were refused" in stopped_at.group(2), stopped_at.group(0)
    assert "credentials in vault.yml" in said
    assert cluster.snapshot() == before
    assert cluster.migration_state().status("preflight") == "failed"
