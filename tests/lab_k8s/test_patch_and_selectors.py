"""The patch flavours and selector parsing, as pure functions."""

from __future__ import annotations

import pytest

from lab.k8s import patch, selectors


def test_strategic_merge_uses_merge_keys_and_replaces_atomic_lists():
    live = {
        "spec": {
            "containers": [
                {"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}]},
                {"name": "b", "image": "b:1"},
            ],
            "tolerations": [{"operator": "Exists"}],
        }
    }
    change = {
        "spec": {
            "containers": [{"name": "a", "env": [{"name": "Y", "value": "2"}]}],
            "tolerations": [{"key": "k", "operator": "Exists"}],
        }
    }
    merged = patch.strategic_merge(live, change)
    a = merged["spec"]["containers"][0]
    assert a["image"] == "a:1" and [e["name"] for e in a["env"]] == ["X", "Y"]
    assert [c["name"] for c in merged["spec"]["containers"]] == ["a", "b"]
    assert merged["spec"]["tolerations"] == [{"key": "k", "operator": "Exists"}]


def test_strategic_merge_directives():
    live = {"spec": {"volumes": [{"name": "a"}, {"name": "b"}]}, "metadata": {"finalizers": ["x"]}}
    change = {"spec": {"volumes": [{"name": "a", "$patch": "delete"}]}, "metadata": {"finalizers": ["y"]}}
    merged = patch.strategic_merge(live, change)
    assert merged["spec"]["volumes"] == [{"name": "b"}]
    assert merged["metadata"]["finalizers"] == ["x", "y"]


def test_ports_merge_on_container_port():
    live = {"ports": [{"containerPort": 80, "name": "http"}]}
    merged = patch.strategic_merge(live, {"ports": [{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 443}]})
    assert merged["ports"] == [{"containerPort": 80, "name": "http", "protocol": "TCP"}, {"containerPort": 443}]


def test_json_patch_test_operation_fails():
    with pytest.raises(patch.PatchError):
        patch.json_patch({"a": 1}, [{"op": "test", "path": "/a", "value": 2}])


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ("app=web", {"app": "web"}, True),
        ("app==web,tier!=db", {"app": "web", "tier": "db"}, False),
        ("env in (prod, staging)", {"env": "staging"}, True),
        ("env notin (prod)", {"env": "prod"}, False),
        ("release", {"release": "x"}, True),
        ("!release", {"release": "x"}, False),
    ],
)
def test_label_selectors(selector, labels, expected):
    assert selectors.label_matcher(selector)(labels) is expected


def test_field_selector_rejects_unsupported_field():
    with pytest.raises(selectors.SelectorError):
        selectors.check_field_selector("configmaps", "data.a=1", "ConfigMap")


def test_server_side_apply_field_sets_round_trip():
    obj = {"metadata": {"labels": {"a": "1"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}
    fields = patch.field_set(obj)
    paths = patch.leaf_paths(fields)
    assert ("f:spec", "f:containers", 'k:{"name":"c"}', "f:image") in paths
    assert patch.value_at(obj, ("f:spec", "f:containers", 'k:{"name":"c"}', "f:image")) == "i"
    patch.remove_path(obj, ("f:metadata", "f:labels", "f:a"))
    assert obj["metadata"]["labels"] == {}
