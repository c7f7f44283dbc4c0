"""The promql client's pure logic: times, URLs, result typing, reduction, comparison, retries, redaction.

HTTP is replaced by a scripted session here; tests/modules/test_promql_http.py covers real servers.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import requests
from ansible.module_utils.promql import (
    ClientSettings,
    Expectation,
    PromQLClient,
    PromQLError,
    QueryResult,
    api_url,
    check,
    check_base_url,
    format_series,
    parse_duration,
    parse_result,
    redact_url,
    reduce_figures,
    resolve_time,
    unix_seconds,
)

PASSWORD = "s3cr3t-pa55word"
TOKEN = "tok-0123456789abcdef"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("500ms", 0.5), ("1h30m", 5400), ("1d", 86400), ("2w", 1_209_600), ("1y2d", 31_708_800)],
)
def test_durations_in_prometheus_syntax(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "1m1h", "-5m", "1.5h", "5 m", "now"])
def test_malformed_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a Prometheus duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "resolved"),
    [
        ("now", "1767225600.000"),
        ("now-5m", "1767225300.000"),
        ("now-1h30m", "1767220200.000"),
        ("2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z"),
        ("1767225000.5", "1767225000.5"),
    ],
)
def test_times_relative_to_now_are_computed_others_pass_through(text: str, resolved: str) -> None:
    assert resolve_time(text, now=1_767_225_600.0) == resolved


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("now-5m", 1_767_225_300.0),
        ("1767225000.5", 1_767_225_000.5),
        ("2026-01-01T00:00:00Z", 1_767_225_600.0),
        ("2026-01-01T01:00:00+01:00", 1_767_225_600.0),
    ],
)
def test_times_as_unix_seconds_for_the_gates(text: str, seconds: float) -> None:
    assert unix_seconds(text, now=1_767_225_600.0) == seconds


@pytest.mark.parametrize(
    ("text", "refusal"), [("2026-01-01T00:00:00", "needs its offset"), ("yesterday", "not a time")]
)
def test_times_the_gates_cannot_place_are_refused(text: str, refusal: str) -> None:
    with pytest.raises(ValueError, match=refusal):
        unix_seconds(text, now=1_767_225_600.0)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://reader:hunter2@mimir.example/prometheus", "https://mimir.example/prometheus"),
        ("http://user@127.0.0.1:9009/api/v1/query", "http://127.0.0.1:9009/api/v1/query"),
        ("https://a:b@[::1]:8443/prometheus", "https://[::1]:8443/prometheus"),
        ("http://prometheus:9090", "http://prometheus:9090"),
    ],
)
def test_redacted_urls_keep_host_port_and_path_but_no_credentials(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@pytest.mark.parametrize(
    ("base", "endpoint", "url"),
    [
        ("https://mimir.example/prometheus", "query", "https://mimir.example/prometheus/api/v1/query"),
        ("https://mimir.example/prometheus/", "query_range", "https://mimir.example/prometheus/api/v1/query_range"),
        ("http://127.0.0.1:9090", "query", "http://127.0.0.1:9090/api/v1/query"),
    ],
)
def test_api_url_puts_the_endpoint_under_the_prefix(base: str, endpoint: str, url: str) -> None:
    assert api_url(base, endpoint) == url


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("mimir.example/prometheus", "http(s) URL with a host"),
        ("ftp://mimir.example", "http(s) URL with a host"),
        ("https:///prometheus", "http(s) URL with a host"),
        ("https://mimir.example/prometheus?x=1", "query string or fragment"),
    ],
)
def test_unusable_base_urls_are_refused(url: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint.replace("(", r"\(").replace(")", r"\)")):
        check_base_url(url)


def test_base_url_complaint_hides_embedded_credentials() -> None:
    with pytest.raises(ValueError) as refused:
        check_base_url(f"https://reader:{PASSWORD}@mimir.example/p?x=1")
    assert PASSWORD not in str(refused.value)


# --- result typing ---


def test_vector_values_become_floats_including_special_values() -> None:
    data = {
        "resultType": "vector",
        "result": [
            {"metric": {"__name__": "up", "job": "a"}, "value": [1767225600.5, "1"]},
            {"metric": {"job": "b"}, "value": [1767225600.5, "NaN"]},
            {"metric": {"job": "c"}, "value": [1767225600.5, "+Inf"]},
            {"metric": {"job": "d"}, "value": [1767225600.5, "-Inf"]},
        ],
    }
    result_type, result = parse_result(data)
    assert result_type == "vector"
    assert result[0] == {"metric": {"__name__": "up", "job": "a"}, "value": 1.0, "timestamp": 1767225600.5}
    assert math.isnan(result[1]["value"])
    assert [item["value"] for item in result[2:]] == [math.inf, -math.inf]


def test_matrix_keeps_every_pair_in_order() -> None:
    data = {"resultType": "matrix", "result": [{"metric": {"pod": "a"}, "values": [[10, "1.5"], [40, "2"]]}]}
    assert parse_result(data) == ("matrix", [{"metric": {"pod": "a"}, "values": [[10.0, 1.5], [40.0, 2.0]]}])


def test_scalar_and_string_become_a_timestamped_value() -> None:
    assert parse_result({"resultType": "scalar", "result": [5, "0.25"]}) == (
        "scalar",
        {"timestamp": 5.0, "value": 0.25},
    )
    assert parse_result({"resultType": "string", "result": [5, "hello"]}) == (
        "string",
        {"timestamp": 5.0, "value": "hello"},
    )


@pytest.mark.parametrize(
    ("data", "complaint"),
    [
        ({"resultType": "vector", "result": [{"metric": {}, "histogram": [1, {"count": "2"}]}]}, "native histogram"),
        ({"resultType": "matrix", "result": [{"metric": {}, "histograms": [[1, {}]]}]}, "native histogram"),
        ({"resultType": "vector", "result": [{"metric": {}, "value": [1, "x"]}]}, "malformed vector"),
        ({"resultType": "scalar", "result": None}, "malformed scalar"),
        ({"resultType": "streams", "result": []}, "unknown resultType 'streams'"),
    ],
)
def test_results_that_cannot_be_typed_are_refused(data: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        parse_result(data)


# --- reduction and comparison ---


def vector(*values: float, name: str = "queue_depth") -> QueryResult:
    items = [
        {"metric": {"__name__": name, "pod": f"p{i}"}, "value": v, "timestamp": 100.0} for i, v in enumerate(values)
    ]
    return QueryResult("vector", items)


def matrix(*series: list[float]) -> QueryResult:
    items = [
        {"metric": {"pod": f"p{i}"}, "values": [[100.0 + 30 * j, v] for j, v in enumerate(values)]}
        for i, values in enumerate(series)
    ]
    return QueryResult("matrix", items)


@pytest.mark.parametrize(("reduce", "figure"), [("max", 12.0), ("min", 3.0), ("sum", 22.0), ("count", 3.0)])
def test_vector_reductions(reduce: str, figure: float) -> None:
    assert reduce_figures(vector(3, 7, 12), reduce) == figure


def test_matrix_reductions_fold_every_sample_but_count_counts_series() -> None:
    result = matrix([1, 9], [4, 2, 6])
    assert reduce_figures(result, "max") == 9
    assert reduce_figures(result, "min") == 1
    assert reduce_figures(result, "sum") == 22
    assert reduce_figures(result, "count") == 2


def test_max_and_min_skip_nan_unless_everything_is_nan_and_sum_propagates_it() -> None:
    assert reduce_figures(vector(math.nan, 4, 2), "max") == 4
    assert reduce_figures(vector(math.nan, 4, 2), "min") == 2
    assert math.isnan(reduce_figures(vector(math.nan, math.nan), "max"))
    assert math.isnan(reduce_figures(vector(math.nan, 4), "sum"))


@pytest.mark.parametrize(
    ("op", "threshold", "passed"),
    [
        ("<", 12, False),
        ("<=", 12, True),
        (">", 11.5, True),
        (">=", 12.5, False),
        ("==", 12, True),
        ("!=", 12, False),
    ],
)
def test_each_operator_compares_the_reduced_figure(op: str, threshold: float, passed: bool) -> None:
    verdict = check("max(queue_depth)", vector(3, 12), Expectation(op, threshold, "max"))
    assert (verdict.passed, verdict.value) == (passed, 12.0)


def test_a_failed_aggregate_names_query_figure_and_threshold() -> None:
    verdict = check("queue_depth", vector(3, 7, 12), Expectation("<", 10, "max"))
    assert not verdict.passed
    assert verdict.message == "query `queue_depth`: max = 12 over 3 series, expected < 10"


def test_each_lists_only_the_offending_series() -> None:
    verdict = check("queue_depth", vector(3, 7, 12, 15), Expectation("<", 10))
    assert not verdict.passed
    assert verdict.value is None  # several figures and no reduction: no single figure to report
    assert verdict.message == (
        'query `queue_depth`: 2 of 4 values not < 10: queue_depth{pod="p2"} = 12; queue_depth{pod="p3"} = 15'
    )


def test_each_on_a_matrix_says_when_the_offending_sample_was_taken() -> None:
    verdict = check("q", matrix([1, 2], [3, 11]), Expectation("<=", 10))
    assert not verdict.passed
    assert verdict.message == 'query `q`: 1 of 4 values not <= 10: {pod="p1"} = 11 at 130.000'


def test_a_long_list_of_offenders_is_cut_with_a_count() -> None:
    verdict = check("q", vector(*range(20, 45)), Expectation("<", 1))
    assert verdict.message.endswith("(and 15 more)")
    assert verdict.message.count(" = ") == 10


def test_each_passing_reports_the_sole_figure() -> None:
    verdict = check("up", vector(1), Expectation("==", 1))
    assert (verdict.passed, verdict.value) == (True, 1.0)


@pytest.mark.parametrize("reduce", ["max", "min", "sum", "count", "each"])
def test_an_empty_result_fails_closed_whatever_the_reduction(reduce: str) -> None:
    verdict = check("absent_metric", QueryResult("vector", []), Expectation(">=", 0, reduce))
    assert not verdict.passed
    assert "no data" in verdict.message
    assert "absent_metric" in verdict.message


@pytest.mark.parametrize("op", ["<", "<=", ">", ">=", "==", "!="])
def test_nan_meets_no_threshold(op: str) -> None:
    verdict = check("0/0", QueryResult("scalar", {"timestamp": 1.0, "value": math.nan}), Expectation(op, 1))
    assert not verdict.passed
    assert "NaN" in verdict.message


def test_a_string_cannot_be_compared() -> None:
    verdict = check('"x"', QueryResult("string", {"timestamp": 1.0, "value": "x"}), Expectation("==", 1))
    assert not verdict.passed
    assert "string" in verdict.message


def test_scalar_counts_as_one_series() -> None:
    scalar = QueryResult("scalar", {"timestamp": 1.0, "value": 0.5})
    assert check("s", scalar, Expectation("==", 1, "count")).passed
    assert check("s", scalar, Expectation("<", 1, "max")).value == 0.5


@pytest.mark.parametrize(("op", "reduce"), [("=<", "max"), ("<", "avg")])
def test_unknown_operators_and_reductions_are_refused(op: str, reduce: str) -> None:
    with pytest.raises(ValueError, match="must be one of"):
        Expectation(op, 1, reduce)


def test_series_are_written_as_promql_writes_them() -> None:
    assert format_series({"__name__": "up", "job": "a", "instance": "x:1"}) == 'up{instance="x:1", job="a"}'
    assert format_series({}) == "{}"


# --- retries and redaction, over a scripted session ---


def reply(status: int, body: str, **headers: str) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = body.encode()
    response.headers.update(headers)
    return response


SUCCESS = '{"status":"success","data":{"resultType":"scalar","result":[1,"4"]}}'


class ScriptedSession:
    """Answers POSTs from a script of responses or exceptions, recording what was sent."""

    def __init__(self, *script: requests.Response | Exception) -> None:
        self.script = list(script)
        self.calls: list[dict[str, Any]] = []

    def post(self, url: str, **kwargs: Any) -> requests.Response:
        self.calls.append({"url": url, **kwargs})
        step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        return step


def client(session: ScriptedSession, sleeps: list[float], **settings: Any) -> PromQLClient:
    options = {"url": "https://mimir.example/prometheus", "retries": 3, **settings}
    return PromQLClient(ClientSettings(**options), session=session, sleep=sleeps.append)


def test_5xx_and_429_are_retried_with_doubling_backoff_and_retry_after() -> None:
    session = ScriptedSession(reply(503, "busy"), reply(429, "slow down", **{"Retry-After": "7"}), reply(200, SUCCESS))
    sleeps: list[float] = []
    result = client(session, sleeps).query_instant("x")
    assert result.result == {"timestamp": 1.0, "value": 4.0}
    assert sleeps == [1.0, 7.0]
    assert len(session.calls) == 3


def test_connection_errors_are_retried_until_the_attempts_run_out() -> None:
    refused = requests.ConnectionError("[Errno 111] Connection refused")
    session = ScriptedSession(refused, refused, refused)
    sleeps: list[float] = []
    with pytest.raises(PromQLError) as failure:
        client(session, sleeps, retries=2).query_instant("x")
    assert sleeps == [1.0, 2.0]
    assert str(failure.value) == (
        "cannot query https://mimir.example/prometheus/api/v1/query (3 attempts): [Errno 111] Connection refused"
    )


def test_backoff_is_capped() -> None:
    session = ScriptedSession(*[reply(502, "bad gateway")] * 8)
    sleeps: list[float] = []
    with pytest.raises(PromQLError, match="8 attempts"):
        client(session, sleeps, retries=7, backoff=4).query_instant("x")
    assert sleeps == [4, 8, 16, 30, 30, 30, 30]


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_4xx_is_never_retried(status: int) -> None:
    body = '{"status":"error","errorType":"bad_data","error":"1:5: parse error: unclosed left parenthesis"}'
    session = ScriptedSession(reply(status, body))
    sleeps: list[float] = []
    with pytest.raises(PromQLError) as failure:
        client(session, sleeps).query_instant("sum(")
    assert (sleeps, len(session.calls)) == ([], 1)
    assert (failure.value.status, failure.value.error_type) == (status, "bad_data")
    assert str(failure.value) == (
        f"query to https://mimir.example/prometheus/api/v1/query failed (1 attempt): HTTP {status} bad_data: "
        "1:5: parse error: unclosed left parenthesis"
    )


def test_certificate_failures_are_not_retried() -> None:
    session = ScriptedSession(requests.exceptions.SSLError("certificate verify failed"))
    sleeps: list[float] = []
    with pytest.raises(PromQLError, match="TLS failure: certificate verify failed"):
        client(session, sleeps).query_instant("x")
    assert sleeps == []


def test_a_success_status_without_a_query_envelope_is_an_error() -> None:
    session = ScriptedSession(reply(200, "<html>login</html>"))
    with pytest.raises(PromQLError, match="HTTP 200 with a body that is not JSON"):
        client(session, []).query_instant("x")


def test_headers_auth_tls_and_timeout_reach_every_request() -> None:
    session = ScriptedSession(reply(200, SUCCESS))
    client(
        session,
        [],
        tenant="team-a",
        bearer_token=TOKEN,
        ca_path="/etc/ca.pem",
        client_cert="/etc/c.pem",
        client_key="/etc/c.key",
        timeout=7.5,
    ).query_range("rate(x[5m])", "1", "61", "30s")
    call = session.calls[0]
    assert call["url"] == "https://mimir.example/prometheus/api/v1/query_range"
    assert call["data"] == {"query": "rate(x[5m])", "start": "1", "end": "61", "step": "30s"}
    assert call["headers"]["X-Scope-OrgID"] == "team-a"
    assert call["headers"]["Authorization"] == f"Bearer {TOKEN}"
    assert (call["auth"], call["verify"], call["cert"], call["timeout"]) == (
        None,
        "/etc/ca.pem",
        ("/etc/c.pem", "/etc/c.key"),
        7.5,
    )


def test_basic_auth_and_no_verification() -> None:
    session = ScriptedSession(reply(200, SUCCESS))
    client(session, [], username="reader", password=PASSWORD, validate_certs=False).query_instant("x", at="5")
    call = session.calls[0]
    assert (call["auth"], call["verify"], call["data"]) == (("reader", PASSWORD), False, {"query": "x", "time": "5"})
    assert "Authorization" not in call["headers"]


def test_bearer_and_basic_auth_are_exclusive() -> None:
    with pytest.raises(ValueError, match="mutually exclusive"):
        client(ScriptedSession(), [], username="reader", password=PASSWORD, bearer_token=TOKEN)


@pytest.mark.parametrize(
    "failure",
    [
        reply(500, f"upstream rejected Authorization: Bearer {TOKEN} / {PASSWORD}"),
        reply(401, f'{{"status":"error","errorType":"unauthorized","error":"bad password {PASSWORD}"}}'),
        requests.ConnectionError(f"could not reach https://reader:{PASSWORD}@mimir.example ({TOKEN})"),
    ],
)
def test_secrets_echoed_by_a_server_or_an_exception_are_scrubbed(failure: requests.Response | Exception) -> None:
    session = ScriptedSession(failure)
    settings = {"url": f"https://reader:{PASSWORD}@mimir.example/prometheus", "retries": 0, "bearer_token": TOKEN}
    with pytest.raises(PromQLError) as raised:
        PromQLClient(ClientSettings(**settings), session=session, sleep=lambda _: None).query_instant("x")
    shown = f"{raised.value} {raised.value.url}"
    assert PASSWORD not in shown
    assert TOKEN not in shown
    assert "********" in shown
    assert "https://mimir.example/prometheus/api/v1/query" in shown
