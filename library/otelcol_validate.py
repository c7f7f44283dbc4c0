#!/usr/bin/python
"""Ansible module: check an OpenTelemetry Collector configuration before it is deployed."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: otelcol_validate
short_description: Check an OpenTelemetry Collector configuration the way otelcol would reject it
description:
  - Checks a collector configuration offline, where C(otelcol-contrib validate) cannot run, for the faults
    otelcol's own validation and its components' checks report, in their wording where it is known.
  - Sections and ids - only C(receivers), C(processors), C(exporters), C(connectors), C(extensions) and
    C(service) at the top; component ids C(type[/name]); pipeline ids C(<signal>[/name]).
  - Pipelines - at least one; each with receivers and exporters; every referenced component configured and
    referenced once; C(service::extensions) referencing configured extensions only.
  - Expansion - every C(${env:NAME}) names a variable in I(env) (when given); every other C($) is escaped as
    C($$), which matters in the prometheus receiver's embedded Prometheus configuration (C($1) in a relabel
    replacement must be written C($$1)).
  - Components - the C(prometheus) receiver has scrape configs with unique job names and none of the
    Prometheus features it rejects; C(prometheusremotewrite) has an http(s) endpoint, a valid queue and an
    authenticator that is configured and enabled; C(health_check) listens on host:port.
  - Read-only, so it runs in check mode too and never reports a change.
options:
  config:
    description: The configuration, as YAML text.
    type: str
    required: true
  env:
    description:
      - Names of the environment variables the collector's pod sets. When given, a C(${env:NAME}) reference to
        any other name is an error (the collector would expand it to an empty string).
    type: list
    elements: str
author:
  - alloy-migration maintainers
"""

EXAMPLES = r"""
- name: Check the collector configuration before it goes into the ConfigMap
  otelcol_validate:
    config: "{{ lookup('ansible.builtin.template', 'config.yaml.j2') }}"
    env: [NODE_NAME, POD_IP]
"""

RETURN = r"""
errors:
  description: Every problem found; the task fails when there is one.
  returned: always
  type: list
  elements: str
  sample: ['service::pipelines::metrics: references exporter "otlp" which is not configured']
env_references:
  description: The environment variables the configuration references, sorted.
  returned: always
  type: list
  elements: str
  sample: [NODE_NAME, POD_IP]
pipelines:
  description: Each pipeline's receivers, processors and exporters.
  returned: always
  type: dict
  sample: {"metrics": {"receivers": ["prometheus"], "processors": ["batch"], "exporters": ["prometheusremotewrite"]}}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.otel_config import check


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "config": {"type": "str", "required": True},
            "env": {"type": "list", "elements": "str"},
        },
        supports_check_mode=True,
    )
    report = check(module.params["config"], module.params["env"])
    result = {
        "changed": False,
        "errors": report.errors,
        "env_references": sorted(report.env_references),
        "pipelines": report.pipelines,
    }
    if not report.valid:
        count = len(report.errors)
        module.fail_json(
            msg=f"the collector configuration has {count} problem{'s' if count > 1 else ''}: "
            + "; ".join(report.errors),
            **result,
        )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
