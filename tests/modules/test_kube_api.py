"""module_utils/kube_api: the kubeconfig read as kubectl reads static credentials; the rest left to `kubernetes`."""

from __future__ import annotations

import base64
import ssl
from pathlib import Path

import pytest
import yaml
from ansible.module_utils.kube_api import (
    AUTH_ARGUMENT_SPEC,
    KubeApi,
    KubeApiError,
    KubeConfigError,
    api_from_options,
    static_endpoint,
)

from lab.pki import Pki


def kubeconfig(tmp_path: Path, user: dict, cluster: dict | None = None, current: str = "lab") -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "lab", "cluster": cluster or {"server": "http://127.0.0.1:6443"}}],
        "users": [{"name": "admin", "user": user}],
        "contexts": [
            {"name": "lab", "context": {"cluster": "lab", "user": "admin"}},
            {"name": "other", "context": {"cluster": "lab", "user": "admin"}},
        ],
        "current-context": current,
    }
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


def test_a_token_becomes_the_bearer_header(tmp_path: Path):
    endpoint = static_endpoint(str(kubeconfig(tmp_path, {"token": "abc"})), None, str(tmp_path))

    assert endpoint is not None
    assert endpoint.server == "http://127.0.0.1:6443" and endpoint.headers == {"Authorization": "Bearer abc"}


def test_a_token_file_is_read_relative_to_the_kubeconfig(tmp_path: Path):
    (tmp_path / "token").write_text("from-file\n")

    endpoint = static_endpoint(str(kubeconfig(tmp_path, {"tokenFile": "token"})), "other", str(tmp_path))

    assert endpoint is not None and endpoint.headers == {"Authorization": "Bearer from-file"}


def test_basic_auth(tmp_path: Path):
    endpoint = static_endpoint(str(kubeconfig(tmp_path, {"username": "u", "password": "p"})), None, str(tmp_path))

    assert endpoint is not None
    assert endpoint.headers == {"Authorization": "Basic " + base64.b64encode(b"u:p").decode()}


def test_inline_ca_and_client_certificate_as_talosctl_kubeconfig_writes_them(tmp_path: Path):
    pki = Pki(tmp_path / "pki")
    client = pki.issue("admin", client=True, org="system:masters")
    user = {
        "client-certificate-data": base64.b64encode(client.cert.read_bytes()).decode(),
        "client-key-data": base64.b64encode(client.key.read_bytes()).decode(),
    }
    cluster = {
        "server": "https://127.0.0.1:6443",
        "certificate-authority-data": base64.b64encode(pki.ca_cert.read_bytes()).decode(),
        "tls-server-name": "kubernetes",
    }

    endpoint = static_endpoint(str(kubeconfig(tmp_path, user, cluster)), None, str(tmp_path))

    assert endpoint is not None and endpoint.headers == {}
    assert endpoint.ssl_context is not None and endpoint.ssl_context.verify_mode == ssl.CERT_REQUIRED
    assert endpoint.server_hostname == "kubernetes"


def test_insecure_skip_tls_verify(tmp_path: Path):
    cluster = {"server": "https://127.0.0.1:6443", "insecure-skip-tls-verify": True}

    endpoint = static_endpoint(str(kubeconfig(tmp_path, {"token": "t"}, cluster)), None, str(tmp_path))

    assert endpoint is not None and endpoint.ssl_context is not None
    assert endpoint.ssl_context.verify_mode == ssl.CERT_NONE


@pytest.mark.parametrize(
    ("user", "cluster"),
    [
        ({"exec": {"command": "aws", "apiVersion": "client.authentication.k8s.io/v1"}}, None),
        ({"auth-provider": {"name": "oidc"}}, None),
        ({"token": "t"}, {"server": "https://127.0.0.1:6443", "proxy-url": "http://proxy:3128"}),
    ],
)
def test_plugins_and_proxies_are_left_to_the_kubernetes_package(tmp_path: Path, user: dict, cluster: dict | None):
    assert static_endpoint(str(kubeconfig(tmp_path, user, cluster)), None, str(tmp_path)) is None


def test_a_credential_plugins_token_reaches_the_header(tmp_path: Path):
    # As `aws eks get-token` or `kubelogin` answer: an ExecCredential on stdout.
    plugin = tmp_path / "get-token"
    plugin.write_text(
        '#!/bin/sh\necho \'{"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",'
        ' "status": {"token": "from-the-plugin"}}\'\n'
    )
    plugin.chmod(0o755)
    user = {"exec": {"command": str(plugin), "apiVersion": "client.authentication.k8s.io/v1"}}
    api = KubeApi(str(kubeconfig(tmp_path, user)))
    try:
        assert api.endpoint.server == "http://127.0.0.1:6443"
        assert api.endpoint.headers == {"Authorization": "Bearer from-the-plugin"}
    finally:
        api.close()


def test_an_unknown_context_or_file_is_named(tmp_path: Path):
    path = kubeconfig(tmp_path, {"token": "t"})

    with pytest.raises(KubeConfigError, match="no context named 'missing'"):
        static_endpoint(str(path), "missing", str(tmp_path))
    with pytest.raises(KubeConfigError, match="cannot read the kubeconfig"):
        static_endpoint(str(tmp_path / "absent"), None, str(tmp_path))


def test_requests_reach_the_lab_api_and_errors_carry_the_status(lab):
    api = KubeApi(str(lab.kubeconfig), None, 10)
    try:
        assert api.request("GET", "/api/v1/namespaces/kube-system")["metadata"]["name"] == "kube-system"
        with pytest.raises(KubeApiError) as raised:
            api.request("GET", "/api/v1/namespaces/no-such-namespace")
        events = list(api.watch("/api/v1/namespaces", [("fieldSelector", "metadata.name=kube-system")], 1, 10))
    finally:
        api.close()

    assert raised.value.status == 404 and 'namespaces "no-such-namespace" not found' in raised.value.message
    assert [event["type"] for event in events] == ["ADDED"]


def test_client_reads_a_kubeconfig_file_itself_and_honours_host_and_token(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "lab",
                "contexts": [{"name": "lab", "context": {"cluster": "lab", "user": "ops"}}],
                "clusters": [{"name": "lab", "cluster": {"server": "http://127.0.0.1:6443/"}}],
                "users": [{"name": "ops", "user": {"token": "from-the-file"}}],
            }
        )
    )
    options = dict.fromkeys(AUTH_ARGUMENT_SPEC)
    from_file = api_from_options({**options, "kubeconfig": str(kubeconfig)}, 5)
    assert from_file.endpoint.server == "http://127.0.0.1:6443"
    assert from_file.endpoint.headers == {"Authorization": "Bearer from-the-file"}
    assert from_file.timeout == 5
    direct = api_from_options({**options, "host": "http://10.0.0.1:6443", "api_key": "explicit"}, 5)
    assert direct.endpoint.server == "http://10.0.0.1:6443"
    assert direct.endpoint.headers == {"Authorization": "Bearer explicit"}
    overridden = api_from_options({**options, "kubeconfig": str(kubeconfig), "host": "http://10.0.0.2:6443"}, 5)
    assert overridden.endpoint.server == "http://10.0.0.2:6443"
    assert overridden.endpoint.headers == {"Authorization": "Bearer from-the-file"}
    with pytest.raises(KubeConfigError, match="context"):
        api_from_options({**options, "kubeconfig": str(kubeconfig), "context": "elsewhere"}, 5)
