"""Fixtures for the metrics plane tests."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator

import pytest
from metrics_support import CapturingStorage


@pytest.fixture
def subnet() -> str:
    """A /24 in 127.0.0.0/8 that no parallel test run is likely to use."""
    rng = random.Random(os.getpid() * 1000 + time.monotonic_ns())
    return f"127.{rng.randint(20, 250)}.{rng.randint(1, 250)}"


@pytest.fixture
def capturing_storage() -> Iterator[CapturingStorage]:
    storage = CapturingStorage()
    storage.endpoint.open()
    yield storage
    storage.endpoint.close()
