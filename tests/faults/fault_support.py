"""What every fault case needs: the lab it runs against, its faults, the playbooks as a user runs them,
the migration state, a snapshot of what the cluster holds, and the continuity check against the lab Mimir."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes
import yaml
from ansible.module_utils.kube_api import KubeApi
from ansible.module_utils.migration_state import (
    Context,
    MigrationState,
    StateStore,
    StoreSettings,
    begin,
    fail,
    succeed,
)

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
VENV_BIN = Path(sys.executable).parent
# The full suite's cluster (three nodes, one of each rollout path) and the phase settings that let a
# whole migration run in about a minute on it.
FAULT_INVENTORY = HERE / "inventory"
FAST_VARS = HERE / "fast.yml"
# The lab's metrics scrape every 2 s in every fault case (as the session lab of tests/conftest.py).
LAB_METRICS = {"scrape_interval_seconds": 2, "scrape_timeout_seconds": 2, "meta_scrape_interval_seconds": 2}
STATE_CONFIGMAP = "alloy-migration-state"


def full_suite() -> bool:
    """The whole suite runs (scripts/fault_suite.py); plain pytest runs the cheap cases only."""
    return os.environ.get("FAULT_SUITE") == "full"


@dataclass
class Run:
    """One ansible-playbook run: everything it printed (stdout and stderr, as a terminal shows them)."""

    argv: list[str]
    rc: int
    output: str
    seconds: float
    interrupted: bool = False

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.output.splitlines()[-lines:])


@dataclass
class Cluster:
    """A running lab and the inventory that describes it, as an operator's checkout would have them."""

    run_dir: Path
    inventory: Path
    artifacts: Path
    state: dict
    group_vars: dict = field(default_factory=dict)

    # -- the lab ------------------------------------------------------------------------------
    @property
    def kubeconfig(self) -> Path:
        return self.run_dir / "kubeconfig"

    @property
    def namespace(self) -> str:
        return self.group_vars.get("migration_namespace", "monitoring")

    @property
    def cluster_name(self) -> str:
        return self.group_vars["migration_cluster_name"]

    @property
    def mimir_query_url(self) -> str:
        return self.group_vars["migration_mimir_query_url"]

    @property
    def tenant(self) -> str:
        return self.group_vars.get("migration_mimir_tenant", "")

    @property
    def new_pipeline_selector(self) -> str:
        """The new pipeline's series: no legacy `prometheus` label, this cluster's label (validation's view)."""
        label = self.group_vars.get("alloy_cluster_label", "cluster")
        return f'prometheus="", {label}="{self.cluster_name}"'

    def nodes(self) -> list[str]:
        hosts = yaml.safe_load((self.inventory / "hosts.yml").read_text())
        groups = hosts["all"]["children"]["talos_nodes"]["children"]
        return [name for group in groups.values() for name in (group.get("hosts") or {})]

    def env(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "LAB_RUN_DIR": str(self.run_dir),
            "LAB_INVENTORY": str(self.inventory),
            "KUBECONFIG": str(self.kubeconfig),
            "K8S_AUTH_KUBECONFIG": str(self.kubeconfig),
            "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
            "PYTHONPATH": str(ROOT),
            "PATH": os.pathsep.join([str(VENV_BIN), str(ROOT / "lab" / "bin"), str(ROOT / "bin"), os.environ["PATH"]]),
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_NOCOLOR": "1",
            **extra,
        }

    def lab(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "lab", *args],
            cwd=ROOT,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def fault(self, target: str, **settings: object) -> dict:
        """`python -m lab fault <target> key=value...`, as an operator rehearsing a failure would type it."""
        done = self.lab("fault", target, *(f"{key}={value}" for key, value in settings.items()), timeout=60)
        assert done.returncode == 0, f"lab fault {target} {settings} refused: {done.stderr}"
        return json.loads(done.stdout)

    def fault_now(self, target: str, **settings: object) -> dict:
        """The same fault through the lab's control API: in effect within milliseconds, for a mid-run fault."""
        body = json.dumps({"target": target, **{key: str(value) for key, value in settings.items()}}).encode()
        request = urllib.request.Request(
            self.state["control"] + "/fault",
            data=body,
            method="POST",
            headers={"Authorization": f"Bearer {self.state['control_token']}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def control(self, path: str) -> dict:
        request = urllib.request.Request(
            self.state["control"] + path, headers={"Authorization": f"Bearer {self.state['control_token']}"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def api_requests(self, since: float, until: float | None = None) -> list[dict]:
        """The lab API's request log between two times: verb, resource, code and client of each request."""
        entries = []
        for line in (self.run_dir / "api-requests.jsonl").read_text().splitlines():
            entry = json.loads(line)
            if entry["t"] >= since and (until is None or entry["t"] <= until):
                entries.append(entry)
        return entries

    # -- playbooks ----------------------------------------------------------------------------
    def playbook_argv(self, playbook: str, *args: str) -> list[str]:
        """ansible-playbook for playbooks/<playbook> (or a path), with this inventory and the suite's settings."""
        return [
            str(VENV_BIN / "ansible-playbook"),
            playbook if "/" in playbook else f"playbooks/{playbook}",
            "-i",
            str(self.inventory),
            "-e",
            f"@{FAST_VARS}",
            "-e",
            f"migration_artifacts_dir={self.artifacts}",
            *args,
        ]

    def playbook(self, playbook: str, *args: str, env: dict[str, str] | None = None, timeout: float = 600) -> Run:
        """Run a playbook as a user would, and keep everything it printed."""
        argv = self.playbook_argv(playbook, *args)
        started = time.monotonic()
        try:
            done = subprocess.run(
                argv,
                cwd=ROOT,
                env=self.env(**(env or {})),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as expired:
            output = expired.output.decode() if isinstance(expired.output, bytes) else expired.output or ""
            raise AssertionError(f"{playbook} still running after {timeout:.0f} s:\n{output[-4000:]}") from None
        return Run(argv, done.returncode, done.stdout, time.monotonic() - started)

    def play(self, tasks: list[dict], *args: str, env: dict[str, str] | None = None, timeout: float = 300) -> Run:
        """Run tasks (a role's entry point, a module) in a localhost play with the same inventory and settings
        as the playbooks: what a case needs when a whole phase would cost more than its fault is worth."""
        self.artifacts.mkdir(parents=True, exist_ok=True)
        path = self.artifacts / f"play-{abs(hash(json.dumps(tasks, sort_keys=True)))}.yml"
        play = [{"name": "fault case", "hosts": "localhost", "gather_facts": False, "tasks": tasks}]
        path.write_text(yaml.safe_dump(play, sort_keys=False))
        argv = self.playbook_argv(str(path), *args)
        started = time.monotonic()
        done = subprocess.run(
            argv,
            cwd=ROOT,
            env=self.env(**(env or {})),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            check=False,
        )
        return Run(argv, done.returncode, done.stdout, time.monotonic() - started)

    def playbook_watched(
        self,
        playbook: str,
        *args: str,
        when: Callable[[str], bool],
        then: Callable[[subprocess.Popen], None],
        timeout: float = 600,
    ) -> Run:
        """Run a playbook and act once, mid-run, as soon as `when(output so far)` holds at the start of a
        task: `then(process)` injects the fault (a signal, a lab fault) at that point of the run."""
        argv = self.playbook_argv(playbook, *args)
        started = time.monotonic()
        process = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=self.env(PYTHONUNBUFFERED="1"),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        assert process.stdout is not None
        watchdog = threading.Timer(timeout, lambda: os.killpg(process.pid, signal.SIGKILL))
        watchdog.start()
        lines: list[str] = []
        acted = False
        try:
            for line in process.stdout:
                lines.append(line)
                if not acted and line.startswith("TASK [") and when("".join(lines)):
                    then(process)
                    acted = True
            rc = process.wait()
        finally:
            watchdog.cancel()
        return Run(argv, rc, "".join(lines), time.monotonic() - started, acted)

    def playbook_interrupted(self, playbook: str, *args: str, when: Callable[[str], bool], timeout: float = 600) -> Run:
        """Ctrl-C at a terminal: SIGINT to the whole foreground process group once `when` holds."""
        return self.playbook_watched(
            playbook, *args, when=when, then=lambda process: os.killpg(process.pid, signal.SIGINT), timeout=timeout
        )

    # -- the cluster's content ------------------------------------------------------------------
    def api(self) -> kubernetes.client.ApiClient:
        return kubernetes.config.new_client_from_config(config_file=str(self.kubeconfig))

    def state_store(self) -> StateStore:
        return StateStore(KubeApi(str(self.kubeconfig)), StoreSettings(self.namespace, STATE_CONFIGMAP))

    def migration_state(self) -> MigrationState:
        return self.state_store().read()[0]

    def record_phases(self, phases: list[str], details: dict[str, dict] | None = None) -> None:
        """Record phases as succeeded, as the runs before a case's phase would have left them."""
        store = self.state_store()
        ctx = Context(now=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), by="fault-suite", environment="lab")
        for phase in phases:
            store.update(lambda state, phase=phase: begin(state, phase, [], ctx), check_mode=False)
            store.update(
                lambda state, phase=phase: succeed(state, phase, (details or {}).get(phase, {}), ctx),
                check_mode=False,
            )

    def record_failure(self, phase: str, reason: str) -> None:
        store = self.state_store()
        ctx = Context(now=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), by="fault-suite", environment="lab")
        store.update(lambda state: fail(state, phase, reason, {}, ctx), check_mode=False)

    def state_configmap(self) -> dict | None:
        core = kubernetes.client.CoreV1Api(self.api())
        try:
            return core.read_namespaced_config_map(STATE_CONFIGMAP, self.namespace).to_dict()
        except kubernetes.client.exceptions.ApiException as error:
            if error.status == 404:
                return None
            raise

    def restore_state(self, saved: dict | None) -> None:
        """Put the migration state back as it was before a case (the session lab is shared)."""
        core = kubernetes.client.CoreV1Api(self.api())
        current = self.state_configmap()
        if saved is None:
            if current is not None:
                core.delete_namespaced_config_map(STATE_CONFIGMAP, self.namespace)
            return
        body = {"metadata": {"name": STATE_CONFIGMAP, "labels": saved["metadata"].get("labels")}, "data": saved["data"]}
        if current is None:
            core.create_namespaced_config_map(self.namespace, body)
        else:
            core.replace_namespaced_config_map(STATE_CONFIGMAP, self.namespace, body)

    def snapshot(self) -> dict[str, str]:
        """What the cluster holds, object by object: a digest of each object's spec or data (not its status),
        the migration state left out. Two equal snapshots mean the run changed nothing."""
        client = kubernetes.dynamic.DynamicClient(self.api())
        kinds = [
            ("v1", "ConfigMap"),
            ("v1", "Secret"),
            ("v1", "Service"),
            ("v1", "ServiceAccount"),
            ("v1", "Node"),
            ("apps/v1", "Deployment"),
            ("apps/v1", "StatefulSet"),
            ("apps/v1", "DaemonSet"),
            ("rbac.authorization.k8s.io/v1", "ClusterRole"),
            ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
            ("monitoring.coreos.com/v1", "Prometheus"),
        ]
        digests: dict[str, str] = {}
        for api_version, kind in kinds:
            for item in client.resources.get(api_version=api_version, kind=kind).get().to_dict()["items"]:
                meta = item["metadata"]
                if kind == "ConfigMap" and meta["name"] == STATE_CONFIGMAP:
                    continue
                content = {key: item.get(key) for key in ("spec", "data", "rules", "roleRef", "subjects")}
                content["labels"] = meta.get("labels")
                key = f"{kind} {meta.get('namespace', '')}/{meta['name']}".replace(" /", " ")
                digests[key] = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]
        return digests


def snapshot_difference(before: dict[str, str], after: dict[str, str]) -> list[str]:
    return sorted(
        [f"created {key}" for key in after.keys() - before.keys()]
        + [f"removed {key}" for key in before.keys() - after.keys()]
        + [f"changed {key}" for key in before.keys() & after.keys() if before[key] != after[key]]
    )


def group_vars(inventory: Path) -> dict:
    """The inventory's group_vars/all, as the playbooks and the lab read them (vault files left out)."""
    merged: dict = {}
    for path in sorted((inventory / "group_vars" / "all").glob("*.yml")):
        text = path.read_text()
        if not text.startswith("$ANSIBLE_VAULT"):
            merged.update(yaml.safe_load(text) or {})
    return merged


@contextlib.contextmanager
def fresh_lab(run_dir: Path) -> Iterator[dict]:
    """A lab of the fault inventory in its own run directory: its state while the caller runs, then stopped."""
    env = {
        **os.environ,
        "LAB_RUN_DIR": str(run_dir),
        "LAB_INVENTORY": str(FAULT_INVENTORY),
        "PYTHONPATH": str(ROOT),
        "LAB_METRICS": json.dumps(LAB_METRICS),
    }
    try:
        up = subprocess.run(
            [sys.executable, "-m", "lab", "up"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert up.returncode == 0, f"lab up failed:\n{up.stdout}\n{up.stderr}\n{(run_dir / 'lab.log').read_text()}"
        yield json.loads((run_dir / "lab.json").read_text())
    finally:
        subprocess.run(
            [sys.executable, "-m", "lab", "down"], cwd=ROOT, env=env, capture_output=True, timeout=60, check=False
        )


# -- Mimir --------------------------------------------------------------------------------------


def mimir_query(cluster: Cluster, query: str, at: float, auth: tuple[str, str] | None = None) -> list[dict]:
    params = urllib.parse.urlencode({"query": query, "time": f"{at:.3f}"})
    headers = {"X-Scope-OrgID": cluster.tenant} if cluster.tenant else {}
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    request = urllib.request.Request(f"{cluster.mimir_query_url}/api/v1/query?{params}", headers=headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["data"]["result"]


@dataclass
class Continuity:
    """How the series of `up` that Mimir holds for a time range hold up: the data lost, if any."""

    series: int
    gaps: list[str]
    ended: list[str]
    duplicates: list[str]
    interval: float
    may_end: bool = False
    allowance: float = 3.0
    longest: float = 0.0

    @property
    def lost(self) -> bool:
        return bool(self.gaps or (self.ended and not self.may_end))

    def summary(self) -> str:
        if not self.series:
            return "no series to judge"
        parts = []
        if self.gaps:
            parts.append(f"{len(self.gaps)} gap(s): " + "; ".join(self.gaps[:3]))
        if self.ended and not self.may_end:
            parts.append(f"{len(self.ended)} stopped: " + "; ".join(self.ended[:3]))
        if self.duplicates:
            parts.append(f"{len(self.duplicates)} duplicated: " + "; ".join(self.duplicates[:3]))
        return ", ".join(parts) or (
            f"none ({self.series} series, longest step {self.longest:.0f} s, none > {self.allowance * self.interval:.0f} s)"
        )


def continuity(
    cluster: Cluster,
    start: float,
    end: float,
    selector: str,
    interval: float,
    ignore: Callable[[dict], bool] = lambda labels: False,
    may_end: bool = False,
    settle: float = 20.0,
    allowance: float = 3.0,
) -> Continuity:
    """Every series of `up{selector}` with samples in [start, end]: a gap is two consecutive samples more
    than `allowance` intervals apart (3: a scrape missed twice over); a series that stops before `end` is a target
    no longer scraped (allowed with `may_end`, e.g. the legacy pipeline once decommissioned); a duplicate
    is a series with many samples much closer than its interval (two writers for one target). A series may
    begin inside the range (a target added). `ignore` leaves out targets the fault itself takes away.
    Samples queued while Mimir was unreachable arrive late: judged again for up to `settle` seconds."""
    deadline = time.monotonic() + settle
    while True:
        judged = _judge_continuity(cluster, start, end, selector, interval, ignore, may_end, allowance)
        if not judged.lost or time.monotonic() > deadline:
            return judged
        time.sleep(2)


def _judge_continuity(
    cluster: Cluster,
    start: float,
    end: float,
    selector: str,
    interval: float,
    ignore: Callable[[dict], bool],
    may_end: bool,
    allowance: float,
) -> Continuity:
    seconds = max(1, int(end - start))
    result = mimir_query(cluster, f"up{{{selector}}}[{seconds}s]", end)
    gaps: list[str] = []
    ended: list[str] = []
    duplicates: list[str] = []
    judged = 0
    longest = 0.0
    for item in result:
        labels = item["metric"]
        if ignore(labels):
            continue
        judged += 1
        stamps = [float(value[0]) for value in item["values"]]
        name = f"{labels.get('job', '?')}/{labels.get('instance', labels.get('node', '?'))}"
        steps = [later - earlier for earlier, later in itertools.pairwise(stamps)]
        worst = max(steps, default=0.0)
        longest = max(longest, worst)
        if worst > allowance * interval:
            gaps.append(f"{name} {worst:.0f} s")
        # Remote write delivers in batches: the newest samples may still be on their way.
        if stamps and stamps[-1] < end - max(3 * interval, 15.0):
            ended.append(f"{name} {end - stamps[-1]:.0f} s before the end")
        # A target handed from one scraper to another may see one short step at each hand-over; two
        # writers for one target show short steps all along.
        short = sum(step < 0.6 * interval for step in steps)
        if short > 2:
            duplicates.append(f"{name} {short} of {len(steps)} steps under {0.6 * interval:.0f} s")
    return Continuity(judged, gaps, ended, duplicates, interval, may_end, allowance, longest)


def wait_for(condition: Callable[[], Any], timeout: float, interval: float = 1.0, what: str = "condition") -> Any:
    """Poll until `condition()` returns something truthy; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = condition()
        except (OSError, urllib.error.URLError, kubernetes.client.exceptions.ApiException) as error:
            last = error
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"{what} not reached within {timeout:.0f} s (last: {last!r})")
