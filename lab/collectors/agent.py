"""Prometheus agent configurations that stand in for a collector's scrape-and-write pipeline.

A collector's configuration is reduced to scrape jobs and remote-write queues:

- a `Job` is one scrape pipeline: its targets (a file_sd file or static groups), the relabel rules
  configured before the scrape, the scrape settings, and, for a clustered scrape, the share of
  targets this replica owns (`hashmod` on the labels the collector hashes);
- a `Queue` is one remote-write endpoint reached through a chain of relabel steps.

Series processing between a scrape and a queue differs per path (Alloy's `forward_to` graph), while
a Prometheus agent sends every sample to every queue. Each job therefore stamps its samples with a
route label, and each queue keeps the routes that lead to it, drops the label, then applies its
chain's rules as `write_relabel_configs` (where Alloy's relabel components also see `up` and the
other per-target series).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.metrics.prometheus import duration

ROUTE_LABEL = "lab_collector_route"
SHARD_LABEL = "__tmp_lab_shard"
_GO_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def go_duration(text: str) -> float:
    """Seconds in a Go duration string (`15s`, `1m30s`, `1.5s`, `250ms`)."""
    text = str(text).strip()
    if text in ("0", ""):
        return 0.0
    position, total = 0, 0.0
    for match in _GO_DURATION.finditer(text):
        if match.start() != position:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    if position != len(text):
        raise ValueError(f'time: invalid duration "{text}"')
    return total


@dataclass(frozen=True)
class Shard:
    """This replica's share of a clustered scrape: targets whose hash modulo `count` is `index`."""

    index: int
    count: int
    labels: tuple[str, ...]

    def rules(self) -> list[dict[str, Any]]:
        return [
            {
                "source_labels": list(self.labels),
                "modulus": self.count,
                "target_label": SHARD_LABEL,
                "action": "hashmod",
            },
            {"source_labels": [SHARD_LABEL], "regex": str(self.index), "action": "keep"},
        ]


@dataclass
class Job:
    name: str
    job: str
    route: str
    relabel: list[dict[str, Any]] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    targets_file: Path | None = None
    static_groups: list[dict[str, Any]] = field(default_factory=list)
    shard: Shard | None = None
    network_rules: list[dict[str, Any]] = field(default_factory=list)

    def scrape_config(self) -> dict[str, Any]:
        relabel = [{"target_label": "job", "replacement": self.job, "action": "replace"}, *self.relabel]
        if self.shard is not None:
            relabel += self.shard.rules()
        relabel += self.network_rules
        relabel.append({"target_label": ROUTE_LABEL, "replacement": self.route, "action": "replace"})
        config: dict[str, Any] = {"job_name": self.name, **self.settings}
        if self.targets_file is not None:
            config["file_sd_configs"] = [{"files": [str(self.targets_file)], "refresh_interval": "5s"}]
        if self.static_groups:
            config["static_configs"] = self.static_groups
        config["relabel_configs"] = relabel
        return config


@dataclass
class Queue:
    name: str
    url: str
    routes: set[str] = field(default_factory=set)
    write_relabel: list[dict[str, Any]] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)

    def remote_write(self) -> dict[str, Any]:
        routes = "|".join(re.escape(route) for route in sorted(self.routes))
        return {
            "name": self.name,
            "url": self.url,
            **self.settings,
            "write_relabel_configs": [
                {"source_labels": [ROUTE_LABEL], "regex": routes, "action": "keep"},
                {"regex": ROUTE_LABEL, "action": "labeldrop"},
                *self.write_relabel,
            ],
        }


def agent_config(jobs: list[Job], queues: list[Queue], scrape_interval: float = 60.0) -> dict[str, Any]:
    return {
        "global": {"scrape_interval": duration(scrape_interval)},
        "scrape_configs": [job.scrape_config() for job in jobs],
        "remote_write": [queue.remote_write() for queue in queues if queue.routes],
    }


def external_label_rules(labels: dict[str, str]) -> list[dict[str, Any]]:
    """External labels as remote storage adds them: only where the series lacks the label."""
    return [
        {"source_labels": [name], "regex": "", "target_label": name, "replacement": value, "action": "replace"}
        for name, value in sorted(labels.items())
    ]


def relabel_rule(rule: dict[str, Any]) -> dict[str, Any]:
    """An Alloy `rule` block (or a Prometheus relabel config) as a Prometheus relabel config."""
    out: dict[str, Any] = {}
    for key in ("source_labels", "separator", "regex", "modulus", "target_label", "replacement"):
        if key in rule and rule[key] is not None:
            out[key] = list(rule[key]) if key == "source_labels" else rule[key]
    out["action"] = str(rule.get("action", "replace")).lower()
    return out
