#!/usr/bin/python
"""Ansible module: several Kubernetes list queries in one
process, with one client, so a discovery of a dozen kinds costs one module run instead of a dozen."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: k8s_object_lists
short_description: Run several Kubernetes list (or get) queries with one client and return every object typed
description:
  - Each query names an I(api_version) and a I(kind), optionally a I(namespace) (all namespaces when omitted
    for a namespaced kind), a I(name), and I(label_selectors) (joined with commas, as kubernetes.core does).
  - Resource names come from the API server's discovery of each group version, read once per run.
  - Every returned object carries C(kind) and C(apiVersion), which the API leaves out of built-in list items.
  - A kind the server does not serve (its CRD is gone) yields an empty list and a C(missing) entry, not a failure.
  - Read-only; runs in check mode and never reports a change. Every request has a timeout.
options:
  queries:
    description: The queries, answered in order.
    type: list
    elements: dict
    required: true
    suboptions:
      api_version:
        description: C(v1), C(apps/v1), C(monitoring.coreos.com/v1)...
        type: str
        required: true
      kind:
        description: The kind, as in manifests.
        type: str
        required: true
      namespace:
        description: Namespace of a namespaced kind; all namespaces when omitted.
        type: str
      name:
        description: Get this one object (an empty list when it does not exist).
        type: str
      label_selectors:
        description: Label selector terms (C(key=value), C(key in (a,b)), C(!key)), all of which must match.
        type: list
        elements: str
        default: []
  request_timeout:
    description: Seconds each API request may take.
    type: float
    default: 30
extends_documentation_fragment:
  - kube_auth
requirements:
  - the Python C(kubernetes) client, only for the connection forms a kubeconfig file cannot express (see migration_state)
author:
  - alloy-migration maintainers
"""

EXAMPLES = r"""
- name: The release's Deployments and Services, by either Helm label
  k8s_object_lists:
    kubeconfig: "{{ migration_kubeconfig }}"
    queries:
      - {api_version: apps/v1, kind: Deployment, namespace: monitoring, label_selectors: [release=kps]}
      - {api_version: v1, kind: Service, namespace: monitoring, label_selectors: [app.kubernetes.io/instance=kps]}
  register: lists
"""

RETURN = r"""
lists:
  description: One list of objects per query, in the order of I(queries).
  returned: always
  type: list
  elements: list
missing:
  description: The queries whose kind the server does not serve, as C(apiVersion/Kind).
  returned: always
  type: list
  elements: str
"""

import http.client
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.kube_api import AUTH_ARGUMENT_SPEC, KubeApiError, KubeConfigError, api_from_options

QUERY_SPEC = {
    "api_version": {"type": "str", "required": True},
    "kind": {"type": "str", "required": True},
    "namespace": {"type": "str"},
    "name": {"type": "str"},
    "label_selectors": {"type": "list", "elements": "str", "default": []},
}


class Lister:
    def __init__(self, api: Any) -> None:
        self.api = api
        self._resources: dict[str, dict[str, dict]] = {}

    def get(self, path: str, query: list[tuple[str, str]] | None = None) -> dict | None:
        """GET a path of the API as JSON; None on 404 (the object, or the group version, is not there)."""
        try:
            return self.api.request("GET", path, query)
        except KubeApiError as error:
            if error.status == 404:
                return None
            raise

    def resource(self, api_version: str, kind: str) -> dict | None:
        """The discovery entry (name, namespaced) of a kind, or None when the server does not serve it."""
        if api_version not in self._resources:
            base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
            listing = self.get(base) or {}
            self._resources[api_version] = {
                item["kind"]: item for item in listing.get("resources", []) if "/" not in item.get("name", "")
            }
        return self._resources[api_version].get(kind)

    def run(self, query: dict) -> list[dict] | None:
        resource = self.resource(query["api_version"], query["kind"])
        if resource is None:
            return None
        base = "/api/v1" if query["api_version"] == "v1" else f"/apis/{query['api_version']}"
        scope = f"/namespaces/{query['namespace']}" if resource.get("namespaced") and query["namespace"] else ""
        path = f"{base}{scope}/{resource['name']}"
        if query["name"]:
            found = self.get(f"{path}/{query['name']}")
            items = [found] if found else []
        else:
            params = [("labelSelector", ",".join(query["label_selectors"]))] if query["label_selectors"] else []
            items = (self.get(path, params) or {}).get("items", [])
        return [{**item, "apiVersion": query["api_version"], "kind": query["kind"]} for item in items]


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "queries": {"type": "list", "elements": "dict", "required": True, "options": QUERY_SPEC},
            "request_timeout": {"type": "float", "default": 30},
            **AUTH_ARGUMENT_SPEC,
        },
        supports_check_mode=True,
    )
    auth = {key: module.params[key] for key in AUTH_ARGUMENT_SPEC}
    lists, missing = [], []
    try:
        lister = Lister(api_from_options(auth, module.params["request_timeout"]))
        for query in module.params["queries"]:
            objects = lister.run(query)
            if objects is None:
                missing.append(f"{query['api_version']}/{query['kind']}")
            lists.append(objects or [])
    except KubeApiError as error:
        module.fail_json(msg=f"Kubernetes API answered {error.status}: {error.message}", status=error.status)
    except KubeConfigError as error:
        module.fail_json(msg=f"cannot load the Kubernetes client configuration: {error}")
    except (OSError, http.client.HTTPException, ValueError) as error:
        module.fail_json(msg=f"cannot reach the Kubernetes API: {error or type(error).__name__}")
    module.exit_json(changed=False, lists=lists, missing=missing)


if __name__ == "__main__":
    main()
