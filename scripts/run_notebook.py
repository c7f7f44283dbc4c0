#!/usr/bin/env python3
"""Execute notebooks/guided_rollout.ipynb headless against the lab, go-aheads given by parameters.

What `make notebook` (part of `make test`) runs: it starts the lab (unless one is already up),
injects a parameters cell after the notebook's own (as papermill does) that says yes to every phase,
executes every cell with nbclient, and writes the executed notebook next to the run's artifacts.
A cell that raises fails the run with that cell's error. The lab is stopped afterwards unless
--keep-lab is given or it was already running.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "guided_rollout.ipynb"
PHASES = ["preflight", "baseline", "containerd_metrics", "collectors", "validation", "decommission"]


def lab(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lab", *args], cwd=ROOT, text=True, capture_output=True, check=False)


def with_parameters(notebook: nbformat.NotebookNode, values: dict) -> nbformat.NotebookNode:
    """Insert an `injected-parameters` cell right after the cell tagged `parameters`."""
    index = next(i for i, cell in enumerate(notebook.cells) if "parameters" in cell.metadata.get("tags", []))
    source = "\n".join(f"{name} = {value!r}" for name, value in values.items())
    injected = nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]})
    notebook.cells.insert(index + 1, injected)
    return notebook


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inventory", default="inventories/lab")
    parser.add_argument("--extra-vars", default="{}", help="JSON object passed to every phase as -e")
    parser.add_argument(
        "--output", type=Path, default=ROOT / "artifacts" / "notebooks" / "guided_rollout.executed.ipynb"
    )
    parser.add_argument("--timeout", type=int, default=900, help="seconds allowed per cell")
    parser.add_argument("--keep-lab", action="store_true", help="leave the lab running afterwards")
    args = parser.parse_args(argv)

    already_up = lab("status").returncode == 0
    if not already_up:
        up = lab("up")
        print(up.stdout, end="")
        if up.returncode != 0:
            print(up.stderr, file=sys.stderr)
            return up.returncode
    history = lab("wait-history", "--window", "2m", "--scrapes", "6")
    print(history.stdout, end="")
    if history.returncode != 0:
        print(history.stderr, file=sys.stderr)
        return history.returncode
    notebook = with_parameters(
        nbformat.read(NOTEBOOK, as_version=4),
        {
            "INVENTORY": args.inventory,
            "GO_AHEAD": dict.fromkeys(PHASES, True),
            "EXTRA_VARS": json.loads(args.extra_vars),
        },
    )
    client = NotebookClient(
        notebook,
        timeout=args.timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    os.environ.setdefault("PYTHONPATH", str(ROOT))
    try:
        client.execute()
        print(f"notebook executed: every cell ran without error ({args.output.relative_to(ROOT)})")
        return 0
    except CellExecutionError as exc:
        print(f"notebook failed:\n{exc}", file=sys.stderr)
        return 1
    finally:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(notebook, args.output)
        if not (already_up or args.keep_lab):
            print(lab("down").stdout, end="")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
