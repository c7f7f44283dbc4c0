"""Label and field selectors, parsed as the API server parses its query parameters."""

from __future__ import annotations

import re
from collections.abc import Callable

Matcher = Callable[[dict], bool]

_SET_EXPR = re.compile(r"^\s*(!?)\s*([\w./-]+)\s*(?:(in|notin)\s*\(([^)]*)\))?\s*$")
_EQ_EXPR = re.compile(r"^\s*([\w./-]+)\s*(==|=|!=)\s*([\w./-]*)\s*$")


class SelectorError(ValueError):
    pass


def _split_terms(selector: str) -> list[str]:
    terms, depth, current = [], 0, ""
    for char in selector:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += char
    if current.strip():
        terms.append(current)
    return [t for t in terms if t.strip()]


def label_matcher(selector: str | None) -> Matcher:
    if not selector:
        return lambda _labels: True
    checks: list[Matcher] = []
    for term in _split_terms(selector):
        if match := _EQ_EXPR.match(term):
            key, op, value = match.groups()
            if op == "!=":
                checks.append(lambda labels, k=key, v=value: labels.get(k) != v)
            else:
                checks.append(lambda labels, k=key, v=value: labels.get(k) == v)
        elif match := _SET_EXPR.match(term):
            negate, key, op, values = match.groups()
            wanted = {v.strip() for v in (values or "").split(",") if v.strip()}
            if op == "in":
                checks.append(lambda labels, k=key, w=wanted: labels.get(k) in w)
            elif op == "notin":
                checks.append(lambda labels, k=key, w=wanted: labels.get(k) not in w)
            elif negate:
                checks.append(lambda labels, k=key: k not in labels)
            else:
                checks.append(lambda labels, k=key: k in labels)
        else:
            raise SelectorError(f"unable to parse requirement: {term.strip()!r}")
    return lambda labels: all(check(labels) for check in checks)


def match_label_selector(selector: dict | None, labels: dict) -> bool:
    """A LabelSelector object (`matchLabels`, `matchExpressions`) against labels."""
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        ok = {
            "In": lambda k=key, v=values: labels.get(k) in v,
            "NotIn": lambda k=key, v=values: labels.get(k) not in v,
            "Exists": lambda k=key: k in labels,
            "DoesNotExist": lambda k=key: k not in labels,
        }[op]()
        if not ok:
            return False
    return True


def _field_value(obj: dict, path: str) -> str:
    value: object = obj
    for part in path.split("."):
        value = value.get(part, "") if isinstance(value, dict) else ""
    if isinstance(value, bool):
        return str(value).lower()
    return "" if value is None else str(value)


def field_matcher(selector: str | None) -> Matcher:
    if not selector:
        return lambda _obj: True
    checks: list[Matcher] = []
    for term in _split_terms(selector):
        match = _EQ_EXPR.match(term)
        if not match:
            raise SelectorError(f"invalid selector: {selector!r}; can't understand {term.strip()!r}")
        path, op, value = match.groups()
        if op == "!=":
            checks.append(lambda obj, p=path, v=value: _field_value(obj, p) != v)
        else:
            checks.append(lambda obj, p=path, v=value: _field_value(obj, p) == v)
    return lambda obj: all(check(obj) for check in checks)


SUPPORTED_FIELDS = {
    "": {"metadata.name", "metadata.namespace"},
    "pods": {
        "metadata.name",
        "metadata.namespace",
        "spec.nodeName",
        "status.phase",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "status.podIP",
    },
    "nodes": {"metadata.name", "spec.unschedulable"},
    "events": {
        "metadata.name",
        "metadata.namespace",
        "involvedObject.kind",
        "involvedObject.name",
        "involvedObject.namespace",
        "reason",
        "type",
    },
    "secrets": {"metadata.name", "metadata.namespace", "type"},
}


def check_field_selector(resource: str, selector: str | None, kind: str) -> None:
    """Refuse field labels the real server does not support for this kind."""
    if not selector:
        return
    allowed = SUPPORTED_FIELDS.get(resource, SUPPORTED_FIELDS[""])
    for term in _split_terms(selector):
        match = _EQ_EXPR.match(term)
        if match and match.group(1) not in allowed:
            raise SelectorError(f"field label not supported: {match.group(1)}")
