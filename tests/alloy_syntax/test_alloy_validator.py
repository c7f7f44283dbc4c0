"""Semantic checks of a whole Alloy configuration, with the messages `alloy validate` prints."""

from __future__ import annotations

from pathlib import Path

import pytest
from ansible.module_utils.alloy_components import COMPONENTS, KNOWN_COMPONENTS
from ansible.module_utils.alloy_validator import (
    config_files,
    format_diagnostic,
    strongly_connected_components,
    validate_path,
    validate_sources,
)

PIPELINE = """
discovery.kubernetes "pods" {
  role = "pod"
  selectors {
    role  = "pod"
    field = "spec.nodeName=" + sys.env("HOSTNAME")
  }
}

discovery.relabel "pods" {
  targets = discovery.kubernetes.pods.targets
  rule {
    source_labels = ["__meta_kubernetes_namespace"]
    target_label  = "namespace"
  }
}

prometheus.scrape "pods" {
  targets    = discovery.relabel.pods.output
  forward_to = [prometheus.relabel.keep.receiver]
  clustering {
    enabled = true
  }
}

prometheus.relabel "keep" {
  forward_to = [prometheus.remote_write.mimir.receiver]
  rule {
    action        = "keep"
    source_labels = ["__name__"]
    regex         = "up|container_.*"
  }
}

prometheus.remote_write "mimir" {
  external_labels = { cluster = constants.hostname }
  endpoint {
    url     = "http://mimir/api/v1/push"
    headers = { "X-Scope-OrgID" = "anonymous" }
    queue_config {
      max_shards = 10
    }
  }
}

loki.process "pods" {
  forward_to = [loki.write.default.receiver]
  stage.cri {}
  stage.match {
    selector = "{app=\\"x\\"}"
    stage.match {
      selector = "{level=\\"debug\\"}"
      stage.drop {
        expression = ".*"
      }
    }
  }
}

loki.write "default" {
  endpoint {
    url = "http://loki/loki/api/v1/push"
  }
}
"""


def problems(*files: str, **options: object) -> list[str]:
    sources = {f"f{index}.alloy": text for index, text in enumerate(files)}
    return [format_diagnostic(d) for d in validate_sources(sources, **options)]


def test_a_complete_pipeline_is_valid() -> None:
    assert problems(PIPELINE) == []


def test_blocks_split_across_files_see_each_other() -> None:
    first = 'local.file "token" {\n  filename = "/t"\n}\n'
    second = 'prometheus.remote_write "rw" {\n  endpoint {\n    url = local.file.token.content\n  }\n}\n'
    assert problems(first, second) == []


def test_duplicate_block_names_the_first_declaration_even_in_another_file() -> None:
    block = 'local.file_match "applogs" {\n  path_targets = []\n}\n'
    assert problems(block, "\n" + block) == [
        "f1.alloy:2:1: block local.file_match.applogs already declared at f0.alloy:1:1"
    ]


def test_unknown_component() -> None:
    assert problems('local.missing "x" {}\n') == [
        'f0.alloy:1:1: cannot find the definition of component name "local.missing"'
    ]


def test_real_component_outside_the_table_is_a_warning_not_an_error() -> None:
    result = validate_sources({"m.alloy": 'otelcol.receiver.otlp "in" {\n  anything = 1\n}\n'})
    assert [(d.severity, d.message) for d in result] == [
        ("warning", 'component "otelcol.receiver.otlp" is not in the validator\'s table: not checked')
    ]


def test_components_need_a_label() -> None:
    assert problems('local.file {\n  filename = "/x"\n}\n') == [
        'f0.alloy:1:1: component "local.file" must have a label'
    ]


def test_declared_and_imported_custom_components_are_known() -> None:
    config = (
        'declare "pipeline" {\n  argument "url" {\n    optional = false\n  }\n'
        '  loki.write "out" {\n    endpoint {\n      url = argument.url.value\n    }\n  }\n}\n'
        'pipeline "main" {\n  url = "http://loki"\n}\n'
        'import.file "mods" {\n  filename = "/etc/alloy/mods"\n}\n'
        'mods.scraper "x" {}\n'
    )
    assert problems(config) == []


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('  filename = "/x"\n  bogus = 1\n', ['3:3: unrecognized attribute name "bogus"']),
        ("", ['1:1: missing required attribute "filename"']),
        ('  filename = "/x"\n  filename = "/y"\n', ['3:3: attribute "filename" may only be provided once']),
        ('  filename = "/x"\n  extra {}\n', ['3:3: unrecognized block name "extra"']),
    ],
)
def test_arguments_of_a_checked_component(body: str, expected: list[str]) -> None:
    assert problems(f'local.file "x" {{\n{body}}}\n') == [f"f0.alloy:{e}" for e in expected]


def test_nested_blocks_are_checked_against_their_own_table() -> None:
    config = (
        'prometheus.remote_write "rw" {\n  endpoint {\n    headers = {}\n    queue_config {\n'
        "      max_shard = 1\n    }\n  }\n  wal {}\n  wal {}\n}\n"
    )
    assert problems(config) == [
        'f0.alloy:5:7: unrecognized attribute name "max_shard"',
        'f0.alloy:2:3: missing required attribute "url"',
        'f0.alloy:8:3: block "wal" may only be specified once',
        'f0.alloy:9:3: block "wal" may only be specified once',
    ]


def test_blocks_and_attributes_used_as_each_other() -> None:
    config = 'prometheus.scrape "s" {\n  targets = []\n  forward_to = []\n  clustering = true\n  job_name {}\n}\n'
    assert problems(config) == [
        'f0.alloy:4:3: "clustering" must be a block, but is used as an attribute',
        'f0.alloy:5:3: "job_name" must be an attribute, but is used as a block',
    ]


def test_reference_to_an_undeclared_component_names_the_whole_chain() -> None:
    config = 'prometheus.scrape "s" {\n  targets = []\n  forward_to = [prometheus.relabel.default.receiver]\n}\n'
    assert problems(config) == [
        'f0.alloy:3:17: component "prometheus.relabel.default.receiver" does not exist or is out of scope'
    ]


def test_references_resolve_by_dotted_prefix_and_index_cuts_the_chain() -> None:
    config = (
        'remote.kubernetes.secret "creds" {\n  namespace = "m"\n  name = "s"\n}\n'
        'prometheus.remote_write "rw" {\n  endpoint {\n    url = "http://m"\n    basic_auth {\n'
        '      username = convert.nonsensitive(remote.kubernetes.secret.creds.data["user"])\n'
        "      password = remote.kubernetes.secret.creds.data.password\n    }\n  }\n}\n"
    )
    assert problems(config) == []


def test_missing_export_is_reported_as_the_evaluator_does() -> None:
    config = 'loki.relabel "r" {\n  forward_to = [loki.write.w.reciever]\n}\nloki.write "w" {}\n'
    assert problems(config) == ['f0.alloy:2:30: field "reciever" does not exist']


def test_components_outside_a_declare_are_out_of_scope_inside_it() -> None:
    config = (
        'loki.write "w" {}\ndeclare "inner" {\n  loki.relabel "r" {\n    forward_to = [loki.write.w.receiver]\n  }\n}\n'
    )
    assert problems(config) == ['f0.alloy:4:19: component "loki.write.w.receiver" does not exist or is out of scope']


def test_cycles_are_reported_on_every_member_and_self_references_apart() -> None:
    config = (
        'prometheus.relabel "b" {\n  forward_to = [prometheus.relabel.a.receiver]\n}\n'
        'prometheus.relabel "a" {\n  forward_to = [prometheus.relabel.b.receiver]\n}\n'
        'prometheus.relabel "self" {\n  forward_to = [prometheus.relabel.self.receiver]\n}\n'
    )
    assert problems(config) == [
        "f0.alloy:4:1: cycle detected: prometheus.relabel.a, prometheus.relabel.b",
        "f0.alloy:1:1: cycle detected: prometheus.relabel.a, prometheus.relabel.b",
        "f0.alloy:7:1: cannot reference self",
    ]


def test_stdlib_members_deprecations_and_stability() -> None:
    config = (
        'local.file "a" {\n  filename = env("HOME")\n}\n'
        'local.file "b" {\n  filename = string.nope("x")\n}\n'
        'local.file "c" {\n  filename = array.combine_maps([], [], ["k"])[0]\n}\n'
        'local.file "d" {\n  filename = coalesce(sys.env("X"), constants.hostname,'
        ' string.format("%s", "y"))\n}\n'
    )
    assert problems(config) == [
        "f0.alloy:2:14: warning: this stdlib function is deprecated; please refer to the documentation for"
        " updated usage and alternatives",
        'f0.alloy:5:21: field "nope" does not exist',
        'f0.alloy:8:14: array.combine_maps is at stability level "experimental", which is below the minimum'
        ' allowed stability level "generally-available". Use --stability.level command-line flag to enable'
        ' "experimental" features',
    ]
    assert problems(config, stability_level="experimental")[1:] == ['f0.alloy:5:21: field "nope" does not exist']


def test_syntax_errors_stop_before_semantic_checks() -> None:
    assert problems('local.missing "x" {\n  a = [1\n  2]\n}\n') == ["f0.alloy:2:9: missing ',' in expression list"]


def test_syntax_only_skips_semantic_checks() -> None:
    assert problems('local.missing "x" {}\n', syntax_only=True) == []


def test_config_blocks_are_placed_where_alloy_allows_them() -> None:
    config = 'argument "x" {}\nexport "y" {\n  value = 1\n}\ndeclare "m" {\n  logging {}\n}\nlogging {\n  lvl = 1\n}\n'
    assert problems(config) == [
        "f0.alloy:6:3: logging not allowed in module",
        "f0.alloy:1:1: argument blocks only allowed inside a module",
        "f0.alloy:2:1: export blocks only allowed inside a module",
        'f0.alloy:9:3: unrecognized attribute name "lvl"',
    ]


def test_top_level_attribute_is_rejected() -> None:
    assert problems('stray = 1\nlocal.file "x" {\n  filename = "/x"\n}\n') == [
        "f0.alloy:1:1: unrecognized attribute stray"
    ]


def test_directory_is_one_config_of_its_alloy_files(tmp_path: Path) -> None:
    (tmp_path / "b.alloy").write_text('loki.write "w" {}\n')
    (tmp_path / "a.alloy").write_text('loki.relabel "r" {\n  forward_to = [loki.write.w.receiver]\n}\n')
    (tmp_path / "notes.txt").write_text("not alloy")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.alloy").write_text("broken {")
    assert config_files(str(tmp_path)) == [str(tmp_path / "a.alloy"), str(tmp_path / "b.alloy")]
    result = validate_path(str(tmp_path))
    assert result.errors == [] and result.files == config_files(str(tmp_path))


def test_missing_path_and_empty_directory_are_errors(tmp_path: Path) -> None:
    assert [d.message for d in validate_path(str(tmp_path / "nope.alloy")).errors] == ["no such file or directory"]
    assert [format_diagnostic(d) for d in validate_path(str(tmp_path)).errors] == [
        f"{tmp_path}: no *.alloy files in directory"
    ]


def test_table_only_describes_real_components() -> None:
    assert set(COMPONENTS) <= KNOWN_COMPONENTS


def test_strongly_connected_components_in_declaration_order() -> None:
    edges = {"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]}
    assert sorted(map(sorted, strongly_connected_components(["a", "b", "c", "d"], edges))) == [
        ["a", "b", "c"],
        ["d"],
    ]


def test_loki_stages_are_checked_at_any_depth() -> None:
    config = (
        'loki.process "p" {\n  forward_to = []\n  stage.match {\n    selector = "{a=\\"b\\"}"\n'
        '    stage.match {\n      stage.metrics {\n        metric.gauge {\n          name = "g"\n        }\n'
        "      }\n    }\n  }\n}\n"
    )
    assert problems(config) == [
        'f0.alloy:7:9: missing required attribute "action"',
        'f0.alloy:5:5: missing required attribute "selector"',
    ]
