"""The Mimir front: Mimir's write and query HTTP contract over the storage Prometheus.

Write path as in grafana/mimir pkg/distributor: tenant from X-Scope-OrgID, HA deduplication judged
by the first series of a request (a non-elected replica gets 202 and nothing is stored), the replica
label dropped on accept, per-series validation, and an ingester-like out-of-order check before the
accepted series are forwarded to the storage's /api/v1/write. Queries under /prometheus are proxied.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import requests

from lab.metrics.config import MetricsConfig
from lab.metrics.exposition import CONTENT_TYPE, CounterVec, HistogramVec, render
from lab.metrics.httpserve import Endpoint, Request, Response, text
from lab.metrics.remote_write import (
    DecodeError,
    Labels,
    Sample,
    TimeSeries,
    WriteRequest,
    decode_body,
    encode_body,
)

Clock = Callable[[], float]

# dskit's instrument.DefBuckets, used by Mimir's cortex_request_duration_seconds.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0)
# dskit's middleware.BodySizeBuckets, used by cortex_request_message_bytes (1 MiB to 250 MiB).
BODY_SIZE_BUCKETS = tuple(float(mib * 1024 * 1024) for mib in (1, 2.5, 5, 10, 25, 50, 100, 250))
QUERY_ENDPOINTS = re.compile(
    r"^/prometheus/api/v1/(query|query_range|query_exemplars|series|labels|label/[^/]+/values|metadata"
    r"|status/buildinfo)$"
)
NO_ORG_ID = "no org id"


@dataclass
class Election:
    replica: str
    elected_at: float
    last_seen: float


class HATracker:
    """Elected replica per (tenant, cluster); another replica takes over after the failover timeout."""

    def __init__(self, failover_timeout: float, changes: CounterVec, clock: Clock) -> None:
        self.failover_timeout = failover_timeout
        self._changes = changes
        self._clock = clock
        self._elected: dict[tuple[str, str], Election] = {}
        self._lock = threading.Lock()

    def accept(self, user: str, cluster: str, replica: str) -> str | None:
        """None when the replica's samples are accepted, else the elected replica's name."""
        now = self._clock()
        with self._lock:
            current = self._elected.get((user, cluster))
            if current is not None and current.replica == replica:
                current.last_seen = now
                return None
            if current is not None and now - current.last_seen <= self.failover_timeout:
                return current.replica
            self._elected[(user, cluster)] = Election(replica, now, now)
            self._changes.inc(user, cluster)
            return None

    def status(self) -> list[dict[str, object]]:
        now = self._clock()
        with self._lock:
            return [
                {
                    "userID": user,
                    "cluster": cluster,
                    "replica": election.replica,
                    "electedAt": election.elected_at,
                    "lastSeenAt": election.last_seen,
                    "failoverSeconds": max(0.0, election.last_seen + self.failover_timeout - now),
                }
                for (user, cluster), election in sorted(self._elected.items())
            ]


class SampleGate:
    """What the ingester's TSDB head would refuse: samples older than the series' newest one."""

    def __init__(self) -> None:
        self._newest: dict[tuple[str, Labels], Sample] = {}
        self._lock = threading.Lock()

    def admit(self, user: str, series: TimeSeries) -> tuple[list[Sample], dict[str, int]]:
        """The samples to store and, by Mimir discard reason, the count of those refused."""
        admitted: list[Sample] = []
        refused: dict[str, int] = {}
        key = (user, series.labels)
        with self._lock:
            for sample in sorted(series.samples, key=lambda item: item.timestamp_ms):
                newest = self._newest.get(key)
                reason = _refusal(newest, sample)
                if reason:
                    refused[reason] = refused.get(reason, 0) + 1
                    continue
                admitted.append(sample)
                self._newest[key] = sample
        return admitted, refused


def _refusal(newest: Sample | None, sample: Sample) -> str | None:
    if newest is None or sample.timestamp_ms > newest.timestamp_ms:
        return None
    if sample.timestamp_ms < newest.timestamp_ms:
        return "sample-out-of-order"
    # Same timestamp and value is an idempotent resend; another value is a conflict.
    return None if sample.value == newest.value else "new-value-for-timestamp"


def _validation_error(series: TimeSeries) -> tuple[str, str] | None:
    """(discard reason, message) for a series Mimir's distributor would reject, else None."""
    names = [name for name, _ in series.labels]
    if "__name__" not in names or not series.label("__name__"):
        return "missing_metric_name", "received a series without metric name (err-mimir-missing-metric-name)"
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        return "duplicate_label_names", (
            f"received a series with duplicate label name, label: '{duplicates[0]}' series: "
            f"'{_format_labels(series.labels)}' (err-mimir-duplicate-label-names)"
        )
    return None


def _format_labels(labels: Labels) -> str:
    name = dict(labels).get("__name__", "")
    rest = ", ".join(f'{key}="{value}"' for key, value in labels if key != "__name__")
    return f"{name}{{{rest}}}"


class MimirMetrics:
    """The distributor and server metrics the toolkit's baseline and validation read."""

    def __init__(self) -> None:
        self.requests_in = CounterVec(
            "cortex_distributor_requests_in_total",
            "The total number of requests that have come in to the distributor, "
            "including rejected or deduped requests.",
            ("user",),
        )
        self.samples_in = CounterVec(
            "cortex_distributor_samples_in_total",
            "The total number of samples that have come in to the distributor, including rejected or deduped samples.",
            ("user",),
        )
        self.received_requests = CounterVec(
            "cortex_distributor_received_requests_total",
            "The total number of received requests, excluding rejected and deduped requests.",
            ("user",),
        )
        self.received_samples = CounterVec(
            "cortex_distributor_received_samples_total",
            "The total number of received samples, excluding rejected and deduped samples.",
            ("user",),
        )
        self.received_metadata = CounterVec(
            "cortex_distributor_received_metadata_total",
            "The total number of received metadata, excluding rejected.",
            ("user",),
        )
        self.non_ha_samples = CounterVec(
            "cortex_distributor_non_ha_samples_received_total",
            "The total number of received samples for a user that has HA tracking turned on, "
            "but the sample didn't contain both HA labels.",
            ("user",),
        )
        self.deduped_samples = CounterVec(
            "cortex_distributor_deduped_samples_total",
            "The total number of deduplicated samples.",
            ("user", "cluster"),
        )
        self.elected_replica_changes = CounterVec(
            "cortex_ha_tracker_elected_replica_changes_total",
            "The total number of times the elected replica has changed for a user ID/cluster.",
            ("user", "cluster"),
        )
        self.discarded_samples = CounterVec(
            "cortex_discarded_samples_total",
            "The total number of samples that were discarded.",
            ("reason", "user"),
        )
        self.request_duration = HistogramVec(
            "cortex_request_duration_seconds",
            "Time (in seconds) spent serving HTTP requests.",
            ("method", "route", "status_code", "ws"),
            DURATION_BUCKETS,
        )
        self.request_message_bytes = HistogramVec(
            "cortex_request_message_bytes",
            "Size (in bytes) of messages received in the request.",
            ("method", "route"),
            BODY_SIZE_BUCKETS,
        )

    def exposition(self) -> bytes:
        return render(
            metric.family()
            for metric in (
                self.requests_in,
                self.samples_in,
                self.received_requests,
                self.received_samples,
                self.received_metadata,
                self.non_ha_samples,
                self.deduped_samples,
                self.elected_replica_changes,
                self.discarded_samples,
                self.request_duration,
                self.request_message_bytes,
            )
        )


def route_name(path: str) -> str:
    """Mimir's route label: the path with non-alphanumerics as underscores (label names as `name`)."""
    if path == "/api/v1/push":
        return "api_v1_push"
    generic = re.sub(r"/label/[^/]+/values$", "/label/name/values", path)
    return re.sub(r"[^a-zA-Z0-9]+", "_", generic).strip("_") or "root"


class MimirFront:
    """Mimir's HTTP surface on 127.0.0.1:<mimir_port>, storing into the storage Prometheus."""

    def __init__(self, config: MetricsConfig, storage_url: str, clock: Clock = time.monotonic) -> None:
        self.config = config
        self.storage_url = storage_url
        self.metrics = MimirMetrics()
        self.ha_tracker = HATracker(config.ha_failover_timeout_seconds, self.metrics.elected_replica_changes, clock)
        self.latency_seconds = 0.0
        # Basic-auth credentials an auth gateway in front of Mimir demands (None: no gateway auth).
        self.required_auth: tuple[str, str] | None = None
        self._gate = SampleGate()
        self.endpoint = Endpoint("127.0.0.1", config.mimir_port, self._handle)

    @property
    def url(self) -> str:
        return self.endpoint.url

    def start(self) -> None:
        self.endpoint.open()

    def stop(self) -> None:
        self.endpoint.close()

    def set_down(self, down: bool) -> None:
        """Fault: refuse connections (the listener is closed) until set back."""
        if down:
            self.endpoint.close()
        else:
            self.endpoint.open()

    def set_latency(self, seconds: float) -> None:
        """Fault: add this many seconds to every push."""
        self.latency_seconds = seconds

    def set_required_auth(self, credentials: str) -> None:
        """Fault: `user:password` puts a basic-auth gateway in front of Mimir's API; empty removes it.

        What the lab's agents send through `/gateway/<tenant>` counts as already authenticated (that
        prefix stands for the gateway); `/metrics` and the readiness probe stay open to the lab itself.
        """
        user, sep, password = credentials.partition(":")
        if credentials and not (sep and user and password):
            raise ValueError("auth wants user:password (or nothing to remove the gateway's check)")
        self.required_auth = (user, password) if credentials else None

    # --- dispatch --------------------------------------------------------------------------------

    def _handle(self, request: Request) -> Response:
        started = time.monotonic()
        authenticated = request.path.startswith("/gateway/") or self._authenticated(request)
        request = _through_gateway(request)
        open_path = request.path in ("/metrics", "/ready", "/-/ready")
        response = self._route(request) if authenticated or open_path else _UNAUTHORIZED
        self.metrics.request_duration.observe(
            time.monotonic() - started,
            request.method,
            route_name(request.path),
            str(response.status),
            "false",
        )
        self.metrics.request_message_bytes.observe(len(request.body or b""), request.method, route_name(request.path))
        return response

    def _authenticated(self, request: Request) -> bool:
        if self.required_auth is None:
            return True
        scheme, _, encoded = (request.header("Authorization") or "").partition(" ")
        try:
            user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return scheme.lower() == "basic" and (user, password) == self.required_auth

    def _route(self, request: Request) -> Response:
        if request.path == "/metrics":
            return Response(200, self.metrics.exposition(), CONTENT_TYPE)
        if request.path in ("/ready", "/-/ready"):
            return text(200, "ready")
        if request.path == "/distributor/ha_tracker":
            return self._ha_tracker_page(request)
        if request.path in ("/api/v1/push", "/api/prom/push"):
            if request.method != "POST":
                return text(405, "method not allowed")
            return self._with_tenant(request, self._push)
        if QUERY_ENDPOINTS.match(request.path):
            return self._with_tenant(request, self._proxy_query)
        return text(404, "404 page not found")

    def _with_tenant(self, request: Request, serve: Callable[[Request, str], Response]) -> Response:
        if not self.config.multitenancy_enabled:
            return serve(request, "anonymous")
        tenant = request.header("X-Scope-OrgID")
        return serve(request, tenant) if tenant else text(401, NO_ORG_ID)

    # --- write path ------------------------------------------------------------------------------

    def _push(self, request: Request, user: str) -> Response:
        if self.latency_seconds:
            time.sleep(self.latency_seconds)
        try:
            write = decode_body(request.body)
        except DecodeError as error:
            return text(400, str(error))
        samples = write.sample_count()
        self.metrics.requests_in.inc(user)
        self.metrics.samples_in.inc(user, amount=samples)
        deduped = self._deduplicate(user, write)
        if deduped is not None:
            return deduped
        errors, accepted = self._admit(user, write.timeseries)
        if accepted:
            stored = self._store(accepted)
            if stored is not None:
                return stored
        self.metrics.received_requests.inc(user)
        self.metrics.received_samples.inc(user, amount=sum(len(series.samples) for series in accepted))
        self.metrics.received_metadata.inc(user, amount=len(write.metadata))
        return text(400, errors[0]) if errors else Response(200)

    def _deduplicate(self, user: str, write: WriteRequest) -> Response | None:
        """Apply the HA tracker to the whole request by its first series (grafana/mimir#15023)."""
        if not self.config.accept_ha_samples or not write.timeseries:
            return None
        first = write.timeseries[0]
        cluster = first.label(self.config.ha_cluster_label)
        replica = first.label(self.config.ha_replica_label)
        if not cluster or not replica:
            self.metrics.non_ha_samples.inc(user, amount=write.sample_count())
            return None
        elected = self.ha_tracker.accept(user, cluster, replica)
        if elected is not None:
            self.metrics.deduped_samples.inc(user, cluster, amount=write.sample_count())
            return text(202, f"replicas did not match, rejecting sample: replica={replica}, elected={elected}")
        for series in write.timeseries:
            series.labels = tuple(pair for pair in series.labels if pair[0] != self.config.ha_replica_label)
        return None

    def _admit(self, user: str, timeseries: list[TimeSeries]) -> tuple[list[str], list[TimeSeries]]:
        errors: list[str] = []
        accepted: list[TimeSeries] = []
        for series in timeseries:
            invalid = _validation_error(series)
            if invalid is not None:
                self.metrics.discarded_samples.inc(invalid[0], user, amount=len(series.samples))
                errors.append(invalid[1])
                continue
            series.labels = tuple(sorted(series.labels))
            samples, refused = self._gate.admit(user, series)
            for reason, count in refused.items():
                self.metrics.discarded_samples.inc(reason, user, amount=count)
                errors.append(_ingester_message(reason, series.labels))
            if samples:
                accepted.append(TimeSeries(series.labels, samples))
        return errors, accepted

    def _store(self, timeseries: list[TimeSeries]) -> Response | None:
        """Forward to the storage; a Response only when that failed."""
        try:
            reply = requests.post(
                f"{self.storage_url}/api/v1/write",
                data=encode_body(WriteRequest(timeseries)),
                headers={
                    "Content-Encoding": "snappy",
                    "Content-Type": "application/x-protobuf",
                    "X-Prometheus-Remote-Write-Version": "0.1.0",
                },
                timeout=10,
            )
        except requests.RequestException as error:
            return text(500, f"failed pushing to ingester: {error}")
        if reply.status_code >= 300:
            return text(500 if reply.status_code >= 500 else 400, reply.text.strip())
        return None

    # --- read path -------------------------------------------------------------------------------

    def _proxy_query(self, request: Request, _user: str) -> Response:
        target = self.storage_url + request.path.removeprefix("/prometheus")
        try:
            reply = requests.request(
                request.method,
                target,
                params=request.raw_query or None,
                data=request.body or None,
                headers={"Content-Type": request.header("Content-Type") or "application/x-www-form-urlencoded"},
                timeout=60,
            )
        except requests.RequestException as error:
            return text(502, f"storage unreachable: {error}")
        return Response(reply.status_code, reply.content, reply.headers.get("Content-Type", "application/json"))

    def _ha_tracker_page(self, request: Request) -> Response:
        elected = self.ha_tracker.status()
        if "application/json" in (request.header("Accept") or ""):
            return Response(200, json.dumps({"elected": elected, "now": time.time()}).encode(), "application/json")
        rows = "".join(
            f"<tr><td>{row['userID']}</td><td>{row['cluster']}</td><td>{row['replica']}</td>"
            f"<td>{row['failoverSeconds']:.1f}s</td></tr>"
            for row in elected
        )
        page = (
            "<!DOCTYPE html><html><head><title>Mimir HA Tracker Status</title></head><body>"
            '<h1>Mimir HA Tracker Status</h1><table border="1"><thead><tr><th>User ID</th><th>Cluster</th>'
            "<th>Replica</th><th>Time Until Failover</th></tr></thead>"
            f"<tbody>{rows}</tbody></table></body></html>"
        )
        return Response(200, page.encode(), "text/html; charset=utf-8")


# What an nginx basic-auth gateway (as in Mimir's Helm chart) answers a request without valid credentials.
_UNAUTHORIZED = Response(
    401,
    b"<html>\r\n<head><title>401 Authorization Required</title></head>\r\n<body>\r\n"
    b"<center><h1>401 Authorization Required</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n",
    "text/html",
    {"WWW-Authenticate": 'Basic realm="Mimir"'},
)


def gateway_prefix(tenant: str) -> str:
    """Path prefix that stands in for an auth gateway setting X-Scope-OrgID to `tenant`.

    The Debian build of Prometheus 2.42 sends neither remote_write `headers` nor `basic_auth`
    (checked on the wire), so lab agents name their tenant in the URL instead.
    """
    return f"/gateway/{tenant}"


def _through_gateway(request: Request) -> Request:
    if not request.path.startswith("/gateway/"):
        return request
    tenant, _, rest = request.path.removeprefix("/gateway/").partition("/")
    headers = {**request.headers, "x-scope-orgid": tenant}
    return dataclasses.replace(request, path=f"/{rest}", headers=headers)


def _ingester_message(reason: str, labels: Labels) -> str:
    if reason == "sample-out-of-order":
        return (
            "the sample has been rejected because another sample with a more recent timestamp has already "
            "been ingested and out-of-order samples are not allowed (err-mimir-sample-out-of-order). "
            f"The affected sample has series {_format_labels(labels)}"
        )
    return (
        "the sample has been rejected because another sample with the same timestamp, but a different value, "
        f"has already been ingested (err-mimir-sample-duplicate-timestamp). "
        f"The affected sample has series {_format_labels(labels)}"
    )
