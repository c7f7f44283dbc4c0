"""Talos configuration patches: strategic merge (with `$patch: delete`), as configpatcher does it.

Documents merge by identity (apiVersion, kind, name); inside a document maps merge
recursively, scalars are replaced and lists are appended, except the few lists Talos
overwrites or merges by a key. `$patch: delete` removes a field, a list item (matched by
its other keys) or a whole document; deleting something absent is an error.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import yaml

from lab.talos.machineconfig import Document, clone, document_id

DELETE_MARKER = "$patch"

_OVERWRITTEN_LISTS = {
    ("/v1alpha1", ("cluster", "network", "podSubnets")),
    ("/v1alpha1", ("cluster", "network", "serviceSubnets")),
}
_KEYED_LISTS = {
    ("machine", "network", "interfaces"): ("interface", "deviceSelector"),
    ("machine", "network", "interfaces", "vlans"): ("vlanId",),
    ("configFiles",): ("mountPath",),
}


class PatchError(Exception):
    """A patch that cannot be loaded or applied; the message is what talosctl prints."""


@dataclass(frozen=True)
class StrategicPatch:
    documents: list[Document]


@dataclass(frozen=True)
class JsonPatch:
    """RFC 6902 operations, which Talos applies to the v1alpha1 document of a single-document config."""

    operations: list[dict[str, Any]]


Patch = StrategicPatch | JsonPatch


def load_patch(text: str) -> Patch:
    """Parse one `--patch` value: a strategic merge patch (YAML/JSON documents) or a JSON patch (a list)."""
    try:
        loaded = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as exc:
        raise PatchError(f"failed to decode patch: {exc}") from exc
    if len(loaded) == 1 and isinstance(loaded[0], list):
        return _json_patch(loaded[0])
    if not loaded or not all(isinstance(doc, dict) for doc in loaded):
        raise PatchError(f"failed to decode patch: expected a YAML mapping, got {json.dumps(loaded)[:80]}")
    return StrategicPatch([_as_config_document(doc) for doc in loaded])


def _json_patch(operations: list[Any]) -> JsonPatch:
    for operation in operations:
        if not isinstance(operation, dict) or "op" not in operation or "path" not in operation:
            raise PatchError(f"failed to decode patch: invalid JSON patch operation {json.dumps(operation)}")
        if operation["op"] not in {"add", "remove", "replace", "test"}:
            raise PatchError(f"Unexpected kind: {operation['op']}")
    return JsonPatch(operations)


def _as_config_document(doc: Document) -> Document:
    if "kind" in doc or "version" in doc:
        return doc
    return {"version": "v1alpha1", **doc}


def apply_patches(docs: list[Document], patches: list[Patch]) -> list[Document]:
    result = clone(docs)
    for patch in patches:
        if isinstance(patch, JsonPatch):
            result = _apply_json_patch(result, patch)
        else:
            result = _merge_documents(result, clone(patch.documents))
    return result


def _apply_json_patch(docs: list[Document], patch: JsonPatch) -> list[Document]:
    if len(docs) != 1 or document_id(docs[0]) != "/v1alpha1":
        raise PatchError("JSON6902 patches are not supported for multi-document machine configuration")
    doc = docs[0]
    for operation in patch.operations:
        _json_operation(doc, operation)
    return [doc]


def _json_operation(doc: Document, operation: dict[str, Any]) -> None:
    op, path = operation["op"], str(operation["path"])
    *parents, last = _pointer(path)
    container: Any = doc
    for token in parents:
        container = _step(container, token, op, path)
    if op == "test":
        if _step(container, last, op, path) != operation.get("value"):
            raise PatchError(f"testing value {path} failed: test failed")
    elif op == "remove":
        _step(container, last, op, path)
        del container[int(last) if isinstance(container, list) else last]
    elif isinstance(container, list):
        index = len(container) if last == "-" else int(last)
        if op == "replace":
            _step(container, last, op, path)
            container[index] = operation.get("value")
        else:
            container.insert(index, operation.get("value"))
    else:
        if op == "replace":
            _step(container, last, op, path)
        container[last] = operation.get("value")


def _pointer(path: str) -> list[str]:
    if not path.startswith("/"):
        raise PatchError(f'add operation does not apply: doc is missing path: "{path}": missing value')
    return [token.replace("~1", "/").replace("~0", "~") for token in path[1:].split("/")]


def _step(container: Any, token: str, op: str, path: str) -> Any:
    try:
        if isinstance(container, list):
            return container[int(token)]
        return container[token]
    except (KeyError, IndexError, ValueError, TypeError):
        raise PatchError(f'{op} operation does not apply: doc is missing path: "{path}": missing value') from None


def _merge_documents(left: list[Document], right: list[Document]) -> list[Document]:
    index = {document_id(doc): doc for doc in left}
    for doc in right:
        ident = document_id(doc)
        if doc.get(DELETE_MARKER) == "delete":
            if ident not in index:
                raise PatchError(f"patch delete: document '{ident}' not found")
            left = [existing for existing in left if document_id(existing) != ident]
            del index[ident]
        elif ident in index:
            _merge_map(index[ident], doc, ident, ())
        else:
            _strip_deletes(doc, ident, ())
            left.append(doc)
            index[ident] = doc
    return left


def _merge_map(left: dict[str, Any], right: dict[str, Any], ident: str, path: tuple[str, ...]) -> None:
    for key, value in right.items():
        if key == DELETE_MARKER:
            continue
        here = (*path, key)
        if _is_delete(value):
            if key not in left:
                raise PatchError(_delete_error(ident, here))
            del left[key]
        elif isinstance(value, dict) and isinstance(left.get(key), dict):
            _merge_map(left[key], value, ident, here)
        elif isinstance(value, list) and isinstance(left.get(key), list):
            left[key] = _merge_list(left[key], value, ident, here)
        elif value is not None:
            _strip_deletes(value, ident, here)
            left[key] = value


def _merge_list(left: list[Any], right: list[Any], ident: str, path: tuple[str, ...]) -> list[Any]:
    if (ident, path) in _OVERWRITTEN_LISTS:
        return right
    merge_keys = _list_merge_keys(path)
    result = list(left)
    for item in right:
        if isinstance(item, dict) and item.get(DELETE_MARKER) == "delete":
            result = _delete_items(result, item, ident, path)
            continue
        match = _find_keyed(result, item, merge_keys)
        if match is not None:
            _merge_map(match, item, ident, path)
        else:
            _strip_deletes(item, ident, path)
            result.append(item)
    return result


def _list_merge_keys(path: tuple[str, ...]) -> tuple[str, ...]:
    for suffix, keys in _KEYED_LISTS.items():
        if path[-len(suffix) :] == suffix:
            return keys
    return ()


def _find_keyed(items: list[Any], item: Any, keys: tuple[str, ...]) -> dict[str, Any] | None:
    if not isinstance(item, dict):
        return None
    for key in keys:
        if key in item:
            return next((x for x in items if isinstance(x, dict) and x.get(key) == item[key]), None)
    return None


def _delete_items(items: list[Any], selector: dict[str, Any], ident: str, path: tuple[str, ...]) -> list[Any]:
    wanted = {key: value for key, value in selector.items() if key != DELETE_MARKER}
    kept = [item for item in items if not _selected(item, wanted)]
    if len(kept) == len(items):
        raise PatchError(_delete_error(ident, path))
    return kept


def _selected(item: Any, wanted: dict[str, Any]) -> bool:
    return isinstance(item, dict) and all(item.get(key) == value for key, value in wanted.items())


def _is_delete(value: Any) -> bool:
    return isinstance(value, dict) and value.get(DELETE_MARKER) == "delete" and len(value) == 1


def _strip_deletes(value: Any, ident: str, path: tuple[str, ...]) -> None:
    """A delete directive aimed at something the left side does not have."""
    for found in _delete_directives(value, path):
        raise PatchError(_delete_error(ident, found))


def _delete_directives(value: Any, path: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
    if isinstance(value, dict):
        if value.get(DELETE_MARKER) == "delete":
            yield path
        for key, child in value.items():
            yield from _delete_directives(child, (*path, key))
    elif isinstance(value, list):
        for child in value:
            yield from _delete_directives(child, path)


def _delete_error(ident: str, path: tuple[str, ...]) -> str:
    return f"patch delete: path '{'.'.join(path)}' in document '{ident}': failed to delete: not found"
