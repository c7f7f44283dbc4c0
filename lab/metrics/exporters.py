"""Per-node metric endpoints on each node's own loopback address, plus kube-state-metrics.

Per node: kubelet https `:<kubelet_port>` (`/metrics`, `/metrics/cadvisor`, bearer token), the
standalone cAdvisor `:<cadvisor_port>/metrics` (slow, slower with more pods; only while its DaemonSet
exists), node-exporter `:<node_exporter_port>/metrics` (while its DaemonSet exists) and containerd
`/v1/metrics` on the address the node's CRI config names (only once told). One kube-state-metrics
endpoint on 127.0.0.1 while its Deployment exists, and one endpoint for the seeded applications'
own /metrics (which pod is asked comes in the `pod` URL parameter the pod network adds).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs

from lab.metrics import series
from lab.metrics.config import MetricsConfig
from lab.metrics.exposition import CONTENT_TYPE, Family, render
from lab.metrics.httpserve import Endpoint, Request, Response, text
from lab.metrics.tls import CertificateAuthority

Authenticate = Callable[[str], bool]
# (token, kubelet subresource) -> None when allowed, else the kubelet's Forbidden message.
Authorize = Callable[[str, str], str | None]
# Hosts in a CRI metrics address that mean "this node itself".
_NODE_LOCAL_HOSTS = ("", "0.0.0.0", "127.0.0.1", "localhost", "[::]", "::")
# Counters start as if the lab had been up for an hour, so first scrapes look like a live node.
_WARM_SECONDS = 3600.0


@dataclass(frozen=True)
class NodeInfo:
    name: str
    address: str


@dataclass(frozen=True)
class ClusterView:
    """The cluster state the endpoints serve; the plane rebuilds it after every store change."""

    nodes: tuple[NodeInfo, ...] = ()
    node_objects: list[dict] = field(default_factory=list)
    pods: list[dict] = field(default_factory=list)
    deployments: list[dict] = field(default_factory=list)
    daemonsets: list[dict] = field(default_factory=list)
    statefulsets: list[dict] = field(default_factory=list)
    cadvisor: bool = False
    node_exporter: bool = False
    kube_state_metrics: bool = False

    def pods_on(self, node: str) -> list[dict]:
        return [pod for pod in self.pods if pod.get("spec", {}).get("nodeName") == node]


@dataclass(frozen=True)
class EndpointState:
    kind: str
    node: str
    url: str
    serving: bool


def bearer_token(request: Request) -> str | None:
    scheme, _, token = (request.header("Authorization") or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def kubelet_subresource(path: str) -> str:
    """The `nodes/<subresource>` the kubelet authorizes a request path as (pkg/kubelet/server/auth.go)."""
    for prefix, subresource in (("/stats", "stats"), ("/metrics", "metrics"), ("/logs", "log"), ("/spec", "spec")):
        if path == prefix or path.startswith(prefix + "/"):
            return subresource
    return "proxy"


def _metrics(families: list[Family]) -> Response:
    return Response(200, render(families), CONTENT_TYPE)


@dataclass
class _NodeEndpoints:
    info: NodeInfo
    kubelet: Endpoint
    cadvisor: Endpoint
    node_exporter: Endpoint
    containerd: Endpoint | None = None

    def all(self) -> list[tuple[str, Endpoint]]:
        found = [
            ("kubelet", self.kubelet),
            ("cadvisor", self.cadvisor),
            ("node-exporter", self.node_exporter),
        ]
        return found + ([("containerd", self.containerd)] if self.containerd else [])


class Exporters:
    """Opens and closes the endpoints to match the cluster view; serves values computed per scrape."""

    def __init__(
        self, config: MetricsConfig, run_dir: Path, authenticate: Authenticate, authorize: Authorize | None = None
    ) -> None:
        self.config = config
        self.authenticate = authenticate
        self.authorize = authorize
        self.certificates = CertificateAuthority.create(run_dir / "pki")
        self.started = time.time() - _WARM_SECONDS
        self._view = ClusterView()
        self._nodes: dict[str, _NodeEndpoints] = {}
        self._containerd_addresses: dict[str, str] = {}
        self._lock = threading.RLock()
        self.kube_state_metrics = Endpoint("127.0.0.1", config.ksm_port, self._serve_ksm)
        self.applications = Endpoint("127.0.0.1", 0, self._serve_application)

    @property
    def ca_file(self) -> Path:
        return self.certificates.ca_file

    # --- lifecycle -------------------------------------------------------------------------------

    def sync(self, view: ClusterView) -> None:
        """Serve exactly what the view asks for."""
        with self._lock:
            self._view = view
            wanted = {node.name: node for node in view.nodes}
            for name in list(self._nodes):
                if name not in wanted or self._nodes[name].info != wanted[name]:
                    self._close_node(name)
            for name, info in wanted.items():
                self._nodes.setdefault(name, self._node_endpoints(info))
                self._apply(self._nodes[name], view)
            self._toggle(self.kube_state_metrics, view.kube_state_metrics)
            self._toggle(self.applications, bool(self.config.app_namespaces))

    def set_containerd_address(self, node: str, address: str | None) -> None:
        """Serve (address "host:port") or stop containerd's /v1/metrics for a node.

        A loopback or wildcard host means the node's own address, as it would on the real node.
        """
        with self._lock:
            if address is None:
                self._containerd_addresses.pop(node, None)
            else:
                self._containerd_addresses[node] = address
            if node in self._nodes:
                self._apply(self._nodes[node], self._view)

    def stop(self) -> None:
        with self._lock:
            for name in list(self._nodes):
                self._close_node(name)
            self.kube_state_metrics.close()
            self.applications.close()

    def endpoints(self) -> list[EndpointState]:
        with self._lock:
            states = [
                EndpointState(kind, name, endpoint.url, endpoint.is_open)
                for name, node in sorted(self._nodes.items())
                for kind, endpoint in node.all()
            ]
            states.append(
                EndpointState("kube-state-metrics", "", self.kube_state_metrics.url, self.kube_state_metrics.is_open)
            )
            return states

    def _node_endpoints(self, info: NodeInfo) -> _NodeEndpoints:
        tls = self.certificates.server_context(info.name, info.address)
        return _NodeEndpoints(
            info=info,
            kubelet=Endpoint(info.address, self.config.kubelet_port, lambda r: self._serve_kubelet(info, r), tls),
            cadvisor=Endpoint(info.address, self.config.cadvisor_port, lambda r: self._serve_cadvisor(info, r)),
            node_exporter=Endpoint(info.address, self.config.node_exporter_port, lambda r: self._serve_node(info, r)),
        )

    def _apply(self, node: _NodeEndpoints, view: ClusterView) -> None:
        node.kubelet.open()
        self._toggle(node.cadvisor, view.cadvisor)
        self._toggle(node.node_exporter, view.node_exporter)
        wanted = self._containerd_bind(node.info)
        current = (node.containerd.host, node.containerd.port) if node.containerd else None
        if current != wanted and node.containerd is not None:
            node.containerd.close()
            node.containerd = None
        if wanted is not None and node.containerd is None:
            node.containerd = Endpoint(*wanted, lambda r: self._serve_containerd(node.info, r))
            node.containerd.open()

    def _containerd_bind(self, info: NodeInfo) -> tuple[str, int] | None:
        address = self._containerd_addresses.get(info.name)
        if address is None:
            return None
        host, _, port = address.rpartition(":")
        return (info.address if host in _NODE_LOCAL_HOSTS else host.strip("[]")), int(port)

    @staticmethod
    def _toggle(endpoint: Endpoint, serve: bool) -> None:
        if serve:
            endpoint.open()
        else:
            endpoint.close()

    def _close_node(self, name: str) -> None:
        for _, endpoint in self._nodes.pop(name).all():
            endpoint.close()

    # --- handlers --------------------------------------------------------------------------------

    # Handlers read the view without the lock: sync() replaces it whole, and holds the lock while it
    # closes and opens endpoints (slow with many nodes rebooting), which must not stall every scrape.
    def _containers(self, node: str) -> list[series.Container]:
        return series.running_containers(self._view.pods_on(node))

    def _uptime(self) -> tuple[float, float]:
        now = time.time()
        return now, now - self.started

    def _serve_kubelet(self, info: NodeInfo, request: Request) -> Response:
        token = bearer_token(request)
        if token is None or not self.authenticate(token):
            return text(401, "Unauthorized")
        denied = self.authorize(token, kubelet_subresource(request.path)) if self.authorize else None
        if denied:
            return text(403, denied)
        now, uptime = self._uptime()
        containers = self._containers(info.name)
        if request.path == "/metrics/cadvisor":
            return _metrics(series.cadvisor_families(containers, now, uptime, series.kubelet_cadvisor_labels))
        if request.path == "/metrics":
            return _metrics(series.kubelet_families(info.name, containers, uptime))
        return text(404, "404 page not found")

    def _serve_cadvisor(self, info: NodeInfo, request: Request) -> Response:
        if request.path != "/metrics":
            return text(404, "404 page not found")
        containers = self._containers(info.name)
        pods = {(c.namespace, c.pod) for c in containers}
        # The legacy cAdvisor walks every cgroup on each scrape: its latency grows with the pods.
        time.sleep(len(pods) * self.config.cadvisor_seconds_per_pod)
        now, uptime = self._uptime()
        return _metrics(series.cadvisor_families(containers, now, uptime, series.standalone_cadvisor_labels))

    def _serve_node(self, info: NodeInfo, request: Request) -> Response:
        if request.path != "/metrics":
            return text(404, "404 page not found")
        now, uptime = self._uptime()
        return _metrics(series.node_exporter_families(info.name, info.address, now, uptime))

    def _serve_containerd(self, info: NodeInfo, request: Request) -> Response:
        if request.path != "/v1/metrics":
            return text(404, "404 page not found")
        now, uptime = self._uptime()
        return _metrics(series.containerd_families(self._containers(info.name), now, uptime))

    def _serve_application(self, request: Request) -> Response:
        if request.path != "/metrics":
            return text(404, "404 page not found")
        namespace, _, name = parse_qs(request.raw_query).get("pod", [""])[0].partition("/")
        pod = next(
            (
                p
                for p in self._view.pods
                if p["metadata"].get("namespace") == namespace and p["metadata"]["name"] == name
            ),
            None,
        )
        if pod is None:
            return text(404, "404 page not found")
        now, uptime = self._uptime()
        return _metrics(series.application_families(pod, now, uptime))

    def _serve_ksm(self, request: Request) -> Response:
        if request.path != "/metrics":
            return text(404, "404 page not found")
        view = self._view
        return _metrics(
            series.ksm_pod_families(view.pods)
            + series.ksm_node_families(view.node_objects)
            + series.ksm_workload_families(view.deployments, view.daemonsets, view.statefulsets)
        )
