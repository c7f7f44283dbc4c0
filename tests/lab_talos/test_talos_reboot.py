"""Reboots: progress lines, boot ids, waiting or not, faults, and concurrent callers."""

from __future__ import annotations

import threading
import time

from talos_support import CP, W13, W14, FakeHooks, stderr_lines, wait_until

from lab.talos import TalosCluster


def test_reboot_waits_and_reports_the_post_check(talosctl, cluster: TalosCluster, hooks: FakeHooks):
    boot_id = cluster.snapshot()["w-13"]["boot_id"]

    result = talosctl("reboot", "-n", W13)

    assert result.rc == 0
    assert result.stdout == ""
    lines = stderr_lines(result)
    assert lines[0] == f'"{W13}": waiting for actor ID'
    assert lines[-1] == f'"{W13}": post check passed'
    assert f'"{W13}": unavailable, retrying...' in lines
    state = cluster.snapshot()["w-13"]
    assert (state["state"], state["boots"]) == ("running", 2)
    assert state["boot_id"] != boot_id
    assert hooks.of("w-13") == [("node_going_down", "w-13"), ("node_came_up", "w-13")]


def test_reboot_without_wait_returns_at_once(talosctl, cluster: TalosCluster):
    result = talosctl("reboot", "-n", W13, "--wait=false")

    assert (result.rc, result.stdout, stderr_lines(result)) == (0, "", [])
    assert cluster.snapshot()["w-13"]["state"] == "rebooting"
    assert talosctl("get", "mc", "-n", W13).rc == 1
    wait_until(lambda: cluster.snapshot()["w-13"]["state"] == "running")


def test_reboot_of_several_nodes_tracks_each(talosctl, cluster: TalosCluster):
    result = talosctl("reboot", "-n", f"{W13},{W14}")

    assert result.rc == 0
    assert f'"{W13}": post check passed' in result.stderr
    assert f'"{W14}": post check passed' in result.stderr
    assert {cluster.snapshot()[name]["boots"] for name in ("w-13", "w-14")} == {2}


def test_a_node_that_never_returns_times_out_the_wait(talosctl, cluster: TalosCluster):
    cluster.inject_fault("w-13", "never_returns")

    result = talosctl("reboot", "-n", W13, "--timeout", "300ms")

    assert result.rc == 1
    assert result.stderr.splitlines()[-1] == f'"{W13}": context deadline exceeded'
    assert cluster.snapshot()["w-13"]["state"] == "rebooting"
    assert cluster.snapshot()["w-13"]["fault"] == {"kind": "never_returns"}


def test_clearing_never_returns_brings_the_node_up(talosctl, cluster: TalosCluster, hooks: FakeHooks):
    cluster.inject_fault("w-13", "never_returns")
    talosctl("reboot", "-n", W13, "--wait=false")
    assert cluster.snapshot()["w-13"]["state"] == "rebooting"

    cluster.clear_fault("w-13")

    assert cluster.snapshot()["w-13"]["state"] == "running"
    assert hooks.of("w-13")[-1] == ("node_came_up", "w-13")


def test_a_waiting_caller_sees_the_node_come_back_when_the_fault_clears(talosctl, cluster: TalosCluster):
    cluster.inject_fault("w-13", "never_returns")
    results = []
    waiter = threading.Thread(target=lambda: results.append(talosctl("reboot", "-n", W13, "--timeout", "5s")))
    waiter.start()
    wait_until(lambda: cluster.snapshot()["w-13"]["state"] == "rebooting")

    cluster.clear_fault("w-13")
    waiter.join(timeout=5)

    assert results and results[0].rc == 0
    assert results[0].stderr.endswith(f'"{W13}": post check passed\n')


def test_slow_reboot_takes_its_time(talosctl, cluster: TalosCluster):
    cluster.inject_fault("w-13", "slow_reboot", seconds=0.5)
    started = time.monotonic()

    result = talosctl("reboot", "-n", W13)

    assert result.rc == 0
    assert time.monotonic() - started >= 0.5
    assert cluster.snapshot()["w-13"]["fault"] == {"kind": "slow_reboot", "seconds": 0.5}


def test_unknown_fault_kinds_are_refused(cluster: TalosCluster):
    for kind, params in (("meteor", {}), ("slow_reboot", {})):
        try:
            cluster.inject_fault("w-13", kind, **params)
        except ValueError:
            continue
        raise AssertionError(f"{kind} {params} was accepted")


def test_rebooting_an_unreachable_node_fails(talosctl):
    result = talosctl("reboot", "-n", "10.99.0.7")

    assert result.rc == 1
    assert result.stderr.startswith('"10.99.0.7": waiting for actor ID\n"10.99.0.7": rpc error: code = Unavailable')


def test_concurrent_commands_from_many_threads_keep_state_consistent(talosctl, cluster: TalosCluster):
    results = []
    lock = threading.Lock()

    def patch(index: int) -> None:
        label = f"machine:\n  nodeLabels:\n    caller-{index}: 'yes'\n"
        result = talosctl("patch", "mc", "-n", W14, "-p", label, "-m", "no-reboot")
        with lock:
            results.append(result)

    threads = [threading.Thread(target=patch, args=(i,)) for i in range(8)]
    readers = [threading.Thread(target=talosctl, args=("get", "mc", "-n", CP, "-o", "yaml")) for _ in range(8)]
    for thread in threads + readers:
        thread.start()
    for thread in threads + readers:
        thread.join(timeout=10)

    assert all(result.rc == 0 for result in results)
    version = talosctl("get", "mc", "v1alpha1", "-n", W14, "-o", "jsonpath={.metadata.version}").stdout
    assert 2 <= int(version) <= 9


def test_read_boot_id_changes_across_a_reboot(talosctl, cluster: TalosCluster):
    before = talosctl("read", "/proc/sys/kernel/random/boot_id", "-n", W13)
    assert before.rc == 0
    assert before.stdout.strip() == cluster.snapshot()["w-13"]["boot_id"]
    assert talosctl("reboot", "-n", W13).rc == 0
    after = talosctl("read", "/proc/sys/kernel/random/boot_id", "-n", W13)
    assert after.rc == 0
    assert after.stdout != before.stdout
    missing = talosctl("read", "/etc/nope", "-n", W13)
    assert missing.rc != 0
    assert "no such file or directory" in missing.stderr
