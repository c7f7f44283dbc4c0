"""The lab's Talos nodes: a faithful `talosctl` over per-node state (see lab/bin/talosctl)."""

from lab.talos.cluster import NodeSpec, TalosCluster
from lab.talos.context import CommandResult, TalosContext
from lab.talos.hooks import TalosHooks

__all__ = ["CommandResult", "NodeSpec", "TalosCluster", "TalosContext", "TalosHooks"]
