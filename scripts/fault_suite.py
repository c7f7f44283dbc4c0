#!/usr/bin/env python3
"""`make test-faults`: every fault case of tests/faults against the lab, then one table.

Runs pytest on tests/faults with FAULT_SUITE=full (each case on a fresh three-node lab; plain `pytest`
runs only the cheap cases), reads each case's row from the JUnit XML the run writes (the cases record
it with `record_property`), and prints: fault | expected outcome | seen outcome | data lost | result.
Exits with pytest's code. Extra arguments go to pytest (e.g. `-k never_returns`). The labs bind fixed
loopback addresses: run it where no other lab runs, or in a network namespace of its own
(`scripts/in-netns .venv/bin/python scripts/fault_suite.py`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COLUMNS = ("fault", "expected", "seen", "data_lost")
HEADERS = ("fault", "expected outcome", "seen outcome", "data lost", "result")
WIDTHS = (34, 30, 58, 30, 12)


@dataclass
class Case:
    name: str
    result: str
    seconds: float
    columns: dict[str, str]
    message: str


def read_cases(junit: Path) -> list[Case]:
    cases = []
    for testcase in ET.parse(junit).getroot().iter("testcase"):
        properties = {
            prop.get("name", "").removeprefix("fault_"): prop.get("value", "")
            for prop in testcase.iter("property")
            if prop.get("name", "").startswith("fault_")
        }
        problem = next((child for child in testcase if child.tag in ("failure", "error", "skipped")), None)
        result = {"failure": "FAILED", "error": "ERROR", "skipped": "skipped"}.get(
            problem.tag if problem is not None else "", "handled"
        )
        message = (problem.get("message", "") if problem is not None else "").splitlines()
        cases.append(
            Case(
                name=f"{testcase.get('classname', '')}.{testcase.get('name', '')}",
                result=result,
                seconds=float(testcase.get("time", 0) or 0),
                columns=properties,
                message=message[0] if message else "",
            )
        )
    return cases


def table(cases: list[Case]) -> str:
    """A plain-text table whose cells wrap inside their column."""
    rows = []
    for case in cases:
        if not case.columns and case.result != "FAILED":
            continue  # a supporting check, not a fault case
        cells = [case.columns.get(column, "") for column in COLUMNS]
        if not cells[0]:
            cells[0] = case.name.rsplit(".", 1)[-1]
        if case.result in ("FAILED", "ERROR") and case.message:
            cells[2] = (cells[2] + " | " if cells[2] else "") + case.message
        cells.append(f"{case.result} ({case.seconds:.0f} s)")
        rows.append(cells)
    rule = "+" + "+".join("-" * (width + 2) for width in WIDTHS) + "+"
    lines = [rule, _row(HEADERS), rule.replace("-", "=")]
    for cells in rows:
        lines += [_row(cells), rule]
    return "\n".join(lines)


def _row(cells: tuple[str, ...] | list[str]) -> str:
    wrapped = [textwrap.wrap(cell, width) or [""] for cell, width in zip(cells, WIDTHS, strict=True)]
    height = max(len(lines) for lines in wrapped)
    out = []
    for index in range(height):
        parts = [
            (lines[index] if index < len(lines) else "").ljust(width)
            for lines, width in zip(wrapped, WIDTHS, strict=True)
        ]
        out.append("| " + " | ".join(parts) + " |")
    return "\n".join(out)


def main(argv: list[str]) -> int:
    with tempfile.TemporaryDirectory(prefix="fault-suite-") as scratch:
        junit = Path(scratch) / "faults.xml"
        env = {**os.environ, "FAULT_SUITE": "full", "PYTHONPATH": str(ROOT)}
        command = [
            sys.executable,
            "-m",
            "pytest",
            "tests/faults",
            "-p",
            "no:cacheprovider",
            "-q",
            f"--junitxml={junit}",
            "-o",
            "junit_family=xunit1",
            *argv,
        ]
        print("fault suite:", " ".join(command[2:]), flush=True)
        done = subprocess.run(command, cwd=ROOT, env=env, check=False)
        if not junit.exists():
            print("fault suite: pytest wrote no results", file=sys.stderr)
            return done.returncode or 1
        cases = read_cases(junit)
    print()
    print(table(cases))
    handled = sum(1 for case in cases if case.columns and case.result == "handled")
    print(f"\n{handled} fault case(s) handled; pytest exit {done.returncode}")
    return done.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
