"""Offline checks of an OpenTelemetry Collector configuration, as otelcol's own validation would fail it.

No collector binary can run on the controller, so the structure `otelcol validate` and the
components' Validate() methods enforce is checked here, with their wording where it is known:

- top-level sections, component ids (`type[/name]`) and pipeline ids (`<signal>[/name]`);
- every pipeline has receivers and exporters, and references only configured components, each once;
- `service::extensions` references only configured extensions;
- `${env:NAME}` references name variables the pod sets, and every other `$` is escaped as `$$`
  (the prometheus receiver embeds Prometheus' configuration, where `$1` means a regex group);
- the `prometheus` receiver has scrape configs with unique job names and none of the Prometheus
  features it rejects; the `prometheusremotewrite` exporter has an http(s) endpoint and an
  authenticator that is configured and enabled; `health_check` listens on host:port.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import yaml

SECTIONS = ("receivers", "processors", "exporters", "connectors", "extensions", "service")
SIGNALS = ("traces", "metrics", "logs", "profiles")
_TYPE = re.compile(r"^[a-zA-Z][0-9a-zA-Z_]{0,62}$")
_NAME = re.compile(r"^[^\s/]+$")
# `$$` (a literal `$`), `${env:NAME}` / `${NAME}` (optionally `:-default`): anything else after `$` is an error.
_DOLLAR = re.compile(r"\$(\$|\{(?:env:)?([A-Za-z_][A-Za-z0-9_]*)(?::-[^}]*)?\}|\{[^}]*\}?|.?)")
_UNSUPPORTED_PROMETHEUS = {
    "remote_write": "remote_write",
    "remote_read": "remote_read",
    "rule_files": "rule_files",
}


@dataclass
class Report:
    errors: list[str] = field(default_factory=list)
    env_references: set[str] = field(default_factory=set)
    pipelines: dict[str, dict[str, list[str]]] = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        return not self.errors


def component_type(component_id: str) -> str:
    return component_id.split("/", 1)[0]


def _id_problem(component_id: Any) -> str | None:
    if not isinstance(component_id, str) or not component_id:
        return f"invalid component id {component_id!r}: empty or not a string"
    kind, slash, name = component_id.partition("/")
    if not _TYPE.match(kind):
        return f'invalid type "{kind}" in id "{component_id}": a letter, then letters, digits or "_"'
    if slash and not _NAME.match(name):
        return f'invalid name "{name}" in id "{component_id}": non-empty, without "/" or spaces'
    return None


def check(text: str, env: list[str] | None = None) -> Report:
    """Every problem found in the configuration `text`; `env` lists the variables the pod sets (None: any)."""
    report = Report()
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as error:
        report.errors.append(f"cannot unmarshal the configuration: {error}")
        return report
    if not isinstance(config, dict):
        report.errors.append("cannot unmarshal the configuration: the top level is not a mapping")
        return report
    unknown = sorted(str(key) for key in config if key not in SECTIONS)
    if unknown:
        report.errors.append(f"'' has invalid keys: {', '.join(unknown)}")
    _check_dollars(config, "", report, env)
    for section in SECTIONS[:-1]:
        for component_id in config.get(section) or {}:
            problem = _id_problem(component_id)
            if problem:
                report.errors.append(f"{section}: {problem}")
    _check_service(config, report)
    _check_prometheus_receivers(config, report)
    _check_remote_write_exporters(config, report)
    _check_health_check(config, report)
    return report


def _check_dollars(value: Any, path: str, report: Report, env: list[str] | None) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _check_dollars(item, f"{path}::{key}" if path else str(key), report, env)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_dollars(item, f"{path}[{index}]", report, env)
    elif isinstance(value, str):
        for match in _DOLLAR.finditer(value):
            token, name = match.group(1), match.group(2)
            if token == "$":
                continue
            if name:
                report.env_references.add(name)
                if env is not None and name not in env:
                    report.errors.append(f"{path}: references environment variable {name}, which the pod does not set")
                continue
            report.errors.append(
                f'{path}: unescaped "$" in {value!r}: write "$$" for a literal "$" (e.g. "$${{1}}" or "$$1" '
                'in a relabel replacement), "${env:NAME}" for an environment variable'
            )


def _check_service(config: dict[str, Any], report: Report) -> None:
    service = config.get("service") or {}
    if not isinstance(service, dict):
        report.errors.append("service: not a mapping")
        return
    extensions = config.get("extensions") or {}
    for name in service.get("extensions") or []:
        if name not in extensions:
            report.errors.append(f'service::extensions: references extension "{name}" which is not configured')
    pipelines = service.get("pipelines") or {}
    if not pipelines:
        report.errors.append("service::pipelines: service must have at least one pipeline")
        return
    for pipeline_id, spec in pipelines.items():
        where = f"service::pipelines::{pipeline_id}"
        signal, _, name = str(pipeline_id).partition("/")
        if signal not in SIGNALS or ("/" in str(pipeline_id) and not _NAME.match(name)):
            report.errors.append(f"{where}: unknown signal type {signal!r} (one of {', '.join(SIGNALS)})")
        pipeline = spec or {}
        report.pipelines[str(pipeline_id)] = {
            kind: list(pipeline.get(kind) or []) for kind in ("receivers", "processors", "exporters")
        }
        for kind, section in (("receiver", "receivers"), ("processor", "processors"), ("exporter", "exporters")):
            names = list(pipeline.get(section) or [])
            if kind != "processor" and not names:
                report.errors.append(f"{where}: must have at least one {kind}")
            configured = dict(config.get(section) or {})
            if kind != "processor":
                configured |= dict(config.get("connectors") or {})
            for component in names:
                if component not in configured:
                    report.errors.append(f'{where}: references {kind} "{component}" which is not configured')
            for component in sorted({n for n in names if names.count(n) > 1}):
                report.errors.append(f'{where}: references {kind} "{component}" multiple times')


def _components(config: dict[str, Any], section: str, kind: str) -> list[tuple[str, dict[str, Any]]]:
    return [
        (component_id, spec or {})
        for component_id, spec in (config.get(section) or {}).items()
        if component_type(str(component_id)) == kind
    ]


def _check_prometheus_receivers(config: dict[str, Any], report: Report) -> None:
    for receiver_id, spec in _components(config, "receivers", "prometheus"):
        where = f"receivers::{receiver_id}"
        prometheus = spec.get("config") or {}
        scrape_configs = prometheus.get("scrape_configs") or []
        if not scrape_configs and not spec.get("target_allocator"):
            report.errors.append(f"{where}: no Prometheus scrape_configs or target_allocator set")
        unsupported = sorted(feature for key, feature in _UNSUPPORTED_PROMETHEUS.items() if prometheus.get(key))
        alerting = prometheus.get("alerting") or {}
        unsupported += [f"alert_config.{key}" for key in ("alertmanagers", "relabel_configs") if alerting.get(key)]
        if unsupported:
            report.errors.append(f"{where}: unsupported features: {', '.join(sorted(unsupported))}")
        seen: set[str] = set()
        for scrape in scrape_configs:
            job = (scrape or {}).get("job_name")
            if not job:
                report.errors.append(f"{where}: job_name is empty")
                continue
            if job in seen:
                report.errors.append(f'{where}: found multiple scrape configs with job name "{job}"')
            seen.add(job)
            for rule in scrape.get("metric_relabel_configs") or []:
                if (rule or {}).get("target_label") == "__name__":
                    report.errors.append(
                        f"{where}: error validating scrapeconfig for job {job}: "
                        "metric renaming using metric_relabel_configs is disallowed"
                    )


def _check_remote_write_exporters(config: dict[str, Any], report: Report) -> None:
    enabled = set((config.get("service") or {}).get("extensions") or [])
    extensions = config.get("extensions") or {}
    for exporter_id, spec in _components(config, "exporters", "prometheusremotewrite"):
        where = f"exporters::{exporter_id}"
        endpoint = str(spec.get("endpoint") or "")
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            report.errors.append(f"{where}: endpoint {endpoint!r} is not an http(s) URL")
        queue = spec.get("remote_write_queue") or {}
        if int(queue.get("queue_size", 0) or 0) < 0:
            report.errors.append(f"{where}: remote write queue size can't be negative")
        if queue.get("enabled", True) and "queue_size" in queue and int(queue["queue_size"]) == 0:
            report.errors.append(f"{where}: a 0 size queue will drop all the data")
        if int(queue.get("num_consumers", 0) or 0) < 0:
            report.errors.append(f"{where}: remote write consumer number can't be negative")
        authenticator = (spec.get("auth") or {}).get("authenticator")
        if authenticator and (authenticator not in extensions or authenticator not in enabled):
            report.errors.append(
                f'{where}: failed to resolve authenticator "{authenticator}": authenticator not found '
                "(configure it under extensions and list it in service::extensions)"
            )


def _check_health_check(config: dict[str, Any], report: Report) -> None:
    for extension_id, spec in _components(config, "extensions", "health_check"):
        endpoint = str(spec.get("endpoint", "localhost:13133"))
        host, _, port = endpoint.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            report.errors.append(f"extensions::{extension_id}: endpoint {endpoint!r} is not host:port")
