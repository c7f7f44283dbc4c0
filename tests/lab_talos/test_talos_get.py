"""`talosctl get`: the shapes of table, YAML, JSON and jsonpath output."""

from __future__ import annotations

import json
import re

import yaml
from talos_support import CP, W13, W14

from lab.talos import TalosCluster

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def test_get_mc_yaml_has_node_first_and_the_config_as_a_string(talosctl):
    result = talosctl("get", "mc", "-n", W13, "-o", "yaml")

    assert result.rc == 0
    documents = result.stdout.split("---\n")
    assert len(documents) == 2
    for text in documents:
        assert text.startswith(f"node: {W13}\nmetadata:\n    namespace: config\n")
        assert "\n    owner:\n" in text
        assert "\nspec: |\n    version: v1alpha1\n" in text
        resource = yaml.safe_load(text)
        assert list(resource) == ["node", "metadata", "spec"]
        assert isinstance(resource["spec"], str)
        assert yaml.safe_load(resource["spec"])["machine"]["type"] == "worker"
    ids = [yaml.safe_load(text)["metadata"]["id"] for text in documents]
    assert sorted(ids) == ["persistent", "v1alpha1"]


def test_get_mc_metadata_fields_in_talos_order(talosctl):
    text = talosctl("get", "mc", "v1alpha1", "-n", W13, "-o", "yaml").stdout
    metadata = text.split("metadata:\n", 1)[1].split("spec:", 1)[0]
    keys = [line.strip().split(":")[0] for line in metadata.splitlines()]

    assert keys == ["namespace", "type", "id", "version", "owner", "phase", "created", "updated"]
    assert "    type: MachineConfigs.config.talos.dev\n" in metadata
    assert "    phase: running\n" in metadata
    created = re.search(r"created: (\S+)", metadata)
    assert created and RFC3339.match(created.group(1))


def test_get_mc_json_is_concatenated_indented_objects_with_sorted_keys(talosctl):
    result = talosctl("get", "mc", "-n", f"{W13},{W14}", "-o", "json")

    decoder = json.JSONDecoder()
    text, objects = result.stdout, []
    while text.strip():
        obj, end = decoder.raw_decode(text.lstrip())
        objects.append(obj)
        text = text.lstrip()[end:]
    assert [obj["node"] for obj in objects] == [W13, W13, W14, W14]
    assert all(list(obj) == ["metadata", "node", "spec"] for obj in objects)
    assert result.stdout.startswith('{\n    "metadata": {\n        "created": ')
    assert objects[0]["metadata"]["owner"] is None
    assert yaml.safe_load(objects[0]["spec"])["version"] == "v1alpha1"


def test_get_mc_table(talosctl):
    lines = talosctl("get", "machineconfig", "-n", W13).stdout.splitlines()

    assert lines[0].split() == ["NODE", "NAMESPACE", "TYPE", "ID", "VERSION"]
    assert lines[1].split() == [W13, "config", "MachineConfig", "persistent", "1"]
    assert lines[2].split() == [W13, "config", "MachineConfig", "v1alpha1", "1"]
    assert lines[0].index("NAMESPACE") == lines[1].index("config") == len(W13) + 3


def test_resource_versions_increase_with_each_change(talosctl):
    talosctl("patch", "mc", "-n", W13, "-p", "machine:\n  nodeLabels:\n    a: b\n")
    talosctl("patch", "mc", "-n", W13, "-p", "machine:\n  nodeLabels:\n    c: d\n")

    result = talosctl("get", "mc", "v1alpha1", "-n", W13, "-o", "jsonpath={.metadata.version}")

    assert result.stdout == "3\n"


def test_get_members_lists_every_node_from_each_nodes_view(talosctl, cluster: TalosCluster):
    lines = talosctl("get", "members", "-n", CP).stdout.splitlines()

    header = ["NODE", "NAMESPACE", "TYPE", "ID", "VERSION", "HOSTNAME", "MACHINE", "TYPE", "OS", "ADDRESSES"]
    assert lines[0].split() == header
    assert len(lines) == 1 + len(cluster.snapshot())
    assert lines[1].split() == [
        CP,
        "cluster",
        "Member",
        "cp-1",
        "1",
        "cp-1",
        "controlplane",
        "Talos",
        "(v1.13.2)",
        f'["{CP}"]',
    ]
    assert any("Talos (v1.14.1)" in line for line in lines)


def test_unknown_id_and_unknown_type(talosctl):
    missing = talosctl("get", "mc", "nope", "-n", W13)
    unknown = talosctl("get", "frobnicators", "-n", W13)

    assert missing.rc == 1
    assert missing.stderr == (
        f"{W13}: rpc error: code = NotFound desc = resource "
        "MachineConfigs.config.talos.dev(config/nope@undefined) doesn't exist\n"
    )
    assert (unknown.rc, unknown.stderr) == (1, 'resource "frobnicators" is not registered\n')


def test_unsupported_output_format(talosctl):
    result = talosctl("get", "mc", "-n", W13, "-o", "xml")

    assert (result.rc, result.stderr) == (1, 'output format "xml" is not supported\n')
