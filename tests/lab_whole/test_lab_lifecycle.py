"""A lab that fails to start stops what it started: no Prometheus agent or collector outlives it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from lab import __main__ as lab_cli

ROOT = Path(__file__).resolve().parents[2]
IN_NETNS = ROOT / "scripts" / "in-netns"

# Runs in a network namespace of its own (the lab binds fixed loopback ports, which the session's lab
# holds): starts a lab whose collectors fail to start, after the API server, apid and the metrics plane
# (Prometheus storage, Mimir front, exporters) are up.
FAILING_START = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path
    from lab import config, runtime

    def children():
        found = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    stat = Path("/proc", entry, "stat").read_text()
                except OSError:
                    continue
                fields = stat[stat.rindex(")") + 2 :].split()
                if fields[0] != "Z" and int(fields[1]) == os.getpid():
                    found.append(int(entry))
        return found

    seen = {}

    def collectors_fail(self):
        seen["before"] = children()
        raise RuntimeError("collectors failed to start")

    runtime.CollectorsRuntime.start = collectors_fail
    lab = runtime.Lab(config.load(run_dir=Path(sys.argv[1])))
    try:
        lab.start()
    except RuntimeError as error:
        seen["error"] = str(error)
    seen["after"] = children()
    print(json.dumps(seen))
    """
)


def _netns_available() -> bool:
    return subprocess.run([str(IN_NETNS), "true"], capture_output=True, check=False).returncode == 0


@pytest.mark.skipif(not _netns_available(), reason="needs a network namespace (scripts/in-netns)")
def test_a_component_failing_to_start_stops_the_ones_started_before_it(tmp_path):
    done = subprocess.run(
        [str(IN_NETNS), sys.executable, "-c", FAILING_START, str(tmp_path)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    seen = json.loads(done.stdout.splitlines()[-1])
    assert seen["error"] == "collectors failed to start"
    assert seen["before"], "the metrics plane had started no process: the test would prove nothing"
    assert seen["after"] == [], f"processes left running after the failed start: {seen['after']}"


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


@pytest.mark.parametrize(
    "lab_process",
    [
        pytest.param("sleep 300 & echo $!; exit 3", id="lab exited, its agent still running"),
        pytest.param("trap '' TERM; sleep 300 & echo $!; wait", id="lab ignores SIGTERM"),
    ],
)
def test_a_lab_that_did_not_come_up_leaves_nothing_running(monkeypatch, lab_process):
    monkeypatch.setattr(lab_cli, "STOP_GRACE", 1.0)
    process = subprocess.Popen(["sh", "-c", lab_process], stdout=subprocess.PIPE, text=True, start_new_session=True)
    agent = int(process.stdout.readline())
    assert _alive(agent)

    lab_cli._stop_session(process)

    assert process.returncode is not None
    # SIGKILL is delivered asynchronously: give the kernel a moment to end the agent.
    deadline = time.monotonic() + 5
    while _alive(agent) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(agent), "the lab's child outlived it"
