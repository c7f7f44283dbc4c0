#!/usr/bin/python
"""Ansible module: read and record the migration's state (one record per phase) in a ConfigMap."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: migration_state
short_description: Read and record the migration's per-phase state in a ConfigMap of the cluster
description:
  - Keeps one record per phase of the migration (preflight, baseline, containerd_metrics, collectors, validation,
    decommission, rollback) in the ConfigMap I(name) of I(namespace) - status (running, succeeded, failed),
    started and finished (UTC, ISO 8601), by (user@host), environment, run id, attempts, details - and a bounded
    history of events.
  - C(begin) refuses to start a phase whose I(requires) phases have not succeeded, naming each missing phase and
    the playbook that runs it. A phase left running or failed by an interrupted run is resumed - its details
    (nodes done, steps done, backup directory) are kept so the roles skip what is done. A phase that already
    succeeded is left untouched, so that an idempotent re-run changes nothing.
  - C(progress) merges details into a running phase as work gets done; C(succeed) and C(fail) (with a reason)
    close it. On a phase that already succeeded, C(succeed) writes only when the details differ; put what
    identifies an outcome (a report or configuration digest) in them so a different outcome is recorded anew.
  - C(reset) forgets the records of I(phase), or of every phase when I(phase) is omitted.
  - C(read) returns the state; it never writes and runs in check mode too.
  - Never stores a credential; details (and I(run_id)) whose keys name one (password, token, secret, api key...) or whose values
    look like one (PEM private key, Authorization header value, JSON web token, URL with a password) are refused.
  - Writes carry the resourceVersion they were computed from; on a conflict (HTTP 409) the module re-reads the
    ConfigMap and applies the action again. Connection failures, HTTP 429, 500, 502, 503 and 504 are retried
    with backoff.
  - In check mode nothing is written; the result says what would be (and the diff with C(--diff)). Since a
    C(begin) in check mode writes nothing either, C(progress), C(succeed) and C(fail) then act as if it had.
options:
  action:
    description: What to do.
    type: str
    choices: [read, begin, progress, succeed, fail, reset]
    default: read
  phase:
    description: The phase the action is about. Required by C(begin), C(progress), C(succeed) and C(fail).
    type: str
    choices: [preflight, baseline, containerd_metrics, collectors, validation, decommission, rollback]
  requires:
    description: Phases that must have succeeded before C(begin) starts I(phase).
    type: list
    elements: str
    default: []
  details:
    description:
      - Facts about the phase's outcome or progress (nodes done, report digest, verdict, backup directory...).
      - Merged into the stored details key by key; a null value removes a key. No credentials.
    type: dict
    default: {}
  reason:
    description:
      - Why the phase failed. Required by C(fail).
      - Credential-shaped parts (Authorization header values, URLs with a password, tokens, private keys) are
        stored redacted, since a reason often quotes an error message.
    type: str
  started:
    description:
      - Start time (UTC ISO 8601) recorded by C(succeed) or C(fail) when the phase was not left running by
        C(begin) (a re-run of a phase that had succeeded). Pass the C(started_at) that C(begin) returned.
    type: str
  environment_name:
    description: The inventory's environment (C(migration_environment)), recorded with the phase.
    type: str
  run_id:
    description: Identifier of this run (names its artifacts directory), recorded with the phase.
    type: str
  by:
    description: Who runs the phase; user@host of the controller when omitted.
    type: str
  namespace:
    description: Namespace of the state ConfigMap (the migration's namespace).
    type: str
    default: monitoring
  name:
    description: Name of the state ConfigMap.
    type: str
    default: alloy-migration-state
  request_timeout:
    description: Seconds each API request may take.
    type: float
    default: 30
  retries:
    description:
      - Attempts after the first on a connection failure, HTTP 429, 500, 502, 503 or 504 (waiting 1, 2, 4...
        seconds).
    type: int
    default: 3
  conflict_retries:
    description: How many times a write that lost a race (HTTP 409) is recomputed and retried.
    type: int
    default: 5
extends_documentation_fragment:
  - kube_auth
requirements:
  - the Python C(kubernetes) client, only for an inline kubeconfig, I(host)-based or in-cluster access, the
    certificate or token options, or a kubeconfig with an C(exec) plugin, an C(auth-provider) or a proxy
author:
  - alloy-migration maintainers
"""

EXAMPLES = r"""
- name: Start the decommission phase (refused unless validation and collectors succeeded)
  migration_state:
    action: begin
    phase: decommission
    requires: [collectors, validation]
    environment_name: "{{ migration_environment }}"
    kubeconfig: "{{ migration_kubeconfig }}"
    namespace: "{{ migration_namespace }}"
  register: begin

- name: Record a step as done, so an interrupted run skips it
  migration_state:
    action: progress
    phase: decommission
    details:
      steps_done: "{{ (begin.record.details.steps_done | default([])) + ['scale_to_1'] }}"
    kubeconfig: "{{ migration_kubeconfig }}"

- name: Record the validation verdict with the report digest
  migration_state:
    action: succeed
    phase: validation
    details:
      passed: true
      report_digest: "sha256:{{ report_sha256 }}"
    kubeconfig: "{{ migration_kubeconfig }}"

- name: Print where the migration stands
  migration_state:
    kubeconfig: "{{ migration_kubeconfig }}"
  register: state
- ansible.builtin.debug:
    msg: "{{ state.table }}"
"""

RETURN = r"""
state:
  description: The state after the action (what would be written in check mode) - C(phases) (phase to record)
    and C(history) (the last events, oldest first).
  returned: always
  type: dict
  sample:
    phases:
      preflight:
        status: succeeded
        started: "2026-01-10T09:12:03Z"
        finished: "2026-01-10T09:12:41Z"
        by: ops@bastion
        environment: production
        attempts: 1
        details: {}
    history: [{"at": "2026-01-10T09:12:41Z", "event": "succeed", "phase": "preflight", "by": "ops@bastion"}]
record:
  description: The record of I(phase) after the action (empty when there is none).
  returned: when phase is given
  type: dict
previous:
  description: The record of I(phase) before the action (empty when there was none).
  returned: when phase is given
  type: dict
resumed:
  description: C(begin) picked up a phase an earlier run left running or failed; its details were kept.
  returned: always
  type: bool
already_succeeded:
  description: The phase had succeeded before and the action left its record as it was.
  returned: always
  type: bool
started_at:
  description: The time this action ran (UTC ISO 8601); pass it as I(started) to C(succeed) or C(fail).
  returned: always
  type: str
exists:
  description: Whether the ConfigMap existed before the action.
  returned: always
  type: bool
table:
  description: The state as readable lines - phase, status, started, finished, by, details.
  returned: always
  type: list
  elements: str
"""

import os
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.kube_api import AUTH_ARGUMENT_SPEC, KubeConfigError, api_from_options
from ansible.module_utils.migration_state import (
    ACTIONS,
    PHASES,
    Context,
    MigrationState,
    StateError,
    StateStore,
    StoreSettings,
    Transition,
    begin,
    credential_findings,
    default_actor,
    fail,
    progress,
    redact_credentials,
    refuse_credentials,
    reset,
    secret_values,
    succeed,
    table,
    utc_now,
)

ARGUMENT_SPEC: dict[str, Any] = {
    "action": {"type": "str", "choices": list(ACTIONS), "default": "read"},
    "phase": {"type": "str", "choices": list(PHASES)},
    "requires": {"type": "list", "elements": "str", "default": []},
    "details": {"type": "dict", "default": {}},
    "reason": {"type": "str"},
    "started": {"type": "str"},
    "environment_name": {"type": "str"},
    "run_id": {"type": "str"},
    "by": {"type": "str"},
    "namespace": {"type": "str", "default": "monitoring"},
    "name": {"type": "str", "default": "alloy-migration-state"},
    "request_timeout": {"type": "float", "default": 30},
    "retries": {"type": "int", "default": 3},
    "conflict_retries": {"type": "int", "default": 5},
    **AUTH_ARGUMENT_SPEC,
}


def transition_for(params: dict[str, Any], ctx: Context):
    """The pure function of the state that the action stands for."""
    action, phase = params["action"], params["phase"]
    if action == "begin":
        return lambda state: begin(state, phase, params["requires"], ctx)
    if action == "progress":
        return lambda state: progress(state, phase, params["details"], ctx)
    if action == "succeed":
        return lambda state: succeed(state, phase, params["details"], ctx, params["started"])
    if action == "fail":
        return lambda state: fail(state, phase, params["reason"], params["details"], ctx, params["started"])
    if action == "reset":
        return lambda state: reset(state, [phase] if phase else list(PHASES), ctx)
    return Transition  # read: the state as it is


def as_if_begun(apply, phase: str, ctx: Context):
    """In check mode `begin` wrote nothing: predict `progress`/`succeed`/`fail` as if it had."""

    def run(state: MigrationState) -> Transition:
        record = state.phases.get(phase)
        if record is None or record.get("status") == "failed":
            state = begin(state, phase, [], ctx).state
        return apply(state)

    return run


def check_params(module: AnsibleModule) -> None:
    params = module.params
    unknown = [phase for phase in params["requires"] if phase not in PHASES]
    if unknown:
        raise StateError(f"requires names unknown phases {unknown}; phases are {', '.join(PHASES)}")
    if params["retries"] < 0 or params["conflict_retries"] < 0 or params["request_timeout"] <= 0:
        raise StateError("retries and conflict_retries must be 0 or more, request_timeout more than 0")
    findings = [
        *credential_findings(params["details"], "details"),
        *credential_findings(params["run_id"] or "", "run_id"),
    ]
    reason = params["reason"]
    if reason and redact_credentials(reason) != reason:
        # A failure reason quotes arbitrary error text: store it with the credential-shaped parts redacted.
        module.no_log_values.update(secret_values(credential_findings(reason, "reason")))
        params["reason"] = redact_credentials(reason)
    # A refused value must not come back in the result's invocation either.
    module.no_log_values.update(secret_values(findings))
    refuse_credentials(findings)


def diff_of(before: MigrationState, after: MigrationState) -> dict[str, Any]:
    return {"before": before.to_data(), "after": after.to_data()}


def main() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        supports_check_mode=True,
        required_if=[
            ("action", "begin", ("phase",)),
            ("action", "progress", ("phase",)),
            ("action", "succeed", ("phase",)),
            ("action", "fail", ("phase", "reason")),
        ],
    )
    params = module.params
    ctx = Context(
        now=utc_now(),
        by=params["by"] or default_actor(),
        environment=params["environment_name"],
        run_id=params["run_id"],
    )
    settings = StoreSettings(
        params["namespace"], params["name"], params["request_timeout"], params["retries"], params["conflict_retries"]
    )
    try:
        check_params(module)
        auth = {key: params[key] for key in AUTH_ARGUMENT_SPEC}
        if isinstance(auth["kubeconfig"], str):
            auth["kubeconfig"] = os.path.expanduser(auth["kubeconfig"])
        store = StateStore(api_from_options(auth, settings.timeout), settings)
        apply = transition_for(params, ctx)
        if module.check_mode and params["action"] in ("progress", "succeed", "fail"):
            apply = as_if_begun(apply, params["phase"], ctx)
        outcome = store.update(apply, module.check_mode or params["action"] == "read")
    except StateError as error:
        module.fail_json(msg=str(error))
    except (KubeConfigError, OSError, ValueError) as error:
        module.fail_json(msg=f"cannot load the Kubernetes client configuration: {error}")
    phase = params["phase"]
    result: dict[str, Any] = {
        "changed": outcome.changed,
        "state": outcome.after.as_dict(),
        "resumed": outcome.transition.resumed,
        "already_succeeded": outcome.transition.already_succeeded,
        "started_at": ctx.now,
        "exists": outcome.exists,
        "table": table(outcome.after),
    }
    if phase:
        result["record"] = outcome.after.phases.get(phase, {})
        result["previous"] = outcome.before.phases.get(phase, {})
    if module._diff and outcome.changed:
        result["diff"] = diff_of(outcome.before, outcome.after)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
