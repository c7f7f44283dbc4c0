"""lab/bin/talosctl end to end: talosconfig resolution, mutual TLS to the lab apid, exit codes."""

from __future__ import annotations

import datetime
import http.client
import importlib.machinery
import importlib.util
import ipaddress
import json
import os
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from talos_support import CP, METRICS_DOCUMENT_PATCH, W13, W15

from lab.talos import TalosCluster
from lab.talos.apid import TalosApiServer, serve_talos_api, server_ssl_context
from lab.talos.talosconfig import write_talosconfig

SHIM = Path(__file__).resolve().parents[2] / "lab" / "bin" / "talosctl"


@dataclass(frozen=True)
class KeyPair:
    crt: bytes
    key: bytes


@dataclass(frozen=True)
class Pki:
    ca: bytes
    server: KeyPair
    client: KeyPair
    stranger: KeyPair


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _issue(subject: str, issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None, usage, sans=()) -> tuple:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    issuer_name, issuer_key = issuer or (_name(subject), key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if usage:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    cert = builder.sign(issuer_key, hashes.SHA256())
    pem_key = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert, key, KeyPair(cert.public_bytes(serialization.Encoding.PEM), pem_key)


@pytest.fixture(scope="module")
def pki() -> Pki:
    ca_cert, ca_key, ca = _issue("lab-ca", None, None)
    issuer = (ca_cert.subject, ca_key)
    loopback = x509.IPAddress(ipaddress.ip_address("127.0.0.1"))
    _, _, server = _issue("apid", issuer, ExtendedKeyUsageOID.SERVER_AUTH, [loopback])
    _, _, client = _issue("os:admin", issuer, ExtendedKeyUsageOID.CLIENT_AUTH)
    other_cert, other_key, _ = _issue("other-ca", None, None)
    _, _, stranger = _issue("os:admin", (other_cert.subject, other_key), ExtendedKeyUsageOID.CLIENT_AUTH)
    return Pki(ca.crt, server, client, stranger)


@pytest.fixture
def apid(cluster: TalosCluster, pki: Pki) -> Iterator[TalosApiServer]:
    server = serve_talos_api(cluster, "127.0.0.1", 0, server_ssl_context(pki.ca, pki.server.crt, pki.server.key))
    yield server
    server.shutdown()


@pytest.fixture
def workdir(tmp_path: Path, apid: TalosApiServer, pki: Pki) -> Path:
    write_talosconfig(
        tmp_path / "talosconfig", "lab", [f"127.0.0.1:{apid.port}"], [CP], pki.ca, pki.client.crt, pki.client.key
    )
    return tmp_path


def shim(workdir: Path, *argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the shim with site-packages disabled (-S): it must need nothing beyond the standard library."""
    environment = {"PATH": os.environ["PATH"], "HOME": str(workdir), "TALOSCONFIG": str(workdir / "talosconfig")}
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-S", str(SHIM), *argv],
        cwd=workdir,
        env=environment,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_version_over_mutual_tls(workdir: Path):
    result = shim(workdir, "version")

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Client:\n\tTag:         v1.15.0\n")
    assert f"\tNODE:        {CP}\n" in result.stdout


def test_patch_from_a_relative_file_then_read_it_back(workdir: Path):
    (workdir / "metrics.yaml").write_text(METRICS_DOCUMENT_PATCH)

    patched = shim(workdir, "patch", "mc", "-n", W15, "--patch", "@metrics.yaml")
    config = shim(workdir, "-n", W15, "get", "mc", "v1alpha1", "-o", "yaml")

    assert patched.returncode == 0, patched.stderr
    assert patched.stderr.endswith("Applied configuration without a reboot\n")
    assert "kind: CRICustomizationConfig" in config.stdout


def test_failures_keep_their_exit_code_and_stream(workdir: Path):
    result = shim(workdir, "get", "mc", "-n", "10.99.0.1")

    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("10.99.0.1: rpc error: code = Unavailable")


def test_reboot_blocks_until_the_node_is_back(workdir: Path, cluster: TalosCluster):
    result = shim(workdir, "reboot", "--nodes", W13)

    assert result.returncode == 0, result.stderr
    assert result.stderr.endswith(f'"{W13}": post check passed\n')
    assert cluster.snapshot()["w-13"]["boots"] == 2


def test_talosconfig_resolution_order(workdir: Path, pki: Pki, apid: TalosApiServer):
    home_config = workdir / ".talos" / "config"
    write_talosconfig(home_config, "home", [f"127.0.0.1:{apid.port}"], [W13], pki.ca, pki.client.crt, pki.client.key)

    from_home = shim(workdir, "version", "--short", env={"TALOSCONFIG": ""})
    from_env = shim(workdir, "version", "--short")
    from_flag = shim(workdir, "version", "--short", "--talosconfig", str(home_config))

    assert f"NODE:        {W13}" in from_home.stdout
    assert f"NODE:        {CP}" in from_env.stdout
    assert f"NODE:        {W13}" in from_flag.stdout


def test_missing_config_and_unknown_context(workdir: Path):
    missing = shim(workdir, "version", "--talosconfig", str(workdir / "absent"))
    context = shim(workdir, "version", "--context", "prod")

    assert missing.returncode == 1
    assert missing.stderr == (
        "error constructing client: failed to resolve configuration context: talos config file is empty\n"
    )
    assert (workdir / "absent").read_text() == 'context: ""\ncontexts: {}\n'
    assert context.returncode == 1
    assert context.stderr == (
        'error constructing client: failed to resolve configuration context: context "prod" not found in config\n'
    )


def test_endpoints_flag_falls_through_dead_endpoints(workdir: Path, apid: TalosApiServer):
    dead = _free_port()

    alive = shim(workdir, "version", "--short", "-e", f"127.0.0.1:{dead},127.0.0.1:{apid.port}")
    nothing = shim(workdir, "version", "--short", "--endpoints", f"127.0.0.1:{dead}")

    assert alive.returncode == 0, alive.stderr
    assert nothing.returncode == 1
    assert nothing.stderr == (
        'rpc error: code = Unavailable desc = connection error: desc = "transport: Error while dialing: '
        f'dial tcp 127.0.0.1:{dead}: connect: connection refused"\n'
    )


def test_a_client_certificate_from_another_ca_is_refused(workdir: Path, pki: Pki, apid: TalosApiServer):
    config = workdir / "stranger"
    write_talosconfig(config, "lab", [f"127.0.0.1:{apid.port}"], [CP], pki.ca, pki.stranger.crt, pki.stranger.key)

    result = shim(workdir, "version", "--talosconfig", str(config))

    assert result.returncode == 1
    assert result.stderr.startswith(
        'rpc error: code = Unavailable desc = connection error: desc = "transport: authentication handshake failed: '
    )
    assert result.stdout == ""


def test_the_server_insists_on_client_certificates(cluster: TalosCluster, pki: Pki):
    context = server_ssl_context(pki.ca, pki.server.crt, pki.server.key)
    context.verify_mode = ssl.CERT_OPTIONAL

    with pytest.raises(ValueError, match="requires client certificates"):
        serve_talos_api(cluster, "127.0.0.1", 0, context)


def test_apid_rejects_a_malformed_request(apid: TalosApiServer, pki: Pki, tmp_path: Path):
    pair = tmp_path / "client.pem"
    pair.write_bytes(pki.client.crt + pki.client.key)
    context = ssl.create_default_context(cadata=pki.ca.decode())
    context.load_cert_chain(pair)
    connection = http.client.HTTPSConnection("127.0.0.1", apid.port, context=context, timeout=10)

    connection.request("POST", "/", json.dumps({"argv": "version"}), {"Content-Type": "application/json"})
    response = connection.getresponse()

    assert response.status == 400
    assert json.loads(response.read()) == {"error": "argv must be a list of strings"}
    connection.close()


def test_a_failing_hook_is_reported_not_hung_up_on(workdir: Path, hooks, monkeypatch):
    def broken() -> dict[str, bool]:
        raise RuntimeError("kubernetes API unreachable")

    monkeypatch.setattr(hooks, "kubernetes_nodes_ready", broken)

    result = shim(workdir, "health", "--wait-timeout", "1s")

    assert result.returncode == 1
    assert result.stderr == "lab apid answered 500: RuntimeError: kubernetes API unreachable\n"


def test_the_shim_is_an_executable_script(workdir: Path):
    assert os.access(SHIM, os.X_OK)
    assert SHIM.read_text().startswith("#!/usr/bin/env python3\n")
    result = subprocess.run(
        [str(SHIM), "version", "--client"],
        env={"PATH": os.environ["PATH"], "TALOSCONFIG": str(workdir / "talosconfig")},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Client:\n")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _load_shim():
    loader = importlib.machinery.SourceFileLoader("lab_talosctl_shim", str(SHIM))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    "text",
    [
        # as talosctl (Go yaml.v3) writes it
        "context: lab\ncontexts:\n    lab:\n        endpoints:\n            - 10.5.0.2\n"
        "        nodes:\n            - 10.5.0.2\n            - 10.5.0.3\n        ca: Q0E=\n        crt: Q1JU\n        key: S0VZ\n",
        # as PyYAML writes it, with indentless lists, quotes, flow lists and comments
        "# lab\ncontext: 'lab'\ncontexts:\n  lab:\n    endpoints:\n    - 10.5.0.2\n"
        '    nodes: [10.5.0.2, "10.5.0.3"]  # two\n    ca: Q0E=\n    crt: "Q1JU"\n    key: S0VZ\n',
    ],
)
def test_the_shim_reads_talosconfig_yaml_without_pyyaml(text: str):
    parsed = _load_shim().parse_yaml(text)

    assert parsed == {
        "context": "lab",
        "contexts": {
            "lab": {
                "endpoints": ["10.5.0.2"],
                "nodes": ["10.5.0.2", "10.5.0.3"],
                "ca": "Q0E=",
                "crt": "Q1JU",
                "key": "S0VZ",
            }
        },
    }
