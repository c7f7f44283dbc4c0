"""`make bench-rollout`: how long the rolling Talos phase takes beyond the lab's unavoidable waits.

Runs, each in a fresh lab: the toolkit's rollout then its no-change re-run, and a naive shell loop
(`talosctl patch mc` + wait for the Node to be Ready again, node after node). Prints wall times, the
floor (the lab's reboot and readiness times along the critical path), their ratio, and the Kubernetes
API requests per node read from the lab's request log.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lab import config as lab_config  # noqa: E402

NAIVE_LOOP = r"""
set -euo pipefail
ready() { kubectl get node "$1" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' | grep -q True; }
for node in $NODES; do
  name=${node%%=*}; addr=${node##*=}
  talosctl -n "$addr" patch mc -p @"$PATCH" --mode auto >/dev/null 2>&1
  for _ in $(seq 50); do ready "$name" || break; sleep 0.2; done  # the reboot starts
  until ready "$name"; do sleep 0.2; done                          # and ends
done
"""
PATCH_113 = {
    "machine": {
        "files": [
            {
                "content": '[metrics]\n  address = "127.0.0.1:11234"\n',
                "path": "/etc/cri/conf.d/20-customization.part",
                "op": "create",
            }
        ]
    }
}


class Lab:
    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.env = {
            **os.environ,
            "LAB_RUN_DIR": str(run_dir),
            "PYTHONPATH": str(ROOT),
            "PATH": f"{ROOT / 'lab' / 'bin'}:{Path(sys.executable).parent}:{os.environ['PATH']}",
            "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
            "KUBECONFIG": str(run_dir / "kubeconfig"),
            "TALOSCONFIG": str(run_dir / "talosconfig"),
        }

    def __enter__(self) -> Lab:
        subprocess.run(
            [sys.executable, "-m", "lab", "up"], env=self.env, cwd=ROOT, check=True, capture_output=True, timeout=180
        )
        return self

    def __exit__(self, *_exc: object) -> None:
        subprocess.run(
            [sys.executable, "-m", "lab", "down"], env=self.env, cwd=ROOT, capture_output=True, timeout=120, check=False
        )

    def requests(self) -> int:
        path = self.run_dir / "api-requests.jsonl"
        return sum(1 for _ in path.open()) if path.exists() else 0

    def timed(self, argv: list[str]) -> tuple[float, int, subprocess.CompletedProcess]:
        before = self.requests()
        start = time.monotonic()
        proc = subprocess.run(argv, env=self.env, cwd=ROOT, capture_output=True, text=True, timeout=3600, check=False)
        wall = time.monotonic() - start
        if proc.returncode != 0:
            sys.exit(f"{' '.join(argv[:3])} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        return wall, self.requests() - before, proc


def changed_count(recap: str) -> int:
    return sum(int(n) for n in re.findall(r"changed=(\d+)", recap))


def main() -> int:
    cfg = lab_config.load()
    nodes = cfg.nodes
    rebooting = [n for n in nodes if tuple(int(p) for p in n.talos_version.lstrip("v").split(".")[:2]) < (1, 14)]
    # Critical path of a one-at-a-time rollout: each 1.13 node's reboot, each node's probe pod turning Ready.
    floor = len(rebooting) * cfg.reboot_seconds + len(nodes) * cfg.pod_ready_seconds
    naive_floor = len(rebooting) * cfg.reboot_seconds
    playbook = [
        str(Path(sys.executable).parent / "ansible-playbook"),
        "playbooks/containerd_metrics.yml",
        "-i",
        "inventories/lab/hosts.yml",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        with Lab(Path(tmp) / "toolkit") as lab:
            wall, requests, _ = lab.timed(playbook)
            rerun_wall, rerun_requests, rerun = lab.timed(playbook)
        patch = Path(tmp) / "patch.yaml"
        patch.write_text(yaml.safe_dump(PATCH_113))
        with Lab(Path(tmp) / "naive") as lab:
            lab.env.update(NODES=" ".join(f"{n.name}={n.address}" for n in rebooting), PATCH=str(patch))
            naive_wall, naive_requests, _ = lab.timed(["bash", "-c", NAIVE_LOOP])
    rows = [
        ("toolkit rollout (14 nodes)", wall, floor, requests / len(nodes)),
        ("naive loop (1.13 nodes, no drain/checks)", naive_wall, naive_floor, naive_requests / len(rebooting)),
    ]
    print(f"{'run':<44} {'wall s':>8} {'floor s':>8} {'ratio':>6} {'API req/node':>13}")
    for name, w, f, r in rows:
        print(f"{name:<44} {w:8.1f} {f:8.1f} {w / f:6.2f} {r:13.1f}")
    print(f"overhead ratio: {wall / floor:.2f}")
    print(
        f"no-change re-run: {rerun_wall:.1f} s, changed={changed_count(rerun.stdout)}, "
        f"API req/node {rerun_requests / len(nodes):.1f}"
    )
    print(
        json.dumps(
            {
                "wall": wall,
                "floor": floor,
                "ratio": wall / floor,
                "api_per_node": requests / len(nodes),
                "naive_wall": naive_wall,
                "naive_ratio": naive_wall / naive_floor,
                "rerun_wall": rerun_wall,
                "rerun_changed": changed_count(rerun.stdout),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
