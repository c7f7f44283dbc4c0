"""Run the real alloy role through ansible-playbook and check what it renders.

One playbook run renders every case in parallel, one inventory host per case: a covering set
of the feature toggles (every pair of settings of dual-write, logs, API proxy, operator
objects and kube-prometheus-stack labels appears), the role's defaults over a directory holding
files of disabled features, a check-mode run, inputs the preflight must refuse, and role copies
with deliberately broken templates. Set UPDATE_GOLDEN=1 to regenerate tests/alloy_config/golden/.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).resolve().parent / "golden"
VALIDATOR = ROOT / "bin" / "alloy-validate"
TOGGLES = ("dual_write", "logs", "proxy", "operator", "kps_labels")
# Strength-2 covering array: every pair of toggles takes all four value combinations.
COVERING_ROWS = ("00000", "11111", "00111", "11001", "01010", "10100")
GOLDEN_CASES = ("defaults", "matrix-00000", "matrix-11111")
# Values an inventory keeps in its vault: the role must never copy them into a rendered file.
SECRETS = {"vault_mimir_username": "tenant-user-5d1c0ffee", "vault_mimir_password": "glc_s3cr3t-9f8e7d6c"}
COMMON_VARS = {
    "ansible_connection": "local",
    "ansible_python_interpreter": sys.executable,
    "alloy_cluster_name": "lab-talos",
    "alloy_mimir_url": "http://mimir-nginx.mimir.svc:80/",
    "alloy_local_prometheus_url": "http://prometheus.monitoring.svc:9090/api/v1/write",
    "alloy_loki_url": "http://loki-gateway.loki.svc/loki/api/v1/push",
    # The config stage alone: these runs have no cluster (the deploy stage is tested by molecule/collectors).
    "alloy_deploy": False,
    **SECRETS,
}
# Role copies with a deliberately broken template: role -> [(template, text, replacement, Alloy's message)].
# A syntax error stops Alloy before the semantic checks, so it gets a role of its own.
BROKEN = {
    "alloy_broken_syntax": [
        (
            "partials/external_labels.alloy.j2",
            "{{ value | string | to_json }},",
            "{{ value | string | to_json }}",
            "missing ',' in field list",
        ),
    ],
    "alloy_broken_semantics": [
        (
            "config/node_exporter.alloy.j2",
            "forward_to = {{ _alloy_forward_to | replace('SOURCE', 'node_exporter') }}",
            "forward_to = [prometheus.relabel.does_not_exist.receiver]",
            'component "prometheus.relabel.does_not_exist.receiver" does not exist or is out of scope',
        ),
        (
            "config/discovery.alloy.j2",
            'discovery.kubernetes "pods" {',
            'discovery.kubernetes "nodes" {',
            "discovery.kubernetes.nodes already declared",
        ),
        (
            "config/kube_state_metrics.alloy.j2",
            "scrape_timeout  =",
            "scrape_timeout_seconds =",
            'unrecognized attribute name "scrape_timeout_seconds"',
        ),
    ],
}
# Inputs the preflight refuses: case -> (vars, words its message must contain).
REFUSED = {
    "ha-external-label": ({"alloy_external_labels": {"__replica__": "a"}}, ["alloy_external_labels", "__replica__"]),
    "cluster-label-is-ha": (
        {"alloy_cluster_label": "prometheus_replica"},
        ["alloy_cluster_label", "prometheus_replica"],
    ),
    "no-cluster-name": ({"alloy_cluster_name": ""}, ["alloy_cluster_name", "migration_cluster_name"]),
    "push-url-as-base": ({"alloy_mimir_url": "http://mimir:8080/api/v1/push"}, ["alloy_mimir_url", "base URL"]),
    "timeout-over-interval": ({"alloy_scrape_interval": "1m", "alloy_scrape_timeout": "1m30s"}, ["1m30s"]),
    "dual-write-without-local": (
        {"alloy_dual_write_enabled": True, "alloy_local_prometheus_url": ""},
        ["alloy_local_prometheus_url", "dual-write off"],
    ),
    "shared-rules-prefix": (
        {"alloy_mimir_rules_enabled": True, "alloy_mimir_rules_namespace_prefix": "alloy"},
        ["alloy_mimir_rules_namespace_prefix", "grafana/alloy#200"],
    ),
    "unmarked-regex": (
        {"alloy_dual_write_enabled": True, "alloy_node_exporter_include_metrics": ["node_cpu.*"]},
        ["alloy_node_exporter_include_metrics", "'re:node_cpu.*'"],
    ),
}
BROKEN_CASES = [(role, edit) for role, edits in BROKEN.items() for edit in edits]


def matrix_vars(row: str) -> dict[str, object]:
    dual_write, logs, proxy, operator, kps_labels = (flag == "1" for flag in row)
    return {
        "alloy_dual_write_enabled": dual_write,
        "alloy_pod_logs_enabled": logs,
        "alloy_kubelet_via_api_proxy": proxy,
        "alloy_prometheus_operator_objects_enabled": operator,
        "alloy_mimir_rules_enabled": operator,
        "alloy_kube_prometheus_stack_labels": kps_labels,
        "alloy_mimir_tenant": "team-a" if dual_write else "",
        "alloy_mimir_auth": ("file", "env", "none")[int(row, 2) % 3],
        "alloy_kube_state_metrics_exclude_metrics": ["kube_pod_owner", "re:kube_cronjob_.+"],
        "alloy_cadvisor_include_metrics": ["container_tasks_state"],
    }


def build_inventory(work: Path) -> dict[str, dict[str, object]]:
    hosts: dict[str, dict[str, object]] = {"defaults": {}}
    for row in COVERING_ROWS:
        hosts[f"matrix-{row}"] = matrix_vars(row)
    hosts["check-mode"] = {"render_in_check_mode": True}
    for role in BROKEN:
        hosts[role] = {"role_under_test": role}
    for case, (refused_vars, _) in REFUSED.items():
        hosts[f"refused-{case}"] = refused_vars
    for name, host_vars in hosts.items():
        host_vars["alloy_config_dir"] = str(work / "out" / name)
    return hosts


OPTIONAL_FILES = ("dual_write.alloy", "pod_logs.alloy", "prometheus_operator.alloy", "mimir_rules.alloy")


def leave_files_of_disabled_features(directory: Path) -> None:
    """What an earlier run with every feature on left behind, plus a file that is not Alloy's."""
    directory.mkdir(parents=True)
    for name in OPTIONAL_FILES:
        (directory / name).write_text(f"// {name} from an earlier run\n")
    (directory / "NOTES.txt").write_text("kept\n")


def copy_broken_roles(work: Path) -> Path:
    roles = work / "roles"
    for role, edits in BROKEN.items():
        shutil.copytree(ROOT / "roles" / "alloy", roles / role)
        for template, old, new, _ in edits:
            path = roles / role / "templates" / template
            text = path.read_text()
            assert old in text, f"{role}: {template} no longer contains {old!r}"
            path.write_text(text.replace(old, new, 1))
    return roles


PLAYBOOK = """
- name: Render the alloy role once per inventory host
  hosts: all
  gather_facts: false
  tasks:
    - name: Render in check mode
      ansible.builtin.include_role:
        name: alloy
        apply:
          check_mode: true
      when: render_in_check_mode | default(false)

    - name: Render
      ansible.builtin.include_role:
        name: "{{ role_under_test | default('alloy') }}"
      when: not (render_in_check_mode | default(false))
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    work = tmp_path_factory.mktemp("alloy-role")
    hosts = build_inventory(work)
    (work / "inventory.yml").write_text(yaml.safe_dump({"all": {"hosts": hosts, "vars": COMMON_VARS}}))
    (work / "playbook.yml").write_text(PLAYBOOK)
    leave_files_of_disabled_features(work / "out" / "defaults")
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_ROLES_PATH": f"{copy_broken_roles(work)}:{ROOT / 'roles'}",
        "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
        "ANSIBLE_FORKS": str(len(hosts)),
        "ANSIBLE_LOCAL_TEMP": str(work / "tmp"),
    }
    completed = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "inventory.yml", "playbook.yml"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    try:
        report = json.loads(completed.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"ansible-playbook gave no JSON report:\n{completed.stdout[-3000:]}\n{completed.stderr[-3000:]}")
    return work, hosts, report


def host_outcome(report: dict, host: str) -> dict[str, int]:
    return report["stats"][host]


def task_results(report: dict, host: str, name_part: str) -> list[dict]:
    return [
        task["hosts"][host]
        for play in report["plays"]
        for task in play["tasks"]
        if name_part in task["task"]["name"] and host in task["hosts"]
    ]


def rendered(work: Path, case: str) -> dict[str, str]:
    directory = work / "out" / case
    return {path.name: path.read_text() for path in sorted(directory.glob("*.alloy"))}


def rendered_cases(hosts: dict) -> list[str]:
    return [name for name in hosts if name == "defaults" or name.startswith("matrix-")]


def test_every_rendering_case_succeeds(run):
    _, hosts, report = run
    for case in [*rendered_cases(hosts), "check-mode"]:
        assert host_outcome(report, case)["failures"] == 0, case


def test_every_variant_validates_with_alloy_validate(run):
    work, hosts, _ = run
    for case in rendered_cases(hosts):
        completed = subprocess.run(
            [sys.executable, str(VALIDATOR), str(work / "out" / case)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert completed.returncode == 0, f"{case}: {completed.stderr}"


def expected_files(host_vars: dict) -> set[str]:
    files = {
        "discovery.alloy",
        "kubelet_cadvisor.alloy",
        "kube_state_metrics.alloy",
        "node_exporter.alloy",
        "pod_annotations.alloy",
        "mimir_write.alloy",
    }
    optional = {
        "alloy_dual_write_enabled": "dual_write.alloy",
        "alloy_pod_logs_enabled": "pod_logs.alloy",
        "alloy_prometheus_operator_objects_enabled": "prometheus_operator.alloy",
        "alloy_mimir_rules_enabled": "mimir_rules.alloy",
    }
    return files | {name for toggle, name in optional.items() if host_vars.get(toggle)}


@pytest.mark.parametrize("row", COVERING_ROWS)
def test_only_enabled_features_are_rendered(run, row):
    work, hosts, _ = run
    assert set(rendered(work, f"matrix-{row}")) == expected_files(hosts[f"matrix-{row}"])


def test_covering_rows_cover_every_pair_of_toggles():
    for first, second in itertools.combinations(range(len(TOGGLES)), 2):
        assert {(row[first], row[second]) for row in COVERING_ROWS} == {("0", "0"), ("0", "1"), ("1", "0"), ("1", "1")}


@pytest.mark.parametrize("row", COVERING_ROWS)
def test_kubelet_scrape_follows_proxy_and_label_settings(run, row):
    work, hosts, _ = run
    settings = hosts[f"matrix-{row}"]
    cadvisor = rendered(work, f"matrix-{row}")["kubelet_cadvisor.alloy"]
    assert 'scheme            = "https"' in cadvisor
    assert "/var/run/secrets/kubernetes.io/serviceaccount/token" in cadvisor
    assert "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt" in cadvisor
    if settings["alloy_kubelet_via_api_proxy"]:
        assert '"kubernetes.default.svc:443"' in cadvisor
        assert '"/api/v1/nodes/${1}/proxy/metrics/cadvisor"' in cadvisor
        assert "insecure_skip_verify" not in cadvisor
    else:
        assert '"${1}:10250"' in cadvisor
        assert "__meta_kubernetes_node_address_InternalIP" in cadvisor
    if settings["alloy_kube_prometheus_stack_labels"]:
        assert 'job_name          = "kubelet"' in cadvisor
        assert re.search(r'target_label = "metrics_path"\s+replacement  = "/metrics/cadvisor"', cadvisor)
    else:
        assert 'job_name          = "integrations/kubernetes/cadvisor"' in cadvisor
        assert '"metrics_path"' not in cadvisor


def blocks(text: str, kind: str) -> dict[str, str]:
    """Body of every `kind "label" { ... }` block, by label."""
    found = {}
    for match in re.finditer(rf'^{re.escape(kind)} "([^"]+)" {{\n', text, re.MULTILINE):
        depth, index = 1, match.end()
        while depth:
            depth += {"{": 1, "}": -1}.get(text[index], 0)
            index += 1
        found[match.group(1)] = text[match.end() : index - 1]
    return found


@pytest.mark.parametrize("case", ["defaults", *(f"matrix-{row}" for row in COVERING_ROWS)])
def test_clustered_scrapes_only_see_labels_derived_from_their_target(run, case):
    """grafana/alloy#1611: ownership hashes every non-__meta label, so labels set before a
    clustered scrape must be copies of the target's own __meta labels (or scrape parameters)."""
    work, _, _ = run
    config = "\n".join(rendered(work, case).values())
    relabels = blocks(config, "discovery.relabel")
    scrapes = blocks(config, "prometheus.scrape")
    assert scrapes
    for scrape, body in scrapes.items():
        assert re.search(r"clustering {\s+enabled = true\s+}", body), scrape
        source = re.search(r"targets\s+= discovery\.relabel\.(\w+)\.output", body)[1]
        for rule in re.findall(r"rule {(.*?)\n  }", relabels[source], re.DOTALL):
            assert "sys.env" not in rule, source
            target = re.search(r'target_label\s+= "([^"]+)"', rule)
            if not target or target[1].startswith("__") or "keepequal" in rule:
                continue
            sources = re.search(r"source_labels = \[([^\]]*)\]", rule)
            assert sources, f"{source}: {target[1]} is set from a constant before a clustered scrape"
            assert all(label.startswith('"__meta_kubernetes_') for label in sources[1].split(", ")), rule


@pytest.mark.parametrize("case", ["defaults", *(f"matrix-{row}" for row in COVERING_ROWS)])
def test_no_ha_labels_and_the_cluster_external_label(run, case):
    work, _, _ = run
    for name, text in rendered(work, case).items():
        assert "__replica__" not in text, name
        assert "prometheus_replica" not in text, name
    assert '"cluster" = "lab-talos",' in rendered(work, case)["mimir_write.alloy"]


@pytest.mark.parametrize("case", ["defaults", "check-mode", *(f"matrix-{row}" for row in COVERING_ROWS)])
def test_no_secret_value_reaches_a_rendered_file(run, case):
    work, _, _ = run
    for name, text in rendered(work, case).items():
        for secret in SECRETS.values():
            assert secret not in text, f"{case}/{name} contains a vault value"


@pytest.mark.parametrize("row", COVERING_ROWS)
def test_credentials_are_read_from_the_secret_never_inlined(run, row):
    work, hosts, _ = run
    auth = hosts[f"matrix-{row}"]["alloy_mimir_auth"]
    mimir = rendered(work, f"matrix-{row}")["mimir_write.alloy"]
    if auth == "file":
        assert 'password_file = "/var/run/secrets/alloy/mimir/password"' in mimir
        assert "username      = local.file.mimir_username.content" in mimir
    elif auth == "env":
        assert 'password = sys.env("ALLOY_MIMIR_PASSWORD")' in mimir
    else:
        assert "basic_auth" not in mimir
    assert re.findall(r"password\s+=\s+(.+)", mimir) in ([], ['sys.env("ALLOY_MIMIR_PASSWORD")'])


@pytest.mark.parametrize("row", [row for row in COVERING_ROWS if row[0] == "1"])
def test_cloud_path_filters_by_allow_list(run, row):
    work, _, _ = run
    cloud = blocks(rendered(work, f"matrix-{row}")["dual_write.alloy"], "prometheus.relabel")
    keep = re.compile(json.loads(re.search(r"regex\s+= (\".*\")\n\s+action\s+= \"keep\"", cloud["cloud_cadvisor"])[1]))
    assert keep.fullmatch("container_cpu_usage_seconds_total")
    assert keep.fullmatch("container_tasks_state")  # include_metrics
    assert keep.fullmatch("up")
    assert not keep.fullmatch("container_blkio_device_usage_total")
    ksm = cloud["cloud_kube_state_metrics"]
    drop = re.compile(json.loads(re.search(r"regex\s+= (\".*\")\n\s+action\s+= \"drop\"", ksm)[1]))
    assert drop.fullmatch("kube_pod_owner")
    assert drop.fullmatch("kube_cronjob_next_schedule_time")
    assert "kube_pod_owner" not in re.search(r"regex\s+= (\".*\")\n\s+action\s+= \"keep\"", ksm)[1]
    assert "rule" not in cloud["cloud_pod_annotations"]


def test_kube_state_metrics_container_id_is_stripped_for_the_containerd_join(run):
    work, _, _ = run
    ksm = rendered(work, "defaults")["kube_state_metrics.alloy"]
    assert '"containrd://(.+)"' not in ksm
    rule = re.search(r'source_labels = \["container_id"\]\s+regex\s+= "([^"]+)"\s+target_label\s+= "container_id"', ksm)
    assert re.fullmatch(rule[1], "containerd://4f3c2a").group(1) == "4f3c2a"


def test_defaults_keep_kube_prometheus_stack_jobs_and_15s(run):
    work, _, _ = run
    config = "\n".join(rendered(work, "defaults").values())
    assert set(re.findall(r'job_name\s+= "([^"]+)"', config)) == {
        "kubelet",
        "kube-state-metrics",
        "node-exporter",
        "kubernetes-pods",
    }
    assert set(re.findall(r'scrape_interval\s+= "([^"]+)"', config)) == {"15s"}


def test_pod_logs_pipeline(run):
    work, _, _ = run
    logs = rendered(work, "matrix-11111")["pod_logs.alloy"]
    for step in (
        "local.file_match.pod_logs.targets",
        "loki.process.pod_logs.receiver",
        "stage.cri {}",
        "loki.write.loki.receiver",
    ):
        assert step in logs
    drop = json.loads(re.search(r"expression\s+= (\".*\")", logs)[1])
    assert re.fullmatch(drop, '10.0.0.1 - - "GET /healthz HTTP/1.1" 200 "kube-probe/1.32"')
    assert not re.fullmatch(drop, "order 42 shipped")
    assert re.search(r'stage\.structured_metadata {\s+values = {\s+"pod" = "",', logs)


def test_mimir_rules_use_a_distinct_namespace_prefix(run):
    work, _, _ = run
    rules = rendered(work, "matrix-11111")["mimir_rules.alloy"]
    assert 'mimir_namespace_prefix = "lab-talos-alloy"' in rules
    assert 'address                = "http://mimir-nginx.mimir.svc:80"' in rules


def test_check_mode_validates_but_installs_nothing(run):
    work, _, report = run
    assert not (work / "out" / "check-mode").exists()
    result = task_results(report, "check-mode", "validate the rendered configuration")[0]
    assert result.get("failed") is not True
    assert result["changed"] is True
    assert set(result["written"]) == expected_files({})


def test_turning_features_off_removes_their_files(run):
    work, _, report = run
    assert set(rendered(work, "defaults")) == expected_files({})
    assert (work / "out" / "defaults" / "NOTES.txt").read_text() == "kept\n"
    installed = task_results(report, "defaults", "validate the rendered configuration")[0]
    assert set(installed["removed"]) == set(OPTIONAL_FILES)


@pytest.mark.parametrize(
    ("role", "edit"), BROKEN_CASES, ids=[message.split(" ")[0] for _, (*_, message) in BROKEN_CASES]
)
def test_broken_template_is_caught_with_alloys_message(run, role, edit):
    work, _, report = run
    template, _, _, message = edit
    failure = task_results(report, role, "validate the rendered configuration")[0]
    assert failure["failed"] is True
    rendered_name = Path(template).name.removesuffix(".j2")
    located = [line for line in failure["msg"].splitlines() if message in line]
    assert located, failure["msg"]
    if template.startswith("config/"):
        assert re.match(rf".*/{re.escape(rendered_name)}:\d+:\d+: ", located[0]), located[0]
    assert not (work / "out" / role).exists()


@pytest.mark.parametrize("case", REFUSED)
def test_preflight_refuses_with_a_message_naming_the_fix(run, case):
    work, _, report = run
    host = f"refused-{case}"
    failures = [
        result
        for play in report["plays"]
        for task in play["tasks"]
        for name, result in task["hosts"].items()
        if name == host and result.get("failed")
    ]
    assert len(failures) == 1
    message = "\n".join([failures[0]["msg"], *(item.get("msg", "") for item in failures[0].get("results", []))])
    for word in REFUSED[case][1]:
        assert word in message
    assert not (work / "out" / host).exists()


@pytest.mark.parametrize("case", GOLDEN_CASES)
def test_golden_files(run, case):
    work, _, _ = run
    actual = rendered(work, case)
    golden = GOLDEN / case
    if os.environ.get("UPDATE_GOLDEN") == "1":
        shutil.rmtree(golden, ignore_errors=True)
        golden.mkdir(parents=True)
        for name, text in actual.items():
            (golden / name).write_text(text)
    expected = {path.name: path.read_text() for path in sorted(golden.glob("*.alloy"))}
    assert expected, f"no golden files for {case}: run with UPDATE_GOLDEN=1"
    assert actual == expected
