"""migration_state against the lab's API server: ansible-playbook runs the module, the kubernetes client
checks what landed in the ConfigMap, and a real 409 from a concurrent writer is retried."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import kubernetes
import pytest
from ansible.module_utils.kube_api import KubeApi
from ansible.module_utils.migration_state import Context, StateStore, StoreSettings, begin, progress

from tests.conftest import failures, run_playbook

NAMESPACE = "monitoring"


@pytest.fixture
def core_v1(lab) -> kubernetes.client.CoreV1Api:
    return kubernetes.client.CoreV1Api(kubernetes.config.new_client_from_config(str(lab.kubeconfig)))


@pytest.fixture
def state_name(core_v1: kubernetes.client.CoreV1Api) -> Iterator[str]:
    """A ConfigMap name of its own per test, so tests sharing the session lab never see each other's state."""
    name = f"alloy-migration-state-{uuid.uuid4().hex[:8]}"
    yield name
    try:
        core_v1.delete_namespaced_config_map(name, NAMESPACE, _request_timeout=10)
    except kubernetes.client.exceptions.ApiException as error:
        if error.status != 404:
            raise


def step(name: str, state_name: str, kubeconfig: str, **args: object) -> dict:
    return {
        "name": name,
        "migration_state": {"kubeconfig": kubeconfig, "namespace": NAMESPACE, "name": state_name, **args},
        "register": "out",
        "ignore_errors": True,
    }


def test_phase_lifecycle_refusals_check_mode_idempotent_reruns_and_reset(lab, core_v1, state_name):
    kc = str(lab.kubeconfig)
    tasks = [
        step("read empty", state_name, kc),
        step("baseline refused", state_name, kc, action="begin", phase="baseline", requires=["preflight"]),
        {
            **step("begin in check mode", state_name, kc, action="begin", phase="preflight"),
            "check_mode": True,
            "diff": True,
        },
        step("read after check mode", state_name, kc),
        {
            **step("succeed unbegun in check mode", state_name, kc, action="succeed", phase="collectors"),
            "check_mode": True,
        },
        step("begin", state_name, kc, action="begin", phase="preflight", environment_name="lab", run_id="r1"),
        step("succeed", state_name, kc, action="succeed", phase="preflight", details={"nodes_ready": 14}),
        step("begin again", state_name, kc, action="begin", phase="preflight", environment_name="lab"),
        step("succeed again", state_name, kc, action="succeed", phase="preflight", details={"nodes_ready": 14}),
        step("baseline begins", state_name, kc, action="begin", phase="baseline", requires=["preflight"]),
        step(
            "secret refused",
            state_name,
            kc,
            action="fail",
            phase="baseline",
            reason="x",
            details={"mimir_password": "hunter2"},
        ),
        step("baseline progress", state_name, kc, action="progress", phase="baseline", details={"jobs": ["kubelet"]}),
        step("baseline fails", state_name, kc, action="fail", phase="baseline", reason="Mimir unreachable"),
        step("reset one", state_name, kc, action="reset", phase="rollback"),
    ]
    res = run_playbook(tasks, lab.env())

    assert res["read empty"]["exists"] is False and res["read empty"]["changed"] is False
    assert res["read empty"]["table"][1].split()[:3] == ["preflight", "not", "run"]

    refused = res["baseline refused"]
    assert refused["failed"] is True
    assert "phase baseline cannot start: it requires preflight to have succeeded" in refused["msg"]
    assert "run `ansible-playbook playbooks/preflight.yml -i inventories/<env>`" in refused["msg"]

    checked = res["begin in check mode"]
    assert checked["changed"] is True and checked["record"]["status"] == "running"
    assert json.loads(checked["diff"]["after"]["preflight"])["status"] == "running"
    assert "preflight" not in checked["diff"]["before"]
    assert res["read after check mode"]["exists"] is False
    predicted = res["succeed unbegun in check mode"]
    assert predicted["changed"] is True and predicted["record"]["status"] == "succeeded", failures(res)

    assert res["begin"]["changed"] is True and res["begin"]["exists"] is False
    assert res["succeed"]["changed"] is True
    assert res["succeed"]["record"]["status"] == "succeeded"
    assert res["begin again"]["changed"] is False and res["begin again"]["already_succeeded"] is True
    assert res["succeed again"]["changed"] is False
    assert res["baseline begins"]["changed"] is True

    secret = res["secret refused"]
    assert secret["failed"] is True
    assert "details.mimir_password: the key names a credential" in secret["msg"]
    assert "hunter2" not in json.dumps(secret)

    assert res["baseline fails"]["record"]["reason"] == "Mimir unreachable", failures(res)
    assert res["baseline fails"]["record"]["details"] == {"jobs": ["kubelet"]}
    assert res["reset one"]["changed"] is False

    configmap = core_v1.read_namespaced_config_map(state_name, NAMESPACE, _request_timeout=10)
    assert configmap.metadata.labels["app.kubernetes.io/part-of"] == "alloy-migration"
    assert configmap.metadata.labels["app.kubernetes.io/managed-by"] == "alloy-migration"
    preflight = json.loads(configmap.data["preflight"])
    assert preflight["status"] == "succeeded"
    assert preflight["environment"] == "lab" and preflight["run_id"] == "r1"
    assert preflight["details"] == {"nodes_ready": 14}
    assert preflight["by"].count("@") == 1
    assert preflight["started"] <= preflight["finished"]
    baseline = json.loads(configmap.data["baseline"])
    assert (baseline["status"], baseline["reason"]) == ("failed", "Mimir unreachable")
    assert "hunter2" not in json.dumps(configmap.data)
    events = [(e["event"], e["phase"]) for e in json.loads(configmap.data["history"])]
    assert events == [("begin", "preflight"), ("succeed", "preflight"), ("begin", "baseline"), ("fail", "baseline")]

    reset = run_playbook([step("reset all", state_name, kc, action="reset")], lab.env())
    assert reset["reset all"]["changed"] is True and reset["reset all"]["state"]["phases"] == {}
    assert [e["event"] for e in reset["reset all"]["state"]["history"]][-2:] == ["reset", "reset"]


class RacingApi:
    """The real API, with another writer updating the ConfigMap right after this run's first read."""

    def __init__(self, real: KubeApi, rival) -> None:
        self.real, self.rival, self.raced = real, rival, False

    def request(self, method: str, path: str, **kwargs):
        answer = self.real.request(method, path, **kwargs)
        if method == "GET" and not self.raced:
            self.raced = True
            self.rival()
        return answer


def test_a_concurrent_write_gets_a_real_409_and_both_updates_survive(lab, core_v1, state_name):
    settings = StoreSettings(NAMESPACE, state_name, timeout=10)
    ctx = Context(now="2026-01-10T09:00:00Z", by="test@lab")
    plain = StateStore(KubeApi(str(lab.kubeconfig), timeout=10), settings)
    plain.update(lambda s: begin(s, "containerd_metrics", [], ctx), check_mode=False)

    def rival() -> None:
        plain.update(lambda s: progress(s, "containerd_metrics", {"nodes_done": ["talos-worker-1"]}, ctx), False)

    racing = StateStore(RacingApi(KubeApi(str(lab.kubeconfig), timeout=10), rival), settings)
    outcome = racing.update(lambda s: progress(s, "containerd_metrics", {"backup_dir": "/tmp/b"}, ctx), False)

    assert outcome.changed
    state, configmap = plain.read()
    assert state.phases["containerd_metrics"]["details"] == {"nodes_done": ["talos-worker-1"], "backup_dir": "/tmp/b"}
    assert int(configmap["metadata"]["resourceVersion"]) > 0
