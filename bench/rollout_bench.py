"""`make bench-rollout`: how long the rolling Talos phase takes beyond the lab's unavoidable waits.

Runs, each in a fresh lab: the toolkit's rollout then its no-change re-run, and a naive shell loop
(`talosctl patch mc` + wait for the Node to be Ready again, node after node). Prints wall times, the
floor (the lab's reboot and readiness times along the rollout's critical path, batch by batch), their
ratio, the Kubernetes API requests per node read from the lab's request log, and the CPU seconds the
run took (wall times depend on what else the machine runs; the load average is printed with them).

  --reboot-seconds S   lab nodes take S seconds to reboot (a copy of the lab inventory with
                       lab_reboot_seconds changed), to see the ratio at realistic reboot times
  --no-naive           skip the naive loop
  --save-output DIR    keep each run's output there (with ANSIBLE_CALLBACKS_ENABLED=profile_tasks in the
                       environment, the time of every task: where the overhead goes)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
FAILED_RUNS = ROOT / "artifacts" / "bench"
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


# The rolling phase begins only once the baseline succeeded (migration state): record the phases before it.
SEED_STATE = [
    {
        "name": "Record the phases before the rolling one",
        "hosts": "localhost",
        "gather_facts": False,
        "tasks": [
            {
                "name": "Record {{ item }}",
                "migration_state": {
                    "action": "{{ item.0 }}",
                    "phase": "{{ item.1 }}",
                    "kubeconfig": "{{ lookup('env', 'KUBECONFIG') }}",
                    "namespace": "monitoring",
                },
                "loop": [
                    ["begin", "preflight"],
                    ["succeed", "preflight"],
                    ["begin", "baseline"],
                    ["succeed", "baseline"],
                ],
            }
        ],
    }
]


# The lab stands in for machines of their own (the nodes, the API server, Mimir): the benchmarked run yields
# the CPU to it, so the lab answers as promptly as remote machines would while the controller is busy.
CONTROLLER_NICENESS = 10


class Lab:
    """A fresh lab for the life of a `with` block; `metrics` overrides fields of its metrics plane's settings."""

    def __init__(self, run_dir: Path, inventory: Path, metrics: dict | None = None) -> None:
        self.run_dir = run_dir
        self.env = {
            **os.environ,
            "LAB_METRICS": json.dumps(metrics or {}),
            "LAB_INVENTORY": str(inventory),
            "LAB_RUN_DIR": str(run_dir),
            "PYTHONPATH": str(ROOT),
            "PATH": f"{ROOT / 'lab' / 'bin'}:{Path(sys.executable).parent}:{os.environ['PATH']}",
            "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
            "KUBECONFIG": str(run_dir / "kubeconfig"),
            "TALOSCONFIG": str(run_dir / "talosconfig"),
        }

    def __enter__(self) -> Lab:
        up = subprocess.run(
            [sys.executable, "-m", "lab", "up"],
            env=self.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        if up.returncode != 0:
            log = self.run_dir / "lab.log"
            tail = log.read_text()[-3000:] if log.exists() else "(no lab.log)"
            sys.exit(f"the lab did not start (exit {up.returncode}):\n{up.stdout[-1000:]}{up.stderr[-1000:]}\n{tail}")
        return self

    def seed_state(self) -> None:
        playbook = self.run_dir / "seed-state.yml"
        playbook.write_text(yaml.safe_dump(SEED_STATE, sort_keys=False))
        ansible = [
            str(Path(sys.executable).parent / "ansible-playbook"),
            str(playbook),
            "-i",
            "localhost,",
            "-c",
            "local",
            "-e",
            f"ansible_python_interpreter={sys.executable}",
        ]
        done = subprocess.run(ansible, env=self.env, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
        if done.returncode != 0:
            sys.exit(f"seeding the migration state failed:\n{done.stdout[-3000:]}")

    def __exit__(self, *_exc: object) -> None:
        subprocess.run(
            [sys.executable, "-m", "lab", "down"], env=self.env, cwd=ROOT, capture_output=True, timeout=120, check=False
        )

    def requests(self) -> int:
        return len(self.request_log())

    def request_log(self) -> list[str]:
        path = self.run_dir / "api-requests.jsonl"
        return path.read_text().splitlines() if path.exists() else []

    def cpu(self) -> float:
        """CPU seconds the lab process has used so far: the stand-ins for the API server, apid, kubelets and
        controllers (its Prometheus agents and collectors apart)."""
        pid = json.loads((self.run_dir / "lab.json").read_text())["pid"]
        stat = Path(f"/proc/{pid}/stat").read_text()
        utime, stime = stat[stat.rindex(")") + 2 :].split()[11:13]
        return (int(utime) + int(stime)) / os.sysconf("SC_CLK_TCK")

    def timed(self, argv: list[str]) -> Timing:
        """Run `argv` to its end; exits the bench with its output when it fails."""
        before = self.requests()
        cpu_before, lab_cpu_before = _children_cpu(), self.cpu()
        load_before = os.getloadavg()[0]
        start = time.monotonic()
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            proc = subprocess.Popen(
                ["nice", "-n", str(CONTROLLER_NICENESS), *argv],
                env=self.env,
                cwd=ROOT,
                stdout=out,
                stderr=err,
                text=True,
            )
            sampler = MemorySampler(proc.pid)
            sampler.start()
            try:
                returncode = proc.wait(timeout=3600)
            finally:
                sampler.stop()
            wall = time.monotonic() - start
            out.seek(0)
            err.seek(0)
            stdout, stderr = out.read(), err.read()
        if returncode != 0:
            raise RunFailed(argv, stdout, stderr)
        log = self.request_log()
        return Timing(
            wall,
            _children_cpu() - cpu_before,
            len(log) - before,
            stdout,
            sampler.peak,
            (load_before, os.getloadavg()[0]),
            self.cpu() - lab_cpu_before,
            request_mix(log[before:]),
        )


class RunFailed(SystemExit):
    """A benchmarked run that failed: its whole output is kept under artifacts/bench/ (the lab's scratch
    directory goes with the bench), the message names the file and the run's failed tasks. Uncaught, it
    ends the bench with that message, as sys.exit would."""

    def __init__(self, argv: list[str], stdout: str, stderr: str) -> None:
        FAILED_RUNS.mkdir(parents=True, exist_ok=True)
        name = next((Path(arg).stem for arg in argv if arg.endswith(".yml")), Path(argv[0]).name)
        log = FAILED_RUNS / f"failed-{time.strftime('%Y%m%dT%H%M%S')}-{name}.log"
        log.write_text(f"$ {' '.join(argv)}\n\n{stdout}\n--- stderr ---\n{stderr}")
        failures = [line for line in stdout.splitlines() if line.startswith(("fatal:", "failed:"))]
        shown = "\n".join(failures[-10:]) or stdout[-3000:]
        super().__init__(f"{' '.join(argv[:3])} failed (whole output: {log}):\n{shown}\n{stderr[-2000:]}")


@dataclass
class Timing:
    """One run: wall and CPU seconds (its process tree), lab API requests, stdout, memory peak (PSS bytes of
    the process tree), the 1-minute load average at its start and end, the lab process's CPU seconds during
    the run, and its API requests by verb and resource."""

    wall: float
    cpu: float
    requests: int
    stdout: str
    memory_peak: int = 0
    load: tuple[float, float] = (0.0, 0.0)
    lab_cpu: float = 0.0
    request_mix: Counter[str] = field(default_factory=Counter)


def request_mix(log: list[str]) -> Counter[str]:
    """How many requests of each kind (verb and resource, as the API server logs them) a request log holds."""
    return Counter(f"{entry['verb']} {entry['resource']}" for entry in map(json.loads, log))


class MemorySampler(threading.Thread):
    """The peak, over samples every `interval` s, of the summed PSS of a process and all its descendants."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval, self.peak = pid, interval, 0
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            self.peak = max(self.peak, sum(_pss(pid) for pid in _tree(self.pid)))
            self._done.wait(self.interval)

    def stop(self) -> None:
        self._done.set()
        self.join()


def _tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(entry.path, "stat").read_text()
            except OSError:
                continue
            parent = int(stat[stat.rindex(")") + 2 :].split()[1])
            children.setdefault(parent, []).append(int(entry.name))
    found, stack = [], [root]
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children.get(pid, []))
    return found


def _pss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def changed_count(recap: str) -> int:
    return sum(int(n) for n in re.findall(r"changed=(\d+)", recap))


def batches(count: int, sizes: list[int]) -> list[int]:
    """How Ansible's `serial: [a, b]` splits `count` hosts: a, then b, b, ... (the last size repeats)."""
    out = []
    while count > 0:
        size = min(sizes[min(len(out), len(sizes) - 1)], count)
        out.append(size)
        count -= size
    return out


def toolkit_floor(cfg: lab_config.LabConfig, rollout_batch: int, live_batch: int) -> float:
    """The lab's waits along the playbook's critical path: per batch, a reboot when its nodes reboot, and the
    probe pods (one per node, in parallel within a batch) turning Ready."""
    rebooting, live = batch_counts(cfg, rollout_batch, live_batch)
    return rebooting * (cfg.reboot_seconds + cfg.pod_ready_seconds) + live * cfg.pod_ready_seconds


def critical_batches(cfg: lab_config.LabConfig, rollout_batch: int, live_batch: int) -> int:
    """How many batches the rollout runs one after the other (the control-plane nodes one each)."""
    return sum(batch_counts(cfg, rollout_batch, live_batch))


def batch_counts(cfg: lab_config.LabConfig, rollout_batch: int, live_batch: int) -> tuple[int, int]:
    """(batches whose nodes reboot, control-plane nodes included one each; batches that apply live)."""
    workers = [n for n in cfg.nodes if n.role == "worker"]
    reboot = sum(1 for n in workers if _reboots(n))
    control_plane = len(cfg.nodes) - len(workers)
    return (
        len(batches(reboot, [1, rollout_batch])) + control_plane,
        len(batches(len(workers) - reboot, [1, live_batch])),
    )


def _reboots(node: lab_config.Node) -> bool:
    return tuple(int(p) for p in node.talos_version.lstrip("v").split(".")[:2]) < (1, 14)


def lab_inventory(tmp: Path, reboot_seconds: float | None) -> Path:
    """The lab inventory, or a copy of it whose nodes take `reboot_seconds` to reboot."""
    source = ROOT / "inventories" / "lab"
    if reboot_seconds is None:
        return source
    copy = tmp / "inventory"
    shutil.copytree(source, copy)
    set_reboot_seconds(copy, reboot_seconds)
    return copy


def set_reboot_seconds(inventory: Path, reboot_seconds: float) -> None:
    """Make the lab nodes of a copied inventory take `reboot_seconds` to reboot."""
    settings = inventory / "group_vars" / "all" / "lab.yml"
    data = yaml.safe_load(settings.read_text())
    data["lab_reboot_seconds"] = reboot_seconds
    settings.write_text(yaml.safe_dump(data, sort_keys=False))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reboot-seconds", type=float)
    parser.add_argument("--no-naive", action="store_true")
    parser.add_argument("--save-output", type=Path)
    args = parser.parse_args()
    rollout_batch, live_batch = 1, 5  # the playbook's defaults
    with tempfile.TemporaryDirectory() as tmp:
        inventory = lab_inventory(Path(tmp), args.reboot_seconds)
        cfg = lab_config.load(inventory)
        nodes = cfg.nodes
        rebooting = [n for n in nodes if _reboots(n)]
        floor = toolkit_floor(cfg, rollout_batch, live_batch)
        naive_floor = len(rebooting) * cfg.reboot_seconds
        playbook = [
            str(Path(sys.executable).parent / "ansible-playbook"),
            "playbooks/containerd_metrics.yml",
            "-i",
            "inventories/lab/hosts.yml",
        ]
        load_before = os.getloadavg()[0]
        with Lab(Path(tmp) / "toolkit", inventory) as lab:
            lab.seed_state()
            rollout = lab.timed(playbook)
            rerun = lab.timed(playbook)
        if args.save_output:
            args.save_output.mkdir(parents=True, exist_ok=True)
            (args.save_output / "rollout.log").write_text(rollout.stdout)
            (args.save_output / "rerun.log").write_text(rerun.stdout)
        naive = None
        if not args.no_naive:
            patch = Path(tmp) / "patch.yaml"
            patch.write_text(yaml.safe_dump(PATCH_113))
            with Lab(Path(tmp) / "naive", inventory) as lab:
                lab.env.update(NODES=" ".join(f"{n.name}={n.address}" for n in rebooting), PATCH=str(patch))
                naive = lab.timed(["bash", "-c", NAIVE_LOOP])
    load_after = os.getloadavg()[0]
    print(f"lab: {len(nodes)} nodes, reboot {cfg.reboot_seconds:g} s, pod ready {cfg.pod_ready_seconds:g} s")
    print(f"machine load average (1 min) {load_before:.1f} before, {load_after:.1f} after, {os.cpu_count()} CPUs")
    print(f"{'run':<44} {'wall s':>8} {'floor s':>8} {'ratio':>6} {'API req/node':>13} {'CPU s':>7}")
    rows = [(f"toolkit rollout ({len(nodes)} nodes)", rollout, floor, len(nodes))]
    if naive is not None:
        rows.append(("naive loop (1.13 nodes, no drain/checks)", naive, naive_floor, len(rebooting)))
    for name, run, run_floor, count in rows:
        print(
            f"{name:<44} {run.wall:8.1f} {run_floor:8.1f} {run.wall / run_floor:6.2f} "
            f"{run.requests / count:13.1f} {run.cpu:7.1f}"
        )
    print(f"overhead ratio: {rollout.wall / floor:.2f}")
    serial = critical_batches(cfg, rollout_batch, live_batch)
    overhead = (rollout.wall - floor) / serial
    # The overhead per batch hardly depends on the reboot time, so it tells from which reboot time the
    # ratio target holds: 1 + overhead / (reboot + pod readiness) <= target, rebooting batches dominating.
    print(f"overhead per batch: {overhead:.1f} s ({serial} batches in a row)")
    print(
        f"no-change re-run: {rerun.wall:.1f} s, changed={changed_count(rerun.stdout)}, "
        f"API req/node {rerun.requests / len(nodes):.1f}, CPU {rerun.cpu:.1f} s"
    )
    summary = {
        "reboot_seconds": cfg.reboot_seconds,
        "wall": rollout.wall,
        "floor": floor,
        "ratio": rollout.wall / floor,
        "overhead_per_batch": overhead,
        "cpu": rollout.cpu,
        "api_per_node": rollout.requests / len(nodes),
        "rerun_wall": rerun.wall,
        "rerun_changed": changed_count(rerun.stdout),
        "load": [load_before, load_after],
    }
    if naive is not None:
        summary.update(naive_wall=naive.wall, naive_ratio=naive.wall / naive_floor)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
