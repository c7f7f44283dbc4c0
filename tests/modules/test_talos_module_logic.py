"""module_utils/talos.py without a node: versions, config parsing, the metrics plan, outputs, redaction.

Plans are also applied with the lab's Talos patch engine (strategic merge with `$patch: delete`,
RFC 6902), so a test sees the configuration a node would end up with, not only the patch text.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from ansible.module_utils.talos import (
    CRI_CUSTOMIZATION_PATH,
    METRICS_DOCUMENT_NAME,
    HealthTarget,
    Mechanism,
    MetricsAddressError,
    NodeHealth,
    PlanError,
    TalosctlError,
    TalosVersion,
    active_config,
    active_configs,
    check_metrics_address,
    effective_metrics_address,
    etcd_problems,
    metrics_fragment,
    metrics_mechanism,
    metrics_setting_present,
    observe_health,
    parse_patch_output,
    parse_server_version,
    parse_server_versions,
    parse_service_view,
    parse_table,
    plan_metrics,
    redact_secrets,
    residual_metrics_address,
    wait_for_health,
)

from lab.talos.patching import apply_patches, load_patch

V13 = TalosVersion(1, 13, 2)
V14 = TalosVersion(1, 14, 1)
V15 = TalosVersion(1, 15, 0)
ADDRESS = "127.0.0.1:11234"
LEGACY_FRAGMENT = '[metrics]\n  address = "127.0.0.1:11234"\n'
PLUGIN_FRAGMENT = '[plugins."io.containerd.server.v1.metrics"]\n  address = "127.0.0.1:11234"\n'


def config(*files: dict[str, Any], extra: tuple[dict[str, Any], ...] = ()) -> list[dict[str, Any]]:
    machine: dict[str, Any] = {"type": "worker", "token": "abc.def", "network": {"hostname": "w-1"}}
    if files:
        machine["files"] = list(files)
    return [{"version": "v1alpha1", "machine": machine, "cluster": {"clusterName": "c"}}, *extra]


def cri_file(content: str = LEGACY_FRAGMENT) -> dict[str, Any]:
    return {"content": content, "path": CRI_CUSTOMIZATION_PATH, "op": "create"}


def metrics_doc(content: str, name: str = METRICS_DOCUMENT_NAME) -> dict[str, Any]:
    return {"apiVersion": "v1alpha1", "kind": "CRICustomizationConfig", "name": name, "content": content}


def applied(docs: list[dict[str, Any]], patches: tuple[str, ...]) -> list[dict[str, Any]]:
    return apply_patches(docs, [load_patch(text) for text in patches])


def cri_entries(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [f for f in docs[0]["machine"].get("files") or [] if f["path"] == CRI_CUSTOMIZATION_PATH]


# --- versions ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("v1.13.2", TalosVersion(1, 13, 2)),
        ("1.14.0", TalosVersion(1, 14, 0)),
        ("Talos v1.12.0", TalosVersion(1, 12, 0)),
        ("v1.15.0-alpha.1", TalosVersion(1, 15, 0)),
        ("  v1.14.3\n", TalosVersion(1, 14, 3)),
    ],
)
def test_version_parsing(text: str, expected: TalosVersion):
    assert TalosVersion.parse(text) == expected


@pytest.mark.parametrize("text", ["", "v1.13", "latest", "Talos", "v1.13.2 extra"])
def test_version_parsing_refuses_what_is_not_a_version(text: str):
    with pytest.raises(ValueError, match="not a Talos version"):
        TalosVersion.parse(text)


def test_server_version_is_the_tag_of_the_server_section_not_the_client():
    stdout = (
        "Client:\n\tTag:         v1.15.0\n\tSHA:         abc\n"
        "Server:\n\tNODE:        10.5.0.2\n\tTag:         v1.13.2\n\tSHA:         def\n\tEnabled:     RBAC\n"
    )
    assert parse_server_version(stdout) == V13


def test_server_version_after_a_short_client_line():
    assert parse_server_version("Client:\nTalos v1.15.0\nServer:\n\tNODE: n\n\tTag:         v1.14.1\n") == V14


def test_server_version_without_a_server_section_is_an_error():
    with pytest.raises(ValueError, match="no Server"):
        parse_server_version("Client:\nTalos v1.15.0\n")


@pytest.mark.parametrize(
    ("version", "mechanism", "fragment"),
    [
        (TalosVersion(1, 12, 5), Mechanism.FILES, LEGACY_FRAGMENT),
        (V13, Mechanism.FILES, LEGACY_FRAGMENT),
        (TalosVersion(1, 14, 0), Mechanism.DOCUMENT, LEGACY_FRAGMENT),
        (V15, Mechanism.DOCUMENT, PLUGIN_FRAGMENT),
        (TalosVersion(2, 0, 0), Mechanism.DOCUMENT, PLUGIN_FRAGMENT),
    ],
)
def test_mechanism_and_fragment_follow_the_version(version: TalosVersion, mechanism: Mechanism, fragment: str):
    assert metrics_mechanism(version) is mechanism
    assert metrics_fragment(version, ADDRESS) == fragment


# --- get mc -o yaml ----------------------------------------------------------------------------------


def resource(resource_id: str, spec: str) -> str:
    meta = f"    namespace: config\n    type: MachineConfigs.config.talos.dev\n    id: {resource_id}\n    version: 2\n"
    block = "".join(f"    {line}\n" for line in spec.splitlines())
    return f"node: 10.5.0.2\nmetadata:\n{meta}    owner:\n    phase: running\nspec: |\n{block}"


def test_active_config_is_the_v1alpha1_resource_with_all_its_documents():
    active = "version: v1alpha1\nmachine:\n    type: worker\n---\napiVersion: v1alpha1\nkind: CRICustomizationConfig\n"
    active += 'name: zz\ncontent: |\n    [metrics]\n      address = "127.0.0.1:1"\n'
    persistent = "version: v1alpha1\nmachine:\n    type: controlplane\n"
    stdout = resource("persistent", persistent) + "---\n" + resource("v1alpha1", active)

    docs = active_config(stdout)

    assert docs[0]["machine"]["type"] == "worker"
    assert docs[1] == metrics_doc('[metrics]\n  address = "127.0.0.1:1"\n', "zz")


def test_active_config_that_is_not_yaml_is_a_value_error():
    with pytest.raises(ValueError, match="not valid YAML"):
        active_config('node: n\nmetadata:\n    id: v1alpha1\nspec: "version: v1alpha1 machine: type: worker"\n')


def test_active_config_without_a_v1alpha1_document_is_an_error():
    spec = "apiVersion: v1alpha1\nkind: CRICustomizationConfig\nname: m\ncontent: x\n"
    with pytest.raises(ValueError, match="no v1alpha1 document"):
        active_config(resource("v1alpha1", spec))


def test_active_config_without_a_v1alpha1_resource_is_an_error():
    with pytest.raises(ValueError, match="no v1alpha1"):
        active_config(resource("persistent", "version: v1alpha1\n"))


# --- presence and plans --------------------------------------------------------------------------------


def test_files_plan_on_113_adds_one_entry_and_a_second_run_finds_it():
    plan = plan_metrics(config(), V13, "present", ADDRESS)

    assert plan.mechanism is Mechanism.FILES
    after = applied(config(), plan.patches)
    assert cri_entries(after) == [cri_file()]
    assert metrics_setting_present(after, V13, ADDRESS)
    assert plan_metrics(after, V13, "present", ADDRESS).patches == ()


def test_file_patch_is_the_documented_strategic_patch():
    (patch,) = plan_metrics(config(), V13, "present", ADDRESS).patches
    assert yaml.safe_load(patch) == {"machine": {"files": [cri_file()]}}
    assert "content: |\n" in patch


@pytest.mark.parametrize(
    ("files", "present"),
    [
        ((), False),
        ((cri_file(),), True),
        ((cri_file('[metrics]\n  address = "127.0.0.1:9999"\n'),), False),
        ((cri_file(), cri_file()), False),
        (({"content": LEGACY_FRAGMENT, "path": "/var/etc/other", "op": "create"},), False),
    ],
    ids=["absent", "exact", "other-address", "duplicated", "other-path"],
)
def test_presence_on_113_compares_path_and_content_and_counts_duplicates(files: tuple, present: bool):
    assert metrics_setting_present(config(*files), V13, ADDRESS) is present


def test_duplicated_entries_are_replaced_by_exactly_one():
    docs = config({"content": "x", "path": "/var/keep", "op": "create"}, cri_file(), cri_file())

    plan = plan_metrics(docs, V13, "present", ADDRESS)

    after = applied(docs, plan.patches)
    assert cri_entries(after) == [cri_file()]
    assert after[0]["machine"]["files"][0] == {"content": "x", "path": "/var/keep", "op": "create"}


def test_single_document_removal_tests_each_entry_before_removing_it_highest_index_first():
    docs = config(cri_file(), {"content": "x", "path": "/var/keep"}, cri_file())

    removal = json.loads(plan_metrics(docs, V13, "absent", ADDRESS).patches[0])

    assert [(op["op"], op["path"]) for op in removal] == [
        ("test", "/machine/files/2/path"),
        ("test", "/machine/files/2/content"),
        ("remove", "/machine/files/2"),
        ("test", "/machine/files/0/path"),
        ("test", "/machine/files/0/content"),
        ("remove", "/machine/files/0"),
    ]


def test_removal_fails_instead_of_removing_another_entry_when_the_config_moved():
    docs = config(cri_file())
    patches = plan_metrics(docs, V13, "absent", ADDRESS).patches
    moved = config({"content": "x", "path": "/var/keep"}, cri_file())

    with pytest.raises(Exception, match="test"):
        applied(moved, patches)


def test_multi_document_removal_uses_one_delete_selector_per_entry():
    other = {"apiVersion": "v1alpha1", "kind": "SideroLinkConfig", "apiUrl": "https://x"}
    docs = config(cri_file('[metrics]\n  address = "127.0.0.1:1"\n'), extra=(other,))

    plan = plan_metrics(docs, V13, "present", ADDRESS)

    assert yaml.safe_load(plan.patches[0]) == {
        "machine": {"files": [{"content": '[metrics]\n  address = "127.0.0.1:1"\n', "$patch": "delete"}]}
    }
    after = applied(docs, plan.patches)
    assert cri_entries(after) == [cri_file()]
    assert after[1] == other


def test_a_foreign_cri_file_is_never_rewritten():
    foreign = cri_file('[plugins."io.containerd.cri.v1.images"]\n  discard_unpacked_layers = false\n')
    with pytest.raises(PlanError, match="other CRI settings"):
        plan_metrics(config(foreign), V13, "present", ADDRESS)


def test_absent_on_113_keeps_a_foreign_file_and_says_it_still_sets_an_address():
    foreign = cri_file('[metrics]\n  address = "0.0.0.0:11234"\n  grpc_histogram = true\n')
    docs = config(foreign, cri_file())

    plan = plan_metrics(docs, V13, "absent", ADDRESS)

    assert cri_entries(applied(docs, plan.patches)) == [foreign]
    assert len(plan.notes) == 1 and "0.0.0.0:11234" in plan.notes[0]


def test_absent_with_nothing_to_remove_is_a_no_op():
    plan = plan_metrics(config(), V14, "absent", ADDRESS)
    assert plan.patches == () and plan.notes == ()


@pytest.mark.parametrize(("version", "fragment"), [(V14, LEGACY_FRAGMENT), (V15, PLUGIN_FRAGMENT)])
def test_document_plan_adds_the_named_document_and_then_finds_it(version: TalosVersion, fragment: str):
    plan = plan_metrics(config(), version, "present", ADDRESS)

    assert plan.mechanism is Mechanism.DOCUMENT
    after = applied(config(), plan.patches)
    assert after[1:] == [metrics_doc(fragment)]
    assert plan_metrics(after, version, "present", ADDRESS).patches == ()


def test_document_with_another_address_is_updated_in_place_not_duplicated():
    docs = config(extra=(metrics_doc('[metrics]\n  address = "127.0.0.1:1"\n'),))

    after = applied(docs, plan_metrics(docs, V14, "present", ADDRESS).patches)

    assert after[1:] == [metrics_doc(LEGACY_FRAGMENT)]


def test_upgraded_to_115_the_document_moves_to_the_plugin_table():
    docs = config(extra=(metrics_doc(LEGACY_FRAGMENT),))
    assert metrics_setting_present(docs, V14, ADDRESS)
    assert not metrics_setting_present(docs, V15, ADDRESS)


def test_absent_on_114_deletes_the_document_and_a_legacy_entry_left_by_113():
    docs = config(cri_file(), extra=(metrics_doc(LEGACY_FRAGMENT),))

    after = applied(docs, plan_metrics(docs, V14, "absent", ADDRESS).patches)

    assert len(after) == 1
    assert cri_entries(after) == []


def test_present_on_114_leaves_the_legacy_entry_alone_and_still_wins_over_it():
    docs = config(cri_file('[metrics]\n  address = "127.0.0.1:1"\n'))

    after = applied(docs, plan_metrics(docs, V14, "present", ADDRESS).patches)

    assert len(cri_entries(after)) == 1
    assert effective_metrics_address(after, V14) == ADDRESS


# --- the address in effect ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("docs", "version", "expected"),
    [
        (config(), V13, None),
        (config(cri_file()), V13, ADDRESS),
        (config(extra=(metrics_doc(LEGACY_FRAGMENT),)), V13, None),
        (config(extra=(metrics_doc(PLUGIN_FRAGMENT),)), V15, ADDRESS),
        (config(cri_file(), extra=(metrics_doc('[metrics]\n  address = ""\n'),)), V14, None),
        (
            config(extra=(metrics_doc('[metrics]\n  address = "127.0.0.1:2"\n', "aa"), metrics_doc(LEGACY_FRAGMENT))),
            V14,
            ADDRESS,
        ),
        (
            config(
                extra=(
                    metrics_doc(
                        '[metrics]\n  address = "127.0.0.1:2"\n  [plugins."io.containerd.server.v1.metrics"]\n  address = "127.0.0.1:3"\n'
                    ),
                )
            ),
            V15,
            "127.0.0.1:3",
        ),
        (config(cri_file("not toml [")), V13, None),
    ],
    ids=[
        "nothing",
        "legacy-file",
        "document-ignored-before-114",
        "document",
        "empty-address-disables",
        "name-order",
        "plugin-table-wins",
        "unparsable",
    ],
)
def test_effective_metrics_address(docs: list[dict[str, Any]], version: TalosVersion, expected: str | None):
    assert effective_metrics_address(docs, version) == expected


# --- the address itself ------------------------------------------------------------------------------------


@pytest.mark.parametrize("address", ["127.0.0.1:11234", "127.3.4.5:1", "[::1]:11234", "localhost:11234"])
def test_loopback_addresses_are_accepted(address: str):
    check_metrics_address(address, allow_non_loopback=False)


@pytest.mark.parametrize("address", ["0.0.0.0:11234", "10.0.0.5:11234", ":11234", "[::]:11234", "node-1:11234"])
def test_non_loopback_addresses_are_refused_with_the_exposure_explained(address: str):
    with pytest.raises(MetricsAddressError, match="without TLS or authentication") as refused:
        check_metrics_address(address, allow_non_loopback=False)
    assert "allow_non_loopback" in str(refused.value)
    check_metrics_address(address, allow_non_loopback=True)


@pytest.mark.parametrize("address", ["11234", "host:port", "::1:11234", "127.0.0.1:0", "127.0.0.1:70000"])
def test_malformed_addresses_are_refused_even_with_the_override(address: str):
    with pytest.raises(MetricsAddressError):
        check_metrics_address(address, allow_non_loopback=True)


# --- what talosctl prints ------------------------------------------------------------------------------------

PATCHED = "patched MachineConfigs.config.talos.dev/v1alpha1 at the node 10.5.0.3"
WARNING = "WARNING: 10.5.0.3: server version 1.13.2 is older than client version 1.15.0"


@pytest.mark.parametrize(
    ("lines", "changed", "reboot"),
    [
        ([WARNING, PATCHED, "Applied configuration without a reboot"], True, False),
        (
            [
                PATCHED,
                "Applied configuration with a reboot: this config change can't be applied in immediate mode",
                "diff:",
                "--- a",
            ],
            True,
            True,
        ),
        ([PATCHED, "Staged configuration to be applied after the next reboot"], True, True),
        ([PATCHED, "The config is applied in 'try' mode and will be automatically reverted back in 1m0s"], True, False),
        ([WARNING, "Apply was skipped: no changes detected."], False, False),
    ],
    ids=["no-reboot", "auto-reboot", "staged", "try", "skipped"],
)
def test_patch_outcome(lines: list[str], changed: bool, reboot: bool):
    outcome = parse_patch_output(lines)
    assert (outcome.changed, outcome.reboot_required, outcome.diff) == (changed, reboot, None)


def test_dry_run_outcome_carries_the_config_diff():
    lines = [
        WARNING,
        PATCHED,
        "Dry run summary:",
        "Applied configuration with a reboot (skipped in dry-run).",
        "Config diff:",
        "",
    ]
    lines += ["--- a", "+++ b", "@@ -3,2 +3,4 @@", "     type: worker", "+    files:"]

    outcome = parse_patch_output(lines)

    assert outcome.changed and outcome.reboot_required
    assert outcome.diff == "--- a\n+++ b\n@@ -3,2 +3,4 @@\n     type: worker\n+    files:\n"


def test_dry_run_without_changes_is_unchanged():
    lines = [
        PATCHED,
        "Dry run summary:",
        "Applied configuration without a reboot (skipped in dry-run).",
        "Config diff:",
        "",
    ]
    outcome = parse_patch_output([*lines, "No changes."])
    assert (outcome.changed, outcome.reboot_required, outcome.diff) == (False, False, "")


def test_secrets_in_diff_context_are_redacted_and_the_rest_is_kept():
    diff = (
        "@@ -1,9 +1,10 @@\n"
        "     token: abcdef.0123456789abcdef\n"
        "     ca:\n"
        "         crt: LS0tLS1CRUdJTi\n"
        "         key: LS0tLS1CRUdJTiBFRDI1NTE5\n"
        "-    secret: c2VjcmV0\n"
        "+    secretboxEncryptionSecret: c2VjcmV0\n"
        "     serviceAccount:\n"
        "         key: |\n"
        "             -----BEGIN EC PRIVATE KEY-----\n"
        "             MHcCAQEEIB\n"
        "     files:\n"
        '+        - content: |\n+              address = "127.0.0.1:11234"\n'
    )

    redacted = redact_secrets(diff)

    assert redacted.splitlines() == [
        "@@ -1,9 +1,10 @@",
        "     token: <redacted>",
        "     ca:",
        "         crt: LS0tLS1CRUdJTi",
        "         key: <redacted>",
        "-    secret: <redacted>",
        "+    secretboxEncryptionSecret: <redacted>",
        "     serviceAccount:",
        "         key: <redacted>",
        "             <redacted>",
        "             <redacted>",
        "     files:",
        "+        - content: |",
        '+              address = "127.0.0.1:11234"',
    ]


def test_tables_split_on_the_header_columns_even_with_spaces_in_cells_and_an_empty_last_one():
    stdout = (
        "NODE         MEMBER             DB SIZE   IN USE            LEADER             LEARNER   ERRORS\n"
        "127.0.10.1   4bced57497dcb644   22 MB     6.5 MB (30.00%)   4bced57497dcb644   false     \n"
    )
    assert parse_table(stdout) == [
        {
            "NODE": "127.0.10.1",
            "MEMBER": "4bced57497dcb644",
            "DB SIZE": "22 MB",
            "IN USE": "6.5 MB (30.00%)",
            "LEADER": "4bced57497dcb644",
            "LEARNER": "false",
            "ERRORS": "",
        }
    ]


def test_service_view_keeps_the_first_state_and_health_lines():
    stdout = (
        "NODE     10.5.0.2\nID       cri\nSTATE    Running\nHEALTH   OK\n"
        "EVENTS   [Running]: Health check successful (2m ago)\n         [Preparing]: Creating service runner (2m ago)\n"
    )
    assert parse_service_view(stdout) == {"NODE": "10.5.0.2", "ID": "cri", "STATE": "Running", "HEALTH": "OK"}


# --- reboots, residual settings, health ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("docs", "version", "state", "reboot"),
    [
        (config(), V13, "present", True),
        (config(), V14, "present", False),
        (config(cri_file()), V13, "absent", True),
        (config(extra=(metrics_doc(LEGACY_FRAGMENT),)), V14, "absent", False),
        (config(cri_file(), extra=(metrics_doc(LEGACY_FRAGMENT),)), V14, "absent", True),
    ],
)
def test_a_plan_expects_a_reboot_exactly_when_it_touches_machine_files(docs, version, state, reboot):
    plan = plan_metrics(docs, version, state, ADDRESS)

    assert plan.patches
    assert plan.reboot_expected is reboot


@pytest.mark.parametrize(
    ("docs", "version", "expected"),
    [
        (config(cri_file()), V13, None),
        (config(extra=(metrics_doc(LEGACY_FRAGMENT),)), V14, None),
        (config(cri_file('[metrics]\n  address = "0.0.0.0:11234"\n[grpc]\n  x = 1\n')), V13, "0.0.0.0:11234"),
        (
            config(extra=(metrics_doc(LEGACY_FRAGMENT), metrics_doc('[metrics]\n  address = ":9"\n', "other"))),
            V14,
            ":9",
        ),
    ],
)
def test_residual_address_is_what_stays_in_effect_once_our_settings_are_gone(docs, version, expected):
    assert residual_metrics_address(docs, version) == expected


def etcd(**fields: Any) -> dict[str, Any]:
    members = [{"id": str(n), "hostname": f"cp-{n}", "learner": False} for n in range(3)]
    return {"member_id": "0", "learner": False, "errors": "", "members": members, "error": None, **fields}


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (etcd(), []),
        (etcd(error="rpc error: etcd is not running\nmore"), ["etcd unreadable: rpc error: etcd is not running"]),
        (etcd(member_id=None), ["etcd: this node has no member"]),
        (etcd(learner=True), ["etcd: this node's member is still a learner"]),
        (etcd(errors="NOSPACE"), ["etcd: the member reports errors: NOSPACE"]),
        (etcd(members=[{"id": "0"}]), ["etcd: 1 of 3 members"]),
    ],
)
def test_etcd_problems_name_what_is_not_whole(state: dict[str, Any], expected: list[str]):
    assert etcd_problems(state, 3) == expected


class FakeTalos:
    """Answers the reads observe_health makes, from a list of boots: None while the node is unreachable."""

    node = "10.5.0.3"

    def __init__(self, boots: list[str | None], cri: str = "Running OK", config_docs: list | None = None) -> None:
        self.boots = boots
        self.cri = cri
        self.docs = config_docs or config(cri_file())
        self.calls: list[str] = []

    def run(self, *args: str) -> Any:
        self.calls.append(args[0])
        if args[0] == "read":
            boot = self.boots.pop(0) if len(self.boots) > 1 else self.boots[0]
            if boot is None:
                raise TalosctlError("talosctl read", 1, "rpc error: code = Unavailable desc = connection refused")
            return type("Result", (), {"stdout": boot + "\n"})
        if args[0] == "service":
            state, health = self.cri.split()
            return type("Result", (), {"stdout": f"NODE 10.5.0.3\nID cri\nSTATE {state}\nHEALTH {health}\n"})
        spec = yaml.safe_dump_all(self.docs)
        document = {"node": self.node, "metadata": {"id": "v1alpha1"}, "spec": spec}
        return type("Result", (), {"stdout": yaml.safe_dump(document)})


def test_a_rebooting_node_is_healthy_once_it_answers_on_a_new_boot_with_cri_and_the_setting():
    talos = FakeTalos(["old", None, None, "new"])
    target = HealthTarget(ADDRESS, boot_id_before="old")
    clock = iter(range(100))

    health, _ = wait_for_health(
        lambda: observe_health(talos, V13, False, target), 60, 1, clock=lambda: next(clock), sleep=lambda _s: None
    )

    assert health.unmet == [] and health.boot_id == "new"
    assert health.cri == {"state": "Running", "health": "OK"} and health.metrics_address == ADDRESS
    assert talos.calls == ["read", "read", "read", "read", "service", "get"]


def test_waiting_ends_at_the_timeout_with_what_was_last_seen():
    talos = FakeTalos(["old"])
    target = HealthTarget(ADDRESS, boot_id_before="old")
    ticks = iter(range(0, 100, 5))
    naps: list[float] = []

    health, waited = wait_for_health(
        lambda: observe_health(talos, V13, False, target), 12, 5, clock=lambda: next(ticks), sleep=naps.append
    )

    assert health.unmet == ["still on the boot before the change (boot id old)"]
    assert waited >= 12 and naps == [5, 2]


def test_cri_unhealthy_and_a_missing_setting_are_both_reported():
    talos = FakeTalos(["b"], cri="Running Fail", config_docs=config())

    health = observe_health(talos, V13, False, HealthTarget(ADDRESS))

    assert health.unmet == [
        "CRI Running, health Fail",
        "containerd metrics address in effect None, wanted '127.0.0.1:11234'",
    ]
    assert isinstance(health, NodeHealth) and health.as_dict()["unmet"] == health.unmet


def test_versions_of_several_nodes_are_read_per_node_line():
    stdout = (
        "Client:\n\tTag:         v1.15.0\nServer:\n"
        "\tNODE:        10.5.0.2\n\tTag:         v1.13.2\n\tSHA:         x\n"
        "\tNODE:        10.5.0.3\n\tTag:         v1.14.1\n"
    )

    assert parse_server_versions(stdout) == {"10.5.0.2": V13, "10.5.0.3": V14}


def test_configurations_of_several_nodes_are_keyed_by_node():
    def resource(node: str, rid: str, hostname: str) -> dict[str, Any]:
        spec = yaml.safe_dump({"version": "v1alpha1", "machine": {"network": {"hostname": hostname}}})
        return {"node": node, "metadata": {"id": rid}, "spec": spec}

    text = yaml.safe_dump_all(
        [
            resource("10.5.0.2", "persistent", "old"),
            resource("10.5.0.2", "v1alpha1", "a"),
            resource("10.5.0.3", "v1alpha1", "b"),
        ]
    )

    configs = active_configs(text)

    assert {node: docs[0]["machine"]["network"]["hostname"] for node, docs in configs.items()} == {
        "10.5.0.2": "a",
        "10.5.0.3": "b",
    }
