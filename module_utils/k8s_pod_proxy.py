"""GET a pod's own HTTP endpoint through the Kubernetes API server's pod proxy subresource.

`GET /api/v1/namespaces/<ns>/pods/[<scheme>:]<pod>:<port>/proxy/<path>` reaches what a container serves
(Alloy's `/-/ready`, the OTel Collector's health check, any `/metrics`) with nothing but the kubeconfig:
no port-forward, no route to pod IPs, and whatever authentication the kubeconfig uses. The API server
passes the pod's status code and body through; when it cannot reach the pod it answers 503 itself with a
`Status` object.

The client is module_utils/kube_api's: the module runs in every verification of every collector, and
the `kubernetes` package's import alone would cost more than the request; kubeconfigs that need that
package (credential plugins, auth providers, proxies) are still resolved by it.
"""

from __future__ import annotations

import http.client
import json
import math
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from ansible.module_utils.kube_api import KubeApi, KubeConfigError, api_from_options

# Characters of a proxied path sent as they are: the path's own separators and RFC 3986 unreserved ones.
_PATH_SAFE = "/-._~:@!$&'()*+,;="
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_SAMPLE = re.compile(
    r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})?\s+(?P<value>\S+)(?:\s+-?\d+)?\s*$",
)
_LABEL_PAIR = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')
_LABEL_ESCAPES = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}
BODY_EXCERPT_CHARS = 300


class PodProxyError(Exception):
    """The request could not be made or answered (no API server, TLS failure, timeout)."""


@dataclass(frozen=True)
class ProxyTarget:
    namespace: str
    pod: str
    port: int
    path: str = "/"
    scheme: str = "http"

    def validate(self) -> None:
        if not _DNS_LABEL.match(self.namespace):
            raise ValueError(f"namespace {self.namespace!r} is not a DNS label")
        if not _DNS_SUBDOMAIN.match(self.pod) or len(self.pod) > 253:
            raise ValueError(f"pod {self.pod!r} is not a valid pod name")
        if not 1 <= self.port <= 65535:
            raise ValueError(f"port {self.port} is not a TCP port (1-65535)")
        if self.scheme not in ("http", "https"):
            raise ValueError(f"scheme {self.scheme!r} is neither http nor https")

    def api_path(self, query: dict[str, Any] | None = None) -> str:
        """The API server path of this target; the pod part carries the scheme only for https, as kubectl does."""
        pod = f"{self.pod}:{self.port}" if self.scheme == "http" else f"https:{self.pod}:{self.port}"
        path = quote(self.path.lstrip("/"), safe=_PATH_SAFE)
        url = f"/api/v1/namespaces/{self.namespace}/pods/{pod}/proxy/{path}"
        if query:
            url += "?" + urlencode(query, doseq=True)
        return url

    def describe(self) -> str:
        return f"pod {self.namespace}/{self.pod} port {self.port} path /{self.path.lstrip('/')}"


@dataclass(frozen=True)
class ProxyResponse:
    status: int
    body: str
    content_type: str

    def json(self) -> Any:
        """The body decoded as JSON, or None when it is not JSON (a plain-text health answer, metrics)."""
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def excerpt(self) -> str:
        text = " ".join(self.body.split())
        return text if len(text) <= BODY_EXCERPT_CHARS else text[:BODY_EXCERPT_CHARS] + "..."


def api_client(auth: dict[str, Any], timeout: float) -> KubeApi:
    """A client from the module's kubernetes.core-style connection options (see kube_api.api_from_options)."""
    try:
        return api_from_options(auth, timeout)
    except (KubeConfigError, ImportError) as error:
        raise PodProxyError(f"could not configure the Kubernetes client: {error}") from error


def proxy_get(client: KubeApi, target: ProxyTarget, query: dict[str, Any] | None) -> ProxyResponse:
    """One GET through the pod proxy; every status comes back as a response, only transport failures raise."""
    path = target.api_path(query)
    try:
        status, content_type, raw = client.fetch(path, accept="application/json, text/plain, */*")
    except (OSError, http.client.HTTPException) as error:  # refused, reset, TLS, timed out: no answer
        raise PodProxyError(f"GET {path} failed: {error}") from error
    return ProxyResponse(status=status, body=raw.decode("utf-8", errors="replace"), content_type=content_type)


def failure_message(target: ProxyTarget, response: ProxyResponse, expected: list[int]) -> str:
    """What an operator needs: which pod and port, what it answered, and the API server's reason if it was its."""
    status = response.json()
    if isinstance(status, dict) and status.get("kind") == "Status":
        said = f"the API server answered {response.status}: {status.get('message', '')}"
    else:
        said = f"it answered {response.status}: {response.excerpt() or '(empty body)'}"
    return f"{target.describe()}: expected status {', '.join(map(str, expected))}, {said}"


def _label_value(raw: str) -> str:
    return re.sub(r'\\[\\"n]', lambda m: _LABEL_ESCAPES[m.group(0)], raw)


def parse_samples(text: str, names: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Samples of the named metrics in a Prometheus text exposition: {name: [{labels, value}]}."""
    wanted = set(names)
    samples: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if not match or match.group("name") not in wanted:
            continue
        labels = {key: _label_value(value) for key, value in _LABEL_PAIR.findall(match.group("labels") or "")}
        samples[match.group("name")].append({"labels": labels, "value": _sample_value(match.group("value"))})
    return samples


def _sample_value(raw: str) -> float:
    special = {"+Inf": math.inf, "-Inf": -math.inf, "NaN": math.nan}
    return special[raw] if raw in special else float(raw)
