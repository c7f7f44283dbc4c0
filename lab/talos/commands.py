"""The talosctl commands the lab serves, each printing what the real one prints."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from lab.talos import cli, cmd_info, cmd_lifecycle, cmd_resources
from lab.talos.context import CommandResult, TalosContext
from lab.talos.session import CommandError, ReportedError, Session

if TYPE_CHECKING:
    from lab.talos.cluster import TalosCluster


def execute(cluster: TalosCluster, argv: list[str], context: TalosContext) -> CommandResult:
    commands = cli.build_commands(cluster.client_version)
    try:
        invocation = cli.parse(argv, commands)
    except cli.UsageError as exc:
        return _usage_failure(exc, commands)
    command = invocation.command
    if invocation.help or not command.runnable:
        return CommandResult(0, cli.help_text(command, commands))
    session = Session(cluster, invocation, context)
    try:
        _HANDLERS[command.path](session)
        rc = 0
    except CommandError as exc:
        session.err(f"{exc}\n")
        rc = 1
    except ReportedError:
        rc = 1
    return CommandResult(rc, "".join(session.stdout), "".join(session.stderr))


def _usage_failure(exc: cli.UsageError, commands: dict[tuple[str, ...], cli.Command]) -> CommandResult:
    message = str(exc)
    stderr = message + "\n"
    if any(word in message for word in ("arg(s)", "flag", "command")) and exc.command is not None:
        stderr += "\n" + cli.usage(exc.command, commands) + "\n"
    return CommandResult(1, "", stderr)


_HANDLERS: dict[tuple[str, ...], Callable[[Session], None]] = {
    ("get",): cmd_resources.get,
    ("patch",): cmd_resources.patch,
    ("version",): cmd_info.version,
    ("service",): cmd_info.service,
    ("reboot",): cmd_lifecycle.reboot,
    ("read",): cmd_info.read,
    ("health",): cmd_lifecycle.health_check,
    ("etcd", "status"): cmd_info.etcd_status,
    ("etcd", "members"): cmd_info.etcd_members,
}
