"""Prometheus text exposition (format 0.0.4): families for the fake endpoints and the front's own metrics."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

LabelSet = Mapping[str, str]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _format_value(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    return repr(float(value)) if value != int(value) or abs(value) >= 1e15 else str(int(value))


def sample_line(name: str, labels: LabelSet, value: float) -> str:
    if not labels:
        return f"{name} {_format_value(value)}"
    pairs = ",".join(f'{key}="{_escape(str(val))}"' for key, val in labels.items())
    return f"{name}{{{pairs}}} {_format_value(value)}"


@dataclass
class Family:
    """One metric family: HELP, TYPE and its samples (name suffixes such as _bucket included)."""

    name: str
    type: str
    help: str
    samples: list[tuple[str, LabelSet, float]] = field(default_factory=list)

    def add(self, labels: LabelSet, value: float, suffix: str = "") -> None:
        self.samples.append((self.name + suffix, labels, value))

    def render(self) -> str:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.type}"]
        lines += [sample_line(name, labels, value) for name, labels, value in self.samples]
        return "\n".join(lines) + "\n"


def render(families: Iterable[Family]) -> bytes:
    return "".join(family.render() for family in families).encode()


class CounterVec:
    """A thread-safe counter with label dimensions."""

    def __init__(self, name: str, help_text: str, label_names: tuple[str, ...]) -> None:
        self.name, self.help, self.label_names = name, help_text, label_names
        self._values: dict[tuple[str, ...], float] = {}
        self._lock = threading.Lock()

    def inc(self, *label_values: str, amount: float = 1.0) -> None:
        with self._lock:
            self._values[label_values] = self._values.get(label_values, 0.0) + amount

    def family(self) -> Family:
        family = Family(self.name, "counter", self.help)
        with self._lock:
            for key, value in sorted(self._values.items()):
                family.add(dict(zip(self.label_names, key, strict=True)), value)
        return family


class HistogramVec:
    """A thread-safe classic histogram with label dimensions."""

    def __init__(self, name: str, help_text: str, label_names: tuple[str, ...], buckets: tuple[float, ...]) -> None:
        self.name, self.help, self.label_names, self.buckets = name, help_text, label_names, buckets
        self._series: dict[tuple[str, ...], tuple[list[int], list[float]]] = {}
        self._lock = threading.Lock()

    def observe(self, value: float, *label_values: str) -> None:
        with self._lock:
            counts, totals = self._series.setdefault(label_values, ([0] * len(self.buckets), [0.0, 0.0]))
            for index, bound in enumerate(self.buckets):
                if value <= bound:
                    counts[index] += 1
            totals[0] += value
            totals[1] += 1

    def family(self) -> Family:
        family = Family(self.name, "histogram", self.help)
        with self._lock:
            for key, (counts, (total, count)) in sorted(self._series.items()):
                labels = dict(zip(self.label_names, key, strict=True))
                for bound, bucket_count in zip(self.buckets, counts, strict=True):
                    family.add({**labels, "le": _format_value(bound)}, bucket_count, "_bucket")
                family.add({**labels, "le": "+Inf"}, count, "_bucket")
                family.add(labels, total, "_sum")
                family.add(labels, count, "_count")
        return family
