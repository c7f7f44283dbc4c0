"""The variables tables in the READMEs are what the roles' argument_specs say."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_variables_tables_match_argument_specs():
    done = subprocess.run(
        [sys.executable, "scripts/role_docs.py", "--check"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr


def test_every_role_variable_is_in_the_readme_table():
    readme = (ROOT / "README.md").read_text()
    assert "| `preflight_kubeconfig` | path | **required** |" in readme
    assert "| `talos_containerd_metrics_guided` | bool |" in readme
