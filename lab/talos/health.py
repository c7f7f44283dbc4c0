"""`talosctl health`, run server side: the default cluster checks, polled until OK or timeout."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lab.talos.cluster import TalosCluster
    from lab.talos.node import NodeState

OK = "OK"
SKIP = "SKIP"


@dataclass
class HealthCheck:
    """The checks of pkg/cluster/check DefaultClusterChecks, against the lab's state."""

    cluster: TalosCluster
    control_planes: list[str]
    workers: list[str]
    report: Callable[[str], None]

    def __post_init__(self) -> None:
        if not self.control_planes and not self.workers:
            with self.cluster.locked():
                nodes = self.cluster.nodes()
            self.control_planes = [n.address for n in nodes if n.is_control_plane]
            self.workers = [n.address for n in nodes if not n.is_control_plane]
        self._last_line = ""

    def wait(self, deadline: float) -> bool:
        quoted = " ".join(json.dumps(address) for address in self.everyone)
        self.report(f"discovered nodes: [{quoted}]")
        for name, assertion in self._checks():
            self._say(f"waiting for {name}: ...")
            while True:
                result = assertion()
                self._say(f"waiting for {name}: {result or OK}")
                if result in {None, SKIP}:
                    break
                if time.monotonic() >= deadline:
                    return False
                time.sleep(min(self.cluster.health_poll_interval, max(0.0, deadline - time.monotonic())))
        return True

    @property
    def everyone(self) -> list[str]:
        return self.control_planes + self.workers

    def _say(self, line: str) -> None:
        if line != self._last_line:
            self.report(line)
            self._last_line = line

    def _checks(self) -> list[tuple[str, Callable[[], str | None]]]:
        cps, everyone = self.control_planes, self.everyone
        return [
            ("etcd to be healthy", lambda: self._reachable(cps)),
            ("etcd members to be consistent across nodes", lambda: self._reachable(cps)),
            ("etcd members to be control plane nodes", lambda: None),
            ("apid to be ready", lambda: self._reachable(everyone)),
            ("all nodes memory sizes", lambda: None),
            ("all nodes disk sizes", lambda: None),
            ("no diagnostics", lambda: None),
            ("kubelet to be healthy", lambda: self._reachable(cps)),
            ("all nodes to finish boot sequence", lambda: self._booted(everyone)),
            ("all k8s nodes to report", self._k8s_reported),
            ("all control plane static pods to be running", lambda: self._reachable(cps)),
            ("all control plane components to be ready", lambda: self._reachable(cps)),
            ("all k8s nodes to report ready", self._k8s_ready),
            ("kube-proxy to report ready", lambda: None),
            ("coredns to report ready", lambda: None),
            ("all k8s nodes to report schedulable", lambda: None),
        ]

    def _reachable(self, addresses: list[str]) -> str | None:
        with self.cluster.locked():
            for address in addresses:
                error = self.cluster.unreachable(address)
                if error:
                    return f"{address}: {error}"
        return None

    def _booted(self, addresses: list[str]) -> str | None:
        with self.cluster.locked():
            for address in addresses:
                node = self.cluster.find(address)
                if node is None or not node.running:
                    return f"node {address!r} is not ready: boot sequence not finished"
        return None

    def _names(self) -> list[str]:
        with self.cluster.locked():
            nodes: list[NodeState | None] = [self.cluster.find(address) for address in self.everyone]
        return [node.name if node else address for node, address in zip(nodes, self.everyone, strict=True)]

    def _k8s_reported(self) -> str | None:
        ready = self.cluster.hooks.kubernetes_nodes_ready()
        missing = [name for name in self._names() if name not in ready]
        return f"expected nodes not found: [{' '.join(missing)}]" if missing else None

    def _k8s_ready(self) -> str | None:
        ready = self.cluster.hooks.kubernetes_nodes_ready()
        not_ready = sorted(name for name in self._names() if not ready.get(name, False))
        return f"some nodes are not ready: [{' '.join(not_ready)}]" if not_ready else None
