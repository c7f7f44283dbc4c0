"""An Alloy configuration translated into one Prometheus agent per ready replica.

- `discovery.kubernetes` → a file_sd file of the targets Prometheus' Kubernetes SD would produce;
- `discovery.relabel` chains → the rules of each scrape pipeline, in chain order;
- `prometheus.scrape` → one scrape job per pipeline (job label = `job_name`, or the component
  name as Alloy sets it), with its interval, timeout, scheme, path, params, credentials and TLS;
  `clustering { enabled = true }` keeps the targets whose hash of non-`__meta` labels falls to this
  replica (a `hashmod` over the ready replicas, in place of Alloy's consistent-hash ring);
- `prometheus.relabel` → `write_relabel_configs` of the queues it leads to (so it sees `up` too);
- `prometheus.remote_write` → one queue per endpoint, external labels added where absent; the
  X-Scope-OrgID header becomes the Mimir front's `/gateway/<tenant>` prefix (the agents' Prometheus
  build drops remote-write headers), basic-auth credentials are resolved but not sent.

Anything else raises `ConfigError` naming the component: the lab never runs part of a
configuration silently.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from lab.collectors import kubesd
from lab.collectors.agent import Job, Queue, Shard, external_label_rules, go_duration, relabel_rule
from lab.collectors.alloy_config import AlloyConfig, Component, ConfigError, LabLimitError, ReceiverRef, TargetsRef
from lab.metrics.mimir import gateway_prefix
from lab.metrics.prometheus import duration

SUPPORTED = frozenset(
    {
        "discovery.kubernetes",
        "discovery.relabel",
        "prometheus.scrape",
        "prometheus.relabel",
        "prometheus.remote_write",
        "local.file",
    }
)
# Arguments with no effect on what the lab's text-format endpoints yield.
_SCRAPE_NO_EFFECT = frozenset(
    {
        "scrape_protocols",
        "scrape_classic_histograms",
        "scrape_native_histograms",
        "native_histogram_bucket_limit",
        "native_histogram_min_bucket_factor",
        "enable_protobuf_negotiation",
        "enable_compression",
        "honor_metadata",
        "convert_classic_histograms_to_nhcb",
        "metric_name_validation_scheme",
        "metric_name_escaping_scheme",
        "scrape_fallback_protocol",
        "track_timestamps_staleness",
        "extra_metrics",
    }
)
_SCRAPE_COPIED = (
    "honor_labels",
    "honor_timestamps",
    "follow_redirects",
    "enable_http2",
    "sample_limit",
    "target_limit",
    "label_limit",
    "label_name_length_limit",
    "label_value_length_limit",
    "body_size_limit",
)
_SCRAPE_HANDLED = frozenset(
    {
        "targets",
        "forward_to",
        "job_name",
        "metrics_path",
        "scheme",
        "params",
        "scrape_interval",
        "scrape_timeout",
        "bearer_token",
        "bearer_token_file",
        "tls_config",
        "basic_auth",
        "authorization",
        "clustering",
        *_SCRAPE_COPIED,
    }
)
_QUEUE_KEYS = {
    "capacity": int,
    "max_shards": int,
    "min_shards": int,
    "max_samples_per_send": int,
    "batch_send_deadline": "duration",
    "min_backoff": "duration",
    "max_backoff": "duration",
    "retry_on_http_429": bool,
}
_ENDPOINT_HANDLED = frozenset(
    {
        "url",
        "name",
        "headers",
        "remote_timeout",
        "basic_auth",
        "bearer_token",
        "bearer_token_file",
        "authorization",
        "tls_config",
        "queue_config",
        "metadata_config",
        "write_relabel_config",
        "send_exemplars",
        "send_native_histograms",
        "follow_redirects",
        "enable_http2",
    }
)


def go_format_duration(seconds: float) -> str:
    """time.Duration.String() for whole milliseconds and above: 1m0s, 1.5s, 250ms."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms" if seconds else "0s"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{secs:.3f}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{int(hours)}h{int(minutes)}m{text}"
    return f"{int(minutes)}m{text}" if minutes else text


# The API resources each role's informers list and watch (Prometheus discovery/kubernetes).
ROLE_RESOURCES = {
    "node": (("", "nodes"),),
    "pod": (("", "pods"),),
    "service": (("", "services"),),
    "endpoints": (("", "endpoints"), ("", "pods"), ("", "services")),
    "endpointslice": (("discovery.k8s.io", "endpointslices"), ("", "pods"), ("", "services")),
}
_KINDS = {
    "nodes": "Node",
    "pods": "Pod",
    "services": "Service",
    "endpoints": "Endpoints",
    "endpointslices": "EndpointSlice",
}
# (API group, resource, namespace or None) -> None when the pod's service account may list and
# watch it, else the API server's Forbidden message.
Authorize = Callable[[str, str, str | None], str | None]


@dataclass(frozen=True)
class Replica:
    """The replica an agent plays: its position among the ready replicas of the StatefulSet."""

    index: int
    count: int


@dataclass
class Pipeline:
    """Targets from one origin through a chain of discovery.relabel components."""

    origin: str | None  # a discovery.kubernetes component id, or None for static targets
    static: list[dict[str, str]] = field(default_factory=list)
    rules: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Plan:
    """What one replica's agent runs, and the target files it reads."""

    jobs: list[Job]
    queues: list[Queue]
    target_files: dict[Path, list[kubesd.Group]]


class Translator:
    """Translates one evaluated configuration for one replica."""

    def __init__(
        self,
        config: AlloyConfig,
        snapshot: kubesd.Snapshot,
        namespace: str,
        host_path: Callable[[str], Path],
        secrets_dir: Path,
        targets_dir: Path,
        mimir_tenant_routing: bool,
        authorize: Authorize | None = None,
    ) -> None:
        self.config = config
        self.snapshot = snapshot
        self.namespace = namespace
        self.host_path = host_path
        self.secrets_dir = secrets_dir
        self.targets_dir = targets_dir
        self.tenant_routing = mimir_tenant_routing
        self.authorize = authorize
        # What a real Alloy would only log (e.g. discovery denied by RBAC): the runtime reports it.
        self.warnings: list[str] = []
        self._groups: dict[str, list[kubesd.Group]] = {}
        self._dry_run = False

    def check(self) -> None:
        """Everything `translate` refuses, without writing a file: run when a configuration loads."""
        self._dry_run = True
        try:
            self.translate(Replica(0, 1), [])
        finally:
            self._dry_run = False

    def translate(self, replica: Replica, network_rules: list[dict[str, Any]]) -> Plan:
        self._refuse_unsupported()
        jobs: list[Job] = []
        queues: dict[tuple[tuple[str, ...], str, int], Queue] = {}
        for number, scrape in enumerate(self.config.of_kind("prometheus.scrape")):
            route = f"r{number}"
            settings, clustered = self._scrape_settings(scrape)
            job_label = scrape.arguments.get("job_name") or scrape.id
            for index, pipeline in enumerate(self._pipelines(scrape, scrape.arguments.get("targets") or [], [])):
                job = Job(f"{scrape.id}/{index}", job_label, route, list(pipeline.rules), dict(settings))
                if pipeline.origin is not None:
                    job.targets_file = self.targets_dir / f"{pipeline.origin}.json"
                else:
                    job.static_groups = [_static_group(target) for target in pipeline.static]
                if clustered and replica.count > 0:
                    job.shard = Shard(replica.index, replica.count, self._hash_labels(pipeline))
                job.network_rules = network_rules
                jobs.append(job)
            for chain, remote_write, endpoint in self._paths(scrape, scrape.arguments.get("forward_to") or [], []):
                key = (tuple(component.id for component in chain), remote_write.id, endpoint)
                if key not in queues:
                    queues[key] = self._queue(f"q{len(queues)}", chain, remote_write, endpoint)
                queues[key].routes.add(route)
        files = {self.targets_dir / f"{origin}.json": groups for origin, groups in self._groups.items()}
        return Plan(jobs, list(queues.values()), files)

    # --- checks -----------------------------------------------------------------------------------------

    def _refuse_unsupported(self) -> None:
        unsupported = [c for c in self.config.components.values() if c.kind not in SUPPORTED]
        if unsupported:
            first = unsupported[0]
            raise LabLimitError(
                first.id,
                f"the lab does not run {first.kind} (it runs "
                f"{', '.join(sorted(SUPPORTED))})"
                + (f"; also not run: {', '.join(c.id for c in unsupported[1:])}" if len(unsupported) > 1 else ""),
            )

    # --- targets ----------------------------------------------------------------------------------------

    def _pipelines(self, owner: Component, targets: Any, rules: list[dict[str, Any]]) -> list[Pipeline]:
        if not isinstance(targets, list):
            raise ConfigError(owner.id, "targets must be a list of targets")
        pipelines: list[Pipeline] = []
        static: list[dict[str, str]] = []
        for item in targets:
            if isinstance(item, dict):
                static.append({str(k): str(v) for k, v in item.items()})
                continue
            if not isinstance(item, TargetsRef):
                raise LabLimitError(owner.id, f"the lab cannot use {item!r} as a target")
            source = self.config.components[item.component]
            if source.kind == "discovery.kubernetes":
                self._discover(source)
                pipelines.append(Pipeline(source.id, rules=list(rules)))
            elif source.kind == "discovery.relabel":
                chain = [relabel_rule(rule) for rule in source.blocks("rule")]
                pipelines += self._pipelines(source, source.arguments.get("targets") or [], chain + rules)
            else:
                raise LabLimitError(source.id, f"the lab does not run {source.kind}")
        if static:
            pipelines.append(Pipeline(None, static, list(rules)))
        return pipelines

    def _discover(self, component: Component) -> None:
        if component.id in self._groups:
            return
        args = component.arguments
        for name in ("api_server", "kubeconfig_file", "proxy_url"):
            if args.get(name):
                raise LabLimitError(component.id, f"{name} is not emulated: the lab discovers from its own API")
        role = str(args.get("role", ""))
        if role not in kubesd.ROLES:
            raise LabLimitError(component.id, f"role {role!r} is not emulated (roles: {', '.join(kubesd.ROLES)})")
        namespaces = component.block("namespaces")
        names = list(namespaces.get("names") or [])
        if namespaces.get("own_namespace"):
            names.append(self.namespace)
        selectors = tuple(
            kubesd.Selector(str(s.get("role", "")), str(s.get("label", "")), str(s.get("field", "")))
            for s in component.blocks("selectors")
        )
        attach_nodes = bool(component.block("attach_metadata").get("node")) and role != "node"
        groups = kubesd.discover(kubesd.DiscoveryConfig(role, tuple(names), selectors), self.snapshot)
        if attach_nodes:
            groups = _attach_node_metadata(groups, self.snapshot.nodes, role)
        self._groups[component.id] = self._permitted(component, role, names, attach_nodes, groups)

    def _permitted(
        self, component: Component, role: str, names: list[str], nodes: bool, groups: list[kubesd.Group]
    ) -> list[kubesd.Group]:
        """The targets whose informers the service account may fill; a denied list never syncs."""
        if self.authorize is None:
            return groups
        needed = ROLE_RESOURCES[role] + ((("", "nodes"),) if nodes else ())
        allowed: list[str | None] = []
        for namespace in names or [None]:
            denials = [
                (resource, message)
                for group, resource in needed
                if (message := self.authorize(group, resource, None if resource == "nodes" else namespace))
            ]
            if not denials:
                allowed.append(namespace)
                continue
            resource, message = denials[0]
            self.warnings.append(f"{component.id}: failed to list *v1.{_KINDS[resource]}: {message}")
        if None in allowed:
            return groups
        return [g for g in groups if g["labels"].get(f"{kubesd.META}namespace") in allowed]

    def _hash_labels(self, pipeline: Pipeline) -> tuple[str, ...]:
        """Names of the non-__meta labels a target can carry when it reaches the scrape."""
        names = {"__address__"}
        sources = self._groups.get(pipeline.origin, []) if pipeline.origin else []
        present = {name for group in sources for name in group["labels"]} | {
            name for target in pipeline.static for name in target
        }
        names |= {name for name in present if not name.startswith("__meta_")}
        for rule in pipeline.rules:
            action = rule.get("action", "replace")
            if action in ("replace", "hashmod", "lowercase", "uppercase") and rule.get("target_label"):
                names.add(rule["target_label"])
            elif action == "labelmap":
                pattern = re.compile(f"^(?:{rule.get('regex', '(.*)')})$")
                replacement = str(rule.get("replacement", "$1"))
                for name in present:
                    match = pattern.match(name)
                    if match:
                        names.add(_expand(replacement, match))
        return tuple(sorted(name for name in names if not name.startswith("__meta_") and "$" not in name))

    # --- scrape settings --------------------------------------------------------------------------------

    def _scrape_settings(self, scrape: Component) -> tuple[dict[str, Any], bool]:
        args = scrape.arguments
        unknown = sorted(set(args) - _SCRAPE_HANDLED - _SCRAPE_NO_EFFECT)
        if unknown:
            raise LabLimitError(scrape.id, f"the lab does not emulate {', '.join(unknown)}")
        if args.get("extra_metrics"):
            raise LabLimitError(scrape.id, "extra_metrics is not emulated by the lab's Prometheus")
        interval = go_duration(args.get("scrape_interval", "1m"))
        timeout = go_duration(args.get("scrape_timeout", "10s"))
        if timeout > interval:
            raise ConfigError(
                scrape.id,
                f"scrape_timeout ({go_format_duration(timeout)}) greater than scrape_interval "
                f"({go_format_duration(interval)}) for scrape config with job name "
                f"{json.dumps(args.get('job_name', ''))}",
            )
        settings: dict[str, Any] = {
            "scrape_interval": duration(interval),
            "scrape_timeout": duration(timeout),
            "metrics_path": args.get("metrics_path", "/metrics"),
            "scheme": args.get("scheme", "http"),
        }
        if args.get("params"):
            settings["params"] = {k: [str(v) for v in values] for k, values in args["params"].items()}
        for key in _SCRAPE_COPIED:
            if key in args:
                settings[key] = args[key]
        settings.update(self._http_client(scrape, args, f"{scrape.id}"))
        clustered = bool(scrape.block("clustering").get("enabled"))
        return settings, clustered

    def _http_client(self, owner: Component, args: dict[str, Any], key: str) -> dict[str, Any]:
        client: dict[str, Any] = {}
        if args.get("bearer_token_file"):
            client["bearer_token_file"] = str(self.host_path(str(args["bearer_token_file"])))
        elif args.get("bearer_token"):
            client["bearer_token_file"] = str(self._secret_file(f"{key}.bearer_token", str(args["bearer_token"])))
        tls = (args.get("tls_config") or [{}])[0]
        if tls:
            client["tls_config"] = self._tls(tls, key)
        basic = (args.get("basic_auth") or [{}])[0]
        if basic:
            client["basic_auth"] = self._basic_auth(owner, basic)
        authorization = (args.get("authorization") or [{}])[0]
        if authorization:
            auth: dict[str, Any] = {"type": authorization.get("type", "Bearer")}
            if authorization.get("credentials_file"):
                auth["credentials_file"] = str(self.host_path(str(authorization["credentials_file"])))
            elif authorization.get("credentials"):
                auth["credentials_file"] = str(
                    self._secret_file(f"{key}.credentials", str(authorization["credentials"]))
                )
            client["authorization"] = auth
        return client

    def _tls(self, tls: dict[str, Any], key: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in ("ca", "cert", "key"):
            if tls.get(f"{name}_file"):
                out[f"{name}_file"] = str(self.host_path(str(tls[f"{name}_file"])))
            elif tls.get(f"{name}_pem"):
                out[f"{name}_file"] = str(self._secret_file(f"{key}.{name}.pem", str(tls[f"{name}_pem"])))
        for name in ("server_name", "insecure_skip_verify", "min_version"):
            if name in tls:
                out[name] = tls[name]
        return out

    def _basic_auth(self, owner: Component, basic: dict[str, Any]) -> dict[str, Any]:
        username = str(basic.get("username", ""))
        if basic.get("username_file"):
            username = self._read(owner, str(basic["username_file"])).strip()
        out: dict[str, Any] = {"username": username}
        if basic.get("password_file"):
            self._read(owner, str(basic["password_file"]))
            out["password_file"] = str(self.host_path(str(basic["password_file"])))
        elif basic.get("password") is not None:
            out["password"] = str(basic["password"])
        return out

    def _read(self, owner: Component, path: str) -> str:
        try:
            return self.host_path(path).read_text()
        except OSError as exc:
            raise ConfigError(owner.id, f"failed to read {path}: {exc.strerror or exc}") from exc

    def _secret_file(self, name: str, content: str) -> Path:
        path = self.secrets_dir / re.sub(r"[^A-Za-z0-9_.-]", "_", name)
        if self._dry_run:
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text() != content:
            path.write_text(content)
            path.chmod(0o600)
        return path

    # --- forward_to graph -------------------------------------------------------------------------------

    def _paths(
        self, owner: Component, receivers: Any, chain: list[Component]
    ) -> list[tuple[list[Component], Component, int]]:
        paths: list[tuple[list[Component], Component, int]] = []
        for receiver in receivers if isinstance(receivers, list) else [receivers]:
            if not isinstance(receiver, ReceiverRef):
                raise ConfigError(owner.id, f"forward_to must list receivers, not {receiver!r}")
            target = self.config.components[receiver.component]
            if target.kind == "prometheus.remote_write":
                endpoints = target.blocks("endpoint")
                paths += [(chain, target, index) for index in range(len(endpoints))]
            elif target.kind == "prometheus.relabel":
                if target in chain:
                    raise ConfigError(target.id, "forward_to loops back to this component")
                paths += self._paths(target, target.arguments.get("forward_to") or [], [*chain, target])
            else:
                raise LabLimitError(target.id, f"the lab does not run {target.kind} as a metrics receiver")
        return paths

    def _queue(self, name: str, chain: list[Component], remote_write: Component, index: int) -> Queue:
        endpoint = remote_write.blocks("endpoint")[index]
        key = f"{remote_write.id}.endpoint{index}"
        unknown = sorted(set(endpoint) - _ENDPOINT_HANDLED)
        if unknown:
            raise LabLimitError(remote_write.id, f"the lab does not emulate endpoint {', '.join(unknown)}")
        rules = [relabel_rule(rule) for component in chain for rule in component.blocks("rule")]
        rules += external_label_rules(
            {str(k): str(v) for k, v in (remote_write.arguments.get("external_labels") or {}).items()}
        )
        rules += [
            relabel_rule(rule)
            for block in endpoint.get("write_relabel_config") or []
            for rule in block.get("rule") or []
        ]
        client = self._http_client(remote_write, endpoint, key)
        client.pop("basic_auth", None)  # resolved above (a missing file fails), never sent: see the module docstring
        settings: dict[str, Any] = {**client}
        if endpoint.get("remote_timeout"):
            settings["remote_timeout"] = duration(go_duration(endpoint["remote_timeout"]))
        queue_config = self._queue_config(remote_write, (endpoint.get("queue_config") or [{}])[0])
        if queue_config:
            settings["queue_config"] = queue_config
        tenant = {str(k).lower(): str(v) for k, v in (endpoint.get("headers") or {}).items()}.get("x-scope-orgid")
        url = str(endpoint.get("url", ""))
        if tenant and self.tenant_routing:
            url = _through_gateway(url, tenant)
        return Queue(name, url, set(), rules, settings)

    @staticmethod
    def _queue_config(owner: Component, config: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in config.items():
            kind = _QUEUE_KEYS.get(key)
            if kind is None:
                continue
            out[key] = duration(go_duration(value)) if kind == "duration" else kind(value)
        return out


def _through_gateway(url: str, tenant: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=gateway_prefix(tenant) + parts.path))


def _static_group(target: dict[str, str]) -> dict[str, Any]:
    labels = {k: v for k, v in target.items() if k != "__address__"}
    return {"targets": [target.get("__address__", "")], "labels": labels}


def _attach_node_metadata(groups: list[kubesd.Group], nodes: list[dict], role: str) -> list[kubesd.Group]:
    by_name = {node["metadata"]["name"]: node for node in nodes}
    key = {
        "pod": f"{kubesd.META}pod_node_name",
        "endpoints": f"{kubesd.META}endpoint_node_name",
        "endpointslice": f"{kubesd.META}endpointslice_endpoint_node_name",
    }[role]
    for group in groups:
        node = by_name.get(group["labels"].get(key, ""))
        if node is not None:
            kubesd.object_meta_labels(group["labels"], node["metadata"], "node")
    return groups


def _expand(replacement: str, match: re.Match[str]) -> str:
    def group(found: re.Match[str]) -> str:
        index = found.group(1) or found.group(2)
        if index.isdigit() and int(index) <= match.re.groups:
            return match.group(int(index)) or ""
        return ""

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", group, replacement)
