"""`talosctl get` and `talosctl patch`: COSI resources and machine configuration patches."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lab.talos.machineconfig import encode_documents
from lab.talos.node import ApplyError, NodeState
from lab.talos.patching import Patch, PatchError, apply_patches, load_patch
from lab.talos.render import (
    JsonPathError,
    Resource,
    jsonpath_lines,
    resource_json,
    resource_yaml,
    tabwrite,
)
from lab.talos.session import CommandError, Session, UnreachableNodeError

if TYPE_CHECKING:
    from lab.talos.cluster import TalosCluster


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


def get(session: Session) -> None:
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


def patch(session: Session) -> None:
    if resolve_type(session.args[0]) is not MACHINE_CONFIG:
        raise CommandError(f"unsupported resource type: {resolve_type(session.args[0]).type}")
    sources = list(session.flag("patch"))
    if session.flag("patch-file"):
        sources.append("@" + session.flag("patch-file"))
    if not sources:
        raise CommandError("either --patch or --patch-file should be defined")
    patches = [_load(source, session.context.cwd) for source in sources]
    targets = session.targets()
    session.warn_about_older_nodes(targets)
    for target in targets:
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
