"""The whole lab through the real clients: talosctl shim, the Kubernetes API, the Mimir front."""

from __future__ import annotations

import subprocess
import time

import requests
import yaml

from tests.conftest import ROOT

TALOSCTL = str(ROOT / "lab" / "bin" / "talosctl")
WORKER_113 = ("talos-worker-1", "127.0.11.1")
WORKER_114 = ("talos-worker-8", "127.0.11.8")


def talosctl(lab, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [TALOSCTL, "--talosconfig", str(lab.run_dir / "talosconfig"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def k8s(lab, path: str) -> dict:
    resp = requests.get(lab.api + path, headers={"Authorization": f"Bearer {lab.token}"}, verify=lab.ca, timeout=10)
    resp.raise_for_status()
    return resp.json()


def node_ready(lab, name: str) -> bool:
    node = k8s(lab, f"/api/v1/nodes/{name}")
    return any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"]["conditions"])


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def containerd_answers(address: str) -> bool:
    try:
        # A loaded machine may take seconds to answer; only a refused connection means "not listening".
        return requests.get(f"http://{address}:11234/v1/metrics", timeout=15).status_code == 200
    except requests.ConnectionError:
        return False


def query(lab, promql: str) -> list:
    mimir = next(c["address"] for c in lab.status()["components"] if c["name"] == "mimir")
    resp = requests.get(
        f"{mimir}/prometheus/api/v1/query", params={"query": promql}, headers={"X-Scope-OrgID": "lab"}, timeout=10
    )
    resp.raise_for_status()
    return resp.json()["data"]["result"]


def test_talosctl_reports_each_nodes_version(lab):
    inventory = yaml.safe_load((ROOT / "inventories/lab/hosts.yml").read_text())
    workers = inventory["all"]["children"]["talos_nodes"]["children"]["talos_workers"]["hosts"]
    for name in ("talos-worker-1", "talos-worker-8"):
        out = talosctl(lab, "-n", workers[name]["talos_node_address"], "version", "--short")
        assert out.returncode == 0, out.stderr
        assert f"Tag:         {workers[name]['talos_version']}" in out.stdout


def test_patch_on_113_reboots_node_and_opens_endpoint_after_boot(lab, tmp_path):
    name, address = WORKER_113
    boot_before = k8s(lab, f"/api/v1/nodes/{name}")["status"]["nodeInfo"]["bootID"]
    assert not containerd_answers(address)
    patch = tmp_path / "containerd-metrics.yaml"
    patch.write_text(
        yaml.safe_dump(
            {
                "machine": {
                    "files": [
                        {
                            "content": '[metrics]\n  address = "127.0.0.1:11234"\n',
                            "path": "/etc/cri/conf.d/20-customization.part",
                            "op": "create",
                        }
                    ]
                }
            }
        )
    )
    out = talosctl(lab, "-n", address, "patch", "mc", "-p", f"@{patch}", "--mode", "auto")
    assert out.returncode == 0, out.stderr
    assert "Applied configuration with a reboot" in out.stderr
    wait_for(lambda: not node_ready(lab, name), 10, f"{name} NotReady during its reboot")
    assert not containerd_answers(address), "the file is read at boot: no endpoint before the reboot completes"
    wait_for(lambda: node_ready(lab, name), 30, f"{name} Ready after its reboot")
    assert k8s(lab, f"/api/v1/nodes/{name}")["status"]["nodeInfo"]["bootID"] != boot_before
    wait_for(lambda: containerd_answers(address), 10, "containerd metrics on the patched node")
    assert not containerd_answers("127.0.11.2"), "only the patched node serves containerd metrics"


def test_cri_customization_on_114_applies_live(lab):
    name, address = WORKER_114
    document = 'apiVersion: v1alpha1\nkind: CRICustomizationConfig\nname: metrics\ncontent: |\n  [metrics]\n    address = "127.0.0.1:11234"\n'
    out = talosctl(lab, "-n", address, "patch", "mc", "--patch", document, "--mode", "no-reboot")
    assert out.returncode == 0, out.stderr
    wait_for(lambda: containerd_answers(address), 10, "containerd metrics without a reboot")
    assert node_ready(lab, name)
    refused = talosctl(lab, "-n", address, "patch", "mc", "--patch", document, "--mode", "reboot")
    assert refused.returncode != 0


def test_mimir_front_dedups_two_thirds_of_legacy_samples(lab):
    def ratio():
        deduped = query(lab, "sum(cortex_distributor_deduped_samples_total)")
        received = query(lab, "sum(cortex_distributor_received_samples_total)")
        if not deduped or not received:
            return None
        d, r = float(deduped[0]["value"][1]), float(received[0]["value"][1])
        return d / (d + r) if d + r > 3000 else None

    share = wait_for(ratio, 60, "Mimir's own dedup figures")
    assert 0.6 < share < 0.72, f"3 HA replicas: 2/3 of samples should be deduplicated, saw {share:.3f}"


def test_legacy_cadvisor_scrapes_slower_than_kubelet(lab):
    def durations():
        rows = query(lab, 'avg by (job) (scrape_duration_seconds{job=~"cadvisor|kubelet"})')
        found = {row["metric"]["job"]: float(row["value"][1]) for row in rows}
        return found if len(found) == 2 else None

    found = wait_for(durations, 60, "scrape durations of the legacy jobs")
    assert found["cadvisor"] > found["kubelet"], found


def test_mimir_refuses_queries_without_tenant(lab):
    mimir = next(c["address"] for c in lab.status()["components"] if c["name"] == "mimir")
    resp = requests.get(f"{mimir}/prometheus/api/v1/query", params={"query": "up"}, timeout=10)
    assert resp.status_code == 401
