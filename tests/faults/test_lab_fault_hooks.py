"""The lab's fault hooks the suite injects: a basic-auth gateway in front of Mimir, API error bursts that
end by themselves. Exercised in-process, without a lab."""

from __future__ import annotations

import base64

import pytest

from lab.k8s import server
from lab.metrics.config import MetricsConfig
from lab.metrics.httpserve import Request
from lab.metrics.mimir import MimirFront


def request(path: str, credentials: str | None = None) -> Request:
    headers = {"x-scope-orgid": "lab"}
    if credentials is not None:
        headers["authorization"] = "Basic " + base64.b64encode(credentials.encode()).decode()
    return Request("GET", path, headers, b"", "query=up")


@pytest.fixture
def mimir() -> MimirFront:
    # Storage on a port nothing listens on: a request that gets past the gateway fails at the storage (502).
    return MimirFront(MetricsConfig(), "http://127.0.0.1:9")


def test_without_the_fault_mimir_asks_for_no_credentials(mimir: MimirFront):
    assert mimir._handle(request("/prometheus/api/v1/query")).status == 502


def test_the_gateway_refuses_missing_and_wrong_credentials_and_passes_the_right_ones(mimir: MimirFront):
    mimir.set_required_auth("reader:s3cret")
    refused = mimir._handle(request("/prometheus/api/v1/query"))
    assert refused.status == 401
    assert refused.headers["WWW-Authenticate"] == 'Basic realm="Mimir"'
    assert mimir._handle(request("/prometheus/api/v1/query", "reader:wrong")).status == 401
    assert mimir._handle(request("/prometheus/api/v1/query", "other:s3cret")).status == 401
    assert mimir._handle(request("/prometheus/api/v1/query", "reader:s3cret")).status == 502
    mimir.set_required_auth("")
    assert mimir._handle(request("/prometheus/api/v1/query")).status == 502


def test_the_gateway_leaves_the_lab_agents_path_and_meta_monitoring_open(mimir: MimirFront):
    mimir.set_required_auth("reader:s3cret")
    assert mimir._handle(request("/gateway/lab/prometheus/api/v1/query")).status == 502
    assert mimir._handle(request("/metrics")).status == 200


def test_credentials_without_a_password_are_refused_as_a_setting(mimir: MimirFront):
    with pytest.raises(ValueError, match="user:password"):
        mimir.set_required_auth("reader")


def test_an_api_error_burst_ends_by_itself():
    now = [100.0]
    faults = server.Faults(clock=lambda: now[0])
    faults.set({"error_rate": "1", "error_code": "503", "conflict_rate": "0.5", "seconds": "5"})
    assert faults.active().error_rate == 1.0
    assert faults.as_dict()["seconds_left"] == 5.0
    now[0] += 4.9
    assert faults.active().conflict_rate == 0.5
    now[0] += 0.2
    assert (faults.active().error_rate, faults.active().conflict_rate) == (0.0, 0.0)
    assert faults.error_code == 503


def test_an_api_fault_without_seconds_stays_until_cleared():
    now = [100.0]
    faults = server.Faults(clock=lambda: now[0])
    faults.set({"error_rate": "0.2"})
    now[0] += 3600
    assert faults.active().error_rate == 0.2
    faults.set({"error_rate": "0"})
    assert faults.active().error_rate == 0.0


def test_counted_errors_hit_exactly_the_next_requests():
    faults = server.Faults()
    faults.set({"errors": "2", "conflicts": "1"})
    assert [faults.draw_error() for _ in range(4)] == [True, True, False, False]
    assert [faults.draw_conflict() for _ in range(2)] == [True, False]
    assert faults.as_dict()["errors_left"] == 0
