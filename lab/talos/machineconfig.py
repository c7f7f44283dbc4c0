"""Machine configuration documents: generation, YAML encoding as Talos prints it, identity."""

from __future__ import annotations

import base64
import copy
import secrets
import string
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.events import MappingStartEvent

from lab.talos.versions import TalosVersion

Document = dict[str, Any]

CRI_CUSTOMIZATION_PATH = "/etc/cri/conf.d/20-customization.part"
CRI_CUSTOMIZATION_KIND = "CRICustomizationConfig"


def _random_token() -> str:
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(6)) + "." + secrets.token_hex(8)


def _random_b64(size: int) -> str:
    return base64.b64encode(secrets.token_bytes(size)).decode()


def _fake_pem(label: str, size: int) -> str:
    """A base64-encoded PEM block with random content: realistic in shape, never a usable key."""
    body = base64.encodebytes(secrets.token_bytes(size)).decode()
    return base64.b64encode(f"-----BEGIN {label}-----\n{body}-----END {label}-----\n".encode()).decode()


@dataclass(frozen=True)
class ClusterSecrets:
    """The secrets bundle every node of one cluster shares (as `talosctl gen secrets` makes)."""

    cluster_id: str
    cluster_secret: str
    bootstrap_token: str
    machine_token: str
    secretbox_secret: str
    os_ca_crt: str
    os_ca_key: str
    k8s_ca_crt: str
    k8s_ca_key: str
    aggregator_ca_crt: str
    aggregator_ca_key: str
    service_account_key: str
    etcd_ca_crt: str
    etcd_ca_key: str

    @classmethod
    def generate(cls) -> ClusterSecrets:
        return cls(
            cluster_id=_random_b64(32),
            cluster_secret=_random_b64(32),
            bootstrap_token=_random_token(),
            machine_token=_random_token(),
            secretbox_secret=_random_b64(32),
            os_ca_crt=_fake_pem("CERTIFICATE", 180),
            os_ca_key=_fake_pem("ED25519 PRIVATE KEY", 48),
            k8s_ca_crt=_fake_pem("CERTIFICATE", 400),
            k8s_ca_key=_fake_pem("EC PRIVATE KEY", 120),
            aggregator_ca_crt=_fake_pem("CERTIFICATE", 330),
            aggregator_ca_key=_fake_pem("EC PRIVATE KEY", 120),
            service_account_key=_fake_pem("EC PRIVATE KEY", 120),
            etcd_ca_crt=_fake_pem("CERTIFICATE", 360),
            etcd_ca_key=_fake_pem("EC PRIVATE KEY", 120),
        )


@dataclass(frozen=True)
class NodeIdentity:
    """What the generated configuration needs to know about one node."""

    hostname: str
    role: str
    version: TalosVersion
    cluster_name: str
    control_plane_endpoint: str


def generate_documents(node: NodeIdentity, cluster: ClusterSecrets) -> list[Document]:
    """A v1alpha1 machine configuration like `talosctl gen config` produces for this node."""
    control_plane = node.role == "controlplane"
    k8s = node.version.kubernetes_version
    machine: Document = {
        "type": node.role,
        "token": cluster.machine_token,
        "ca": {"crt": cluster.os_ca_crt, "key": cluster.os_ca_key if control_plane else ""},
        "certSANs": [],
        "kubelet": {
            "image": f"ghcr.io/siderolabs/kubelet:{k8s}",
            "defaultRuntimeSeccompProfileEnabled": True,
            "disableManifestsDirectory": True,
        },
        "network": {"hostname": node.hostname},
        "install": {
            "disk": "/dev/sda",
            "image": f"ghcr.io/siderolabs/installer:{node.version}",
            "wipe": False,
        },
        "features": {
            "rbac": True,
            "stableHostname": True,
            "apidCheckExtKeyUsage": True,
            "diskQuotaSupport": True,
            "kubePrism": {"enabled": True, "port": 7445},
            "hostDNS": {"enabled": True, "forwardKubeDNSToHost": True},
        },
    }
    if control_plane:
        machine["nodeLabels"] = {"node.kubernetes.io/exclude-from-external-load-balancers": ""}
    return [
        {
            "version": "v1alpha1",
            "debug": False,
            "persist": True,
            "machine": machine,
            "cluster": _cluster_section(node, cluster, control_plane),
        }
    ]


def _cluster_section(node: NodeIdentity, cluster: ClusterSecrets, control_plane: bool) -> Document:
    k8s = node.version.kubernetes_version
    section: Document = {
        "id": cluster.cluster_id,
        "secret": cluster.cluster_secret,
        "controlPlane": {"endpoint": node.control_plane_endpoint},
        "clusterName": node.cluster_name,
        "network": {
            "dnsDomain": "cluster.local",
            "podSubnets": ["10.244.0.0/16"],
            "serviceSubnets": ["10.96.0.0/12"],
        },
        "token": cluster.bootstrap_token,
        "ca": {"crt": cluster.k8s_ca_crt, "key": cluster.k8s_ca_key if control_plane else ""},
        "discovery": {
            "enabled": True,
            "registries": {"kubernetes": {"disabled": True}, "service": {}},
        },
    }
    if not control_plane:
        return section
    section.update(
        {
            "secretboxEncryptionSecret": cluster.secretbox_secret,
            "aggregatorCA": {"crt": cluster.aggregator_ca_crt, "key": cluster.aggregator_ca_key},
            "serviceAccount": {"key": cluster.service_account_key},
            "apiServer": {
                "image": f"registry.k8s.io/kube-apiserver:{k8s}",
                "certSANs": [node.control_plane_endpoint.removeprefix("https://").rsplit(":", 1)[0]],
                "disablePodSecurityPolicy": True,
            },
            "controllerManager": {"image": f"registry.k8s.io/kube-controller-manager:{k8s}"},
            "proxy": {"image": f"registry.k8s.io/kube-proxy:{k8s}"},
            "scheduler": {"image": f"registry.k8s.io/kube-scheduler:{k8s}"},
            "etcd": {"ca": {"crt": cluster.etcd_ca_crt, "key": cluster.etcd_ca_key}},
            "extraManifests": [],
            "inlineManifests": [],
        }
    )
    return section


def document_id(doc: Document) -> str:
    """Talos's document identity: `<apiVersion>/<kind>[/<name>]`, '/v1alpha1' for the main one."""
    if "kind" not in doc:
        return "/v1alpha1"
    ident = f"{doc.get('apiVersion', '')}/{doc['kind']}"
    if "name" in doc:
        ident += f"/{doc['name']}"
    return ident


def main_document(docs: list[Document]) -> Document | None:
    return next((doc for doc in docs if document_id(doc) == "/v1alpha1"), None)


def clone(docs: list[Document]) -> list[Document]:
    return copy.deepcopy(docs)


class _TalosDumper(yaml.SafeDumper):
    """Emit YAML the way Go's yaml.v3 does: 4-space indentation, indented sequences, `- key:` items."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        if not flow and self.sequence_context and isinstance(self.event, MappingStartEvent):
            self.indents.append(self.indent)
            self.indent = (self.indent or 0) + 2
            return
        super().increase_indent(flow, False)

    def choose_scalar_style(self) -> str:
        style = super().choose_scalar_style()
        return '"' if style == "'" else style


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if not value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style='"')
    literal = "\n" in value and all(line == line.rstrip() for line in value.split("\n"))
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if literal else None)


_TalosDumper.add_representer(str, _represent_str)


def dump_yaml(value: Any) -> str:
    return yaml.dump(value, Dumper=_TalosDumper, indent=4, sort_keys=False, allow_unicode=True, width=1 << 16)


def encode_documents(docs: list[Document]) -> str:
    """The configuration as one multi-document YAML string."""
    return "---\n".join(dump_yaml(doc) for doc in docs)


def decode_documents(text: str) -> list[Document]:
    docs = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    if not all(isinstance(doc, dict) for doc in docs):
        raise ValueError("each configuration document must be a mapping")
    return docs
