"""One talosctl invocation: its flags, targets, output, and the errors that end it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lab.talos import cli
from lab.talos.context import TalosContext
from lab.talos.node import NodeState

if TYPE_CHECKING:
    from lab.talos.cluster import TalosCluster

NODES_NOT_SET = (
    "nodes are not set for the command: please use `--nodes` flag or configuration file to set the nodes "
    "to run the command against"
)


class CommandError(Exception):
    """The error talosctl's main prints on stderr before exiting 1."""


@dataclass
class Session:
    """One talosctl invocation: parsed flags, target nodes, and what it has printed so far."""

    cluster: TalosCluster
    invocation: cli.Invocation
    context: TalosContext
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)
    endpoint_error: str | None = None

    def flag(self, name: str) -> Any:
        return self.invocation.value(name)

    @property
    def args(self) -> list[str]:
        return self.invocation.args

    def out(self, text: str) -> None:
        self.stdout.append(text)

    def err(self, text: str) -> None:
        self.stderr.append(text)

    def targets(self) -> list[str]:
        nodes = self.flag("nodes") or list(self.context.nodes)
        if not nodes:
            raise CommandError(NODES_NOT_SET)
        self._check_endpoints()
        return nodes

    def _check_endpoints(self) -> None:
        endpoints = self.flag("endpoints") or list(self.context.endpoints)
        if not endpoints:
            raise CommandError("error constructing client: failed to determine endpoints")
        self.endpoint_error = self.cluster.endpoint_error(endpoints)

    def warn_about_older_nodes(self, targets: list[str]) -> None:
        """talosctl's ClientVersionCheck: a warning (not an error) for nodes older than the client."""
        client = self.cluster.client_version
        warnings = []
        with self.cluster.locked():
            for target in targets:
                node = None if self.endpoint_error else self.cluster.find(target)
                if node is not None and node.running and node.version < client:
                    warnings.append(
                        f"{target}: server version {str(node.version)[1:]} is older than client version {str(client)[1:]}"
                    )
        if warnings:
            self.err(f"WARNING: {', '.join(warnings)}\n")

    def reach(self, target: str) -> NodeState:
        """The node behind `target`; UnreachableNodeError carries the gRPC error when it cannot be reached."""
        error = self.endpoint_error or self.cluster.unreachable(target)
        if error:
            raise UnreachableNodeError(error)
        node = self.cluster.find(target)
        assert node is not None
        return node


class UnreachableNodeError(Exception):
    """Dialing the node (or every endpoint) failed; the message is the gRPC error text."""


class ReportedError(Exception):
    """The command already reported its failure (the reboot tracker suppresses main's error print)."""
