"""A bad inventory stops the whole migration (site.yml) before its first change, naming the problem.

Each case copies an inventory, adds one mistake an operator makes, runs `playbooks/site.yml` against
the lab as a user would, and checks three things: the run failed, its message names the variable (or
the identity mismatch) with what to do, and the lab's API server received no write request and
Talos no patch while it ran.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, VENV_BIN, RunningLab

WRITES = {"create", "post", "update", "put", "patch", "delete", "deletecollection"}
OTHER_CLUSTER_UID = "0b6e7c2a-5d1f-4c9e-9a57-3f0d2f1e8b44"

CASES = {
    "wrong type": (
        "lab",
        {"alloy_replicas": "three"},
        ["alloy_replicas", "int"],
    ),
    "misspelt variable in a role's namespace": (
        "lab",
        {"otel_collector_scrape_intervall": "15s"},
        ["otel_collector_scrape_intervall is not a variable of the role otel_collector", "Did you mean"],
    ),
    "threshold out of range": (
        "lab",
        {"migration_validation_min_scrapes": 1},
        ["migration_validation_min_scrapes = 1 at least 2"],
    ),
    "non-loopback containerd metrics bind": (
        "lab",
        {"talos_containerd_metrics_address": "0.0.0.0:11234"},
        ["address '0.0.0.0:11234'", "talos_containerd_metrics_allow_non_loopback", "without authentication"],
    ),
    "production inventory pointed at the lab cluster": (
        "production",
        {"migration_cluster_uid": OTHER_CLUSTER_UID},
        ["Cluster identity mismatch", f"migration_cluster_uid = '{OTHER_CLUSTER_UID}'", "Nothing was changed"],
    ),
}


def bad_inventory(tmp_path: Path, lab: RunningLab, source: str, mistake: dict) -> Path:
    inventory = tmp_path / source
    shutil.copytree(ROOT / "inventories" / source, inventory)
    group_vars = inventory / "group_vars" / "all"
    if source != "lab":
        # The operator's kubeconfig and talosconfig for "production" point at the lab by mistake.
        (group_vars / "zz_pointed_at_the_lab.yml").write_text(
            yaml.safe_dump(
                {"migration_kubeconfig": str(lab.kubeconfig), "migration_talosconfig": str(lab.run_dir / "talosconfig")}
            )
        )
    (group_vars / "zz_mistake.yml").write_text(yaml.safe_dump(mistake))
    return inventory


def request_log(lab: RunningLab) -> Path:
    log = lab.run_dir / "api-requests.jsonl"
    log.touch()
    return log


def requests_since(lab: RunningLab, offset: int) -> list[dict]:
    with request_log(lab).open() as log:
        log.seek(offset)
        return [json.loads(line) for line in log]


def talos_configs(lab: RunningLab) -> str:
    done = subprocess.run(
        ["talosctl", "--talosconfig", str(lab.run_dir / "talosconfig"), "-n", "127.0.11.1", "get", "mc", "-o", "yaml"],
        env=lab.env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_inventory_stops_site_before_any_change(case: str, lab: RunningLab, tmp_path: Path) -> None:
    source, mistake, expected = CASES[case]
    inventory = bad_inventory(tmp_path, lab, source, mistake)
    offset = request_log(lab).stat().st_size
    machine_config = talos_configs(lab)

    run = subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), "playbooks/site.yml", "-i", str(inventory)],
        env={**lab.env(), "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = " ".join((run.stdout + run.stderr).split())

    assert run.returncode != 0, f"site.yml accepted the inventory ({case}):\n{run.stdout[-3000:]}"
    for words in expected:
        assert words in output, f"the failure does not say {words!r}:\n{run.stdout[-3000:]}\n{run.stderr[-2000:]}"
    requests = requests_since(lab, offset)
    assert [r for r in requests if r["verb"] in WRITES] == [], "the run wrote to the cluster before refusing"
    if source != "lab":
        assert any(r["resource"] == "namespaces" for r in requests), "the identity guard never read the cluster"
    assert talos_configs(lab) == machine_config, "the run patched a Talos node before refusing"
