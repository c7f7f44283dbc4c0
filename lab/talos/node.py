"""One Talos node's state: configuration (active and persistent), boots, services, apply modes.

Everything here runs under the cluster's lock; nothing here sleeps or calls hooks.
"""

from __future__ import annotations

import copy
import difflib
import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any

from lab.talos import cri
from lab.talos.machineconfig import (
    CRI_CUSTOMIZATION_KIND,
    Document,
    NodeIdentity,
    clone,
    encode_documents,
    main_document,
)
from lab.talos.render import format_go_duration
from lab.talos.versions import TalosVersion

# v1alpha1 fields Talos applies without a reboot (runtime CanApplyImmediate).
_IMMEDIATE_TOP = ("debug", "cluster")
_IMMEDIATE_MACHINE = (
    "ca",
    "acceptedCAs",
    "time",
    "certSANs",
    "install",
    "network",
    "sysfs",
    "sysctls",
    "logging",
    "controlPlane",
    "kubelet",
    "kernel",
    "registries",
    "pods",
    "seccompProfiles",
    "nodeAnnotations",
    "nodeLabels",
    "nodeTaints",
)
_IMMEDIATE_FEATURES = (
    "kubernetesTalosAPIAccess",
    "kubePrism",
    "hostDNS",
    "imageCache",
    "nodeAddressSortAlgorithm",
)

# (service id, has a health check, control plane only)
_SERVICES = (
    ("apid", True, False),
    ("auditd", False, False),
    ("containerd", True, False),
    ("cri", True, False),
    ("dashboard", False, False),
    ("etcd", True, True),
    ("kubelet", True, False),
    ("machined", False, False),
    ("syslogd", False, False),
    ("trustd", True, True),
    ("udevd", True, False),
)


class ApplyError(Exception):
    """The node refused a configuration: a gRPC status code and message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"rpc error: code = {self.code} desc = {self.message}"


@dataclass
class ServiceEvent:
    at: float
    state: str
    message: str


@dataclass
class Service:
    id: str
    has_health_check: bool
    events: list[ServiceEvent] = field(default_factory=list)
    state: str = "Running"
    healthy: bool | None = None

    def record(self, at: float, state: str, message: str) -> None:
        self.events.append(ServiceEvent(at, state, message))
        self.state = state


@dataclass
class ConfigResource:
    """The MachineConfig resource metadata for one id (`v1alpha1` or `persistent`)."""

    version: int
    created: float
    updated: float


@dataclass
class ApplyOutcome:
    """What an accepted ApplyConfiguration did: the mode details talosctl prints, and whether to reboot."""

    details: str
    reboot: bool = False
    try_timeout: float | None = None


@dataclass
class NodeState:
    """Per-node state. `phase` is `running` or `rebooting`."""

    name: str
    address: str
    role: str
    version: TalosVersion
    active: list[Document]
    persistent: list[Document]
    booted_at: float
    boot_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    phase: str = "running"
    boots: int = 1
    fault: dict[str, Any] | None = None
    try_generation: int = 0
    resources: dict[str, ConfigResource] = field(default_factory=dict)
    services: dict[str, Service] = field(default_factory=dict)
    boot_customizations: list[cri.Customization] = field(default_factory=list)
    etcd_member_id: int = field(default_factory=lambda: secrets.randbits(63) | 1 << 62)

    @classmethod
    def boot_fresh(cls, identity: NodeIdentity, address: str, docs: list[Document], now: float) -> NodeState:
        node = cls(
            identity.hostname,
            address,
            identity.role,
            identity.version,
            clone(docs),
            clone(docs),
            booted_at=now,
        )
        node.finish_boot(now)
        return node

    @property
    def is_control_plane(self) -> bool:
        return self.role == "controlplane"

    @property
    def running(self) -> bool:
        return self.phase == "running"

    # --- boots -------------------------------------------------------------------------

    def begin_reboot(self, now: float) -> None:
        self.phase = "rebooting"
        self.try_generation += 1
        for service in self.services.values():
            service.record(now, "Finished", "Service finished successfully")
            service.healthy = None if not service.has_health_check else False

    def finish_boot(self, now: float) -> None:
        """Boot from the persistent configuration: staged changes land, tried ones are gone."""
        self.active = clone(self.persistent)
        self.booted_at = now
        self.phase = "running"
        self.try_generation += 1
        self.boot_customizations = cri.legacy_customizations(self.active)
        self.resources = {rid: ConfigResource(1, now, now) for rid in ("persistent", "v1alpha1")}
        self.services = _boot_services(self.is_control_plane, now)

    def reboot_completed(self, now: float) -> None:
        self.boots += 1
        self.boot_id = str(uuid.uuid4())
        self.finish_boot(now)

    # --- CRI ---------------------------------------------------------------------------

    def live_customizations(self) -> list[cri.Customization]:
        """The CRI fragments containerd runs with now; from 1.14 they are resources, merged by name."""
        if self.version.has_cri_customization_document:
            parts = cri.legacy_customizations(self.active) + cri.document_customizations(self.active)
            return sorted(parts, key=lambda part: part.name)
        return list(self.boot_customizations)

    def metrics_address(self) -> str | None:
        return cri.metrics_address(self.live_customizations()) if self.running else None

    def restart_service(self, service_id: str, now: float) -> None:
        service = self.services.get(service_id)
        if service is None:
            raise ApplyError("NotFound", f'service "{service_id}" not found')
        service.record(now, "Stopping", "Restarting service")
        service.record(now, "Running", f"Started task {service_id} (PID 2245) for container {service_id}")
        if service.has_health_check:
            service.record(now, "Running", "Health check successful")
            service.healthy = True

    # --- configuration -----------------------------------------------------------------

    def set_config(self, resource_id: str, docs: list[Document], now: float) -> None:
        target = "active" if resource_id == "v1alpha1" else "persistent"
        if getattr(self, target) == docs:
            return
        setattr(self, target, clone(docs))
        meta = self.resources[resource_id]
        meta.version += 1
        meta.updated = now

    def apply(self, new: list[Document], mode: str, dry_run: bool, try_timeout: float, now: float) -> ApplyOutcome:
        """ApplyConfiguration: validate, then act per mode (the caller performs any reboot)."""
        self._validate(new, mode)
        blocker = immediate_blocker(self.active, new)
        if mode in {"no-reboot", "try"} and blocker:
            raise ApplyError(
                "InvalidArgument", f"this config change can't be applied in immediate mode\ndiff:\n{blocker}"
            )
        reboot = mode == "reboot" or (mode == "auto" and bool(blocker))
        if dry_run:
            return ApplyOutcome(_dry_run_summary(mode, reboot, self.active, new))
        if mode == "staged":
            self.set_config("persistent", new, now)
            return ApplyOutcome("Staged configuration to be applied after the next reboot")
        if mode == "try":
            self.set_config("v1alpha1", new, now)
            self.try_generation += 1
            return ApplyOutcome(
                "The config is applied in 'try' mode and will be automatically reverted back in "
                + format_go_duration(try_timeout),
                try_timeout=try_timeout,
            )
        self.set_config("persistent", new, now)
        if reboot:
            detail = "Applied configuration with a reboot"
            if mode == "auto":
                detail += f": this config change can't be applied in immediate mode\ndiff:\n{blocker}"
            return ApplyOutcome(detail, reboot=True)
        self.set_config("v1alpha1", new, now)
        return ApplyOutcome("Applied configuration without a reboot")

    def _validate(self, new: list[Document], mode: str) -> None:
        if mode == "reboot" and not self.version.accepts_reboot_apply_mode:
            raise ApplyError(
                "Unimplemented",
                "the REBOOT mode is not supported, please use AUTO or NO_REBOOT modes instead",
            )
        kinds = [doc.get("kind") for doc in new]
        if CRI_CUSTOMIZATION_KIND in kinds and not self.version.has_cri_customization_document:
            raise ApplyError(
                "InvalidArgument",
                f'failed to parse config: unknown document type "{CRI_CUSTOMIZATION_KIND}" (version "v1alpha1")',
            )
        for doc in new:
            if doc.get("kind") == CRI_CUSTOMIZATION_KIND and not doc.get("name"):
                raise ApplyError(
                    "InvalidArgument",
                    f"configuration validation failed: {CRI_CUSTOMIZATION_KIND} name is required",
                )
        if main_document(new) is None:
            raise ApplyError("InvalidArgument", "configuration validation failed: v1alpha1 document is missing")

    def revert_try(self, generation: int, now: float) -> bool:
        """Undo a `try` apply when its timer fires, unless something newer happened since."""
        if generation != self.try_generation or not self.running or self.active == self.persistent:
            return False
        self.set_config("v1alpha1", self.persistent, now)
        return True


def immediate_blocker(current: list[Document], new: list[Document]) -> str:
    """The diff of v1alpha1 changes that need a reboot, or "" when everything applies live."""
    cur, nxt = main_document(current), main_document(new)
    if cur is None or nxt is None:
        return ""
    nxt = copy.deepcopy(nxt)
    _copy_keys(cur, nxt, _IMMEDIATE_TOP)
    if isinstance(cur.get("machine"), dict) and isinstance(nxt.get("machine"), dict):
        _copy_keys(cur["machine"], nxt["machine"], _IMMEDIATE_MACHINE)
        cur_features, new_features = cur["machine"].get("features"), nxt["machine"].get("features")
        if isinstance(cur_features, dict) and isinstance(new_features, dict):
            _copy_keys(cur_features, new_features, _IMMEDIATE_FEATURES)
    if cur == nxt:
        return ""
    return unified_diff([cur], [nxt])


def _copy_keys(source: dict[str, Any], target: dict[str, Any], keys: tuple[str, ...]) -> None:
    for key in keys:
        if key in source:
            target[key] = copy.deepcopy(source[key])
        else:
            target.pop(key, None)


def unified_diff(old: list[Document], new: list[Document]) -> str:
    """configdiff's output: `--- a` / `+++ b` hunks, or "" when equal."""
    before = encode_documents(old).splitlines()
    after = encode_documents(new).splitlines()
    lines = list(difflib.unified_diff(before, after, fromfile="a", tofile="b", lineterm=""))
    return "".join(line + "\n" for line in lines)


def _dry_run_summary(mode: str, reboot: bool, current: list[Document], new: list[Document]) -> str:
    if mode == "staged":
        line = "Staged configuration to be applied after the next reboot"
    elif mode == "try":
        line = "Applied configuration in a try mode"
    elif reboot:
        line = "Applied configuration with a reboot"
    else:
        line = "Applied configuration without a reboot"
    diff = unified_diff(current, new) or "No changes.\n"
    return f"Dry run summary:\n{line} (skipped in dry-run).\nConfig diff:\n\n{diff}".rstrip("\n")


def _boot_services(control_plane: bool, now: float) -> dict[str, Service]:
    services = {}
    for offset, (service_id, health, cp_only) in enumerate(_SERVICES):
        if cp_only and not control_plane:
            continue
        service = Service(service_id, health)
        started = now + 0.1 * offset
        service.record(started, "Waiting", 'Waiting for service "machined" to be "up"')
        service.record(started, "Preparing", "Running pre-flight checks")
        service.record(started, "Preparing", "Creating service runner")
        service.record(
            started,
            "Running",
            f"Started task {service_id} (PID {1200 + 37 * offset}) for container {service_id}",
        )
        if health:
            service.record(started, "Running", "Health check successful")
            service.healthy = True
        services[service_id] = service
    return services
