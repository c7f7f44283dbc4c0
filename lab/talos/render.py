"""Text formats talosctl prints: tab-aligned tables, Go durations, resources as YAML/JSON/jsonpath."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from lab.talos.machineconfig import dump_yaml


def tabwrite(rows: list[list[str]]) -> str:
    """Go's tabwriter(minwidth 0, tabwidth 0, padding 3, ' '): every cell but the last is padded."""
    widths: dict[int, int] = {}
    for row in rows:
        for index, cell in enumerate(row[:-1]):
            widths[index] = max(widths.get(index, 0), len(cell))
    lines = []
    for row in rows:
        cells = [cell.ljust(widths[index] + 3) for index, cell in enumerate(row[:-1])]
        lines.append("".join(cells) + (row[-1] if row else ""))
    return "".join(line + "\n" for line in lines)


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_go_duration(text: str) -> float:
    """Seconds in a Go duration string (`1m30s`, `500ms`, `0`); ValueError like time.ParseDuration."""
    body = text[1:] if text[:1] in "+-" else text
    if body == "0":
        return 0.0
    position, total = 0, 0.0
    for match in _DURATION_PART.finditer(body):
        if match.start() != position:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    if body and position != len(body) and re.fullmatch(r"[\d.]+", body[position:]):
        raise ValueError(f'time: missing unit in duration "{text}"')
    if not body or position != len(body):
        raise ValueError(f'time: invalid duration "{text}"')
    return -total if text.startswith("-") else total


def format_go_duration(seconds: float) -> str:
    """Go's Duration.String for whole-millisecond-or-larger values: `1m0s`, `1.5s`, `2h3m4s`."""
    if seconds == 0:
        return "0s"
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    if seconds < 1:
        return f"{sign}{_trim(seconds * 1000)}ms"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{_trim(secs)}s"
    if hours or minutes:
        text = f"{int(minutes)}m{text}"
    if hours:
        text = f"{int(hours)}h{text}"
    return sign + text


def _trim(value: float) -> str:
    return f"{value:.9f}".rstrip("0").rstrip(".")


def since(moment: float, now: float) -> str:
    """`time.Since(ts).Round(time.Second)` as talosctl prints it."""
    return format_go_duration(max(0, round(now - moment)))


def humanize_bytes(size: int) -> str:
    """go-humanize Bytes (SI units): `18 MB`, `5.3 MB`, `512 B`."""
    if size < 10:
        return f"{size} B"
    units = ["B", "kB", "MB", "GB", "TB", "PB", "EB"]
    exponent = min(math.floor(math.log(size, 1000)), len(units) - 1)
    value = math.floor(size / 1000**exponent * 10 + 0.5) / 10
    return f"{value:.0f} {units[exponent]}" if value >= 10 else f"{value:.1f} {units[exponent]}"


def rfc3339(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Resource:
    """A COSI resource as talosctl receives it."""

    namespace: str
    type: str
    id: str
    version: int
    created: float
    updated: float
    spec: Any
    phase: str = "running"
    owner: str = ""
    labels: dict[str, str] = field(default_factory=dict)

    def metadata(self) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "namespace": self.namespace,
            "type": self.type,
            "id": self.id,
            "version": self.version,
            "owner": self.owner or None,
            "phase": self.phase,
            "created": rfc3339(self.created),
            "updated": rfc3339(self.updated),
        }
        if self.labels:
            meta["labels"] = dict(self.labels)
        return meta


def resource_yaml(node: str, resource: Resource) -> str:
    """`node:` first, then the metadata (timestamps unquoted, empty owner bare), then the spec."""
    meta = resource.metadata()
    lines = [f"node: {node}", "metadata:"]
    for key, value in meta.items():
        if key == "labels":
            lines.append("    labels:")
            lines += [f"        {name}: {label}" for name, label in value.items()]
        else:
            lines.append(f"    {key}:" + ("" if value is None else f" {value}"))
    return "\n".join(lines) + "\n" + dump_yaml({"spec": resource.spec})


def resource_json(node: str, resource: Resource) -> str:
    data = {"metadata": resource.metadata(), "node": node, "spec": resource.spec}
    return go_json(data) + "\n"


def go_json(data: Any) -> str:
    """encoding/json with 4-space indent, sorted map keys and Go's HTML escaping."""
    text = json.dumps(data, indent=4, sort_keys=True, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


class JsonPathError(Exception):
    pass


_TEMPLATE = re.compile(r"\{([^}]*)\}")
_STEP = re.compile(r"\.([A-Za-z0-9_\-]+)|\[(\*|\d+)\]")


def jsonpath_lines(expression: str, data: Any) -> str:
    """The k8s jsonpath subset talosctl users write: `{.spec}`, `{.metadata.id}`, `{.a[0].b}`, `[*]`."""
    out = []
    for match in _TEMPLATE.finditer(expression):
        for value in _evaluate(match.group(1).strip(), data):
            out.append(_print_result(value))
    return "".join(line + "\n" for line in out)


def _evaluate(path: str, data: Any) -> list[Any]:
    values = [data]
    position = 0
    if path in {"", "."}:
        return values
    for match in _STEP.finditer(path):
        if match.start() != position:
            raise JsonPathError(f"unrecognized character in action: {path!r}")
        position = match.end()
        values = [child for value in values for child in _children(value, match.group(1), match.group(2))]
    if position != len(path):
        raise JsonPathError(f"unrecognized character in action: {path!r}")
    return values


def _children(value: Any, key: str | None, index: str | None) -> list[Any]:
    if key is not None:
        if not isinstance(value, dict) or key not in value:
            raise JsonPathError(f"{key} is not found")
        return [value[key]]
    if not isinstance(value, list):
        raise JsonPathError(f"[{index}] is not array or slice")
    if index == "*":
        return list(value)
    position = int(index or 0)
    if position >= len(value):
        raise JsonPathError(f"array index out of bounds: index {position}, length {len(value)}")
    return [value[position]]


def _print_result(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value, indent=4, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "<nil>"
    return str(value)
