"""An OpenTelemetry Collector configuration translated into scrape jobs and queues of one agent.

Per collector pod (one per node, host network): its configuration with `${env:X}` expanded from the
pod's environment and `$$` unescaped, as otelcol's confmap does; each `prometheus` receiver's
scrape configs become jobs (loopback targets reach the pod's own node), each
`prometheusremotewrite` exporter a queue of its own (its external labels, headers and the
processors of its pipeline applied there). The prometheus receiver stores `job` and `instance` as
the resource attributes `service.name` and `service.instance.id` (plus `server.address`,
`server.port`, `url.scheme`); the exporter turns them back into `job`/`instance`, and with
`resource_to_telemetry_conversion` also copies every resource attribute into a label.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from lab.collectors.agent import Job, Queue, external_label_rules, go_duration, relabel_rule
from lab.collectors.alloy import _through_gateway
from lab.collectors.alloy_config import ConfigError, LabLimitError
from lab.collectors.network import re2_escape
from lab.metrics.prometheus import duration

_EXPANSION = re.compile(r"\$\$|\$\{(?:env:)?([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_NO_OP_PROCESSORS = ("batch", "memory_limiter")
_NO_OP_EXPORTERS = ("debug", "logging", "nop")
_IGNORED_EXTENSIONS = ("health_check", "basicauth", "pprof", "zpages", "bearertokenauth")
_SCRAPE_KEYS = (
    "metrics_path",
    "scheme",
    "params",
    "honor_labels",
    "honor_timestamps",
    "sample_limit",
    "target_limit",
    "label_limit",
    "body_size_limit",
    "follow_redirects",
    "enable_http2",
    "basic_auth",
    "authorization",
    "tls_config",
    "bearer_token_file",
)
_LOCAL_HOSTS = r"(?:127\.0\.0\.1|localhost|0\.0\.0\.0|\[::1\])"


def expand(value: Any, env: dict[str, str]) -> Any:
    """otelcol's confmap expansion: `${env:NAME}` / `${NAME}` (with `:-default`), `$$` is a literal `$`."""
    if isinstance(value, str):
        return _EXPANSION.sub(lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(2) or ""), value)
    if isinstance(value, list):
        return [expand(item, env) for item in value]
    if isinstance(value, dict):
        return {key: expand(item, env) for key, item in value.items()}
    return value


def attribute_label(key: str) -> str:
    """An OpenTelemetry attribute key as a Prometheus label name (the exporter's normalization)."""
    name = re.sub(r"[^a-zA-Z0-9_]", "_", key)
    return f"key_{name}" if name[:1].isdigit() else name


@dataclass(frozen=True)
class Extensions:
    health_endpoint: str = "0.0.0.0:13133"
    health_path: str = "/"
    telemetry_address: str = "0.0.0.0:8888"


@dataclass
class CollectorPlan:
    jobs: list[Job] = field(default_factory=list)
    queues: list[Queue] = field(default_factory=list)
    extensions: Extensions = field(default_factory=Extensions)


def load(text: str, env: dict[str, str]) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError("", f"cannot unmarshal the configuration: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError("", "cannot unmarshal the configuration: not a mapping")
    return expand(raw, env)


def translate(config: dict[str, Any], pod: str, node_address: str, route: str, tenant_routing: bool) -> CollectorPlan:
    """The jobs and queues that run `config` for the collector pod on the node at `node_address`."""
    service = config.get("service") or {}
    pipelines = {
        name: spec for name, spec in (service.get("pipelines") or {}).items() if name.split("/")[0] == "metrics"
    }
    if not pipelines:
        raise LabLimitError("service", "no metrics pipeline: the lab runs the metrics signal only")
    plan = CollectorPlan(extensions=_extensions(config, service))
    for name, pipeline in pipelines.items():
        for receiver in pipeline.get("receivers") or []:
            _require(config, "receivers", receiver)
            if receiver.split("/")[0] != "prometheus":
                raise LabLimitError(f"receivers::{receiver}", "the lab runs only the prometheus receiver")
        labels, resource = _processor_rules(config, name, pipeline.get("processors") or [])
        for exporter in pipeline.get("exporters") or []:
            _require(config, "exporters", exporter)
            kind = exporter.split("/")[0]
            if kind in _NO_OP_EXPORTERS:
                continue
            if kind != "prometheusremotewrite":
                raise LabLimitError(f"exporters::{exporter}", "the lab runs only the prometheusremotewrite exporter")
            queue = _queue(config, exporter, f"{pod}/{exporter}", labels, resource, tenant_routing)
            queue.routes.add(f"{route}.{name}")
            plan.queues.append(queue)
        for receiver in pipeline.get("receivers") or []:
            plan.jobs += _jobs(config["receivers"][receiver], receiver, pod, node_address, f"{route}.{name}")
    return plan


def _require(config: dict[str, Any], section: str, name: str) -> None:
    if name not in (config.get(section) or {}):
        kind = section[:-1]
        raise ConfigError("service", f"references {kind} {name!r} which is not configured")


def _extensions(config: dict[str, Any], service: dict[str, Any]) -> Extensions:
    extensions = config.get("extensions") or {}
    for name in service.get("extensions") or []:
        if name not in extensions:
            raise ConfigError("service", f"references extension {name!r} which is not configured")
        if name.split("/")[0] not in _IGNORED_EXTENSIONS:
            raise LabLimitError(f"extensions::{name}", "the lab does not run this extension")
    health = next(
        (
            spec or {}
            for name, spec in extensions.items()
            if name.split("/")[0] == "health_check" and name in (service.get("extensions") or [])
        ),
        None,
    )
    telemetry = (service.get("telemetry") or {}).get("metrics") or {}
    address = telemetry.get("address")
    for reader in telemetry.get("readers") or []:
        exporter = ((reader.get("pull") or {}).get("exporter") or {}).get("prometheus") or {}
        if exporter:
            address = f"{exporter.get('host', 'localhost')}:{exporter.get('port', 8888)}"
    return Extensions(
        health_endpoint=(health or {}).get("endpoint", "localhost:13133") if health is not None else "",
        health_path=(health or {}).get("path", "/"),
        telemetry_address=address or "localhost:8888",
    )


def _processor_rules(
    config: dict[str, Any], pipeline: str, names: list[str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Datapoint-attribute rules (`attributes`) and resource-attribute rules (`resource`), in order."""
    labels: list[dict[str, Any]] = []
    resource: list[dict[str, Any]] = []
    for name in names:
        _require(config, "processors", name)
        kind = name.split("/")[0]
        if kind in _NO_OP_PROCESSORS:
            continue
        if kind not in ("attributes", "resource"):
            raise LabLimitError(f"processors::{name}", f"the lab does not run this processor (pipeline {pipeline})")
        target = labels if kind == "attributes" else resource
        for action in (config["processors"][name] or {}).get("actions") or []:
            target += _action_rules(name, action)
    return labels, resource


def _action_rules(processor: str, action: dict[str, Any]) -> list[dict[str, Any]]:
    label = attribute_label(str(action.get("key", "")))
    kind = action.get("action")
    if kind == "delete":
        return [{"regex": re2_escape(label), "action": "labeldrop"}]
    if "value" not in action:
        raise LabLimitError(f"processors::{processor}", f"the lab emulates only literal values for {kind}")
    value = str(action["value"])
    if kind == "insert":
        return [{"source_labels": [label], "regex": "", "target_label": label, "replacement": value}]
    if kind == "update":
        return [{"source_labels": [label], "regex": "(.+)", "target_label": label, "replacement": value}]
    if kind == "upsert":
        return [{"target_label": label, "replacement": value}]
    raise LabLimitError(f"processors::{processor}", f"the lab does not emulate the action {kind!r}")


def _queue(
    config: dict[str, Any],
    exporter: str,
    name: str,
    label_rules: list[dict[str, Any]],
    resource_rules: list[dict[str, Any]],
    tenant_routing: bool,
) -> Queue:
    spec = config["exporters"][exporter] or {}
    endpoint = spec.get("endpoint")
    if not endpoint:
        raise ConfigError(f"exporters::{exporter}", "endpoint is required")
    extensions = config.get("extensions") or {}
    authenticator = (spec.get("auth") or {}).get("authenticator")
    if authenticator:
        if authenticator not in extensions:
            raise ConfigError(f"exporters::{exporter}", f"authenticator {authenticator!r} is not configured")
        client = (extensions[authenticator] or {}).get("client_auth") or {}
        if not client.get("username") or not client.get("password"):
            raise ConfigError(f"extensions::{authenticator}", "client_auth needs a username and a password")
    tenant = {str(k).lower(): str(v) for k, v in (spec.get("headers") or {}).items()}.get("x-scope-orgid")
    url = _through_gateway(str(endpoint), tenant) if tenant and tenant_routing else str(endpoint)
    rules = list(label_rules)
    if (spec.get("resource_to_telemetry_conversion") or {}).get("enabled"):
        rules += _resource_labels() + resource_rules
    rules += external_label_rules({str(k): str(v) for k, v in (spec.get("external_labels") or {}).items()})
    settings: dict[str, Any] = {}
    if spec.get("timeout"):
        settings["remote_timeout"] = spec["timeout"]
    tls = spec.get("tls") or {}
    if tls.get("insecure_skip_verify") or tls.get("ca_file"):
        settings["tls_config"] = {k: tls[k] for k in ("insecure_skip_verify", "ca_file") if k in tls}
    settings["queue_config"] = {"batch_send_deadline": "1s", "max_shards": 1}
    return Queue(name, url, set(), rules, settings)


def _resource_labels() -> list[dict[str, Any]]:
    """The prometheus receiver's resource attributes, copied to labels by resource_to_telemetry_conversion."""
    return [
        {"source_labels": ["job"], "target_label": "service_name"},
        {"source_labels": ["instance"], "target_label": "service_instance_id"},
        {"source_labels": ["instance"], "regex": "(.+):(\\d+)", "target_label": "server_address", "replacement": "$1"},
        {"source_labels": ["instance"], "regex": "(.+):(\\d+)", "target_label": "server_port", "replacement": "$2"},
        {"target_label": "url_scheme", "replacement": "http"},
    ]


def _jobs(receiver: dict[str, Any], name: str, pod: str, node_address: str, route: str) -> list[Job]:
    prometheus = (receiver or {}).get("config") or {}
    defaults = prometheus.get("global") or {}
    jobs = []
    for scrape in prometheus.get("scrape_configs") or []:
        unknown = sorted(k for k in scrape if k.endswith("_sd_configs") and k != "static_configs")
        if unknown:
            raise LabLimitError(f"receivers::{name}", f"the lab does not emulate {', '.join(unknown)}")
        job_name = scrape.get("job_name", "")
        # Prometheus' defaulting: the global interval (1m) and timeout (10s), the timeout never above the interval.
        interval = go_duration(scrape.get("scrape_interval", defaults.get("scrape_interval", "1m")))
        timeout = scrape.get("scrape_timeout")
        if timeout is None:
            timeout = min(go_duration(defaults.get("scrape_timeout", "10s")), interval)
        settings: dict[str, Any] = {
            "scrape_interval": duration(interval),
            "scrape_timeout": duration(go_duration(timeout) if isinstance(timeout, str) else timeout),
        }
        settings.update({key: scrape[key] for key in _SCRAPE_KEYS if key in scrape})
        if scrape.get("metric_relabel_configs"):
            settings["metric_relabel_configs"] = [relabel_rule(rule) for rule in scrape["metric_relabel_configs"]]
        job = Job(
            f"{pod}/{name}/{job_name}",
            job_name,
            route,
            [relabel_rule(r) for r in scrape.get("relabel_configs") or []],
            settings,
        )
        job.static_groups = [
            {"targets": list(group.get("targets") or []), "labels": dict(group.get("labels") or {})}
            for group in scrape.get("static_configs") or []
        ]
        job.network_rules = _host_network_rules(node_address)
        jobs.append(job)
    return jobs


def _host_network_rules(node_address: str) -> list[dict[str, Any]]:
    """A host-network pod's loopback is its node's: keep `instance`, send the scrape to the node."""
    return [
        {
            "source_labels": ["instance", "__address__"],
            "separator": ";",
            "regex": ";(.+)",
            "target_label": "instance",
            "replacement": "$1",
        },
        {
            "source_labels": ["__address__"],
            "regex": f"{_LOCAL_HOSTS}:(\\d+)",
            "target_label": "__address__",
            "replacement": f"{node_address}:$1",
        },
    ]
