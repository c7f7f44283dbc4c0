"""What the controllers, the scheduler and the kubelets of a cluster would do, in one loop.

Each pass reads the store and writes through the Api (so every write is defaulted, validated and
versioned as a client's would be). The loop wakes on every store change and at the next time a pod
is due to turn Ready; it never polls on a fixed beat.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import itertools
import json
import secrets
import threading
import time
from collections.abc import Callable

from lab.k8s.api import Api, Options, now
from lab.k8s.errors import ApiError
from lab.k8s.resources import BUILTIN, ResourceType
from lab.probes import Prober, on_node, probe_url

TYPES: dict[str, ResourceType] = {t.key: t for t in BUILTIN}
_DAEMON_TOLERATIONS = [
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
]


def template_hash(template: dict) -> str:
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()
    return digest[:10]


def container_id() -> str:
    return "containerd://" + secrets.token_hex(32)


def is_ready(obj: dict) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (obj.get("status") or {}).get("conditions") or []
    )


def tolerates(tolerations: list[dict], taint: dict) -> bool:
    for tol in tolerations:
        if tol.get("effect") and tol["effect"] != taint.get("effect"):
            continue
        if tol.get("operator") == "Exists" and (not tol.get("key") or tol["key"] == taint["key"]):
            return True
        if tol.get("key") == taint["key"] and tol.get("value", "") == taint.get("value", ""):
            return True
    return False


def fits(pod_spec: dict, node: dict, extra_tolerations: list[dict] = ()) -> bool:
    labels = node["metadata"].get("labels") or {}
    if any(labels.get(k) != v for k, v in (pod_spec.get("nodeSelector") or {}).items()):
        return False
    tolerations = [*(pod_spec.get("tolerations") or []), *extra_tolerations]
    taints = [t for t in (node.get("spec") or {}).get("taints") or [] if t.get("effect") != "PreferNoSchedule"]
    return all(tolerates(tolerations, t) for t in taints)


class Controllers:
    def __init__(self, api: Api, pod_ready_seconds: float, operator_namespace: str) -> None:
        self.api = api
        self.pod_ready_seconds = pod_ready_seconds
        self.operator_namespace = operator_namespace
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._next_due: float | None = None
        self._ip_counter = itertools.count(2)
        self._thread = threading.Thread(target=self._run, name="controllers", daemon=True)
        self.passes = 0
        self.prober = Prober()
        # Pods whose readiness probe fails (a fault): (namespace, name).
        self.unready: set[tuple[str, str]] = set()
        # What runs in a container can keep it from being ready (a process that exited): pod -> may it be.
        self.readiness_gates: list[Callable[[dict], bool]] = []
        api.store.subscribe(lambda *_: self._wake.set())

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            timeout = None if self._next_due is None else max(0.0, self._next_due - time.time())
            self._wake.wait(timeout)
            self._wake.clear()
            if self._stop.is_set():
                return
            self._next_due = None
            try:
                self.reconcile()
            except ApiError:
                self._wake.set()  # a write raced with a client: go round again
                time.sleep(0.05)

    def reconcile(self) -> None:
        self.passes += 1
        with self.api._write_lock:  # one consistent pass, clients queue briefly behind it
            self._namespaces()
            self._operator()
            self._deployments()
            self._replicasets()
            self._statefulsets()
            self._daemonsets()
            self._jobs()
            self._schedule()
            self._kubelets()
            self._endpoints()

    # -- helpers --------------------------------------------------------------------------------
    def _due(self, when: float) -> None:
        if self._next_due is None or when < self._next_due:
            self._next_due = when

    def _write_status(self, key: str, obj: dict, status: dict) -> None:
        if obj.get("status") == status:
            return
        obj["status"] = status
        meta = obj["metadata"]
        self.api.replace(
            TYPES.get(key) or self._custom(key), meta.get("namespace", ""), meta["name"], obj, Options(), sub="status"
        )

    def _custom(self, key: str) -> ResourceType:
        return next(t for t in self.api.types() if t.key == key)

    def _owned(self, key: str, owner: dict) -> list[dict]:
        uid = owner["metadata"]["uid"]
        return [
            o
            for o in self.api.store.list(key, owner["metadata"].get("namespace"))
            if any(r.get("uid") == uid for r in o["metadata"].get("ownerReferences") or [])
        ]

    @staticmethod
    def _owner_ref(owner: dict) -> dict:
        return {
            "apiVersion": owner["apiVersion"],
            "kind": owner["kind"],
            "name": owner["metadata"]["name"],
            "uid": owner["metadata"]["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }

    def _create(self, key: str, obj: dict) -> dict:
        return self.api.create(
            TYPES.get(key) or self._custom(key), obj["metadata"].get("namespace", ""), obj, Options()
        )

    def _delete(self, key: str, obj: dict) -> None:
        meta = obj["metadata"]
        with contextlib.suppress(ApiError):  # already gone: nothing to do
            self.api.delete(TYPES[key], meta.get("namespace", ""), meta["name"], {}, Options())

    def _new_pod(self, owner: dict, template: dict, name: str, labels: dict, **spec_extra) -> dict:
        meta = template.get("metadata") or {}
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": owner["metadata"]["namespace"],
                "labels": {**(meta.get("labels") or {}), **labels},
                "annotations": dict(meta.get("annotations") or {}),
                "ownerReferences": [self._owner_ref(owner)],
            },
            "spec": {**json.loads(json.dumps(template.get("spec") or {})), **spec_extra},
        }

    # -- namespaces -----------------------------------------------------------------------------
    def _namespaces(self) -> None:
        for ns in self.api.store.list("namespaces"):
            name = ns["metadata"]["name"]
            if ns["metadata"].get("deletionTimestamp"):
                continue
            if self.api.store.get("serviceaccounts", name, "default") is None:
                self._create(
                    "serviceaccounts",
                    {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": name}},
                )

    # -- prometheus operator --------------------------------------------------------------------
    def _operator_running(self) -> bool:
        return any(
            (d.get("status") or {}).get("availableReplicas", 0) > 0
            for d in self.api.store.list("deployments.apps", self.operator_namespace)
            if (d["metadata"].get("labels") or {}).get("app") == "kube-prometheus-stack-operator"
        )

    def _operator(self) -> None:
        """The Prometheus operator's rule: a CR's spec.replicas drives the StatefulSet it owns."""
        if not self._operator_running():
            return
        for plural, prefix, app in (
            ("prometheuses", "prometheus", "prometheus"),
            ("alertmanagers", "alertmanager", "alertmanager"),
        ):
            key = f"{plural}.monitoring.coreos.com"
            if not any(t.key == key for t in self.api.types()):
                continue
            for cr in self.api.store.list(key):
                self._operator_statefulset(cr, prefix, app)

    def _operator_statefulset(self, cr: dict, prefix: str, app: str) -> None:
        spec = cr.get("spec") or {}
        name = cr["metadata"]["name"]
        namespace = cr["metadata"]["namespace"]
        replicas = int(spec.get("replicas", 1)) * int(spec.get("shards", 1) or 1)
        labels = {
            "app.kubernetes.io/name": app,
            "app.kubernetes.io/instance": name,
            "app.kubernetes.io/managed-by": "prometheus-operator",
            app: name,
            "operator.prometheus.io/name": name,
        }
        wanted = {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {
                "name": f"{prefix}-{name}",
                "namespace": namespace,
                "labels": labels,
                "ownerReferences": [self._owner_ref(cr)],
            },
            "spec": {
                "replicas": replicas,
                "serviceName": f"{prefix}-operated",
                "podManagementPolicy": "Parallel",
                "selector": {"matchLabels": {"app.kubernetes.io/name": app, app: name}},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "serviceAccountName": spec.get("serviceAccountName", "default"),
                        "containers": [
                            {
                                "name": app,
                                "image": spec.get("image", f"quay.io/prometheus/{app}:{spec.get('version', 'v3.5.0')}"),
                                "ports": [{"containerPort": 9090 if app == "prometheus" else 9093, "name": "web"}],
                            }
                        ],
                        **({"nodeSelector": spec["nodeSelector"]} if spec.get("nodeSelector") else {}),
                    },
                },
            },
        }
        sts_type = TYPES["statefulsets.apps"]
        current = self.api.store.get("statefulsets.apps", namespace, f"{prefix}-{name}")
        if current is None:
            self.api.create(sts_type, namespace, wanted, Options())
        elif current["spec"].get("replicas") != replicas:
            current["spec"]["replicas"] = replicas
            self.api.replace(sts_type, namespace, current["metadata"]["name"], current, Options())
        if self.api.store.get("services", namespace, f"{prefix}-operated") is None:
            self._create(
                "services",
                {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "metadata": {
                        "name": f"{prefix}-operated",
                        "namespace": namespace,
                        "labels": {"operated-" + app: "true"},
                    },
                    "spec": {
                        "clusterIP": "None",
                        "selector": {"app.kubernetes.io/name": app},
                        "ports": [{"name": "web", "port": 9090 if app == "prometheus" else 9093}],
                    },
                },
            )
        sts = self.api.store.get("statefulsets.apps", namespace, f"{prefix}-{name}") or {}
        st = sts.get("status") or {}
        status = {
            **(cr.get("status") or {}),
            "replicas": st.get("replicas", 0),
            "availableReplicas": st.get("availableReplicas", 0),
            "updatedReplicas": st.get("updatedReplicas", 0),
            "unavailableReplicas": max(0, st.get("replicas", 0) - st.get("availableReplicas", 0)),
        }
        key = "prometheuses.monitoring.coreos.com" if app == "prometheus" else "alertmanagers.monitoring.coreos.com"
        if "status" in self._custom(key).subresources:
            self._write_status(key, cr, status)

    # -- deployments and replicasets ------------------------------------------------------------
    def _deployments(self) -> None:
        for dep in self.api.store.list("deployments.apps"):
            spec = dep["spec"]
            pod_hash = template_hash(spec["template"])
            rs_name = f"{dep['metadata']['name']}-{pod_hash}"
            owned = self._owned("replicasets.apps", dep)
            if not any(rs["metadata"]["name"] == rs_name for rs in owned):
                template = json.loads(json.dumps(spec["template"]))
                template.setdefault("metadata", {}).setdefault("labels", {})["pod-template-hash"] = pod_hash
                selector = json.loads(json.dumps(spec["selector"]))
                selector.setdefault("matchLabels", {})["pod-template-hash"] = pod_hash
                self._create(
                    "replicasets.apps",
                    {
                        "apiVersion": "apps/v1",
                        "kind": "ReplicaSet",
                        "metadata": {
                            "name": rs_name,
                            "namespace": dep["metadata"]["namespace"],
                            "labels": template["metadata"]["labels"],
                            "ownerReferences": [self._owner_ref(dep)],
                        },
                        "spec": {"replicas": spec["replicas"], "selector": selector, "template": template},
                    },
                )
                owned = self._owned("replicasets.apps", dep)
            for rs in owned:
                want = spec["replicas"] if rs["metadata"]["name"] == rs_name else 0
                if rs["spec"].get("replicas") != want:
                    rs["spec"]["replicas"] = want
                    self.api.replace(
                        TYPES["replicasets.apps"], rs["metadata"]["namespace"], rs["metadata"]["name"], rs, Options()
                    )
            self._deployment_status(dep, owned, rs_name)

    def _deployment_status(self, dep: dict, owned: list[dict], new_rs: str) -> None:
        total = sum((rs.get("status") or {}).get("replicas", 0) for rs in owned)
        ready = sum((rs.get("status") or {}).get("readyReplicas", 0) for rs in owned)
        updated = sum((rs.get("status") or {}).get("replicas", 0) for rs in owned if rs["metadata"]["name"] == new_rs)
        wanted = dep["spec"]["replicas"]
        status = {
            "observedGeneration": dep["metadata"].get("generation", 1),
            "replicas": total,
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": ready,
        }
        if total - ready > 0:
            status["unavailableReplicas"] = total - ready
        status = {k: v for k, v in status.items() if v or k == "observedGeneration"}
        previous = {c["type"]: c for c in (dep.get("status") or {}).get("conditions") or []}
        available = "True" if ready >= wanted else "False"
        status["conditions"] = [
            _condition(
                previous,
                "Available",
                available,
                "MinimumReplicasAvailable" if available == "True" else "MinimumReplicasUnavailable",
            ),
            _condition(
                previous,
                "Progressing",
                "True",
                "NewReplicaSetAvailable" if updated == wanted == ready else "ReplicaSetUpdated",
            ),
        ]
        self._write_status("deployments.apps", dep, status)

    def _replicasets(self) -> None:
        for rs in self.api.store.list("replicasets.apps"):
            pods = [p for p in self._owned("pods", rs) if not p["metadata"].get("deletionTimestamp")]
            want = rs["spec"].get("replicas", 1)
            for _ in range(want - len(pods)):
                self._create(
                    "pods",
                    self._new_pod(
                        rs, rs["spec"]["template"], f"{rs['metadata']['name']}-{secrets.token_hex(3)[:5]}", {}
                    ),
                )
            if len(pods) > want:
                for pod in sorted(pods, key=is_ready)[: len(pods) - want]:
                    self._delete("pods", pod)
            pods = self._owned("pods", rs)
            ready = sum(1 for p in pods if is_ready(p))
            status = {
                "replicas": len(pods),
                "fullyLabeledReplicas": len(pods),
                "readyReplicas": ready,
                "availableReplicas": ready,
                "observedGeneration": rs["metadata"].get("generation", 1),
            }
            self._write_status(
                "replicasets.apps",
                rs,
                {k: v for k, v in status.items() if v or k in ("replicas", "observedGeneration")},
            )

    # -- statefulsets ---------------------------------------------------------------------------
    def _statefulsets(self) -> None:
        for sts in self.api.store.list("statefulsets.apps"):
            self._statefulset(sts)

    def _statefulset(self, sts: dict) -> None:
        meta, spec = sts["metadata"], sts["spec"]
        name = meta["name"]
        revision = f"{name}-{template_hash(spec['template'])}"
        self._ensure_revision(sts, revision)
        pods = {p["metadata"]["name"]: p for p in self._owned("pods", sts)}
        replicas = spec.get("replicas", 1)
        parallel = spec.get("podManagementPolicy") == "Parallel"
        for ordinal in range(replicas):
            pod_name = f"{name}-{ordinal}"
            if pod_name in pods:
                continue
            if not parallel and not all(is_ready(pods.get(f"{name}-{i}", {})) for i in range(ordinal)):
                break
            self._ensure_claims(sts, ordinal)
            labels = {
                "controller-revision-hash": revision,
                "statefulset.kubernetes.io/pod-name": pod_name,
                "apps.kubernetes.io/pod-index": str(ordinal),
            }
            self._create(
                "pods",
                self._new_pod(
                    sts, spec["template"], pod_name, labels, hostname=pod_name, subdomain=spec.get("serviceName", "")
                ),
            )
            pods[pod_name] = {}
            if not parallel:
                break
        for pod_name, pod in pods.items():
            if pod and int(pod_name.rsplit("-", 1)[1]) >= replicas:
                self._delete("pods", pod)
        pods = {
            p["metadata"]["name"]: p
            for p in self._owned("pods", sts)
            if int(p["metadata"]["name"].rsplit("-", 1)[1]) < replicas
        }
        outdated = sorted(
            (p for p in pods.values() if p["metadata"]["labels"].get("controller-revision-hash") != revision),
            key=lambda p: -int(p["metadata"]["name"].rsplit("-", 1)[1]),
        )
        if outdated and all(is_ready(p) for p in pods.values()) and len(pods) == replicas:
            self._delete("pods", outdated[0])
        updated = len(pods) - len(outdated)
        ready = sum(1 for p in pods.values() if is_ready(p))
        previous = sts.get("status") or {}
        current_revision = previous.get("currentRevision", revision)
        if updated == replicas == len(pods):
            current_revision = revision
        status = {
            "observedGeneration": meta.get("generation", 1),
            "replicas": len(pods),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "currentReplicas": len(pods) - updated if current_revision != revision else len(pods),
            "updatedReplicas": updated,
            "currentRevision": current_revision,
            "updateRevision": revision,
            "collisionCount": 0,
        }
        status = {
            k: v
            for k, v in status.items()
            if v != 0 or k in ("replicas", "observedGeneration", "availableReplicas", "collisionCount")
        }
        self._write_status("statefulsets.apps", sts, status)

    def _ensure_revision(self, sts: dict, revision: str) -> None:
        namespace = sts["metadata"]["namespace"]
        if self.api.store.get("controllerrevisions.apps", namespace, revision) is not None:
            return
        existing = self._owned("controllerrevisions.apps", sts)
        self._create(
            "controllerrevisions.apps",
            {
                "apiVersion": "apps/v1",
                "kind": "ControllerRevision",
                "metadata": {
                    "name": revision,
                    "namespace": namespace,
                    "labels": dict((sts["spec"]["template"].get("metadata") or {}).get("labels") or {}),
                    "ownerReferences": [self._owner_ref(sts)],
                },
                "data": {"spec": {"template": sts["spec"]["template"]}},
                "revision": max((r.get("revision", 0) for r in existing), default=0) + 1,
            },
        )

    def _ensure_claims(self, sts: dict, ordinal: int) -> None:
        namespace = sts["metadata"]["namespace"]
        for claim in sts["spec"].get("volumeClaimTemplates") or []:
            name = f"{claim['metadata']['name']}-{sts['metadata']['name']}-{ordinal}"
            if self.api.store.get("persistentvolumeclaims", namespace, name) is None:
                self._create(
                    "persistentvolumeclaims",
                    {
                        "apiVersion": "v1",
                        "kind": "PersistentVolumeClaim",
                        "metadata": {
                            "name": name,
                            "namespace": namespace,
                            "labels": dict((sts["spec"]["selector"] or {}).get("matchLabels") or {}),
                        },
                        "spec": claim.get("spec") or {},
                    },
                )

    # -- daemonsets -----------------------------------------------------------------------------
    def _daemonsets(self) -> None:
        nodes = self.api.store.list("nodes")
        for ds in self.api.store.list("daemonsets.apps"):
            self._daemonset(ds, nodes)

    def _daemonset(self, ds: dict, nodes: list[dict]) -> None:
        spec = ds["spec"]
        pod_spec = spec["template"].get("spec") or {}
        revision = template_hash(spec["template"])
        extra = list(_DAEMON_TOLERATIONS)
        if pod_spec.get("hostNetwork"):
            extra.append(
                {"key": "node.kubernetes.io/network-unavailable", "operator": "Exists", "effect": "NoSchedule"}
            )
        eligible = {n["metadata"]["name"] for n in nodes if fits(pod_spec, n, extra)}
        pods = [p for p in self._owned("pods", ds) if not p["metadata"].get("deletionTimestamp")]
        by_node: dict[str, list[dict]] = {}
        for pod in pods:
            by_node.setdefault(pod["spec"].get("nodeName", ""), []).append(pod)
        for node_name in sorted(eligible - set(by_node)):
            self._create(
                "pods",
                self._new_pod(
                    ds,
                    spec["template"],
                    f"{ds['metadata']['name']}-{secrets.token_hex(3)[:5]}",
                    {
                        "controller-revision-hash": revision,
                        "pod-template-generation": str(ds["metadata"].get("generation", 1)),
                    },
                    nodeName=node_name,
                    tolerations=[*(pod_spec.get("tolerations") or []), *extra],
                ),
            )
        for node_name, node_pods in by_node.items():
            if node_name not in eligible:
                for pod in node_pods:
                    self._delete("pods", pod)
        outdated = [
            p
            for p in pods
            if p["metadata"]["labels"].get("controller-revision-hash") != revision
            and p["spec"].get("nodeName") in eligible
        ]
        if outdated and all(is_ready(p) for p in pods):
            self._delete("pods", sorted(outdated, key=lambda p: p["spec"].get("nodeName", ""))[0])
        pods = [p for p in self._owned("pods", ds) if p["spec"].get("nodeName") in eligible]
        ready = sum(1 for p in pods if is_ready(p))
        updated = sum(1 for p in pods if p["metadata"]["labels"].get("controller-revision-hash") == revision)
        status = {
            "currentNumberScheduled": len({p["spec"]["nodeName"] for p in pods}),
            "desiredNumberScheduled": len(eligible),
            "numberMisscheduled": 0,
            "numberReady": ready,
            "numberAvailable": ready,
            "updatedNumberScheduled": updated,
            "observedGeneration": ds["metadata"].get("generation", 1),
        }
        if len(eligible) - ready > 0:
            status["numberUnavailable"] = len(eligible) - ready
        status = {
            k: v
            for k, v in status.items()
            if v or k in ("currentNumberScheduled", "numberMisscheduled", "desiredNumberScheduled", "numberReady")
        }
        self._write_status("daemonsets.apps", ds, status)

    # -- jobs -----------------------------------------------------------------------------------
    def _jobs(self) -> None:
        for job in self.api.store.list("jobs.batch"):
            status = dict(job.get("status") or {})
            if any(c.get("status") == "True" for c in status.get("conditions") or []):
                continue  # Complete or Failed: finished
            pods = self._owned("pods", job)
            phases = [(p.get("status") or {}).get("phase") for p in pods]
            failed = phases.count("Failed")
            backoff_limit = job["spec"].get("backoffLimit", 6)
            status.setdefault("startTime", now())
            if "Succeeded" in phases:
                status.pop("active", None)
                status.update(succeeded=1, completionTime=now(), conditions=[_job_condition("Complete")])
            elif failed > backoff_limit:
                status.pop("active", None)
                status["conditions"] = [
                    _job_condition("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit")
                ]
            elif all(phase == "Failed" for phase in phases):
                self._create("pods", self._job_pod(job))
            if failed:
                status["failed"] = failed
            status["active"] = sum(1 for phase in phases if phase not in ("Succeeded", "Failed")) or status.get(
                "active", 1
            )
            if status.get("conditions"):
                status.pop("active", None)
            self._write_status("jobs.batch", job, status)

    def _job_pod(self, job: dict) -> dict:
        name = job["metadata"]["name"]
        labels = {"batch.kubernetes.io/job-name": name, "job-name": name}
        return self._new_pod(job, job["spec"]["template"], f"{name}-{secrets.token_hex(3)[:5]}", labels)

    # -- scheduler ------------------------------------------------------------------------------
    def _schedule(self) -> None:
        nodes = [
            n for n in self.api.store.list("nodes") if is_ready(n) and not (n.get("spec") or {}).get("unschedulable")
        ]
        pods = self.api.store.list("pods")
        load: dict[str, int] = {}
        for pod in pods:
            load[pod["spec"].get("nodeName", "")] = load.get(pod["spec"].get("nodeName", ""), 0) + 1
        for pod in pods:
            if pod["spec"].get("nodeName") or pod["metadata"].get("deletionTimestamp"):
                continue
            candidates = [n for n in nodes if fits(pod["spec"], n)]
            if not candidates:
                self._write_status(
                    "pods",
                    pod,
                    {
                        **pod.get("status", {}),
                        "phase": "Pending",
                        "conditions": [
                            {
                                "type": "PodScheduled",
                                "status": "False",
                                "reason": "Unschedulable",
                                "message": f"0/{len(nodes)} nodes are available",
                                "lastTransitionTime": now(),
                            }
                        ],
                    },
                )
                continue
            node = min(candidates, key=lambda n: (load.get(n["metadata"]["name"], 0), n["metadata"]["name"]))
            pod["spec"]["nodeName"] = node["metadata"]["name"]
            load[node["metadata"]["name"]] = load.get(node["metadata"]["name"], 0) + 1
            meta = pod["metadata"]
            self.api.replace(TYPES["pods"], meta["namespace"], meta["name"], pod, Options())

    # -- kubelets -------------------------------------------------------------------------------
    def _kubelets(self) -> None:
        nodes = {n["metadata"]["name"]: n for n in self.api.store.list("nodes")}
        for pod in self.api.store.list("pods"):
            node = nodes.get(pod["spec"].get("nodeName", ""))
            if pod["metadata"].get("deletionTimestamp") and not pod["metadata"].get("finalizers"):
                self._delete("pods", pod)
            elif node is not None:
                self._kubelet_sync(pod, node)

    def _kubelet_sync(self, pod: dict, node: dict) -> None:
        status = json.loads(json.dumps(pod.get("status") or {}))
        if status.get("phase") in ("Succeeded", "Failed"):
            return
        node_ready = is_ready(node)
        node_ip = next(a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP")
        t = time.time()
        if status.get("phase") != "Running":
            status.update(
                phase="Running",
                hostIP=node_ip,
                startTime=now(),
                podIP=node_ip if pod["spec"].get("hostNetwork") else self._pod_ip(node),
            )
            status["podIPs"] = [{"ip": status["podIP"]}]
            status["hostIPs"] = [{"ip": node_ip}]
            status["containerStatuses"] = [self._container_status(c, 0) for c in pod["spec"]["containers"]]
        started = _parse_time(status["startTime"])
        restarted = max(
            (
                _parse_time(cs["state"]["running"]["startedAt"])
                for cs in status["containerStatuses"]
                if "running" in cs.get("state", {})
            ),
            default=started,
        )
        ready_at = restarted + self.pod_ready_seconds
        is_job = any(r.get("kind") == "Job" for r in pod["metadata"].get("ownerReferences") or [])
        probe_fails = (pod["metadata"].get("namespace", ""), pod["metadata"]["name"]) in self.unready or not all(
            gate(pod) for gate in self.readiness_gates
        )
        ready = node_ready and t >= ready_at and not probe_fails
        if node_ready and t < ready_at:
            self._due(ready_at)
        exit_code = self._job_exit_code(pod, node_ip) if is_job and ready else None
        if exit_code is not None:
            status["phase"] = "Succeeded" if exit_code == 0 else "Failed"
            for cs in status["containerStatuses"]:
                cs["state"] = {
                    "terminated": {
                        "exitCode": exit_code,
                        "reason": "Completed" if exit_code == 0 else "Error",
                        "startedAt": cs["state"].get("running", {}).get("startedAt", now()),
                        "finishedAt": now(),
                    }
                }
                cs["ready"] = False
        if is_job:
            ready = False
        for cs in status["containerStatuses"]:
            if "running" in cs.get("state", {}):
                cs["ready"] = ready
                cs["started"] = True
        previous = {c["type"]: c for c in (pod.get("status") or {}).get("conditions") or []}
        flag = "True" if ready else "False"
        status["conditions"] = [
            _condition(previous, "PodReadyToStartContainers", "True" if node_ready else "False", probe=False),
            _condition(previous, "Initialized", "True", probe=False),
            _condition(previous, "Ready", flag, probe=False),
            _condition(previous, "ContainersReady", flag, probe=False),
            _condition(previous, "PodScheduled", "True", probe=False),
        ]
        status["qosClass"] = status.get("qosClass", "BestEffort")
        self._write_status("pods", pod, status)

    def _job_exit_code(self, pod: dict, node_ip: str) -> int | None:
        """0 for a plain Job container; for a probe (wget/curl of a URL), what the node really serves."""
        url = probe_url(pod)
        if url is None:
            return 0
        target = on_node(url, node_ip, bool(pod["spec"].get("hostNetwork")))
        return self.prober.exit_code(pod["metadata"]["uid"], target, self._wake.set)

    def _pod_ip(self, node: dict) -> str:
        index = int(node["metadata"].get("annotations", {}).get("lab.alloy-migration/index", "0"))
        n = next(self._ip_counter)
        return f"10.244.{index}.{n % 250 + 2}"

    @staticmethod
    def _container_status(container: dict, restarts: int) -> dict:
        return {
            "name": container["name"],
            "image": container["image"],
            "imageID": f"{container['image'].split(':')[0]}@sha256:" + secrets.token_hex(32),
            "containerID": container_id(),
            "ready": False,
            "started": True,
            "restartCount": restarts,
            "state": {"running": {"startedAt": now()}},
            "lastState": {},
        }

    def wake(self) -> None:
        """Run a pass soon: something the kubelets read (readiness gates) changed."""
        self._wake.set()

    def set_unready(self, namespace: str, name: str, unready: bool) -> None:
        """Fault: the pod's readiness probe fails (True) or passes again (False)."""
        if unready:
            self.unready.add((namespace, name))
        else:
            self.unready.discard((namespace, name))
        self._wake.set()

    def restart_containers(self, node_name: str) -> None:
        """After a node reboot or a CRI restart: every container on the node starts again."""
        with self.api._write_lock:
            for pod in self.api.store.list("pods"):
                if pod["spec"].get("nodeName") != node_name or not pod.get("status", {}).get("containerStatuses"):
                    continue
                status = pod["status"]
                status["containerStatuses"] = [
                    {
                        **self._container_status(c, cs.get("restartCount", 0) + 1),
                        "lastState": {
                            "terminated": {
                                "exitCode": 255,
                                "reason": "Unknown",
                                "startedAt": cs["state"].get("running", {}).get("startedAt", now()),
                                "finishedAt": now(),
                            }
                        },
                    }
                    for c, cs in zip(pod["spec"]["containers"], status["containerStatuses"], strict=False)
                ]
                self.api.replace(
                    TYPES["pods"], pod["metadata"]["namespace"], pod["metadata"]["name"], pod, Options(), sub="status"
                )

    # -- endpoints ------------------------------------------------------------------------------
    def _endpoints(self) -> None:
        for svc in self.api.store.list("services"):
            selector = (svc.get("spec") or {}).get("selector")
            if not selector:
                continue
            namespace, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
            pods = [
                p
                for p in self.api.store.list("pods", namespace)
                if all((p["metadata"].get("labels") or {}).get(k) == v for k, v in selector.items())
                and (p.get("status") or {}).get("podIP")
            ]
            self._endpoints_object(svc, pods)
            self._endpoint_slice(svc, pods, namespace, name)

    def _ports(self, svc: dict, pod: dict | None) -> list[dict]:
        ports = []
        for port in svc["spec"].get("ports") or []:
            target = port.get("targetPort", port["port"])
            if isinstance(target, str) and pod is not None:
                target = next(
                    (
                        p["containerPort"]
                        for c in pod["spec"]["containers"]
                        for p in c.get("ports", [])
                        if p.get("name") == target
                    ),
                    port["port"],
                )
            ports.append(
                {
                    **({"name": port["name"]} if port.get("name") else {}),
                    "port": target,
                    "protocol": port.get("protocol", "TCP"),
                }
            )
        return ports

    def _endpoints_object(self, svc: dict, pods: list[dict]) -> None:
        namespace, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
        ready = [p for p in pods if is_ready(p)]
        not_ready = [p for p in pods if not is_ready(p)]

        def address(p: dict) -> dict:
            return {
                "ip": p["status"]["podIP"],
                "nodeName": p["spec"].get("nodeName"),
                "targetRef": {
                    "kind": "Pod",
                    "namespace": namespace,
                    "name": p["metadata"]["name"],
                    "uid": p["metadata"]["uid"],
                },
            }

        subsets = []
        if pods:
            subset = {"ports": self._ports(svc, pods[0])}
            if ready:
                subset["addresses"] = [address(p) for p in ready]
            if not_ready:
                subset["notReadyAddresses"] = [address(p) for p in not_ready]
            subsets.append(subset)
        body = {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {"name": name, "namespace": namespace, "labels": dict(svc["metadata"].get("labels") or {})},
            **({"subsets": subsets} if subsets else {}),
        }
        self._upsert("endpoints", body)

    def _endpoint_slice(self, svc: dict, pods: list[dict], namespace: str, name: str) -> None:
        body = {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": f"{name}-lab",
                "namespace": namespace,
                "labels": {
                    **(svc["metadata"].get("labels") or {}),
                    "kubernetes.io/service-name": name,
                    "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
                },
                "ownerReferences": [{**self._owner_ref(svc), "blockOwnerDeletion": True}],
            },
            "addressType": "IPv4",
            "endpoints": [
                {
                    "addresses": [p["status"]["podIP"]],
                    "conditions": {"ready": is_ready(p), "serving": is_ready(p), "terminating": False},
                    "nodeName": p["spec"].get("nodeName"),
                    "targetRef": {
                        "kind": "Pod",
                        "namespace": namespace,
                        "name": p["metadata"]["name"],
                        "uid": p["metadata"]["uid"],
                    },
                }
                for p in pods
            ],
            "ports": self._ports(svc, pods[0] if pods else None),
        }
        self._upsert("endpointslices.discovery.k8s.io", body)

    def _upsert(self, key: str, body: dict) -> None:
        meta = body["metadata"]
        current = self.api.store.get(key, meta["namespace"], meta["name"])
        if current is None:
            self._create(key, body)
            return
        comparable = {k: v for k, v in current.items() if k != "metadata"}
        wanted = {k: v for k, v in body.items() if k != "metadata"}
        comparable.setdefault("apiVersion", body["apiVersion"])
        if comparable != wanted or current["metadata"].get("labels") != meta.get("labels"):
            new = {**body, "metadata": {**current["metadata"], "labels": meta.get("labels")}}
            self.api.replace(TYPES[key], meta["namespace"], meta["name"], new, Options())


def _condition(previous: dict, kind: str, status: str, reason: str = "", probe: bool = True) -> dict:
    old = previous.get(kind)
    changed = old is None or old.get("status") != status
    cond = {"type": kind, "status": status, "lastTransitionTime": now() if changed else old.get("lastTransitionTime")}
    if probe:
        cond["lastUpdateTime"] = cond["lastTransitionTime"]
    else:
        cond["lastProbeTime"] = None
    if reason:
        cond["reason"] = reason
    return cond


def _job_condition(kind: str, reason: str = "", message: str = "") -> dict:
    cond = {"type": kind, "status": "True", "lastProbeTime": now(), "lastTransitionTime": now()}
    if reason:
        cond.update(reason=reason, message=message)
    return cond


def _parse_time(value: str) -> float:
    return dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC).timestamp()
