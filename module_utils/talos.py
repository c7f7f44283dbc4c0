"""talosctl for the Talos modules: running it, reading what it prints, and the containerd metrics patch.

Talos nodes have no SSH and no Python: every module runs on the controller and drives talosctl.
The containerd metrics listener is enabled differently per Talos version (siderolabs/talos):

- up to 1.13, a `machine.files` entry at /etc/cri/conf.d/20-customization.part, read at boot only;
- from 1.14, a `CRICustomizationConfig` document, merged with the other CRI fragments in name order
  (the legacy file under the reserved name `customization`) and applied by restarting CRI live;
- from 1.15 (containerd 2.x), the `[plugins."io.containerd.server.v1.metrics"]` table replaces `[metrics]`.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import re
import shlex
import subprocess
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml

Document = dict[str, Any]

CRI_CUSTOMIZATION_PATH = "/etc/cri/conf.d/20-customization.part"
CRI_CUSTOMIZATION_KIND = "CRICustomizationConfig"
LEGACY_CUSTOMIZATION_NAME = "customization"
# CRI fragments merge in name order and the last one setting the address wins: sorting after the
# legacy `customization` file keeps a stale address left there by a 1.13 rollout from overriding ours.
METRICS_DOCUMENT_NAME = "zz-containerd-metrics"
METRICS_PLUGIN = "io.containerd.server.v1.metrics"
DEFAULT_METRICS_ADDRESS = "127.0.0.1:11234"
BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id"


# --- running talosctl ----------------------------------------------------------------------------


class TalosctlError(Exception):
    """talosctl failed or timed out; `command` never holds secrets, `stderr` is redacted."""

    def __init__(self, command: str, rc: int | None, stderr: str) -> None:
        super().__init__(f"{command}: {stderr.strip() or f'exit code {rc}'}")
        self.command = command
        self.rc = rc
        self.stderr = stderr


@dataclass(frozen=True)
class TalosctlResult:
    command: str
    stdout: str
    stderr: str

    @property
    def stderr_lines(self) -> list[str]:
        return self.stderr.splitlines()


def talosctl_argv(args: Sequence[str], talosconfig: str | None, nodes: Sequence[str], binary: str) -> list[str]:
    argv = [binary, *args]
    if talosconfig:
        argv += ["--talosconfig", talosconfig]
    if nodes:
        argv += ["--nodes", ",".join(nodes)]
    return argv


def run_talosctl(
    args: Sequence[str],
    talosconfig: str | None,
    nodes: Sequence[str],
    timeout: float,
    binary: str = "talosctl",
) -> TalosctlResult:
    """Run one talosctl command; TalosctlError on a non-zero exit or when `timeout` seconds pass.

    Patches travel as `@file` arguments and credentials stay in the talosconfig, so the command line
    carries no secret. stderr may hold configuration diffs, so it is redacted before it leaves.
    """
    argv = talosctl_argv(args, talosconfig, nodes, binary)
    command = shlex.join(argv)
    try:
        completed = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise TalosctlError(command, None, f"timed out after {timeout:g}s") from None
    except OSError as exc:
        raise TalosctlError(command, None, f"cannot run {binary}: {exc.strerror or exc}") from None
    stderr = redact_secrets(completed.stderr)
    if completed.returncode != 0:
        raise TalosctlError(command, completed.returncode, stderr)
    return TalosctlResult(command, completed.stdout, stderr)


@dataclass(frozen=True)
class TalosNode:
    """One node as the modules reach it: talosctl binary, talosconfig, `-n` target, per-call timeout."""

    node: str
    talosconfig: str | None
    binary: str
    timeout: float

    def run(self, *args: str) -> TalosctlResult:
        return run_talosctl(args, self.talosconfig, [self.node], self.timeout, self.binary)


# What talosctl reports when a node's API could not be reached, or could not answer, for now (gRPC status codes).
TRANSIENT_GRPC_CODES = ("code = Unavailable", "code = DeadlineExceeded", "code = ResourceExhausted")
READ_ATTEMPTS = 3


def is_transient(exc: TalosctlError) -> bool:
    """Whether asking again later may succeed: the node's API was unreachable or busy, or did not answer in time."""
    timed_out = exc.rc is None and exc.stderr.startswith("timed out after")
    return timed_out or any(code in exc.stderr for code in TRANSIENT_GRPC_CODES)


def retried(read: Callable[[], Any], sleep: Callable[[float], None] = time.sleep) -> Any:
    """A read of a node that is up, asked again 1 s and then 2 s later when talosctl could not reach it for now.

    For the reads before a change: a loaded network or apid must not stop a rollout whose next node is healthy.
    Not for the waits after a change, where an unreachable node is expected and the wait reads again anyway.
    """
    for attempt in range(READ_ATTEMPTS - 1):
        try:
            return read()
        except TalosctlError as exc:
            if not is_transient(exc):
                raise
        sleep(2**attempt)
    return read()


def concurrently(*calls: Callable[[], Any]) -> list[Any]:
    """The results of independent reads run side by side (each a talosctl process); the first error is raised.

    A rolling change reads every node before and after its change: side by side, a node's reads take the
    time of the slowest one instead of their sum, once per node.
    """
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        futures = [pool.submit(call) for call in calls]
        return [future.result() for future in futures]


def without_version_warning(lines: list[str]) -> list[str]:
    """stderr without talosctl's `WARNING: <node>: server version X is older than client version Y`."""
    return [line for line in lines if not line.startswith("WARNING: ")]


# --- secrets in talosctl output ------------------------------------------------------------------

# Fields Talos itself redacts (v1alpha1 Config.Redact); diff context lines may show any of them.
_SECRET_LINE = re.compile(
    r"^(?P<lead>[ +-]?\s*(?:-\s+)?)"
    r"(?P<key>token|key|secret|aescbcEncryptionSecret|secretboxEncryptionSecret):[ \t]*(?P<value>\S.*)$"
)
_BLOCK_INDICATOR = re.compile(r"^[|>][+-]?$")
REDACTED = "<redacted>"


def redact_secrets(text: str) -> str:
    """Machine configuration text (plain or as a unified diff) with secret values replaced."""
    out = []
    block_indent: int | None = None
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\n")
        if block_indent is not None:
            if body[1:].strip() and _indent(body[1:]) > block_indent:
                out.append(body[:1] + " " * _indent(body[1:]) + REDACTED + "\n")
                continue
            block_indent = None
        match = _SECRET_LINE.match(body)
        if match is None:
            out.append(line)
            continue
        if _BLOCK_INDICATOR.match(match["value"].strip()):
            block_indent = _indent(body[1:])
        out.append(f"{match['lead']}{match['key']}: {REDACTED}" + ("\n" if line.endswith("\n") else ""))
    return "".join(out)


def _indent(text: str) -> int:
    return len(text) - len(text.lstrip(" "))


# --- versions --------------------------------------------------------------------------------------

_VERSION = re.compile(r"v?(\d+)\.(\d+)\.(\d+)(?:[-+][0-9A-Za-z.-]+)?")


@dataclass(frozen=True, order=True)
class TalosVersion:
    major: int
    minor: int
    patch: int

    @classmethod
    def parse(cls, text: str) -> TalosVersion:
        """`v1.13.2`, `1.13.2`, `v1.14.0-alpha.1`, or a `Talos v1.12.0` line of `talosctl version --short`."""
        match = _VERSION.fullmatch(text.strip().removeprefix("Talos ").strip())
        if match is None:
            raise ValueError(f"not a Talos version: {text.strip()!r}")
        return cls(*(int(part) for part in match.groups()))

    def at_least(self, major: int, minor: int) -> bool:
        return (self.major, self.minor) >= (major, minor)

    def __str__(self) -> str:
        return f"v{self.major}.{self.minor}.{self.patch}"


def parse_server_version(stdout: str) -> TalosVersion:
    """The node's version from `talosctl version`: the first `Tag:` line after `Server:`."""
    lines = stdout.splitlines()
    try:
        start = next(index for index, line in enumerate(lines) if line.strip() == "Server:")
    except StopIteration:
        raise ValueError("talosctl version printed no Server: section") from None
    for line in lines[start + 1 :]:
        label, _, value = line.strip().partition(":")
        if label == "Tag":
            return TalosVersion.parse(value)
    raise ValueError("talosctl version printed no server Tag:")


# --- machine configuration -------------------------------------------------------------------------


def parse_server_versions(stdout: str) -> dict[str, TalosVersion]:
    """`talosctl version` over several nodes: each `NODE:` line after `Server:` and the `Tag:` that follows it."""
    lines = stdout.splitlines()
    start = next((index for index, line in enumerate(lines) if line.strip() == "Server:"), len(lines))
    versions: dict[str, TalosVersion] = {}
    node = None
    for line in lines[start + 1 :]:
        label, _, value = line.strip().partition(":")
        if label == "NODE":
            node = value.strip()
        elif label == "Tag" and node is not None and node not in versions:
            versions[node] = TalosVersion.parse(value)
    return versions


def active_config(get_mc_yaml: str) -> list[Document]:
    """The documents of the active (`v1alpha1`) MachineConfig in `talosctl get mc -o yaml` output.

    The output is one YAML document per resource (`v1alpha1` and `persistent`), each holding the
    machine configuration as a multi-document YAML string under `spec`.
    """
    resources = [item for item in _load_all(get_mc_yaml, "talosctl get mc output") if isinstance(item, dict)]
    active = next((r for r in resources if (r.get("metadata") or {}).get("id") == "v1alpha1"), None)
    if active is None:
        raise ValueError("talosctl get mc printed no v1alpha1 MachineConfig")
    return _config_documents(active)


def active_configs(get_mc_yaml: str) -> dict[str, list[Document]]:
    """`talosctl get mc -o yaml` over several nodes: each node's (`node:`) active configuration documents."""
    resources = [item for item in _load_all(get_mc_yaml, "talosctl get mc output") if isinstance(item, dict)]
    return {
        str(resource.get("node")): _config_documents(resource)
        for resource in resources
        if (resource.get("metadata") or {}).get("id") == "v1alpha1"
    }


def _config_documents(resource: dict[str, Any]) -> list[Document]:
    if not isinstance(resource.get("spec"), str):
        raise ValueError("talosctl get mc printed no v1alpha1 MachineConfig")
    docs = [doc for doc in _load_all(resource["spec"], "the machine configuration") if doc is not None]
    if not all(isinstance(doc, dict) for doc in docs):
        raise ValueError("the machine configuration holds a document that is not a mapping")
    main_document(docs)
    return docs


def _load_all(text: str, what: str) -> list[Any]:
    try:
        return list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        raise ValueError(f"{what} is not valid YAML: {exc}") from None


def main_document(docs: list[Document]) -> Document:
    """The v1alpha1 document (the one without `kind`); active_config() guarantees there is one."""
    found = next((doc for doc in docs if "kind" not in doc), None)
    if found is None:
        raise ValueError("the machine configuration has no v1alpha1 document")
    return found


def machine_type(docs: list[Document]) -> str:
    """`controlplane`, `init` or `worker`."""
    return str((main_document(docs).get("machine") or {}).get("type", ""))


def is_control_plane(docs: list[Document]) -> bool:
    return machine_type(docs) in {"controlplane", "init"}


# --- containerd metrics: what each version wants ----------------------------------------------------


class Mechanism(StrEnum):
    FILES = "machine.files"
    DOCUMENT = "CRICustomizationConfig"


def metrics_mechanism(version: TalosVersion) -> Mechanism:
    return Mechanism.DOCUMENT if version.at_least(1, 14) else Mechanism.FILES


def metrics_fragment(version: TalosVersion, address: str) -> str:
    """The CRI TOML fragment that makes containerd serve /v1/metrics on `address`."""
    table = f'plugins."{METRICS_PLUGIN}"' if version.at_least(1, 15) else "metrics"
    return f'[{table}]\n  address = "{address}"\n'


class MetricsAddressError(ValueError):
    """A metrics address that is malformed, or exposed to the network without the override."""


def check_metrics_address(address: str, allow_non_loopback: bool) -> None:
    host, port = _split_host_port(address)
    if not 0 < port < 65536:
        raise MetricsAddressError(f"metrics_address {address!r}: port must be between 1 and 65535")
    if _is_loopback(host) or allow_non_loopback:
        return
    raise MetricsAddressError(
        f"metrics_address {address!r} is not a loopback address: containerd serves /v1/metrics without TLS "
        "or authentication, so every host that can reach the node could read the ID, namespace and resource "
        "usage of every container on it. Keep the default 127.0.0.1:11234 (the OpenTelemetry Collector runs "
        "with hostNetwork and scrapes its own node), or set allow_non_loopback: true once a firewall restricts "
        "who can reach that port."
    )


def _split_host_port(address: str) -> tuple[str, int]:
    host, separator, port = address.rpartition(":")
    if not separator or not port.isdigit():
        raise MetricsAddressError(f"metrics_address {address!r} must be host:port, e.g. {DEFAULT_METRICS_ADDRESS}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise MetricsAddressError(f"metrics_address {address!r}: write an IPv6 host in brackets, e.g. [::1]:11234")
    return host, int(port)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# --- containerd metrics: what the configuration holds ----------------------------------------------


@dataclass(frozen=True)
class CriFile:
    """A `machine.files` entry at the CRI customization path, with its index in `machine.files`."""

    index: int
    content: str

    @property
    def metrics_only(self) -> bool:
        """The fragment sets the metrics address and nothing else: one this module may own."""
        return fragment_sets_only_metrics(self.content)


def cri_files(docs: list[Document]) -> list[CriFile]:
    files = (main_document(docs).get("machine") or {}).get("files") or []
    return [
        CriFile(index, str(entry.get("content", "")))
        for index, entry in enumerate(files)
        if isinstance(entry, dict) and entry.get("path") == CRI_CUSTOMIZATION_PATH
    ]


def customization_documents(docs: list[Document]) -> list[Document]:
    return [doc for doc in docs if doc.get("kind") == CRI_CUSTOMIZATION_KIND]


def metrics_document(docs: list[Document]) -> Document | None:
    return next((doc for doc in customization_documents(docs) if doc.get("name") == METRICS_DOCUMENT_NAME), None)


def fragment_sets_only_metrics(content: str) -> bool:
    """`[metrics]` or the metrics plugin table with an address, and nothing else."""
    try:
        parsed = tomllib.loads(content)
    except tomllib.TOMLDecodeError:
        return False
    if list(parsed) == ["metrics"]:
        table = parsed["metrics"]
    elif (
        list(parsed) == ["plugins"]
        and isinstance(parsed["plugins"], dict)
        and list(parsed["plugins"]) == [METRICS_PLUGIN]
    ):
        table = parsed["plugins"][METRICS_PLUGIN]
    else:
        return False
    return isinstance(table, dict) and list(table) == ["address"] and isinstance(table["address"], str)


def fragment_metrics_address(content: str) -> str | None:
    """The address one fragment sets; the plugin table wins over the deprecated `[metrics]` table."""
    try:
        parsed = tomllib.loads(content)
    except tomllib.TOMLDecodeError:
        return None
    for table in (_plugin_table(parsed), parsed.get("metrics")):
        if isinstance(table, dict) and "address" in table:
            return str(table["address"])
    return None


def _plugin_table(parsed: dict[str, Any]) -> dict[str, Any]:
    plugins = parsed.get("plugins")
    table = plugins.get(METRICS_PLUGIN) if isinstance(plugins, dict) else None
    return table if isinstance(table, dict) else {}


def effective_metrics_address(docs: list[Document], version: TalosVersion) -> str | None:
    """The listen address containerd gets from this configuration (None: no listener).

    Up to 1.13 only the legacy file counts (and only once the node booted with it); from 1.14 the
    legacy file and the documents merge in name order. An empty address disables the listener.
    """
    fragments = [(LEGACY_CUSTOMIZATION_NAME, entry.content) for entry in cri_files(docs)]
    if metrics_mechanism(version) is Mechanism.DOCUMENT:
        named = [(str(doc.get("name", "")), str(doc.get("content", ""))) for doc in customization_documents(docs)]
        fragments = sorted(fragments + named, key=lambda fragment: fragment[0])
    address: str | None = None
    for _, content in fragments:
        found = fragment_metrics_address(content)
        if found is not None:
            address = found or None
    return address


def residual_metrics_address(docs: list[Document], version: TalosVersion) -> str | None:
    """The address still in effect once this module's own settings are gone (a foreign CRI file may keep one)."""
    main = main_document(docs)
    machine = dict(main.get("machine") or {})
    machine["files"] = [
        entry
        for entry in machine.get("files") or []
        if not (
            isinstance(entry, dict)
            and entry.get("path") == CRI_CUSTOMIZATION_PATH
            and fragment_sets_only_metrics(str(entry.get("content", "")))
        )
    ]
    remaining = [{**main, "machine": machine}] + [
        doc
        for doc in docs
        if doc is not main
        and not (doc.get("kind") == CRI_CUSTOMIZATION_KIND and doc.get("name") == METRICS_DOCUMENT_NAME)
    ]
    return effective_metrics_address(remaining, version)


def metrics_setting_present(docs: list[Document], version: TalosVersion, address: str) -> bool:
    """Whether the configuration already holds exactly the wanted setting, by this version's mechanism."""
    wanted = metrics_fragment(version, address)
    if metrics_mechanism(version) is Mechanism.DOCUMENT:
        document = metrics_document(docs)
        return document is not None and document.get("content") == wanted
    entries = cri_files(docs)
    return len(entries) == 1 and entries[0].content == wanted


# --- containerd metrics: the patches --------------------------------------------------------------


class PlanError(ValueError):
    """The configuration is in a state this module must not change on its own."""


@dataclass(frozen=True)
class MetricsPlan:
    """The `talosctl patch mc` patches (applied in order) that reach the wanted state; none: nothing to do.

    `reboot_expected`: a patch changes `machine.files`, which Talos writes at boot only, so applying the
    plan reboots the node (mode auto); document-only plans apply live from 1.14.
    """

    mechanism: Mechanism
    patches: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    reboot_expected: bool = False


def plan_metrics(docs: list[Document], version: TalosVersion, state: str, address: str) -> MetricsPlan:
    mechanism = metrics_mechanism(version)
    if state == "absent":
        return _plan_absent(docs, mechanism)
    if metrics_setting_present(docs, version, address):
        return MetricsPlan(mechanism)
    wanted = metrics_fragment(version, address)
    if mechanism is Mechanism.DOCUMENT:
        return MetricsPlan(mechanism, (metrics_document_patch(wanted),))
    entries = cri_files(docs)
    foreign = [entry for entry in entries if not entry.metrics_only]
    if foreign:
        raise PlanError(
            f"machine.files already has an entry for {CRI_CUSTOMIZATION_PATH} (index {foreign[0].index}) that holds "
            "other CRI settings; containerd reads a single file there, so merge the metrics table into that entry "
            "by hand (or move the other settings to Talos 1.14+ CRICustomizationConfig documents)"
        )
    patches = (*file_removal_patches(docs, entries), metrics_file_patch(wanted))
    return MetricsPlan(mechanism, patches, reboot_expected=True)


def _plan_absent(docs: list[Document], mechanism: Mechanism) -> MetricsPlan:
    patches: list[str] = []
    if metrics_document(docs) is not None:
        patches.append(metrics_document_delete_patch())
    entries = cri_files(docs)
    owned = [entry for entry in entries if entry.metrics_only]
    removals = file_removal_patches(docs, owned)
    patches += removals
    notes = tuple(
        f"machine.files entry {entry.index} for {CRI_CUSTOMIZATION_PATH} holds other CRI settings and was left "
        f"in place; it sets the metrics address to {fragment_metrics_address(entry.content)!r}"
        for entry in entries
        if not entry.metrics_only and fragment_metrics_address(entry.content) is not None
    )
    return MetricsPlan(mechanism, tuple(patches), notes, reboot_expected=bool(removals))


def metrics_file_patch(fragment: str) -> str:
    """A strategic merge patch appending the CRI customization file (machine.files has no merge key)."""
    entry = {"content": fragment, "path": CRI_CUSTOMIZATION_PATH, "op": "create"}
    return dump_yaml({"machine": {"files": [entry]}})


def metrics_document_patch(fragment: str) -> str:
    """A strategic merge patch adding (or, matched by kind and name, updating) the metrics document."""
    return dump_yaml(
        {"apiVersion": "v1alpha1", "kind": CRI_CUSTOMIZATION_KIND, "name": METRICS_DOCUMENT_NAME, "content": fragment}
    )


def metrics_document_delete_patch() -> str:
    return dump_yaml(
        {"apiVersion": "v1alpha1", "kind": CRI_CUSTOMIZATION_KIND, "name": METRICS_DOCUMENT_NAME, "$patch": "delete"}
    )


def file_removal_patches(docs: list[Document], entries: list[CriFile]) -> list[str]:
    """Patches removing exactly these machine.files entries.

    Talos matches a `$patch: delete` list item by its first key only and removes one element per
    selector, so duplicated entries need one selector each. A single-document configuration takes an
    RFC 6902 patch instead, which names each entry by index and `test`s it first: it removes precisely
    what was read, and fails rather than removing something else if the configuration changed since.
    """
    if not entries:
        return []
    if len(docs) == 1:
        operations: list[dict[str, Any]] = []
        for entry in sorted(entries, key=lambda e: e.index, reverse=True):
            pointer = f"/machine/files/{entry.index}"
            operations += [
                {"op": "test", "path": f"{pointer}/path", "value": CRI_CUSTOMIZATION_PATH},
                {"op": "test", "path": f"{pointer}/content", "value": entry.content},
                {"op": "remove", "path": pointer},
            ]
        return [json.dumps(operations, indent=2) + "\n"]
    selectors = [{"content": entry.content, "$patch": "delete"} for entry in entries]
    return [dump_yaml({"machine": {"files": selectors}})]


class _LiteralDumper(yaml.SafeDumper):
    """Multi-line strings as `|` blocks, so patches read like the Talos documentation's."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_LiteralDumper.add_representer(str, _represent_str)


def dump_yaml(value: Any) -> str:
    return yaml.dump(value, Dumper=_LiteralDumper, sort_keys=False, default_flow_style=False)


# --- what `talosctl patch mc` reports --------------------------------------------------------------


@dataclass(frozen=True)
class PatchOutcome:
    changed: bool
    reboot_required: bool
    diff: str | None = None


_SKIPPED = "Apply was skipped: no changes detected."
_REBOOT_MESSAGES = ("Applied configuration with a reboot", "Staged configuration to be applied after the next reboot")


def parse_patch_output(stderr_lines: list[str]) -> PatchOutcome:
    """Read the outcome of `talosctl patch mc` (with or without --dry-run) from its stderr.

    A staged change counts as needing a reboot: it only takes effect at the next boot.
    """
    lines = without_version_warning(stderr_lines)
    if _SKIPPED in lines:
        return PatchOutcome(changed=False, reboot_required=False)
    reboot = any(line.startswith(_REBOOT_MESSAGES) for line in lines)
    if "Dry run summary:" not in lines:
        return PatchOutcome(changed=True, reboot_required=reboot)
    diff = "\n".join(_dry_run_diff(lines)).strip("\n")
    if diff in {"", "No changes."}:
        return PatchOutcome(changed=False, reboot_required=False, diff="")
    return PatchOutcome(changed=True, reboot_required=reboot, diff=diff + "\n")


def _dry_run_diff(lines: list[str]) -> Iterator[str]:
    marker = lines.index("Config diff:") if "Config diff:" in lines else len(lines)
    yield from lines[marker + 1 :]


# --- tables and key/value views --------------------------------------------------------------------


def parse_table(stdout: str) -> list[dict[str, str]]:
    """Rows of a tabwriter table (padding 3): columns start where the header's names start."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    if not lines:
        return []
    header = lines[0]
    starts = [match.start() for match in re.finditer(r"\S+(?: \S+)*", header)]
    names = [header[start:end].strip() for start, end in zip(starts, [*starts[1:], None], strict=True)]
    rows = []
    for line in lines[1:]:
        cells = [line[start:end].strip() for start, end in zip(starts, [*starts[1:], None], strict=True)]
        rows.append(dict(zip(names, cells, strict=True)))
    return rows


def parse_service_view(stdout: str) -> dict[str, str]:
    """`talosctl service <id>`: `NODE`, `ID`, `STATE`, `HEALTH` lines, then `EVENTS` (not kept)."""
    view: dict[str, str] = {}
    for line in stdout.splitlines():
        label, _, value = line.strip().partition(" ")
        if label in {"NODE", "ID", "STATE", "HEALTH"} and label not in view:
            view[label] = value.strip()
    return view


# --- applying a patch ------------------------------------------------------------------------------


@contextlib.contextmanager
def patch_files(patches: Sequence[str]) -> Iterator[list[str]]:
    """The patches as files, for `-p @file`: never on the command line, where `ps` would show them."""
    with tempfile.TemporaryDirectory(prefix="talos-patch-") as directory:
        paths = []
        for index, text in enumerate(patches):
            path = Path(directory) / f"{index:02d}.yaml"
            path.write_text(text)
            paths.append(str(path))
        yield paths


def patch_node(talos: TalosNode, files: list[str], mode: str, dry_run: bool) -> TalosctlResult:
    args = ["patch", "machineconfig"]
    for path in files:
        args += ["--patch", f"@{path}"]
    args += ["--mode", mode]
    if dry_run:
        args.append("--dry-run")
    return talos.run(*args)


def preview_patches(talos: TalosNode, patches: Sequence[str], mode: str) -> tuple[PatchOutcome, TalosctlResult]:
    """`talosctl patch mc --dry-run`: what Talos would do with the patches (nothing is changed)."""
    with patch_files(patches) as files:
        result = patch_node(talos, files, mode, dry_run=True)
    return parse_patch_output(result.stderr_lines), result


IMMEDIATE_MODE_HINT = (
    "Up to Talos 1.13 containerd reads its CRI customization at boot only: use mode auto (Talos reboots the node) "
    "or staged (reboot it afterwards)."
)


def failure_message(node: str, exc: TalosctlError) -> str:
    message = f"talosctl failed on node {node}: {exc.command}\n{exc.stderr.strip()}"
    if "can't be applied in immediate mode" in exc.stderr:
        message += f"\n{IMMEDIATE_MODE_HINT}"
    return message


# --- reading a node --------------------------------------------------------------------------------


def read_version(talos: TalosNode) -> TalosVersion:
    return parse_server_version(talos.run("version", "--short").stdout)


def read_config(talos: TalosNode) -> list[Document]:
    return active_config(talos.run("get", "machineconfig", "-o", "yaml").stdout)


def read_many(
    addresses: Sequence[str], talosconfig: str | None, binary: str, timeout: float
) -> dict[str, tuple[TalosVersion, list[Document]]] | None:
    """Version and active configuration of many nodes in two talosctl calls (talosctl fans out to them).

    None when a call fails or does not answer for every node: reading node by node then says which one.
    """
    try:
        versions = parse_server_versions(run_talosctl(["version"], talosconfig, addresses, timeout, binary).stdout)
        configs = active_configs(
            run_talosctl(["get", "machineconfig", "-o", "yaml"], talosconfig, addresses, timeout, binary).stdout
        )
    except (TalosctlError, ValueError):
        return None
    if not set(addresses) <= set(versions) or not set(addresses) <= set(configs):
        return None
    return {address: (versions[address], configs[address]) for address in addresses}


def current_boot_id(talos: TalosNode) -> str:
    """The node's boot id; TalosctlError when it cannot be read, ValueError when talosctl printed none."""
    found = talos.run("read", BOOT_ID_PATH).stdout.strip()
    if not found:
        raise ValueError(f"{BOOT_ID_PATH} read empty")
    return found


def read_boot_id(talos: TalosNode) -> tuple[str | None, str | None]:
    """(boot id, None) or (None, why it could not be read)."""
    try:
        return current_boot_id(talos), None
    except TalosctlError as exc:
        return None, f"{exc.command}: {first_line(exc)}"
    except ValueError as exc:
        return None, str(exc)


def first_line(exc: TalosctlError) -> str:
    return next((line for line in exc.stderr.splitlines() if line.strip()), f"exit code {exc.rc}")


def read_cri(talos: TalosNode) -> dict[str, str | None]:
    view = parse_service_view(talos.run("service", "cri").stdout)
    return {"state": view.get("STATE"), "health": view.get("HEALTH")}


def read_etcd(talos: TalosNode) -> dict[str, Any]:
    """This node's etcd member and the members it knows; talosctl's message in `error` when unreadable."""
    try:
        status, members = (
            parse_table(result.stdout)
            for result in concurrently(lambda: talos.run("etcd", "status"), lambda: talos.run("etcd", "members"))
        )
    except TalosctlError as exc:
        return {**etcd_fields(None, []), "error": exc.stderr.strip() or f"{exc.command}: exit code {exc.rc}"}
    row = next((r for r in status if r.get("NODE") == talos.node), status[0] if status else None)
    return {**etcd_fields(row, members), "error": None}


def etcd_fields(row: dict[str, str] | None, members: list[dict[str, str]]) -> dict[str, Any]:
    row = row or {}
    return {
        "member_id": row.get("MEMBER"),
        "leader_id": row.get("LEADER"),
        "is_leader": bool(row) and row.get("MEMBER") == row.get("LEADER"),
        "learner": row.get("LEARNER") == "true",
        "errors": row.get("ERRORS", ""),
        "members": [
            {"id": m.get("ID"), "hostname": m.get("HOSTNAME"), "learner": m.get("LEARNER") == "true"} for m in members
        ],
    }


def etcd_problems(etcd: dict[str, Any], expected_members: int | None) -> list[str]:
    """Why this control-plane node's etcd is not whole yet (empty: healthy)."""
    if etcd.get("error"):
        return [f"etcd unreadable: {etcd['error'].splitlines()[0]}"]
    problems = []
    if not etcd.get("member_id"):
        problems.append("etcd: this node has no member")
    elif etcd.get("learner"):
        problems.append("etcd: this node's member is still a learner")
    if etcd.get("errors"):
        problems.append(f"etcd: the member reports errors: {etcd['errors']}")
    seen = len(etcd.get("members") or [])
    if expected_members is not None and seen != expected_members:
        problems.append(f"etcd: {seen} of {expected_members} members")
    return problems


# --- waiting for a node to be healthy after a change -------------------------------------------------


@dataclass(frozen=True)
class HealthTarget:
    """What a node must show before a rolling change may move on.

    `boot_id_before`: a reboot was started, the node must run a boot with another id. `metrics_address`:
    the containerd metrics address that must be in effect (None: no listener). `etcd_members`: for a
    control-plane node, how many etcd members it must see.
    """

    metrics_address: str | None
    boot_id_before: str | None = None
    etcd_members: int | None = None


@dataclass
class NodeHealth:
    """One observation of a node; `unmet` lists what is not true yet (empty: healthy)."""

    unmet: list[str]
    boot_id: str | None = None
    cri: dict[str, str | None] | None = None
    metrics_address: str | None = None
    etcd: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "boot_id": self.boot_id,
            "cri": self.cri,
            "containerd_metrics_address": self.metrics_address,
            "etcd": self.etcd,
            "unmet": self.unmet,
        }


def observe_health(talos: TalosNode, version: TalosVersion, control_plane: bool, target: HealthTarget) -> NodeHealth:
    """Read the node once: boot id first (while it reboots nothing else answers), then CRI, config, etcd."""
    boot_id, problem = read_boot_id(talos)
    if boot_id is None:
        return NodeHealth([f"no answer from the node's Talos API ({problem})"])
    if target.boot_id_before is not None and boot_id == target.boot_id_before:
        return NodeHealth([f"still on the boot before the change (boot id {boot_id})"], boot_id)
    health = NodeHealth([], boot_id)
    reads = [lambda: read_cri(talos), lambda: read_config(talos)] + (
        [lambda: read_etcd(talos)] if control_plane else []
    )
    try:
        health.cri, docs, *etcd = concurrently(*reads)
        health.metrics_address = effective_metrics_address(docs, version)
    except (TalosctlError, ValueError) as exc:
        health.unmet.append(f"node not readable yet: {exc}")
        return health
    if (health.cri["state"], health.cri["health"]) != ("Running", "OK"):
        health.unmet.append(f"CRI {health.cri['state']}, health {health.cri['health']}")
    if health.metrics_address != target.metrics_address:
        health.unmet.append(
            f"containerd metrics address in effect {health.metrics_address!r}, wanted {target.metrics_address!r}"
        )
    if control_plane:
        health.etcd = etcd[0]
        health.unmet += etcd_problems(health.etcd, target.etcd_members)
    return health


def wait_for_health(
    observe: Callable[[], NodeHealth],
    timeout: float,
    interval: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[NodeHealth, float]:
    """Observe until nothing is unmet or `timeout` seconds pass; (last observation, seconds waited)."""
    start = clock()
    while True:
        health = observe()
        waited = clock() - start
        if not health.unmet or waited >= timeout:
            return health, waited
        sleep(min(interval, timeout - waited))


@dataclass
class NodePlan:
    """One node as the rollout plan sees it (talos_metrics_plan): what it runs and what it needs."""

    name: str
    address: str
    talos_version: str = ""
    machine_type: str = ""
    mechanism: str = ""
    metrics_address: str | None = None
    patches: int = 0
    reboot_required: bool = False
    in_effect: bool = False
    notes: list[str] = field(default_factory=list)
    diff: str | None = None
    etcd: dict[str, Any] | None = None
    etcd_problems: list[str] = field(default_factory=list)

    @property
    def control_plane(self) -> bool:
        return self.machine_type in {"controlplane", "init"}

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "address": self.address,
            "talos_version": self.talos_version,
            "machine_type": self.machine_type,
            "control_plane": self.control_plane,
            "mechanism": self.mechanism,
            "containerd_metrics_address": self.metrics_address,
            "configured": self.patches == 0,
            "in_effect": self.in_effect,
            "patches": self.patches,
            "reboot_required": self.reboot_required,
            "notes": self.notes,
            "diff": self.diff,
            "etcd": self.etcd,
            "etcd_problems": self.etcd_problems,
        }
