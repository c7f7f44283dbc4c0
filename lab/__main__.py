"""`python -m lab up|down|status|fault|serve`: the rehearsal cluster's command line."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from lab import config as lab_config
from lab.metrics.config import MetricsConfig
from lab.runtime import STAGES, STATE_FILE, serve

START_TIMEOUT = 90.0
STOP_GRACE = 30.0


def _state(run_dir: Path) -> dict | None:
    path = run_dir / STATE_FILE
    if not path.exists():
        return None
    state = json.loads(path.read_text())
    try:
        os.kill(state["pid"], 0)
    except ProcessLookupError:
        return None
    return state


def _control(state: dict, method: str, path: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(
        state["control"] + path,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {state['control_token']}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def cmd_wait_history(cfg: lab_config.LabConfig, args: argparse.Namespace) -> int:
    """Wait until every legacy target has `scrapes` samples of `up` within the last `window` in Mimir.

    A real cluster has hours of history when a migration starts; a lab just started has none, and the
    baseline phase (rightly) refuses a window without data. The demo and the notebook wait with this.
    """
    if _state(cfg.run_dir) is None:
        print("lab is not running", file=sys.stderr)
        return 3
    metrics = MetricsConfig(**cfg.metrics)
    query = f'min(count_over_time(up{{prometheus!=""}}[{args.window}]))'
    url = f"http://127.0.0.1:{metrics.mimir_port}/prometheus/api/v1/query?" + urllib.parse.urlencode({"query": query})
    request = urllib.request.Request(url, headers={"X-Scope-OrgID": metrics.tenant_id})
    deadline = time.monotonic() + args.timeout
    seen = 0.0
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                result = json.loads(response.read())["data"]["result"]
            seen = float(result[0]["value"][1]) if result else 0.0
        except (OSError, ValueError, KeyError):
            seen = 0.0
        if seen >= args.scrapes:
            print(f"legacy history: every target has {seen:.0f} scrapes in the last {args.window}")
            return 0
        time.sleep(2)
    print(
        f"legacy history: {seen:.0f} of {args.scrapes} scrapes in {args.window} after {args.timeout}s", file=sys.stderr
    )
    return 1


def cmd_up(cfg: lab_config.LabConfig) -> int:
    state = _state(cfg.run_dir)
    if state and state.get("ready"):
        print(f"lab already running (pid {state['pid']})")
        return cmd_status(cfg)
    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    (cfg.run_dir / STATE_FILE).unlink(missing_ok=True)
    log = open(cfg.run_dir / "lab.log", "ab")  # noqa: SIM115 - handed to the child process
    env = {
        **os.environ,
        "LAB_RUN_DIR": str(cfg.run_dir),
        "LAB_INVENTORY": str(cfg.inventory),
        "LAB_STAGE": cfg.stage,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "lab", "serve"],
        cwd=lab_config.ROOT,
        env=env,
        stdout=log,
        stderr=log,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            _stop_session(process)
            print(f"lab failed to start (exit {process.returncode}); see {cfg.run_dir / 'lab.log'}", file=sys.stderr)
            return 1
        state = _state(cfg.run_dir)
        if state and state.get("ready"):
            print(f"lab up in {START_TIMEOUT - (deadline - time.monotonic()):.1f}s (pid {state['pid']})")
            return cmd_status(cfg)
        time.sleep(0.2)
    _stop_session(process)
    print(f"lab did not become ready within {START_TIMEOUT:.0f}s; see {cfg.run_dir / 'lab.log'}", file=sys.stderr)
    return 1


def _stop_session(process: subprocess.Popen) -> None:
    """Stop a lab that did not come up, and whatever it started (Prometheus agents, collectors).

    The lab stops its own components on SIGTERM; what is still alive in its session after STOP_GRACE
    (the lab died before it could, or hangs) is killed, so no orphan keeps the lab's ports."""
    if process.poll() is None:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=STOP_GRACE)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def cmd_down(cfg: lab_config.LabConfig) -> int:
    state = _state(cfg.run_dir)
    if state is None:
        print("lab is not running")
        return 0
    os.kill(state["pid"], signal.SIGTERM)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(state["pid"], 0)
        except ProcessLookupError:
            print(f"lab stopped (pid {state['pid']})")
            return 0
        time.sleep(0.1)
    # The lab leads its own session (cmd_up): the kill takes its Prometheus agents and collectors with it.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(state["pid"], signal.SIGKILL)
    print(f"lab killed after 30s (pid {state['pid']})")
    return 0


def cmd_status(cfg: lab_config.LabConfig) -> int:
    state = _state(cfg.run_dir)
    if state is None:
        print("lab is not running (start it with `python -m lab up` or `make lab-up`)")
        return 3
    status = _control(state, "GET", "/status")
    width = max(len(c["name"]) for c in status["components"]) + 1
    print(f"{'COMPONENT':<{width}} {'HEALTH':<8} {'ADDRESS':<28} DETAIL")
    for comp in status["components"]:
        health = "ok" if comp["healthy"] else "FAILING"
        print(f"{comp['name']:<{width}} {health:<8} {comp['address']:<28} {comp['detail']}")
    print("\nfiles for clients:")
    for name, path in status["files"].items():
        print(f"  {name:<16} {path}")
    return 0 if all(c["healthy"] for c in status["components"]) else 1


def cmd_fault(cfg: lab_config.LabConfig, args: argparse.Namespace) -> int:
    state = _state(cfg.run_dir)
    if state is None:
        print("lab is not running", file=sys.stderr)
        return 3
    request: dict = {"target": args.target}
    for pair in args.settings:
        key, _, value = pair.partition("=")
        request[key.replace("-", "_")] = value
    try:
        print(json.dumps(_control(state, "POST", "/fault", request), indent=2))
    except urllib.error.HTTPError as error:
        print(f"fault refused: {json.loads(error.read() or b'{}').get('error', error.reason)}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab", description=__doc__)
    parser.add_argument("--inventory", type=Path, help="inventory directory (default inventories/lab)")
    parser.add_argument("--run-dir", type=Path, help="where the lab keeps its state (default .lab)")
    sub = parser.add_subparsers(dest="command", required=True)
    stage_help = (
        "start after a migration phase: `containerd` = every node's machine config already enables "
        "containerd metrics, as the talos_containerd_metrics role leaves it (default: the legacy cluster)"
    )
    up = sub.add_parser("up", help="start the lab in the background and wait until it is ready")
    up.add_argument("--stage", choices=[stage for stage in STAGES if stage], help=stage_help)
    sub.add_parser("down", help="stop the lab and everything it started")
    sub.add_parser("status", help="print each component, its address and health, and the client files")
    serve_parser = sub.add_parser("serve", help="run the lab in the foreground (what `up` starts)")
    serve_parser.add_argument("--stage", choices=[stage for stage in STAGES if stage], help=stage_help)
    fault = sub.add_parser(
        "fault",
        help="inject a fault: `fault api error_rate=0.2 error_code=503 latency=0.1 conflict_rate=0.1 "
        "[seconds=5]` (a burst: cleared by itself after that long), `fault api errors=2 conflicts=2` (exactly "
        "the next 2 requests, the next 2 writes), "
        "`fault node node=talos-worker-3 kind=never_returns|slow_reboot|clear [seconds=30]`, "
        "`fault mimir down=true|false latency=2 auth=user:password` (auth: a basic-auth gateway in front, "
        "`auth=` removes it), "
        "`fault pod namespace=monitoring name=alloy-1 kind=unready|clear` (its containers stop being ready)",
    )
    history = sub.add_parser(
        "wait-history", help="wait until the legacy series in Mimir cover a window (what a baseline needs)"
    )
    history.add_argument("--window", default="2m", help="PromQL duration of the window (default 2m)")
    history.add_argument("--scrapes", type=int, default=6, help="scrapes every legacy target needs in it")
    history.add_argument("--timeout", type=float, default=300.0, help="seconds to wait at most")
    fault.add_argument("target", choices=["api", "node", "mimir", "pod"])
    fault.add_argument("settings", nargs="*", help="key=value settings of the fault (0 clears)")
    args = parser.parse_args(argv)
    cfg = lab_config.load(args.inventory, args.run_dir, getattr(args, "stage", None))
    if args.command == "serve":
        serve(cfg)
        return 0
    if args.command == "fault":
        return cmd_fault(cfg, args)
    if args.command == "wait-history":
        return cmd_wait_history(cfg, args)
    return {"up": cmd_up, "down": cmd_down, "status": cmd_status}[args.command](cfg)


if __name__ == "__main__":
    sys.exit(main())
