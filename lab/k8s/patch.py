"""The four PATCH flavours of the Kubernetes API: JSON patch, merge patch, strategic merge, apply."""

from __future__ import annotations

import copy
import json
from typing import Any


class PatchError(ValueError):
    """A patch that cannot be applied (the API answers 422 or 400)."""


# patchMergeKey of the list fields the toolkit and the legacy stack touch (from the Kubernetes API
# types' `patchStrategy:"merge" patchMergeKey:...` tags). Lists not named here are replaced whole, as
# the real server does for atomic lists such as `tolerations` and `args`.
MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "ownerReferences": "uid",
    "conditions": "type",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
    "ephemeralContainerStatuses": "name",
    "containerStatuses": "name",
    "initContainerStatuses": "name",
}
# Lists of scalars with patchStrategy "merge": the patch's items are added to the live ones.
MERGED_SCALAR_LISTS = {"finalizers"}


def _port_merge_key(items: list) -> str:
    """`ports` merges on containerPort in containers and on port in a Service."""
    for item in items:
        if isinstance(item, dict) and "containerPort" in item:
            return "containerPort"
    return "port"


def merge_key_for(field: str, items: list) -> str | None:
    if field == "ports":
        return _port_merge_key(items)
    return MERGE_KEYS.get(field)


# -- RFC 7386 -------------------------------------------------------------------------------------
def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# -- strategic merge ------------------------------------------------------------------------------
def strategic_merge(target: Any, patch: Any, field: str = "") -> Any:
    if isinstance(patch, dict):
        return _merge_map(target if isinstance(target, dict) else {}, patch)
    if isinstance(patch, list):
        return _merge_list(target if isinstance(target, list) else [], patch, field)
    return copy.deepcopy(patch)


def _merge_map(target: dict, patch: dict) -> dict:
    directive = patch.get("$patch")
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if directive == "delete":
        return {}
    result = copy.deepcopy(target)
    retain = patch.get("$retainKeys")
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        if key.startswith("$setElementOrder/") or key.startswith("$deleteFromPrimitiveList/"):
            continue
        if value is None:
            result.pop(key, None)
        else:
            result[key] = strategic_merge(result.get(key), value, key)
    for key, value in patch.items():
        if key.startswith("$deleteFromPrimitiveList/"):
            name = key.split("/", 1)[1]
            result[name] = [v for v in result.get(name, []) if v not in value]
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _merge_list(target: list, patch: list, field: str) -> list:
    if field in MERGED_SCALAR_LISTS:
        return list(dict.fromkeys([*target, *patch]))
    if any(isinstance(item, dict) and item.get("$patch") == "replace" for item in patch):
        return [copy.deepcopy(i) for i in patch if not (isinstance(i, dict) and "$patch" in i)]
    key = merge_key_for(field, [*target, *patch])
    if key is None or not all(isinstance(item, dict) for item in patch):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target)
    for item in patch:
        if key not in item:
            raise PatchError(f"map: {item} does not contain declared merge key: {key}")
        index = next(
            (i for i, live in enumerate(result) if isinstance(live, dict) and live.get(key) == item[key]),
            None,
        )
        if item.get("$patch") == "delete":
            if index is not None:
                result.pop(index)
            continue
        if index is None:
            result.append(_merge_map({}, item))
        else:
            result[index] = _merge_map(result[index], item)
    return result


# -- RFC 6902 -------------------------------------------------------------------------------------
def json_patch(document: Any, operations: list) -> Any:
    if not isinstance(operations, list):
        raise PatchError("json patch must be a list of operations")
    doc = copy.deepcopy(document)
    for op in operations:
        doc = _apply_operation(doc, op)
    return doc


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _resolve(doc: Any, parts: list[str]) -> Any:
    for part in parts:
        if isinstance(doc, list):
            doc = doc[int(part)]
        elif isinstance(doc, dict) and part in doc:
            doc = doc[part]
        else:
            raise PatchError(f"path /{'/'.join(parts)} does not exist")
    return doc


def _apply_operation(doc: Any, op: dict) -> Any:
    kind = op.get("op")
    parts = _pointer(op.get("path", ""))
    if kind == "test":
        if _resolve(doc, parts) != op.get("value"):
            raise PatchError(f"testing value /{'/'.join(parts)} failed")
        return doc
    if kind in ("move", "copy"):
        source = _pointer(op["from"])
        value = copy.deepcopy(_resolve(doc, source))
        if kind == "move":
            doc = _remove(doc, source)
        return _add(doc, parts, value)
    if kind == "add":
        return _add(doc, parts, copy.deepcopy(op.get("value")))
    if kind == "remove":
        return _remove(doc, parts)
    if kind == "replace":
        _resolve(doc, parts)
        return _add(_remove(doc, parts), parts, copy.deepcopy(op.get("value")))
    raise PatchError(f"unknown json patch operation {kind!r}")


def _add(doc: Any, parts: list[str], value: Any) -> Any:
    if not parts:
        return value
    parent = _resolve(doc, parts[:-1])
    last = parts[-1]
    if isinstance(parent, list):
        index = len(parent) if last == "-" else int(last)
        if index > len(parent):
            raise PatchError("index out of range")
        parent.insert(index, value)
    elif isinstance(parent, dict):
        parent[last] = value
    else:
        raise PatchError(f"cannot add to /{'/'.join(parts[:-1])}")
    return doc


def _remove(doc: Any, parts: list[str]) -> Any:
    if not parts:
        return None
    parent = _resolve(doc, parts[:-1])
    last = parts[-1]
    try:
        if isinstance(parent, list):
            parent.pop(int(last))
        else:
            del parent[last]
    except (KeyError, IndexError, ValueError) as exc:
        raise PatchError(f"unable to remove nonexistent key /{'/'.join(parts)}") from exc
    return doc


# -- server-side apply field sets -----------------------------------------------------------------
def field_set(obj: Any, field: str = "") -> dict:
    """The fieldsV1 set of an applied configuration (`f:` keys, `k:` list items, `v:` scalars)."""
    if isinstance(obj, dict):
        return {f"f:{k}": field_set(v, k) for k, v in obj.items() if k not in ("apiVersion", "kind")}
    if isinstance(obj, list):
        key = merge_key_for(field, obj)
        if key and all(isinstance(i, dict) and key in i for i in obj):
            return {"k:" + json.dumps({key: i[key]}, separators=(",", ":")): field_set(i) for i in obj}
        if field in MERGED_SCALAR_LISTS:
            return {"v:" + json.dumps(i): {} for i in obj}
    return {}


def leaf_paths(fields: dict, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    paths: set[tuple[str, ...]] = set()
    for key, sub in fields.items():
        path = (*prefix, key)
        if sub:
            paths |= leaf_paths(sub, path)
        else:
            paths.add(path)
    return paths


def value_at(obj: Any, path: tuple[str, ...]) -> Any:
    """Follow a fieldsV1 path through an object; `_MISSING` where it does not exist."""
    for step in path:
        kind, _, rest = step.partition(":")
        if kind == "f" and isinstance(obj, dict) and rest in obj:
            obj = obj[rest]
        elif kind == "k" and isinstance(obj, list):
            wanted = json.loads(rest)
            obj = next((i for i in obj if all(i.get(k) == v for k, v in wanted.items())), _MISSING)
            if obj is _MISSING:
                return _MISSING
        elif kind == "v" and isinstance(obj, list):
            return json.loads(rest) if json.loads(rest) in obj else _MISSING
        else:
            return _MISSING
    return obj


def remove_path(obj: Any, path: tuple[str, ...]) -> None:
    """Remove the field a fieldsV1 path names (a field dropped from an applied configuration)."""
    *parents, last = path
    for step in parents:
        obj = value_at(obj, (step,))
        if obj is _MISSING:
            return
    kind, _, rest = last.partition(":")
    if kind == "f" and isinstance(obj, dict):
        obj.pop(rest, None)
    elif kind == "k" and isinstance(obj, list):
        wanted = json.loads(rest)
        obj[:] = [i for i in obj if not all(i.get(k) == v for k, v in wanted.items())]
    elif kind == "v" and isinstance(obj, list):
        value = json.loads(rest)
        obj[:] = [i for i in obj if i != value]


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING = _Missing()
MISSING = _MISSING


def format_path(path: tuple[str, ...]) -> str:
    out = ""
    for step in path:
        kind, _, rest = step.partition(":")
        out += f".{rest}" if kind == "f" else f"[{rest}]"
    return out
