"""HTTPS front of the lab API: authentication, routing, watch streams, request log, faults."""

from __future__ import annotations

import collections
import json
import random
import re
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from lab.k8s import discovery, selectors, tables
from lab.k8s.api import Api, Options
from lab.k8s.errors import ApiError, bad_request
from lab.k8s.proxy import Proxy
from lab.k8s.resources import ResourceType

_VERB_BY_METHOD = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
_POD_PROXY = re.compile(r"^/api/v1/namespaces/([^/]+)/pods/([^/]+)/proxy(/.*)?$")
_NODE_PROXY = re.compile(r"^/api/v1/nodes/([^/]+)/proxy(/.*)?$")


@dataclass
class Faults:
    """Injected API failures: a share of resource requests answered 5xx or 409, added latency.

    `seconds` makes them a burst in time: they clear by themselves that many seconds after being set.
    `errors` / `conflicts` answer exactly the next that many resource requests (writes, for conflicts)
    with the error, whatever the rates: a burst a test can count on.
    """

    error_rate: float = 0.0
    error_code: int = 503
    conflict_rate: float = 0.0
    latency: float = 0.0
    seconds: float = 0.0
    errors: int = 0
    conflicts: int = 0
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    _expires: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def set(self, settings: dict) -> None:
        for key in ("error_rate", "error_code", "conflict_rate", "latency", "errors", "conflicts"):
            if key in settings:
                setattr(self, key, type(getattr(self, key))(settings[key]))
        self.seconds = float(settings.get("seconds", 0))
        self._expires = self.clock() + self.seconds if self.seconds > 0 else 0.0

    def active(self) -> Faults:
        """The faults in force now (cleared once a burst is over)."""
        if self._expires and self.clock() >= self._expires:
            self.error_rate, self.conflict_rate, self.latency, self.seconds, self._expires = 0.0, 0.0, 0.0, 0.0, 0.0
        return self

    def draw_error(self) -> bool:
        return self._draw("errors", self.error_rate)

    def draw_conflict(self) -> bool:
        return self._draw("conflicts", self.conflict_rate)

    def _draw(self, counter: str, rate: float) -> bool:
        with self._lock:
            if getattr(self, counter) > 0:
                setattr(self, counter, getattr(self, counter) - 1)
                return True
        return bool(rate) and random.random() < rate

    def as_dict(self) -> dict:
        left = max(0.0, self._expires - self.clock()) if self._expires else 0.0
        return {
            "error_rate": self.error_rate,
            "error_code": self.error_code,
            "conflict_rate": self.conflict_rate,
            "latency": self.latency,
            "seconds_left": round(left, 1),
            "errors_left": self.errors,
            "conflicts_left": self.conflicts,
        }


@dataclass
class RequestLog:
    """Requests by verb and resource: the API-load figure of a run."""

    counts: collections.Counter = field(default_factory=collections.Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)
    path: str | None = None

    def record(self, verb: str, resource: str, code: int, user_agent: str) -> None:
        with self.lock:
            self.counts[(verb, resource)] += 1
            if self.path:
                with open(self.path, "a", encoding="utf-8") as out:
                    out.write(
                        json.dumps(
                            {
                                "t": round(time.time(), 3),
                                "verb": verb,
                                "resource": resource,
                                "code": code,
                                "agent": user_agent,
                            }
                        )
                        + "\n"
                    )

    def summary(self) -> dict:
        with self.lock:
            return {f"{verb} {resource}": n for (verb, resource), n in sorted(self.counts.items())}


@dataclass
class Route:
    rtype: ResourceType
    namespace: str
    name: str
    sub: str


class ApiServer(ThreadingHTTPServer):
    # A real API server listens with a deep backlog (Go's net: the kernel's somaxconn); socketserver's
    # default of 5 refuses connections as soon as a rollout batch's calls arrive together.
    request_queue_size = 128
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], api: Api, tokens: set[str], context: ssl.SSLContext):
        super().__init__(address, _Handler)
        self.api = api
        self.tokens = tokens
        self.faults = Faults()
        self.requests = RequestLog()
        self.proxy: Proxy | None = None
        self.socket = context.wrap_socket(self.socket, server_side=True)

    def authenticate(self, token: str) -> bool:
        return token in self.tokens


class _Handler(BaseHTTPRequestHandler):
    server: ApiServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args) -> None:
        pass

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    # -- plumbing -------------------------------------------------------------------------------
    def _serve(self, method: str) -> None:
        url = urllib.parse.urlsplit(self.path)
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query).items()}
        body = self._read_body()
        verb, resource = method.lower(), url.path
        try:
            if not self._authorized():
                raise ApiError(401, "Unauthorized", "Unauthorized")
            if url.path.rstrip("/") in ("/healthz", "/readyz", "/livez"):
                self._send_text(200, "ok")
                return
            proxied = _proxy_resource(url.path) if self.server.proxy is not None else None
            if proxied is not None:
                resource = proxied
                status = self._proxy(method, url, body)
                self.server.requests.record(verb, resource, status, self.headers.get("User-Agent", ""))
                return
            static = self._static(url.path)
            if static is not None:
                verb, resource = "get", url.path
                self._send_json(200, static)
                return
            route = self._route(url.path)
            verb, resource = self._verb(method, route, query), route.rtype.key + (f"/{route.sub}" if route.sub else "")
            self._inject_faults(route)
            self._dispatch(method, route, query, body)
        except ApiError as err:
            self._send_json(err.code, err.status())
            self.server.requests.record(verb, resource, err.code, self.headers.get("User-Agent", ""))
            return
        except (BrokenPipeError, ConnectionResetError):
            return
        self.server.requests.record(verb, resource, 200, self.headers.get("User-Agent", ""))

    def _proxy(self, method: str, url: urllib.parse.SplitResult, body: bytes) -> int:
        """Relay a pods/proxy or nodes/proxy request and send the pod's (or kubelet's) reply."""
        proxy = self.server.proxy
        assert proxy is not None
        pod = _POD_PROXY.match(url.path)
        if pod is not None:
            namespace, name, path = (urllib.parse.unquote(part or "") for part in pod.groups())
            reply = proxy.pod(namespace, name, method, path, url.query, body)
        else:
            node = _NODE_PROXY.match(url.path)
            assert node is not None
            name, path = (urllib.parse.unquote(part or "") for part in node.groups())
            reply = proxy.node(name, method, path, url.query, body)
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)
        return reply.status

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _authorized(self) -> bool:
        header = self.headers.get("Authorization", "")
        return header.startswith("Bearer ") and self.server.authenticate(header[7:].strip())

    def _send_json(self, code: int, payload: dict, warnings: list[str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for warning in warnings or []:
            escaped = warning.replace("\\", "\\\\").replace('"', '\\"')
            self.send_header("Warning", f'299 - "{escaped}"')
        self.end_headers()
        self.wfile.write(data)

    def _send_text(self, code: int, text: str) -> None:
        data = text.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _inject_faults(self, route: Route) -> None:
        faults = self.server.faults.active()
        if faults.latency:
            time.sleep(faults.latency)
        if faults.draw_error():
            reason = {500: "InternalError", 503: "ServiceUnavailable", 504: "Timeout"}.get(
                faults.error_code, "InternalError"
            )
            raise ApiError(faults.error_code, reason, "lab fault: injected server error")
        if self.command in ("PUT", "PATCH") and faults.draw_conflict():
            raise ApiError(
                409,
                "Conflict",
                f"Operation cannot be fulfilled on {route.rtype.key} "
                f'"{route.name}": the object has been modified; please apply your changes to '
                "the latest version and try again",
            )

    # -- discovery ------------------------------------------------------------------------------
    def _static(self, path: str) -> dict | None:
        api = self.server.api
        parts = [p for p in path.split("/") if p]
        if parts == ["version"]:
            return discovery.version_info(api.kubernetes_version)
        if parts == ["api"]:
            return discovery.core_versions()
        if parts == ["apis"]:
            return discovery.group_list(api.types())
        if parts == ["api", "v1"]:
            return discovery.resource_list(api.types(), "", "v1")
        if len(parts) == 2 and parts[0] == "apis":
            return discovery.group(api.types(), parts[1]) or _missing()
        if len(parts) == 3 and parts[0] == "apis":
            return discovery.resource_list(api.types(), parts[1], parts[2]) or _missing()
        if parts == ["openapi", "v3"]:
            return discovery.openapi_v3_root(api.types())
        if parts[:2] == ["openapi", "v3"]:
            return discovery.openapi_v3_group(api.types(), "/".join(parts[2:]))
        return None

    def _route(self, path: str) -> Route:
        parts = [urllib.parse.unquote(p) for p in path.split("/") if p]
        if parts[:2] == ["api", "v1"]:
            group, version, rest = "", "v1", parts[2:]
        elif parts[:1] == ["apis"] and len(parts) >= 4:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise _missing_error()
        namespace = ""
        if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] not in ("status", "finalize"):
            namespace, rest = rest[1], rest[2:]
        if not rest or len(rest) > 3:
            raise _missing_error()
        rtype = self.server.api.find(group, version, rest[0])
        return Route(rtype, namespace, rest[1] if len(rest) > 1 else "", rest[2] if len(rest) > 2 else "")

    @staticmethod
    def _verb(method: str, route: Route, query: dict) -> str:
        if method == "GET":
            if not route.name:
                return "watch" if query.get("watch") in ("true", "1") else "list"
            return "get"
        if method == "DELETE" and not route.name:
            return "deletecollection"
        return _VERB_BY_METHOD[method]

    # -- resources ------------------------------------------------------------------------------
    def _dispatch(self, method: str, route: Route, query: dict, body: bytes) -> None:
        api = self.server.api
        opts = Options(
            dry_run=query.get("dryRun") == "All",
            field_manager=query.get("fieldManager", ""),
            force=query.get("force") in ("true", "1"),
            field_validation=query.get("fieldValidation", "Warn"),
        )
        if query.get("dryRun") not in (None, "All"):
            raise bad_request(f"Invalid dry run value: {query['dryRun']}")
        rtype, ns, name, sub = route.rtype, route.namespace, route.name, route.sub
        if not rtype.namespaced and ns:
            raise _missing_error()
        if method == "GET" and not name:
            if query.get("watch") in ("true", "1"):
                self._watch(route, query)
                return
            listing = api.list(rtype, ns or None, query.get("labelSelector"), query.get("fieldSelector"))
            if tables.wants_table(self.headers.get("Accept", "")):
                listing = tables.table(rtype.plural, listing["items"], listing["metadata"]["resourceVersion"])
            self._send_json(200, listing)
        elif method == "GET":
            payload = api.get_subresource(rtype, ns, name, sub) if sub else api.get(rtype, ns, name)
            if not sub and tables.wants_table(self.headers.get("Accept", "")):
                payload = tables.table(rtype.plural, [payload], payload["metadata"]["resourceVersion"])
            self._send_json(200, payload)
        elif method == "POST" and sub == "eviction":
            self._send_json(201, api.evict(ns, name, _json(body), opts))
        elif method == "POST" and not name:
            created = api.create(rtype, ns, _json(body), opts)
            self._send_json(201, created, opts.warnings)
        elif method == "PUT" and name:
            payload = (
                api.replace_subresource(rtype, ns, name, sub, _json(body), opts)
                if sub
                else api.replace(rtype, ns, name, _json(body), opts)
            )
            self._send_json(200, payload, opts.warnings)
        elif method == "PATCH" and name:
            content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip()
            code, payload = api.patch(rtype, ns, name, content_type, body, opts, sub)
            self._send_json(code, payload, opts.warnings)
        elif method == "DELETE" and name:
            options = _json(body) if body else {}
            if "propagationPolicy" in query:
                options["propagationPolicy"] = query["propagationPolicy"]
            self._send_json(200, api.delete(rtype, ns, name, options, opts))
        elif method == "DELETE":
            self._send_json(200, api.delete_collection(rtype, ns or None, query.get("labelSelector"), opts))
        else:
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")

    def _watch(self, route: Route, query: dict) -> None:
        """A watch stream: ADDED for the current state (no resourceVersion given), then changes."""
        api = self.server.api
        rtype, namespace = route.rtype, route.namespace
        labels_ok = selectors.label_matcher(query.get("labelSelector"))
        fields_ok = selectors.field_matcher(query.get("fieldSelector"))
        deadline = time.monotonic() + min(float(query.get("timeoutSeconds", 300)), 1800)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def wanted(obj: dict) -> bool:
            meta = obj["metadata"]
            return (
                (not namespace or meta.get("namespace") == namespace)
                and labels_ok(meta.get("labels") or {})
                and fields_ok(obj)
            )

        revision = int(query.get("resourceVersion") or 0)
        if not query.get("resourceVersion") or query.get("resourceVersion") == "0":
            listing = api.store.list(rtype.key)
            revision = api.store.revision
            for obj in listing:
                if wanted(obj):
                    self._chunk({"type": "ADDED", "object": obj})
        while time.monotonic() < deadline:
            for rev, event, obj in api.store.events_since(revision, rtype.key, timeout=1.0):
                revision = max(revision, rev)
                if wanted(obj):
                    self._chunk({"type": event, "object": obj})
        self.wfile.write(b"0\r\n\r\n")

    def _chunk(self, payload: dict) -> None:
        data = json.dumps(payload).encode() + b"\n"
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


def _proxy_resource(path: str) -> str | None:
    if _POD_PROXY.match(path):
        return "pods/proxy"
    if _NODE_PROXY.match(path):
        return "nodes/proxy"
    return None


def _json(body: bytes) -> dict:
    try:
        data = json.loads(body or b"{}")
    except json.JSONDecodeError as exc:
        raise bad_request(f"couldn't get version/kind; json parse error: {exc}") from exc
    if not isinstance(data, dict):
        raise bad_request("the body of the request was in an unknown format")
    return data


def _missing() -> dict:
    raise _missing_error()


def _missing_error() -> ApiError:
    return ApiError(HTTPStatus.NOT_FOUND, "NotFound", "the server could not find the requested resource")
