"""version, service, etcd status, health, and the errors talosctl gives before and after connecting."""

from __future__ import annotations

import json
import re

from talos_support import CP, W13, W14, FakeHooks

from lab.talos import TalosCluster, TalosContext

UNREACHABLE = re.compile(
    r'rpc error: code = Unavailable desc = connection error: desc = "transport: Error while dialing: '
    r'dial tcp [\d.]+:50000: connect: (connection refused|no route to host)"'
)


def test_version_has_client_and_server_sections(talosctl):
    result = talosctl("version", "-n", f"{CP},{W14}")

    assert result.rc == 0
    client, server = result.stdout.split("Server:\n")
    assert client.startswith("Client:\n\tTag:         v1.15.0\n\tSHA:         ")
    assert server.count("\tNODE:        ") == 2
    assert f"\tNODE:        {W14}\n\tTag:         v1.14.1\n" in server
    assert server.endswith("\tEnabled:     RBAC\n")


def test_version_short_and_client_only(talosctl):
    short = talosctl("version", "--short", "-n", W13)
    client = talosctl("version", "--client")

    assert short.stdout.startswith(
        "Client:\nTalos v1.15.0\nServer:\n\tNODE:        127.0.11.1\n\tTag:         v1.13.2\n"
    )
    assert client.stdout == "Client:\n" + client.stdout.split("Client:\n", 1)[1]
    assert "Server:" not in client.stdout


def test_version_of_an_unknown_node_fails_after_the_client_section(talosctl):
    result = talosctl("version", "-n", "10.99.0.1")

    assert result.rc == 1
    assert result.stdout.endswith("Server:\n")
    assert result.stderr.startswith("error getting version from node 10.99.0.1: ")
    assert UNREACHABLE.search(result.stderr)


def test_service_list(talosctl):
    lines = talosctl("service", "-n", W13).stdout.splitlines()

    assert lines[0].split() == ["NODE", "SERVICE", "STATE", "HEALTH", "LAST", "CHANGE", "LAST", "EVENT"]
    services = {line.split()[1]: line.split() for line in lines[1:]}
    assert {"apid", "containerd", "cri", "kubelet", "machined"} <= set(services)
    assert "etcd" not in services
    assert services["cri"][2:4] == ["Running", "OK"]
    assert services["machined"][3] == "?"
    assert services["cri"][5] == "ago"


def test_control_plane_runs_etcd(talosctl):
    services = talosctl("services", "-n", CP).stdout

    assert re.search(rf"^{re.escape(CP)}\s+etcd\s+Running\s+OK\s", services, re.M)


def test_single_service_view(talosctl):
    lines = talosctl("service", "kubelet", "status", "-n", W13).stdout.splitlines()

    assert [line.split()[0] for line in lines[:5]] == ["NODE", "ID", "STATE", "HEALTH", "EVENTS"]
    assert lines[1].split() == ["ID", "kubelet"]
    assert lines[4].split(maxsplit=1)[1].startswith("[Running]: Health check successful (")


def test_restarting_cri_restarts_it_in_place(talosctl, hooks: FakeHooks):
    result = talosctl("service", "cri", "restart", "-n", W13)

    assert result.rc == 0
    assert result.stdout.splitlines()[1].split(maxsplit=1) == [W13, 'Service "cri" restarted']
    assert hooks.of("w-13") == [("cri_restarted", "w-13")]
    assert "[Stopping]: Restarting service" in talosctl("service", "cri", "-n", W13).stdout


def test_unknown_service_and_action(talosctl):
    missing = talosctl("service", "nope", "-n", W13)
    action = talosctl("service", "kubelet", "explode", "-n", W13)

    assert (missing.rc, missing.stderr) == (1, 'service "nope" is not registered on any nodes\n')
    assert (action.rc, action.stderr) == (1, 'unsupported service action: "explode"\n')


def test_etcd_status_on_the_control_plane(talosctl):
    lines = talosctl("etcd", "status", "-n", CP).stdout.splitlines()

    assert lines[0].split()[:4] == ["NODE", "MEMBER", "DB", "SIZE"]
    assert lines[0].rstrip().endswith("PROTOCOL   STORAGE   ERRORS")
    row = lines[1].split()
    assert row[0] == CP
    assert re.fullmatch(r"[0-9a-f]{16}", row[1])
    assert row[7] == row[1], "a single control plane leads itself"


def test_etcd_status_on_a_worker_fails(talosctl):
    result = talosctl("etcd", "status", "-n", W13)

    assert result.rc == 1
    assert result.stderr.startswith(f"error from node {W13}: rpc error: code = FailedPrecondition")


def test_etcd_members_lists_the_control_plane(talosctl):
    lines = talosctl("etcd", "members", "-n", CP).stdout.splitlines()

    assert lines[0].split() == ["NODE", "ID", "HOSTNAME", "PEER", "URLS", "CLIENT", "URLS", "LEARNER"]
    assert lines[1].split()[2:] == ["cp-1", f"https://{CP}:2380", f"https://{CP}:2379", "false"]
    assert len(lines) == 2


def test_version_json_is_one_object_per_node(talosctl):
    result = talosctl("version", "--json", "-n", f"{CP},{W14}")

    objects = [json.loads(line) for line in result.stdout.splitlines()]
    assert [obj["version"]["tag"] for obj in objects] == ["v1.13.2", "v1.14.1"]
    assert objects[1]["metadata"] == {"hostname": W14}
    assert "Client:" not in result.stdout


def test_health_passes_on_a_healthy_cluster(talosctl):
    result = talosctl("health", "--wait-timeout", "2s")

    assert result.rc == 0, result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == 'discovered nodes: ["127.0.10.1" "127.0.11.1" "127.0.11.2" "127.0.11.3"]'
    assert lines[1:3] == ["waiting for etcd to be healthy: ...", "waiting for etcd to be healthy: OK"]
    assert lines[-1] == "waiting for all k8s nodes to report schedulable: OK"
    assert result.stdout == ""


def test_health_waits_for_kubernetes_readiness_then_times_out(talosctl, hooks: FakeHooks):
    hooks.ready["w-14"] = False

    result = talosctl("health", "--wait-timeout", "200ms")

    assert result.rc == 1
    lines = result.stderr.splitlines()
    assert "waiting for all k8s nodes to report ready: some nodes are not ready: [w-14]" in lines
    assert lines[-1] == "rpc error: code = DeadlineExceeded desc = context deadline exceeded"


def test_health_with_explicit_nodes_checks_only_those(talosctl, hooks: FakeHooks):
    hooks.ready["w-14"] = False

    result = talosctl("health", "--control-plane-nodes", CP, "--worker-nodes", W13, "--wait-timeout", "1s")

    assert result.rc == 0, result.stderr
    assert result.stderr.startswith('discovered nodes: ["127.0.10.1" "127.0.11.1"]\n')


def test_health_reports_a_node_that_is_down(talosctl, cluster: TalosCluster):
    cluster.inject_fault("w-13", "never_returns")
    talosctl("reboot", "-n", W13, "--wait=false")

    result = talosctl("health", "--wait-timeout", "100ms")

    assert result.rc == 1
    assert re.search(rf"waiting for apid to be ready: {re.escape(W13)}: rpc error: code = Unavailable", result.stderr)


def test_nodes_must_be_set(cluster: TalosCluster):
    result = cluster.run(["get", "mc"], TalosContext(endpoints=(CP,)))

    assert result.rc == 1
    assert result.stderr == (
        "nodes are not set for the command: please use `--nodes` flag or configuration file "
        "to set the nodes to run the command against\n"
    )


def test_node_names_resolve_like_dns(talosctl):
    assert talosctl("get", "mc", "-n", "w-13").rc == 0
    unknown = talosctl("get", "mc", "-n", "no-such-node")
    assert unknown.rc == 1
    assert "lookup no-such-node: no such host" in unknown.stderr


def test_unknown_flag_command_and_arguments_print_usage(talosctl):
    flag = talosctl("get", "mc", "--frobnicate")
    command = talosctl("rebot")
    args = talosctl("reboot", "now")
    service_args = talosctl("service", "a", "b", "c")

    assert flag.rc == command.rc == args.rc == service_args.rc == 1
    assert flag.stderr.startswith("unknown flag: --frobnicate\n\nUsage:\n  talosctl get <type> [<id>] [flags]\n")
    assert command.stderr.startswith('unknown command "rebot" for "talosctl"\n\nDid you mean this?\n\treboot\n')
    assert args.stderr.startswith('unknown command "now" for "talosctl reboot"\n\nUsage:')
    assert service_args.stderr.startswith("accepts at most 2 arg(s), received 3\n")


def test_flag_values_are_validated(talosctl):
    duration = talosctl("reboot", "--timeout", "soon")
    boolean = talosctl("reboot", "--wait=maybe")
    missing = talosctl("get", "mc", "-o")

    assert duration.stderr.startswith('invalid argument "soon" for "--timeout" flag: time: invalid duration "soon"\n')
    assert boolean.stderr.startswith(
        'invalid argument "maybe" for "--wait" flag: strconv.ParseBool: parsing "maybe": invalid syntax\n'
    )
    assert missing.stderr.startswith("flag needs an argument: 'o' in -o\n")


def test_help_goes_to_stdout_with_exit_zero(talosctl):
    result = talosctl("patch", "--help")
    etcd = talosctl("etcd")

    assert result.rc == 0
    assert "Usage:\n  talosctl patch machineconfig [flags]" in result.stdout
    assert (etcd.rc, etcd.stderr) == (0, "")
    assert "Available Commands:\n  members     Get the list of etcd cluster members\n  status      Get" in etcd.stdout


def test_endpoints_that_are_all_down_fail_every_request(cluster: TalosCluster):
    cluster.inject_fault("cp-1", "never_returns")
    context = TalosContext(endpoints=(CP,), nodes=(W13,))
    assert cluster.run(["reboot", "-n", CP, "--wait=false"], context).rc == 0

    through_cp = cluster.run(["get", "mc"], context)
    other_endpoint = cluster.run(["get", "mc", "-e", W14], context)

    assert through_cp.rc == 1
    assert UNREACHABLE.search(through_cp.stderr)
    assert other_endpoint.rc == 0
