"""The promql module over real HTTP: the lab's storage Prometheus (real Prometheus 2.42), the Mimir front
in front of it (/prometheus prefix, tenant header), and small scripted servers for retries, auth and TLS.

Known series are pushed into the storage through its remote-write receiver, so every figure asserted here
was computed by Prometheus itself.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import promql
import pytest
import requests
from ansible.module_utils import basic
from ansible.module_utils.promql import ClientSettings, PromQLClient, PromQLError
from ansible.module_utils.testing import patch_module_args

from lab.metrics.config import MetricsConfig
from lab.metrics.httpserve import Endpoint, Request, Response
from lab.metrics.mimir import MimirFront
from lab.metrics.prometheus import PrometheusProcess, start_storage
from lab.metrics.remote_write import Sample, TimeSeries, WriteRequest, encode_body
from lab.metrics.tls import CertificateAuthority
from tests.conftest import failures, run_playbook

METRIC = "promql_test_queue_depth"
# Samples per pod at T0-60 s, T0-30 s and T0.
SAMPLES = {"a": (1.0, 2.0, 3.0), "b": (5.0, 6.0, 7.0), "c": (10.0, 11.0, 12.0)}
T0 = int(time.time())
PASSWORD = "pa55-Word-never-shown"
TOKEN = "bearer-never-shown-0123456789"
SUCCESS = b'{"status":"success","data":{"resultType":"vector","result":[{"metric":{"job":"x"},"value":[1,"1"]}]}}'


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(condition: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"condition not met within {timeout} s (last value: {value!r})")


def push_known_series(storage_url: str) -> None:
    timeseries = [
        TimeSeries(
            (("__name__", METRIC), ("job", "promql-test"), ("pod", pod)),
            [Sample(value, (T0 - 60 + 30 * step) * 1000) for step, value in enumerate(values)],
        )
        for pod, values in SAMPLES.items()
    ]
    reply = requests.post(
        f"{storage_url}/api/v1/write",
        data=encode_body(WriteRequest(timeseries)),
        headers={
            "Content-Encoding": "snappy",
            "Content-Type": "application/x-protobuf",
            "X-Prometheus-Remote-Write-Version": "0.1.0",
        },
        timeout=10,
    )
    assert reply.status_code == 204, reply.text


def known_series_visible(storage_url: str) -> bool:
    reply = requests.get(f"{storage_url}/api/v1/query", params={"query": f"count({METRIC})", "time": T0}, timeout=5)
    result = reply.json()["data"]["result"]
    return bool(result) and result[0]["value"][1] == "3"


@pytest.fixture(scope="module")
def storage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusProcess]:
    instance = start_storage(tmp_path_factory.mktemp("promql-storage"), free_port(), {"global": {}})
    try:
        push_known_series(instance.url)
        wait_for(lambda: known_series_visible(instance.url))
        yield instance
    finally:
        instance.stop()


@pytest.fixture(scope="module")
def mimir(storage: PrometheusProcess) -> Iterator[MimirFront]:
    front = MimirFront(MetricsConfig(mimir_port=0), storage.url)
    front.start()
    yield front
    front.stop()


Answer = Response | Callable[[Request], Response]


class ScriptedServer:
    """Answers from a script (the last answer repeats; a callable answers from the request), recording requests."""

    def __init__(self, *answers: Answer, tls: ssl.SSLContext | None = None) -> None:
        self.answers = list(answers)
        self.requests: list[Request] = []
        self.endpoint = Endpoint("127.0.0.1", 0, self._handle, tls)

    def _handle(self, request: Request) -> Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return answer(request) if callable(answer) else answer

    @property
    def url(self) -> str:
        return self.endpoint.url


@pytest.fixture
def scripted() -> Iterator[Callable[..., ScriptedServer]]:
    servers: list[ScriptedServer] = []

    def start(*answers: Answer, tls: ssl.SSLContext | None = None) -> ScriptedServer:
        server = ScriptedServer(*answers, tls=tls)
        server.endpoint.open()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.endpoint.close()


def json_answer(status: int, body: bytes, **headers: str) -> Response:
    return Response(status, body, "application/json", headers)


class ModuleExitError(Exception):
    def __init__(self, result: dict[str, Any]) -> None:
        super().__init__(result)
        self.result = result


class ModuleFailError(ModuleExitError):
    pass


def run_module(args: dict[str, Any]) -> tuple[str, dict[str, Any], list[str]]:
    """(ok|failed, result, warnings) of promql.main() with exit_json/fail_json turned into exceptions."""
    warnings: list[str] = []

    def exit_json(_module: basic.AnsibleModule, **result: Any) -> None:
        raise ModuleExitError(result)

    def fail_json(_module: basic.AnsibleModule, **result: Any) -> None:
        raise ModuleFailError(result)

    def warn(_module: basic.AnsibleModule, warning: str) -> None:
        warnings.append(warning)

    with (
        patch_module_args(args),
        mock.patch.object(basic.AnsibleModule, "exit_json", exit_json),
        mock.patch.object(basic.AnsibleModule, "fail_json", fail_json),
        mock.patch.object(basic.AnsibleModule, "warn", warn),
    ):
        try:
            promql.main()
        except ModuleFailError as failure:
            return "failed", failure.result, warnings
        except ModuleExitError as success:
            return "ok", success.result, warnings
    raise AssertionError("the module returned without exit_json or fail_json")


def by_pod(result: list[dict[str, Any]], field: str) -> dict[str, Any]:
    return {item["metric"]["pod"]: item[field] for item in result}


# --- real Prometheus, no prefix ---


def test_instant_query_types_what_prometheus_computed(storage: PrometheusProcess) -> None:
    result = PromQLClient(ClientSettings(url=storage.url)).query_instant(METRIC, at=str(T0))
    assert result.result_type == "vector"
    assert by_pod(result.result, "value") == {"a": 3.0, "b": 7.0, "c": 12.0}
    assert {item["timestamp"] for item in result.result} == {float(T0)}
    assert result.result[0]["metric"] == {"__name__": METRIC, "job": "promql-test", "pod": "a"}


def test_range_query_returns_every_step(storage: PrometheusProcess) -> None:
    client = PromQLClient(ClientSettings(url=storage.url))
    result = client.query_range(METRIC, start=str(T0 - 60), end=str(T0), step="30s")
    assert result.result_type == "matrix"
    steps = [float(T0 - 60), float(T0 - 30), float(T0)]
    assert by_pod(result.result, "values") == {
        pod: [[t, v] for t, v in zip(steps, values, strict=True)] for pod, values in SAMPLES.items()
    }


def test_scalar_and_string_results(storage: PrometheusProcess) -> None:
    client = PromQLClient(ClientSettings(url=storage.url))
    scalar = client.query_instant(f"scalar(sum({METRIC}))", at=str(T0))
    assert (scalar.result_type, scalar.result) == ("scalar", {"timestamp": float(T0), "value": 22.0})
    text = client.query_instant('"migration"', at=str(T0))
    assert (text.result_type, text.result) == ("string", {"timestamp": float(T0), "value": "migration"})


def test_bad_promql_carries_prometheus_error_type_and_is_not_retried(storage: PrometheusProcess) -> None:
    sleeps: list[float] = []
    client = PromQLClient(ClientSettings(url=storage.url), sleep=sleeps.append)
    with pytest.raises(PromQLError) as failure:
        client.query_instant(f"sum({METRIC}")
    assert (failure.value.status, failure.value.error_type, sleeps) == (400, "bad_data", [])
    message = str(failure.value)
    assert message.startswith(f"query to {storage.url}/api/v1/query failed (1 attempt): HTTP 400 bad_data: ")
    assert "parse error" in message


def test_module_asserts_with_each_by_default(storage: PrometheusProcess) -> None:
    args = {"url": storage.url, "query": METRIC, "time": str(T0), "expect": {"op": "<", "value": 10}}
    outcome, result, _ = run_module(args)
    assert outcome == "failed"
    assert result["msg"] == (f'query `{METRIC}`: 1 of 3 values not < 10: {METRIC}{{job="promql-test", pod="c"}} = 12')
    assert (result["series"], result["value"], result["changed"]) == (3, None, False)


# --- through the Mimir front: prefix and tenant ---


def mimir_args(mimir: MimirFront, **extra: Any) -> dict[str, Any]:
    return {"url": f"{mimir.url}/prometheus", "tenant": "lab", "time": str(T0), **extra}


def test_module_runs_in_check_mode_and_reports_the_reduced_figure(mimir: MimirFront) -> None:
    args = mimir_args(mimir, query=METRIC, expect={"op": "<", "value": 20, "reduce": "max"}, _ansible_check_mode=True)
    outcome, result, _ = run_module(args)
    assert outcome == "ok", result
    assert (result["changed"], result["result_type"], result["series"], result["value"]) == (False, "vector", 3, 12.0)
    assert result["msg"] == f"query `{METRIC}`: max = 12 over 3 series, < 20 as expected"


@pytest.mark.parametrize(
    ("expect", "message"),
    [
        ({"op": "<", "value": 10, "reduce": "max"}, f"query `{METRIC}`: max = 12 over 3 series, expected < 10"),
        ({"op": ">=", "value": 25, "reduce": "sum"}, f"query `{METRIC}`: sum = 22 over 3 series, expected >= 25"),
        ({"op": "==", "value": 4, "reduce": "count"}, f"query `{METRIC}`: count = 3 over 3 series, expected == 4"),
    ],
)
def test_failed_expectations_give_the_figure_and_the_threshold(
    mimir: MimirFront, expect: dict[str, Any], message: str
) -> None:
    outcome, result, _ = run_module(mimir_args(mimir, query=METRIC, expect=expect))
    assert (outcome, result["msg"]) == ("failed", message)
    assert by_pod(result["result"], "value") == {"a": 3.0, "b": 7.0, "c": 12.0}


def test_range_expectation_over_every_sample(mimir: MimirFront) -> None:
    args = mimir_args(mimir, query=METRIC, type="range", start=str(T0 - 60), end=str(T0), step="30s")
    args.pop("time")
    outcome, result, _ = run_module({**args, "expect": {"op": ">=", "value": 1, "reduce": "min"}})
    assert (outcome, result["result_type"], result["value"]) == ("ok", "matrix", 1.0)
    outcome, result, _ = run_module({**args, "expect": {"op": "<=", "value": 10}})
    assert outcome == "failed"
    assert result["msg"].startswith(f"query `{METRIC}`: 2 of 9 values not <= 10: ")
    assert f'pod="c"}} = 11 at {T0 - 30}.000' in result["msg"]


def test_empty_result_with_expect_fails_closed(mimir: MimirFront) -> None:
    query = f'{METRIC}{{pod="nope"}}'
    outcome, result, _ = run_module(mimir_args(mimir, query=query, expect={"op": "==", "value": 0, "reduce": "count"}))
    assert outcome == "failed"
    assert result["msg"] == f"query `{query}` returned no data, so it cannot be == 0 (fails closed)"
    outcome, result, _ = run_module(
        mimir_args(mimir, query=f"count({query}) or vector(0)", expect={"op": "==", "value": 0})
    )
    assert (outcome, result["value"]) == ("ok", 0.0)


def test_without_tenant_mimir_answers_401_once(mimir: MimirFront) -> None:
    args = mimir_args(mimir, query=METRIC)
    del args["tenant"]
    started = time.monotonic()
    outcome, result, _ = run_module(args)
    assert outcome == "failed"
    assert result["msg"] == (f"query to {mimir.url}/prometheus/api/v1/query failed (1 attempt): HTTP 401: no org id")
    assert (result["status"], result["url"]) == (401, f"{mimir.url}/prometheus/api/v1/query")
    assert time.monotonic() - started < 1  # no backoff: a 4xx is never retried


def test_unreachable_mimir_fails_closed_after_retrying(storage: PrometheusProcess) -> None:
    front = MimirFront(MetricsConfig(mimir_port=0), storage.url)
    front.start()
    front.set_down(True)
    try:
        outcome, result, _ = run_module(
            {
                "url": f"{front.url}/prometheus",
                "tenant": "lab",
                "query": "up",
                "retries": 1,
                "expect": {"op": "==", "value": 1},
            }
        )
    finally:
        front.stop()
    assert outcome == "failed"
    assert result["msg"] == (
        f"cannot query {front.url}/prometheus/api/v1/query (2 attempts): [Errno 111] Connection refused"
    )
    assert "result" not in result


# --- scripted servers: retries, auth, secrets, warnings ---


def test_503_then_200_succeeds_on_the_retry(scripted: Callable[..., ScriptedServer]) -> None:
    server = scripted(
        json_answer(503, b'{"status":"error","errorType":"unavailable","error":"busy"}'), json_answer(200, SUCCESS)
    )
    outcome, result, _ = run_module({"url": server.url, "query": "up", "retries": 2})
    assert (outcome, result["value"]) == ("ok", 1.0)
    assert len(server.requests) == 2


def test_exhausted_retries_report_the_last_status(scripted: Callable[..., ScriptedServer]) -> None:
    server = scripted(Response(502, b"<html>Bad Gateway</html>", "text/html"))
    sleeps: list[float] = []
    client = PromQLClient(ClientSettings(url=server.url, retries=2), sleep=sleeps.append)
    with pytest.raises(PromQLError) as failure:
        client.query_instant("up")
    assert str(failure.value) == (
        f"query to {server.url}/api/v1/query failed (3 attempts): HTTP 502: <html>Bad Gateway</html>"
    )
    assert (len(server.requests), sleeps) == (3, [1.0, 2.0])


def test_tenant_and_basic_auth_are_sent_and_secrets_never_shown(scripted: Callable[..., ScriptedServer]) -> None:
    def echo_headers(request: Request) -> Response:
        credentials = request.header("Authorization")
        return Response(500, f"proxy error: Authorization {credentials} refused".encode(), "text/plain")

    server = scripted(echo_headers)
    args = {
        "url": server.url,
        "query": "up",
        "tenant": "team-a",
        "username": "reader",
        "password": PASSWORD,
        "retries": 0,
    }
    outcome, result, _ = run_module(args)
    sent = server.requests[0]
    assert sent.headers["x-scope-orgid"] == "team-a"
    assert sent.headers["authorization"].startswith("Basic ")
    assert outcome == "failed"
    assert "HTTP 500: proxy error" in result["msg"]
    assert sent.headers["authorization"].removeprefix("Basic ") not in json.dumps(result)
    assert PASSWORD not in json.dumps(result)


def test_bearer_token_is_sent_and_never_shown(scripted: Callable[..., ScriptedServer]) -> None:
    server = scripted(
        json_answer(403, f'{{"status":"error","errorType":"forbidden","error":"token {TOKEN} revoked"}}'.encode())
    )
    outcome, result, _ = run_module({"url": server.url, "query": "up", "bearer_token": TOKEN})
    assert server.requests[0].headers["authorization"] == f"Bearer {TOKEN}"
    assert (outcome, result["error_type"]) == ("failed", "forbidden")
    assert result["msg"].endswith("HTTP 403 forbidden: token ******** revoked")
    assert TOKEN not in json.dumps(result)


def test_query_api_warnings_become_module_warnings(scripted: Callable[..., ScriptedServer]) -> None:
    body = json.loads(SUCCESS)
    body["warnings"] = ["PromQL info: metric might not be a counter"]
    server = scripted(json_answer(200, json.dumps(body).encode()))
    outcome, _, warnings = run_module({"url": server.url, "query": "rate(x[5m])"})
    assert (outcome, warnings) == ("ok", ["the query API warned: PromQL info: metric might not be a counter"])


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        ({"type": "range", "start": "now-1h"}, "missing: step"),
        ({"start": "now-1h", "step": "1m"}, "start and step apply to type=range"),
        ({"type": "range", "start": "now-1h", "step": "1m", "time": "now"}, "time applies to type=instant"),
        ({"time": "now-1x"}, "not a Prometheus duration: '1x'"),
        ({"username": "reader"}, "parameters are required together: username, password"),
        ({"bearer_token": TOKEN, "username": "reader", "password": PASSWORD}, "mutually exclusive"),
        ({"retries": -1}, "retries must be 0 or more"),
    ],
)
def test_contradictory_options_fail_before_any_request(
    scripted: Callable[..., ScriptedServer], args: dict[str, Any], complaint: str
) -> None:
    server = scripted(json_answer(200, SUCCESS))
    outcome, result, _ = run_module({"url": server.url, "query": "up", **args})
    assert outcome == "failed"
    assert complaint in result["msg"]
    assert server.requests == []


# --- TLS ---


@pytest.fixture
def authority(tmp_path: Path) -> CertificateAuthority:
    return CertificateAuthority.create(tmp_path / "server-ca")


def test_tls_with_the_right_ca_or_without_verification(
    scripted: Callable[..., ScriptedServer], authority: CertificateAuthority
) -> None:
    server = scripted(json_answer(200, SUCCESS), tls=authority.server_context("mimir", "127.0.0.1"))
    assert run_module({"url": server.url, "query": "up", "ca_path": str(authority.ca_file)})[0] == "ok"
    assert run_module({"url": server.url, "query": "up", "validate_certs": False})[0] == "ok"
    outcome, result, _ = run_module({"url": server.url, "query": "up", "retries": 3})
    assert outcome == "failed"
    assert result["msg"].startswith(f"cannot query {server.url}/api/v1/query (1 attempt): TLS failure: ")
    assert "CERTIFICATE_VERIFY_FAILED" in result["msg"]


def test_client_certificate_for_mutual_tls(
    scripted: Callable[..., ScriptedServer], authority: CertificateAuthority, tmp_path: Path
) -> None:
    clients = CertificateAuthority.create(tmp_path / "client-ca")
    clients.server_context("operator", "127.0.0.1")  # writes operator.crt and operator.key
    context = authority.server_context("mimir", "127.0.0.1")
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(clients.ca_file)
    server = scripted(json_answer(200, SUCCESS), tls=context)
    base = {"url": server.url, "query": "up", "ca_path": str(authority.ca_file), "retries": 0}
    with_cert = {
        "client_cert": str(clients.directory / "operator.crt"),
        "client_key": str(clients.directory / "operator.key"),
    }
    assert run_module({**base, **with_cert})[0] == "ok"
    outcome, result, _ = run_module(base)
    assert outcome == "failed"
    assert result["msg"].startswith(f"cannot query {server.url}/api/v1/query (1 attempt): ")


# --- through ansible-playbook: check mode, no_log, masking ---


def test_playbook_run_in_check_mode_never_shows_a_secret(mimir: MimirFront) -> None:
    embedded = f"http://reader:{PASSWORD}-url@{mimir.url.removeprefix('http://')}/prometheus"
    common = {"tenant": "lab", "query": METRIC, "time": str(T0)}
    tasks = [
        {
            "name": "gate passes",
            "promql": {
                **common,
                "url": f"{mimir.url}/prometheus",
                "username": "reader",
                "password": PASSWORD,
                "expect": {"op": "<", "value": 20, "reduce": "max"},
            },
        },
        {
            "name": "gate fails",
            "promql": {**common, "url": embedded, "expect": {"op": "<", "value": 10, "reduce": "max"}},
            "ignore_errors": True,
        },
    ]
    results = run_playbook(tasks, dict(os.environ), check=True)
    passed, failed = results["gate passes"], results["gate fails"]
    assert not passed.get("failed"), failures(results)
    assert (passed["changed"], passed["value"], passed["series"]) == (False, 12.0, 3)
    assert failed["failed"]
    assert failed["msg"] == f"query `{METRIC}`: max = 12 over 3 series, expected < 10"
    assert failed["invocation"]["module_args"]["url"] == embedded.replace(f"{PASSWORD}-url", "********")
    assert PASSWORD not in json.dumps(results)
