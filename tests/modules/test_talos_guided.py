"""Guided mode of the rolling Talos phase: each batch waits for an operator's yes (role talos_containerd_metrics).

The role's batch tasks run in a play over three stand-in nodes, one per batch, followed by a task that
marks the node as changed: the prompt must block before it, `yes` must let it run, anything else (or no
terminal to ask) must stop the play with nothing changed on that batch.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pexpect
import pytest
import yaml

from tests.conftest import ROOT, VENV_BIN

NODES = ("node-a", "node-b", "node-c")
PROMPT = "Type yes to go on"


def schedule() -> dict:
    nodes = {
        name: {"label": f"[node {k}/3 {name}]", "k": k, "action": "change"} for k, name in enumerate(NODES, start=1)
    }
    return {"order": list(NODES), "nodes": nodes}


@pytest.fixture
def playbook(tmp_path: Path) -> list[str]:
    inventory = {
        "all": {
            "hosts": {name: {} for name in NODES},
            "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
        }
    }
    play = [
        {
            "name": "Guided batches",
            "hosts": "all",
            "gather_facts": False,
            "serial": 1,
            "any_errors_fatal": True,
            "vars": {"__talos_containerd_metrics_schedule": schedule(), "talos_containerd_metrics_guided": True},
            "tasks": [
                {
                    "name": "Batch",
                    "ansible.builtin.include_role": {"name": "talos_containerd_metrics", "tasks_from": "batch.yml"},
                },
                {"name": "Change", "ansible.builtin.debug": {"msg": "CHANGED {{ inventory_hostname }}"}},
            ],
        }
    ]
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump(inventory))
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play, sort_keys=False))
    return [str(VENV_BIN / "ansible-playbook"), "-i", str(tmp_path / "inventory.yml"), str(tmp_path / "play.yml")]


def environment() -> dict[str, str]:
    return {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}


def changed(output: str) -> list[str]:
    return [name for name in NODES if f"CHANGED {name}" in output]


def test_the_prompt_blocks_each_batch_until_yes_and_any_other_answer_stops_the_rollout(playbook: list[str]):
    child = pexpect.spawn(playbook[0], playbook[1:], env=environment(), cwd=str(ROOT), encoding="utf-8", timeout=120)
    try:
        child.expect(f"Batch 1: about to enable\\s+containerd metrics on node-a\\.\\s+{PROMPT}")
        assert "CHANGED" not in child.before
        child.sendline("yes")
        child.expect(f"Batch 2: about to enable\\s+containerd metrics on node-b\\.\\s+{PROMPT}")
        assert changed(child.before) == ["node-a"]
        child.sendline("no")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    output = child.before
    assert changed(output) == []
    assert "Stopped before batch 2 (node-b): the answer was 'no', not yes" in " ".join(output.split())
    assert child.exitstatus != 0


def test_without_a_terminal_the_first_batch_stops_unless_batches_were_confirmed_in_advance(playbook: list[str]):
    def run(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*playbook, *extra],
            env=environment(),
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    unconfirmed = run()
    confirmed_two = run("-e", "talos_containerd_metrics_confirmed_batches=2")

    said = " ".join(unconfirmed.stdout.split())
    assert unconfirmed.returncode != 0 and changed(unconfirmed.stdout) == []
    assert "Stopped before batch 1 (node-a): the answer was '', not yes (no terminal to ask" in said
    assert "talos_containerd_metrics_confirmed_batches=N" in said
    assert confirmed_two.returncode != 0
    assert changed(confirmed_two.stdout) == ["node-a", "node-b"]
    assert "Batch 1 confirmed in advance" in confirmed_two.stdout
    assert "Stopped before batch 3 (node-c)" in " ".join(confirmed_two.stdout.split())
