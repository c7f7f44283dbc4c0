"""Settings of the lab's metrics plane."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MetricsConfig:
    """Every knob of the metrics plane; the defaults mirror the seed cluster, tests shrink the timings."""

    # Port of the storage Prometheus (Mimir's stand-in storage and query engine) on 127.0.0.1.
    storage_port: int = 9009
    # Port of the Mimir front (push, /prometheus query prefix, HA tracker, /metrics) on 127.0.0.1.
    mimir_port: int = 8080
    # Port of kube-state-metrics on 127.0.0.1 (one endpoint for the whole cluster, like the Deployment).
    ksm_port: int = 8081
    # First port of the legacy HA Prometheus agents on 127.0.0.1; replica i listens on base + i.
    agent_base_port: int = 9090
    # Per-node ports, each bound on the node's own loopback address.
    kubelet_port: int = 10250
    cadvisor_port: int = 8080
    node_exporter_port: int = 9100
    # Namespace of kube-prometheus-stack: its Prometheus CR, node-exporter and cAdvisor DaemonSets.
    legacy_namespace: str = "monitoring"
    # Namespaces of the seeded applications; their pods serve /metrics on their `http` container port.
    app_namespaces: tuple[str, ...] = ()
    # Response time the standalone cAdvisor adds per pod on its node (the seed saw ~30 s at ~50 pods).
    cadvisor_seconds_per_pod: float = 0.1
    # Scrape interval and timeout of the legacy agents (the seed scraped every 30 s).
    scrape_interval_seconds: float = 30.0
    scrape_timeout_seconds: float = 10.0
    # How often the storage Prometheus scrapes the Mimir front's own metrics (meta-monitoring).
    meta_scrape_interval_seconds: float = 15.0
    # Retention of the storage Prometheus; the lab keeps hours, not weeks.
    storage_retention: str = "6h"
    # Mimir's multitenancy_enabled: when true every request needs X-Scope-OrgID (401 "no org id").
    multitenancy_enabled: bool = True
    # Tenant the legacy agents write as. Debian's Prometheus 2.42 drops remote_write headers, so they
    # name it in the URL (the front's /gateway/<tenant> prefix); with multitenancy off it is unused.
    tenant_id: str = "lab"
    # Mimir limits.accept_ha_samples and the HA labels (limits.ha_cluster_label / ha_replica_label).
    accept_ha_samples: bool = True
    ha_cluster_label: str = "cluster"
    ha_replica_label: str = "__replica__"
    # distributor.ha_tracker.ha_tracker_failover_timeout: silence of the elected replica before failover.
    ha_failover_timeout_seconds: float = 30.0
    # Longest wait for a started Prometheus to answer /-/ready.
    ready_timeout_seconds: float = 30.0
