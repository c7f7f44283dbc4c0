"""What the Talos nodes tell the rest of the lab, and what they ask of it."""

from __future__ import annotations

from typing import Protocol


class TalosHooks(Protocol):
    """Callbacks the lab implements; the Talos nodes call them outside their locks.

    Node arguments are node names (the hostnames, which are also the Kubernetes Node names).
    """

    def node_going_down(self, node: str) -> None:
        """The node starts rebooting: its kubelet and containers stop."""

    def node_came_up(self, node: str) -> None:
        """The node finished booting: the kubelet registers again."""

    def cri_restarted(self, node: str) -> None:
        """CRI (containerd) restarted in place after a live customization change."""

    def containerd_metrics_changed(self, node: str, address: str | None) -> None:
        """The containerd metrics listener moved to `address`, or stopped (None).

        Called whenever `TalosCluster.metrics_address(node)` changes, including when the
        node goes down (None) and comes back up.
        """

    def kubernetes_nodes_ready(self) -> dict[str, bool]:
        """Readiness of every Kubernetes Node, by name."""
        ...
