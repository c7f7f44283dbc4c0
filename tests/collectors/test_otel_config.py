"""The offline OTel Collector configuration checks, and the role's own rendered configuration under them.

Each broken case is the role's real configuration with one fault an operator could make; the check must
name the fault the way otelcol reports it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import otelcol_validate
import pytest
import yaml
from ansible.module_utils.otel_config import check

from tests.conftest import ROOT
from tests.modules.talos_module_support import run_module

ENV = ["NODE_NAME", "POD_IP", "OTEL_MIMIR_USERNAME", "OTEL_MIMIR_PASSWORD"]
RENDER_PLAY = """
- name: Render the otel_collector role's configuration
  hosts: localhost
  gather_facts: false
  vars:
    migration_mimir_push_url: http://mimir.example:8080/api/v1/push
    migration_mimir_tenant: lab
    migration_cluster_name: lab-talos
    otel_collector_mimir_auth: basic
  tasks:
    - name: Render
      ansible.builtin.copy:
        content: "{{ lookup('ansible.builtin.template', template) }}"
        dest: "{{ out }}"
        mode: "0644"
"""


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The role's template rendered by Ansible with its defaults and vars (basic auth on)."""
    work = tmp_path_factory.mktemp("otel-render")
    play = work / "render.yml"
    play.write_text(RENDER_PLAY)
    role = ROOT / "roles" / "otel_collector"
    completed = subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-playbook"),
            str(play),
            "-i",
            "localhost,",
            "-c",
            "local",
            "-e",
            f"@{role / 'defaults' / 'main.yml'}",
            "-e",
            f"@{role / 'vars' / 'main.yml'}",
            "-e",
            f"template={role / 'templates' / 'config.yaml.j2'}",
            "-e",
            f"out={work / 'config.yaml'}",
            "-e",
            f"ansible_python_interpreter={sys.executable}",
            "-e",
            "otel_collector_mimir_auth=basic",
        ],
        cwd=ROOT,
        env={**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return (work / "config.yaml").read_text()


def edited(text: str, edit) -> str:
    config = yaml.safe_load(text)
    edit(config)
    return yaml.safe_dump(config, sort_keys=False)


def test_the_roles_configuration_passes_and_references_only_the_pods_environment(rendered: str):
    report = check(rendered, ENV)

    assert report.errors == []
    assert report.env_references == {"NODE_NAME", "POD_IP", "OTEL_MIMIR_USERNAME", "OTEL_MIMIR_PASSWORD"}
    assert report.pipelines == {
        "metrics": {
            "receivers": ["prometheus"],
            "processors": ["memory_limiter", "batch"],
            "exporters": ["prometheusremotewrite"],
        }
    }


def test_the_roles_configuration_has_what_the_contract_names(rendered: str):
    config = yaml.safe_load(rendered)
    scrape = config["receivers"]["prometheus"]["config"]["scrape_configs"][0]
    exporter = config["exporters"]["prometheusremotewrite"]

    assert scrape["job_name"] == "containerd" and scrape["metrics_path"] == "/v1/metrics"
    assert scrape["static_configs"] == [{"targets": ["127.0.0.1:11234"], "labels": {"node": "${env:NODE_NAME}"}}]
    assert config["extensions"]["health_check"]["endpoint"] == "${env:POD_IP}:13133"
    assert exporter["endpoint"] == "http://mimir.example:8080/api/v1/push"
    assert exporter["headers"] == {"X-Scope-OrgID": "lab"}
    assert exporter["external_labels"] == {"cluster": "lab-talos"}
    assert exporter["auth"] == {"authenticator": "basicauth/mimir"}
    assert config["service"]["extensions"] == ["health_check", "basicauth/mimir"]
    assert config["service"]["telemetry"]["metrics"]["readers"][0]["pull"]["exporter"]["prometheus"]["port"] == 8888


def _unescaped_relabel(config: dict) -> None:
    scrape = config["receivers"]["prometheus"]["config"]["scrape_configs"][0]
    scrape["relabel_configs"] = [{"source_labels": ["__address__"], "target_label": "host", "replacement": "$1"}]


def _escaped_relabel(config: dict) -> None:
    scrape = config["receivers"]["prometheus"]["config"]["scrape_configs"][0]
    scrape["relabel_configs"] = [{"source_labels": ["__address__"], "target_label": "host", "replacement": "$$1"}]


BROKEN = {
    "unknown exporter in the pipeline": (
        lambda c: c["service"]["pipelines"]["metrics"]["exporters"].append("otlp"),
        'service::pipelines::metrics: references exporter "otlp" which is not configured',
    ),
    "pipeline without receivers": (
        lambda c: c["service"]["pipelines"]["metrics"].update(receivers=[]),
        "service::pipelines::metrics: must have at least one receiver",
    ),
    "processor listed twice": (
        lambda c: c["service"]["pipelines"]["metrics"]["processors"].append("batch"),
        'service::pipelines::metrics: references processor "batch" multiple times',
    ),
    "no pipeline at all": (
        lambda c: c["service"].update(pipelines={}),
        "service::pipelines: service must have at least one pipeline",
    ),
    "unknown signal": (
        lambda c: c["service"]["pipelines"].update({"metric/extra": c["service"]["pipelines"]["metrics"]}),
        "service::pipelines::metric/extra: unknown signal type 'metric'",
    ),
    "extension not configured": (
        lambda c: c["service"]["extensions"].append("pprof"),
        'service::extensions: references extension "pprof" which is not configured',
    ),
    "authenticator not enabled": (
        lambda c: c["service"].update(extensions=["health_check"]),
        'exporters::prometheusremotewrite: failed to resolve authenticator "basicauth/mimir"',
    ),
    "unescaped dollar in the scrape config": (
        _unescaped_relabel,
        'receivers::prometheus::config::scrape_configs[0]::relabel_configs[0]::replacement: unescaped "$"',
    ),
    "environment variable the pod does not set": (
        lambda c: c["extensions"]["health_check"].update(endpoint="${env:HOST_IP}:13133"),
        "extensions::health_check::endpoint: references environment variable HOST_IP, which the pod does not set",
    ),
    "no scrape configs": (
        lambda c: c["receivers"]["prometheus"]["config"].update(scrape_configs=[]),
        "receivers::prometheus: no Prometheus scrape_configs or target_allocator set",
    ),
    "remote_write inside the receiver": (
        lambda c: c["receivers"]["prometheus"]["config"].update(remote_write=[{"url": "http://x"}]),
        "receivers::prometheus: unsupported features: remote_write",
    ),
    "duplicate job": (
        lambda c: c["receivers"]["prometheus"]["config"]["scrape_configs"].append(
            dict(c["receivers"]["prometheus"]["config"]["scrape_configs"][0])
        ),
        'receivers::prometheus: found multiple scrape configs with job name "containerd"',
    ),
    "exporter without endpoint": (
        lambda c: c["exporters"]["prometheusremotewrite"].pop("endpoint"),
        "exporters::prometheusremotewrite: endpoint '' is not an http(s) URL",
    ),
    "bad component id": (
        lambda c: c["processors"].update({"batch/": {}}),
        'processors: invalid name "" in id "batch/"',
    ),
    "unknown top-level section": (lambda c: c.update(pipelines={}), "'' has invalid keys: pipelines"),
    "health check without a port": (
        lambda c: c["extensions"]["health_check"].update(endpoint="${env:POD_IP}"),
        "extensions::health_check: endpoint '${env:POD_IP}' is not host:port",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_each_fault_is_named(rendered: str, case: str):
    edit, message = BROKEN[case]

    errors = check(edited(rendered, edit), ENV).errors

    assert any(message in error for error in errors), errors


def test_an_escaped_dollar_passes_and_env_is_not_enforced_without_a_list(rendered: str):
    assert check(edited(rendered, _escaped_relabel), ENV).errors == []
    assert check(rendered.replace("${env:POD_IP}", "${env:ANYTHING}"), None).errors == []


def test_unparseable_text_is_one_error():
    assert check("receivers: [unclosed", ENV).errors[0].startswith("cannot unmarshal the configuration:")
    assert check("- a list", ENV).errors == ["cannot unmarshal the configuration: the top level is not a mapping"]


def test_the_module_fails_with_every_problem_and_passes_a_good_config(rendered: str):
    bad = edited(rendered, lambda c: c["service"]["pipelines"]["metrics"].update(exporters=[], receivers=["x"]))

    good_run = run_module(otelcol_validate.main, {"config": rendered, "env": ENV})
    bad_run = run_module(otelcol_validate.main, {"config": bad, "env": ENV})

    assert good_run.status == "ok" and good_run.result["changed"] is False
    assert good_run.result["env_references"] == sorted(ENV)
    assert bad_run.status == "failed"
    assert bad_run.result["msg"].startswith("the collector configuration has 2 problems: ")
    assert 'references receiver "x" which is not configured' in bad_run.result["msg"]
    assert "must have at least one exporter" in bad_run.result["msg"]
