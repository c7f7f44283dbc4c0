"""A hostNetwork Job that fetches a URL from its node reports what that node really serves."""

from __future__ import annotations

import requests

from tests.lab_whole.test_lab_whole import wait_for


def _job(name: str, node: str, url: str) -> dict:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "backoffLimit": 1,
            "template": {
                "spec": {
                    "nodeName": node,
                    "hostNetwork": True,
                    "restartPolicy": "Never",
                    "containers": [{"name": "probe", "image": "busybox:1.37", "command": ["wget", "-qO-", url]}],
                }
            },
        },
    }


def _status(lab, name: str) -> dict:
    resp = requests.get(
        f"{lab.api}/apis/batch/v1/namespaces/default/jobs/{name}",
        headers={"Authorization": f"Bearer {lab.token}"},
        verify=lab.ca,
        timeout=10,
    )
    return resp.json().get("status") or {}


def _create(lab, job: dict) -> None:
    resp = requests.post(
        f"{lab.api}/apis/batch/v1/namespaces/default/jobs",
        json=job,
        headers={"Authorization": f"Bearer {lab.token}"},
        verify=lab.ca,
        timeout=10,
    )
    assert resp.status_code == 201, resp.text


def test_probe_job_succeeds_where_the_node_serves_and_fails_where_not(lab):
    # node-exporter listens on every node; nothing listens on port 1.
    _create(lab, _job("probe-ok", "talos-worker-3", "http://127.0.0.1:9100/metrics"))
    _create(lab, _job("probe-down", "talos-worker-3", "http://127.0.0.1:1/metrics"))
    done = wait_for(lambda: _status(lab, "probe-ok").get("succeeded"), 30, "the probe Job to succeed")
    assert done == 1
    failed = wait_for(
        lambda: [c for c in _status(lab, "probe-down").get("conditions", []) if c["type"] == "Failed"],
        30,
        "the probe Job to fail",
    )
    assert failed[0]["reason"] == "BackoffLimitExceeded"
    assert _status(lab, "probe-down")["failed"] == 2
