"""Metric allow-lists: merge a component's lists and turn them into relabel regexes.

An entry is either a metric name, matched literally (`kube_pod_info`), or a regular
expression marked by the prefix `re:` (`re:kube_job_.*`). An unmarked entry that is not a
valid metric name is refused, so a pattern written without its marker cannot silently
match nothing. Regexes must be RE2 (Alloy's engine): look-arounds and back-references
are refused.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

REGEX_MARKER = "re:"
_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
# Constructs Python accepts but RE2 (Go regexp) rejects.
_NOT_RE2 = re.compile(r"\(\?<?[=!]|\\[1-9]")


class AllowListError(ValueError):
    """An allow-list entry that cannot become part of a relabel regex."""


def merge_allow_list(
    default_list: Iterable[str] | None,
    use_default_allow_list: bool = True,
    include_metrics: Iterable[str] | None = None,
    exclude_metrics: Iterable[str] | None = None,
) -> list[str]:
    """Default list (if enabled) + include - exclude, first occurrence order, no duplicates."""
    chosen = list(default_list or []) if use_default_allow_list else []
    chosen.extend(include_metrics or [])
    excluded = {_normalized(entry) for entry in exclude_metrics or []}
    return _unique(entry for entry in chosen if _normalized(entry) not in excluded)


def metric_names_regex(entries: Iterable[str]) -> str:
    """One anchored alternation `^(a|b|...)$` matching exactly the given entries."""
    alternatives = _unique(_regex_for(entry) for entry in entries)
    if not alternatives:
        raise AllowListError("an empty allow-list has no regex: leave the relabel rule out instead")
    return "^(" + "|".join(alternatives) + ")$"


def allow_list_problems(entries: Iterable[object]) -> list[str]:
    """Why each invalid entry cannot be used (empty when every entry is valid)."""
    problems = []
    for entry in entries:
        try:
            _regex_for(entry)
        except AllowListError as error:
            problems.append(str(error))
    return problems


def _regex_for(entry: str) -> str:
    entry = _normalized(entry)
    if entry.startswith(REGEX_MARKER):
        return _checked_regex(entry.removeprefix(REGEX_MARKER))
    if not _METRIC_NAME.fullmatch(entry):
        raise AllowListError(
            f"allow-list entry {entry!r} is not a metric name; "
            f"write {REGEX_MARKER + entry!r} if it is meant as a regular expression"
        )
    return re.escape(entry)


def _checked_regex(pattern: str) -> str:
    if not pattern:
        raise AllowListError(f"allow-list entry {REGEX_MARKER!r} has an empty regular expression")
    if _NOT_RE2.search(pattern):
        raise AllowListError(
            f"allow-list regex {pattern!r} uses a look-around or back-reference, which RE2 does not support"
        )
    try:
        re.compile(pattern)
    except re.error as error:
        raise AllowListError(f"allow-list regex {pattern!r} is invalid: {error}") from error
    return pattern


def _normalized(entry: str) -> str:
    if not isinstance(entry, str):
        raise AllowListError(f"allow-list entries are strings, got {entry!r}")
    return entry.strip()


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(_normalized(item) for item in items))


class FilterModule:
    """Ansible entry point."""

    def filters(self) -> dict[str, object]:
        return {
            "allow_list_problems": allow_list_problems,
            "merge_allow_list": merge_allow_list,
            "metric_names_regex": metric_names_regex,
        }
