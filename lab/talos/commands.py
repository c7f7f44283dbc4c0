"""The talosctl commands the lab serves, each printing what the real one prints."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lab.talos import cli, health
from lab.talos.context import CommandResult, TalosContext
from lab.talos.machineconfig import encode_documents
from lab.talos.node import ApplyError, NodeState
from lab.talos.patching import Patch, PatchError, apply_patches, load_patch
from lab.talos.render import (
    JsonPathError,
    Resource,
    humanize_bytes,
    jsonpath_lines,
    resource_json,
    resource_yaml,
    since,
    tabwrite,
)
from lab.talos.versions import TalosVersion

if TYPE_CHECKING:
    from lab.talos.cluster import TalosCluster

NODES_NOT_SET = (
    "nodes are not set for the command: please use `--nodes` flag or configuration file to set the nodes "
    "to run the command against"
)
_ETCD_NOT_RUNNING = "rpc error: code = FailedPrecondition desc = etcd is not running on this node"
_GO_VERSIONS = {12: "go1.24.9", 13: "go1.25.3", 14: "go1.25.5", 15: "go1.26.0"}


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

    def reach(self, target: str) -> NodeState:
        """The node behind `target`, or ApplyError-like text when it cannot be reached."""
        error = self.endpoint_error or self.cluster.unreachable(target)
        if error:
            raise UnreachableNodeError(error)
        node = self.cluster.find(target)
        assert node is not None
        return node


class UnreachableNodeError(Exception):
    pass


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
    except _ReportedError:
        rc = 1
    return CommandResult(rc, "".join(session.stdout), "".join(session.stderr))


def _usage_failure(exc: cli.UsageError, commands: dict[tuple[str, ...], cli.Command]) -> CommandResult:
    message = str(exc)
    stderr = message + "\n"
    if any(word in message for word in ("arg(s)", "flag", "command")) and exc.command is not None:
        stderr += "\n" + cli.usage(exc.command, commands) + "\n"
    return CommandResult(1, "", stderr)


class _ReportedError(Exception):
    """The command already reported its failure (the reboot tracker suppresses main's error print)."""


# --- get -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResourceType:
    type: str
    namespace: str
    display: str
    aliases: tuple[str, ...]
    columns: tuple[tuple[str, str], ...] = ()


MACHINE_CONFIG = ResourceType(
    "MachineConfigs.config.talos.dev", "config", "MachineConfig", ("mc", "machineconfig", "machineconfigs")
)
MEMBER = ResourceType(
    "Members.cluster.talos.dev",
    "cluster",
    "Member",
    ("member", "members"),
    (
        ("HOSTNAME", "hostname"),
        ("MACHINE TYPE", "machineType"),
        ("OS", "operatingSystem"),
        ("ADDRESSES", "addresses"),
    ),
)
RESOURCE_TYPES = (MACHINE_CONFIG, MEMBER)


def resolve_type(name: str) -> ResourceType:
    lowered = name.lower()
    for rtype in RESOURCE_TYPES:
        if lowered in {*rtype.aliases, rtype.type.lower(), rtype.display.lower()}:
            return rtype
    raise CommandError(f'resource "{name}" is not registered')


def _resources(cluster: TalosCluster, node: NodeState, rtype: ResourceType) -> list[Resource]:
    if rtype is MACHINE_CONFIG:
        configs = {"persistent": node.persistent, "v1alpha1": node.active}
        return [
            Resource(
                rtype.namespace,
                rtype.type,
                rid,
                meta.version,
                meta.created,
                meta.updated,
                encode_documents(configs[rid]),
            )
            for rid, meta in sorted(node.resources.items())
        ]
    return [
        Resource(
            rtype.namespace,
            rtype.type,
            member.name,
            member.boots,
            member.booted_at,
            member.booted_at,
            _member_spec(member),
        )
        for member in sorted(cluster.nodes(), key=lambda n: n.name)
    ]


def _member_spec(member: NodeState) -> dict[str, Any]:
    return {
        "nodeId": hashlib.sha256(member.name.encode()).hexdigest()[:43],
        "addresses": [member.address],
        "hostname": member.name,
        "machineType": member.role,
        "operatingSystem": f"Talos ({member.version})",
    }


def _get(session: Session) -> None:
    output = session.flag("output")
    if output not in {"table", "yaml", "json"} and not output.startswith("jsonpath="):
        raise CommandError(f'output format "{output}" is not supported')
    rtype = resolve_type(session.args[0])
    wanted_id = session.args[1] if len(session.args) > 1 else None
    namespace = session.flag("namespace") or rtype.namespace
    writer = _ResourceWriter(session, output, rtype)
    for target in session.targets():
        with session.cluster.locked():
            try:
                node = session.reach(target)
            except UnreachableNodeError as exc:
                raise CommandError(f"{target}: {exc}") from None
            found = [r for r in _resources(session.cluster, node, rtype) if namespace == rtype.namespace]
        if wanted_id is not None:
            found = [r for r in found if r.id == wanted_id]
            if not found:
                raise CommandError(
                    f"{target}: rpc error: code = NotFound desc = resource "
                    f"{rtype.type}({namespace}/{wanted_id}@undefined) doesn't exist"
                )
        for resource in found:
            writer.write(target, resource)
    writer.flush()


@dataclass
class _ResourceWriter:
    """talosctl's output writers: table (flushed at the end), yaml, json, jsonpath."""

    session: Session
    output: str
    rtype: ResourceType
    rows: list[list[str]] = field(default_factory=list)

    def write(self, node: str, resource: Resource) -> None:
        if self.output == "yaml":
            if self.session.stdout:
                self.session.out("---\n")
            self.session.out(resource_yaml(node, resource))
        elif self.output == "json":
            self.session.out(resource_json(node, resource))
        elif self.output == "table":
            extra = [_column(resource.spec, key) for _, key in self.rtype.columns]
            self.rows.append([node, resource.namespace, self.rtype.display, resource.id, str(resource.version), *extra])
        else:
            data = {"metadata": resource.metadata(), "node": node, "spec": resource.spec}
            try:
                self.session.out(jsonpath_lines(self.output.removeprefix("jsonpath="), data))
            except JsonPathError as exc:
                raise CommandError(f"error finding result for jsonpath: {exc}") from None

    def flush(self) -> None:
        if self.output == "table":
            header = ["NODE", "NAMESPACE", "TYPE", "ID", "VERSION", *(name for name, _ in self.rtype.columns)]
            self.session.out(tabwrite([header, *self.rows]))


def _column(spec: Any, key: str) -> str:
    value = spec.get(key) if isinstance(spec, dict) else None
    if isinstance(value, list):
        return "[" + ",".join(f'"{item}"' for item in value) + "]"
    return "" if value is None else str(value)


# --- patch -----------------------------------------------------------------------------


def _patch(session: Session) -> None:
    if resolve_type(session.args[0]) is not MACHINE_CONFIG:
        raise CommandError(f"unsupported resource type: {resolve_type(session.args[0]).type}")
    sources = list(session.flag("patch"))
    if session.flag("patch-file"):
        sources.append("@" + session.flag("patch-file"))
    if not sources:
        raise CommandError("either --patch or --patch-file should be defined")
    patches = [_load(source, session.context.cwd) for source in sources]
    for target in session.targets():
        _patch_node(session, target, patches)


def _load(source: str, cwd: str | None) -> Patch:
    text = source
    if source.startswith("@"):
        path = Path(os.path.expanduser(source[1:]))
        if not path.is_absolute() and cwd:
            path = Path(cwd) / path
        try:
            text = path.read_text()
        except OSError as exc:
            raise CommandError(f"open {source[1:]}: {exc.strerror.lower() if exc.strerror else exc}") from None
    try:
        return load_patch(text)
    except PatchError as exc:
        raise CommandError(str(exc)) from None


def _patch_node(session: Session, target: str, patches: list[Patch]) -> None:
    with session.cluster.locked():
        try:
            node = session.reach(target)
        except UnreachableNodeError as exc:
            raise CommandError(f"{target}: {exc}") from None
        current = node.active
        name = node.name
    try:
        patched = apply_patches(current, patches)
    except PatchError as exc:
        raise CommandError(str(exc)) from None
    failure: ApplyError | None = None
    details = ""
    try:
        outcome = session.cluster.apply_config(
            name, patched, session.flag("mode"), session.flag("dry-run"), session.flag("timeout")
        )
        details = outcome.details
    except ApplyError as exc:
        failure = exc
    if encode_documents(patched).strip() == encode_documents(current).strip():
        session.err("Apply was skipped: no changes detected.\n")
        return
    session.err(f"patched {MACHINE_CONFIG.type}/v1alpha1 at the node {target}\n")
    if failure is not None:
        raise CommandError(str(failure))
    session.err(details + "\n")


# --- version ---------------------------------------------------------------------------


def _version_lines(version: TalosVersion) -> str:
    sha = hashlib.sha1(str(version).encode()).hexdigest()[:8]
    return (
        f"\tTag:         {version}\n\tSHA:         {sha}\n\tBuilt:       \n"
        f"\tGo version:  {_GO_VERSIONS.get(version.minor, 'go1.25.3')}\n\tOS/Arch:     linux/amd64\n"
    )


def _version(session: Session) -> None:
    as_json = session.flag("json")
    if not as_json:
        session.out("Client:\n")
        client = session.cluster.client_version
        session.out(f"Talos {client}\n" if session.flag("short") else _version_lines(client))
        if session.flag("client"):
            return
        session.out("Server:\n")
    errors = []
    for target in session.targets():
        with session.cluster.locked():
            try:
                node = session.reach(target)
            except UnreachableNodeError as exc:
                errors.append(f"error getting version from node {target}: {exc}")
                continue
            version = node.version
        if as_json:
            session.out(_version_json(target, version) + "\n")
        else:
            session.out(f"\tNODE:        {target}\n" + _version_lines(version) + "\tEnabled:     RBAC\n")
    if errors:
        raise CommandError("\n".join(errors))


def _version_json(node: str, version: TalosVersion) -> str:
    sha = hashlib.sha1(str(version).encode()).hexdigest()[:8]
    go = _GO_VERSIONS.get(version.minor, "go1.25.3")
    return (
        f'{{"metadata":{{"hostname":"{node}"}},"version":{{"tag":"{version}","sha":"{sha}","goVersion":"{go}",'
        f'"os":"linux","arch":"amd64"}},"platform":{{"name":"metal","mode":"metal"}},"features":{{"rbac":true}}}}'
    )


# --- service ---------------------------------------------------------------------------


def _service(session: Session) -> None:
    service_id = session.args[0] if session.args else ""
    action = session.args[1] if len(session.args) > 1 else "status"
    if action not in {"status", "start", "stop", "restart"}:
        raise CommandError(f'unsupported service action: "{action}"')
    targets = session.targets()
    if action != "status":
        raise CommandError(
            "\n".join(
                f"error from node {t}: rpc error: code = Unimplemented desc = the lab does not control services"
                for t in targets
            )
        )
    if service_id:
        _service_info(session, targets, service_id)
    else:
        _service_list(session, targets)


def _service_list(session: Session, targets: list[str]) -> None:
    rows = [["NODE", "SERVICE", "STATE", "HEALTH", "LAST CHANGE", "LAST EVENT"]]
    errors = []
    now = time.time()
    for target in targets:
        with session.cluster.locked():
            try:
                node = session.reach(target)
            except UnreachableNodeError as exc:
                errors.append(f"error from node {target}: {exc}")
                continue
            for service in node.services.values():
                last = service.events[-1]
                rows.append(
                    [
                        target,
                        service.id,
                        service.state,
                        _health(service.healthy, service.has_health_check),
                        f"{since(last.at, now)} ago",
                        last.message,
                    ]
                )
    session.out(tabwrite(rows))
    if errors:
        raise CommandError("\n".join(errors))


def _service_info(session: Session, targets: list[str], service_id: str) -> None:
    rows: list[list[str]] = []
    errors, found = [], False
    now = time.time()
    for target in targets:
        with session.cluster.locked():
            try:
                node = session.reach(target)
            except UnreachableNodeError as exc:
                errors.append(f"error from node {target}: {exc}")
                continue
            service = node.services.get(service_id)
            if service is None:
                continue
            found = True
            rows += [
                ["NODE", target],
                ["ID", service.id],
                ["STATE", service.state],
                ["HEALTH", _health(service.healthy, service.has_health_check)],
            ]
            for index, event in enumerate(reversed(service.events)):
                label = "EVENTS" if index == 0 else ""
                rows.append([label, f"[{event.state}]: {event.message} ({since(event.at, now)} ago)"])
    if rows:
        session.out(tabwrite(rows))
    if errors:
        raise CommandError("\n".join(errors))
    if not found:
        raise CommandError(f'service "{service_id}" is not registered on any nodes')


def _health(healthy: bool | None, has_check: bool) -> str:
    if not has_check or healthy is None:
        return "?"
    return "OK" if healthy else "Fail"


# --- etcd status ------------------------------------------------------------------------


def _etcd_status(session: Session) -> None:
    header = [
        "NODE",
        "MEMBER",
        "DB SIZE",
        "IN USE",
        "LEADER",
        "RAFT INDEX",
        "RAFT TERM",
        "RAFT APPLIED INDEX",
        "LEARNER",
        "PROTOCOL",
        "STORAGE",
        "ERRORS",
    ]
    rows, errors = [header], []
    for target in session.targets():
        with session.cluster.locked():
            try:
                node = session.reach(target)
            except UnreachableNodeError as exc:
                errors.append(f"error from node {target}: {exc}")
                continue
            if not node.is_control_plane:
                errors.append(f"error from node {target}: {_ETCD_NOT_RUNNING}")
                continue
            leader = session.cluster.etcd_leader()
            index, term = session.cluster.etcd_raft()
        size = 18_000_000 + node.etcd_member_id % 4_000_000
        in_use = size * 3 // 10
        rows.append(
            [
                target,
                f"{node.etcd_member_id:016x}",
                humanize_bytes(size),
                f"{humanize_bytes(in_use)} ({in_use / size * 100:.2f}%)",
                f"{leader.etcd_member_id:016x}" if leader else "0000000000000000",
                str(index),
                str(term),
                str(index),
                "false",
                "3.6.0",
                "3.6.0",
                "",
            ]
        )
    session.out(tabwrite(rows))
    if errors:
        raise CommandError("\n".join(errors))


def _etcd_members(session: Session) -> None:
    rows, errors = [["NODE", "ID", "HOSTNAME", "PEER URLS", "CLIENT URLS", "LEARNER"]], []
    for target in session.targets():
        with session.cluster.locked():
            try:
                node = session.reach(target)
            except UnreachableNodeError as exc:
                errors.append(f"error from node {target}: {exc}")
                continue
            if not node.is_control_plane:
                errors.append(f"error from node {target}: {_ETCD_NOT_RUNNING}")
                continue
            members = [n for n in session.cluster.nodes() if n.is_control_plane]
        rows += [
            [
                target,
                f"{m.etcd_member_id:016x}",
                m.name,
                f"https://{m.address}:2380",
                f"https://{m.address}:2379",
                "false",
            ]
            for m in members
        ]
    session.out(tabwrite(rows))
    if errors:
        raise CommandError("\n".join(errors))


# --- reboot ----------------------------------------------------------------------------


def _reboot(session: Session) -> None:
    targets = session.targets()
    if not (session.flag("wait") or session.flag("debug") or session.invocation.values.get("drain")):
        for target in targets:
            with session.cluster.locked():
                try:
                    node = session.reach(target)
                except UnreachableNodeError as exc:
                    raise CommandError(f"error executing reboot: 1 error occurred:\n\t* {target}: {exc}\n\n") from None
                name = node.name
            try:
                session.cluster.reboot(name)
            except ApplyError as exc:
                raise CommandError(f"error executing reboot: 1 error occurred:\n\t* {target}: {exc}\n\n") from None
        return
    deadline = time.monotonic() + session.flag("timeout")
    progress = _Progress(session)
    threads = [threading.Thread(target=_track_reboot, args=(session, target, deadline, progress)) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if progress.failed:
        raise _ReportedError()


@dataclass
class _Progress:
    session: Session
    failed: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def line(self, node: str, message: str, failed: bool = False) -> None:
        with self.lock:
            self.session.err(f'"{node}": {message}\n')
            self.failed = self.failed or failed


def _track_reboot(session: Session, target: str, deadline: float, progress: _Progress) -> None:
    """The action tracker: issue the reboot, follow its events, then check the boot id changed."""
    progress.line(target, "waiting for actor ID")
    with session.cluster.locked():
        try:
            node = session.reach(target)
        except UnreachableNodeError as exc:
            progress.line(target, str(exc), failed=True)
            return
        name = node.name
    try:
        old_boot_id = session.cluster.reboot(name)
    except ApplyError as exc:
        progress.line(target, str(exc), failed=True)
        return
    progress.line(target, f"actor ID: {_actor_id(old_boot_id)}")
    progress.line(target, "sequence: reboot action: START")
    progress.line(target, "task: stopAllServices action: START")
    progress.line(target, "unavailable, retrying...")
    if not session.cluster.wait_for_boot(name, old_boot_id, deadline):
        progress.line(target, "context deadline exceeded", failed=True)
        return
    progress.line(target, 'stage: BOOTING ready: false unmetCond: [name:"nodeReady" reason:"node not ready"]')
    progress.line(target, "events check condition met")
    progress.line(target, "post check passed")


def _actor_id(boot_id: str) -> str:
    return hashlib.sha1(boot_id.encode()).hexdigest()[:8] + "-" + boot_id[9:36]


# --- health ----------------------------------------------------------------------------


def _health_command(session: Session) -> None:
    targets = session.targets()
    if not session.flag("server"):
        raise CommandError("client-side health checks need a kubeconfig; run with --server (the default)")
    if len(targets) > 1:
        raise CommandError('command "health" is not supported with multiple nodes')
    with session.cluster.locked():
        try:
            session.reach(targets[0])
        except UnreachableNodeError as exc:
            raise CommandError(str(exc)) from None
    checker = health.HealthCheck(
        session.cluster,
        control_planes=list(session.flag("control-plane-nodes")) + _list(session.flag("init-node")),
        workers=list(session.flag("worker-nodes")),
        report=lambda line: session.err(line + "\n"),
    )
    if not checker.wait(time.monotonic() + session.flag("wait-timeout")):
        raise CommandError("rpc error: code = DeadlineExceeded desc = context deadline exceeded")


def _list(value: str | None) -> list[str]:
    return [value] if value else []


_HANDLERS: dict[tuple[str, ...], Callable[[Session], None]] = {
    ("get",): _get,
    ("patch",): _patch,
    ("version",): _version,
    ("service",): _service,
    ("reboot",): _reboot,
    ("health",): _health_command,
    ("etcd", "status"): _etcd_status,
    ("etcd", "members"): _etcd_members,
}
