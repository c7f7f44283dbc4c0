"""Allow-list merging and regex building (filter_plugins/allow_lists.py), and the role's default lists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from allow_lists import AllowListError, allow_list_problems, merge_allow_list, metric_names_regex

ALLOW_LISTS = Path(__file__).resolve().parents[2] / "roles" / "alloy" / "files" / "allow-lists"
DEFAULT = ["a_total", "b_bytes", "re:c_.+"]


@pytest.mark.parametrize(
    ("use_default", "include", "exclude", "expected"),
    [
        (True, [], [], ["a_total", "b_bytes", "re:c_.+"]),
        (False, [], [], []),
        (False, ["x"], [], ["x"]),
        (True, ["x", "a_total"], [], ["a_total", "b_bytes", "re:c_.+", "x"]),
        (True, [], ["b_bytes"], ["a_total", "re:c_.+"]),
        (True, [], ["re:c_.+"], ["a_total", "b_bytes"]),
        (True, ["x"], ["x", "a_total"], ["b_bytes", "re:c_.+"]),
        (True, [" a_total ", "y"], [" y"], ["a_total", "b_bytes", "re:c_.+"]),
    ],
    ids=[
        "default-only",
        "nothing",
        "include-only",
        "include-dedup-keeps-first-position",
        "exclude-literal",
        "exclude-regex-entry",
        "exclude-wins-over-include",
        "whitespace-normalised",
    ],
)
def test_merge_allow_list(use_default, include, exclude, expected):
    assert merge_allow_list(DEFAULT, use_default, include, exclude) == expected


def test_merge_accepts_missing_lists():
    assert merge_allow_list(None, True, None, None) == []


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        (["up"], "^(up)$"),
        (["b", "a", "b"], "^(b|a)$"),
        (["re:kube_job_.+", "up"], "^(kube_job_.+|up)$"),
        (["re:a|b", "c"], "^(a|b|c)$"),
        (["ns:metric_total"], "^(ns:metric_total)$"),
    ],
    ids=["single", "dedup-stable-order", "regex-entry-unescaped", "regex-alternation", "colon-name"],
)
def test_metric_names_regex(entries, expected):
    assert metric_names_regex(entries) == expected


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([], "empty allow-list"),
        (["kube_job.*"], "write 're:kube_job.*'"),
        (["re:"], "empty regular expression"),
        (["re:(unclosed"], "is invalid"),
        (["re:foo(?!bar)"], "RE2"),
        (["re:(a)\\1"], "RE2"),
        ([42], "strings"),
    ],
    ids=["empty", "unmarked-pattern", "empty-regex", "bad-regex", "lookahead", "backreference", "not-string"],
)
def test_metric_names_regex_refuses(entries, message):
    with pytest.raises(AllowListError, match=re.escape(message)):
        metric_names_regex(entries)


def test_allow_list_problems_names_every_invalid_entry():
    problems = allow_list_problems(["up", "kube_job.*", "re:(", "re:ok_.+"])
    assert len(problems) == 2
    assert "'re:kube_job.*'" in problems[0]
    assert "'(' is invalid" in problems[1]
    assert allow_list_problems(["up", "re:ok_.+"]) == []


def test_regex_matches_exactly_the_listed_names():
    pattern = re.compile(metric_names_regex(["up", "re:kube_job_.+"]))
    assert pattern.fullmatch("up")
    assert pattern.fullmatch("kube_job_status_failed")
    assert not pattern.fullmatch("upstream_total")
    assert not pattern.fullmatch("kube_jobs")


@pytest.mark.parametrize("path", sorted(ALLOW_LISTS.glob("*.yaml")), ids=lambda path: path.stem)
def test_default_allow_list_builds_a_regex(path):
    entries = yaml.safe_load(path.read_text())
    assert isinstance(entries, list)
    assert len(entries) >= 10
    pattern = re.compile(metric_names_regex(entries))
    for literal in (entry for entry in entries if not entry.startswith("re:")):
        assert pattern.fullmatch(literal)


def test_default_allow_lists_cover_the_components():
    assert {path.stem for path in ALLOW_LISTS.glob("*.yaml")} == {
        "cadvisor",
        "kube-state-metrics",
        "node-exporter",
        "containerd",
    }


def test_kube_state_metrics_list_keeps_the_container_id_join():
    entries = yaml.safe_load((ALLOW_LISTS / "kube-state-metrics.yaml").read_text())
    assert re.fullmatch(metric_names_regex(entries), "kube_pod_container_info")
