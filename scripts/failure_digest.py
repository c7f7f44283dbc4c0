#!/usr/bin/env python3
"""Print, for each failed test lane, the lines that say what failed.

`make test` runs its lanes side by side and prints each lane's whole log when it ends, so the
failing task of one lane ends up thousands of lines above the end of the output, where a CI page
showing only its tail cannot reach. This digest is printed last: the failed task and its message,
the molecule step that failed, the pytest failures, a few lines each.

    scripts/failure_digest.py LOG [LOG ...]
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# Molecule frames the playbook output it relays in a box drawn with these.
FRAME = re.compile(r"^\s*[│└┌├─]+\s?")
FAILED_TASK = re.compile(r"^(fatal|failed): \[|FAILED! =>")
ONE_LINERS = re.compile(
    r"^(ERROR\s|FAILED tests/|ERROR tests/|E\s{3}|\S+ ➜ \S+: Executed: Failed|lane-\S+ (passed|FAILED))"
)
LINES_PER_FAILURE = 14
# A CI page shows about the last 44 lines of the output.
SHOWN = 36
WIDTH = 220


def clean(line: str) -> str:
    return FRAME.sub("", ANSI.sub("", line)).rstrip()[:WIDTH]


def digest(lines: list[str]) -> list[str]:
    """The lines naming each failure: a failed task with the lines after it, and one-line verdicts."""
    shown: list[str] = []
    task = ""
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("TASK ["):
            task = line
        if FAILED_TASK.search(line):
            shown.append(task)
            block = [line]
            for follower in lines[index + 1 : index + LINES_PER_FAILURE]:
                if follower.startswith(("TASK [", "PLAY RECAP", "RUNNING HANDLER", "PLAY [")):
                    break
                block.append(follower)
            shown.extend(block)
            index += len(block)
            continue
        if ONE_LINERS.search(line):
            shown.append(line)
        index += 1
    return shown


def main(paths: list[str]) -> int:
    shown: list[str] = []
    for path in paths:
        log = Path(path)
        if not log.is_file():
            continue
        lines = [clean(line) for line in log.read_text(errors="replace").splitlines()]
        if any(re.match(r"lane-\S+ passed in", line) for line in lines[-3:]):
            continue
        shown += [f"---- {log.name}", *digest(lines)]
    print("==== what failed (scripts/failure_digest.py; each lane's whole log is above) ====")
    print("\n".join(shown[-SHOWN:]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
