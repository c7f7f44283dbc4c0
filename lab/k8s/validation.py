"""Objects checked against the official Kubernetes schemas (kubernetes-validate's JSON schemas).

Errors are classified the way the real API server reports them: a value of the wrong type fails
decoding (400 BadRequest), an unknown field follows `fieldValidation` (Strict: 400, Warn: dropped
with a warning, Ignore: dropped), a missing required field or an unsupported value is 422 Invalid.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from importlib import resources

import jsonschema
import kubernetes_validate
from referencing import Registry, Resource

_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# Kinds whose names must be DNS-1123 labels rather than subdomains.
_LABEL_NAMED = {"Namespace", "Service", "Pod"}
_NAME_EXEMPT = {"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}


@dataclass
class Verdict:
    """What the server makes of an object: decode errors, unknown fields, invalid fields."""

    decode_errors: list[str] = field(default_factory=list)
    unknown_fields: list[tuple[list, str]] = field(default_factory=list)
    causes: list[dict] = field(default_factory=list)


def _schema_dir(version: str) -> str:
    wanted = tuple(int(p) for p in version.lstrip("v").split(".")[:2])
    root = resources.files(kubernetes_validate) / "kubernetes-json-schema"
    found = sorted(
        tuple(int(p) for p in entry.name[1:].split("-")[0].split(".")[:2])
        for entry in root.iterdir()
        if entry.name.endswith("-local-strict")
    )
    best = [v for v in found if v <= wanted][-1]
    return f"v{best[0]}.{best[1]}.0-local-strict"


@functools.lru_cache(maxsize=4)
def _definitions(schema_dir: str) -> Resource:
    path = resources.files(kubernetes_validate) / "kubernetes-json-schema" / schema_dir / "_definitions.json"
    return Resource.from_contents(json.loads(path.read_text()))


@functools.lru_cache(maxsize=256)
def _validator(schema_dir: str, kind: str, api_version: str) -> jsonschema.protocols.Validator | None:
    short_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    path = (
        resources.files(kubernetes_validate)
        / "kubernetes-json-schema"
        / schema_dir
        / f"{kind.lower()}-{short_version}.json"
    )
    if not path.is_file():
        return None
    schema = json.loads(path.read_text())
    registry = Resource.from_contents(schema) @ Registry()
    registry = _definitions(schema_dir) @ registry
    return jsonschema.validators.Draft202012Validator(schema, registry=registry)


def _field_path(parts) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _walk_errors(errors):
    for error in errors:
        if error.context:
            # anyOf/oneOf (int-or-string): report the branch that got furthest.
            best = max(error.context, key=lambda e: len(e.absolute_path))
            yield from _walk_errors([best])
        else:
            yield error


def check(obj: dict, version: str) -> Verdict:
    verdict = Verdict()
    kind, api_version = obj.get("kind", ""), obj.get("apiVersion", "")
    validator = _validator(_schema_dir(version), kind, api_version)
    if validator is not None:
        for error in _walk_errors(validator.iter_errors(obj)):
            _classify(error, verdict)
    _check_name(obj, verdict)
    _check_metadata_keys(obj, verdict)
    return verdict


def _classify(error: jsonschema.ValidationError, verdict: Verdict) -> None:
    path = list(error.absolute_path)
    where = _field_path(path)
    if error.validator == "additionalProperties":
        known = set(error.schema.get("properties", {}))
        for extra in sorted(set(error.instance) - known):
            verdict.unknown_fields.append((path, extra))
    elif error.validator == "required":
        missing = re.findall(r"'([^']+)' is a required property", error.message)
        name = missing[0] if missing else "?"
        full = f"{where}.{name}" if where else name
        verdict.causes.append({"reason": "FieldValueRequired", "message": "Required value", "field": full})
    elif error.validator == "enum":
        supported = ", ".join(json.dumps(v) for v in error.validator_value if v is not None)
        verdict.causes.append(
            {
                "reason": "FieldValueNotSupported",
                "message": f"Unsupported value: {json.dumps(error.instance)}: supported values: {supported}",
                "field": where,
            }
        )
    elif error.validator == "type":
        expected = error.validator_value
        verdict.decode_errors.append(
            f"json: cannot unmarshal {_json_type(error.instance)} into Go struct field {where} of type {expected}"
        )
    else:
        verdict.causes.append(
            {"reason": "FieldValueInvalid", "message": f"Invalid value: {error.message}", "field": where}
        )


def _json_type(value) -> str:
    return {str: "string", bool: "bool", int: "number", float: "number", list: "array", dict: "object"}.get(
        type(value), "null"
    )


_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def _key_problem(key: str) -> str | None:
    """Why a label or annotation key is not a qualified name (prefix/name), or None."""
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _DNS1123_SUBDOMAIN.match(prefix)):
        return (
            "prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'"
        )
    if not name or len(name) > 63 or not _QUALIFIED_NAME.match(name):
        return (
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
            "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
            "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
        )
    return None


def _check_metadata_keys(obj: dict, verdict: Verdict) -> None:
    meta = obj.get("metadata") or {}
    for kind in ("labels", "annotations"):
        for key, value in (meta.get(kind) or {}).items():
            problem = _key_problem(key)
            if problem:
                verdict.causes.append(
                    {
                        "reason": "FieldValueInvalid",
                        "message": f'Invalid value: "{key}": {problem}',
                        "field": f"metadata.{kind}",
                    }
                )
            elif kind == "labels" and (len(str(value)) > 63 or not _LABEL_VALUE.match(str(value))):
                verdict.causes.append(
                    {
                        "reason": "FieldValueInvalid",
                        "message": f'Invalid value: "{value}": a valid label must be an '
                        "empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end "
                        "with an alphanumeric character",
                        "field": "metadata.labels",
                    }
                )


def _check_name(obj: dict, verdict: Verdict) -> None:
    meta = obj.get("metadata") or {}
    name = meta.get("name")
    kind = obj.get("kind", "")
    if not name or kind in _NAME_EXEMPT:
        return
    pattern = _DNS1123_LABEL if kind in _LABEL_NAMED else _DNS1123_SUBDOMAIN
    if len(name) > 253 or not pattern.match(name):
        rule = "RFC 1123 label" if kind in _LABEL_NAMED else "RFC 1123 subdomain"
        verdict.causes.append(
            {
                "reason": "FieldValueInvalid",
                "message": (
                    f'Invalid value: "{name}": a lowercase {rule} must consist of lower case '
                    "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric "
                    "character"
                ),
                "field": "metadata.name",
            }
        )


def drop_unknown(obj: dict, unknown: list[tuple[list, str]]) -> None:
    for path, name in unknown:
        target = obj
        for part in path:
            target = target[part]
        target.pop(name, None)
