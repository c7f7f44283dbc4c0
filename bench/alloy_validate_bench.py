#!/usr/bin/env python3
"""Time a full validation (parse + semantic checks) of a large, realistic Alloy configuration.

Builds a directory of *.alloy files holding every component kind the toolkit renders, repeated per
tenant (a few hundred blocks), validates it several times and prints the median; target < 200 ms.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import ansible.module_utils

ROOT = Path(__file__).resolve().parent.parent
ansible.module_utils.__path__.append(str(ROOT / "module_utils"))

from ansible.module_utils.alloy_validator import format_diagnostic, validate_path  # noqa: E402

TARGET_MS = 200.0
BLOCK_HEADER = re.compile(r'^[a-z][a-z_.]* "\w+" \{', re.MULTILINE)

TENANT_TEMPLATE = """
// Pipeline for tenant {t}.
remote.kubernetes.secret "creds_{t}" {{
  namespace = "monitoring"
  name      = "mimir-{t}"
}}

local.file "token_{t}" {{
  filename  = "/var/run/secrets/kubernetes.io/serviceaccount/token"
  is_secret = true
}}

discovery.kubernetes "pods_{t}" {{
  role = "pod"
  namespaces {{
    names = ["team-{t}"]
  }}
  selectors {{
    role  = "pod"
    field = string.format("spec.nodeName=%s", sys.env("HOSTNAME"))
  }}
}}

discovery.kubernetes "nodes_{t}" {{
  role = "node"
}}

discovery.relabel "pods_{t}" {{
  targets = discovery.kubernetes.pods_{t}.targets
  rule {{
    source_labels = ["__meta_kubernetes_namespace"]
    target_label  = "namespace"
  }}
  rule {{
    source_labels = ["__meta_kubernetes_pod_name"]
    target_label  = "pod"
  }}
  rule {{
    source_labels = ["__meta_kubernetes_pod_container_name"]
    target_label  = "container"
  }}
}}

discovery.relabel "cadvisor_{t}" {{
  targets = discovery.kubernetes.nodes_{t}.targets
  rule {{
    replacement  = "/metrics/cadvisor"
    target_label = "__metrics_path__"
  }}
}}

prometheus.scrape "pods_{t}" {{
  targets         = discovery.relabel.pods_{t}.output
  forward_to      = [prometheus.relabel.filter_{t}.receiver]
  scrape_interval = "30s"
  clustering {{
    enabled = true
  }}
}}

prometheus.scrape "cadvisor_{t}" {{
  targets           = discovery.relabel.cadvisor_{t}.output
  forward_to        = [prometheus.relabel.filter_{t}.receiver]
  scheme            = "https"
  bearer_token_file = "/var/run/secrets/kubernetes.io/serviceaccount/token"
  tls_config {{
    ca_file     = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
    server_name = "kubernetes"
  }}
  clustering {{
    enabled = true
  }}
}}

prometheus.operator.servicemonitors "sm_{t}" {{
  forward_to = [prometheus.relabel.filter_{t}.receiver]
  namespaces = ["team-{t}"]
  selector {{
    match_expression {{
      key      = "team"
      operator = "In"
      values   = ["{t}"]
    }}
  }}
}}

prometheus.operator.podmonitors "pm_{t}" {{
  forward_to = [prometheus.relabel.filter_{t}.receiver]
}}

prometheus.exporter.self "self_{t}" {{}}

prometheus.relabel "filter_{t}" {{
  forward_to = [prometheus.remote_write.mimir_{t}.receiver]
  rule {{
    action        = "keep"
    source_labels = ["__name__"]
    regex         = "up|container_.*|kube_.*"
  }}
}}

prometheus.remote_write "mimir_{t}" {{
  external_labels = {{ cluster = constants.hostname, tenant = "{t}" }}
  endpoint {{
    url     = "http://mimir-distributor.mimir.svc:8080/api/v1/push"
    headers = {{ "X-Scope-OrgID" = "{t}" }}
    basic_auth {{
      username = convert.nonsensitive(remote.kubernetes.secret.creds_{t}.data["username"])
      password = remote.kubernetes.secret.creds_{t}.data["password"]
    }}
    queue_config {{
      max_shards           = 20
      max_samples_per_send = 2000
    }}
  }}
}}

mimir.rules.kubernetes "rules_{t}" {{
  address   = "http://mimir-ruler.mimir.svc:8080"
  tenant_id = "{t}"
  rule_selector {{
    match_labels = {{ team = "{t}" }}
  }}
}}

local.file_match "logs_{t}" {{
  path_targets = [{{ "__path__" = "/var/log/pods/team-{t}_*/*/*.log" }}]
}}

loki.source.file "logs_{t}" {{
  targets    = local.file_match.logs_{t}.targets
  forward_to = [loki.process.logs_{t}.receiver]
}}

loki.process "logs_{t}" {{
  forward_to = [loki.relabel.logs_{t}.receiver]
  stage.cri {{}}
  stage.drop {{
    older_than          = "24h"
    drop_counter_reason = "too_old"
  }}
  stage.match {{
    selector = "{{namespace=\\"team-{t}\\"}}"
    stage.labels {{
      values = {{ level = "" }}
    }}
  }}
  stage.structured_metadata {{
    values = {{ trace_id = "" }}
  }}
  stage.label_drop {{
    values = ["filename"]
  }}
}}

loki.relabel "logs_{t}" {{
  forward_to = [loki.write.loki_{t}.receiver]
  rule {{
    action = "labeldrop"
    regex  = "stream"
  }}
}}

loki.write "loki_{t}" {{
  endpoint {{
    url       = "http://loki-gateway.loki.svc/loki/api/v1/push"
    tenant_id = "{t}"
  }}
}}
"""


def write_config(directory: Path, tenants: int, files: int) -> int:
    """Spread the tenants' pipelines over `files` files; return the number of blocks written."""
    chunks: list[list[str]] = [[] for _ in range(files)]
    for index in range(tenants):
        chunks[index % files].append(TENANT_TEMPLATE.format(t=f"t{index:03d}"))
    texts = ["".join(chunk) for chunk in chunks]
    for number, text in enumerate(texts):
        (directory / f"pipeline_{number:02d}.alloy").write_text(text)
    return sum(len(BLOCK_HEADER.findall(text)) for text in texts)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=20, help="pipelines to generate (20 blocks each)")
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--runs", type=int, default=15)
    arguments = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        blocks = write_config(directory, arguments.tenants, arguments.files)
        size = sum(p.stat().st_size for p in directory.iterdir())
        lines = sum(p.read_text().count("\n") for p in directory.iterdir())
        timings = []
        for _ in range(arguments.runs):
            start = time.perf_counter()
            result = validate_path(str(directory))
            timings.append((time.perf_counter() - start) * 1000)
        if result.diagnostics:
            print("\n".join(format_diagnostic(d) for d in result.diagnostics), file=sys.stderr)
            return 1
    median = statistics.median(timings)
    print(f"config: {arguments.files} files, {blocks} top-level blocks, {lines} lines, {size / 1024:.0f} KiB")
    print(f"runs: {arguments.runs}, min {min(timings):.1f} ms, max {max(timings):.1f} ms")
    print(f"median full validation: {median:.1f} ms (target < {TARGET_MS:.0f} ms)")
    return 0 if median < TARGET_MS else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
