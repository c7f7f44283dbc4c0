"""When the containerd metrics endpoint appears, moves and goes away, per Talos version."""

from __future__ import annotations

import pytest
from talos_support import METRICS_DOCUMENT_PATCH, METRICS_FILE_PATCH, W13, W14, W15, FakeHooks, wait_until

from lab.talos import TalosCluster
from lab.talos.cri import Customization, metrics_address

ADDRESS = "127.0.0.1:11234"


def test_on_113_the_address_appears_only_after_the_reboot(talosctl, cluster: TalosCluster, hooks: FakeHooks):
    assert cluster.metrics_address("w-13") is None

    assert talosctl("patch", "mc", "-n", W13, "-p", METRICS_FILE_PATCH).rc == 0

    # The 0.1 s reboot may be over before the patch call returns: the hooks' order is the proof.
    wait_until(lambda: cluster.metrics_address("w-13") == ADDRESS)
    assert hooks.of("w-13") == [
        ("node_going_down", "w-13"),
        ("containerd_metrics_changed", "w-13", ADDRESS),
        ("node_came_up", "w-13"),
    ]


def test_on_113_a_staged_file_waits_for_a_reboot_the_operator_triggers(talosctl, cluster: TalosCluster):
    assert talosctl("patch", "mc", "-n", W13, "-p", METRICS_FILE_PATCH, "-m", "staged").rc == 0
    assert cluster.metrics_address("w-13") is None

    assert talosctl("reboot", "-n", W13).rc == 0

    assert cluster.metrics_address("w-13") == ADDRESS


def test_on_114_the_document_applies_at_once_and_restarts_cri(talosctl, cluster: TalosCluster, hooks: FakeHooks):
    boot_id = cluster.snapshot()["w-14"]["boot_id"]

    result = talosctl("patch", "mc", "-n", W14, "-p", METRICS_DOCUMENT_PATCH)

    assert result.stderr.splitlines()[-1] == "Applied configuration without a reboot"
    assert cluster.metrics_address("w-14") == ADDRESS
    assert cluster.snapshot()["w-14"]["boot_id"] == boot_id
    assert hooks.of("w-14") == [("cri_restarted", "w-14"), ("containerd_metrics_changed", "w-14", ADDRESS)]
    cri = talosctl("service", "cri", "-n", W14).stdout
    assert "[Stopping]: Restarting service" in cri


def test_on_114_the_legacy_file_still_works_but_needs_a_reboot(talosctl, cluster: TalosCluster, hooks: FakeHooks):
    result = talosctl("patch", "mc", "-n", W14, "-p", METRICS_FILE_PATCH)

    assert "Applied configuration with a reboot" in result.stderr
    wait_until(lambda: cluster.metrics_address("w-14") == ADDRESS)
    assert hooks.of("w-14")[:2] == [("node_going_down", "w-14"), ("containerd_metrics_changed", "w-14", ADDRESS)]


def test_deleting_the_document_takes_the_endpoint_away(talosctl, cluster: TalosCluster, hooks: FakeHooks):
    assert talosctl("patch", "mc", "-n", W15, "-p", METRICS_DOCUMENT_PATCH).rc == 0
    removal = "apiVersion: v1alpha1\nkind: CRICustomizationConfig\nname: containerd-metrics\n$patch: delete\n"

    result = talosctl("patch", "mc", "-n", W15, "-p", removal)

    assert result.rc == 0, result.stderr
    assert cluster.metrics_address("w-15") is None
    assert hooks.of("w-15")[-1] == ("containerd_metrics_changed", "w-15", None)
    assert "CRICustomizationConfig" not in talosctl("get", "mc", "v1alpha1", "-n", W15, "-o", "yaml").stdout


def test_deleting_the_files_entry_on_113_removes_the_endpoint_after_a_reboot(talosctl, cluster: TalosCluster):
    assert talosctl("patch", "mc", "-n", W13, "-p", METRICS_FILE_PATCH).rc == 0
    wait_until(lambda: cluster.metrics_address("w-13") == ADDRESS)
    removal = "machine:\n  files:\n    - path: /etc/cri/conf.d/20-customization.part\n      $patch: delete\n"

    result = talosctl("patch", "mc", "-n", W13, "-p", removal)

    assert "Applied configuration with a reboot" in result.stderr
    wait_until(lambda: cluster.snapshot()["w-13"]["boots"] == 3)
    assert cluster.metrics_address("w-13") is None


def test_try_mode_on_114_moves_the_endpoint_and_moves_it_back(talosctl, cluster: TalosCluster):
    assert talosctl("patch", "mc", "-n", W14, "-p", METRICS_DOCUMENT_PATCH, "-m", "try", "--timeout", "800ms").rc == 0
    assert cluster.metrics_address("w-14") == ADDRESS

    wait_until(lambda: cluster.metrics_address("w-14") is None)


def test_the_node_being_down_has_no_endpoint(talosctl, cluster: TalosCluster, hooks: FakeHooks):
    assert talosctl("patch", "mc", "-n", W14, "-p", METRICS_DOCUMENT_PATCH).rc == 0
    cluster.inject_fault("w-14", "never_returns")

    assert talosctl("reboot", "-n", W14, "--wait=false").rc == 0

    assert cluster.metrics_address("w-14") is None
    assert ("containerd_metrics_changed", "w-14", None) in hooks.of("w-14")
    cluster.clear_fault("w-14")
    assert cluster.metrics_address("w-14") == ADDRESS


@pytest.mark.parametrize(
    ("fragments", "expected"),
    [
        (['[metrics]\n  address = "127.0.0.1:11234"\n'], "127.0.0.1:11234"),
        (['[plugins."io.containerd.server.v1.metrics"]\n  address = "127.0.0.2:9999"\n'], "127.0.0.2:9999"),
        (
            [
                '[metrics]\n  address = "0.0.0.0:1"\n'
                '[plugins."io.containerd.server.v1.metrics"]\n  address = "127.0.0.1:2"'
            ],
            "127.0.0.1:2",
        ),
        (['[metrics]\n  address = "127.0.0.1:1"\n', '[metrics]\n  address = "127.0.0.1:2"\n'], "127.0.0.1:2"),
        (['[metrics]\n  address = "127.0.0.1:1"\n', '[metrics]\n  address = ""\n'], None),
        (["[plugins.'io.containerd.grpc.v1.cri']\n  enable_cdi = true\n"], None),
        (["this is not toml ["], None),
    ],
)
def test_metrics_address_from_cri_fragments(fragments: list[str], expected: str | None):
    assert metrics_address([Customization(f"part-{i}", text) for i, text in enumerate(fragments)]) == expected
