"""The HTTP surfaces of the collectors the lab runs, with the texts and shapes of the real ones.

Alloy (grafana/alloy): `/-/ready`, `/-/healthy`, `/api/v0/web/components`, `/api/v0/web/peers` and
`/metrics` with its self-monitoring series; the remote-storage series come from the replica's
Prometheus agent, which does the writing. OpenTelemetry Collector: the `health_check` extension's
JSON status and the `:8888` telemetry series.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import requests

from lab.metrics.exposition import CONTENT_TYPE, Family, render
from lab.metrics.httpserve import Endpoint, Request, Response, text

_REMOTE_STORAGE_PREFIX = "prometheus_remote_storage_"


def rfc3339(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def agent_families(agent_url: str | None, prefix: str) -> list[str]:
    """The lines (samples, HELP and TYPE) of the agent's own /metrics for names starting with `prefix`."""
    if not agent_url:
        return []
    try:
        reply = requests.get(f"{agent_url}/metrics", timeout=2)
    except requests.RequestException:
        return []
    wanted = (prefix, f"# HELP {prefix}", f"# TYPE {prefix}")
    return [line for line in reply.text.splitlines() if line.startswith(wanted)]


@dataclass(frozen=True)
class Peer:
    name: str
    addr: str


@dataclass(frozen=True)
class ComponentHealth:
    id: str
    kind: str
    label: str
    healthy: bool
    message: str
    references: tuple[str, ...] = ()
    referenced_by: tuple[str, ...] = ()
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AlloyState:
    """What one Alloy replica reports; replaced as a whole by the runtime."""

    pod: str
    addr: str
    running: bool = False  # a configuration is running (Alloy is ready)
    loaded: bool = False  # the last load of the configuration succeeded
    error: str = ""
    config_hash: str = ""
    load_failures: int = 0
    components: tuple[ComponentHealth, ...] = ()
    clustered: bool = True
    peers: tuple[Peer, ...] = ()
    agent_url: str | None = None
    updated: float = field(default_factory=time.time)


class AlloySurface:
    """One replica's HTTP server (listen on 127.0.0.1; the pod network routes podIP:port here)."""

    def __init__(self, state: AlloyState) -> None:
        self._state = state
        self._lock = threading.Lock()
        # Set by the runtime: reads the configuration again, returns the error or "".
        self.on_reload: Callable[[], str] = lambda: "reload is not available"
        self.endpoint = Endpoint("127.0.0.1", 0, self._handle)
        self.endpoint.open()

    @property
    def state(self) -> AlloyState:
        with self._lock:
            return self._state

    def update(self, **changes: Any) -> None:
        with self._lock:
            self._state = replace(self._state, **changes)

    def close(self) -> None:
        self.endpoint.close()

    def _handle(self, request: Request) -> Response:
        if request.path == "/-/reload":
            error = self.on_reload()
            return text(400, error) if error else text(200, "config reloaded")
        state = self.state
        routes = {
            "/-/ready": self._ready,
            "/-/healthy": self._healthy,
            "/api/v0/web/components": self._components,
            "/api/v0/web/peers": self._peers,
            "/metrics": self._metrics,
        }
        handler = routes.get(request.path)
        if handler is None:
            return text(404, "404 page not found")
        return handler(state)

    @staticmethod
    def _ready(state: AlloyState) -> Response:
        return text(200, "Alloy is ready.") if state.running else text(503, "Alloy is not ready.")

    @staticmethod
    def _healthy(state: AlloyState) -> Response:
        unhealthy = sorted(c.id for c in state.components if not c.healthy)
        if not state.running and not unhealthy:
            unhealthy = ["config"]
        if unhealthy:
            return text(500, f"unhealthy components: {', '.join(unhealthy)}")
        return text(200, "All Alloy components are healthy.")

    @staticmethod
    def _components(state: AlloyState) -> Response:
        payload = [
            {
                "name": component.kind,
                "type": "block",
                "localID": component.id,
                "moduleID": "",
                "label": component.label,
                "referencesTo": list(component.references),
                "referencedBy": list(component.referenced_by),
                "health": {
                    "state": "healthy" if component.healthy else "unhealthy",
                    "message": component.message,
                    "updatedTime": rfc3339(state.updated),
                },
                "original": "",
                "arguments": [_attribute(name, value) for name, value in component.arguments.items()],
                "exports": [],
            }
            for component in state.components
        ]
        return Response(200, json.dumps(payload).encode(), "application/json")

    @staticmethod
    def _peers(state: AlloyState) -> Response:
        if not state.clustered:
            return text(500, "cluster service not running")
        payload = [
            {"name": peer.name, "addr": peer.addr, "isSelf": peer.name == state.pod, "state": "participant"}
            for peer in state.peers
        ]
        return Response(200, json.dumps(payload).encode(), "application/json")

    @staticmethod
    def _metrics(state: AlloyState) -> Response:
        families = []
        loaded = Family("alloy_config_last_load_successful", "gauge", "Config loaded successfully.")
        loaded.add({}, 1 if state.loaded else 0)
        failures = Family("alloy_config_load_failures_total", "counter", "Config failed to load.")
        failures.add({}, state.load_failures)
        config_hash = Family("alloy_config_hash", "gauge", "Hash of the currently active config file.")
        if state.config_hash:
            config_hash.add({"sha256": state.config_hash}, 1)
        running = Family(
            "alloy_component_controller_running_components",
            "gauge",
            "Total number of running components.",
        )
        for health in ("healthy", "unhealthy", "unknown", "exited"):
            wanted = {"healthy": True, "unhealthy": False}.get(health)
            running.add(
                {"health_type": health},
                sum(1 for c in state.components if wanted is not None and c.healthy == wanted),
            )
        families += [loaded, failures, config_hash, running]
        if state.clustered:
            info = Family(
                "cluster_node_info",
                "gauge",
                "Info about the local node. Label values will change as the node changes state.",
            )
            info.add({"state": "participant"}, 1)
            peers = Family("cluster_node_peers", "gauge", "Current number of healthy peers by state")
            peers.add({"state": "participant"}, len(state.peers))
            score = Family(
                "cluster_node_gossip_health_score",
                "gauge",
                "Health value of a node; lower values means healthier. 0 is the minimum.",
            )
            score.add({}, 0)
            families += [info, peers, score]
        body = (
            render(families)
            + "".join(line + "\n" for line in agent_families(state.agent_url, _REMOTE_STORAGE_PREFIX)).encode()
        )
        return Response(200, body, CONTENT_TYPE)


def _attribute(name: str, value: Any) -> dict[str, Any]:
    return {"name": name, "type": "attr", "value": _value(value)}


def _value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"type": "bool", "value": value}
    if isinstance(value, int | float):
        return {"type": "number", "value": value}
    if isinstance(value, str):
        return {"type": "string", "value": value}
    if isinstance(value, list):
        return {"type": "array", "value": [_value(item) for item in value]}
    if isinstance(value, dict):
        return {"type": "object", "value": [{"key": k, "value": _value(v)} for k, v in value.items()]}
    if value is None:
        return {"type": "null"}
    return {"type": "capsule", "value": repr(value)}


# --- OpenTelemetry Collector -----------------------------------------------------------------------------


@dataclass(frozen=True)
class OtelState:
    pod: str
    running: bool = False
    error: str = ""
    queue: str = ""
    agent_url: str | None = None
    started: float = field(default_factory=time.time)


class OtelSurface:
    """The health_check extension and the telemetry endpoint of one collector pod, where configured.

    Each is an (host, port) to listen on, or None when the configuration leaves it unreachable from
    outside the pod (not enabled, or bound to localhost).
    """

    def __init__(
        self,
        health: tuple[str, int] | None,
        health_path: str,
        telemetry: tuple[str, int] | None,
        state: OtelState,
    ) -> None:
        self._state = state
        self._lock = threading.Lock()
        self.health_path = health_path
        self.health = Endpoint(*health, self._health) if health else None
        self.telemetry = Endpoint(*telemetry, self._telemetry) if telemetry else None
        for endpoint in (self.health, self.telemetry):
            if endpoint is not None:
                endpoint.open()

    @property
    def state(self) -> OtelState:
        with self._lock:
            return self._state

    def update(self, **changes: Any) -> None:
        with self._lock:
            self._state = replace(self._state, **changes)

    def close(self) -> None:
        for endpoint in (self.health, self.telemetry):
            if endpoint is not None:
                endpoint.close()

    def _health(self, request: Request) -> Response:
        if request.path != self.health_path:
            return text(404, "404 page not found")
        state = self.state
        uptime = time.time() - state.started
        body = {
            "status": "Server available" if state.running else "Server not available",
            "upSince": rfc3339(state.started),
            "uptime": f"{uptime:.9f}s",
        }
        return Response(200 if state.running else 503, json.dumps(body).encode(), "application/json")

    def _telemetry(self, request: Request) -> Response:
        if request.path != "/metrics":
            return text(404, "404 page not found")
        state = self.state
        sent = failed = pending = 0.0
        for line in agent_families(state.agent_url, _REMOTE_STORAGE_PREFIX):
            if f'remote_name="{state.queue}"' not in line or line.startswith("#"):
                continue
            name, value = line.split("{", 1)[0], float(line.rsplit(" ", 1)[1])
            if name == "prometheus_remote_storage_samples_total":
                sent += value
            elif name == "prometheus_remote_storage_samples_failed_total":
                failed += value
            elif name == "prometheus_remote_storage_samples_pending":
                pending += value
        receiver = {"receiver": "prometheus", "transport": "http"}
        exporter = {"exporter": "prometheusremotewrite"}
        rows = [
            (
                "otelcol_receiver_accepted_metric_points_total",
                "Number of metric points successfully pushed into the pipeline.",
                receiver,
                sent + failed + pending,
            ),
            (
                "otelcol_receiver_refused_metric_points_total",
                "Number of metric points that could not be pushed into the pipeline.",
                receiver,
                0,
            ),
            (
                "otelcol_exporter_sent_metric_points_total",
                "Number of metric points successfully sent to destination.",
                exporter,
                sent,
            ),
            (
                "otelcol_exporter_send_failed_metric_points_total",
                "Number of metric points in failed attempts to send to destination.",
                exporter,
                failed,
            ),
            (
                "otelcol_process_uptime_seconds_total",
                "Uptime of the process",
                {},
                round(time.time() - state.started, 3),
            ),
        ]
        families = []
        for name, help_text, labels, value in rows:
            family = Family(name, "counter", help_text)
            family.add(labels, value)
            families.append(family)
        return Response(200, render(families), CONTENT_TYPE)
