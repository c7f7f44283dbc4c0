"""The metrics plane: storage Prometheus, Mimir front, node endpoints and the legacy HA agents,
kept in step with the lab's cluster state."""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from lab.collectors.network import Route
from lab.metrics import legacy
from lab.metrics.config import MetricsConfig
from lab.metrics.exporters import Authenticate, Authorize, ClusterView, Exporters, NodeInfo
from lab.metrics.mimir import MimirFront
from lab.metrics.prometheus import PrometheusError, PrometheusProcess, duration, start_agent, start_storage

log = logging.getLogger(__name__)

StoreCallback = Callable[[str, str, dict], None]
PublishRoutes = Callable[[dict[str, Route]], None]
KSM_IMAGE = "kube-state-metrics"
PROMETHEUSES = "prometheuses.monitoring.coreos.com"
WATCHED = frozenset({"nodes", "pods", "daemonsets.apps", "deployments.apps", "statefulsets.apps", PROMETHEUSES})


class ClusterStore(Protocol):
    """What the plane needs from the lab's Kubernetes state."""

    def list(self, resource: str, namespace: str | None = None) -> list[dict]: ...

    def subscribe(self, callback: StoreCallback) -> None: ...


@dataclass(frozen=True)
class Component:
    name: str
    address: str
    healthy: bool

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "address": self.address, "healthy": self.healthy}


def _is_app(resource: dict, app: str) -> bool:
    meta = resource.get("metadata", {})
    labels = meta.get("labels") or {}
    name = meta.get("name", "")
    return app in (labels.get("app.kubernetes.io/name"), labels.get("app"), name) or name.endswith(f"-{app}")


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _flag(args: list[str], name: str) -> str | None:
    return next((str(a).split("=", 1)[1] for a in args if str(a).startswith(f"{name}=")), None)


def node_addresses(nodes: list[dict]) -> tuple[NodeInfo, ...]:
    """Each node's loopback address: its InternalIP when that is in 127.0.0.0/8, else 127.0.10.<n>."""
    infos = []
    for index, node in enumerate(sorted(nodes, key=lambda item: item["metadata"]["name"])):
        internal = next(
            (a.get("address") for a in node.get("status", {}).get("addresses") or [] if a.get("type") == "InternalIP"),
            None,
        )
        loopback = internal is not None and ipaddress.ip_address(internal) in ipaddress.ip_network("127.0.0.0/8")
        infos.append(NodeInfo(node["metadata"]["name"], internal if loopback else f"127.0.10.{index + 1}"))
    return tuple(infos)


def cluster_view(store: ClusterStore, config: MetricsConfig) -> ClusterView:
    nodes = store.list("nodes")
    daemonsets = store.list("daemonsets.apps")
    deployments = store.list("deployments.apps")
    legacy_daemonsets = [d for d in daemonsets if d["metadata"].get("namespace") == config.legacy_namespace]
    return ClusterView(
        nodes=node_addresses(nodes),
        node_objects=nodes,
        pods=store.list("pods"),
        deployments=deployments,
        daemonsets=daemonsets,
        statefulsets=store.list("statefulsets.apps"),
        cadvisor=any(_is_app(d, "cadvisor") for d in legacy_daemonsets),
        node_exporter=any(_is_app(d, "prometheus-node-exporter") for d in legacy_daemonsets),
        kube_state_metrics=any(_is_app(d, "kube-state-metrics") for d in deployments),
    )


class MetricsPlane:
    """Runs the metrics plane and reconciles it with the store after every change.

    `authenticate(token)` decides the kubelets' bearer tokens; `scrape_token` is the token the legacy
    Prometheus replicas present (their ServiceAccount's).
    """

    def __init__(
        self,
        store: ClusterStore,
        config: MetricsConfig,
        run_dir: Path,
        authenticate: Authenticate,
        scrape_token: str,
        publish_routes: PublishRoutes | None = None,
        authorize: Authorize | None = None,
    ) -> None:
        self.store, self.config, self.run_dir = store, config, Path(run_dir)
        self.authenticate, self.scrape_token = authenticate, scrape_token
        self.publish_routes = publish_routes
        self.authorize = authorize
        self.exporters: Exporters | None = None
        self.storage: PrometheusProcess | None = None
        self.mimir: MimirFront | None = None
        self.agents: dict[str, PrometheusProcess] = {}
        self.last_error: str | None = None
        self._containerd_addresses: dict[str, str] = {}
        self._dirty = threading.Event()
        self._stopping = threading.Event()
        self._worker: threading.Thread | None = None
        self._lock = threading.Lock()

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._stopping.clear()
        try:
            self.exporters = Exporters(self.config, self.run_dir, self.authenticate, self.authorize)
            for node, address in self._containerd_addresses.items():
                self.exporters.set_containerd_address(node, address)
            self.mimir = MimirFront(self.config, f"http://127.0.0.1:{self.config.storage_port}")
            self.mimir.start()
            self.storage = start_storage(
                self.run_dir / "storage",
                self.config.storage_port,
                self._storage_config(self.mimir.endpoint.address),
                self.config.storage_retention,
                self.config.ready_timeout_seconds,
            )
            self.reconcile()
        except BaseException:
            self.stop()
            raise
        self.store.subscribe(self._on_change)
        self._worker = threading.Thread(target=self._run, name="metrics-plane", daemon=True)
        self._worker.start()

    def stop(self) -> None:
        """Stop everything, agents before the Mimir front and the storage."""
        self._stopping.set()
        self._dirty.set()
        if self._worker is not None:
            self._worker.join(timeout=60)
            self._worker = None
        with self._lock:
            for name in list(self.agents):
                self.agents.pop(name).stop()
            if self.mimir is not None:
                self.mimir.stop()
            if self.storage is not None:
                self.storage.stop()
            if self.exporters is not None:
                self.exporters.stop()

    def status(self) -> list[dict[str, Any]]:
        components = []
        if self.storage is not None:
            components.append(Component("storage", self.storage.url, self.storage.running() and self.storage.ready()))
        if self.mimir is not None:
            components.append(Component("mimir", self.mimir.url, self.mimir.endpoint.is_open))
        for name, agent in sorted(self.agents.items()):
            components.append(Component(name, agent.url, agent.running() and agent.ready()))
        if self.exporters is not None:
            components += [
                Component(f"{state.kind}/{state.node}" if state.node else state.kind, state.url, True)
                for state in self.exporters.endpoints()
                if state.serving
            ]
        return [component.as_dict() for component in components]

    def set_containerd_address(self, node: str, address: str | None) -> None:
        """Serve containerd's /v1/metrics for a node at the CRI config's address (None: stop).

        May be called before `start()`, e.g. for nodes whose machine config already has the patch.
        """
        if address is None:
            self._containerd_addresses.pop(node, None)
        else:
            self._containerd_addresses[node] = address
        if self.exporters is not None:
            self.exporters.set_containerd_address(node, address)

    # --- reconciling -----------------------------------------------------------------------------

    def _on_change(self, _event: str, resource: str, _obj: dict) -> None:
        if resource in WATCHED:
            self._dirty.set()

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._dirty.wait()
            self._dirty.clear()
            if self._stopping.is_set():
                return
            try:
                self.reconcile()
            except Exception as error:  # the plane must outlive one bad reconcile
                self.last_error = str(error)
                log.exception("metrics plane reconcile failed")

    def reconcile(self) -> None:
        """Bring endpoints, target files and the legacy agents in line with the store."""
        if self.exporters is None or self.mimir is None:
            return
        view = cluster_view(self.store, self.config)
        self.exporters.sync(view)
        if self.publish_routes is not None:
            self.publish_routes(self._pod_routes(view))
        replicas = legacy.wanted_replicas(self.store.list(PROMETHEUSES, self.config.legacy_namespace))
        fullname = replicas[0].fullname if replicas else "kube-prometheus-stack"
        legacy.write_targets(self._targets_dir, legacy.target_groups(view, self.config, fullname))
        with self._lock:
            if not self._stopping.is_set():
                self._reconcile_agents(replicas)
        self.last_error = None

    def _reconcile_agents(self, replicas: list[legacy.Replica]) -> None:
        wanted = {replica.pod: replica for replica in replicas}
        for name in [name for name in self.agents if name not in wanted]:
            self.agents.pop(name).stop()
        for name, replica in sorted(wanted.items()):
            agent = self.agents.get(name)
            if agent is None or not agent.running():
                self.agents[name] = self._start_agent(replica)

    def _start_agent(self, replica: legacy.Replica) -> PrometheusProcess:
        assert self.exporters is not None and self.mimir is not None
        used = {agent.port for agent in self.agents.values() if agent.running()}
        port = next(p for p in range(self.config.agent_base_port, 65536) if p not in used and _bindable(p))
        config = legacy.agent_config(
            replica,
            self.config,
            self.mimir.url,
            targets_dir=self._targets_dir,
            token_file=self._token_file(),
            ca_file=self.exporters.ca_file,
        )
        try:
            return start_agent(
                replica.pod,
                self.run_dir / "agents" / replica.pod,
                port,
                config,
                self.config.ready_timeout_seconds,
            )
        except PrometheusError as error:
            raise PrometheusError(f"legacy replica {replica.pod}: {error}") from error

    def _pod_routes(self, view: ClusterView) -> dict[str, Route]:
        """Where the pods this plane serves are reached: kube-state-metrics pods and the applications."""
        assert self.exporters is not None
        routes: dict[str, Route] = {}
        for pod in view.pods:
            status, meta = pod.get("status") or {}, pod["metadata"]
            if status.get("phase") != "Running" or not status.get("podIP"):
                continue
            for container in (pod.get("spec") or {}).get("containers") or []:
                ports = {p.get("name"): p["containerPort"] for p in container.get("ports") or []}
                if KSM_IMAGE in str(container.get("image", "")):
                    port = _flag(container.get("args") or [], "--port") or str(ports.get("http", 8080))
                    routes[f"{status['podIP']}:{port}"] = Route(self.exporters.kube_state_metrics.address)
                elif meta.get("namespace") in self.config.app_namespaces and "http" in ports:
                    routes[f"{status['podIP']}:{ports['http']}"] = Route(
                        self.exporters.applications.address, (("pod", f"{meta['namespace']}/{meta['name']}"),)
                    )
        return routes

    # --- files -----------------------------------------------------------------------------------

    @property
    def _targets_dir(self) -> Path:
        return self.run_dir / "targets"

    def _token_file(self) -> Path:
        path = self.run_dir / "agents" / "token"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.scrape_token)
        path.chmod(0o600)
        return path

    def _storage_config(self, mimir_address: str) -> dict[str, Any]:
        return {
            "global": {"scrape_interval": duration(self.config.meta_scrape_interval_seconds)},
            "scrape_configs": [{"job_name": "mimir", "static_configs": [{"targets": [mimir_address]}]}],
        }
