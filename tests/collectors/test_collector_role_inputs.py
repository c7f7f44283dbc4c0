"""The deploy roles refuse bad inputs before touching anything, naming the variable and what to change.

One ansible-playbook run, one inventory host per case: each host runs a role's preflight (its input
checks come before any cluster read) and must fail with a message that names the variable.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT

COMMON = {
    "ansible_connection": "local",
    "ansible_python_interpreter": sys.executable,
    "migration_kubeconfig": "/nonexistent/kubeconfig",
    "migration_cluster_name": "lab-talos",
    "migration_mimir_push_url": "http://mimir.example/api/v1/push",
}
# case -> (role, vars, words the failure message must contain)
CASES = {
    "ksm-legacy-name": (
        "kube_state_metrics",
        {"kube_state_metrics_name": "kube-prometheus-stack-kube-state-metrics"},
        ["kube_state_metrics_name", "legacy"],
    ),
    "ksm-latest": ("kube_state_metrics", {"kube_state_metrics_version": "latest"}, ["kube_state_metrics_version"]),
    "ksm-unknown-collector": (
        "kube_state_metrics",
        {"kube_state_metrics_collectors": ["pods", "widgets"]},
        ["kube_state_metrics_collectors", "widgets"],
    ),
    "ksm-without-pods": (
        "kube_state_metrics",
        {"kube_state_metrics_collectors": ["nodes"]},
        ["kube_state_metrics_collectors", "'pods'"],
    ),
    "ksm-no-kubeconfig": ("kube_state_metrics", {}, ["kube_state_metrics_kubeconfig", "/nonexistent/kubeconfig"]),
    "alloy-credentials-missing": (
        "alloy",
        {"alloy_mimir_auth": "file", "alloy_mimir_username": "", "alloy_mimir_password": ""},
        ["alloy_mimir_username", "vault_mimir_password"],
    ),
    "alloy-logs-on-statefulset": (
        "alloy",
        {"alloy_pod_logs_enabled": True, "alloy_loki_url": "http://loki.example/loki/api/v1/push"},
        ["alloy_pod_logs_enabled", "StatefulSet"],
    ),
    "alloy-no-replicas": ("alloy", {"alloy_replicas": 0}, ["alloy_replicas"]),
    "otel-base-url": (
        "otel_collector",
        {"otel_collector_mimir_push_url": "http://mimir.example"},
        ["otel_collector_mimir_push_url", "/api/v1/push"],
    ),
    "otel-credentials-missing": (
        "otel_collector",
        {
            "otel_collector_mimir_auth": "basic",
            "otel_collector_mimir_username": "u",
            "otel_collector_mimir_password": "",
        },
        ["otel_collector_mimir_password", "vault"],
    ),
    "otel-timeout-over-interval": (
        "otel_collector",
        {"otel_collector_scrape_interval": "10s", "otel_collector_scrape_timeout": "15s"},
        ["otel_collector_scrape_timeout", "15s"],
    ),
    "otel-node-label": ("otel_collector", {"otel_collector_node_label": "__node"}, ["otel_collector_node_label"]),
    "otel-no-kubeconfig": ("otel_collector", {}, ["otel_collector_kubeconfig"]),
}
PLAYBOOK = """
- name: Run one role's preflight per inventory host
  hosts: all
  gather_facts: false
  tasks:
    - name: Preflight
      ansible.builtin.include_role:
        name: "{{ role_under_test }}"
        tasks_from: preflight.yml
"""
# The alloy role's configuration preflight needs these before its deploy checks are reached.
ALLOY_CONFIG = {"alloy_mimir_url": "http://mimir.example"}


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    work = tmp_path_factory.mktemp("collector-inputs")
    hosts = {
        case: {"role_under_test": role, **(ALLOY_CONFIG if role == "alloy" else {}), **case_vars}
        for case, (role, case_vars, _) in CASES.items()
    }
    (work / "inventory.yml").write_text(yaml.safe_dump({"all": {"hosts": hosts, "vars": COMMON}}))
    (work / "playbook.yml").write_text(PLAYBOOK)
    completed = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "inventory.yml", "playbook.yml"],
        cwd=work,
        env={
            **os.environ,
            "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
            "ANSIBLE_ROLES_PATH": str(ROOT / "roles"),
            "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
            "ANSIBLE_FORKS": str(len(hosts)),
            "ANSIBLE_LOCAL_TEMP": str(work / "tmp"),
        },
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    try:
        return json.loads(completed.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"no JSON report:\n{completed.stdout[-3000:]}\n{completed.stderr[-3000:]}")


def failure_message(report: dict, host: str) -> str:
    for play in report["plays"]:
        for task in play["tasks"]:
            result = task["hosts"].get(host, {})
            if result.get("failed"):
                return result.get("msg", "")
    return ""


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_preflight_refuses_and_names_the_variable(report: dict, case: str):
    _, _, words = CASES[case]

    message = failure_message(report, case)

    assert report["stats"][case]["failures"] == 1, case
    assert all(word in message for word in words), message
