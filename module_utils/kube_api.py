"""A small Kubernetes API client for modules that run once per node in a rolling change.

Such a module makes a handful of requests, but it runs N times: importing the `kubernetes` package costs
about a third of a CPU second per run (its `__init__` imports every typed API and model), more than the
requests themselves. This client reads the kubeconfig as `kubectl` does for static credentials (bearer
token, token file, client certificate, basic auth; the CA from a file or inline; `tls-server-name`;
`insecure-skip-tls-verify`) and talks JSON over `http.client`. A kubeconfig that needs more (an `exec`
credential plugin, an `auth-provider`, a proxy, several files in `$KUBECONFIG`) is resolved by the
`kubernetes` package instead, imported only then, and its resolved credentials are used the same way.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import ssl
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

import yaml
from ansible.module_utils.basic import env_fallback

DEFAULT_KUBECONFIG = os.path.join("~", ".kube", "config")
# Answers that say "ask again later" (overload, a restarting API server or its load balancer).
TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})


class KubeConfigError(Exception):
    """The kubeconfig cannot be used: missing, unreadable, or without the context asked for."""


class KubeApiError(Exception):
    """The API server answered outside 2xx; `body` is its Status object (a dict) when it sent one."""

    def __init__(self, status: int, reason: str, body: Any) -> None:
        self.status, self.reason, self.body = status, reason, body
        super().__init__(f"{status} {reason}: {self.message}")

    @property
    def message(self) -> str:
        """The Status message with its causes' messages (a disruption budget says there which and why)."""
        if not isinstance(self.body, dict):
            return str(self.body or self.reason)
        causes = [c["message"] for c in (self.body.get("details") or {}).get("causes") or [] if "message" in c]
        return " ".join([str(self.body.get("message") or self.reason), *causes])


# What a request can raise: no answer at all (refused, reset, dropped, timed out, TLS), or KubeApiError.
NO_ANSWER = (OSError, http.client.HTTPException)
REQUEST_ERRORS = (KubeApiError, *NO_ANSWER)


@dataclass
class Endpoint:
    """Where the API server is and how to authenticate to it."""

    server: str
    ssl_context: ssl.SSLContext | None
    headers: dict[str, str] = field(default_factory=dict)
    server_hostname: str | None = None
    proxy: str | None = None


def _kubeconfig_paths(kubeconfig: str | None) -> list[str]:
    if kubeconfig:
        return [os.path.expanduser(kubeconfig)]
    from_env = os.environ.get("KUBECONFIG", "")
    paths = [p for p in from_env.split(os.pathsep) if p] or [DEFAULT_KUBECONFIG]
    return [os.path.expanduser(p) for p in paths]


def _named(items: list[dict[str, Any]] | None, name: str, what: str) -> dict[str, Any]:
    for item in items or []:
        if item.get("name") == name:
            return item.get(what) or {}
    raise KubeConfigError(f"the kubeconfig has no {what} named {name!r}")


def _data_file(data: str, directory: str) -> str:
    """Inline base64 data (`*-data` fields) as a file, since `ssl` loads certificates from files."""
    handle = tempfile.NamedTemporaryFile("wb", dir=directory, delete=False)  # noqa: SIM115 - lives with the run
    with handle:
        handle.write(base64.b64decode(data))
    return handle.name


def _relative(path: str, base: str) -> str:
    return path if os.path.isabs(path) else os.path.join(base, path)


def static_endpoint(path: str, context: str | None, scratch: str) -> Endpoint | None:
    """The endpoint of a kubeconfig with static credentials; None when it needs the `kubernetes` package."""
    try:
        with open(path) as handle:
            config = yaml.safe_load(handle) or {}
    except OSError as exc:
        raise KubeConfigError(f"cannot read the kubeconfig {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise KubeConfigError(f"the kubeconfig {path} is not valid YAML: {exc}") from None
    name = context or config.get("current-context")
    if not name:
        raise KubeConfigError(f"the kubeconfig {path} has no current-context; name a context")
    ctx = _named(config.get("contexts"), name, "context")
    cluster = _named(config.get("clusters"), ctx.get("cluster", ""), "cluster")
    user = _named(config.get("users"), ctx.get("user", ""), "user") if ctx.get("user") else {}
    if {"exec", "auth-provider"} & set(user) or cluster.get("proxy-url"):
        return None
    base = os.path.dirname(os.path.abspath(path))
    server = cluster.get("server") or ""
    if not server:
        raise KubeConfigError(f"the kubeconfig {path}: cluster of context {name!r} has no server")
    tls = None
    if urlsplit(server).scheme == "https":
        tls = ssl.create_default_context()
        if cluster.get("insecure-skip-tls-verify"):
            tls.check_hostname, tls.verify_mode = False, ssl.CERT_NONE
        elif cluster.get("certificate-authority-data"):
            tls.load_verify_locations(cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
        elif cluster.get("certificate-authority"):
            tls.load_verify_locations(cafile=_relative(cluster["certificate-authority"], base))
        cert = user.get("client-certificate") and _relative(user["client-certificate"], base)
        key = user.get("client-key") and _relative(user["client-key"], base)
        cert = _data_file(user["client-certificate-data"], scratch) if user.get("client-certificate-data") else cert
        key = _data_file(user["client-key-data"], scratch) if user.get("client-key-data") else key
        if cert:
            tls.load_cert_chain(cert, key or None)
    headers = {}
    token = user.get("token")
    if not token and user.get("tokenFile"):
        with open(_relative(user["tokenFile"], base)) as handle:
            token = handle.read().strip()
    if token:
        headers["Authorization"] = f"Bearer {token}"
    elif user.get("username"):
        basic = base64.b64encode(f"{user['username']}:{user.get('password', '')}".encode()).decode()
        headers["Authorization"] = f"Basic {basic}"
    return Endpoint(server.rstrip("/"), tls, headers, cluster.get("tls-server-name"))


def package_endpoint(kubeconfig: str | None, context: str | None) -> Endpoint:
    """The endpoint as the `kubernetes` package resolves it (credential plugins, auth providers, proxies)."""
    from kubernetes import config as k8s_config  # noqa: PLC0415 - imported only for such kubeconfigs

    configuration = k8s_config.new_client_from_config(
        config_file=kubeconfig, context=context, persist_config=False
    ).configuration
    return configuration_endpoint(configuration)


def configuration_endpoint(configuration: Any) -> Endpoint:
    """The endpoint of a `kubernetes.client.Configuration`, however it was loaded.

    The credentials are read first: a kubeconfig's refresh hook (credential plugins) runs when they are
    read and reloads the whole configuration. `auth_settings()` names the token as the client version
    stores it (`BearerToken` since kubernetes 35, `authorization` before).
    """
    headers = {
        ("Authorization" if entry["key"].lower() == "authorization" else entry["key"]): entry["value"]
        for entry in configuration.auth_settings().values()
        if entry.get("in") == "header" and entry.get("value")
    }
    if configuration.username and not headers:
        headers = {"Authorization": configuration.get_basic_auth_token()}
    tls = None
    if configuration.host.startswith("https"):
        tls = ssl.create_default_context(cafile=configuration.ssl_ca_cert)
        if not configuration.verify_ssl:
            tls.check_hostname, tls.verify_mode = False, ssl.CERT_NONE
        if configuration.cert_file:
            tls.load_cert_chain(configuration.cert_file, configuration.key_file)
    return Endpoint(
        configuration.host.rstrip("/"),
        tls,
        headers,
        getattr(configuration, "tls_server_name", None),
        configuration.proxy,
    )


class KubeApi:
    """JSON requests to one API server; watch streams as an iterator of events."""

    def __init__(
        self,
        kubeconfig: str | None = None,
        context: str | None = None,
        timeout: float = 30,
        endpoint: Endpoint | None = None,
        read_retries: int = 0,
    ) -> None:
        """From a kubeconfig (and context), or from an `endpoint` resolved by the caller.

        `read_retries`: how many times a GET that timed out, lost its connection or met a transient answer
        (TRANSIENT_STATUSES) is asked again, 1 s, 2 s, 4 s... apart. Reads only, unless a request says
        `idempotent`: a write that timed out may have been applied, and only its caller knows whether
        repeating it is safe.
        """
        self.timeout = timeout
        self.read_retries = read_retries
        self._scratch = tempfile.TemporaryDirectory(prefix="kube-api-")
        if endpoint is None:
            paths = _kubeconfig_paths(kubeconfig)
            endpoint = static_endpoint(paths[0], context, self._scratch.name) if len(paths) == 1 else None
        self.endpoint = endpoint or package_endpoint(kubeconfig, context)
        self._url = urlsplit(self.endpoint.server)
        self._connection: http.client.HTTPConnection | None = None

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
        self._scratch.cleanup()

    def _connect(self, timeout: float) -> http.client.HTTPConnection:
        host, port = self._url.hostname or "", self._url.port
        proxy = urlsplit(self.endpoint.proxy) if self.endpoint.proxy else None
        address = (proxy.hostname or "", proxy.port) if proxy else (host, port)
        if self._url.scheme == "https":
            connection: http.client.HTTPConnection = _HTTPSConnection(
                *address,
                timeout=timeout,
                context=self.endpoint.ssl_context,
                server_hostname=self.endpoint.server_hostname,
            )
        else:
            connection = http.client.HTTPConnection(*address, timeout=timeout)
        if proxy:
            connection.set_tunnel(host, port)
        return connection

    def _send(
        self,
        connection: http.client.HTTPConnection,
        method: str,
        target: str,
        body: Any,
        content_type: str,
        accept: str = "application/json",
    ) -> http.client.HTTPResponse:
        payload = None if body is None else json.dumps(body).encode()
        headers = {"Accept": accept, **self.endpoint.headers}
        if payload is not None:
            headers["Content-Type"] = content_type
        connection.request(method, target, body=payload, headers=headers)
        return connection.getresponse()

    def _target(self, path: str, query: list[tuple[str, Any]] | None) -> str:
        prefix = self._url.path.rstrip("/")
        return f"{prefix}{path}" + (f"?{urlencode(query)}" if query else "")

    def request(
        self,
        method: str,
        path: str,
        query: list[tuple[str, Any]] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        idempotent: bool = False,
    ) -> Any:
        """The decoded JSON answer; KubeApiError outside 2xx. Reads are retried as `read_retries` says, and so
        are writes the caller declares `idempotent` (a DELETE, an eviction: asking twice does no harm)."""
        target = self._target(path, query)
        for attempt in range(self.read_retries if method == "GET" or idempotent else 0):
            try:
                return _decoded(*self._exchange(method, target, body, content_type))
            except REQUEST_ERRORS as error:
                if not is_transient(error):
                    raise
            time.sleep(2**attempt)
        return _decoded(*self._exchange(method, target, body, content_type))

    def fetch(self, path: str, accept: str) -> tuple[int, str, bytes]:
        """GET `path` (its query included) once: (status, Content-Type, body) whatever the status."""
        response, data = self._exchange("GET", self._target(path, None), None, "", accept)
        return response.status, response.getheader("Content-Type") or "", data

    def _exchange(
        self, method: str, target: str, body: Any, content_type: str, accept: str = "application/json"
    ) -> tuple[http.client.HTTPResponse, bytes]:
        """One request on the kept-alive connection; a connection the server had dropped is reopened once."""
        for attempt in (1, 2):
            if self._connection is None:
                self._connection = self._connect(self.timeout)
            try:
                response = self._send(self._connection, method, target, body, content_type, accept)
                data = response.read()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self._drop_connection()
                if attempt == 2:
                    raise
            except (TimeoutError, OSError, http.client.HTTPException):
                self._drop_connection()  # half-read: the connection cannot carry another request
                raise
        return response, data

    def _drop_connection(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def watch(
        self, collection: str, query: list[tuple[str, Any]], seconds: int, timeout: float
    ) -> Iterator[dict[str, Any]]:
        """Watch events of `collection` (a list path) for up to `seconds`, on a connection of their own."""
        connection = self._connect(timeout)
        try:
            watch_query = [("watch", "true"), *query, ("timeoutSeconds", seconds)]
            response = self._send(connection, "GET", self._target(collection, watch_query), None, "")
            if not 200 <= response.status <= 299:
                _decoded(response, response.read())
            for line in response:
                if line.strip():
                    yield json.loads(line)
        finally:
            connection.close()


class _HTTPSConnection(http.client.HTTPSConnection):
    """HTTPS with the certificate checked against `tls-server-name` when the kubeconfig gives one."""

    def __init__(self, *args: Any, server_hostname: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._server_hostname = server_hostname

    def connect(self) -> None:
        if not self._server_hostname:
            super().connect()
            return
        http.client.HTTPConnection.connect(self)
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self._server_hostname)


def _decoded(response: http.client.HTTPResponse, data: bytes) -> Any:
    try:
        decoded = json.loads(data) if data else None
    except ValueError:
        decoded = data.decode(errors="replace")
    if not 200 <= response.status <= 299:
        raise KubeApiError(response.status, response.reason, decoded)
    return decoded


def is_transient(error: BaseException) -> bool:
    """Whether asking again later may succeed: a "come back later" answer (TRANSIENT_STATUSES), or no answer
    at all (refused, reset, dropped, timed out). A certificate the client rejects is not transient."""
    if isinstance(error, KubeApiError):
        return error.status in TRANSIENT_STATUSES
    if isinstance(error, ssl.SSLCertVerificationError):
        return False
    return isinstance(error, NO_ANSWER)


# Connection options as kubernetes.core names them, with its K8S_AUTH_* environment fallbacks.
AUTH_ARGUMENT_SPEC: dict[str, Any] = {
    "kubeconfig": {"type": "raw", "no_log": False, "fallback": (env_fallback, ["K8S_AUTH_KUBECONFIG"])},
    "context": {"type": "str", "fallback": (env_fallback, ["K8S_AUTH_CONTEXT"])},
    "host": {"type": "str", "fallback": (env_fallback, ["K8S_AUTH_HOST"])},
    "api_key": {"type": "str", "no_log": True, "fallback": (env_fallback, ["K8S_AUTH_API_KEY"])},
    "validate_certs": {"type": "bool", "aliases": ["verify_ssl"], "fallback": (env_fallback, ["K8S_AUTH_VERIFY_SSL"])},
    "ca_cert": {"type": "path", "aliases": ["ssl_ca_cert"], "fallback": (env_fallback, ["K8S_AUTH_SSL_CA_CERT"])},
    "client_cert": {"type": "path", "aliases": ["cert_file"], "fallback": (env_fallback, ["K8S_AUTH_CERT_FILE"])},
    "client_key": {"type": "path", "aliases": ["key_file"], "fallback": (env_fallback, ["K8S_AUTH_KEY_FILE"])},
}


def api_from_options(auth: dict[str, Any], timeout: float) -> KubeApi:
    """A client from kubernetes.core-style options.

    A kubeconfig file (or the default one) with an optional context is read directly, as most runs
    give; every other form is resolved as kubernetes.core does, with the `kubernetes` package: host
    with api_key (or a client certificate) on its own, an inline kubeconfig dict, the in-cluster
    service account when nothing is given inside a pod, and the explicit options overriding what the
    kubeconfig says.
    """
    overrides = ("host", "api_key", "ca_cert", "client_cert", "client_key", "validate_certs")
    kubeconfig = auth.get("kubeconfig")
    in_cluster = not kubeconfig and not auth.get("context") and os.environ.get("KUBERNETES_SERVICE_HOST")
    if not isinstance(kubeconfig, dict) and not in_cluster and all(auth.get(key) is None for key in overrides):
        return KubeApi(kubeconfig, auth.get("context"), timeout)
    return KubeApi(timeout=timeout, endpoint=configuration_endpoint(package_configuration(auth)))


def package_configuration(auth: dict[str, Any]) -> Any:
    """A `kubernetes.client.Configuration` as kubernetes.core builds it from these options."""
    import kubernetes  # noqa: PLC0415 - only the forms a kubeconfig file cannot express need it

    try:
        return _package_configuration(kubernetes, auth)
    except kubernetes.config.ConfigException as error:
        raise KubeConfigError(str(error)) from None


def _package_configuration(kubernetes: Any, auth: dict[str, Any]) -> Any:
    configuration = kubernetes.client.Configuration()
    self_sufficient = auth.get("host") and (auth.get("api_key") or (auth.get("client_cert") and auth.get("client_key")))
    kubeconfig = auth.get("kubeconfig")
    if self_sufficient:
        pass
    elif isinstance(kubeconfig, dict):
        kubernetes.config.load_kube_config_from_dict(
            kubeconfig, context=auth.get("context"), client_configuration=configuration
        )
    elif kubeconfig or auth.get("context") or not os.environ.get("KUBERNETES_SERVICE_HOST"):
        kubernetes.config.load_kube_config(
            config_file=os.path.expanduser(kubeconfig) if kubeconfig else None,
            context=auth.get("context"),
            client_configuration=configuration,
        )
    else:
        kubernetes.config.load_incluster_config(client_configuration=configuration)
    if configuration.refresh_api_key_hook is not None:
        # A credential plugin's hook reloads the kubeconfig whenever the token is read, which would undo the
        # overrides below: take its token once (a module run is short) and drop the hook.
        configuration.refresh_api_key_hook(configuration)
        configuration.refresh_api_key_hook = None
    overrides = {
        "host": "host",
        "ca_cert": "ssl_ca_cert",
        "client_cert": "cert_file",
        "client_key": "key_file",
        "validate_certs": "verify_ssl",
    }
    for option, attribute in overrides.items():
        if auth.get(option) is not None:
            setattr(configuration, attribute, auth[option].rstrip("/") if option == "host" else auth[option])
    if auth.get("api_key"):
        configuration.api_key = {"BearerToken": f"Bearer {auth['api_key']}"}
    return configuration
