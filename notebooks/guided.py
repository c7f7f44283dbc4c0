"""What the guided rollout notebook runs: one phase at a time through ansible-runner, after a go-ahead.

The notebook stays short and readable; the mechanics live here. Each phase is the same playbook an
operator runs by hand (`ansible-playbook playbooks/<phase>.yml -i inventories/<env>`), so a guided
rollout and a scripted one cannot drift apart.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ansible_runner
import yaml

ROOT = Path(__file__).resolve().parent.parent
# Phases in the order a migration runs them, and the playbook of each.
PHASES: dict[str, str] = {
    "preflight": "playbooks/preflight.yml",
    "baseline": "playbooks/baseline.yml",
    "containerd_metrics": "playbooks/containerd_metrics.yml",
    "collectors": "playbooks/collectors.yml",
    "validation": "playbooks/validation.yml",
    "decommission": "playbooks/decommission.yml",
    "status": "playbooks/status.yml",
}


class NoGoAheadError(RuntimeError):
    """The operator did not say yes: the phase was not started and nothing changed."""


class PhaseFailedError(RuntimeError):
    """A phase stopped; its own message says what failed and how to resume or roll back."""


@dataclass
class PhaseResult:
    phase: str
    status: str
    seconds: float
    hosts: dict[str, dict[str, int]]
    failures: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)

    @property
    def changed(self) -> int:
        return sum(counts.get("changed", 0) for counts in self.hosts.values())

    def nodes_done(self) -> list[str]:
        """Inventory hosts (Talos nodes) the phase went through without a failure."""
        return sorted(host for host, counts in self.hosts.items() if host != "localhost" and not counts.get("failures"))

    def _repr_markdown_(self) -> str:
        lines = [
            f"**{self.phase}**: {self.status} in {self.seconds:.0f} s, {self.changed} change(s)",
            "",
            "| host | ok | changed | skipped | failed |",
            "|---|---|---|---|---|",
        ]
        for host, counts in sorted(self.hosts.items()):
            lines.append(
                f"| {host} | {counts.get('ok', 0)} | {counts.get('changed', 0)} | {counts.get('skipped', 0)} "
                f"| {counts.get('failures', 0) + counts.get('dark', 0)} |"
            )
        lines += [f"- {message}" for message in self.messages]
        lines += [f"- **failed**: {failure}" for failure in self.failures]
        return "\n".join(lines)


@dataclass
class Rollout:
    """A guided rollout against one inventory: `confirm(phase)` then `run(phase)`, phase after phase."""

    inventory: str = "inventories/lab"
    go_ahead: Mapping[str, bool] = field(default_factory=dict)
    extravars: Mapping[str, Any] = field(default_factory=dict)
    show_progress: bool = True
    ask: Callable[[str], str] = input
    results: dict[str, PhaseResult] = field(default_factory=dict)

    def confirm(self, phase: str) -> None:
        """Stop here unless the parameters or the operator say yes to this phase."""
        if self.go_ahead.get(phase):
            print(f"{phase}: go-ahead given by the parameters cell")
            return
        answer = self.ask(f"Type yes to run the {phase} phase against {self.inventory}: ")
        if answer.strip().lower() != "yes":
            raise NoGoAheadError(
                f"{phase} not started (answer {answer!r}); nothing changed. Re-run this cell to go on."
            )

    def run(self, phase: str, **extravars: Any) -> PhaseResult:
        """Run the phase's playbook; raise PhaseFailedError (stopping the notebook) when it fails."""
        started = time.monotonic()
        failures: list[str] = []
        messages: list[str] = []
        with tempfile.TemporaryDirectory(prefix=f"guided-{phase}-") as private:
            runner = ansible_runner.run(
                private_data_dir=private,
                project_dir=str(ROOT),
                playbook=str(ROOT / PHASES[phase]),
                inventory=str(ROOT / self.inventory),
                envvars=self._environment(),
                extravars={**self.extravars, **extravars},
                suppress_env_files=True,
                quiet=True,
                event_handler=lambda event: self._on_event(phase, event, failures, messages),
            )
            stats = runner.stats or {}
        result = PhaseResult(phase, runner.status, time.monotonic() - started, _per_host(stats), failures, messages)
        self.results[phase] = result
        if runner.rc != 0:
            raise PhaseFailedError(
                f"{phase} failed: " + (" | ".join(failures) or f"ansible-playbook exit code {runner.rc}")
            )
        return result

    def artifacts_dir(self) -> Path:
        """Where the phases write reports and backups: artifacts/<migration_environment>."""
        return ROOT / "artifacts" / self.environment()

    def environment(self) -> str:
        cluster_vars = yaml.safe_load((ROOT / self.inventory / "group_vars" / "all" / "cluster.yml").read_text())
        return str(cluster_vars.get("migration_environment", "default"))

    def status(self) -> str:
        """The migration state as playbooks/status.yml prints it, as Markdown."""
        previous, self.show_progress = self.show_progress, False
        try:
            result = self.run("status")
        finally:
            self.show_progress = previous
        return "\n".join(f"    {line}" for line in result.messages)

    def _environment(self) -> dict[str, str]:
        bin_dirs = [str(Path(sys.executable).parent), str(ROOT / "lab" / "bin"), str(ROOT / "bin")]
        return {
            "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
            "PATH": os.pathsep.join([*bin_dirs, os.environ.get("PATH", "")]),
            "PYTHONPATH": str(ROOT),
            **({"LAB_RUN_DIR": os.environ["LAB_RUN_DIR"]} if "LAB_RUN_DIR" in os.environ else {}),
        }

    def _on_event(self, phase: str, event: dict, failures: list[str], messages: list[str]) -> bool:
        data = event.get("event_data") or {}
        kind = event.get("event")
        if kind == "playbook_on_task_start" and self.show_progress:
            print(f"[{phase}] {data.get('task', '').strip()}", flush=True)
        elif kind == "runner_on_failed" and not data.get("ignore_errors"):
            result = data.get("res") or {}
            failures.append(f"{data.get('host')}: {data.get('task')}: {result.get('msg', '')}".strip())
        elif kind == "runner_on_ok" and data.get("task_action") in {"debug", "ansible.builtin.debug"}:
            message = (data.get("res") or {}).get("msg")
            if message:
                messages.extend(message if isinstance(message, list) else [str(message)])
        return True


def _per_host(stats: Mapping[str, Mapping[str, int]]) -> dict[str, dict[str, int]]:
    hosts: dict[str, dict[str, int]] = {}
    for counter, per_host in stats.items():
        if isinstance(per_host, Mapping):
            for host, count in per_host.items():
                hosts.setdefault(host, {})[counter] = count
    return hosts
