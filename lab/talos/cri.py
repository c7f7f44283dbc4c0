"""CRI (containerd) customizations in a machine configuration, and the metrics address they set."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from typing import Any

from lab.talos.machineconfig import CRI_CUSTOMIZATION_KIND, CRI_CUSTOMIZATION_PATH, Document, main_document

METRICS_PLUGIN = "io.containerd.server.v1.metrics"
LEGACY_CUSTOMIZATION_NAME = "customization"


@dataclass(frozen=True)
class Customization:
    """One TOML fragment merged into containerd's CRI configuration."""

    name: str
    content: str


def legacy_customizations(docs: list[Document]) -> list[Customization]:
    """`machine.files` entries at the CRI customization path (read at boot up to 1.13)."""
    main = main_document(docs) or {}
    files = (main.get("machine") or {}).get("files") or []
    return [
        Customization(LEGACY_CUSTOMIZATION_NAME, str(entry.get("content", "")))
        for entry in files
        if isinstance(entry, dict) and entry.get("path") == CRI_CUSTOMIZATION_PATH
    ]


def document_customizations(docs: list[Document]) -> list[Customization]:
    """CRICustomizationConfig documents (1.14+), in configuration order."""
    return [
        Customization(str(doc.get("name", "")), str(doc.get("content", "")))
        for doc in docs
        if doc.get("kind") == CRI_CUSTOMIZATION_KIND
    ]


def metrics_address(customizations: list[Customization]) -> str | None:
    """The listen address containerd ends up with after merging every fragment in order.

    Both the plugin table and the deprecated top-level `[metrics]` table are honoured
    (containerd migrates the latter); the plugin table wins when a fragment sets both.
    An unparsable fragment is skipped, as containerd would refuse it and keep the rest.
    """
    address: str | None = None
    for customization in customizations:
        found = _fragment_metrics_address(customization.content)
        if found is not None:
            address = found or None
    return address


def _fragment_metrics_address(content: str) -> str | None:
    try:
        parsed = tomllib.loads(content)
    except tomllib.TOMLDecodeError:
        return None
    plugin = _table(_table(parsed, "plugins"), METRICS_PLUGIN)
    if "address" in plugin:
        return str(plugin["address"])
    legacy = _table(parsed, "metrics")
    if "address" in legacy:
        return str(legacy["address"])
    return None


def _table(parent: dict[str, Any], key: str) -> dict[str, Any]:
    value = parent.get(key)
    return value if isinstance(value, dict) else {}
