"""configpatcher's rules as the lab applies them, and the small Go formats talosctl prints."""

from __future__ import annotations

import pytest

from lab.talos.patching import PatchError, apply_patches, load_patch
from lab.talos.render import format_go_duration, humanize_bytes, parse_go_duration, tabwrite

BASE = [
    {
        "version": "v1alpha1",
        "machine": {
            "network": {"hostname": "w-1", "interfaces": [{"interface": "eth0", "mtu": 1500}]},
            "certSANs": ["a"],
        },
        "cluster": {"network": {"podSubnets": ["10.244.0.0/16"]}},
    },
    {"apiVersion": "v1alpha1", "kind": "CRICustomizationConfig", "name": "one", "content": "x"},
]


def patched(*patches: str) -> list[dict]:
    return apply_patches(BASE, [load_patch(text) for text in patches])


def test_maps_merge_lists_append_and_the_original_is_untouched():
    result = patched("machine:\n  certSANs: [b]\n  network:\n    hostname: w-2\n")

    assert result[0]["machine"]["certSANs"] == ["a", "b"]
    assert result[0]["machine"]["network"]["hostname"] == "w-2"
    assert BASE[0]["machine"]["certSANs"] == ["a"]


def test_pod_subnets_are_overwritten_and_interfaces_merge_by_name():
    result = patched(
        "cluster:\n  network:\n    podSubnets: [10.0.0.0/8]\n"
        "machine:\n  network:\n    interfaces:\n      - interface: eth0\n        mtu: 9000\n"
    )

    assert result[0]["cluster"]["network"]["podSubnets"] == ["10.0.0.0/8"]
    assert result[0]["machine"]["network"]["interfaces"] == [{"interface": "eth0", "mtu": 9000}]


def test_documents_merge_by_identity_or_are_appended():
    result = patched(
        "apiVersion: v1alpha1\nkind: CRICustomizationConfig\nname: one\ncontent: y\n---\n"
        "apiVersion: v1alpha1\nkind: CRICustomizationConfig\nname: two\ncontent: z\n"
    )

    assert [(doc.get("name"), doc.get("content")) for doc in result[1:]] == [("one", "y"), ("two", "z")]


def test_delete_a_field_a_list_item_and_a_document():
    result = patched(
        "machine:\n  network:\n    hostname:\n      $patch: delete\n"
        "    interfaces:\n      - interface: eth0\n        $patch: delete\n---\n"
        "apiVersion: v1alpha1\nkind: CRICustomizationConfig\nname: one\n$patch: delete\n"
    )

    assert result == [
        {
            "version": "v1alpha1",
            "machine": {"network": {"interfaces": []}, "certSANs": ["a"]},
            "cluster": {"network": {"podSubnets": ["10.244.0.0/16"]}},
        }
    ]


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        (
            "machine:\n  kubelet:\n    $patch: delete\n",
            "patch delete: path 'machine.kubelet' in document '/v1alpha1': failed to delete: not found",
        ),
        (
            "apiVersion: v1alpha1\nkind: CRICustomizationConfig\nname: nine\n$patch: delete\n",
            "patch delete: document 'v1alpha1/CRICustomizationConfig/nine' not found",
        ),
    ],
)
def test_deleting_something_absent_is_an_error(patch: str, message: str):
    with pytest.raises(PatchError) as caught:
        patched(patch)

    assert str(caught.value) == message


def test_json_patches_apply_to_a_single_document_config():
    ops = '[{"op": "add", "path": "/machine/certSANs/-", "value": "c"}, {"op": "remove", "path": "/machine/network"}]'

    result = apply_patches(BASE[:1], [load_patch(ops)])

    assert result[0]["machine"] == {"certSANs": ["a", "c"]}
    with pytest.raises(PatchError, match="not supported for multi-document"):
        apply_patches(BASE, [load_patch(ops)])
    with pytest.raises(PatchError, match='remove operation does not apply: doc is missing path: "/machine/nope"'):
        apply_patches(BASE[:1], [load_patch('[{"op": "remove", "path": "/machine/nope"}]')])


def test_a_patch_must_be_a_mapping():
    with pytest.raises(PatchError):
        load_patch("just words")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (0.15, "150ms"), (1.5, "1.5s"), (60, "1m0s"), (1800, "30m0s"), (3723, "1h2m3s"), (1200, "20m0s")],
)
def test_go_durations_round_trip(seconds: float, text: str):
    assert format_go_duration(seconds) == text
    assert parse_go_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("bad", "problem"),
    [("", "invalid"), ("soon", "invalid"), ("m", "invalid"), ("5", "missing unit in"), ("1m30", "missing unit in")],
)
def test_invalid_go_durations(bad: str, problem: str):
    with pytest.raises(ValueError, match=f'time: {problem} duration "{bad}"'):
        parse_go_duration(bad)


@pytest.mark.parametrize(
    ("size", "text"), [(5, "5 B"), (999, "999 B"), (5_300_000, "5.3 MB"), (18_000_000, "18 MB"), (2_500, "2.5 kB")]
)
def test_humanize_bytes_like_go_humanize(size: int, text: str):
    assert humanize_bytes(size) == text


def test_tabwrite_pads_every_column_but_the_last_by_three():
    assert tabwrite([["A", "BB", "C"], ["long", "x", "last"]]) == "A      BB   C\nlong   x    last\n"
