"""Fixtures for the lab's Talos nodes: a small mixed-version cluster with hooks that record calls."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from talos_support import CP, W13, W14, W15, FakeHooks

from lab.talos import CommandResult, NodeSpec, TalosCluster, TalosContext


@pytest.fixture
def hooks() -> FakeHooks:
    return FakeHooks(ready={"cp-1": True, "w-13": True, "w-14": True, "w-15": True})


@pytest.fixture
def cluster(hooks: FakeHooks) -> Iterator[TalosCluster]:
    talos = TalosCluster("rehearsal", mixed_nodes(), hooks, reboot_seconds=0.1, health_poll_interval=0.02)
    yield talos
    talos.close()


def mixed_nodes() -> list[NodeSpec]:
    return [
        NodeSpec("cp-1", CP, "controlplane", "v1.13.2"),
        NodeSpec("w-13", W13, "worker", "v1.13.2"),
        NodeSpec("w-14", W14, "worker", "v1.14.1"),
        NodeSpec("w-15", W15, "worker", "v1.15.0"),
    ]


@pytest.fixture
def talosctl(cluster: TalosCluster) -> Callable[..., CommandResult]:
    """Run a command line as a caller whose talosconfig context targets the control plane."""
    return runner(cluster)


@pytest.fixture
def old_client(hooks: FakeHooks) -> Iterator[Callable[..., CommandResult]]:
    """A talosctl 1.13 (it still offers `--mode reboot`) against the same kind of cluster."""
    talos = TalosCluster("rehearsal", mixed_nodes(), hooks, reboot_seconds=0.1, client_version="v1.13.2")
    yield runner(talos)
    talos.close()


def runner(cluster: TalosCluster) -> Callable[..., CommandResult]:
    context = TalosContext(endpoints=(CP,), nodes=(CP,))

    def run(*argv: str) -> CommandResult:
        return cluster.run(list(argv), context)

    return run
