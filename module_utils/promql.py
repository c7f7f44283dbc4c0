"""A small client for the Prometheus HTTP query API, as Prometheus serves it and Mimir under `/prometheus`.

Instant (`/api/v1/query`) and range (`/api/v1/query_range`) queries, typed results, and the figures an
assertion compares. The base URL carries the prefix: `https://mimir.example/prometheus` for Mimir,
`http://prometheus:9090` for a plain Prometheus.

Why `requests` rather than urllib: it is pinned in the project and every task runs on the controller from
the project's venv (Talos nodes have no Python), so it is always there; it puts CA file, client
certificate, verification and auth in one place; and its exception classes tell a refused or timed-out
connection (worth a retry) from a certificate failure (never worth one).

Queries are sent as POST forms (documented for both endpoints), so long expressions never hit URL limits
and the query text stays out of proxies' access logs.
"""

from __future__ import annotations

import base64
import math
import operator
import re
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3

RESULT_TYPES = ("vector", "matrix", "scalar", "string")
COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}
REDUCTIONS = ("max", "min", "sum", "count", "each")
MAX_BACKOFF_SECONDS = 30.0
BODY_EXCERPT_CHARS = 300
SHOWN_OFFENDERS = 10
REDACTED = "********"
_DURATION = re.compile(
    r"^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$",
)
_DURATION_UNITS = (365 * 86400, 7 * 86400, 86400, 3600, 60, 1, 0.001)


class PromQLError(Exception):
    """A query that did not produce a result; the message names the URL (no credentials) and the cause."""

    def __init__(self, message: str, url: str, status: int | None = None, error_type: str | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.status = status
        self.error_type = error_type


@dataclass(frozen=True)
class ClientSettings:
    """Where and how to query; `url` is the API base including any prefix."""

    url: str
    tenant: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    bearer_token: str | None = field(default=None, repr=False)
    ca_path: str | None = None
    validate_certs: bool = True
    client_cert: str | None = None
    client_key: str | None = None
    timeout: float = 30.0
    retries: int = 3
    backoff: float = 1.0

    def secrets(self) -> list[str]:
        """Every form a credential can take on the wire, so none of them can reach a message."""
        embedded = urlsplit(self.url).password
        basic = f"{self.username}:{self.password or ''}" if self.username else ""
        encoded = base64.b64encode(basic.encode()).decode() if basic else ""
        return [secret for secret in (self.password, self.bearer_token, embedded, encoded) if secret]


@dataclass(frozen=True)
class QueryResult:
    """`result` is a list of series for vector and matrix, a {timestamp, value} dict for scalar and string."""

    result_type: str
    result: list[dict[str, Any]] | dict[str, Any]
    warnings: list[str] = field(default_factory=list)

    @property
    def series_count(self) -> int:
        return len(self.result) if isinstance(self.result, list) else 1


# --- URLs ---------------------------------------------------------------------------------------


def check_base_url(url: str) -> None:
    """Refuse a base URL requests would misuse: no scheme or host, or a query or fragment that would be lost."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"url must be an http(s) URL with a host, got {redact_url(url)!r}")
    if parts.query or parts.fragment:
        raise ValueError(f"url must not carry a query string or fragment, got {redact_url(url)!r}")


def redact_url(url: str) -> str:
    """The URL without user:password@, fit for messages."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=host).geturl()


def api_url(base: str, endpoint: str) -> str:
    """`<base>/api/v1/<endpoint>`, whether or not the base ends with a slash."""
    return f"{base.rstrip('/')}/api/v1/{endpoint}"


# --- times --------------------------------------------------------------------------------------


def parse_duration(text: str) -> float:
    """Seconds in a Prometheus duration such as `1h30m` or `500ms` (units y w d h m s ms, in that order)."""
    match = _DURATION.match(text)
    if not text or not match:
        raise ValueError(f"not a Prometheus duration: {text!r}")
    return sum(int(count) * unit for count, unit in zip(match.groups(), _DURATION_UNITS, strict=True) if count)


def resolve_time(text: str, now: float) -> str:
    """`now` and `now-<duration>` as Unix seconds; RFC 3339 and Unix timestamps pass through to the server."""
    if text == "now":
        return f"{now:.3f}"
    if text.startswith("now-"):
        return f"{now - parse_duration(text.removeprefix('now-')):.3f}"
    return text


def unix_seconds(text: str, now: float) -> float:
    """A time as `resolve_time` accepts it (Unix seconds, RFC 3339, `now`, `now-<duration>`) as Unix seconds."""
    resolved = resolve_time(text, now)
    try:
        return float(resolved)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(resolved)
    except ValueError as exc:
        raise ValueError(f"not a time (Unix seconds, RFC 3339, now-<duration>): {text!r}") from exc
    if moment.tzinfo is None:
        raise ValueError(f"an RFC 3339 time needs its offset (Z or +hh:mm): {text!r}")
    return moment.timestamp()


# --- results ------------------------------------------------------------------------------------


def _sample(pair: list[Any]) -> tuple[float, float]:
    timestamp, value = pair
    return float(timestamp), float(value)


def _refuse_histograms(item: dict[str, Any]) -> None:
    if "histogram" in item or "histograms" in item:
        raise ValueError(
            "the query returned native histogram samples, which have no single value: "
            "wrap it in histogram_count(), histogram_sum() or histogram_quantile()"
        )


def _vector(raw: list[dict[str, Any]]) -> list[dict[str, Any]]:
    series = []
    for item in raw:
        _refuse_histograms(item)
        timestamp, value = _sample(item["value"])
        series.append({"metric": item.get("metric", {}), "value": value, "timestamp": timestamp})
    return series


def _matrix(raw: list[dict[str, Any]]) -> list[dict[str, Any]]:
    series = []
    for item in raw:
        _refuse_histograms(item)
        values = [list(_sample(pair)) for pair in item.get("values", [])]
        series.append({"metric": item.get("metric", {}), "values": values})
    return series


def parse_result(data: dict[str, Any]) -> tuple[str, list[dict[str, Any]] | dict[str, Any]]:
    """(resultType, typed result) from the `data` of a successful query response."""
    result_type = data.get("resultType")
    raw = data.get("result")
    try:
        if result_type == "vector":
            return result_type, _vector(raw)
        if result_type == "matrix":
            return result_type, _matrix(raw)
        if result_type == "scalar":
            timestamp, value = _sample(raw)
            return result_type, {"timestamp": timestamp, "value": value}
        if result_type == "string":
            return result_type, {"timestamp": float(raw[0]), "value": str(raw[1])}
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"malformed {result_type} result: {error}") from error
    raise ValueError(f"unknown resultType {result_type!r}")


# --- the client ---------------------------------------------------------------------------------


def _is_retryable_status(status: int) -> bool:
    return status == 429 or status >= 500


def _is_retryable_exception(error: requests.RequestException) -> bool:
    # An SSLError is a ConnectionError to requests, but a bad certificate stays bad on the next try.
    if isinstance(error, requests.exceptions.SSLError):
        return False
    return isinstance(error, requests.ConnectionError | requests.Timeout)


def _is_connection_failure(error: requests.RequestException) -> bool:
    """Nothing answered at all (refused, unresolvable, no connection in time): not one slow query."""
    return isinstance(error, requests.ConnectionError) and not isinstance(
        error, requests.exceptions.ReadTimeout | requests.exceptions.SSLError
    )


def _root_cause(error: BaseException) -> BaseException:
    """The innermost exception of a chain: `[Errno 111] Connection refused` rather than urllib3's wrappers."""
    seen = {id(error)}
    while True:
        inner = error.__cause__ or error.__context__
        if inner is None or id(inner) in seen:
            return error
        seen.add(id(inner))
        error = inner


def describe_exception(error: requests.RequestException, timeout: float) -> str:
    if isinstance(error, requests.exceptions.ConnectTimeout):
        return f"no connection within {timeout:g} s"
    if isinstance(error, requests.exceptions.ReadTimeout):
        return f"no answer within {timeout:g} s"
    if isinstance(error, requests.exceptions.SSLError):
        return f"TLS failure: {_root_cause(error)}"
    return str(_root_cause(error)) or type(error).__name__


def _retry_after(reply: requests.Response) -> float | None:
    header = reply.headers.get("Retry-After", "")
    return float(header) if header.isdigit() else None


def _error_fields(reply: requests.Response) -> tuple[str | None, str]:
    """(errorType, error) from a Prometheus error envelope, else (None, an excerpt of the body)."""
    try:
        body = reply.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("status") == "error":
        return body.get("errorType"), str(body.get("error", ""))
    excerpt = reply.text.strip()
    if len(excerpt) > BODY_EXCERPT_CHARS:
        excerpt = excerpt[:BODY_EXCERPT_CHARS] + "..."
    return None, excerpt


class PromQLClient:
    """Queries one Prometheus-compatible API; every call has a timeout and retries transient failures."""

    def __init__(
        self,
        settings: ClientSettings,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        check_base_url(settings.url)
        if settings.bearer_token and (settings.username or settings.password):
            raise ValueError("bearer_token and username/password are mutually exclusive")
        self.settings = settings
        self._session = session or requests.Session()
        self._sleep = sleep
        # Set once a query found the server unreachable after all its retries: every later query of this
        # client fails at once with that reason, so judging a dozen gates against a Mimir that is down
        # fails closed in seconds instead of retrying each query for minutes.
        self._down: PromQLError | None = None

    def query_instant(self, query: str, at: str | None = None) -> QueryResult:
        form = {"query": query}
        if at is not None:
            form["time"] = at
        return self._query("query", form)

    def query_range(self, query: str, start: str, end: str, step: str) -> QueryResult:
        return self._query("query_range", {"query": query, "start": start, "end": end, "step": step})

    # --- internals ---

    def _query(self, endpoint: str, form: dict[str, str]) -> QueryResult:
        url = api_url(self.settings.url, endpoint)
        body = self._post_with_retries(url, form)
        shown = redact_url(url)
        if not isinstance(body, dict) or body.get("status") != "success" or not isinstance(body.get("data"), dict):
            raise PromQLError(self._scrub(f"{shown}: not a Prometheus query response: {str(body)[:200]}"), shown)
        try:
            result_type, result = parse_result(body["data"])
        except ValueError as error:
            raise PromQLError(self._scrub(f"{shown}: {error}"), shown) from error
        return QueryResult(result_type, result, [str(warning) for warning in body.get("warnings") or []])

    def _post_with_retries(self, url: str, form: dict[str, str]) -> Any:
        if self._down is not None:
            raise PromQLError(f"{self._down} (an earlier query; not tried again)", self._down.url)
        attempts = self.settings.retries + 1
        for attempt in range(1, attempts + 1):
            last = attempt == attempts
            try:
                reply = self._post(url, form)
            except requests.RequestException as error:
                if last or not _is_retryable_exception(error):
                    unreachable = self._unreachable(url, error, attempt)
                    if _is_connection_failure(error):
                        self._down = unreachable
                    raise unreachable from error
                self._sleep(self._delay(attempt, None))
                continue
            if reply.ok:
                return self._json(url, reply)
            if last or not _is_retryable_status(reply.status_code):
                raise self._http_error(url, reply, attempt)
            self._sleep(self._delay(attempt, _retry_after(reply)))
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _post(self, url: str, form: dict[str, str]) -> requests.Response:
        settings = self.settings
        headers = {"Accept": "application/json", "User-Agent": "alloy-migration-promql"}
        if settings.tenant:
            headers["X-Scope-OrgID"] = settings.tenant
        if settings.bearer_token:
            headers["Authorization"] = f"Bearer {settings.bearer_token}"
        auth = (settings.username, settings.password or "") if settings.username else None
        cert: str | tuple[str, str] | None = settings.client_cert
        if settings.client_cert and settings.client_key:
            cert = (settings.client_cert, settings.client_key)
        verify: bool | str = (settings.ca_path or True) if settings.validate_certs else False
        with warnings.catch_warnings():
            if not settings.validate_certs:
                # The operator turned verification off on purpose; urllib3 would repeat it on every request.
                warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
            return self._session.post(
                url, data=form, headers=headers, auth=auth, cert=cert, verify=verify, timeout=settings.timeout
            )

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, MAX_BACKOFF_SECONDS)
        return min(self.settings.backoff * 2 ** (attempt - 1), MAX_BACKOFF_SECONDS)

    def _json(self, url: str, reply: requests.Response) -> Any:
        try:
            return reply.json()
        except ValueError as error:
            shown = redact_url(url)
            raise PromQLError(
                self._scrub(f"{shown}: HTTP {reply.status_code} with a body that is not JSON"), shown, reply.status_code
            ) from error

    def _unreachable(self, url: str, error: requests.RequestException, attempts: int) -> PromQLError:
        shown = redact_url(url)
        cause = describe_exception(error, self.settings.timeout)
        return PromQLError(self._scrub(f"cannot query {shown} ({_attempts(attempts)}): {cause}"), shown)

    def _http_error(self, url: str, reply: requests.Response, attempts: int) -> PromQLError:
        shown = redact_url(url)
        error_type, error = _error_fields(reply)
        kind = f" {error_type}" if error_type else ""
        message = f"query to {shown} failed ({_attempts(attempts)}): HTTP {reply.status_code}{kind}: {error}"
        if reply.status_code == 401 and "WWW-Authenticate" in reply.headers:
            # An authentication challenge: whatever guards the API (a gateway) refused the credentials sent.
            message += " (the credentials were refused: check the username and password, or the token)"
        return PromQLError(self._scrub(message), shown, reply.status_code, error_type)

    def _scrub(self, text: str) -> str:
        for secret in self.settings.secrets():
            text = text.replace(secret, REDACTED)
        return text


def _attempts(count: int) -> str:
    return "1 attempt" if count == 1 else f"{count} attempts"


# --- assertions ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Figure:
    """One number of a result, with the series it belongs to and when it was sampled."""

    metric: dict[str, str]
    timestamp: float
    value: float


@dataclass(frozen=True)
class Expectation:
    op: str
    threshold: float
    reduce: str = "each"

    def __post_init__(self) -> None:
        if self.op not in COMPARISONS:
            raise ValueError(f"op must be one of {', '.join(COMPARISONS)}, got {self.op!r}")
        if self.reduce not in REDUCTIONS:
            raise ValueError(f"reduce must be one of {', '.join(REDUCTIONS)}, got {self.reduce!r}")

    def holds_for(self, value: float) -> bool:
        """NaN never satisfies an expectation, even `!=`: a NaN gate is a gate without data."""
        return not math.isnan(value) and COMPARISONS[self.op](value, self.threshold)


@dataclass(frozen=True)
class Verdict:
    passed: bool
    message: str
    value: float | None


def figures(result: QueryResult) -> list[Figure]:
    """Every number of a result: one per vector series, every sample of every matrix series, the scalar."""
    if result.result_type == "scalar":
        return [Figure({}, result.result["timestamp"], result.result["value"])]
    if result.result_type == "vector":
        return [Figure(item["metric"], item["timestamp"], item["value"]) for item in result.result]
    if result.result_type == "matrix":
        return [Figure(item["metric"], t, v) for item in result.result for t, v in item["values"]]
    return []


def _extreme(values: list[float], pick: Callable[[list[float]], float]) -> float:
    """max/min as PromQL aggregates them: NaN only when every value is NaN."""
    numbers = [value for value in values if not math.isnan(value)]
    return pick(numbers) if numbers else math.nan


def reduce_figures(result: QueryResult, reduce: str) -> float:
    """The figure `reduce` makes of a result: `count` counts series, the others fold every figure."""
    if reduce == "count":
        return float(result.series_count)
    values = [figure.value for figure in figures(result)]
    if reduce == "max":
        return _extreme(values, max)
    if reduce == "min":
        return _extreme(values, min)
    if reduce == "sum":
        return math.fsum(values)
    raise ValueError(f"{reduce!r} does not reduce to one figure")


def sole_figure(result: QueryResult) -> float | None:
    numbers = figures(result)
    return numbers[0].value if len(numbers) == 1 else None


def format_value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return f"{value:.15g}"


def format_series(metric: dict[str, str]) -> str:
    """A series as PromQL writes it: name{label="value", ...}."""
    labels = ", ".join(f'{key}="{value}"' for key, value in sorted(metric.items()) if key != "__name__")
    return f"{metric.get('__name__', '')}{{{labels}}}"


def check(query: str, result: QueryResult, expectation: Expectation) -> Verdict:
    """Whether the result meets the expectation; the message gives the query, the figures and the threshold."""
    wanted = f"{expectation.op} {format_value(expectation.threshold)}"
    if result.result_type == "string":
        return Verdict(False, f"query `{query}` returned a string, which cannot be compared with {wanted}", None)
    if not figures(result):
        return Verdict(False, f"query `{query}` returned no data, so it cannot be {wanted} (fails closed)", None)
    if expectation.reduce == "each":
        return _check_each(query, result, expectation, wanted)
    value = reduce_figures(result, expectation.reduce)
    seen = f"{expectation.reduce} = {format_value(value)} over {result.series_count} series"
    if expectation.holds_for(value):
        return Verdict(True, f"query `{query}`: {seen}, {wanted} as expected", value)
    return Verdict(False, f"query `{query}`: {seen}, expected {wanted}", value)


def _check_each(query: str, result: QueryResult, expectation: Expectation, wanted: str) -> Verdict:
    numbers = figures(result)
    offenders = [figure for figure in numbers if not expectation.holds_for(figure.value)]
    value = sole_figure(result)
    if not offenders:
        return Verdict(True, f"query `{query}`: all {len(numbers)} values {wanted} as expected", value)
    shown = "; ".join(_describe(figure, result.result_type) for figure in offenders[:SHOWN_OFFENDERS])
    more = f" (and {len(offenders) - SHOWN_OFFENDERS} more)" if len(offenders) > SHOWN_OFFENDERS else ""
    message = f"query `{query}`: {len(offenders)} of {len(numbers)} values not {wanted}: {shown}{more}"
    return Verdict(False, message, value)


def _describe(figure: Figure, result_type: str) -> str:
    where = f" at {figure.timestamp:.3f}" if result_type == "matrix" else ""
    return f"{format_series(figure.metric)} = {format_value(figure.value)}{where}"


# --- module plumbing ----------------------------------------------------------------------------
# The connection options of every module that queries a Prometheus-compatible API, so the options
# and their handling are the same everywhere (the promql module declares the same options).

CONNECTION_ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    "url": {"type": "str", "required": True},
    "tenant": {"type": "str"},
    "username": {"type": "str"},
    "password": {"type": "str", "no_log": True},
    "bearer_token": {"type": "str", "no_log": True},
    "ca_path": {"type": "path"},
    "validate_certs": {"type": "bool", "default": True},
    "client_cert": {"type": "path"},
    "client_key": {"type": "path"},
    "timeout": {"type": "float", "default": 30},
    "retries": {"type": "int", "default": 3},
}
CONNECTION_CONSTRAINTS: dict[str, Any] = {
    "required_together": [("username", "password")],
    "mutually_exclusive": [("bearer_token", "username")],
    "required_by": {"client_key": "client_cert"},
}


def settings_from_params(params: dict[str, Any], url: str | None = None, tenant: str | None = None) -> ClientSettings:
    """ClientSettings from the connection options; `url`/`tenant` override them (e.g. a meta-monitoring tenant)."""
    if params["retries"] < 0 or params["timeout"] <= 0:
        raise ValueError("retries must be 0 or more and timeout more than 0")
    return ClientSettings(
        url=url or params["url"],
        tenant=tenant if tenant is not None else params["tenant"],
        username=params["username"],
        password=params["password"],
        bearer_token=params["bearer_token"],
        ca_path=params["ca_path"],
        validate_certs=params["validate_certs"],
        client_cert=params["client_cert"],
        client_key=params["client_key"],
        timeout=params["timeout"],
        retries=params["retries"],
    )
