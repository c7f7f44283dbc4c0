"""`talosctl patch mc`: messages, modes per version, dry runs, and the duplicate-entry trap."""

from __future__ import annotations

import yaml
from talos_support import CP, METRICS_DOCUMENT_PATCH, METRICS_FILE_PATCH, W13, W14, W15, stderr_lines, wait_until

from lab.talos import TalosCluster, TalosContext


def active_config(talosctl, node: str) -> list[dict]:
    result = talosctl("get", "mc", "v1alpha1", "-n", node, "-o", "jsonpath={.spec}")
    assert result.rc == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def cri_files(docs: list[dict]) -> list[dict]:
    return [f for f in docs[0]["machine"].get("files", []) if f["path"] == "/etc/cri/conf.d/20-customization.part"]


def test_auto_mode_on_113_reboots_for_a_files_change_and_says_why(talosctl, cluster: TalosCluster):
    result = talosctl("patch", "mc", "-n", W13, "-p", METRICS_FILE_PATCH)

    assert result.rc == 0
    assert result.stdout == ""
    lines = stderr_lines(result)
    assert lines[0] == f"patched MachineConfigs.config.talos.dev/v1alpha1 at the node {W13}"
    assert lines[1] == "Applied configuration with a reboot: this config change can't be applied in immediate mode"
    assert lines[2:5] == ["diff:", "--- a", "+++ b"]
    assert any(line.startswith("+") and line.endswith('address = "127.0.0.1:11234"') for line in lines)
    assert "+    files:" in lines
    assert cluster.snapshot()["w-13"]["state"] == "rebooting"


def test_no_reboot_mode_on_113_fails_and_changes_nothing(talosctl, cluster: TalosCluster):
    before = active_config(talosctl, W13)

    result = talosctl("patch", "mc", "-n", W13, "-p", METRICS_FILE_PATCH, "--mode", "no-reboot")

    assert result.rc == 1
    assert stderr_lines(result)[0] == f"patched MachineConfigs.config.talos.dev/v1alpha1 at the node {W13}"
    assert (
        "rpc error: code = InvalidArgument desc = "
        "this config change can't be applied in immediate mode\ndiff:\n" in result.stderr
    )
    assert active_config(talosctl, W13) == before
    assert cluster.snapshot()["w-13"]["state"] == "running"


def test_the_same_files_patch_twice_appends_a_duplicate_entry(talosctl, cluster: TalosCluster):
    assert talosctl("patch", "mc", "-n", W13, "-p", METRICS_FILE_PATCH).rc == 0
    wait_until(lambda: cluster.snapshot()["w-13"]["state"] == "running")

    second = talosctl("patch", "mc", "-n", W13, "-p", METRICS_FILE_PATCH, "-m", "staged")

    assert second.rc == 0
    assert "Apply was skipped" not in second.stderr
    files = cri_files(persistent_config(talosctl, W13))
    assert len(files) == 2
    assert files[0] == files[1]


def test_patch_starts_from_the_active_config_so_staged_patches_do_not_stack(talosctl):
    labels = ["machine:\n  nodeLabels:\n    first: 'yes'\n", "machine:\n  nodeLabels:\n    second: 'yes'\n"]
    for label in labels:
        assert talosctl("patch", "mc", "-n", W13, "-p", label, "-m", "staged").rc == 0

    assert persistent_config(talosctl, W13)[0]["machine"]["nodeLabels"] == {"second": "yes"}


def persistent_config(talosctl, node: str) -> list[dict]:
    result = talosctl("get", "mc", "persistent", "-n", node, "-o", "jsonpath={.spec}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def test_a_newer_client_warns_about_older_nodes_first(talosctl):
    result = talosctl("patch", "mc", "-n", f"{W13},{W15}", "-p", "machine:\n  nodeLabels:\n    a: b\n")

    assert result.rc == 0
    assert result.stderr.splitlines()[0] == (
        f"WARNING: {W13}: server version 1.13.2 is older than client version 1.15.0"
    )
    assert result.stderr.count("WARNING") == 1


def test_a_patch_without_effect_is_skipped(talosctl):
    result = talosctl("patch", "mc", "-n", W14, "-p", "machine:\n  network:\n    hostname: w-14\n")

    assert result.rc == 0
    assert stderr_lines(result) == ["Apply was skipped: no changes detected."]


def test_a_live_field_applies_without_a_reboot(talosctl, cluster: TalosCluster):
    result = talosctl("patch", "mc", "-n", W13, "-p", '{"machine": {"nodeLabels": {"lab": "yes"}}}')

    assert result.rc == 0
    assert stderr_lines(result)[1] == "Applied configuration without a reboot"
    assert active_config(talosctl, W13)[0]["machine"]["nodeLabels"] == {"lab": "yes"}
    assert cluster.snapshot()["w-13"]["state"] == "running"


def test_dry_run_prints_the_summary_and_changes_nothing(talosctl, cluster: TalosCluster):
    result = talosctl("patch", "mc", "-n", W13, "-p", METRICS_FILE_PATCH, "--dry-run")

    assert result.rc == 0
    lines = stderr_lines(result)
    assert lines[1:6] == [
        "Dry run summary:",
        "Applied configuration with a reboot (skipped in dry-run).",
        "Config diff:",
        "",
        "--- a",
    ]
    assert lines[6] == "+++ b"
    assert lines[7].startswith("@@ ")
    assert cri_files(active_config(talosctl, W13)) == []
    assert cluster.snapshot()["w-13"]["state"] == "running"


def test_dry_run_of_a_no_op_says_no_changes(talosctl):
    result = talosctl("patch", "mc", "-n", W13, "-p", "machine:\n  network:\n    hostname: w-13\n", "--dry-run")

    assert stderr_lines(result) == ["Apply was skipped: no changes detected."]


def test_staged_mode_lands_at_the_next_reboot(talosctl, cluster: TalosCluster):
    result = talosctl("patch", "mc", "-n", W13, "-p", "machine:\n  nodeLabels:\n    staged: 'yes'\n", "-m", "staged")

    assert stderr_lines(result)[1] == "Staged configuration to be applied after the next reboot"
    assert "nodeLabels" not in active_config(talosctl, W13)[0]["machine"]
    assert talosctl("reboot", "-n", W13).rc == 0
    assert active_config(talosctl, W13)[0]["machine"]["nodeLabels"] == {"staged": "yes"}


def test_try_mode_reverts_after_its_timeout(talosctl):
    label = "machine:\n  nodeLabels:\n    tried: 'yes'\n"
    result = talosctl("patch", "mc", "-n", W13, "-p", label, "--mode", "try", "--timeout", "800ms")

    assert result.rc == 0
    assert stderr_lines(result)[1] == (
        "The config is applied in 'try' mode and will be automatically reverted back in 800ms"
    )
    assert active_config(talosctl, W13)[0]["machine"]["nodeLabels"] == {"tried": "yes"}
    wait_until(lambda: "nodeLabels" not in active_config(talosctl, W13)[0]["machine"])


def test_try_mode_message_uses_the_go_duration_of_the_default(talosctl):
    result = talosctl("patch", "mc", "-n", W13, "-p", "machine:\n  nodeLabels:\n    a: b\n", "-m", "try")

    assert "will be automatically reverted back in 1m0s" in result.stderr


def test_reboot_mode_is_refused_by_a_114_node(old_client):
    result = old_client("patch", "mc", "-n", W14, "-p", METRICS_FILE_PATCH, "--mode", "reboot")

    assert result.rc == 1
    assert stderr_lines(result)[-1] == (
        "rpc error: code = Unimplemented desc = "
        "the REBOOT mode is not supported, please use AUTO or NO_REBOOT modes instead"
    )


def test_reboot_mode_is_accepted_by_a_113_node(old_client):
    result = old_client("patch", "mc", "-n", W13, "-p", METRICS_FILE_PATCH, "--mode", "reboot")

    assert result.rc == 0
    assert stderr_lines(result)[1] == "Applied configuration with a reboot"


def test_a_114_client_no_longer_offers_reboot_mode(talosctl):
    result = talosctl("patch", "mc", "-n", W13, "-p", METRICS_FILE_PATCH, "--mode", "reboot")

    assert result.rc == 1
    assert result.stderr.startswith(
        'invalid argument "reboot" for "-m, --mode" flag: possible options are: auto, no-reboot, staged, try\n\nUsage:'
    )


def test_the_cri_document_is_rejected_by_a_113_node(talosctl):
    result = talosctl("patch", "mc", "-n", W13, "-p", METRICS_DOCUMENT_PATCH)

    assert result.rc == 1
    assert 'unknown document type "CRICustomizationConfig"' in result.stderr


def test_patch_from_a_file_relative_to_the_callers_directory(cluster: TalosCluster, tmp_path):
    (tmp_path / "metrics.yaml").write_text(METRICS_DOCUMENT_PATCH)
    context = TalosContext(endpoints=(CP,), nodes=(W15,), cwd=str(tmp_path))
    result = cluster.run(["patch", "machineconfig", "--patch-file", "metrics.yaml"], context)

    assert result.rc == 0, result.stderr
    assert result.stderr.endswith("Applied configuration without a reboot\n")


def test_a_missing_patch_file_is_reported(talosctl, tmp_path):
    result = talosctl("patch", "mc", "-n", W13, "-p", f"@{tmp_path}/absent.yaml")

    assert result.rc == 1
    assert result.stderr == f"open {tmp_path}/absent.yaml: no such file or directory\n"


def test_patch_needs_a_patch(talosctl):
    result = talosctl("patch", "mc", "-n", W13)

    assert (result.rc, result.stderr) == (1, "either --patch or --patch-file should be defined\n")


def test_deleting_an_absent_file_entry_fails_like_configpatcher(talosctl):
    removal = "machine:\n  files:\n    - path: /etc/cri/conf.d/20-customization.part\n      $patch: delete\n"

    result = talosctl("patch", "mc", "-n", W13, "-p", removal)

    assert result.rc == 1
    assert stderr_lines(result)[0].startswith("patch delete: path 'machine.files' in document '/v1alpha1'")
