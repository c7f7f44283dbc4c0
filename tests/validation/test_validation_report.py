"""The report: rendered from real verdicts and figures, with a measured before/after table and three plots."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from ansible.module_utils.migration_gates import evaluate, measure_current, timeseries
from ansible.module_utils.migration_report import PLOTS, Comparison, ReportInput, render

from lab.metrics.prometheus import PrometheusProcess
from tests.conftest import failures, run_playbook
from tests.validation.validation_data import INTERVAL, Scenario
from tests.validation.validation_setup import NEW_JOBS, context

COMPARISONS = [
    Comparison("cAdvisor", "cadvisor", "kubelet:/metrics/cadvisor"),
    Comparison("kube-state-metrics", "kube-state-metrics", "kube-state-metrics"),
]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SECRET = "pa55-never-in-a-report"


@pytest.fixture(scope="module")
def report_input(storage: PrometheusProcess, scenarios: dict[str, Scenario], baseline: dict[str, Any]) -> ReportInput:
    good = scenarios["good"]
    ctx = context(storage.url, good, baseline)
    return ReportInput(
        verdicts=[verdict.as_dict() for verdict in evaluate(ctx)],
        baseline=baseline,
        baseline_path="/artifacts/lab/baseline/baseline.json",
        baseline_digest="0" * 64,
        current=measure_current(ctx),
        timeseries=timeseries(ctx),
        comparisons=COMPARISONS,
        legacy_running=True,
        scrape_p99_max_seconds=2.0,
        push_p99_max_seconds=1.0,
        evaluated_at=good.t0,
        query_url=storage.url,
        environment="test",
        cluster_name="lab-talos",
        cutover=good.cutover,
    )


def test_report_files_render_with_the_measured_table(
    report_input: ReportInput, scenarios: dict[str, Scenario], tmp_path: Path
) -> None:
    good = scenarios["good"]
    outcome = render(tmp_path, report_input)
    text = (tmp_path / "validation.json").read_text()
    assert outcome["digest"] == hashlib.sha256(text.encode()).hexdigest()
    report = json.loads(text)
    assert report["passed"] is True
    assert [verdict["status"] for verdict in report["verdicts"]].count("PASS") == 11
    rows = {row["figure"]: row for row in report["comparison"]}
    cadvisor = rows["Scrape duration p99, cAdvisor (cadvisor -> kubelet:/metrics/cadvisor)"]
    # The legacy cAdvisor took 3 s per scrape, the kubelet's endpoint through the new pipeline 100 ms.
    assert cadvisor["before"] == pytest.approx(3.0)
    assert cadvisor["after"] == pytest.approx(0.1)
    assert cadvisor["ratio"] == pytest.approx(0.1 / 3.0)
    assert rows["Scrape interval, cAdvisor (cadvisor -> kubelet:/metrics/cadvisor)"]["after"] == pytest.approx(15.0)
    assert rows["Distributor write p99"]["before"] == pytest.approx(rows["Distributor write p99"]["after"], rel=1e-3)
    cpu = rows["CPU (prometheus, cadvisor -> alloy, otel-collector)"]
    assert cpu["before"] == pytest.approx(0.3, rel=0.02)
    assert cpu["after"] == pytest.approx(0.3, rel=0.02)
    kept = [
        max((t, value) for t, value in series.points.items() if t <= good.t0)[1]
        for series in good.series.values()
        if series.labels["__name__"] == "scrape_samples_post_metric_relabeling"
        and not series.labels.get("prometheus")
        and series.labels.get("job") in NEW_JOBS
    ]
    samples = rows["Samples/s sent to Mimir by the pipeline"]
    assert samples["after"] == pytest.approx(sum(kept) / INTERVAL, rel=0.05)
    # The scenario's Mimir has no request-size histogram: no figure, never a made-up one.
    assert rows["Distributor bandwidth"]["before"] is None
    assert rows["Distributor bandwidth"]["ratio"] is None

    markdown = (tmp_path / "validation.md").read_text()
    assert "**PASSED**: 11 passed, 0 failed, 1 skipped" in markdown
    assert "| Scrape duration p99, cAdvisor (cadvisor -> kubelet:/metrics/cadvisor) | 3.00 s | 100 ms | x0.0333 |" in (
        markdown
    )
    assert "[SKIP] ha_dedup: 3 legacy Prometheus replicas still running" in markdown
    for name in PLOTS:
        assert f"]({name})" in markdown
        data = (tmp_path / name).read_bytes()
        assert data.startswith(PNG_SIGNATURE)
        assert len(data) > 10_000, f"{name} looks empty"


def test_report_never_carries_a_credential(report_input: ReportInput, tmp_path: Path) -> None:
    leaky = ReportInput(**{**report_input.__dict__, "query_url": f"https://reader:{SECRET}@mimir.example/prometheus"})
    with pytest.raises(ValueError, match="would contain a credential"):
        render(tmp_path / "leaky", leaky, secrets=[SECRET])
    assert not (tmp_path / "leaky").exists()


def test_module_writes_nothing_in_check_mode_and_the_report_otherwise(
    report_input: ReportInput, tmp_path: Path
) -> None:
    args = {
        "dest": str(tmp_path / "report"),
        "verdicts": report_input.verdicts,
        "current": report_input.current,
        "timeseries": report_input.timeseries,
        "evaluated_at": report_input.evaluated_at,
        "query_url": report_input.query_url,
        "baseline": report_input.baseline,
        "baseline_path": report_input.baseline_path,
        "baseline_digest": report_input.baseline_digest,
        "comparisons": [item.__dict__ for item in COMPARISONS],
        "legacy_running": True,
        "forbidden": [SECRET],
    }
    env = {"TMPDIR": str(tmp_path)}
    checked = run_playbook([{"name": "report", "migration_report": args}], env, check=True)
    assert checked["__rc__"] == 0, failures(checked)
    assert checked["report"]["changed"] is True
    assert not (tmp_path / "report").exists()
    written = run_playbook([{"name": "report", "migration_report": args}], env)
    assert written["__rc__"] == 0, failures(written)
    result = written["report"]
    assert result["digest"] == checked["report"]["digest"]
    assert hashlib.sha256(Path(result["json_path"]).read_bytes()).hexdigest() == result["digest"]
    assert sorted(Path(path).name for path in result["plots"]) == sorted(PLOTS)
    assert SECRET not in json.dumps(written)
