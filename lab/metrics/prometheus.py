"""Real Prometheus processes (the Debian package's /usr/bin/prometheus) for the lab.

The storage instance receives remote writes and answers PromQL; agents scrape and remote-write.
Every process is started in its own directory, polled until `/-/ready`, and stopped by PID.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import yaml

PROMETHEUS_BINARY = shutil.which("prometheus") or "/usr/bin/prometheus"
_POLL_SECONDS = 0.05


class PrometheusError(RuntimeError):
    """A Prometheus process did not start or become ready."""


def duration(seconds: float) -> str:
    """A Prometheus duration string (milliseconds precision)."""
    return f"{round(seconds * 1000)}ms"


@dataclass
class PrometheusProcess:
    """One running Prometheus; `stop()` is idempotent."""

    name: str
    port: int
    run_dir: Path
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.run_dir / "prometheus.yml"

    def running(self) -> bool:
        return self.process.poll() is None

    def ready(self) -> bool:
        try:
            return requests.get(f"{self.url}/-/ready", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running():
                raise PrometheusError(f"{self.name} exited with {self.process.returncode}: {self.log_tail()}")
            if self.ready():
                return
            time.sleep(_POLL_SECONDS)
        raise PrometheusError(f"{self.name} not ready after {timeout} s: {self.log_tail()}")

    def stop(self, grace: float = 10.0) -> None:
        if self.running():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=grace)
        self._close_log()

    def log_tail(self, lines: int = 5) -> str:
        log = self.run_dir / "prometheus.log"
        return " | ".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else ""

    def _close_log(self) -> None:
        if self.process.stdout is not None:
            self.process.stdout.close()


class _PlainDumper(yaml.SafeDumper):
    """Writes repeated sub-structures in full: no YAML anchors in generated configs."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def write_config(path: Path, config: dict[str, Any]) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(yaml.dump(config, Dumper=_PlainDumper, sort_keys=False))
    temporary.replace(path)


def _launch(name: str, port: int, run_dir: Path, config: dict[str, Any], flags: list[str]) -> PrometheusProcess:
    run_dir.mkdir(parents=True, exist_ok=True)
    config_path = run_dir / "prometheus.yml"
    write_config(config_path, config)
    command = [
        PROMETHEUS_BINARY,
        f"--config.file={config_path}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
        *flags,
    ]
    # One OS thread per process keeps three agents and the storage within two cores.
    env = {**os.environ, "GOMAXPROCS": "1", "GOGC": "50"}
    log = (run_dir / "prometheus.log").open("wb")
    try:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=run_dir)
    finally:
        log.close()
    return PrometheusProcess(name, port, run_dir, process)


def _start(
    name: str, port: int, run_dir: Path, config: dict[str, Any], *, flags: list[str], ready_timeout: float
) -> PrometheusProcess:
    instance = _launch(name, port, run_dir, config, flags)
    try:
        instance.wait_ready(ready_timeout)
    except BaseException:
        instance.stop(grace=2)
        raise
    return instance


def start_storage(
    run_dir: Path, port: int, config: dict[str, Any], retention: str = "6h", ready_timeout: float = 30.0
) -> PrometheusProcess:
    """The storage Prometheus: TSDB, remote-write receiver on /api/v1/write, PromQL API."""
    flags = [
        f"--storage.tsdb.path={run_dir / 'data'}",
        f"--storage.tsdb.retention.time={retention}",
        "--web.enable-remote-write-receiver",
    ]
    return _start("storage", port, run_dir, config, flags=flags, ready_timeout=ready_timeout)


def start_agent(
    name: str, run_dir: Path, port: int, config: dict[str, Any], ready_timeout: float = 30.0
) -> PrometheusProcess:
    """A Prometheus in agent mode: scrapes and remote-writes, keeps only a WAL."""
    flags = [
        "--enable-feature=agent",
        f"--storage.agent.path={run_dir / 'wal'}",
        # Agents stop within seconds even when the receiver is already gone.
        "--storage.remote.flush-deadline=2s",
    ]
    return _start(name, port, run_dir, config, flags=flags, ready_timeout=ready_timeout)
