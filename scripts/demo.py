#!/usr/bin/env python3
"""`make demo`: the whole migration on the lab, then the seed-style before/after table.

Starts a fresh lab (stopping this checkout's lab first), waits until the legacy pipeline has the two
minutes of history the lab inventory's baseline window reads, runs playbooks/site.yml against
inventories/lab non-interactively, prints the report's before/after table and where the report is,
and leaves the lab up for exploration (`make lab-down` stops it).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INVENTORY = "inventories/lab"


def step(title: str, argv: list[str]) -> None:
    print(f"\n== {title}: {' '.join(argv)}", flush=True)
    done = subprocess.run(argv, cwd=ROOT, check=False)
    if done.returncode != 0:
        sys.exit(f"demo stopped: {title} failed (exit {done.returncode}); the lab is left up for a look.")


def before_after_table(report: Path) -> str:
    """The report's '## Before and after' section."""
    lines = report.read_text().splitlines()
    start = lines.index("## Before and after")
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    return "\n".join(lines[start:end]).strip()


def main() -> int:
    started = time.monotonic()
    python = sys.executable
    step("stop any lab of this checkout", [python, "-m", "lab", "down"])
    step("start the lab", [python, "-m", "lab", "up"])
    step("wait for the legacy pipeline's history", [python, "-m", "lab", "wait-history", "--window", "2m"])
    step("run the migration", ["ansible-playbook", "playbooks/site.yml", "-i", INVENTORY])
    reports = sorted((ROOT / "artifacts" / "lab").glob("**/validation/validation.md"), key=os.path.getmtime)
    print()
    if reports:
        print(before_after_table(reports[-1]))
        print(f"\nreport: {reports[-1].relative_to(ROOT)} (with validation.json and the PNG plots beside it)")
    print(f"demo finished in {time.monotonic() - started:.0f} s; the lab is still up (`make lab-down` stops it)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
