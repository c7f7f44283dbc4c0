"""The migration report: verdicts, the seed-style before/after table and three plots.

Everything in it comes from the baseline document and what the gates measured; it never receives a
credential, and `render` refuses to write a text that contains one it was told about.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ansible.module_utils.migration_figures import human_bytes, human_number, human_seconds

KIND = "alloy-migration-validation"
SCHEMA_VERSION = 1
PLOTS = ("scrape_duration.png", "push_latency.png", "samples_by_pipeline.png")


@dataclass(frozen=True)
class Comparison:
    """A legacy source and the new source that replaces it (e.g. cadvisor -> kubelet:/metrics/cadvisor)."""

    label: str
    legacy: str
    new: str


@dataclass(frozen=True)
class Row:
    figure: str
    before: float | None
    after: float | None
    unit: str
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.before is None or self.after is None or self.before == 0:
            return None
        return self.after / self.before

    def shown(self, value: float | None) -> str:
        if self.unit == "s":
            return human_seconds(value)
        if self.unit == "B":
            return human_bytes(value)
        if self.unit == "B/s":
            return human_bytes(value, per_second=True)
        return human_number(value, self.unit)

    def as_dict(self) -> dict[str, Any]:
        return {
            "figure": self.figure,
            "before": self.before,
            "after": self.after,
            "unit": self.unit,
            "ratio": self.ratio,
            "note": self.note,
        }


def _get(document: dict[str, Any], *path: str) -> Any:
    for key in path:
        if not isinstance(document, dict):
            return None
        document = document.get(key)
    return document


def comparison_rows(
    baseline: dict[str, Any],
    current: dict[str, Any],
    comparisons: list[Comparison],
    legacy_running: bool,
) -> list[Row]:
    """The seed's before/after table, every figure measured; None where nothing could be measured."""
    rows = []
    for item in comparisons:
        before, after = _get(baseline, "sources", item.legacy), _get(current, "sources", item.new)
        where = f"{item.label} ({item.legacy} -> {item.new})"
        for field, title in (
            ("scrape_duration_p99_seconds", "Scrape duration p99"),
            ("scrape_duration_p50_seconds", "Scrape duration p50"),
            ("scrape_interval_seconds", "Scrape interval"),
        ):
            rows.append(Row(f"{title}, {where}", _get(before, field), _get(after, field), "s"))
    rows.append(
        Row(
            "Distributor write p99",
            _get(baseline, "mimir", "push_p99_seconds"),
            _get(current, "mimir", "push_p99_seconds"),
            "s",
        )
    )
    bytes_before = _get(baseline, "mimir", "received_bytes_per_second")
    bytes_now = _get(current, "mimir", "received_bytes_per_second")
    note = ""
    if legacy_running and bytes_now is not None and bytes_before is not None:
        bytes_now -= bytes_before
        note = "legacy still writing: after = now minus the baseline (an estimate until it is decommissioned)"
    rows.append(Row("Distributor bandwidth", bytes_before, bytes_now, "B/s", note))
    rows.append(
        Row(
            "Samples/s sent to Mimir by the pipeline",
            _get(baseline, "mimir", "incoming_samples_per_second"),
            _get(current, "pipeline_samples_per_second"),
            "samples/s",
            "before: every HA replica's samples as Mimir received them; after: the new pipeline's scraped samples",
        )
    )
    for field, title, unit in (("cpu_cores", "CPU", "cores"), ("memory_bytes", "Memory", "B")):
        legacy_names = ", ".join(_get(baseline, "resources") or {})
        new_names = ", ".join(_get(current, "resources") or {})
        rows.append(
            Row(
                f"{title} ({legacy_names or 'legacy'} -> {new_names or 'new'})",
                _get(baseline, "resources_total", field),
                _get(current, "resources_total", field),
                unit,
            )
        )
    return rows


# --- Markdown -------------------------------------------------------------------------------------


def _utc(timestamp: float | None) -> str:
    if timestamp is None:
        return "unknown"
    return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"x{value:.3g}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(report: dict[str, Any]) -> str:
    verdicts = report["verdicts"]
    counts = {status: sum(1 for v in verdicts if v["status"] == status) for status in ("PASS", "FAIL", "SKIP")}
    outcome = "PASSED" if report["passed"] else "FAILED"
    baseline = report["baseline"]
    lines = [
        f"# Migration validation: {report['cluster_name'] or 'cluster'} ({report['environment'] or '-'})",
        "",
        f"**{outcome}**: {counts['PASS']} passed, {counts['FAIL']} failed, {counts['SKIP']} skipped; evaluated "
        f"{_utc(report['evaluated_at'])} against `{report['query_url']}`.",
        f"Baseline `{baseline['path']}` (sha256 `{baseline['digest']}`), captured {baseline['captured_at']} over "
        f"{baseline['window']}.",
        "",
        "## Gates",
        "",
        "| | gate | figures | threshold |",
        "|---|---|---|---|",
    ]
    lines += [f"| {v['status']} | {v['gate']} | {_cell(v['figures'])} | {_cell(v['threshold'])} |" for v in verdicts]
    lines += ["", "Verdict lines, with their queries:", "", "```text"]
    lines += [v["line"] for v in verdicts]
    lines += ["```", "", "## Before and after", ""]
    lines += ["| figure | before (legacy) | after (new) | after/before |", "|---|---:|---:|---:|"]
    notes = []
    for row in report["comparison"]:
        shown = Row(row["figure"], row["before"], row["after"], row["unit"], row["note"])
        mark = ""
        if row["note"]:
            notes.append(row["note"])
            mark = f" [{len(notes)}]"
        lines.append(
            f"| {_cell(row['figure'])}{mark} | {shown.shown(row['before'])} | {shown.shown(row['after'])} "
            f"| {_ratio(row['ratio'])} |"
        )
    if notes:
        lines.append("")
        lines += [f"[{index}] {note}" for index, note in enumerate(notes, start=1)]
    lines += ["", "## Plots", ""]
    lines += [f"![{name.removesuffix('.png').replace('_', ' ')}]({name})" for name in report["plots"]]
    lines.append("")
    return "\n".join(lines)


# --- plots ----------------------------------------------------------------------------------------


def _pyplot() -> Any:
    import matplotlib  # noqa: PLC0415 - heavy, and only the report needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    return plt


def plot_scrape_durations(path: Path, rows: list[dict[str, Any]], comparisons: list[Comparison], limit: float) -> None:
    plt = _pyplot()
    p99 = {row["figure"]: row for row in rows if row["figure"].startswith("Scrape duration p99, ")}
    labels, before, after = [], [], []
    for item in comparisons:
        row = p99.get(f"Scrape duration p99, {item.label} ({item.legacy} -> {item.new})", {})
        labels.append(f"{item.label}\n{item.legacy} -> {item.new}")
        before.append(row.get("before"))
        after.append(row.get("after"))
    figure, axes = plt.subplots(figsize=(max(6.0, 2.4 * len(labels) + 2), 5.2), dpi=110)
    width = 0.38
    for offset, values, name, color in (
        (-width / 2, before, "before: legacy HA Prometheus", "#c0504d"),
        (width / 2, after, "after: Alloy / OTel Collector", "#4f81bd"),
    ):
        xs = [index + offset for index, value in enumerate(values) if value is not None]
        ys = [value for value in values if value is not None]
        bars = axes.bar(xs, ys, width, label=name, color=color)
        axes.bar_label(bars, labels=[human_seconds(value) for value in ys], padding=2, fontsize=8)
    axes.axhline(limit, color="#555555", linestyle="--", linewidth=1, label=f"gate: p99 < {human_seconds(limit)}")
    axes.set_yscale("log")
    # Room above the tallest bar for its label; the legend goes under the axes, clear of the bars.
    tallest = max([value for value in before + after if value is not None] + [limit])
    axes.set_ylim(top=tallest * 4)
    axes.set_ylabel("scrape duration p99, seconds (log scale)")
    axes.set_xticks(range(len(labels)), labels, fontsize=8)
    axes.set_title("Scrape duration p99 per source, before and after")
    axes.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3, frameon=False)
    axes.grid(axis="y", which="both", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def _times(values: list[list[float]]) -> list[datetime]:
    return [datetime.fromtimestamp(t, tz=UTC) for t, _ in values]


def _time_axis(axes: Any) -> None:
    import matplotlib.dates as mdates  # noqa: PLC0415

    axes.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=UTC))
    axes.set_xlabel("time (UTC)")
    axes.grid(alpha=0.3)


def _mark(axes: Any, timestamp: float | None, text: str) -> None:
    if timestamp is not None:
        axes.axvline(datetime.fromtimestamp(timestamp, tz=UTC), color="#888888", linestyle=":", linewidth=1, label=text)


def plot_push_latency(
    path: Path, timeseries: dict[str, Any], baseline_p99: float | None, limit: float, cutover: float | None
) -> None:
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(8, 4.2), dpi=110)
    values = _get(timeseries, "push_p99_seconds", "values") or []
    if values:
        axes.plot(_times(values), [v for _, v in values], color="#4f81bd", label="Mimir push p99")
    else:
        axes.text(0.5, 0.5, "no data", transform=axes.transAxes, ha="center")
    axes.axhline(limit, color="#c0504d", linestyle="--", linewidth=1, label=f"gate: < {human_seconds(limit)}")
    if baseline_p99 is not None:
        axes.axhline(baseline_p99, color="#555555", linestyle=":", label=f"baseline p99 {human_seconds(baseline_p99)}")
    _mark(axes, cutover, "cutover")
    axes.set_ylim(bottom=0)
    axes.set_ylabel("push latency p99, seconds")
    axes.set_title("Distributor push latency over the migration window")
    _time_axis(axes)
    axes.legend(fontsize=8, loc="upper left")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def plot_samples(path: Path, timeseries: dict[str, Any], cutover: float | None) -> None:
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(8, 4.2), dpi=110)
    drawn = False
    for name, label, color in (
        ("legacy_samples_per_second", "legacy pipeline (stored, after HA dedup)", "#c0504d"),
        ("new_samples_per_second", "new pipeline (Alloy + OTel)", "#4f81bd"),
        ("deduplicated_samples_per_second", "deduplicated by Mimir (HA replicas)", "#9bbb59"),
    ):
        values = _get(timeseries, name, "values") or []
        if values:
            axes.plot(_times(values), [v for _, v in values], label=label, color=color)
            drawn = True
    if not drawn:
        axes.text(0.5, 0.5, "no data", transform=axes.transAxes, ha="center")
    _mark(axes, cutover, "cutover")
    axes.set_ylim(bottom=0)
    axes.set_ylabel("samples per second")
    axes.set_title("Samples per second by pipeline")
    _time_axis(axes)
    axes.legend(fontsize=8, loc="upper left")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


# --- the whole report -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ReportInput:
    verdicts: list[dict[str, Any]]
    baseline: dict[str, Any]
    baseline_path: str
    baseline_digest: str
    current: dict[str, Any]
    timeseries: dict[str, Any]
    comparisons: list[Comparison]
    legacy_running: bool
    scrape_p99_max_seconds: float
    push_p99_max_seconds: float
    evaluated_at: float
    query_url: str
    environment: str = ""
    cluster_name: str = ""
    cutover: float | None = None


def build(data: ReportInput) -> dict[str, Any]:
    rows = comparison_rows(data.baseline, data.current, data.comparisons, data.legacy_running)
    return {
        "kind": KIND,
        "schema_version": SCHEMA_VERSION,
        "passed": all(verdict["status"] != "FAIL" for verdict in data.verdicts),
        "evaluated_at": data.evaluated_at,
        "evaluated": _utc(data.evaluated_at),
        "environment": data.environment,
        "cluster_name": data.cluster_name,
        "query_url": data.query_url,
        "baseline": {
            "path": data.baseline_path,
            "digest": data.baseline_digest,
            "captured_at": data.baseline.get("captured_at", "unknown"),
            "window": data.baseline.get("window", "unknown"),
        },
        "verdicts": data.verdicts,
        "comparison": [row.as_dict() for row in rows],
        "current": data.current,
        "timeseries": data.timeseries,
        "plots": list(PLOTS),
    }


def _finite(value: Any) -> Any:
    """NaN and infinities (JSON has none) as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def serialize(report: dict[str, Any]) -> str:
    return json.dumps(_finite(report), indent=2, sort_keys=True, allow_nan=False, default=str) + "\n"


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def check_no_secret(texts: list[str], secrets: list[str]) -> None:
    for secret in secrets:
        if secret and any(secret in text for text in texts):
            raise ValueError("the report would contain a credential; nothing was written")


def render(directory: Path, data: ReportInput, secrets: list[str] = (), write: bool = True) -> dict[str, Any]:
    """Write validation.json, validation.md and the plots (unless not `write`); return paths and the JSON's digest."""
    report = build(data)
    text = serialize(report)
    summary = markdown(report)
    check_no_secret([text, summary], list(secrets))
    outcome = {
        "report_path": str(directory / "validation.md"),
        "json_path": str(directory / "validation.json"),
        "plots": [str(directory / name) for name in PLOTS],
        "digest": digest(text),
        "passed": report["passed"],
        "comparison": report["comparison"],
        "markdown": summary,
    }
    if not write:
        return outcome
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "validation.json").write_text(text)
    (directory / "validation.md").write_text(summary)
    plot_scrape_durations(
        directory / "scrape_duration.png", report["comparison"], data.comparisons, data.scrape_p99_max_seconds
    )
    plot_push_latency(
        directory / "push_latency.png",
        data.timeseries,
        _get(data.baseline, "mimir", "push_p99_seconds"),
        data.push_p99_max_seconds,
        data.cutover,
    )
    plot_samples(directory / "samples_by_pipeline.png", data.timeseries, data.cutover)
    return outcome
