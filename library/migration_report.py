#!/usr/bin/python
"""Ansible module: write the migration's validation report (Markdown, JSON verdicts, PNG plots)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: migration_report
short_description: Write the validation report of a metrics migration on the controller
description:
  - Writes into I(dest) C(validation.json) (machine-readable verdicts, the before/after table, the figures and
    the plotted series), C(validation.md) (the same for a reader) and three PNG plots drawn with matplotlib
    (Agg backend) - C(scrape_duration.png) (p99 per source before and after, log scale),
    C(push_latency.png) (Mimir push p99 over the migration window) and C(samples_by_pipeline.png).
  - "The before/after table is the seed's: per compared source the scrape duration p99 and p50 and the interval,
    the distributor write p99 and bandwidth, samples per second, CPU and memory, each with after/before."
  - Takes no credential; fails without writing anything if a string of I(forbidden) appears in the report.
  - A report carries the time it was evaluated, so every run writes a new one (changed). In check mode nothing is
    written; the digest of what would be written is returned.
options:
  dest:
    description: Directory of the report.
    type: path
    required: true
  verdicts:
    description: The C(verdicts) of the migration_gates module.
    type: list
    elements: dict
    required: true
  current:
    description: The C(current) figures of the migration_gates module.
    type: dict
    required: true
  timeseries:
    description: The C(timeseries) of the migration_gates module.
    type: dict
    required: true
  evaluated_at:
    description: The C(evaluated_at) of the migration_gates module.
    type: float
    required: true
  query_url:
    description: The query URL the figures come from (without credentials).
    type: str
    required: true
  baseline:
    description: The baseline document.
    type: dict
    required: true
  baseline_path:
    description: Where the baseline document is.
    type: str
    required: true
  baseline_digest:
    description: sha256 of the baseline document.
    type: str
    required: true
  sources:
    description: Names for the new pipeline's source keys, as the migration_gates module takes them.
    type: dict
    default: {}
  comparisons:
    description: Legacy source key and the new source (key or name) that replaces it, per row group of the table.
    type: list
    elements: dict
    required: true
    suboptions:
      label:
        description: Name of the comparison.
        type: str
        required: true
      legacy:
        description: Source key in the baseline.
        type: str
        required: true
      new:
        description: Source of the new pipeline, a key or a name of I(sources).
        type: str
        required: true
  legacy_running:
    description: The legacy pipeline still writes (the bandwidth after is then estimated as now minus the baseline).
    type: bool
    required: true
  scrape_p99_max_seconds:
    description: The scrape gate's threshold, drawn on the plot.
    type: float
    default: 2
  push_p99_max_seconds:
    description: The push gate's threshold, drawn on the plot.
    type: float
    default: 1
  cutover:
    description: When the new pipeline started (Unix seconds), marked on the plots.
    type: float
  environment:
    description: Environment name for the title.
    type: str
    default: ""
  cluster_name:
    description: Cluster name for the title.
    type: str
    default: ""
  forbidden:
    description: Strings that must never appear in the report (the credentials in use).
    type: list
    elements: str
    default: []
author:
  - alloy-migration maintainers
"""

EXAMPLES = r"""
- name: Write the report
  migration_report:
    dest: "{{ migration_artifacts_dir }}/validation"
    verdicts: "{{ gates.verdicts }}"
    current: "{{ gates.current }}"
    timeseries: "{{ gates.timeseries }}"
    evaluated_at: "{{ gates.evaluated_at }}"
    query_url: "{{ gates.query_url }}"
    baseline: "{{ baseline }}"
    baseline_path: "{{ migration_artifacts_dir }}/baseline/baseline.json"
    baseline_digest: "{{ baseline_digest }}"
    comparisons:
      - {label: cAdvisor, legacy: cadvisor, new: "kubelet:/metrics/cadvisor"}
    legacy_running: true
    forbidden: ["{{ mimir_password }}"]
"""

RETURN = r"""
report_path:
  description: The Markdown report.
  returned: always
  type: str
json_path:
  description: The JSON report.
  returned: always
  type: str
plots:
  description: The PNG plots.
  returned: always
  type: list
  elements: str
digest:
  description: sha256 of the JSON report.
  returned: always
  type: str
passed:
  description: No verdict failed.
  returned: always
  type: bool
comparison:
  description: The before/after rows (figure, before, after, unit, ratio, note).
  returned: always
  type: list
  elements: dict
"""

from pathlib import Path
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.migration_report import Comparison, ReportInput, render

ARGUMENT_SPEC: dict[str, Any] = {
    "dest": {"type": "path", "required": True},
    "verdicts": {"type": "list", "elements": "dict", "required": True},
    "current": {"type": "dict", "required": True},
    "timeseries": {"type": "dict", "required": True},
    "evaluated_at": {"type": "float", "required": True},
    "query_url": {"type": "str", "required": True},
    "baseline": {"type": "dict", "required": True},
    "baseline_path": {"type": "str", "required": True},
    "baseline_digest": {"type": "str", "required": True},
    "sources": {"type": "dict", "default": {}},
    "comparisons": {
        "type": "list",
        "elements": "dict",
        "required": True,
        "options": {
            "label": {"type": "str", "required": True},
            "legacy": {"type": "str", "required": True},
            "new": {"type": "str", "required": True},
        },
    },
    "legacy_running": {"type": "bool", "required": True},
    "scrape_p99_max_seconds": {"type": "float", "default": 2},
    "push_p99_max_seconds": {"type": "float", "default": 1},
    "cutover": {"type": "float"},
    "environment": {"type": "str", "default": ""},
    "cluster_name": {"type": "str", "default": ""},
    "forbidden": {"type": "list", "elements": "str", "default": [], "no_log": True},
}


def report_input(params: dict[str, Any]) -> ReportInput:
    return ReportInput(
        verdicts=params["verdicts"],
        baseline=params["baseline"],
        baseline_path=params["baseline_path"],
        baseline_digest=params["baseline_digest"],
        current=params["current"],
        timeseries=params["timeseries"],
        comparisons=[
            Comparison(item["label"], item["legacy"], str(params["sources"].get(item["new"], item["new"])))
            for item in params["comparisons"]
        ],
        legacy_running=params["legacy_running"],
        scrape_p99_max_seconds=params["scrape_p99_max_seconds"],
        push_p99_max_seconds=params["push_p99_max_seconds"],
        evaluated_at=params["evaluated_at"],
        query_url=params["query_url"],
        environment=params["environment"],
        cluster_name=params["cluster_name"],
        cutover=params["cutover"],
    )


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    try:
        outcome = render(Path(params["dest"]), report_input(params), params["forbidden"], write=not module.check_mode)
    except (ValueError, OSError) as error:
        module.fail_json(msg=f"no report written: {error}")
    outcome.pop("markdown")
    module.exit_json(changed=True, **outcome)


if __name__ == "__main__":
    main()
