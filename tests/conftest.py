"""Shared pytest setup: make the project's module_utils importable as Ansible would."""

from __future__ import annotations

import sys
from pathlib import Path

import ansible.module_utils

ROOT = Path(__file__).resolve().parent.parent
# Ansible serves ./module_utils as ansible.module_utils.* (ansible.cfg); tests import them the same way.
ansible.module_utils.__path__.append(str(ROOT / "module_utils"))
for extra in (ROOT, ROOT / "library", ROOT / "filter_plugins"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import urllib.request  # noqa: E402
from dataclasses import dataclass  # noqa: E402

import pytest  # noqa: E402
import yaml  # noqa: E402

VENV_BIN = Path(sys.executable).parent


@dataclass
class RunningLab:
    run_dir: Path
    kubeconfig: Path
    state: dict

    @property
    def token(self) -> str:
        return (self.run_dir / "token").read_text().strip()

    @property
    def ca(self) -> str:
        return str(self.run_dir / "pki" / "ca.crt")

    @property
    def api(self) -> str:
        return self.state["api"]

    def status(self) -> dict:
        """What `python -m lab status` reads: components, addresses, health."""
        request = urllib.request.Request(
            self.state["control"] + "/status", headers={"Authorization": f"Bearer {self.state['control_token']}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "K8S_AUTH_KUBECONFIG": str(self.kubeconfig),
            "LAB_RUN_DIR": str(self.run_dir),
        }


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> RunningLab:
    """A lab started with `python -m lab up` in its own run directory, stopped at the end."""
    run_dir = tmp_path_factory.mktemp("lab")
    # Short scrape intervals so metrics figures arrive within seconds; the shape stays the seed's.
    metrics = {"scrape_interval_seconds": 2, "scrape_timeout_seconds": 2, "meta_scrape_interval_seconds": 2}
    env = {**os.environ, "LAB_RUN_DIR": str(run_dir), "PYTHONPATH": str(ROOT), "LAB_METRICS": json.dumps(metrics)}
    try:
        up = subprocess.run(
            [sys.executable, "-m", "lab", "up"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert up.returncode == 0, f"lab up failed:\n{up.stdout}\n{up.stderr}\n{(run_dir / 'lab.log').read_text()}"
        yield RunningLab(run_dir, run_dir / "kubeconfig", json.loads((run_dir / "lab.json").read_text()))
    finally:
        subprocess.run(
            [sys.executable, "-m", "lab", "down"], cwd=ROOT, env=env, capture_output=True, timeout=60, check=False
        )


def run_playbook(tasks: list[dict], env: dict[str, str], check: bool = False, extra_args: list[str] = ()) -> dict:
    """Run tasks in a localhost play with ansible-playbook; return {task name: result}."""
    play = [{"name": "test", "hosts": "localhost", "gather_facts": False, "tasks": tasks}]
    path = Path(env.get("TMPDIR", "/tmp")) / f"play-{os.getpid()}-{abs(hash(json.dumps(tasks)))}.yml"
    path.write_text(yaml.safe_dump(play, sort_keys=False))
    cmd = [
        str(VENV_BIN / "ansible-playbook"),
        str(path),
        "-i",
        "localhost,",
        "-c",
        "local",
        "-e",
        f"ansible_python_interpreter={sys.executable}",
        *extra_args,
    ]
    if check:
        cmd.append("--check")
    run_env = {
        **env,
        "ANSIBLE_STDOUT_CALLBACK": "json",
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_CALLBACK_RESULT_FORMAT": "json",
    }
    proc = subprocess.run(cmd, env=run_env, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    path.unlink(missing_ok=True)
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise AssertionError(f"ansible-playbook output is not JSON:\n{proc.stdout}\n{proc.stderr}") from exc
    results = {}
    for play_report in report["plays"]:
        for task in play_report["tasks"]:
            results[task["task"]["name"]] = task["hosts"]["localhost"]
    results["__rc__"] = proc.returncode
    results["__stats__"] = report.get("stats", {})
    return results


def failures(results: dict) -> str:
    """The failed tasks of a run_playbook result, with their messages, for assertion output."""
    lines = [
        f"{name}: {result.get('msg', '')} {result.get('exception', '')}".strip()
        for name, result in results.items()
        if isinstance(result, dict) and result.get("failed")
    ]
    return "\n".join(lines) or f"rc={results.get('__rc__')}, no failed task recorded"
