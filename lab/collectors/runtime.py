"""Runs what the toolkit deployed: Alloy StatefulSets and OpenTelemetry Collector DaemonSets.

The runtime watches the lab's API objects. For a StatefulSet whose container image is
`grafana/alloy`, every ready replica gets the configuration its pod mounts (the `run <path>`
argument, resolved through the pod's volumes), evaluated with the pod's environment, translated
(lab/collectors/alloy.py) and run by a Prometheus agent of its own, plus Alloy's HTTP surface on the
pod's address. For a DaemonSet whose image is `otel/opentelemetry-collector*`, every ready pod's
configuration (`--config=`) becomes jobs and queues of one agent per DaemonSet, and each pod gets
its health_check and telemetry endpoints on its node's address. A configuration the lab cannot
run is reported (lab status, the lab log, the replica's `/-/healthy` and
`alloy_config_last_load_successful 0`), never half run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.collectors import kubesd, otel
from lab.collectors.agent import agent_config
from lab.collectors.alloy import Replica, Translator
from lab.collectors.alloy_config import AlloyConfig, ConfigError, LabLimitError, PodContext, TargetsRef, load
from lab.collectors.network import PodNetwork, Route, address_rules
from lab.collectors.podfs import ClusterFiles, PodFiles, PodSpecError
from lab.collectors.surfaces import AlloyState, AlloySurface, ComponentHealth, OtelState, OtelSurface, Peer
from lab.k8s import rbac
from lab.metrics.prometheus import PrometheusError, PrometheusProcess, start_agent, write_config

log = logging.getLogger(__name__)

ALLOY_IMAGE = "grafana/alloy"
OTEL_IMAGE = "otel/opentelemetry-collector"
WATCHED = frozenset(
    {
        "pods",
        "nodes",
        "services",
        "endpoints",
        "endpointslices.discovery.k8s.io",
        "statefulsets.apps",
        "daemonsets.apps",
        "configmaps",
        "secrets",
        "serviceaccounts",
        "clusterroles.rbac.authorization.k8s.io",
        "clusterrolebindings.rbac.authorization.k8s.io",
        "roles.rbac.authorization.k8s.io",
        "rolebindings.rbac.authorization.k8s.io",
    }
)
_RECONCILE_GAP = 0.3


def _image_matches(container: dict, image: str) -> bool:
    name = str(container.get("image", "")).split("@")[0].rsplit(":", 1)[0]
    return name == image or name.endswith("/" + image) or name.startswith(image)


def _container(workload_or_pod: dict, image: str) -> dict | None:
    spec = workload_or_pod.get("spec") or {}
    spec = (spec.get("template") or {}).get("spec") or spec
    return next((c for c in spec.get("containers") or [] if _image_matches(c, image)), None)


def _is_ready(pod: dict) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


def _running(pod: dict) -> bool:
    status = pod.get("status") or {}
    return (
        status.get("phase") == "Running" and bool(status.get("podIP")) and not pod["metadata"].get("deletionTimestamp")
    )


def _owned(pods: list[dict], owner: dict) -> list[dict]:
    uid = owner["metadata"]["uid"]
    return [p for p in pods if any(r.get("uid") == uid for r in p["metadata"].get("ownerReferences") or [])]


def _ordinal(pod: dict) -> int:
    tail = pod["metadata"]["name"].rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def _arg(args: list[str], flag: str) -> str | None:
    for index, arg in enumerate(args):
        if arg.startswith(f"{flag}="):
            return arg.split("=", 1)[1]
        if arg == flag and index + 1 < len(args):
            return args[index + 1]
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class _Agent:
    """A Prometheus agent and the configuration text it runs."""

    process: PrometheusProcess
    text: str

    def apply(self, config: dict[str, Any], text: str) -> None:
        """Reload with a new configuration (SIGHUP), as `--web.enable-lifecycle`-less Prometheus does."""
        if text == self.text:
            return
        write_config(self.process.config_path, config)
        self.process.process.send_signal(signal.SIGHUP)
        self.text = text


def _start(name: str, run_dir: Path, config: dict[str, Any], text: str, ready_timeout: float) -> _Agent:
    return _Agent(start_agent(name, run_dir, _free_port(), config, ready_timeout), text)


@dataclass
class _Replica:
    """One Alloy process: the pod incarnation it runs in and the configuration it loaded.

    Alloy reads its configuration at start and on `/-/reload` only; a changed ConfigMap takes
    effect when the pod restarts (the deploy stage rolls the StatefulSet) or on a reload.
    """

    incarnation: tuple[str, str]
    surface: AlloySurface
    sources: dict[str, str] | None = None
    config_hash: str = ""
    error: str = ""  # of the last load (start or /-/reload)
    run_error: str = ""  # of running the loaded configuration now
    warnings: tuple[str, ...] = ()  # what Alloy would log while running (discovery denied by RBAC, ...)
    failed_components: tuple[ComponentHealth, ...] = ()
    load_failures: int = 0
    reload: bool = True
    agent: _Agent | None = None
    exited: bool = False  # the initial load failed as it would for Alloy itself: the process exits


@dataclass
class _AlloySet:
    """The runtime state of one Alloy StatefulSet."""

    replicas: dict[str, _Replica] = field(default_factory=dict)


@dataclass
class _Collector:
    """One collector process: its pod incarnation and what its configuration became when it started."""

    incarnation: tuple[str, str]
    plan: otel.CollectorPlan | None
    error: str
    surface: OtelSurface | None = None
    routes: dict[str, Route] = field(default_factory=dict)
    exited: bool = False  # otelcol itself would refuse this configuration and exit


@dataclass
class _OtelSet:
    agent: _Agent | None = None
    collectors: dict[str, _Collector] = field(default_factory=dict)
    error: str = ""


class CollectorsRuntime:
    """Keeps the collectors' agents and surfaces in line with the lab's API objects."""

    def __init__(
        self,
        store: Any,
        network: PodNetwork,
        run_dir: Path,
        cluster_files: ClusterFiles,
        *,
        api_address: str,
        tenant_routing: bool,
        ready_timeout: float = 30.0,
    ) -> None:
        self.store, self.network, self.run_dir = store, network, Path(run_dir)
        self.cluster_files = cluster_files
        self.api_address = api_address
        self.tenant_routing = tenant_routing
        self.ready_timeout = ready_timeout
        self.alloy: dict[tuple[str, str], _AlloySet] = {}
        self.otel: dict[tuple[str, str], _OtelSet] = {}
        # Pods (uid) whose collector process started (its configuration loaded, or only the lab
        # cannot run it); a collector pod is never ready before that, nor once its process exited.
        self._started: frozenset[str] = frozenset()
        self.on_readiness_change: Callable[[], None] = lambda: None
        self._dirty = threading.Event()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._worker: threading.Thread | None = None

    # --- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.store.subscribe(self._on_change)
        self._worker = threading.Thread(target=self._run, name="collectors", daemon=True)
        self._worker.start()
        self._dirty.set()

    def stop(self) -> None:
        self._stopping.set()
        self._dirty.set()
        if self._worker is not None:
            self._worker.join(timeout=60)
        with self._lock:
            for key in list(self.alloy):
                self._drop_alloy(key)
            for key in list(self.otel):
                self._drop_otel(key)

    def _on_change(self, _event: str, resource: str, _obj: dict) -> None:
        if resource in WATCHED:
            self._dirty.set()

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._dirty.wait()
            if self._stopping.is_set():
                return
            time.sleep(_RECONCILE_GAP)  # let a burst of controller writes settle into one pass
            self._dirty.clear()
            try:
                with self._lock:
                    if not self._stopping.is_set():
                        self.reconcile()
            except Exception:  # the runtime must outlive one bad pass
                log.exception("collectors reconcile failed")

    # --- reconcile -------------------------------------------------------------------------------------

    def _snapshot(self) -> kubesd.Snapshot:
        return kubesd.Snapshot(
            nodes=self.store.list("nodes"),
            pods=self.store.list("pods"),
            services=self.store.list("services"),
            endpoints=self.store.list("endpoints"),
            endpointslices=self.store.list("endpointslices.discovery.k8s.io"),
        )

    def reconcile(self) -> None:
        statefulsets = [s for s in self.store.list("statefulsets.apps") if _container(s, ALLOY_IMAGE)]
        daemonsets = [d for d in self.store.list("daemonsets.apps") if _container(d, OTEL_IMAGE)]
        for key in [k for k in self.alloy if k not in {_key(s) for s in statefulsets}]:
            self._drop_alloy(key)
        for key in [k for k in self.otel if k not in {_key(d) for d in daemonsets}]:
            self._drop_otel(key)
        if statefulsets or daemonsets:  # nothing deployed: spare the cluster-wide snapshot
            snapshot = self._snapshot()
            for sts in statefulsets:
                self._reconcile_alloy(sts, snapshot)
            for ds in daemonsets:
                self._reconcile_otel(ds, snapshot)
        self._publish_starts()

    def may_be_ready(self, pod: dict) -> bool:
        """Readiness gate for the lab's kubelets (lock-free: read while the controllers hold theirs)."""
        if not (_container(pod, ALLOY_IMAGE) or _container(pod, OTEL_IMAGE)):
            return True
        return pod["metadata"].get("uid") in self._started

    def _publish_starts(self) -> None:
        started = frozenset(
            [r.incarnation[0] for s in self.alloy.values() for r in s.replicas.values() if not r.exited]
            + [c.incarnation[0] for s in self.otel.values() for c in s.collectors.values() if not c.exited]
        )
        if started != self._started:
            self._started = started
            self.on_readiness_change()

    def network_rules(self) -> list[dict[str, Any]]:
        routes = {**self.network.routes(), "kubernetes.default.svc:443": Route(self.api_address)}
        return address_rules(routes)

    # --- Alloy -----------------------------------------------------------------------------------------

    def reload_alloy(self, key: tuple[str, str], pod: str) -> str:
        """`POST /-/reload` of one replica: read the configuration again; the error, or "" when it loaded."""
        with self._lock:
            sts = self.store.get("statefulsets.apps", *key)
            replica = self.alloy.get(key, _AlloySet()).replicas.get(pod)
            if sts is None or replica is None:
                return "alloy is not running"
            replica.reload = True
            self._reconcile_alloy(sts, self._snapshot())
            return replica.error

    def _reconcile_alloy(self, sts: dict, snapshot: kubesd.Snapshot) -> None:
        key = _key(sts)
        state = self.alloy.setdefault(key, _AlloySet())
        pods = sorted((p for p in _owned(snapshot.pods, sts) if _running(p)), key=_ordinal)
        for name in [n for n in state.replicas if n not in {p["metadata"]["name"] for p in pods}]:
            self._stop_replica(state.replicas.pop(name))
        routes: dict[str, Route] = {}
        files: dict[str, PodFiles | str] = {}
        for pod in pods:
            name = pod["metadata"]["name"]
            container = _container(pod, ALLOY_IMAGE) or {}
            args = [str(a) for a in container.get("args") or []]
            port = (_arg(args, "--server.http.listen-addr") or "127.0.0.1:12345").rsplit(":", 1)[1]
            incarnation = (pod["metadata"]["uid"], _container_id(pod, container.get("name", "")))
            replica = state.replicas.get(name)
            if replica is None or replica.incarnation != incarnation:
                if replica is not None:
                    self._stop_replica(replica)
                surface = AlloySurface(AlloyState(name, f"{pod['status']['podIP']}:{port}"))
                surface.on_reload = lambda pod=name: self.reload_alloy(key, pod)
                replica = _Replica(incarnation, surface)
                state.replicas[name] = replica
            routes[f"{pod['status']['podIP']}:{port}"] = Route(replica.surface.endpoint.address)
            try:
                files[name] = PodFiles(pod, container, self.cluster_files, self._pod_dir(key, name) / "root")
                files[name].materialize()
            except PodSpecError as error:
                files[name] = f"CreateContainerConfigError: {error}"
            self._load(replica, files[name], args, name)
        self.network.set_routes(f"alloy/{key[0]}/{key[1]}", routes)
        members = [p for p in pods if _is_ready(p) and state.replicas[p["metadata"]["name"]].sources is not None]
        peers = tuple(
            Peer(p["metadata"]["name"], state.replicas[p["metadata"]["name"]].surface.state.addr) for p in members
        )
        # A replica out of the ring scrapes nothing: stop it before the others take over its share.
        for pod in pods:
            replica = state.replicas[pod["metadata"]["name"]]
            if pod not in members and replica.agent is not None:
                self._stop_agent(replica.agent)
                replica.agent = None
        for pod in pods:
            name = pod["metadata"]["name"]
            pod_files = files[name]
            if isinstance(pod_files, PodFiles):
                self._run_replica(key, state.replicas[name], pod, pod_files, members, peers, snapshot)

    def _load(self, replica: _Replica, files: PodFiles | str, args: list[str], pod: str) -> None:
        """Read and check the configuration when the process starts or is asked to reload."""
        if not replica.reload:
            return
        replica.reload = False
        config: AlloyConfig | None = None
        try:
            if isinstance(files, str):
                raise ConfigError("", files)
            sources, config_hash = _alloy_sources(files, args)
            config = load(sources, PodContext(files.env, files.read_file, pod))
            Translator(config, kubesd.Snapshot(), "", files.host_path, Path(), Path(), True).check()
        except ConfigError as error:
            self._failed(replica, pod, str(error), config, error.component)
            replica.exited = replica.sources is None and not isinstance(error, LabLimitError)
            return
        replica.sources, replica.config_hash = sources, config_hash
        replica.error, replica.failed_components, replica.exited = "", (), False

    def _failed(self, replica: _Replica, pod: str, message: str, config: AlloyConfig | None, component: str) -> None:
        replica.load_failures += 1
        replica.error = message
        replica.failed_components = _component_health(config, component, message) if config is not None else ()
        log.error("alloy %s: the configuration did not load: %s", pod, message)

    def _run_replica(
        self,
        key: tuple[str, str],
        replica: _Replica,
        pod: dict,
        files: PodFiles,
        members: list[dict],
        peers: tuple[Peer, ...],
        snapshot: kubesd.Snapshot,
    ) -> None:
        name = pod["metadata"]["name"]
        container = _container(pod, ALLOY_IMAGE) or {}
        clustered = (_arg([str(a) for a in container.get("args") or []], "--cluster.enabled") or "false") == "true"
        common = {
            "peers": peers if pod in members else (),
            "clustered": clustered,
            "load_failures": replica.load_failures,
        }
        if replica.sources is None:
            self._stop_agent(replica.agent)
            replica.agent = None
            replica.surface.update(
                running=False,
                loaded=False,
                error=replica.error,
                components=replica.failed_components,
                agent_url=None,
                **common,
            )
            return
        components: tuple[ComponentHealth, ...] = replica.failed_components
        config: AlloyConfig | None = None
        try:
            config = load(replica.sources, PodContext(files.env, files.read_file, name))
            components = components or _component_health(config, "")
            if pod in members:
                position = members.index(pod)
                translator = Translator(
                    config,
                    snapshot,
                    pod["metadata"].get("namespace", ""),
                    files.host_path,
                    self._pod_dir(key, name) / "secrets",
                    self._pod_dir(key, name) / "targets",
                    self.tenant_routing,
                    authorize=self._authorizer(pod),
                )
                replica_of = Replica(position, len(members)) if clustered else Replica(0, 1)
                plan = translator.translate(replica_of, self.network_rules())
                self._run_agent(key, replica, name, plan)
                for warning in sorted(set(translator.warnings) - set(replica.warnings)):
                    log.warning("alloy %s: %s", name, warning)
                replica.warnings = tuple(sorted(set(translator.warnings)))
            replica.run_error = ""
        except (ConfigError, PrometheusError) as error:
            if config is not None:
                components = _component_health(config, getattr(error, "component", ""), str(error))
            if replica.run_error != str(error):
                log.error("alloy %s: %s", name, error)
            replica.run_error = str(error)
        replica.surface.update(
            running=True,
            loaded=not replica.error,
            error=replica.error or replica.run_error,
            components=components,
            agent_url=replica.agent.process.url if replica.agent else None,
            config_hash=replica.config_hash,
            **common,
        )

    def _authorizer(self, pod: dict) -> Callable[[str, str, str | None], str | None]:
        """RBAC as the pod's service account meets it when its informers list and watch."""
        account = rbac.ServiceAccount(
            pod["metadata"].get("namespace", ""), (pod.get("spec") or {}).get("serviceAccountName") or "default"
        )

        def authorize(group: str, resource: str, namespace: str | None) -> str | None:
            for verb in ("list", "watch"):
                if not rbac.allowed(self.store.list, account, verb, group, resource, namespace):
                    return rbac.forbidden_message(account, verb, group, resource, namespace)
            return None

        return authorize

    def _run_agent(self, key: tuple[str, str], replica: _Replica, name: str, plan: Any) -> None:
        for path, groups in plan.target_files.items():
            _write_json(path, groups)
        prometheus = agent_config(plan.jobs, plan.queues)
        text = json.dumps(prometheus, sort_keys=True)
        if replica.agent is None or not replica.agent.process.running():
            replica.agent = _start(
                f"alloy/{name}", self._pod_dir(key, name) / "agent", prometheus, text, self.ready_timeout
            )
        else:
            replica.agent.apply(prometheus, text)

    def _pod_dir(self, key: tuple[str, str], pod: str) -> Path:
        return self.run_dir / "alloy" / key[0] / key[1] / pod

    def _stop_replica(self, replica: _Replica) -> None:
        replica.surface.close()
        self._stop_agent(replica.agent)

    def _drop_alloy(self, key: tuple[str, str]) -> None:
        state = self.alloy.pop(key)
        for replica in state.replicas.values():
            self._stop_replica(replica)
        self.network.set_routes(f"alloy/{key[0]}/{key[1]}", {})

    # --- OpenTelemetry Collector -----------------------------------------------------------------------

    def _reconcile_otel(self, ds: dict, snapshot: kubesd.Snapshot) -> None:
        key = _key(ds)
        state = self.otel.setdefault(key, _OtelSet())
        pods = sorted(
            (p for p in _owned(snapshot.pods, ds) if _running(p)), key=lambda p: p["spec"].get("nodeName", "")
        )
        for name in [n for n in state.collectors if n not in {p["metadata"]["name"] for p in pods}]:
            self._stop_collector(state.collectors.pop(name))
        jobs, queues, routes = [], [], {}
        for pod in pods:
            collector = self._collector(key, state, pod)
            routes.update(collector.routes)
            if collector.plan is not None and _is_ready(pod):
                jobs += collector.plan.jobs
                queues += collector.plan.queues
        self.network.set_routes(f"otel/{key[0]}/{key[1]}", routes)
        prometheus = agent_config(jobs, queues)
        text = json.dumps(prometheus, sort_keys=True)
        try:
            if not jobs:
                self._stop_agent(state.agent)
                state.agent = None
            elif state.agent is None or not state.agent.process.running():
                state.agent = _start(
                    f"otel/{key[1]}", self._otel_dir(key) / "agent", prometheus, text, self.ready_timeout
                )
            else:
                state.agent.apply(prometheus, text)
            state.error = ""
        except PrometheusError as error:
            if state.error != str(error):
                log.error("otel collector %s/%s: the lab's Prometheus refused the translation: %s", *key, error)
            state.error = str(error)
            state.agent = None
        for collector in state.collectors.values():
            if collector.surface is not None:
                collector.surface.update(
                    running=collector.plan is not None and state.agent is not None,
                    agent_url=state.agent.process.url if state.agent else None,
                    queue=collector.plan.queues[0].name if collector.plan and collector.plan.queues else "",
                )

    def _collector(self, key: tuple[str, str], state: _OtelSet, pod: dict) -> _Collector:
        """The collector of a pod, its configuration read once per container start (as otelcol does)."""
        name = pod["metadata"]["name"]
        container = _container(pod, OTEL_IMAGE) or {}
        incarnation = (pod["metadata"]["uid"], _container_id(pod, container.get("name", "")))
        current = state.collectors.get(name)
        if current is not None and current.incarnation == incarnation:
            return current
        if current is not None:
            self._stop_collector(current)
        plan, error, exited = None, "", False
        try:
            files = PodFiles(pod, container, self.cluster_files, self._otel_dir(key) / name / "root")
            files.materialize()
            path = _arg([str(a) for a in container.get("args") or []], "--config") or "/etc/otelcol-contrib/config.yaml"
            config = otel.load(files.read_file(path.removeprefix("file:")), files.env)
            route = f"o{len(state.collectors)}-{incarnation[1][-6:]}"
            plan = otel.translate(config, name, pod["status"]["podIP"], route, self.tenant_routing)
        except (ConfigError, PodSpecError, OSError) as exc:
            error, exited = str(exc), not isinstance(exc, LabLimitError)
            log.error("otel collector %s: the lab cannot run this configuration: %s", name, error)
        collector = _Collector(incarnation, plan, error, exited=exited)
        if plan is not None:
            ip = pod["status"]["podIP"]
            extensions = plan.extensions
            health = _listen(extensions.health_endpoint, ip)
            telemetry = _listen(extensions.telemetry_address, ip)
            collector.surface = OtelSurface(health, extensions.health_path, telemetry, OtelState(name))
            for configured, endpoint in (
                (extensions.health_endpoint, collector.surface.health),
                (extensions.telemetry_address, collector.surface.telemetry),
            ):
                if endpoint is not None and endpoint.host != ip:
                    collector.routes[f"{ip}:{configured.rpartition(':')[2]}"] = Route(endpoint.address)
        state.collectors[name] = collector
        return collector

    def _otel_dir(self, key: tuple[str, str]) -> Path:
        return self.run_dir / "otel" / key[0] / key[1]

    def _stop_collector(self, collector: _Collector) -> None:
        if collector.surface is not None:
            collector.surface.close()

    def _drop_otel(self, key: tuple[str, str]) -> None:
        state = self.otel.pop(key)
        for collector in state.collectors.values():
            self._stop_collector(collector)
        self._stop_agent(state.agent)
        self.network.set_routes(f"otel/{key[0]}/{key[1]}", {})

    @staticmethod
    def _stop_agent(agent: _Agent | None) -> None:
        if agent is not None:
            agent.process.stop()

    # --- status ----------------------------------------------------------------------------------------

    def status(self) -> list[dict[str, Any]]:
        components = []
        for (namespace, _name), state in sorted(self.alloy.items()):
            for pod, replica in sorted(state.replicas.items()):
                current = replica.surface.state
                agent = replica.agent
                detail = f"agent {agent.process.url}, {len(current.peers)} peers" if agent else "not running"
                detail += "".join(f"; {warning}" for warning in replica.warnings)
                components.append(
                    {
                        "name": f"alloy/{namespace}/{pod}",
                        "address": replica.surface.endpoint.url,
                        "healthy": not (replica.error or replica.run_error or replica.warnings)
                        and (agent is None or agent.process.running()),
                        "detail": replica.error or replica.run_error or detail,
                    }
                )
        for (namespace, name), state in sorted(self.otel.items()):
            running = sum(1 for c in state.collectors.values() if c.plan is not None)
            errors = [f"{pod}: {c.error}" for pod, c in sorted(state.collectors.items()) if c.error]
            errors += [state.error] if state.error else []
            components.append(
                {
                    "name": f"otel/{namespace}/{name}",
                    "address": state.agent.process.url if state.agent else "",
                    "healthy": not errors,
                    "detail": "; ".join(errors) or f"{running}/{len(state.collectors)} collectors running",
                }
            )
        return components


def _listen(address: str, pod_ip: str) -> tuple[str, int] | None:
    """Where a collector endpoint configured at `address` is reachable from outside its pod, if at all."""
    if not address:
        return None
    host, _, port = address.rpartition(":")
    if host.strip("[]") not in ("", "0.0.0.0", "::", pod_ip):
        return None  # localhost (or another address): only the pod itself could reach it
    # Host-network pods have their node's lab address, where the lab listens; other pods are routed.
    return (pod_ip, int(port)) if pod_ip.startswith("127.") else ("127.0.0.1", 0)


def _key(obj: dict) -> tuple[str, str]:
    return obj["metadata"].get("namespace", ""), obj["metadata"]["name"]


def _container_id(pod: dict, container: str) -> str:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return next((str(s.get("containerID", "")) for s in statuses if s.get("name") == container), "")


def _alloy_sources(files: PodFiles, args: list[str]) -> tuple[dict[str, str], str]:
    """The files `alloy run <path>` loads (a file, or a directory's *.alloy files) and their hash."""
    if len(args) < 2 or args[0] != "run":
        raise ConfigError("", f"container args {args!r} do not start with `run <path>`")
    path = files.host_path(args[1])
    if path.is_dir():
        sources = {p.name: p.read_text() for p in sorted(path.glob("*.alloy")) if p.is_file()}
    elif path.is_file():
        sources = {path.name: path.read_text()}
    else:
        raise ConfigError("", f"open {args[1]}: no such file or directory")
    digest = hashlib.sha256("".join(sources[name] for name in sorted(sources)).encode()).hexdigest()
    return sources, digest


def _component_health(config: AlloyConfig | None, failing: str, message: str = "") -> tuple[ComponentHealth, ...]:
    if config is None:
        return ()
    references: dict[str, set[str]] = {cid: set() for cid in config.components}
    for cid, component in config.components.items():
        for value in _walk(component.arguments):
            target = getattr(value, "component", None)
            if target in references and target != cid:
                references[cid].add(target)
    referenced_by: dict[str, set[str]] = {cid: set() for cid in config.components}
    for cid, targets in references.items():
        for target in targets:
            referenced_by[target].add(cid)
    return tuple(
        ComponentHealth(
            cid,
            component.kind,
            component.label,
            healthy=cid != failing,
            message=message if cid == failing else "started component",
            references=tuple(sorted(references[cid])),
            referenced_by=tuple(sorted(referenced_by[cid])),
            arguments={k: v for k, v in component.arguments.items() if not isinstance(v, list | dict) or _plain(v)},
        )
        for cid, component in config.components.items()
    )


def _walk(value: Any) -> list[Any]:
    if isinstance(value, list):
        return [item for element in value for item in _walk(element)]
    if isinstance(value, dict):
        return [item for element in value.values() for item in _walk(element)]
    return [value]


def _plain(value: Any) -> bool:
    return all(not isinstance(item, TargetsRef) and not hasattr(item, "component") for item in _walk(value))


def _write_json(path: Path, content: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(content, indent=1, sort_keys=True)
    if path.exists() and path.read_text() == text:
        return
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    temporary.replace(path)
