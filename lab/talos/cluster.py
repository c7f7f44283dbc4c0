"""The lab's Talos nodes: state behind one lock, reboots on timers, hooks fired outside the lock."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from lab.talos.commands import execute
from lab.talos.context import CommandResult, TalosContext
from lab.talos.hooks import TalosHooks
from lab.talos.machineconfig import ClusterSecrets, Document, NodeIdentity, generate_documents
from lab.talos.node import ApplyError, ApplyOutcome, NodeState
from lab.talos.versions import TalosVersion

FAULT_KINDS = ("never_returns", "slow_reboot")
APID_PORT = 50000


@dataclass(frozen=True)
class NodeSpec:
    """A node of the rehearsal cluster; `name` is its hostname and Kubernetes Node name."""

    name: str
    address: str
    role: str = "worker"
    version: str = "v1.13.2"

    def __post_init__(self) -> None:
        if self.role not in {"controlplane", "worker"}:
            raise ValueError(f"role must be controlplane or worker, not {self.role!r}")
        TalosVersion.parse(self.version)


class _Notices:
    """Hook calls collected under the lock, fired after it is released."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def add(self, method: str, *args: Any) -> None:
        self.calls.append((method, args))


@dataclass
class _Etcd:
    leader: str | None = None
    term: int = 2
    started: float = 0.0


class TalosCluster:
    """All Talos nodes of the lab, answering talosctl commands against their state."""

    def __init__(
        self,
        cluster_name: str,
        nodes: list[NodeSpec],
        hooks: TalosHooks,
        reboot_seconds: float = 5.0,
        *,
        client_version: str | None = None,
        health_poll_interval: float = 0.5,
    ) -> None:
        if not nodes:
            raise ValueError("a cluster needs at least one node")
        self.cluster_name = cluster_name
        self.hooks = hooks
        self.reboot_seconds = reboot_seconds
        self.health_poll_interval = health_poll_interval
        versions = [TalosVersion.parse(spec.version) for spec in nodes]
        self.client_version = TalosVersion.parse(client_version) if client_version else max(versions)
        self._lock = threading.RLock()
        self.changed = threading.Condition(self._lock)
        self._timers: list[threading.Timer] = []
        self._closed = False
        now = time.time()
        self._etcd = _Etcd(started=now)
        self._nodes = self._boot_nodes(nodes, now)

    def _boot_nodes(self, specs: list[NodeSpec], now: float) -> dict[str, NodeState]:
        secrets = ClusterSecrets.generate()
        control_planes = [spec for spec in specs if spec.role == "controlplane"] or specs
        endpoint = f"https://{control_planes[0].address}:6443"
        nodes = {}
        for spec in specs:
            version = TalosVersion.parse(spec.version)
            identity = NodeIdentity(spec.name, spec.role, version, self.cluster_name, endpoint)
            docs = generate_documents(identity, secrets)
            nodes[spec.name] = NodeState.boot_fresh(identity, spec.address, docs, now)
        return nodes

    # --- public interface --------------------------------------------------------------

    def run(self, argv: list[str], context: TalosContext) -> CommandResult:
        """Execute one talosctl command line (without the program name) against the nodes."""
        return execute(self, list(argv), context)

    def inject_fault(self, node: str, kind: str, **params: Any) -> None:
        """`never_returns`: reboots hang until cleared; `slow_reboot` (seconds=...): reboots take longer."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; known: {', '.join(FAULT_KINDS)}")
        if kind == "slow_reboot" and float(params.get("seconds", -1)) < 0:
            raise ValueError("slow_reboot needs seconds=<non-negative number>")
        with self._lock:
            self._require(node).fault = {"kind": kind, **params}

    def clear_fault(self, node: str) -> None:
        """Remove the node's fault; a node hung by `never_returns` finishes its boot now."""
        with self._lock:
            state = self._require(node)
            hung = state.fault is not None and state.fault["kind"] == "never_returns" and not state.running
            state.fault = None
            boots = state.boots
        if hung:
            self._complete_boot(state.name, boots)

    def metrics_address(self, node: str) -> str | None:
        """The containerd metrics listen address in effect on the node now (None: no listener)."""
        with self._lock:
            return self._require(node).metrics_address()

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Per node name: address, role, version, boot id, boots, state, metrics address, fault."""
        with self._lock:
            return {
                name: {
                    "address": node.address,
                    "role": node.role,
                    "version": str(node.version),
                    "boot_id": node.boot_id,
                    "boots": node.boots,
                    "state": node.phase,
                    "metrics_address": node.metrics_address(),
                    "fault": dict(node.fault) if node.fault else None,
                }
                for name, node in self._nodes.items()
            }

    def close(self) -> None:
        """Cancel pending reboots and try-mode reverts (the lab is shutting down)."""
        with self._lock:
            self._closed = True
            timers, self._timers = self._timers, []
        for timer in timers:
            timer.cancel()

    # --- for the command implementations -------------------------------------------------

    @contextmanager
    def locked(self) -> Iterator[None]:
        with self._lock:
            yield

    def nodes(self) -> list[NodeState]:
        return list(self._nodes.values())

    def find(self, target: str) -> NodeState | None:
        """A node by address or name, as talosctl's `-n` accepts either."""
        return self._nodes.get(target) or next((n for n in self._nodes.values() if n.address == target), None)

    def unreachable(self, target: str) -> str | None:
        """The gRPC error talosctl would get reaching `target`, or None when its apid answers."""
        failure = self._dial_failure(target)
        return str(failure) if failure else None

    def _dial_failure(self, target: str) -> ApplyError | None:
        node = self.find(target)
        if node is not None and node.running:
            return None
        if node is None and not _looks_like_ip(target):
            return ApplyError(
                "Unavailable", f"name resolver error: produced zero addresses: lookup {target}: no such host"
            )
        host, reason = (node.address, "connection refused") if node else (target, "no route to host")
        dial = f"dial tcp {host}:{APID_PORT}: connect: {reason}"
        return ApplyError("Unavailable", f'connection error: desc = "transport: Error while dialing: {dial}"')

    def _require_running(self, node: NodeState) -> None:
        """A node may go down between a command's checks and its call: fail as the call would."""
        failure = self._dial_failure(node.address)
        if failure:
            raise failure

    def endpoint_error(self, endpoints: list[str]) -> str | None:
        """Endpoints are apid proxies: the request fails only when every one of them is down."""
        errors = []
        for endpoint in endpoints:
            host = endpoint.rsplit(":", 1)[0] if endpoint.count(":") == 1 else endpoint
            node = self.find(host)
            if node is None or node.running:
                return None
            errors.append(self.unreachable(host))
        return errors[0] if errors else None

    def apply_config(
        self, name: str, docs: list[Document], mode: str, dry_run: bool, try_timeout: float
    ) -> ApplyOutcome:
        notices = _Notices()
        with self._lock:
            node = self._nodes[name]
            self._require_running(node)
            before = (node.metrics_address(), node.live_customizations())
            outcome = node.apply(docs, mode, dry_run, try_timeout, time.time())
            self._note_cri_change(node, before, notices)
            if outcome.try_timeout is not None:
                self._schedule(outcome.try_timeout, self._revert_try, name, node.try_generation)
            if outcome.reboot:
                self._begin_reboot(node, notices)
        self._fire(notices)
        return outcome

    def reboot(self, name: str) -> str:
        """Start rebooting a running node; returns the boot id it had before."""
        notices = _Notices()
        with self._lock:
            node = self._nodes[name]
            self._require_running(node)
            boot_id = node.boot_id
            self._begin_reboot(node, notices)
        self._fire(notices)
        return boot_id

    def restart_service(self, name: str, service_id: str) -> None:
        """`talosctl service <id> restart`; restarting cri re-reads the CRI config it was given."""
        notices = _Notices()
        with self._lock:
            node = self._nodes[name]
            self._require_running(node)
            node.restart_service(service_id, time.time())
            if service_id == "cri":
                notices.add("cri_restarted", name)
        self._fire(notices)

    def wait_for_boot(self, name: str, old_boot_id: str, deadline: float) -> bool:
        """Block until the node runs with a new boot id, or the deadline passes."""
        with self.changed:
            node = self._nodes[name]
            while not (node.running and node.boot_id != old_boot_id):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.changed.wait(remaining)
            return True

    def etcd_leader(self) -> NodeState | None:
        """The current etcd leader: the first running control-plane node; a new one bumps the term."""
        with self._lock:
            current = self._nodes.get(self._etcd.leader or "")
            if current is not None and current.running:
                return current
            leader = next((n for n in self._nodes.values() if n.is_control_plane and n.running), None)
            if leader is not None:
                self._etcd.leader = leader.name
                self._etcd.term += 1
            return leader

    def etcd_raft(self) -> tuple[int, int]:
        """(raft index, raft term): the index grows with time as a busy cluster's does."""
        with self._lock:
            return 1000 + int((time.time() - self._etcd.started) * 13), self._etcd.term

    # --- internals -----------------------------------------------------------------------

    def _require(self, target: str) -> NodeState:
        node = self.find(target)
        if node is None:
            raise KeyError(f"no Talos node {target!r} in the lab")
        return node

    def _begin_reboot(self, node: NodeState, notices: _Notices) -> None:
        had_metrics = node.metrics_address()
        node.begin_reboot(time.time())
        self.changed.notify_all()
        notices.add("node_going_down", node.name)
        if had_metrics is not None:
            notices.add("containerd_metrics_changed", node.name, None)
        fault = node.fault or {}
        if fault.get("kind") == "never_returns":
            return
        delay = float(fault["seconds"]) if fault.get("kind") == "slow_reboot" else self.reboot_seconds
        self._schedule(delay, self._complete_boot, node.name, node.boots)

    def _complete_boot(self, name: str, boots: int) -> None:
        notices = _Notices()
        with self._lock:
            node = self._nodes[name]
            hung = (node.fault or {}).get("kind") == "never_returns"
            if node.running or node.boots != boots or hung or self._closed:
                return
            node.reboot_completed(time.time())
            self.changed.notify_all()
            address = node.metrics_address()
            if address is not None:
                notices.add("containerd_metrics_changed", name, address)
            notices.add("node_came_up", name)
        self._fire(notices)

    def _revert_try(self, name: str, generation: int) -> None:
        notices = _Notices()
        with self._lock:
            node = self._nodes[name]
            before = (node.metrics_address(), node.live_customizations())
            if node.revert_try(generation, time.time()):
                self._note_cri_change(node, before, notices)
        self._fire(notices)

    def _note_cri_change(self, node: NodeState, before: tuple[str | None, list[Any]], notices: _Notices) -> None:
        """From 1.14 a changed customization restarts CRI at once; up to 1.13 it waits for a boot."""
        address, customizations = before
        if node.live_customizations() != customizations and node.running:
            node.restart_service("cri", time.time())
            notices.add("cri_restarted", node.name)
        if node.metrics_address() != address:
            notices.add("containerd_metrics_changed", node.name, node.metrics_address())

    def _schedule(self, delay: float, action: Callable[..., None], *args: Any) -> None:
        if self._closed:
            return
        timer = threading.Timer(delay, action, args)
        timer.daemon = True
        self._timers = [t for t in self._timers if t.is_alive()] + [timer]
        timer.start()

    def _fire(self, notices: _Notices) -> None:
        for method, args in notices.calls:
            getattr(self.hooks, method)(*args)


def _looks_like_ip(target: str) -> bool:
    parts = target.split(".")
    return (len(parts) == 4 and all(part.isdigit() for part in parts)) or ":" in target
