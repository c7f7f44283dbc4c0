"""A real Prometheus (the Debian package, as the lab runs it) holding every scenario of validation_data.

The scenarios are pushed through Prometheus' remote-write receiver with the lab's codec, so every figure
a gate computes is computed by Prometheus itself from known samples.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from ansible.module_utils.migration_figures import Measurer, capture_baseline

from lab.metrics.prometheus import PrometheusProcess, start_storage
from lab.metrics.remote_write import encode_body
from tests.validation.validation_data import BASELINE_AGO, BREAKAGES, INTERVAL, Scenario, build, write_request
from tests.validation.validation_setup import baseline_spec, client

HEADERS = {
    "Content-Encoding": "snappy",
    "Content-Type": "application/x-protobuf",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def push(storage_url: str, scenario: Scenario) -> None:
    reply = requests.post(
        f"{storage_url}/api/v1/write", data=encode_body(write_request(scenario)), headers=HEADERS, timeout=30
    )
    assert reply.status_code == 204, f"{scenario.name}: {reply.status_code} {reply.text}"


def visible(storage_url: str, scenario: Scenario) -> bool:
    query = f'count(up{{scenario="{scenario.name}"}})'
    reply = requests.get(f"{storage_url}/api/v1/query", params={"query": query, "time": scenario.t0}, timeout=5)
    return bool(reply.json()["data"]["result"])


@pytest.fixture(scope="session")
def t0() -> int:
    """The evaluation time: the last scrape of every scenario, on the 15 s grid, a moment ago."""
    return int(time.time()) // INTERVAL * INTERVAL - INTERVAL


@pytest.fixture(scope="session")
def scenarios(t0: int) -> dict[str, Scenario]:
    built = {"good": build("good", t0)}
    built |= {name: build(name, t0, breakage=name) for name in BREAKAGES}
    return built


@pytest.fixture(scope="session")
def storage(tmp_path_factory: pytest.TempPathFactory, scenarios: dict[str, Scenario]) -> Iterator[PrometheusProcess]:
    instance = start_storage(tmp_path_factory.mktemp("validation-storage"), free_port(), {"global": {}})
    try:
        for scenario in scenarios.values():
            push(instance.url, scenario)
        deadline = time.monotonic() + 20
        while not all(visible(instance.url, scenario) for scenario in scenarios.values()):
            assert time.monotonic() < deadline, "pushed scenarios not queryable within 20 s"
            time.sleep(0.2)
        yield instance
    finally:
        instance.stop()


@pytest.fixture(scope="session")
def baseline(storage: PrometheusProcess, scenarios: dict[str, Scenario]) -> dict[str, Any]:
    """Captured from the good scenario before its cutover, exactly as the baseline phase does."""
    good = scenarios["good"]
    document, problems = capture_baseline(Measurer(client(storage.url), good.t0 - BASELINE_AGO), baseline_spec(good))
    assert not problems
    document |= {"evaluated_at": good.t0 - BASELINE_AGO, "window": "10m"}
    return document
