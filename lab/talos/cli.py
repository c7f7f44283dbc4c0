"""talosctl's command line as cobra/pflag parse it: commands, flags, and their error texts."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from typing import Any

from lab.talos.render import format_go_duration, parse_go_duration
from lab.talos.versions import TalosVersion

_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}


@dataclass(frozen=True)
class Flag:
    """One pflag flag. kind: string, bool, slice (comma separated), array (repeatable), duration, choice."""

    name: str
    kind: str = "string"
    default: Any = None
    shorthand: str = ""
    usage: str = ""
    choices: tuple[str, ...] = ()
    hidden: bool = False

    @property
    def takes_value(self) -> bool:
        return self.kind != "bool"

    @property
    def label(self) -> str:
        return f"-{self.shorthand}, --{self.name}" if self.shorthand else f"--{self.name}"


@dataclass(frozen=True)
class Command:
    """A talosctl (sub)command; `max_args` None means unlimited."""

    path: tuple[str, ...]
    use: str
    short: str
    flags: tuple[Flag, ...] = ()
    min_args: int = 0
    max_args: int | None = 0
    aliases: tuple[str, ...] = ()
    runnable: bool = True

    @property
    def command_path(self) -> str:
        return " ".join(("talosctl", *self.path))


class UsageError(Exception):
    """A command line talosctl rejects before contacting any node."""

    def __init__(self, message: str, command: Command | None) -> None:
        super().__init__(message)
        self.command = command


@dataclass
class Invocation:
    command: Command
    args: list[str]
    values: dict[str, Any]
    changed: set[str] = field(default_factory=set)
    help: bool = False

    def value(self, name: str) -> Any:
        return self.values[name]


GLOBAL_FLAGS = (
    Flag(
        "talosconfig",
        usage="The path to the Talos configuration file. Defaults to 'TALOSCONFIG' env variable if set, "
        "otherwise '$HOME/.talos/config' and '/var/run/secrets/talos.dev/config' in order.",
    ),
    Flag("context", usage="Context to be used in command"),
    Flag("nodes", "slice", (), "n", "target the specified nodes"),
    Flag("endpoints", "slice", (), "e", "override default endpoints in Talos configuration"),
    Flag("cluster", usage="Cluster to connect to if a proxy endpoint is used."),
    Flag("siderov1-keys-dir", usage="The path to the SideroV1 auth PGP keys directory."),
)
_HELP = Flag("help", "bool", False, "h", "help")

ROOT = Command(
    (),
    "talosctl",
    "A CLI for out-of-band management of Kubernetes nodes created by Talos",
    max_args=None,
    runnable=False,
)


def build_commands(client: TalosVersion) -> dict[tuple[str, ...], Command]:
    """The command tree of a talosctl of this version (only the commands the lab serves)."""
    reboot_flags = [
        Flag(
            "wait",
            "bool",
            True,
            usage="wait for the operation to complete, tracking its progress. always set to true when --debug is set",
        ),
        Flag(
            "debug",
            "bool",
            False,
            usage="debug operation from kernel logs. --wait is set to true when this flag is set",
        ),
        Flag(
            "timeout",
            "duration",
            1800.0,
            usage="time to wait for the operation is complete if --debug or --wait is set",
        ),
        Flag("mode", "choice", "default", "m", "select the reboot mode", ("default", "force", "powercycle")),
    ]
    if client.reboot_has_drain:
        reboot_flags.append(Flag("drain", "bool", False, usage="drain the node before rebooting"))
    commands = [
        Command(
            ("get",),
            "get <type> [<id>]",
            "Get a specific resource or list of resources (use 'talosctl get rd' to see all available resource types).",
            (
                Flag(
                    "output",
                    default="table",
                    shorthand="o",
                    usage="output mode (json, table, yaml, jsonpath)",
                ),
                Flag("namespace", usage="resource namespace (default is to use default namespace per resource)"),
                Flag(
                    "insecure",
                    "bool",
                    False,
                    "i",
                    "get resources using the insecure (encrypted with no auth) maintenance service",
                ),
            ),
            1,
            2,
            ("g",),
        ),
        Command(
            ("patch",),
            "patch machineconfig",
            "Patch machine configuration of a Talos node with a local patch.",
            (
                Flag("namespace", usage="resource namespace (default is to use default namespace per resource)"),
                Flag("patch-file", usage="a file containing a patch to be applied to the resource."),
                Flag(
                    "patch",
                    "array",
                    (),
                    "p",
                    "the patch to be applied to the resource file, use @file to read a patch from file.",
                ),
                Flag(
                    "dry-run",
                    "bool",
                    False,
                    usage="print the change summary and patch preview without applying the changes",
                ),
                Flag(
                    "timeout",
                    "duration",
                    60.0,
                    usage="the config will be rolled back after specified timeout (if try mode is selected)",
                ),
                Flag("mode", "choice", "auto", "m", "apply config mode", client.patch_modes),
            ),
            1,
            2,
        ),
        Command(
            ("version",),
            "version",
            "Prints the version",
            (
                Flag("short", "bool", False, usage="Print the short version"),
                Flag("client", "bool", False, usage="Print client version only"),
                Flag("json", "bool", False, hidden=True),
                Flag("insecure", "bool", False, "i", "use Talos maintenance mode API"),
            ),
            0,
            0,
        ),
        Command(
            ("service",),
            "service [<id> [start|stop|restart|status]]",
            "Retrieve the state of a service (or all services), control service state",
            (),
            0,
            2,
            ("services",),
        ),
        Command(("reboot",), "reboot", "Reboot a node", tuple(reboot_flags), 0, 0),
        Command(("read",), "read <path>", "Read a file on the machine", (), 1, 1, ("cat",)),
        Command(
            ("health",),
            "health",
            "Check cluster health",
            (
                Flag("init-node", usage="specify IPs of init node"),
                Flag("control-plane-nodes", "slice", (), usage="specify IPs of control plane nodes"),
                Flag("worker-nodes", "slice", (), usage="specify IPs of worker nodes"),
                Flag("wait-timeout", "duration", 1200.0, usage="timeout to wait for the cluster to be ready"),
                Flag("k8s-endpoint", usage="use endpoint instead of kubeconfig default"),
                Flag("server", "bool", True, usage="run server-side check"),
                Flag("run-e2e", "bool", False, usage="run Kubernetes e2e test"),
            ),
            0,
            0,
        ),
        Command(("etcd",), "etcd", "Manage etcd", runnable=False, max_args=None),
        Command(("etcd", "status"), "status", "Get the status of etcd cluster member", (), 0, 0),
        Command(("etcd", "members"), "members", "Get the list of etcd cluster members", (), 0, 0),
    ]
    return {command.path: command for command in commands}


def parse(argv: list[str], commands: dict[tuple[str, ...], Command]) -> Invocation:
    """Resolve the command and parse its flags and arguments; raise UsageError like cobra."""
    command, positions = _find_command(argv, commands)
    flags = (*command.flags, *GLOBAL_FLAGS, _HELP)
    values = {flag.name: _copy_default(flag.default) for flag in flags}
    invocation = Invocation(command, [], values)
    tokens = [token for index, token in enumerate(argv) if index not in positions]
    _parse_flags(tokens, flags, invocation)
    if invocation.values["help"]:
        invocation.help = True
        return invocation
    _check_args(command, invocation.args, commands)
    return invocation


def _copy_default(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _find_command(argv: list[str], commands: dict[tuple[str, ...], Command]) -> tuple[Command, set[int]]:
    path: tuple[str, ...] = ()
    positions: set[int] = set()
    value_flags = _value_flags(GLOBAL_FLAGS)
    index = 0
    while index < len(argv):
        token = argv[index]
        if token == "--":
            break
        if token.startswith("-") and len(token) > 1:
            if "=" not in token and token in value_flags:
                index += 1
            index += 1
            continue
        child = _child(commands, path, token)
        if child is None:
            if not path:
                raise UsageError(_unknown_command(token, ROOT, commands), ROOT)
            break
        path = child.path
        positions.add(index)
        value_flags = _value_flags((*child.flags, *GLOBAL_FLAGS))
        index += 1
    return (commands[path] if path else ROOT), positions


def _value_flags(flags: tuple[Flag, ...]) -> set[str]:
    names = {f"--{flag.name}" for flag in flags if flag.takes_value}
    return names | {f"-{flag.shorthand}" for flag in flags if flag.takes_value and flag.shorthand}


def _child(commands: dict[tuple[str, ...], Command], path: tuple[str, ...], word: str) -> Command | None:
    for command in commands.values():
        if command.path[:-1] == path and word in {command.path[-1], *command.aliases}:
            return command
    return None


def _unknown_command(word: str, parent: Command, commands: dict[tuple[str, ...], Command]) -> str:
    names = [cmd.path[-1] for cmd in commands.values() if cmd.path[:-1] == parent.path]
    suggestions = [name for name in names if _levenshtein(word, name) <= 2 or name.startswith(word)]
    text = f'unknown command "{word}" for "{parent.command_path}"'
    if suggestions:
        text += "\n\nDid you mean this?\n" + "".join(f"\t{name}\n" for name in suggestions)
    return text


def _levenshtein(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        current = [i]
        for j, char_b in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b)))
        previous = current
    return previous[-1]


def _parse_flags(tokens: list[str], flags: tuple[Flag, ...], invocation: Invocation) -> None:
    by_name = {flag.name: flag for flag in flags}
    by_short = {flag.shorthand: flag for flag in flags if flag.shorthand}
    index = 0
    while index < len(tokens):
        token = tokens[index]
        index += 1
        if token == "--":
            invocation.args.extend(tokens[index:])
            return
        if token.startswith("--"):
            name, has_value, value = token[2:].partition("=")
            flag = by_name.get(name)
            if flag is None:
                raise UsageError(f"unknown flag: --{name}", invocation.command)
            if not has_value and flag.takes_value:
                if index >= len(tokens):
                    raise UsageError(f"flag needs an argument: --{name}", invocation.command)
                value, has_value = tokens[index], True
                index += 1
            _set(flag, value if has_value else None, invocation)
        elif token.startswith("-") and len(token) > 1:
            index = _parse_shorthands(token, tokens, index, by_short, invocation)
        else:
            invocation.args.append(token)


def _parse_shorthands(
    token: str, tokens: list[str], index: int, by_short: dict[str, Flag], invocation: Invocation
) -> int:
    letters = token[1:]
    while letters:
        letter, letters = letters[0], letters[1:]
        flag = by_short.get(letter)
        if flag is None:
            raise UsageError(f"unknown shorthand flag: '{letter}' in {token}", invocation.command)
        if letters.startswith("="):
            _set(flag, letters[1:], invocation)
            return index
        if not flag.takes_value:
            _set(flag, None, invocation)
            continue
        if letters:
            _set(flag, letters, invocation)
            return index
        if index >= len(tokens):
            raise UsageError(f"flag needs an argument: '{letter}' in {token}", invocation.command)
        _set(flag, tokens[index], invocation)
        return index + 1
    return index


def _set(flag: Flag, raw: str | None, invocation: Invocation) -> None:
    try:
        value = _convert(flag, raw, invocation.values[flag.name], flag.name in invocation.changed)
    except ValueError as exc:
        raise UsageError(f'invalid argument "{raw}" for "{flag.label}" flag: {exc}', invocation.command) from exc
    invocation.values[flag.name] = value
    invocation.changed.add(flag.name)


def _convert(flag: Flag, raw: str | None, current: Any, seen: bool) -> Any:
    if flag.kind == "bool":
        if raw is None or raw in _TRUE:
            return True
        if raw in _FALSE:
            return False
        raise ValueError(f'strconv.ParseBool: parsing "{raw}": invalid syntax')
    assert raw is not None
    if flag.kind == "duration":
        return parse_go_duration(raw)
    if flag.kind == "choice":
        if raw not in flag.choices:
            raise ValueError(f"possible options are: {', '.join(sorted(flag.choices))}")
        return raw
    if flag.kind == "slice":
        parsed = next(csv.reader([raw])) if raw else []
        return [*current, *parsed] if seen else parsed
    if flag.kind == "array":
        return [*current, raw]
    return raw


def _check_args(command: Command, args: list[str], commands: dict[tuple[str, ...], Command]) -> None:
    count = len(args)
    if not command.runnable:
        return
    if command.max_args == 0 and count:
        raise UsageError(f'unknown command "{args[0]}" for "{command.command_path}"', command)
    if command.max_args is not None and count > command.max_args and command.min_args == 0:
        raise UsageError(f"accepts at most {command.max_args} arg(s), received {count}", command)
    if command.max_args is not None and not command.min_args <= count <= command.max_args:
        raise UsageError(f"accepts between {command.min_args} and {command.max_args} arg(s), received {count}", command)


def usage(command: Command, commands: dict[tuple[str, ...], Command]) -> str:
    """cobra's UsageString, close enough for a human to find the right flag."""
    lines = ["Usage:"]
    if command.runnable:
        lines.append(f"  {' '.join(('talosctl', *command.path[:-1], command.use))} [flags]")
    children = sorted(cmd.path[-1] for cmd in commands.values() if cmd.path[:-1] == command.path)
    if children:
        lines.append(f"  {command.command_path} [command]")
    if command.aliases:
        lines += ["", "Aliases:", f"  {', '.join((command.path[-1], *command.aliases))}"]
    if children:
        lines += ["", "Available Commands:"]
        width = max(11, *(len(name) for name in children))  # cobra pads command names to at least 11
        shorts = {cmd.path[-1]: cmd.short for cmd in commands.values() if cmd.path[:-1] == command.path}
        lines += [f"  {name.ljust(width)} {shorts[name]}" for name in children]
    lines += ["", "Flags:", *_flag_lines((*command.flags, _HELP), command)]
    lines += ["", "Global Flags:", *_flag_lines(GLOBAL_FLAGS, command)]
    if children:
        lines += ["", f'Use "{command.command_path} [command] --help" for more information about a command.']
    return "\n".join(lines) + "\n"


def _flag_lines(flags: tuple[Flag, ...], command: Command) -> list[str]:
    rows = []
    for flag in flags:
        if flag.hidden:
            continue
        left = f"  -{flag.shorthand}, --{flag.name}" if flag.shorthand else f"      --{flag.name}"
        type_name = {
            "string": "string",
            "slice": "strings",
            "array": "stringArray",
            "duration": "duration",
            "choice": "string",
        }.get(flag.kind, "")
        if type_name:
            left += f" {type_name}"
        usage_text = flag.usage or (f"help for {command.path[-1]}" if flag.name == "help" and command.path else "help")
        rows.append((left, usage_text + _default_note(flag)))
    width = max((len(left) for left, _ in rows), default=0)
    return [f"{left.ljust(width)}   {text}" for left, text in rows]


def _default_note(flag: Flag) -> str:
    if flag.kind == "duration":
        return f" (default {format_go_duration(flag.default)})"
    if flag.kind == "bool" and flag.default:
        return " (default true)"
    if flag.kind in {"string", "choice"} and flag.default:
        return f' (default "{flag.default}")'
    return ""


def help_text(command: Command, commands: dict[tuple[str, ...], Command]) -> str:
    return f"{command.short}\n\n{usage(command, commands)}"
