"""The resource types the lab API serves, and their discovery documents."""

from __future__ import annotations

from dataclasses import dataclass, field

ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
READ_ONLY_VERBS = ["get", "list"]


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    verbs: tuple[str, ...] = tuple(ALL_VERBS)
    categories: tuple[str, ...] = ()
    # True for kinds served from a CustomResourceDefinition object in the store.
    custom: bool = False
    list_kind: str = field(default="")

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> str:
        """Store key: `pods`, `deployments.apps`, `prometheuses.monitoring.coreos.com`."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def singular(self) -> str:
        return self.kind.lower()

    def discovery_entries(self) -> list[dict]:
        entries = [
            {
                "name": self.plural,
                "singularName": self.singular,
                "namespaced": self.namespaced,
                "kind": self.kind,
                "verbs": list(self.verbs),
                **({"shortNames": list(self.short_names)} if self.short_names else {}),
                **({"categories": list(self.categories)} if self.categories else {}),
            }
        ]
        for sub in self.subresources:
            kind, verbs = _SUBRESOURCE_SHAPES[sub]
            entries.append(
                {
                    "name": f"{self.plural}/{sub}",
                    "singularName": "",
                    "namespaced": self.namespaced,
                    "kind": kind or self.kind,
                    "verbs": verbs,
                    **({"group": "policy", "version": "v1"} if sub == "eviction" else {}),
                    **({"group": "autoscaling", "version": "v1"} if sub == "scale" else {}),
                }
            )
        return entries


_SUBRESOURCE_SHAPES: dict[str, tuple[str, list[str]]] = {
    "status": ("", ["get", "patch", "update"]),
    "eviction": ("Eviction", ["create"]),
    "scale": ("Scale", ["get", "patch", "update"]),
}

WORKLOAD = ("status", "scale")


def _core(kind: str, plural: str, namespaced: bool = True, **kw) -> ResourceType:
    return ResourceType("", "v1", kind, plural, namespaced, **kw)


BUILTIN: tuple[ResourceType, ...] = (
    _core("Namespace", "namespaces", False, short_names=("ns",), subresources=("status",)),
    _core("Node", "nodes", False, short_names=("no",), subresources=("status",)),
    _core("Pod", "pods", short_names=("po",), subresources=("status", "eviction"), categories=("all",)),
    _core("Service", "services", short_names=("svc",), subresources=("status",), categories=("all",)),
    _core("Endpoints", "endpoints", short_names=("ep",)),
    _core("ConfigMap", "configmaps", short_names=("cm",)),
    _core("Secret", "secrets"),
    _core("ServiceAccount", "serviceaccounts", short_names=("sa",)),
    _core("Event", "events", short_names=("ev",)),
    _core("PersistentVolumeClaim", "persistentvolumeclaims", short_names=("pvc",), subresources=("status",)),
    ResourceType("apps", "v1", "Deployment", "deployments", True, ("deploy",), WORKLOAD, categories=("all",)),
    ResourceType("apps", "v1", "StatefulSet", "statefulsets", True, ("sts",), WORKLOAD, categories=("all",)),
    ResourceType("apps", "v1", "DaemonSet", "daemonsets", True, ("ds",), ("status",), categories=("all",)),
    ResourceType("apps", "v1", "ReplicaSet", "replicasets", True, ("rs",), WORKLOAD, categories=("all",)),
    ResourceType("apps", "v1", "ControllerRevision", "controllerrevisions", True),
    ResourceType("batch", "v1", "Job", "jobs", True, (), ("status",), categories=("all",)),
    ResourceType("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", True, ("pdb",), ("status",)),
    ResourceType("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", True),
    ResourceType("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", False),
    ResourceType("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", False),
    ResourceType("rbac.authorization.k8s.io", "v1", "Role", "roles", True),
    ResourceType("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", True),
    ResourceType(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        False,
        ("crd", "crds"),
        ("status",),
    ),
)


def from_crd(crd: dict) -> list[ResourceType]:
    """Resource types a CustomResourceDefinition serves (one per served version)."""
    spec = crd.get("spec", {})
    names = spec.get("names", {})
    subresources_by_version = {}
    for ver in spec.get("versions", []):
        subs = tuple(s for s in ("status", "scale") if s in (ver.get("subresources") or {}))
        subresources_by_version[ver["name"]] = subs
    return [
        ResourceType(
            group=spec["group"],
            version=ver["name"],
            kind=names["kind"],
            plural=names["plural"],
            namespaced=spec.get("scope", "Namespaced") == "Namespaced",
            short_names=tuple(names.get("shortNames", [])),
            subresources=subresources_by_version[ver["name"]],
            categories=tuple(names.get("categories", [])),
            custom=True,
            list_kind=names.get("listKind", ""),
        )
        for ver in spec.get("versions", [])
        if ver.get("served", True)
    ]


def list_kind(rtype: ResourceType) -> str:
    return rtype.list_kind or f"{rtype.kind}List"
