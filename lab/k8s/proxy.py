"""The `proxy` subresource of pods and nodes: the API server relays a request to the pod or kubelet.

As kubernetes pkg/registry/core/pod (ResourceLocation) and node: the name may carry a port and a
scheme (`pod`, `pod:port`, `https:pod:port`); without a port the pod's first container port is
used; a pod without an IP is refused (400 "address not allowed"); a pod that is not found is 404;
a connection that cannot be made is 503 ServiceUnavailable "error trying to reach service: dial tcp
<ip>:<port>: connect: connection refused". The reply of the pod passes through unchanged.

Where the lab serves a pod's `ip:port` comes from its pod network (`resolve`); the lab's node
addresses are loopback addresses standing in for real node IPs, so they count as proxyable.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import requests
import urllib3

from lab.k8s.errors import ApiError, bad_request, not_found

Resolve = Callable[[str], str | None]  # "ip:port" -> "host:port" that serves it, or None
_SCHEMES = ("", "http", "https")
_TIMEOUT = 10.0


@dataclass
class ProxyReply:
    status: int
    content_type: str
    body: bytes


def split_scheme_name_port(identifier: str) -> tuple[str, str, str]:
    """utilnet.SplitSchemeNamePort: `name`, `name:port` or `scheme:name:port`."""
    parts = identifier.split(":")
    if len(parts) == 1:
        scheme, name, port = "", parts[0], ""
    elif len(parts) == 2:
        scheme, name, port = "", parts[0], parts[1]
    elif len(parts) == 3:
        scheme, name, port = parts
    else:
        raise bad_request(f"invalid request {identifier!r}")
    if not name or scheme not in _SCHEMES:
        raise bad_request(f"invalid request {identifier!r}")
    return scheme or "http", name, port


class Proxy:
    def __init__(self, get: Callable[[str, str, str], dict | None], resolve: Resolve, kubelet_token: str) -> None:
        self.get = get
        self.resolve = resolve
        self.kubelet_token = kubelet_token

    def pod(self, namespace: str, identifier: str, method: str, path: str, query: str, body: bytes) -> ProxyReply:
        scheme, name, port = split_scheme_name_port(identifier)
        pod = self.get("pods", namespace, name)
        if pod is None:
            raise not_found("pods", "", name)
        if not port:
            port = next(
                (
                    str(p["containerPort"])
                    for c in (pod.get("spec") or {}).get("containers") or []
                    for p in c.get("ports") or []
                ),
                "",
            )
        ip = (pod.get("status") or {}).get("podIP", "")
        if not ip:
            raise bad_request("address not allowed")
        address = f"{ip}:{port}" if port else ip
        served = self.resolve(address) or (address if ip.startswith("127.") else None)
        return self._relay(scheme, address, served, method, path, query, body, {})

    def node(self, identifier: str, method: str, path: str, query: str, body: bytes) -> ProxyReply:
        scheme, name, port = split_scheme_name_port(identifier)
        node = self.get("nodes", "", name)
        if node is None:
            raise not_found("nodes", "", name)
        status = node.get("status") or {}
        ip = next((a["address"] for a in status.get("addresses") or [] if a.get("type") == "InternalIP"), "")
        port = port or str(((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port", 10250))
        scheme = "https" if scheme == "http" and not identifier.startswith("http:") else scheme
        address = f"{ip}:{port}"
        headers = {"Authorization": f"Bearer {self.kubelet_token}"}
        return self._relay(scheme, address, address, method, path, query, body, headers)

    @staticmethod
    def _relay(
        scheme: str,
        address: str,
        served: str | None,
        method: str,
        path: str,
        query: str,
        body: bytes,
        headers: dict[str, str],
    ) -> ProxyReply:
        refused = ApiError(
            503,
            "ServiceUnavailable",
            f"error trying to reach service: dial tcp {address}: connect: connection refused",
        )
        if served is None:
            raise refused
        url = f"{scheme}://{served}{path or '/'}" + (f"?{query}" if query else "")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
                reply = requests.request(
                    method, url, data=body or None, headers=headers, timeout=_TIMEOUT, verify=False
                )
        except requests.ConnectionError as exc:
            raise refused from exc
        except requests.Timeout as exc:
            raise ApiError(
                503, "ServiceUnavailable", f"error trying to reach service: dial tcp {address}: i/o timeout"
            ) from exc
        return ProxyReply(reply.status_code, reply.headers.get("Content-Type", "text/plain"), reply.content)
