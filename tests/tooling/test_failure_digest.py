"""The digest `make test` prints last when a lane fails: what failed, within a CI page's tail."""

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "failure_digest.py"

FAILED_LANE = """\
\x1b[36mINFO    \x1b[0m decommission ➜ prepare: Executing
  \x1b[2m│\x1b[0m TASK [Seed the state]
  \x1b[2m│\x1b[0m ok: [localhost]
  \x1b[2m│\x1b[0m TASK [Assert the run was still going when its first scaling step was recorded]
  \x1b[2m│\x1b[0m fatal: [localhost]: FAILED! => {"assertion": "'scale_to_1' in steps",
  \x1b[2m│\x1b[0m   "msg": ["Decommission refused: the new pipeline wrote 18 fresh series, expected >= 20"]}
  \x1b[2m│\x1b[0m PLAY RECAP *********
  \x1b[2m│\x1b[0m localhost : ok=30 changed=4 unreachable=0 failed=1
ERROR    decommission ➜ prepare: Executed: Failed
lane-molecule-a FAILED (exit 2) in 1750 s
"""
PASSED_LANE = """\
  \x1b[2m│\x1b[0m TASK [Refuse a misspelt variable]
  \x1b[2m│\x1b[0m fatal: [localhost]: FAILED! => {"msg": "expected by the test"}
  \x1b[2m│\x1b[0m ...ignoring
lane-molecule-b passed in 1600 s
"""


def run_digest(tmp_path, **logs):
    paths = []
    for name, text in logs.items():
        path = tmp_path / f"{name}.log"
        path.write_text(text)
        paths.append(str(path))
    return subprocess.run([sys.executable, SCRIPT, *paths], capture_output=True, text=True, check=True).stdout


def test_names_the_failed_task_its_message_and_the_step(tmp_path):
    out = run_digest(tmp_path, **{"lane-molecule-a": FAILED_LANE, "lane-molecule-b": PASSED_LANE})
    lines = out.splitlines()
    assert "---- lane-molecule-a.log" in lines
    assert "TASK [Assert the run was still going when its first scaling step was recorded]" in lines
    assert any("expected >= 20" in line for line in lines)
    assert "ERROR    decommission ➜ prepare: Executed: Failed" in lines
    assert "lane-molecule-a FAILED (exit 2) in 1750 s" in lines
    assert "\x1b" not in out and "│" not in out
    assert not any("PLAY RECAP" in line for line in lines)


def test_skips_lanes_that_passed_and_fits_a_ci_tail(tmp_path):
    many = "".join(f"TASK [step {n}]\nfatal: [localhost]: FAILED! => {{}}\n" for n in range(100))
    out = run_digest(tmp_path, **{"lane-molecule-b": PASSED_LANE, "lane-tests": many})
    assert "lane-molecule-b" not in out and "expected by the test" not in out
    assert len(out.splitlines()) <= 40
    assert "TASK [step 99]" in out
