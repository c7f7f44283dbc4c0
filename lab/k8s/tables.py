"""`as=Table` responses, so `kubectl get` prints the columns operators expect (STATUS, READY...)."""

from __future__ import annotations

import datetime as dt


def _age(obj: dict) -> str:
    created = obj["metadata"].get("creationTimestamp")
    if not created:
        return "<unknown>"
    start = dt.datetime.strptime(created, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    seconds = int((dt.datetime.now(dt.UTC) - start).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _ready(obj: dict) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (obj.get("status") or {}).get("conditions") or []
    )


def _node(obj: dict) -> list:
    status = "Ready" if _ready(obj) else "NotReady"
    if (obj.get("spec") or {}).get("unschedulable"):
        status += ",SchedulingDisabled"
    labels = obj["metadata"].get("labels") or {}
    roles = ",".join(k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/")) or "<none>"
    version = ((obj.get("status") or {}).get("nodeInfo") or {}).get("kubeletVersion", "")
    return [status, roles, _age(obj), version]


def _pod(obj: dict) -> list:
    statuses = (obj.get("status") or {}).get("containerStatuses") or []
    ready = sum(1 for c in statuses if c.get("ready"))
    total = len((obj.get("spec") or {}).get("containers") or [])
    phase = (obj.get("status") or {}).get("phase", "Pending")
    if obj["metadata"].get("deletionTimestamp"):
        phase = "Terminating"
    restarts = sum(c.get("restartCount", 0) for c in statuses)
    return [f"{ready}/{total}", phase, restarts, _age(obj)]


def _deployment(obj: dict) -> list:
    st = obj.get("status") or {}
    want = (obj.get("spec") or {}).get("replicas", 1)
    return [
        f"{st.get('readyReplicas', 0)}/{want}",
        st.get("updatedReplicas", 0),
        st.get("availableReplicas", 0),
        _age(obj),
    ]


def _statefulset(obj: dict) -> list:
    st = obj.get("status") or {}
    return [f"{st.get('readyReplicas', 0)}/{(obj.get('spec') or {}).get('replicas', 1)}", _age(obj)]


def _daemonset(obj: dict) -> list:
    st = obj.get("status") or {}
    return [
        st.get("desiredNumberScheduled", 0),
        st.get("currentNumberScheduled", 0),
        st.get("numberReady", 0),
        st.get("updatedNumberScheduled", 0),
        st.get("numberAvailable", 0),
        _age(obj),
    ]


COLUMNS = {
    "nodes": (["Status", "Roles", "Age", "Version"], _node),
    "pods": (["Ready", "Status", "Restarts", "Age"], _pod),
    "deployments": (["Ready", "Up-to-date", "Available", "Age"], _deployment),
    "statefulsets": (["Ready", "Age"], _statefulset),
    "daemonsets": (["Desired", "Current", "Ready", "Up-to-date", "Available", "Age"], _daemonset),
}


def wants_table(accept: str) -> bool:
    return "as=Table" in accept


def table(plural: str, items: list[dict], resource_version: str) -> dict:
    names, cells = COLUMNS.get(plural, (["Age"], lambda obj: [_age(obj)]))
    columns = [{"name": "Name", "type": "string", "format": "name", "description": "Name", "priority": 0}]
    columns += [{"name": n, "type": "string", "format": "", "description": n, "priority": 0} for n in names]
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": columns,
        "rows": [
            {
                "cells": [obj["metadata"]["name"], *cells(obj)],
                "object": {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": obj["metadata"],
                },
            }
            for obj in items
        ],
    }
