"""k8s_pod_proxy against a scripted API server over HTTPS with a bearer token.

The server answers the pod proxy paths the way kube-apiserver does: the container's own status and body
when it reaches the pod, its own `Status` object (503) when it cannot, 401 without the token.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs

import k8s_pod_proxy
import pytest
import yaml
from ansible.module_utils.k8s_pod_proxy import ProxyTarget, parse_samples

from lab.metrics.httpserve import Endpoint, Request, Response
from lab.metrics.tls import CertificateAuthority
from tests.conftest import failures, run_playbook
from tests.modules.talos_module_support import ModuleRun, run_module

TOKEN = "pod-proxy-test-token-0123456789"
PREFIX = "/api/v1/namespaces/monitoring/pods/"
PEERS = [
    {"name": "alloy-0", "addr": "10.244.1.5:12345", "isSelf": True, "state": "participant"},
    {"name": "alloy-1", "addr": "10.244.2.7:12345", "isSelf": False, "state": "participant"},
]
METRICS = """\
# HELP alloy_config_last_load_successful Config loaded successfully.
# TYPE alloy_config_last_load_successful gauge
alloy_config_last_load_successful 1
# TYPE alloy_config_hash gauge
alloy_config_hash{sha256="ab12"} 1
# TYPE cluster_node_peers gauge
cluster_node_peers{state="participant"} 3
cluster_node_peers{state="terminating"} 0
cluster_node_gossip_health_score 0 1767225600000
"""


def api_status(code: int, reason: str, message: str) -> Response:
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure"}
    body |= {"message": message, "reason": reason, "code": code}
    return Response(code, json.dumps(body).encode(), "application/json")


@dataclass
class FakeApi:
    kubeconfig: Path
    requests: list[Request]

    def args(self, **extra: object) -> dict[str, object]:
        return {"kubeconfig": str(self.kubeconfig), "namespace": "monitoring", "port": 12345, **extra}


def answer(request: Request) -> Response:
    if request.header("Authorization") != f"Bearer {TOKEN}":
        return api_status(401, "Unauthorized", "Unauthorized")
    if not request.path.startswith(PREFIX):
        return api_status(404, "NotFound", "the server could not find the requested resource")
    pod, _, path = request.path.removeprefix(PREFIX).partition("/proxy/")
    routes = {
        ("alloy-0:12345", "-/ready"): Response(200, b"Alloy is ready.\n"),
        ("alloy-1:12345", "-/ready"): Response(503, b"Alloy is not ready.\n"),
        ("alloy-0:12345", "api/v0/web/peers"): Response(200, json.dumps(PEERS).encode(), "application/json"),
        ("alloy-0:12345", "metrics"): Response(200, METRICS.encode(), "text/plain; version=0.0.4"),
        ("https:secure-0:8443", "healthz"): Response(200, b"ok"),
    }
    if pod == "alloy-0:12345" and path == "echo":
        return Response(200, json.dumps(parse_qs(request.raw_query)).encode(), "application/json")
    if pod.startswith("slow-0"):
        time.sleep(3)
        return Response(200, b"late")
    if pod.startswith("gone-0"):
        return api_status(
            503,
            "ServiceUnavailable",
            "error trying to reach service: dial tcp 10.244.9.9:12345: connect: connection refused",
        )
    if (pod, path) in routes:
        return routes[(pod, path)]
    return api_status(404, "NotFound", f'pods "{pod.split(":")[0]}" not found')


@pytest.fixture(scope="module")
def fake_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeApi]:
    directory = tmp_path_factory.mktemp("fake-api")
    authority = CertificateAuthority.create(directory / "pki")
    seen: list[Request] = []

    def record(request: Request) -> Response:
        seen.append(request)
        return answer(request)

    endpoint = Endpoint("127.0.0.1", 0, record, authority.server_context("localhost", "127.0.0.1"))
    endpoint.open()
    kubeconfig = directory / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "fake",
                        "cluster": {"server": endpoint.url, "certificate-authority": str(authority.ca_file)},
                    }
                ],
                "users": [{"name": "tester", "user": {"token": TOKEN}}],
                "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "tester"}}],
                "current-context": "fake",
            }
        )
    )
    try:
        yield FakeApi(kubeconfig, seen)
    finally:
        endpoint.close()


def call(fake_api: FakeApi, **args: object) -> ModuleRun:
    return run_module(k8s_pod_proxy.main, fake_api.args(**args))


def test_a_ready_replica_answers_through_the_proxy_path(fake_api: FakeApi):
    run = call(fake_api, pod="alloy-0", path="/-/ready")

    assert run.status == "ok", run.result
    assert run.result["status"] == 200 and run.result["body"] == "Alloy is ready.\n"
    assert run.result["changed"] is False and run.result["json"] is None
    assert run.result["api_path"] == "/api/v1/namespaces/monitoring/pods/alloy-0:12345/proxy/-/ready"
    assert fake_api.requests[-1].path == run.result["api_path"]


def test_a_not_ready_replica_fails_with_its_own_answer_unless_that_status_is_accepted(fake_api: FakeApi):
    failed = call(fake_api, pod="alloy-1", path="/-/ready")
    accepted = call(fake_api, pod="alloy-1", path="/-/ready", status_code=[200, 503])

    assert failed.status == "failed"
    assert failed.result["msg"] == (
        "pod monitoring/alloy-1 port 12345 path /-/ready: expected status 200, it answered 503: Alloy is not ready."
    )
    assert failed.result["status"] == 503
    assert accepted.status == "ok" and accepted.result["status"] == 503


def test_several_pods_are_asked_in_one_call_and_each_failure_is_named(fake_api: FakeApi):
    run = call(fake_api, pods=["alloy-0", "alloy-1", "gone-0"], path="/-/ready")
    one = call(fake_api, pods=["alloy-0"], path="/-/ready")

    assert run.status == "failed"
    assert [r["pod"] for r in run.result["responses"]] == ["alloy-0", "alloy-1", "gone-0"]
    assert [r["status"] for r in run.result["responses"]] == [200, 503, 503]
    assert [r["ok"] for r in run.result["responses"]] == [True, False, False]
    assert "alloy-0" not in run.result["msg"]
    assert "pod monitoring/alloy-1 port 12345 path /-/ready: expected status 200, it answered 503" in run.result["msg"]
    assert (
        "pod monitoring/gone-0 port 12345 path /-/ready: expected status 200, the API server answered 503"
        in (run.result["msg"])
    )
    assert one.status == "ok" and one.result["responses"][0]["body"] == "Alloy is ready.\n"


def test_pod_and_pods_are_exclusive(fake_api: FakeApi):
    both = call(fake_api, pod="alloy-0", pods=["alloy-1"])
    neither = call(fake_api)

    assert both.status == "failed" and "mutually exclusive" in both.result["msg"]
    assert neither.status == "failed" and "one of the following is required" in neither.result["msg"]


def test_an_unreachable_pod_reports_the_api_servers_reason(fake_api: FakeApi):
    run = call(fake_api, pod="gone-0", path="/-/ready")

    assert run.status == "failed"
    assert "the API server answered 503: error trying to reach service" in run.result["msg"]
    assert run.result["msg"].startswith("pod monitoring/gone-0 port 12345 path /-/ready:")


def test_json_bodies_are_decoded_and_query_parameters_sent(fake_api: FakeApi):
    peers = call(fake_api, pod="alloy-0", path="api/v0/web/peers")
    echo = call(fake_api, pod="alloy-0", path="echo", query={"match[]": ["up", "alloy_build_info"], "x": "a b"})

    assert peers.status == "ok" and peers.result["json"] == PEERS
    assert [peer["state"] for peer in peers.result["json"]] == ["participant", "participant"]
    assert echo.result["json"] == {"match[]": ["up", "alloy_build_info"], "x": ["a b"]}


def test_metric_samples_are_picked_out_of_an_exposition(fake_api: FakeApi):
    run = call(
        fake_api,
        pod="alloy-0",
        path="/metrics",
        metric_names=["alloy_config_last_load_successful", "cluster_node_peers", "absent_metric"],
    )

    assert run.status == "ok", run.result
    samples = run.result["samples"]
    assert samples["alloy_config_last_load_successful"] == [{"labels": {}, "value": 1.0}]
    assert samples["cluster_node_peers"] == [
        {"labels": {"state": "participant"}, "value": 3.0},
        {"labels": {"state": "terminating"}, "value": 0.0},
    ]
    assert samples["absent_metric"] == []


def test_https_containers_are_named_with_the_scheme_prefix(fake_api: FakeApi):
    run = call(fake_api, pod="secure-0", port=8443, scheme="https", path="healthz")

    assert run.status == "ok", run.result
    assert run.result["api_path"] == "/api/v1/namespaces/monitoring/pods/https:secure-0:8443/proxy/healthz"


def test_a_slow_answer_is_cut_at_the_timeout(fake_api: FakeApi):
    started = time.monotonic()
    run = call(fake_api, pod="slow-0", path="/-/ready", timeout=0.5)

    assert time.monotonic() - started < 2.5
    assert run.status == "failed"
    assert run.result["msg"].startswith("pod monitoring/slow-0 port 12345 path /-/ready: GET ")


def test_a_wrong_token_is_the_api_servers_401(fake_api: FakeApi, tmp_path: Path):
    kubeconfig = yaml.safe_load(fake_api.kubeconfig.read_text())
    kubeconfig["users"][0]["user"]["token"] = "wrong"
    wrong = tmp_path / "kubeconfig"
    wrong.write_text(yaml.safe_dump(kubeconfig))

    run = run_module(k8s_pod_proxy.main, {**fake_api.args(pod="alloy-0", path="/-/ready"), "kubeconfig": str(wrong)})

    assert run.status == "failed"
    assert "the API server answered 401: Unauthorized" in run.result["msg"]


def test_a_missing_kubeconfig_and_bad_inputs_fail_with_a_message(fake_api: FakeApi, tmp_path: Path):
    missing = run_module(k8s_pod_proxy.main, {**fake_api.args(pod="alloy-0"), "kubeconfig": str(tmp_path / "nope")})
    bad_pod = call(fake_api, pod="Alloy_0")
    bad_port = call(fake_api, pod="alloy-0", port=70000)

    assert missing.status == "failed" and "could not configure the Kubernetes client" in missing.result["msg"]
    assert bad_pod.status == "failed" and bad_pod.result["msg"] == "pod 'Alloy_0' is not a valid pod name"
    assert bad_port.status == "failed" and bad_port.result["msg"] == "port 70000 is not a TCP port (1-65535)"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/-/ready", "-/ready"),
        ("api/v0/web/components", "api/v0/web/components"),
        ("/a b/c%d", "a%20b/c%25d"),
        ("/", ""),
    ],
)
def test_paths_are_percent_encoded_once(path: str, expected: str):
    assert ProxyTarget("monitoring", "alloy-0", 12345, path).api_path().endswith(f"/proxy/{expected}")


def test_exposition_parsing_handles_escapes_and_special_values():
    text = 'm{a="x\\"y",b="line\\nbreak"} +Inf\nm{a="z"} NaN 1700000000000\nother 2\n'

    samples = parse_samples(text, ["m"])

    assert samples["m"][0] == {"labels": {"a": 'x"y', "b": "line\nbreak"}, "value": float("inf")}
    assert samples["m"][1]["labels"] == {"a": "z"} and samples["m"][1]["value"] != samples["m"][1]["value"]


def test_the_module_runs_in_check_mode_through_ansible_playbook(fake_api: FakeApi, tmp_path: Path):
    task = {
        "name": "ready",
        "k8s_pod_proxy": fake_api.args(pod="alloy-0", path="/-/ready"),
        "register": "ready",
    }
    check = {
        "name": "check",
        "ansible.builtin.assert": {"that": ["ready.status == 200", "ready is not changed"]},
    }
    results = run_playbook([task, check], {**os.environ, "TMPDIR": str(tmp_path)}, check=True)

    assert results["__rc__"] == 0, failures(results)
    assert results["ready"]["body"] == "Alloy is ready.\n"
