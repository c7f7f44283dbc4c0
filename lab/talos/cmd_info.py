"""`talosctl version`, `service` and `etcd`: what the nodes say about themselves."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Any, TypeVar

from lab.talos.node import ApplyError
from lab.talos.render import (
    humanize_bytes,
    since,
    tabwrite,
)
from lab.talos.session import CommandError, Session, UnreachableNodeError
from lab.talos.versions import TalosVersion

_ETCD_NOT_RUNNING = "rpc error: code = FailedPrecondition desc = etcd is not running on this node"
T = TypeVar("T")
_GO_VERSIONS = {12: "go1.24.9", 13: "go1.25.3", 14: "go1.25.5", 15: "go1.26.0"}


def _version_lines(version: TalosVersion) -> str:
    sha = hashlib.sha1(str(version).encode()).hexdigest()[:8]
    return (
        f"\tTag:         {version}\n\tSHA:         {sha}\n\tBuilt:       \n"
        f"\tGo version:  {_GO_VERSIONS.get(version.minor, 'go1.25.3')}\n\tOS/Arch:     linux/amd64\n"
    )


def version(session: Session) -> None:
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


def service(session: Session) -> None:
    service_id = session.args[0] if session.args else ""
    action = session.args[1] if len(session.args) > 1 else "status"
    if action not in {"status", "start", "stop", "restart"}:
        raise CommandError(f'unsupported service action: "{action}"')
    targets = session.targets()
    if action == "restart":
        _service_restart(session, targets, service_id)
    elif action != "status":
        raise CommandError(
            "\n".join(
                f"error from node {t}: rpc error: code = Unimplemented desc = the lab only restarts services"
                for t in targets
            )
        )
    elif service_id:
        _service_info(session, targets, service_id)
    else:
        _service_list(session, targets)


def _service_restart(session: Session, targets: list[str], service_id: str) -> None:
    rows, errors = [["NODE", "RESPONSE"]], []
    for target in targets:
        with session.cluster.locked():
            try:
                node = session.reach(target)
            except UnreachableNodeError as exc:
                errors.append(f"error from node {target}: {exc}")
                continue
        try:
            session.cluster.restart_service(node.name, service_id)
        except ApplyError as exc:
            errors.append(f"error from node {target}: {exc}")
            continue
        rows.append([target, f'Service "{service_id}" restarted'])
    session.out(tabwrite(rows))
    if errors:
        raise CommandError("\n".join(errors))


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


def _etcd_nodes(session: Session, errors: list[str], read: Callable[[], T]) -> list[tuple[str, Any, T]]:
    """The targeted nodes that run etcd, each with what `read` saw under the lock; the others as errors."""
    found = []
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
            found.append((target, node, read()))
    return found


def etcd_status(session: Session) -> None:
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
    for target, node, (leader, (index, term)) in _etcd_nodes(
        session, errors, lambda: (session.cluster.etcd_leader(), session.cluster.etcd_raft())
    ):
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


def etcd_members(session: Session) -> None:
    rows, errors = [["NODE", "ID", "HOSTNAME", "PEER URLS", "CLIENT URLS", "LEARNER"]], []
    for target, _node, members in _etcd_nodes(
        session, errors, lambda: [n for n in session.cluster.nodes() if n.is_control_plane]
    ):
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


# --- read ------------------------------------------------------------------------------

# The files the lab's nodes can show; the boot id is what `talosctl reboot` compares to see a node came back.
_READABLE = {"/proc/sys/kernel/random/boot_id": lambda node: node.boot_id + "\n"}


def read(session: Session) -> None:
    path = session.args[0]
    errors = []
    for target in session.targets():
        with session.cluster.locked():
            try:
                node = session.reach(target)
            except UnreachableNodeError as exc:
                errors.append(f"error reading file: {exc}")
                continue
            content = _READABLE[path](node) if path in _READABLE else None
        if content is None:
            errors.append(f"{target}: rpc error: code = Unknown desc = open {path}: no such file or directory")
        else:
            session.out(content)
    if errors:
        raise CommandError("\n".join(errors))
