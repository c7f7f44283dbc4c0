"""The fault suite's fixtures: the lab a case runs against, the case's row of the suite's table.

Plain `pytest` (CI) runs the cheap cases against the session lab every lab test shares, putting back
what they change; `scripts/fault_suite.py` (FAULT_SUITE=full) runs every case, each on a fresh
three-node lab of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.faults.fault_support import FAULT_INVENTORY, ROOT, Cluster, fresh_lab, full_suite, group_vars

LAB_INVENTORY = ROOT / "inventories" / "lab"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "fault_full: a fault case of the full suite only (scripts/fault_suite.py), too long for CI"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if full_suite():
        return
    skip = pytest.mark.skip(reason="full fault suite only: python scripts/fault_suite.py")
    for item in items:
        if "fault_full" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cluster]:
    """The lab a case runs against, with faults cleared and the migration state put back afterwards."""
    artifacts = tmp_path / "artifacts"
    if full_suite():
        run_dir = tmp_path / "lab"
        run_dir.mkdir()
        with fresh_lab(run_dir) as state:
            yield Cluster(run_dir, FAULT_INVENTORY, artifacts, state, group_vars(FAULT_INVENTORY))
        return
    lab = request.getfixturevalue("lab")
    shared = Cluster(lab.run_dir, LAB_INVENTORY, artifacts, lab.state, group_vars(LAB_INVENTORY))
    saved = shared.state_configmap()
    try:
        yield shared
    finally:
        shared.fault("api", error_rate=0, conflict_rate=0, latency=0)
        shared.fault("mimir", down="false", latency=0, auth="")
        shared.restore_state(saved)


@pytest.fixture
def table_row(record_property: Callable[[str, object], None]) -> Callable[..., None]:
    """Record the case's row of the suite's table (scripts/fault_suite.py reads it from the JUnit XML)."""

    def record(**columns: str) -> None:
        for name, value in columns.items():
            record_property(f"fault_{name}", value)

    return record
