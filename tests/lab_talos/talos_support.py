"""Shared pieces of the lab Talos tests: node addresses, patches, recording hooks, polling."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from lab.talos import CommandResult

CP = "127.0.10.1"
W13 = "127.0.11.1"
W14 = "127.0.11.2"
W15 = "127.0.11.3"

METRICS_FILE_PATCH = """\
machine:
  files:
    - content: |
        [metrics]
          address = "127.0.0.1:11234"
      path: /etc/cri/conf.d/20-customization.part
      op: create
"""

METRICS_DOCUMENT_PATCH = """\
apiVersion: v1alpha1
kind: CRICustomizationConfig
name: containerd-metrics
content: |
  [plugins."io.containerd.server.v1.metrics"]
    address = "127.0.0.1:11234"
"""


@dataclass
class FakeHooks:
    """Records every hook call in order; Kubernetes readiness is whatever the test sets."""

    calls: list[tuple[object, ...]] = field(default_factory=list)
    ready: dict[str, bool] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _record(self, *call: object) -> None:
        with self.lock:
            self.calls.append(call)

    def node_going_down(self, node: str) -> None:
        self._record("node_going_down", node)

    def node_came_up(self, node: str) -> None:
        self._record("node_came_up", node)

    def cri_restarted(self, node: str) -> None:
        self._record("cri_restarted", node)

    def containerd_metrics_changed(self, node: str, address: str | None) -> None:
        self._record("containerd_metrics_changed", node, address)

    def kubernetes_nodes_ready(self) -> dict[str, bool]:
        return dict(self.ready)

    def of(self, node: str) -> list[tuple[object, ...]]:
        with self.lock:
            return [call for call in self.calls if call[1] == node]


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met before the deadline"
        time.sleep(0.01)


def stderr_lines(result: CommandResult) -> list[str]:
    """stderr without talosctl's client-newer-than-server WARNING, which precedes the command's own lines."""
    return [line for line in result.stderr.splitlines() if not line.startswith("WARNING: ")]
