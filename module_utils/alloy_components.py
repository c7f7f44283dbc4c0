"""What the Alloy validator knows about components, config blocks, services and the standard library.

Argument tables come from grafana/alloy docs/sources/reference/components/<namespace>/<name>.md (read late
2026): each component lists its attributes (required or not), its nested blocks (required, repeatable) and
its exports. A block whose contents the docs describe only through shared or vendor-specific tables
(azuread, sigv4, metrics stages...) is kept unchecked rather than guessed: whatever it contains is accepted.

Components Alloy ships but this table does not describe are listed by name in KNOWN_COMPONENTS, so the
validator can tell a real component it does not check (a warning) from a name Alloy would reject (an error).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


@dataclass(frozen=True)
class BlockSpec:
    """The attributes and nested blocks allowed in one block body."""

    attributes: frozenset[str] = frozenset()
    required_attributes: tuple[str, ...] = ()
    blocks: Mapping[str, BlockSpec] = field(default_factory=lambda: MappingProxyType({}))
    required: bool = False
    repeatable: bool = False
    checked: bool = True


@dataclass(frozen=True)
class ComponentSpec:
    name: str
    arguments: BlockSpec
    exports: frozenset[str] = frozenset()


def _block(
    optional: str = "",
    required: str = "",
    blocks: Mapping[str, BlockSpec] | None = None,
    *,
    is_required: bool = False,
    repeatable: bool = False,
) -> BlockSpec:
    required_names = tuple(required.split())
    return BlockSpec(
        attributes=frozenset(optional.split()) | frozenset(required_names),
        required_attributes=required_names,
        blocks=MappingProxyType(dict(blocks or {})),
        required=is_required,
        repeatable=repeatable,
    )


def _repeatable(spec: BlockSpec) -> BlockSpec:
    return BlockSpec(spec.attributes, spec.required_attributes, spec.blocks, spec.required, True, spec.checked)


UNCHECKED = BlockSpec(checked=False)

# Shared blocks (docs/sources/shared/reference/components/*-block.md).
TLS_CONFIG = _block("ca_pem ca_file cert_pem cert_file key_pem key_file server_name insecure_skip_verify min_version")
BASIC_AUTH = _block("username username_file password password_file")
AUTHORIZATION = _block("type credentials credentials_file")
OAUTH2 = _block(
    "client_id client_id_file client_secret client_secret_file endpoint_params no_proxy proxy_connect_header"
    " proxy_from_environment proxy_url scopes token_url",
    blocks={"tls_config": TLS_CONFIG},
)
RULE = _block("source_labels separator regex modulus target_label replacement action", repeatable=True)
CLUSTERING = _block(required="enabled")
PROXY_ARGUMENTS = "proxy_url no_proxy proxy_from_environment proxy_connect_header"
HTTP_CLIENT_ARGUMENTS = f"bearer_token bearer_token_file enable_http2 follow_redirects {PROXY_ARGUMENTS}"
HTTP_CLIENT_BLOCKS = {
    "basic_auth": BASIC_AUTH,
    "authorization": AUTHORIZATION,
    "oauth2": OAUTH2,
    "tls_config": TLS_CONFIG,
}
KUBERNETES_CLIENT = _block(f"api_server kubeconfig_file {HTTP_CLIENT_ARGUMENTS}", blocks=HTTP_CLIENT_BLOCKS)
MATCH_EXPRESSION = _block("values", "key operator", repeatable=True)

_PROMETHEUS_ENDPOINT = _block(
    f"http_headers headers name protobuf_message remote_timeout round_robin_dns send_exemplars"
    f" send_native_histograms {HTTP_CLIENT_ARGUMENTS}",
    "url",
    {
        **HTTP_CLIENT_BLOCKS,
        "azuread": UNCHECKED,
        "google_iam": UNCHECKED,
        "sigv4": UNCHECKED,
        "metadata_config": _block("max_samples_per_send send_interval send"),
        "queue_config": _block(
            "batch_send_deadline capacity max_backoff max_samples_per_send max_shards min_backoff min_shards"
            " retry_on_http_429 sample_age_limit"
        ),
        "write_relabel_config": RULE,
    },
    repeatable=True,
)

_LOKI_ENDPOINT = _block(
    f"batch_size batch_wait http_headers headers max_backoff_period max_backoff_retries min_backoff_period"
    f" name remote_timeout retry_on_http_429 tenant_id {HTTP_CLIENT_ARGUMENTS}",
    "url",
    {
        **HTTP_CLIENT_BLOCKS,
        "queue_config": _block("block_on_overflow capacity drain_timeout min_shards"),
    },
    repeatable=True,
)

_SCRAPE_ARGUMENTS = (
    "body_size_limit convert_classic_histograms_to_nhcb enable_compression enable_protobuf_negotiation"
    " extra_metrics http_headers honor_labels honor_timestamps honor_metadata job_name label_limit"
    " label_name_length_limit label_value_length_limit metric_name_escaping_scheme"
    " metric_name_validation_scheme metrics_path native_histogram_bucket_limit"
    " native_histogram_min_bucket_factor params sample_limit scheme scrape_classic_histograms"
    " scrape_failure_log_file scrape_fallback_protocol scrape_interval scrape_native_histograms"
    " scrape_protocols scrape_timeout target_limit track_timestamps_staleness " + HTTP_CLIENT_ARGUMENTS
)


def _loki_stages() -> dict[str, BlockSpec]:
    """The stage.* blocks of loki.process (docs: loki.process.md); stage.match nests further stages."""
    stages = {
        "stage.cri": _block("max_partial_line_size_truncate max_partial_line_size max_partial_lines"),
        "stage.decolorize": _block(),
        "stage.docker": _block(),
        "stage.drop": _block("drop_counter_reason expression longer_than older_than separator source value"),
        "stage.eventlogmessage": _block("drop_invalid_labels overwrite_existing source"),
        "stage.geoip": _block("custom_lookups db_type", "db source"),
        "stage.json": _block("drop_malformed source", "expressions"),
        "stage.label_drop": _block("values"),
        "stage.label_keep": _block("values"),
        "stage.labels": _block("values"),
        "stage.limit": _block("by_label_name drop max_distinct_labels", "burst rate"),
        "stage.logfmt": _block("source", "mapping"),
        "stage.luhn": _block("min_length replacement source"),
        "stage.metrics": _block(
            blocks={
                "metric.counter": _block(
                    "count_entry_bytes description match_all max_idle_duration prefix source value",
                    "action name",
                    repeatable=True,
                ),
                "metric.gauge": _block(
                    "description max_idle_duration prefix source value", "action name", repeatable=True
                ),
                "metric.histogram": _block(
                    "description max_idle_duration prefix source value", "buckets name", repeatable=True
                ),
            }
        ),
        "stage.multiline": _block("max_lines max_wait_time", "firstline"),
        "stage.output": _block(required="source"),
        "stage.pack": _block("ingest_timestamp", "labels"),
        "stage.regex": _block("source labels_from_groups", "expression"),
        "stage.replace": _block("source replace", "expression"),
        "stage.sampling": _block("drop_counter_reason", "rate"),
        "stage.static_labels": _block("values"),
        "stage.structured_metadata": _block("values"),
        "stage.template": _block(required="source template"),
        "stage.tenant": _block("label source value"),
        "stage.timestamp": _block("fallback_formats location action_on_failure", "source format"),
    }
    nested = {name: _repeatable(spec) for name, spec in stages.items()}
    match = _block("pipeline_name action drop_counter_reason", "selector", repeatable=True)
    # The match stage holds further stages, itself included: share one live mapping to allow any depth.
    nested["stage.match"] = BlockSpec(
        match.attributes, match.required_attributes, MappingProxyType(nested), repeatable=True
    )
    return nested


def _operator_component(name: str, extra_arguments: str = "") -> ComponentSpec:
    return ComponentSpec(
        name,
        _block(
            f"namespaces {extra_arguments}",
            "forward_to",
            {
                "client": KUBERNETES_CLIENT,
                "rule": RULE,
                "scrape": UNCHECKED,
                "selector": _block("match_labels", blocks={"match_expression": MATCH_EXPRESSION}),
                "clustering": CLUSTERING,
            },
        ),
    )


_LABEL_SELECTOR = _block(required="match_labels", blocks={"match_expression": MATCH_EXPRESSION})

_SPECS = (
    ComponentSpec(
        "discovery.kubernetes",
        _block(
            f"api_server kubeconfig_file {HTTP_CLIENT_ARGUMENTS}",
            "role",
            {
                **HTTP_CLIENT_BLOCKS,
                "namespaces": _block("own_namespace names"),
                "selectors": _block("label field", "role", repeatable=True),
                "attach_metadata": _block("node namespace"),
            },
        ),
        frozenset({"targets"}),
    ),
    ComponentSpec(
        "discovery.relabel", _block(required="targets", blocks={"rule": RULE}), frozenset({"output", "rules"})
    ),
    ComponentSpec(
        "prometheus.scrape",
        _block(_SCRAPE_ARGUMENTS, "targets forward_to", {**HTTP_CLIENT_BLOCKS, "clustering": CLUSTERING}),
    ),
    ComponentSpec(
        "prometheus.relabel",
        _block("max_cache_size", "forward_to", {"rule": RULE}),
        frozenset({"receiver", "rules"}),
    ),
    ComponentSpec(
        "prometheus.remote_write",
        _block(
            "external_labels",
            blocks={
                "endpoint": _PROMETHEUS_ENDPOINT,
                "wal": _block("truncate_frequency min_keepalive_time max_keepalive_time"),
            },
        ),
        frozenset({"receiver"}),
    ),
    ComponentSpec("prometheus.exporter.self", _block(), frozenset({"targets"})),
    _operator_component("prometheus.operator.servicemonitors", "kubernetes_role"),
    _operator_component("prometheus.operator.podmonitors"),
    ComponentSpec(
        "mimir.rules.kubernetes",
        _block(
            "tenant_id use_legacy_routes prometheus_http_prefix sync_interval mimir_namespace_prefix"
            f" external_labels {HTTP_CLIENT_ARGUMENTS}",
            "address",
            {
                **HTTP_CLIENT_BLOCKS,
                "extra_query_matchers": _block(
                    blocks={"matcher": _block(required="name match_type value", repeatable=True)}
                ),
                "rule_namespace_selector": _LABEL_SELECTOR,
                "rule_selector": _LABEL_SELECTOR,
            },
        ),
    ),
    ComponentSpec(
        "local.file_match",
        _block("sync_period ignore_older_than", "path_targets"),
        frozenset({"targets"}),
    ),
    ComponentSpec(
        "local.file",
        _block("detector is_secret poll_frequency", "filename"),
        frozenset({"content"}),
    ),
    ComponentSpec(
        "loki.source.file",
        _block(
            "encoding legacy_positions_file tail_from_end",
            "forward_to targets",
            {
                "decompression": _block("initial_delay", "enabled format"),
                "file_watch": _block("max_poll_frequency min_poll_frequency"),
            },
        ),
    ),
    ComponentSpec("loki.process", _block(required="forward_to", blocks=_loki_stages()), frozenset({"receiver"})),
    ComponentSpec(
        "loki.relabel",
        _block("max_cache_size", "forward_to", {"rule": RULE}),
        frozenset({"receiver", "rules"}),
    ),
    ComponentSpec(
        "loki.write",
        _block(
            "external_labels max_streams",
            blocks={
                "endpoint": _LOKI_ENDPOINT,
                "wal": _block("drain_timeout enabled max_read_frequency max_segment_age min_read_frequency"),
            },
        ),
        frozenset({"receiver"}),
    ),
    ComponentSpec(
        "remote.kubernetes.secret",
        _block("poll_frequency poll_timeout", "namespace name", {"client": KUBERNETES_CLIENT}),
        frozenset({"data"}),
    ),
    ComponentSpec(
        "remote.kubernetes.configmap",
        _block("poll_frequency poll_timeout", "namespace name", {"client": KUBERNETES_CLIENT}),
        frozenset({"data"}),
    ),
)

COMPONENTS: Mapping[str, ComponentSpec] = MappingProxyType({spec.name: spec for spec in _SPECS})


def _names(namespace: str, members: str) -> frozenset[str]:
    return frozenset(f"{namespace}.{member}" for member in members.split())


# Every component in the Alloy reference docs (docs/sources/reference/components/), late 2026.
KNOWN_COMPONENTS = (
    _names("beyla", "ebpf")
    | _names("database_observability", "mysql postgres mssql sql_server")
    | _names(
        "discovery",
        "aws azure consul consulagent digitalocean dns docker dockerswarm ec2 eureka file gce hetzner"
        " http ionos kubelet kubernetes kuma lightsail linode marathon nerve nomad openstack ovhcloud"
        " process puppetdb relabel remote_relabel scaleway serverset triton uyuni",
    )
    | _names("faro", "receiver")
    | _names("local", "file file_match")
    | _names(
        "loki",
        "echo enrich enricher process relabel rules.kubernetes secretfilter source.api source.awsfirehose"
        " source.azure_event_hubs source.cloudflare source.docker source.file source.gcplog source.gelf"
        " source.heroku source.journal source.kafka source.kubernetes source.kubernetes_events source.podlogs"
        " source.string source.syslog source.windowsevent write",
    )
    | _names("mimir", "alerts.kubernetes rules.kubernetes")
    | _names(
        "otelcol",
        "auth.azure auth.basic auth.bearer auth.google auth.headers auth.oauth2 auth.sigv4 connector.count"
        " connector.host_info connector.servicegraph connector.signaltometrics connector.spanlogs"
        " connector.spanmetrics encoding.jsonlog encoding.text exporter.awss3 exporter.azureblob"
        " exporter.clickhouse exporter.datadog exporter.debug exporter.elasticsearch exporter.faro"
        " exporter.file exporter.googlecloud exporter.googlecloudpubsub exporter.kafka exporter.loadbalancing"
        " exporter.logging exporter.loki exporter.opensearch exporter.otlp exporter.otlphttp"
        " exporter.prometheus exporter.splunkhec exporter.syslog extension.jaeger_remote_sampling"
        " processor.attributes processor.batch processor.cardinality_guardian processor.cumulativetodelta"
        " processor.deltatocumulative processor.discovery processor.filter processor.groupbyattrs"
        " processor.interval processor.k8sattributes processor.memory_limiter processor.metric_start_time"
        " processor.probabilistic_sampler processor.redaction processor.resourcedetection processor.span"
        " processor.sql_fingerprint processor.tail_sampling processor.transform receiver.awscloudwatch"
        " receiver.awsecscontainermetrics receiver.awsfirehose receiver.awss3 receiver.cloudflare"
        " receiver.datadog receiver.faro receiver.file_stats receiver.filelog receiver.fluentforward"
        " receiver.github receiver.googlecloudpubsub receiver.influxdb receiver.jaeger receiver.k8s_workloads"
        " receiver.kafka receiver.kubernetes_rollouts receiver.loki receiver.nginx receiver.opencensus"
        " receiver.otlp receiver.prometheus receiver.pyroscope receiver.sdlc receiver.solace"
        " receiver.splunkhec receiver.syslog receiver.tcplog receiver.vcenter receiver.zipkin storage.file",
    )
    | _names(
        "prometheus",
        "alertmanager.relay echo enrich exporter.apache exporter.azure exporter.blackbox exporter.cadvisor"
        " exporter.catchpoint exporter.cloudwatch exporter.consul exporter.databricks exporter.dnsmasq"
        " exporter.elasticsearch exporter.gcp exporter.github exporter.ipmi exporter.kafka exporter.memcached"
        " exporter.mongodb exporter.mssql exporter.mysql exporter.nvidiagpu exporter.oracledb"
        " exporter.postgres exporter.process exporter.redis exporter.self exporter.smartctl exporter.snmp"
        " exporter.snowflake exporter.squid exporter.ssh exporter.static exporter.statsd exporter.tailscale"
        " exporter.unix exporter.windows expose mapping operator.podmonitors operator.probes"
        " operator.scrapeconfigs operator.servicemonitors receive_http relabel remote.queue remote_write"
        " scrape static write.queue",
    )
    | _names("pyroscope", "ebpf enrich fsdump java profile.relabel receive_http relabel scrape write")
    | _names("remote", "aws.secrets_manager http kubernetes.configmap kubernetes.secret s3 vault")
)

# Blocks the loader treats as configuration, not components (internal/validator/validate.go).
CONFIG_BLOCKS = frozenset(
    {
        "logging",
        "tracing",
        "argument",
        "export",
        "foreach",
        "import.file",
        "import.string",
        "import.http",
        "import.git",
    }
)
# Root-only blocks that configure a service; the others exist but take no configuration.
CONFIGURABLE_SERVICES = frozenset({"http", "remotecfg", "livedebugging"})
UNCONFIGURABLE_SERVICES = frozenset({"cluster", "labelstore", "otel", "ui"})
CONFIG_BLOCK_SPECS: Mapping[str, BlockSpec] = MappingProxyType(
    {
        "logging": _block("level format write_to"),
        "argument": _block("optional default comment"),
        "export": _block(required="value"),
        "import.file": _block("detector poll_frequency", "filename"),
        "import.string": _block(required="content"),
        "import.git": _block(
            "revision path pull_frequency", "repository", {"basic_auth": BASIC_AUTH, "ssh_key": UNCHECKED}
        ),
        "import.http": UNCHECKED,
        "tracing": UNCHECKED,
        "foreach": UNCHECKED,
    }
)

# Standard library (syntax/internal/stdlib/stdlib.go): namespaces with their members, plain identifiers.
STDLIB_NAMESPACES: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "constants": frozenset({"hostname", "os", "arch", "version"}),
        "sys": frozenset({"env"}),
        "convert": frozenset({"nonsensitive"}),
        "array": frozenset({"concat", "combine_maps"}),
        "encoding": frozenset({"from_json", "from_yaml", "from_base64", "from_URLbase64", "to_base64", "to_URLbase64"}),
        "string": frozenset(
            {
                "format",
                "join",
                "replace",
                "split",
                "to_lower",
                "to_upper",
                "trim",
                "trim_prefix",
                "trim_suffix",
                "trim_space",
            }
        ),
        "file": frozenset({"path_join"}),
    }
)
STDLIB_FUNCTIONS = frozenset({"coalesce", "json_path"})
# Deprecated aliases of namespaced functions: still accepted, with a warning.
STDLIB_DEPRECATED = frozenset(
    {
        "env",
        "nonsensitive",
        "concat",
        "json_decode",
        "yaml_decode",
        "base64_decode",
        "format",
        "join",
        "replace",
        "split",
        "to_lower",
        "to_upper",
        "trim",
        "trim_prefix",
        "trim_suffix",
        "trim_space",
    }
)
STDLIB_EXPERIMENTAL = frozenset({"array.combine_maps"})
STDLIB_IDENTIFIERS = frozenset(STDLIB_NAMESPACES) | STDLIB_FUNCTIONS | STDLIB_DEPRECATED
