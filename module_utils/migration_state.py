"""The migration's state: one record per phase in a ConfigMap, written with optimistic concurrency.

The pure part (records, transitions, the credential guard, the table) needs no cluster and is what the
unit tests exercise; `StateStore` reads and writes the ConfigMap through the kubernetes Python client.
"""

from __future__ import annotations

import copy
import getpass
import json
import os
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ansible.module_utils.kube_api import NO_ANSWER, KubeApiError, is_transient

PHASES = (
    "preflight",
    "baseline",
    "containerd_metrics",
    "collectors",
    "validation",
    "decommission",
    "rollback",
)
STATUSES = ("running", "succeeded", "failed")
ACTIONS = ("read", "begin", "progress", "succeed", "fail", "reset")
# The playbook that runs each phase, named in refusals so the operator knows what to run first.
PHASE_PLAYBOOKS = {phase: f"playbooks/{phase}.yml" for phase in PHASES}
HISTORY_KEY = "history"
HISTORY_LIMIT = 50
LABELS = {
    "app.kubernetes.io/name": "migration-state",
    "app.kubernetes.io/instance": "alloy-migration",
    "app.kubernetes.io/part-of": "alloy-migration",
    "app.kubernetes.io/managed-by": "alloy-migration",
}

# Keys that name a credential, and values that are one: the state is a ConfigMap anyone who can read
# the namespace can read, so these are refused rather than stored.
_CREDENTIAL_KEY = re.compile(
    r"(passw(or)?d|passphrase|secret|token|api[_-]?key|credential|private[_-]?key|bearer|authorization|cookie)",
    re.IGNORECASE,
)
_CREDENTIAL_VALUES = (
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"), "a PEM private key"),
    (re.compile(r"\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}", re.IGNORECASE), "an Authorization header value"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"), "a JSON web token"),
    (re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@", re.IGNORECASE), "a URL with a password"),
)


class StateError(Exception):
    """A refused transition or an unusable state; the message is meant for the operator."""


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def default_actor() -> str:
    """user@host of the controller, as `by` of every record."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = os.environ.get("USER") or f"uid{os.getuid()}"
    return f"{user}@{socket.gethostname()}"


def credential_findings(value: Any, path: str = "details") -> list[tuple[str, str, Any]]:
    """Every place in `value` that holds or names a credential: (path, why, the value found there)."""
    findings: list[tuple[str, str, Any]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}"
            if _CREDENTIAL_KEY.search(str(key)):
                findings.append((where, "the key names a credential", item))
            findings += credential_findings(item, where)
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            findings += credential_findings(item, f"{path}[{index}]")
    elif isinstance(value, str):
        findings += [
            (path, f"the value looks like {what}", value)
            for pattern, what in _CREDENTIAL_VALUES
            if pattern.search(value)
        ]
    return findings


def redact_credentials(text: str) -> str:
    """`text` with every credential-shaped value replaced: failure reasons quote arbitrary error text."""
    for pattern, _what in _CREDENTIAL_VALUES:
        text = pattern.sub("<redacted>", text)
    return text


def secret_values(findings: list[tuple[str, str, Any]]) -> set[str]:
    """The strings to mask in any output about the refusal."""
    values: set[str] = set()
    for _path, _why, value in findings:
        if isinstance(value, str) and value:
            values.add(value)
        elif isinstance(value, (dict, list, tuple, int, float)):
            values.update(str(leaf) for leaf in _leaves(value) if str(leaf))
    return values


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in _leaves(item)]
    if isinstance(value, (list, tuple)):
        return [leaf for item in value for leaf in _leaves(item)]
    return [value]


def refuse_credentials(findings: list[tuple[str, str, Any]]) -> None:
    if findings:
        raise StateError(
            "refusing to store credentials in the migration state (a ConfigMap readable by anyone who can read "
            "the namespace): " + "; ".join(f"{path}: {why}" for path, why, _ in findings) + ". Keep secrets in "
            "Kubernetes Secrets or ansible-vault and record only non-secret facts (names, digests, counts)."
        )


@dataclass
class MigrationState:
    """Per-phase records and a bounded history of events."""

    phases: dict[str, dict[str, Any]] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_data(cls, data: dict[str, str] | None) -> MigrationState:
        data = data or {}
        phases = {}
        for phase in PHASES:
            if phase in data:
                try:
                    phases[phase] = json.loads(data[phase])
                except json.JSONDecodeError as error:
                    raise StateError(f"the record of phase {phase} is not JSON ({error}); fix or reset it") from error
        try:
            history = json.loads(data.get(HISTORY_KEY, "[]"))
        except json.JSONDecodeError:
            history = []
        return cls(phases, history if isinstance(history, list) else [])

    def to_data(self) -> dict[str, str]:
        data = {
            phase: json.dumps(self.phases[phase], sort_keys=True, indent=2) for phase in PHASES if phase in self.phases
        }
        data[HISTORY_KEY] = json.dumps(self.history[-HISTORY_LIMIT:], sort_keys=True)
        return data

    def as_dict(self) -> dict[str, Any]:
        return {"phases": copy.deepcopy(self.phases), "history": copy.deepcopy(self.history)}

    def copy(self) -> MigrationState:
        return MigrationState(copy.deepcopy(self.phases), copy.deepcopy(self.history))

    def status(self, phase: str) -> str | None:
        return (self.phases.get(phase) or {}).get("status")


@dataclass(frozen=True)
class Context:
    """Who runs what, when: stamped on every record a transition writes."""

    now: str
    by: str
    environment: str | None = None
    run_id: str | None = None


@dataclass
class Transition:
    """The outcome of applying an action to a state."""

    state: MigrationState
    resumed: bool = False
    already_succeeded: bool = False


def _event(state: MigrationState, ctx: Context, phase: str | None, event: str) -> None:
    entry = {"at": ctx.now, "event": event, "by": ctx.by}
    if phase:
        entry["phase"] = phase
    if ctx.run_id:
        entry["run_id"] = ctx.run_id
    state.history = [*state.history, entry][-HISTORY_LIMIT:]


def missing_prerequisites(state: MigrationState, requires: list[str]) -> list[str]:
    return [phase for phase in requires if state.status(phase) != "succeeded"]


def prerequisite_message(phase: str, state: MigrationState, missing: list[str]) -> str:
    parts = []
    for needed in missing:
        status = state.status(needed) or "not run"
        parts.append(f"{needed} ({status}): run `ansible-playbook {PHASE_PLAYBOOKS[needed]} -i inventories/<env>`")
    return f"phase {phase} cannot start: it requires {', '.join(missing)} to have succeeded. " + "; ".join(parts)


def begin(state: MigrationState, phase: str, requires: list[str], ctx: Context) -> Transition:
    """Mark a phase running, unless its prerequisites have not succeeded.

    A phase left running or failed by an earlier run is resumed: its details (steps or nodes done,
    backups taken) are kept so the roles can skip what is done. A succeeded phase is left as it is, so
    that an idempotent re-run changes nothing; `succeed` records it anew if the outcome differs.
    """
    if phase in requires:
        raise StateError(f"phase {phase} cannot require itself")
    missing = missing_prerequisites(state, requires)
    if missing:
        raise StateError(prerequisite_message(phase, state, missing))
    previous = state.phases.get(phase)
    if previous and previous.get("status") == "succeeded":
        return Transition(state, already_succeeded=True)
    new = state.copy()
    resumed = previous is not None and previous.get("status") in ("running", "failed")
    record = {
        "status": "running",
        "started": ctx.now,
        "by": ctx.by,
        "attempts": int((previous or {}).get("attempts", 0)) + 1 if resumed else 1,
        "details": copy.deepcopy((previous or {}).get("details", {})) if resumed else {},
    }
    if resumed:
        record["started"] = previous.get("started", ctx.now)
        record["resumed"] = ctx.now
    _stamp(record, ctx, previous if resumed else None)
    new.phases[phase] = record
    _event(new, ctx, phase, "resume" if resumed else "begin")
    return Transition(new, resumed=resumed)


def _stamp(record: dict[str, Any], ctx: Context, previous: dict[str, Any] | None = None) -> None:
    """Environment and run id of this call, else those the phase's record already had."""
    for key, value in (("environment", ctx.environment), ("run_id", ctx.run_id)):
        kept = value or (previous or {}).get(key)
        if kept:
            record[key] = kept


def merge_details(current: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Top-level merge: a key in `update` replaces the stored one, a null value removes it."""
    merged = copy.deepcopy(current)
    for key, value in update.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def progress(state: MigrationState, phase: str, details: dict[str, Any], ctx: Context) -> Transition:
    """Merge details into a running phase (progress: nodes done, steps done, backup directory)."""
    previous = state.phases.get(phase)
    if not previous or previous.get("status") != "running":
        status = (previous or {}).get("status", "not run")
        raise StateError(f"phase {phase} is {status}, not running: begin it before recording progress")
    merged = merge_details(previous.get("details", {}), details)
    if merged == previous.get("details", {}):
        return Transition(state)
    new = state.copy()
    new.phases[phase]["details"] = merged
    new.phases[phase]["updated"] = ctx.now
    return Transition(new)


def succeed(
    state: MigrationState, phase: str, details: dict[str, Any], ctx: Context, started: str | None = None
) -> Transition:
    """Mark a phase succeeded. On a phase that already succeeded, only a different outcome is recorded."""
    previous = state.phases.get(phase)
    if not previous:
        raise StateError(f"phase {phase} has no record: begin it before marking it succeeded")
    merged = merge_details(previous.get("details", {}), details)
    if previous.get("status") == "succeeded" and merged == previous.get("details", {}):
        return Transition(state, already_succeeded=True)
    if previous.get("status") == "failed":
        raise StateError(f"phase {phase} failed ({previous.get('reason', 'no reason')}); begin it again first")
    new = state.copy()
    record = {
        "status": "succeeded",
        "started": previous["started"] if previous.get("status") == "running" else (started or ctx.now),
        "finished": ctx.now,
        "by": ctx.by,
        "attempts": previous.get("attempts", 1),
        "details": merged,
    }
    _stamp(record, ctx, previous)
    new.phases[phase] = record
    _event(new, ctx, phase, "succeed")
    return Transition(new)


def fail(
    state: MigrationState, phase: str, reason: str, details: dict[str, Any], ctx: Context, started: str | None = None
) -> Transition:
    """Mark a phase failed with the reason; details recorded so far are kept for the resume."""
    previous = state.phases.get(phase) or {}
    new = state.copy()
    record = {
        "status": "failed",
        "started": previous["started"] if previous.get("status") == "running" else (started or ctx.now),
        "finished": ctx.now,
        "by": ctx.by,
        "attempts": previous.get("attempts", 1),
        "reason": reason,
        "details": merge_details(previous.get("details", {}), details),
    }
    _stamp(record, ctx, previous)
    new.phases[phase] = record
    _event(new, ctx, phase, "fail")
    return Transition(new)


def reset(state: MigrationState, phases: list[str], ctx: Context) -> Transition:
    """Forget the records of the given phases (the history keeps that they were reset)."""
    present = [phase for phase in phases if phase in state.phases]
    if not present:
        return Transition(state)
    new = state.copy()
    for phase in present:
        del new.phases[phase]
        _event(new, ctx, phase, "reset")
    return Transition(new)


# --- the readable table -------------------------------------------------------------------------


def _short(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(map(str, value)) + "]" if len(value) <= 3 else f"<{len(value)} items>"
    if isinstance(value, dict):
        return f"<{len(value)} keys>"
    text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def details_summary(record: dict[str, Any]) -> str:
    parts = [f"reason={_short(record['reason'])}"] if record.get("reason") else []
    parts += [f"{key}={_short(value)}" for key, value in sorted((record.get("details") or {}).items())]
    return ", ".join(parts) or "-"


def table(state: MigrationState) -> list[str]:
    """One line per phase, in migration order: phase, status, when, by, details."""
    rows = [("PHASE", "STATUS", "STARTED", "FINISHED", "BY", "DETAILS")]
    for phase in PHASES:
        record = state.phases.get(phase)
        if record is None:
            rows.append((phase, "not run", "-", "-", "-", "-"))
            continue
        rows.append(
            (
                phase,
                record.get("status", "?")
                + (f" (attempt {record['attempts']})" if record.get("attempts", 1) > 1 else ""),
                record.get("started", "-"),
                record.get("finished", "-"),
                record.get("by", "-"),
                details_summary(record),
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(5)]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row[:5], widths, strict=True)) + "  " + row[5]
        for row in rows
    ]


# --- the ConfigMap ------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoreSettings:
    namespace: str
    name: str
    timeout: float = 30.0
    retries: int = 3
    conflict_retries: int = 5


@dataclass
class Outcome:
    before: MigrationState
    after: MigrationState
    exists: bool
    changed: bool
    transition: Transition


class StateStore:
    """Reads and writes the state ConfigMap; a write carries the resourceVersion it was computed from.

    `api` sends JSON requests to the API server (module_utils/kube_api.KubeApi).
    """

    def __init__(self, api: Any, settings: StoreSettings, sleep: Callable[[float], None] = time.sleep) -> None:
        self.api = api
        self.settings = settings
        self.sleep = sleep

    def read(self) -> tuple[MigrationState, dict | None]:
        """The state and the ConfigMap it came from (None when there is none yet)."""
        configmap = self._call(self._read_raw)
        if configmap is None:
            return MigrationState(), None
        return MigrationState.from_data(configmap.get("data")), configmap

    def update(self, apply: Callable[[MigrationState], Transition], check_mode: bool) -> Outcome:
        """Apply a transition to the current state and write it; on a 409, re-read and apply again."""
        for attempt in range(self.settings.conflict_retries + 1):
            before, configmap = self.read()
            transition = apply(before)
            changed = transition.state.to_data() != before.to_data()
            if not changed or check_mode:
                return Outcome(before, transition.state, configmap is not None, changed, transition)
            try:
                self._call(lambda state=transition.state, cm=configmap: self._write(state, cm))
            except _ConflictError:
                if attempt == self.settings.conflict_retries:
                    raise StateError(
                        f"the state ConfigMap {self.settings.namespace}/{self.settings.name} kept changing under "
                        f"this run ({attempt + 1} conflicting writes); is another run of the toolkit active?"
                    ) from None
                self.sleep(min(0.1 * 2**attempt, 2.0))
                continue
            return Outcome(before, transition.state, configmap is not None, True, transition)
        raise AssertionError("unreachable")

    # -- API calls ------------------------------------------------------------------------------

    @property
    def _collection(self) -> str:
        return f"/api/v1/namespaces/{self.settings.namespace}/configmaps"

    def _read_raw(self) -> dict | None:
        try:
            return self.api.request("GET", f"{self._collection}/{self.settings.name}")
        except KubeApiError as error:
            if error.status == 404:
                return None
            raise

    def _write(self, state: MigrationState, configmap: dict | None) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": self.settings.name, "namespace": self.settings.namespace, "labels": dict(LABELS)},
            "data": state.to_data(),
        }
        try:
            if configmap is None:
                self.api.request("POST", self._collection, body=body)
            else:
                metadata = configmap.get("metadata", {})
                body["metadata"]["labels"] = {**(metadata.get("labels") or {}), **LABELS}
                body["metadata"]["resourceVersion"] = metadata.get("resourceVersion")
                self.api.request("PUT", f"{self._collection}/{self.settings.name}", body=body)
        except KubeApiError as error:
            if error.status == 409:
                raise _ConflictError from error
            raise

    def _call(self, request: Callable[[], Any]) -> Any:
        """Run one API request, retrying what kube_api.is_transient says may succeed later, with backoff."""
        for attempt in range(self.settings.retries + 1):
            try:
                return request()
            except KubeApiError as error:
                if not is_transient(error) or attempt == self.settings.retries:
                    raise StateError(api_error_message(error, self.settings)) from error
            except NO_ANSWER as error:
                if not is_transient(error) or attempt == self.settings.retries:
                    raise StateError(
                        f"cannot reach the Kubernetes API for {self.settings.namespace}/{self.settings.name}: "
                        f"{error or type(error).__name__}"
                    ) from error
            self.sleep(min(2.0**attempt, 10.0))
        raise AssertionError("unreachable")


class _ConflictError(Exception):
    pass


def api_error_message(error: KubeApiError, settings: StoreSettings) -> str:
    return f"Kubernetes API answered {error.status} for ConfigMap {settings.namespace}/{settings.name}: {error.message}"
