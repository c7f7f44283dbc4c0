"""API verbs over the store: what the kube-apiserver does between the HTTP layer and etcd."""

from __future__ import annotations

import copy
import datetime as dt
import json
import secrets
import threading
import uuid
from dataclasses import dataclass, field

import yaml

from lab.k8s import defaults, patch, resources, selectors, validation
from lab.k8s.errors import ApiError, already_exists, bad_request, conflict, invalid, not_found
from lab.k8s.resources import ResourceType
from lab.k8s.store import Store

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Options:
    """Query options of a write: dryRun, fieldManager, force, fieldValidation."""

    dry_run: bool = False
    field_manager: str = ""
    force: bool = False
    field_validation: str = "Warn"
    warnings: list[str] = field(default_factory=list)


class Api:
    def __init__(self, store: Store, kubernetes_version: str) -> None:
        self.store = store
        self.kubernetes_version = kubernetes_version
        self._write_lock = threading.RLock()

    # -- types ----------------------------------------------------------------------------------
    def types(self) -> list[ResourceType]:
        found = list(resources.BUILTIN)
        for crd in self.store.list("customresourcedefinitions.apiextensions.k8s.io"):
            if crd["metadata"].get("deletionTimestamp"):
                continue
            found.extend(resources.from_crd(crd))
        return found

    def find(self, group: str, version: str, plural: str) -> ResourceType:
        for rtype in self.types():
            if (rtype.group, rtype.version, rtype.plural) == (group, version, plural):
                return rtype
        raise ApiError(404, "NotFound", "the server could not find the requested resource", {})

    def type_of(self, api_version: str, kind: str) -> ResourceType | None:
        return next((t for t in self.types() if t.group_version == api_version and t.kind == kind), None)

    # -- reads ----------------------------------------------------------------------------------
    def get(self, rtype: ResourceType, namespace: str, name: str) -> dict:
        obj = self.store.get(rtype.key, namespace if rtype.namespaced else "", name)
        if obj is None:
            raise not_found(rtype.plural, rtype.group, name)
        return obj

    def list(
        self,
        rtype: ResourceType,
        namespace: str | None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> dict:
        try:
            labels_ok = selectors.label_matcher(label_selector)
            selectors.check_field_selector(rtype.plural, field_selector, rtype.kind)
            fields_ok = selectors.field_matcher(field_selector)
        except selectors.SelectorError as exc:
            raise bad_request(str(exc)) from exc
        items = [
            self._as_list_item(rtype, obj)
            for obj in self.store.list(rtype.key, namespace if rtype.namespaced else None)
            if labels_ok(obj["metadata"].get("labels") or {}) and fields_ok(obj)
        ]
        return {
            "kind": resources.list_kind(rtype),
            "apiVersion": rtype.group_version,
            "metadata": {"resourceVersion": str(self.store.revision)},
            "items": items,
        }

    @staticmethod
    def _as_list_item(rtype: ResourceType, obj: dict) -> dict:
        # The real server leaves kind/apiVersion out of built-in list items, not out of custom ones.
        if not rtype.custom:
            obj.pop("kind", None)
            obj.pop("apiVersion", None)
        return obj

    # -- writes ---------------------------------------------------------------------------------
    def create(self, rtype: ResourceType, namespace: str, body: dict, opts: Options) -> dict:
        with self._write_lock:
            obj = self._new_object(rtype, namespace, body, opts)
            return self._insert(rtype, obj, opts)

    def replace(self, rtype: ResourceType, namespace: str, name: str, body: dict, opts: Options, sub: str = "") -> dict:
        with self._write_lock:
            current = self.get(rtype, namespace, name)
            self._check_identity(rtype, namespace, name, body)
            wanted = body.get("metadata", {}).get("resourceVersion")
            if wanted and wanted != current["metadata"]["resourceVersion"]:
                raise conflict(rtype.plural, rtype.group, name)
            return self._update(rtype, current, copy.deepcopy(body), opts, sub)

    def patch(
        self,
        rtype: ResourceType,
        namespace: str,
        name: str,
        content_type: str,
        raw: bytes,
        opts: Options,
        sub: str = "",
    ) -> tuple[int, dict]:
        with self._write_lock:
            if content_type == APPLY_PATCH:
                return self._server_side_apply(rtype, namespace, name, raw, opts)
            current = self.get(rtype, namespace, name)
            try:
                body = json.loads(raw or b"null")
            except json.JSONDecodeError as exc:
                raise bad_request(f"error decoding patch: {exc}") from exc
            if content_type != JSON_PATCH and not isinstance(body, dict):
                raise bad_request("the body of the request was in an unknown format")
            source = self._view(rtype, current, sub)
            try:
                if content_type == JSON_PATCH:
                    patched = patch.json_patch(source, body)
                elif content_type == MERGE_PATCH:
                    patched = patch.merge_patch(source, body)
                elif content_type == STRATEGIC_PATCH:
                    if rtype.custom:
                        raise ApiError(
                            415,
                            "UnsupportedMediaType",
                            "the body of the request was in an unknown format - accepted media types "
                            "include: application/json-patch+json, application/merge-patch+json, "
                            "application/apply-patch+yaml",
                        )
                    patched = patch.strategic_merge(source, body)
                else:
                    raise ApiError(415, "UnsupportedMediaType", f"unsupported media type {content_type}")
            except patch.PatchError as exc:
                raise ApiError(422, "Invalid", str(exc)) from exc
            wanted = (body.get("metadata") or {}).get("resourceVersion") if isinstance(body, dict) else None
            if wanted and wanted != current["metadata"]["resourceVersion"]:
                raise conflict(rtype.plural, rtype.group, name)
            if sub == "scale":
                return 200, self._scale_view(rtype, self._set_replicas(rtype, current, patched, opts))
            patched.setdefault("metadata", {})["resourceVersion"] = current["metadata"]["resourceVersion"]
            return 200, self._update(rtype, current, patched, opts, sub)

    def delete(self, rtype: ResourceType, namespace: str, name: str, options: dict, opts: Options) -> dict:
        with self._write_lock:
            current = self.get(rtype, namespace, name)
            preconditions = options.get("preconditions") or {}
            if preconditions.get("uid") and preconditions["uid"] != current["metadata"]["uid"]:
                raise conflict(rtype.plural, rtype.group, name)
            if opts.dry_run:
                return current
            policy = options.get("propagationPolicy") or ("Orphan" if options.get("orphanDependents") else "Background")
            return self._delete_object(rtype, current, policy)

    def delete_collection(
        self, rtype: ResourceType, namespace: str | None, label_selector: str | None, opts: Options
    ) -> dict:
        listing = self.list(rtype, namespace, label_selector)
        for item in listing["items"]:
            meta = item["metadata"]
            if not opts.dry_run:
                current = self.store.get(rtype.key, meta.get("namespace", ""), meta["name"])
                if current is not None:
                    self._delete_object(rtype, current, "Background")
        return listing

    # -- subresources ---------------------------------------------------------------------------
    def get_subresource(self, rtype: ResourceType, namespace: str, name: str, sub: str) -> dict:
        self._require_sub(rtype, sub)
        current = self.get(rtype, namespace, name)
        return self._scale_view(rtype, current) if sub == "scale" else current

    def replace_subresource(
        self, rtype: ResourceType, namespace: str, name: str, sub: str, body: dict, opts: Options
    ) -> dict:
        self._require_sub(rtype, sub)
        if sub == "scale":
            with self._write_lock:
                current = self.get(rtype, namespace, name)
                return self._scale_view(rtype, self._set_replicas(rtype, current, body, opts))
        return self.replace(rtype, namespace, name, body, opts, sub)

    def evict(self, namespace: str, name: str, body: dict, opts: Options) -> dict:
        pods = resources.BUILTIN[2]
        with self._write_lock:
            pod = self.get(pods, namespace, name)
            for pdb in self.store.list("poddisruptionbudgets.policy", namespace):
                if not selectors.match_label_selector(
                    pdb.get("spec", {}).get("selector"), pod["metadata"].get("labels") or {}
                ):
                    continue
                healthy, needed = self._budget(pdb)
                if healthy - 1 < needed and _is_ready(pod):
                    raise ApiError(
                        429,
                        "TooManyRequests",
                        "Cannot evict pod as it would violate the pod's disruption budget.",
                        {
                            "causes": [
                                {
                                    "reason": "DisruptionBudget",
                                    "message": (
                                        f"The disruption budget {pdb['metadata']['name']} needs {needed} "
                                        f"healthy pods and has {healthy} currently"
                                    ),
                                }
                            ]
                        },
                    )
            if not opts.dry_run:
                self._delete_object(pods, pod, "Background")
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}

    def _budget(self, pdb: dict) -> tuple[int, int]:
        spec = pdb.get("spec", {})
        namespace = pdb["metadata"]["namespace"]
        matching = [
            p
            for p in self.store.list("pods", namespace)
            if selectors.match_label_selector(spec.get("selector"), p["metadata"].get("labels") or {})
            and not p["metadata"].get("deletionTimestamp")
        ]
        healthy = sum(1 for p in matching if _is_ready(p))
        total = len(matching)
        if "minAvailable" in spec:
            needed = _scaled(spec["minAvailable"], total, round_up=True)
        else:
            needed = total - _scaled(spec.get("maxUnavailable", 0), total, round_up=True)
        return healthy, needed

    # -- internals ------------------------------------------------------------------------------
    def _require_sub(self, rtype: ResourceType, sub: str) -> None:
        if sub not in rtype.subresources:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")

    def _check_identity(self, rtype: ResourceType, namespace: str, name: str, body: dict) -> None:
        meta = body.get("metadata") or {}
        if meta.get("name") and meta["name"] != name:
            raise bad_request("the name of the object does not match the name on the URL")
        if rtype.namespaced and meta.get("namespace") and meta["namespace"] != namespace:
            raise bad_request("the namespace of the object does not match the namespace on the request")

    def _new_object(self, rtype: ResourceType, namespace: str, body: dict, opts: Options) -> dict:
        obj = copy.deepcopy(body)
        if not isinstance(obj, dict):
            raise bad_request("the body of the request was in an unknown format")
        obj.setdefault("apiVersion", rtype.group_version)
        obj.setdefault("kind", rtype.kind)
        if obj["apiVersion"] != rtype.group_version or obj["kind"] != rtype.kind:
            raise bad_request(
                f"the API version in the data ({obj['apiVersion']}) does not match the expected API "
                f"version ({rtype.group_version})"
                if obj["apiVersion"] != rtype.group_version
                else f"the kind in the data ({obj['kind']}) does not match the URL ({rtype.kind})"
            )
        meta = obj.setdefault("metadata", {})
        if not meta.get("name"):
            if not meta.get("generateName"):
                raise invalid(
                    rtype.kind,
                    rtype.group,
                    "",
                    [
                        {
                            "reason": "FieldValueRequired",
                            "message": "Required value: name or generateName is required",
                            "field": "metadata.name",
                        }
                    ],
                )
            meta["name"] = meta["generateName"] + secrets.token_hex(3)[:5]
        if rtype.namespaced:
            meta["namespace"] = meta.get("namespace") or namespace or "default"
            if namespace and meta["namespace"] != namespace:
                raise bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            ns = self.store.get("namespaces", "", meta["namespace"])
            if ns is None:
                raise not_found("namespaces", "", meta["namespace"])
            if ns.get("status", {}).get("phase") == "Terminating":
                raise ApiError(
                    403,
                    "Forbidden",
                    f'{rtype.plural} "{meta["name"]}" is forbidden: unable to '
                    f"create new content in namespace {meta['namespace']} because it is being "
                    "terminated",
                )
        else:
            meta.pop("namespace", None)
        for key in ("resourceVersion", "uid", "creationTimestamp", "deletionTimestamp", "generation"):
            meta.pop(key, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now()
        if "status" in rtype.subresources:
            obj.pop("status", None)
            defaults.initial_status(obj)
        if _has_spec(obj):
            meta["generation"] = 1
        self._admit(rtype, obj, opts)
        return obj

    def _insert(self, rtype: ResourceType, obj: dict, opts: Options) -> dict:
        meta = obj["metadata"]
        if self.store.get(rtype.key, meta.get("namespace", ""), meta["name"]) is not None:
            raise already_exists(rtype.plural, rtype.group, meta["name"])
        if opts.dry_run:
            return obj
        meta["resourceVersion"] = self.store.next_revision()
        return self.store.put(rtype.key, obj, "ADDED")

    def _admit(self, rtype: ResourceType, obj: dict, opts: Options) -> None:
        """Decode check, unknown fields, defaults, then validation: in the real server's order."""
        verdict = validation.check(obj, self.kubernetes_version)
        name = obj["metadata"].get("name", "")
        if verdict.decode_errors:
            raise bad_request(
                f'{rtype.kind} in version "{rtype.version}" cannot be handled as a {rtype.kind}: '
                f"{verdict.decode_errors[0]}"
            )
        if verdict.unknown_fields:
            names = [_dotted(path, extra) for path, extra in verdict.unknown_fields]
            if opts.field_validation == "Strict":
                raise bad_request("strict decoding error: " + ", ".join(f'unknown field "{n}"' for n in names))
            if opts.field_validation == "Warn":
                opts.warnings.extend(f'unknown field "{n}"' for n in names)
            validation.drop_unknown(obj, verdict.unknown_fields)
        defaults.apply_defaults(obj)
        causes = verdict.causes + _semantic_causes(obj)
        if causes:
            raise invalid(rtype.kind, rtype.group, name, causes)

    def _view(self, rtype: ResourceType, obj: dict, sub: str) -> dict:
        return self._scale_view(rtype, obj) if sub == "scale" else obj

    def _update(self, rtype: ResourceType, current: dict, new: dict, opts: Options, sub: str) -> dict:
        meta = new.setdefault("metadata", {})
        old_meta = current["metadata"]
        for key in ("uid", "creationTimestamp", "name", "namespace", "deletionTimestamp"):
            if key in old_meta:
                meta[key] = old_meta[key]
            else:
                meta.pop(key, None)
        meta["resourceVersion"] = old_meta["resourceVersion"]
        new["apiVersion"], new["kind"] = current["apiVersion"], current["kind"]
        if sub == "status":
            status = new.get("status")
            new = copy.deepcopy(current)
            meta = new["metadata"]  # the status subresource ignores the body's metadata, not the new revision
            if status is None:
                new.pop("status", None)
            else:
                new["status"] = status
        elif "status" in rtype.subresources:
            if "status" in current:
                new["status"] = copy.deepcopy(current["status"])
            else:
                new.pop("status", None)
        if "generation" in old_meta:
            meta["generation"] = old_meta["generation"]
        if sub != "status":
            self._admit(rtype, new, opts)
        if _spec_of(new) != _spec_of(current) and "generation" in old_meta:
            meta["generation"] = old_meta["generation"] + 1
        if new == current:
            return current
        if opts.dry_run:
            return new
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            self._delete_object(rtype, new, "Background")
            return new
        meta["resourceVersion"] = self.store.next_revision()
        return self.store.put(rtype.key, new, "MODIFIED")

    def _delete_object(self, rtype: ResourceType, obj: dict, policy: str) -> dict:
        meta = obj["metadata"]
        namespace = meta.get("namespace", "")
        if meta.get("finalizers"):
            if not meta.get("deletionTimestamp"):
                meta["deletionTimestamp"] = now()
                meta["deletionGracePeriodSeconds"] = 0
                meta["resourceVersion"] = self.store.next_revision()
                self.store.put(rtype.key, obj, "MODIFIED")
            return obj
        if rtype.kind == "Namespace":
            self._empty_namespace(meta["name"])
        removed = self.store.remove(rtype.key, namespace, meta["name"]) or obj
        self._collect_dependents(meta["uid"], policy)
        return removed

    def _empty_namespace(self, namespace: str) -> None:
        for rtype in self.types():
            if not rtype.namespaced:
                continue
            for obj in self.store.list(rtype.key, namespace):
                obj["metadata"].pop("finalizers", None)
                self._delete_object(rtype, obj, "Background")

    def _collect_dependents(self, owner_uid: str, policy: str) -> None:
        """Garbage collection of objects whose ownerReferences name the deleted owner."""
        seen: set[str] = set()
        for rtype in self.types():
            if rtype.key in seen:
                continue
            seen.add(rtype.key)
            for obj in self.store.list(rtype.key):
                refs = obj["metadata"].get("ownerReferences") or []
                if not any(ref.get("uid") == owner_uid for ref in refs):
                    continue
                remaining = [ref for ref in refs if ref.get("uid") != owner_uid]
                if policy == "Orphan" or remaining:
                    obj["metadata"]["ownerReferences"] = remaining
                    if not remaining:
                        obj["metadata"].pop("ownerReferences")
                    obj["metadata"]["resourceVersion"] = self.store.next_revision()
                    self.store.put(rtype.key, obj, "MODIFIED")
                else:
                    self._delete_object(rtype, obj, "Background")

    # -- scale ----------------------------------------------------------------------------------
    def _scale_view(self, rtype: ResourceType, obj: dict) -> dict:
        meta = obj["metadata"]
        selector = (obj.get("spec") or {}).get("selector") or {}
        match = selector.get("matchLabels", {}) if isinstance(selector, dict) else {}
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp") if k in meta
            },
            "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 0)},
            "status": {
                "replicas": (obj.get("status") or {}).get("replicas", 0),
                "selector": ",".join(f"{k}={v}" for k, v in sorted(match.items())),
            },
        }

    def _set_replicas(self, rtype: ResourceType, current: dict, scale: dict, opts: Options) -> dict:
        replicas = (scale.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or replicas < 0:
            raise invalid(
                "Scale",
                "autoscaling",
                current["metadata"]["name"],
                [
                    {
                        "reason": "FieldValueInvalid",
                        "message": f"Invalid value: {replicas}: must be greater than or equal to 0",
                        "field": "spec.replicas",
                    }
                ],
            )
        new = copy.deepcopy(current)
        new["spec"]["replicas"] = replicas
        return self._update(rtype, current, new, opts, "")

    # -- server-side apply ----------------------------------------------------------------------
    def _server_side_apply(
        self, rtype: ResourceType, namespace: str, name: str, raw: bytes, opts: Options
    ) -> tuple[int, dict]:
        if not opts.field_manager:
            raise bad_request("PATCH requests with apply content type must specify a fieldManager")
        try:
            applied = yaml.safe_load(raw or b"{}")
        except yaml.YAMLError as exc:
            raise bad_request(f"error decoding YAML: {exc}") from exc
        if not isinstance(applied, dict):
            raise bad_request("the body of the request was in an unknown format")
        applied.setdefault("metadata", {})
        if applied["metadata"].get("name", name) != name:
            raise bad_request("the name of the object does not match the name on the URL")
        applied["metadata"]["name"] = name
        fields = patch.field_set({k: v for k, v in applied.items() if k != "status"})
        fields.get("f:metadata", {}).pop("f:name", None)
        fields.get("f:metadata", {}).pop("f:namespace", None)
        current = self.store.get(rtype.key, namespace if rtype.namespaced else "", name)
        if current is None:
            obj = self._new_object(rtype, namespace, applied, opts)
            obj["metadata"]["managedFields"] = [self._managed_entry(rtype, opts.field_manager, fields)]
            return 201, self._insert(rtype, obj, opts)
        managers = current["metadata"].get("managedFields") or []
        mine = next((m for m in managers if m["manager"] == opts.field_manager and m.get("operation") == "Apply"), None)
        new_paths = patch.leaf_paths(fields)
        others = [m for m in managers if m is not mine]
        conflicts = sorted(
            (m["manager"], path)
            for m in others
            for path in patch.leaf_paths(m.get("fieldsV1") or {}) & new_paths
            if patch.value_at(current, path) != patch.value_at(applied, path)
        )
        if conflicts and not opts.force:
            listed = "\n".join(f'- conflict with "{mgr}": {patch.format_path(p)}' for mgr, p in conflicts)
            raise ApiError(
                409,
                "Conflict",
                f"Apply failed with {len(conflicts)} conflict{'s' if len(conflicts) > 1 else ''}: {listed}",
                {
                    "causes": [
                        {
                            "reason": "FieldManagerConflict",
                            "message": f'conflict with "{mgr}"',
                            "field": patch.format_path(p),
                        }
                        for mgr, p in conflicts
                    ]
                },
            )
        merged = patch.strategic_merge(current, {k: v for k, v in applied.items() if k != "status"})
        owned_by_others = set().union(*(patch.leaf_paths(m.get("fieldsV1") or {}) for m in others))
        previous = patch.leaf_paths(mine.get("fieldsV1") or {}) if mine else set()
        for dropped in sorted(previous - new_paths - owned_by_others, key=len, reverse=True):
            patch.remove_path(merged, dropped)
        taken = {path for _, path in conflicts}
        new_managers = [
            {**m, "fieldsV1": _fields_from_paths(patch.leaf_paths(m.get("fieldsV1") or {}) - taken)} if taken else m
            for m in others
        ]
        entry = (
            mine if mine and mine.get("fieldsV1") == fields else self._managed_entry(rtype, opts.field_manager, fields)
        )
        new_managers.append(entry)
        merged["metadata"]["managedFields"] = sorted(new_managers, key=lambda m: m["manager"])
        return 200, self._update(rtype, current, merged, opts, "")

    @staticmethod
    def _managed_entry(rtype: ResourceType, manager: str, fields: dict) -> dict:
        return {
            "manager": manager,
            "operation": "Apply",
            "apiVersion": rtype.group_version,
            "time": now(),
            "fieldsType": "FieldsV1",
            "fieldsV1": fields,
        }


def _fields_from_paths(paths: set[tuple[str, ...]]) -> dict:
    tree: dict = {}
    for path in paths:
        node = tree
        for step in path:
            node = node.setdefault(step, {})
    return tree


def _dotted(path: list, extra: str) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return f"{out}.{extra}" if out else extra


def _has_spec(obj: dict) -> bool:
    return "spec" in obj


def _spec_of(obj: dict) -> dict:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


def _is_ready(pod: dict) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


def _scaled(value: int | str, total: int, round_up: bool) -> int:
    if isinstance(value, str) and value.endswith("%"):
        fraction = int(value[:-1]) * total
        return -(-fraction // 100) if round_up else fraction // 100
    return int(value)


def _semantic_causes(obj: dict) -> list[dict]:
    """The validation rules the schemas cannot express, for the kinds the toolkit writes."""
    causes: list[dict] = []
    kind = obj.get("kind")
    spec = obj.get("spec") or {}
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"):
        selector = spec.get("selector")
        labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        if not selector:
            causes.append({"reason": "FieldValueRequired", "message": "Required value", "field": "spec.selector"})
        elif not selectors.match_label_selector(selector, labels):
            causes.append(
                {
                    "reason": "FieldValueInvalid",
                    "message": f"Invalid value: {json.dumps(labels)}: `selector` does not match template `labels`",
                    "field": "spec.template.metadata.labels",
                }
            )
        pod_spec = (spec.get("template") or {}).get("spec") or {}
        causes.extend(_container_causes(pod_spec, "spec.template.spec"))
    elif kind == "Pod":
        causes.extend(_container_causes(spec, "spec"))
    return causes


def _container_causes(pod_spec: dict, where: str) -> list[dict]:
    causes = []
    containers = pod_spec.get("containers") or []
    if not containers:
        causes.append({"reason": "FieldValueRequired", "message": "Required value", "field": f"{where}.containers"})
    for i, container in enumerate(containers):
        if not container.get("image"):
            causes.append(
                {"reason": "FieldValueRequired", "message": "Required value", "field": f"{where}.containers[{i}].image"}
            )
    return causes
