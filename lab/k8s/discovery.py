"""Discovery documents: /version, /api, /apis, /api/v1, /apis/<group>/<version>, /openapi."""

from __future__ import annotations

import hashlib
import json

from lab.k8s.resources import ResourceType


def version_info(kubernetes_version: str) -> dict:
    major, minor, *_ = kubernetes_version.split(".")
    return {
        "major": major,
        "minor": minor,
        "gitVersion": f"v{kubernetes_version}",
        "gitCommit": "lab",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.23.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    }


def _versions_by_group(types: list[ResourceType]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for rtype in types:
        if rtype.group and rtype.version not in groups.setdefault(rtype.group, []):
            groups[rtype.group].append(rtype.version)
    return groups


def group_entry(group: str, versions: list[str]) -> dict:
    entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"name": group, "versions": entries, "preferredVersion": entries[0]}


def core_versions() -> dict:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}],
    }


def group_list(types: list[ResourceType]) -> dict:
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [group_entry(g, v) for g, v in _versions_by_group(types).items()],
    }


def group(types: list[ResourceType], name: str) -> dict | None:
    versions = _versions_by_group(types).get(name)
    if not versions:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **group_entry(name, versions)}


def resource_list(types: list[ResourceType], group_name: str, version: str) -> dict | None:
    matching = [t for t in types if (t.group, t.version) == (group_name, version)]
    if not matching:
        return None
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": matching[0].group_version,
        "resources": [entry for t in matching for entry in t.discovery_entries()],
    }


def _gv_path(rtype: ResourceType) -> str:
    return f"apis/{rtype.group}/{rtype.version}" if rtype.group else "api/v1"


def openapi_v3_root(types: list[ResourceType]) -> dict:
    paths = {}
    for rtype in types:
        path = _gv_path(rtype)
        digest = hashlib.sha256(json.dumps(openapi_v3_group(types, path)).encode()).hexdigest()[:32]
        paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={digest.upper()}"}
    return {"paths": paths}


def openapi_v3_group(types: list[ResourceType], path: str) -> dict:
    """Just enough of a group-version document for kubectl to choose server-side validation.

    kubectl (QueryParamVerifierV3) looks for the `fieldValidation` parameter on the PATCH operation
    of the resource's path; finding it, it sends `fieldValidation=Strict` and lets the server check.
    """
    doc_paths: dict = {}
    for rtype in types:
        if _gv_path(rtype) != path:
            continue
        base = (
            f"/{path}/namespaces/{{namespace}}/{rtype.plural}/{{name}}"
            if rtype.namespaced
            else (f"/{path}/{rtype.plural}/{{name}}")
        )
        op = {
            "parameters": [
                {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": True}},
                {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": True}},
                {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": True}},
            ],
            "x-kubernetes-action": "patch",
            "x-kubernetes-group-version-kind": {"group": rtype.group, "version": rtype.version, "kind": rtype.kind},
        }
        doc_paths[base] = {
            "patch": op,
            "put": {**op, "x-kubernetes-action": "put"},
            "post": {**op, "x-kubernetes-action": "post"},
        }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "lab"},
        "paths": doc_paths,
        "components": {"schemas": {}},
    }
