"""RBAC decisions, as the API server's RBAC authorizer makes them, for the lab's service accounts.

A service account authenticates as `system:serviceaccount:<ns>:<name>` in the groups
`system:serviceaccounts`, `system:serviceaccounts:<ns>` and `system:authenticated`. A request is
allowed when a ClusterRoleBinding (any namespace) or a RoleBinding in the request's namespace
binds one of those subjects to a role with a rule matching the API group, the resource (with its
subresource as `resource/subresource`, `*` and `*/subresource` wildcards) and the verb.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

Lister = Callable[[str, str | None], list[dict]]  # (resource key, namespace or None) -> objects
_GROUP = "rbac.authorization.k8s.io"


@dataclass(frozen=True)
class ServiceAccount:
    namespace: str
    name: str

    @property
    def user(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.name}"

    @property
    def groups(self) -> tuple[str, ...]:
        return ("system:serviceaccounts", f"system:serviceaccounts:{self.namespace}", "system:authenticated")


def _bound(binding: dict, account: ServiceAccount) -> bool:
    for subject in binding.get("subjects") or []:
        kind = subject.get("kind")
        if kind == "ServiceAccount" and (subject.get("namespace"), subject.get("name")) == (
            account.namespace,
            account.name,
        ):
            return True
        if kind == "User" and subject.get("name") == account.user:
            return True
        if kind == "Group" and subject.get("name") in account.groups:
            return True
    return False


def _matches(rule: dict, verb: str, group: str, resource: str) -> bool:
    groups = rule.get("apiGroups") or []
    resources = rule.get("resources") or []
    verbs = rule.get("verbs") or []
    subresource = resource.partition("/")[2]
    resource_ok = "*" in resources or resource in resources or bool(subresource and f"*/{subresource}" in resources)
    return ("*" in groups or group in groups) and resource_ok and ("*" in verbs or verb in verbs)


def _grants(role: dict | None, verb: str, group: str, resource: str) -> bool:
    return role is not None and any(_matches(rule, verb, group, resource) for rule in role.get("rules") or [])


def allowed(
    lister: Lister, account: ServiceAccount, verb: str, group: str, resource: str, namespace: str | None = None
) -> bool:
    """Whether `account` may `verb` `resource` (e.g. "pods", "nodes/metrics") cluster-wide or in `namespace`."""
    cluster_roles = {r["metadata"]["name"]: r for r in lister(f"clusterroles.{_GROUP}", None)}
    for binding in lister(f"clusterrolebindings.{_GROUP}", None):
        role = cluster_roles.get((binding.get("roleRef") or {}).get("name", ""))
        if _bound(binding, account) and _grants(role, verb, group, resource):
            return True
    if not namespace:
        return False
    roles = {r["metadata"]["name"]: r for r in lister(f"roles.{_GROUP}", namespace)}
    for binding in lister(f"rolebindings.{_GROUP}", namespace):
        ref = binding.get("roleRef") or {}
        role = (cluster_roles if ref.get("kind") == "ClusterRole" else roles).get(ref.get("name", ""))
        if _bound(binding, account) and _grants(role, verb, group, resource):
            return True
    return False


def forbidden_message(account: ServiceAccount, verb: str, group: str, resource: str, namespace: str | None) -> str:
    """The API server's Forbidden message for a denied request."""
    plural = resource.split("/", maxsplit=1)[0]
    scope = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
    qualified = f"{plural}.{group}" if group else plural
    return f'{qualified} is forbidden: User "{account.user}" cannot {verb} resource "{plural}" in API group "{group}" {scope}'
