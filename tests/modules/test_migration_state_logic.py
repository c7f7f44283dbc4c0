"""The migration state's pure logic: transitions, refusals, the credential guard, the table, conflicts.

The API is replaced by a scripted CoreV1Api here; test_migration_state_module.py runs the module
against the lab's API server.
"""

from __future__ import annotations

import json

import pytest
from ansible.module_utils.kube_api import KubeApiError
from ansible.module_utils.migration_state import (
    HISTORY_LIMIT,
    PHASES,
    Context,
    MigrationState,
    StateError,
    StateStore,
    StoreSettings,
    begin,
    credential_findings,
    fail,
    progress,
    redact_credentials,
    refuse_credentials,
    reset,
    secret_values,
    succeed,
    table,
)

T0 = Context(now="2026-01-10T09:00:00Z", by="ops@bastion", environment="staging", run_id="run-1")
T1 = Context(now="2026-01-10T09:05:00Z", by="ops@bastion", environment="staging", run_id="run-1")
T2 = Context(now="2026-01-10T10:00:00Z", by="ci@runner", environment="staging", run_id="run-2")


def succeeded(*phases: str) -> MigrationState:
    state = MigrationState()
    for phase in phases:
        state = succeed(begin(state, phase, [], T0).state, phase, {}, T1).state
    return state


def test_begin_records_running_with_who_when_and_where() -> None:
    state = begin(MigrationState(), "preflight", [], T0).state
    record = state.phases["preflight"]
    assert record == {
        "status": "running",
        "started": "2026-01-10T09:00:00Z",
        "by": "ops@bastion",
        "environment": "staging",
        "run_id": "run-1",
        "attempts": 1,
        "details": {},
    }
    assert state.history[-1] == {
        "at": "2026-01-10T09:00:00Z",
        "event": "begin",
        "phase": "preflight",
        "by": "ops@bastion",
        "run_id": "run-1",
    }


def test_begin_refuses_naming_each_missing_prerequisite_and_its_playbook() -> None:
    state = succeeded("collectors")
    state = fail(begin(state, "validation", ["collectors"], T0).state, "validation", "p99 too high", {}, T1).state
    with pytest.raises(StateError) as refused:
        begin(state, "decommission", ["collectors", "validation", "baseline"], T2)
    message = str(refused.value)
    assert "phase decommission cannot start: it requires validation, baseline to have succeeded" in message
    assert "validation (failed): run `ansible-playbook playbooks/validation.yml -i inventories/<env>`" in message
    assert "baseline (not run): run `ansible-playbook playbooks/baseline.yml" in message
    assert "collectors (" not in message


def test_closing_a_phase_keeps_the_environment_and_run_id_it_began_with() -> None:
    state = begin(MigrationState(), "baseline", [], T0).state
    state = succeed(state, "baseline", {}, Context(now=T1.now, by="ops@bastion")).state
    record = state.phases["baseline"]
    assert (record["environment"], record["run_id"]) == ("staging", "run-1")


def test_a_phase_left_running_resumes_with_its_details() -> None:
    state = begin(MigrationState(), "decommission", [], T0).state
    state = progress(state, "decommission", {"steps_done": ["backup", "scale_to_1"], "backup_dir": "/a/b"}, T0).state
    resumed = begin(state, "decommission", [], T2)
    record = resumed.state.phases["decommission"]
    assert resumed.resumed
    assert record["details"] == {"steps_done": ["backup", "scale_to_1"], "backup_dir": "/a/b"}
    assert record["attempts"] == 2
    assert record["started"] == "2026-01-10T09:00:00Z"
    assert record["resumed"] == "2026-01-10T10:00:00Z"
    assert record["by"] == "ci@runner"
    assert resumed.state.history[-1]["event"] == "resume"


def test_a_failed_phase_resumes_too_and_succeeds_with_its_details() -> None:
    state = begin(MigrationState(), "containerd_metrics", [], T0).state
    state = progress(state, "containerd_metrics", {"nodes_done": ["w1"]}, T0).state
    state = fail(state, "containerd_metrics", "node w2 never came back", {}, T1).state
    assert state.phases["containerd_metrics"]["reason"] == "node w2 never came back"
    state = begin(state, "containerd_metrics", [], T2).state
    state = succeed(state, "containerd_metrics", {"nodes_done": ["w1", "w2"]}, T2).state
    record = state.phases["containerd_metrics"]
    assert record["status"] == "succeeded"
    assert record["attempts"] == 2
    assert "reason" not in record
    assert record["details"] == {"nodes_done": ["w1", "w2"]}


def test_rerunning_a_succeeded_phase_with_the_same_outcome_changes_nothing() -> None:
    state = succeeded("preflight")
    again = begin(state, "preflight", [], T2)
    assert again.already_succeeded
    assert again.state.to_data() == state.to_data()
    finished = succeed(again.state, "preflight", {}, T2)
    assert finished.already_succeeded
    assert finished.state.to_data() == state.to_data()


def test_rerunning_a_succeeded_phase_with_a_new_outcome_records_it_anew() -> None:
    state = begin(MigrationState(), "validation", [], T0).state
    state = succeed(state, "validation", {"passed": True, "report_digest": "sha256:aa"}, T1).state
    again = begin(state, "validation", [], T2)
    state = succeed(again.state, "validation", {"report_digest": "sha256:bb"}, T2, started=T2.now).state
    record = state.phases["validation"]
    assert record["details"] == {"passed": True, "report_digest": "sha256:bb"}
    assert (record["started"], record["finished"], record["by"]) == (T2.now, T2.now, "ci@runner")


def test_succeed_and_progress_need_a_running_phase() -> None:
    with pytest.raises(StateError, match="phase collectors has no record: begin it"):
        succeed(MigrationState(), "collectors", {}, T0)
    with pytest.raises(StateError, match="phase collectors is not run, not running"):
        progress(MigrationState(), "collectors", {"x": 1}, T0)
    failed = fail(MigrationState(), "collectors", "boom", {}, T0).state
    with pytest.raises(StateError, match=r"phase collectors failed \(boom\); begin it again first"):
        succeed(failed, "collectors", {}, T1)


def test_details_merge_key_by_key_and_null_removes() -> None:
    state = begin(MigrationState(), "collectors", [], T0).state
    state = progress(state, "collectors", {"a": 1, "b": [1, 2]}, T0).state
    state = progress(state, "collectors", {"b": None, "c": "x"}, T1).state
    assert state.phases["collectors"]["details"] == {"a": 1, "c": "x"}
    assert state.phases["collectors"]["updated"] == T1.now
    unchanged = progress(state, "collectors", {"a": 1}, T2)
    assert unchanged.state is state


def test_reset_forgets_records_and_keeps_the_history() -> None:
    state = succeeded("preflight", "baseline")
    one = reset(state, ["baseline"], T2).state
    assert set(one.phases) == {"preflight"}
    assert one.history[-1] == {
        "at": T2.now,
        "event": "reset",
        "phase": "baseline",
        "by": "ci@runner",
        "run_id": "run-2",
    }
    assert reset(one, ["baseline"], T2).state is one
    assert reset(state, list(PHASES), T2).state.phases == {}


def test_a_phase_cannot_require_itself() -> None:
    with pytest.raises(StateError, match="cannot require itself"):
        begin(MigrationState(), "baseline", ["baseline"], T0)


def test_history_is_bounded() -> None:
    state = MigrationState()
    for index in range(HISTORY_LIMIT + 7):
        state = reset(succeeded("preflight"), ["preflight"], T0).state if index == 0 else state
        state = begin(state, "rollback", [], T0).state
        state = fail(state, "rollback", f"attempt {index}", {}, T1).state
    assert len(state.history) == HISTORY_LIMIT
    assert json.loads(state.to_data()["history"])[-1]["event"] == "fail"


def test_state_round_trips_through_configmap_data() -> None:
    state = succeeded("preflight", "baseline")
    data = state.to_data()
    assert set(data) == {"preflight", "baseline", "history"}
    assert json.loads(data["baseline"])["status"] == "succeeded"
    assert MigrationState.from_data(data).to_data() == data
    with pytest.raises(StateError, match="the record of phase baseline is not JSON"):
        MigrationState.from_data({"baseline": "{oops"})


@pytest.mark.parametrize(
    ("details", "finding"),
    [
        ({"mimir_password": "x"}, "details.mimir_password: the key names a credential"),
        ({"auth": {"api_key": "x"}}, "details.auth.api_key: the key names a credential"),
        ({"Token": 1}, "details.Token: the key names a credential"),
        ({"note": "Authorization: Bearer abcdefghijkl"}, "details.note: the value looks like an Authorization header"),
        (
            {"urls": ["https://u:hunter2@mimir.example/api"]},
            "details.urls[0]: the value looks like a URL with a password",
        ),
        ({"k": "-----BEGIN RSA PRIVATE KEY-----\nMIIE"}, "details.k: the value looks like a PEM private key"),
        ({"jwt": "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGxveSJ9.c2lnbmF0dXJlLXZhbHVl"}, "looks like a JSON web token"),
    ],
)
def test_credentials_are_found_by_key_and_by_shape(details: dict, finding: str) -> None:
    lines = [f"{path}: {why}" for path, why, _ in credential_findings(details)]
    assert any(finding in line for line in lines), lines


def test_ordinary_details_pass_the_guard() -> None:
    details = {
        "report_digest": "sha256:" + "a" * 64,
        "backup_dir": "/srv/artifacts/production/run-1/backup",
        "nodes_done": ["talos-worker-1"],
        "verdict": "passed",
        "mimir_url": "https://mimir.example/prometheus",
        "passed": True,
    }
    assert credential_findings(details) == []
    refuse_credentials(credential_findings(details) + credential_findings("p99 1.2 s > 1 s", "reason"))


def test_failure_reasons_are_stored_with_credentials_redacted() -> None:
    reason = (
        "push to https://tenant:hunter2@mimir.example/api/v1/push failed; header Authorization: Bearer abcdefghijkl"
    )
    redacted = redact_credentials(reason)
    assert "hunter2" not in redacted and "abcdefghijkl" not in redacted
    assert redacted.startswith("push to <redacted>mimir.example/api/v1/push failed")
    assert redact_credentials("p99 1.2 s > 1 s") == "p99 1.2 s > 1 s"


def test_refused_values_are_collected_for_masking() -> None:
    findings = credential_findings({"auth": {"password": "hunter2", "port": 8080}, "note": "Bearer abcdefghijkl"})
    assert secret_values(findings) >= {"hunter2", "Bearer abcdefghijkl"}


def test_refusal_names_every_finding_and_where_secrets_belong() -> None:
    with pytest.raises(StateError) as refused:
        refuse_credentials(
            credential_findings({"password": "x"}) + credential_findings("curl https://a:b@host/ failed", "reason")
        )
    message = str(refused.value)
    assert "details.password: the key names a credential" in message
    assert "reason: the value looks like a URL with a password" in message
    assert "Kubernetes Secrets or ansible-vault" in message
    assert "b@host" not in message.split("reason:", maxsplit=1)[0]


def test_table_lists_every_phase_in_order() -> None:
    state = succeeded("preflight")
    state = begin(state, "baseline", [], T2).state
    state = progress(state, "baseline", {"report_digest": "sha256:" + "f" * 64, "jobs": ["a", "b", "c", "d"]}, T2).state
    lines = table(state)
    assert lines[0].split() == ["PHASE", "STATUS", "STARTED", "FINISHED", "BY", "DETAILS"]
    assert [line.split()[0] for line in lines[1:]] == list(PHASES)
    assert lines[1].split()[:5] == ["preflight", "succeeded", T0.now, T1.now, "ops@bastion"]
    assert lines[2].split()[:5] == ["baseline", "running", T2.now, "-", "ci@runner"]
    assert "jobs=<4 items>" in lines[2]
    assert "report_digest=sha256:" + "f" * 30 + "..." in lines[2]
    assert lines[3].split() == ["containerd_metrics", "not", "run", "-", "-", "-", "-"]


class ScriptedApi:
    """A KubeApi stand-in: one ConfigMap, and writes that lose a race a given number of times."""

    def __init__(self, configmap: dict | None, conflicts: int = 0, errors: list[int | Exception] = ()) -> None:
        self.configmap = configmap
        self.conflicts = conflicts
        self.errors = list(errors)
        self.writes: list[dict] = []
        self.reads = 0

    def request(self, method: str, path: str, query: list | None = None, body: dict | None = None) -> dict | None:
        assert path.startswith("/api/v1/namespaces/monitoring/configmaps")
        if self.errors:
            error = self.errors.pop(0)
            if isinstance(error, Exception):
                raise error
            raise KubeApiError(error, "scripted", {"kind": "Status", "message": f"scripted {error}"})
        return getattr(self, method.lower())(body)

    def get(self, _body: None) -> dict:
        self.reads += 1
        if self.configmap is None:
            raise KubeApiError(404, "Not Found", {"kind": "Status", "message": "not found"})
        return json.loads(json.dumps(self.configmap))

    def put(self, body: dict) -> dict:
        if self.conflicts:
            self.conflicts -= 1
            # another writer got there first: the stored object moves on
            self.configmap = {
                **self.configmap,
                "metadata": {
                    **self.configmap["metadata"],
                    "resourceVersion": str(int(self.configmap["metadata"]["resourceVersion"]) + 1),
                },
            }
            raise KubeApiError(409, "Conflict", {"kind": "Status", "message": "the object has been modified"})
        assert body["metadata"]["resourceVersion"] == self.configmap["metadata"]["resourceVersion"]
        self.writes.append(body)
        self.configmap = {**body, "metadata": {**body["metadata"], "resourceVersion": "99"}}
        return self.configmap

    def post(self, body: dict) -> dict:
        self.writes.append(body)
        self.configmap = {**body, "metadata": {**body["metadata"], "resourceVersion": "1"}}
        return self.configmap


SETTINGS = StoreSettings("monitoring", "alloy-migration-state", timeout=5, retries=2, conflict_retries=3)


def stored(state: MigrationState) -> dict:
    return {"metadata": {"name": "alloy-migration-state", "resourceVersion": "7"}, "data": state.to_data()}


def test_store_creates_the_configmap_with_the_toolkit_labels() -> None:
    api = ScriptedApi(None)
    outcome = StateStore(api, SETTINGS, sleep=lambda _: None).update(lambda s: begin(s, "preflight", [], T0), False)
    assert outcome.changed and not outcome.exists
    assert api.writes[0]["metadata"]["labels"]["app.kubernetes.io/part-of"] == "alloy-migration"
    assert api.writes[0]["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "alloy-migration"
    assert json.loads(api.writes[0]["data"]["preflight"])["status"] == "running"


def test_store_recomputes_on_conflict_and_writes_with_the_fresh_resource_version() -> None:
    api = ScriptedApi(stored(succeeded("preflight")), conflicts=2)
    outcome = StateStore(api, SETTINGS, sleep=lambda _: None).update(
        lambda s: begin(s, "baseline", ["preflight"], T0), False
    )
    assert outcome.changed
    assert api.reads == 3
    assert len(api.writes) == 1


def test_store_gives_up_after_the_conflict_budget() -> None:
    api = ScriptedApi(stored(MigrationState()), conflicts=10)
    with pytest.raises(StateError, match="kept changing under this run \\(4 conflicting writes\\)"):
        StateStore(api, SETTINGS, sleep=lambda _: None).update(lambda s: begin(s, "preflight", [], T0), False)


def test_store_retries_transient_errors_but_not_forbidden() -> None:
    api = ScriptedApi(stored(MigrationState()), errors=[503, 429])
    outcome = StateStore(api, SETTINGS, sleep=lambda _: None).update(lambda s: begin(s, "preflight", [], T0), False)
    assert outcome.changed
    denied = ScriptedApi(stored(MigrationState()), errors=[403])
    with pytest.raises(
        StateError, match="Kubernetes API answered 403 for ConfigMap monitoring/alloy-migration-state: scripted 403"
    ):
        StateStore(denied, SETTINGS, sleep=lambda _: None).read()


def test_check_mode_and_no_op_never_write() -> None:
    api = ScriptedApi(stored(succeeded("preflight")))
    store = StateStore(api, SETTINGS, sleep=lambda _: None)
    would = store.update(lambda s: begin(s, "baseline", [], T0), True)
    assert would.changed and would.after.status("baseline") == "running"
    same = store.update(lambda s: begin(s, "preflight", [], T0), False)
    assert not same.changed and same.transition.already_succeeded
    assert api.writes == []


def test_store_retries_an_unreachable_api_then_names_it() -> None:
    flaky = ScriptedApi(stored(MigrationState()), errors=[ConnectionRefusedError(111, "Connection refused")])
    assert StateStore(flaky, SETTINGS, sleep=lambda _: None).read()[1] is not None
    down = ScriptedApi(stored(MigrationState()), errors=[ConnectionRefusedError(111, "Connection refused")] * 3)
    with pytest.raises(
        StateError, match=r"cannot reach the Kubernetes API for monitoring/alloy-migration-state: .*refused"
    ):
        StateStore(down, SETTINGS, sleep=lambda _: None).read()
