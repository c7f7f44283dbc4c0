"""Documentation of the Kubernetes connection options every module built on module_utils/kube_api.py takes.

They mirror kubernetes.core's, with the same K8S_AUTH_* environment fallbacks, but only those the
project's own client honours (kubernetes.core.k8s_auth_options lists more, e.g. proxies and impersonation).
"""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  kubeconfig:
    description:
      - Path of a kubeconfig (or the kubeconfig as a dict). Falls back to C(K8S_AUTH_KUBECONFIG), then to
        C(~/.kube/config), or the in-cluster service account when running in a pod.
    type: raw
  context:
    description: Kubeconfig context; C(K8S_AUTH_CONTEXT).
    type: str
  host:
    description: URL of the Kubernetes API; C(K8S_AUTH_HOST).
    type: str
  api_key:
    description: Bearer token for the API; C(K8S_AUTH_API_KEY).
    type: str
  validate_certs:
    description: Verify the API server's certificate; C(K8S_AUTH_VERIFY_SSL).
    type: bool
    aliases: [verify_ssl]
  ca_cert:
    description: CA certificate of the API server; C(K8S_AUTH_SSL_CA_CERT).
    type: path
    aliases: [ssl_ca_cert]
  client_cert:
    description: Client certificate; C(K8S_AUTH_CERT_FILE).
    type: path
    aliases: [cert_file]
  client_key:
    description: Key of the client certificate; C(K8S_AUTH_KEY_FILE).
    type: path
    aliases: [key_file]
"""
