"""The values that cross the boundary between talosctl and the lab."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TalosContext:
    """The resolved talosconfig context of the caller, plus its working directory (for `@file`)."""

    endpoints: tuple[str, ...] = ()
    nodes: tuple[str, ...] = ()
    cwd: str | None = None


@dataclass(frozen=True)
class CommandResult:
    """What talosctl would exit with and print."""

    rc: int
    stdout: str = ""
    stderr: str = ""
