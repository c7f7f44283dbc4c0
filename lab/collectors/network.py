"""The lab's pod network: where a pod IP and port is really served.

Pods that are not on the host network get 10.244.x.y addresses, as a CNI would hand out, but
nothing listens there. The lab keeps a routing table from such `ip:port` pairs to the loopback
address that serves them (an Alloy replica's HTTP surface, kube-state-metrics, ...). Two clients
use it: the API server's proxy subresource, and the Prometheus agents that run deployed
configurations, which get the table as `__address__` rewrite rules appended after the configured
relabel rules (the `instance` label keeps the pod address, as it would in a cluster).
Host-network pods have the node's own loopback address and need no route.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Route:
    """A pod `ip:port` served at `address` (host:port); `params` are added to scrape URLs."""

    address: str
    params: tuple[tuple[str, str], ...] = ()


@dataclass
class PodNetwork:
    _tables: dict[str, dict[str, Route]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def set_routes(self, owner: str, routes: dict[str, Route]) -> bool:
        """Replace the routes one producer owns; True when the table changed."""
        with self._lock:
            changed = self._tables.get(owner, {}) != routes
            self._tables[owner] = dict(routes)
            return changed

    def resolve(self, address: str) -> Route | None:
        with self._lock:
            for table in self._tables.values():
                if address in table:
                    return table[address]
        return None

    def routes(self) -> dict[str, Route]:
        with self._lock:
            return {address: route for table in self._tables.values() for address, route in sorted(table.items())}


def re2_escape(text: str) -> str:
    """Escape for an RE2 pattern (Prometheus anchors relabel regexes itself)."""
    return re.sub(r"([.\\+*?()|\[\]{}^$])", r"\\\1", text)


def address_rules(routes: dict[str, Route]) -> list[dict]:
    """Relabel rules that keep `instance` as configured and send each routed address to its server."""
    rules: list[dict] = [
        {
            "source_labels": ["instance", "__address__"],
            "separator": ";",
            "regex": ";(.+)",
            "target_label": "instance",
            "replacement": "$1",
            "action": "replace",
        }
    ]
    for address, route in sorted(routes.items()):
        pattern = re2_escape(address)
        for name, value in route.params:
            rules.append(
                {
                    "source_labels": ["__address__"],
                    "regex": pattern,
                    "target_label": f"__param_{name}",
                    "replacement": value,
                    "action": "replace",
                }
            )
        rules.append(
            {
                "source_labels": ["__address__"],
                "regex": pattern,
                "target_label": "__address__",
                "replacement": route.address,
                "action": "replace",
            }
        )
    return rules
