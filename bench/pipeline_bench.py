"""The legacy and the new metrics pipeline side by side, as Mimir sees them right now.

    .venv/bin/python bench/pipeline_bench.py [--url http://127.0.0.1:8080/prometheus] [--tenant lab]
        [--window 5m] [--mimir-selector 'job="mimir"']

Reads a running lab's Mimir front (or any Mimir) with the same figure definitions the baseline and
the validation gates use (module_utils/migration_figures.py) and prints, per pipeline, samples/s
stored, scrape p99 per source and targets; then Mimir's received bytes/s, samples/s, deduplicated
samples/s and push p99. Read-only.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import ansible.module_utils  # noqa: E402

# Ansible serves ./module_utils as ansible.module_utils.*; the bench imports them the same way.
ansible.module_utils.__path__.append(str(ROOT / "module_utils"))

from ansible.module_utils.migration_figures import (  # noqa: E402
    Measurer,
    MimirQuery,
    ScrapeQuery,
    human_bytes,
    human_number,
    human_seconds,
    measure_metric_names,
    measure_mimir,
    measure_targets,
    selector,
    summarize_sources,
)
from ansible.module_utils.promql import ClientSettings, PromQLClient, parse_duration  # noqa: E402

PIPELINES = {
    "legacy": (
        'prometheus="monitoring/kube-prometheus-stack-prometheus"',
        ("kubelet", "cadvisor", "kube-state-metrics", "node-exporter"),
    ),
    "new": ('prometheus=""', ("kubelet", "containerd", "kube-state-metrics", "node-exporter")),
}


def samples_per_second(measurer: Measurer, pipeline: str, jobs: tuple[str, ...], window: str) -> float | None:
    seconds = parse_duration(window)
    scraped = selector("scrape_samples_post_metric_relabeling", pipeline, f'job=~"{"|".join(jobs)}"')
    return measurer.single(f"{pipeline}.samples", f"sum(sum_over_time({scraped}[{window}])) / {seconds:g}")


def measure(url: str, tenant: str, window: str, mimir_selector: str = 'job="mimir"') -> dict[str, Any]:
    """Every figure this bench prints, read from Mimir now: per pipeline, samples/s stored and its sources
    (targets, scrape p50/p99, interval); Mimir-wide, received bytes/s, samples/s in, kept and deduplicated,
    push p99."""
    measurer = Measurer(PromQLClient(ClientSettings(url=url, tenant=tenant, timeout=30)), time.time())
    figures: dict[str, Any] = {"window": window, "pipelines": {}}
    for name, (pipeline, jobs) in PIPELINES.items():
        query = ScrapeQuery(pipeline, jobs, window)
        figures["pipelines"][name] = {
            "selector": pipeline,
            "samples_per_second": samples_per_second(measurer, pipeline, jobs, window),
            "sources": summarize_sources(
                measure_targets(measurer, query, name), measure_metric_names(measurer, query, name)
            ),
        }
    figures["mimir"] = measure_mimir(measurer, MimirQuery(mimir_selector, tenant, window))
    return figures


def report(figures: dict[str, Any]) -> list[str]:
    """The figures as the lines `make bench-pipeline` prints."""
    lines = []
    for name, pipeline in figures["pipelines"].items():
        lines.append(
            f"{name} pipeline ({pipeline['selector']}): {human_number(pipeline['samples_per_second'], 'samples/s')} stored"
        )
        if not pipeline["sources"]:
            lines.append("  no series")
        for key, source in pipeline["sources"].items():
            lines.append(
                f"  {key:28} {source['targets']:3} targets  p99 {human_seconds(source['scrape_duration_p99_seconds']):>9}"
                f"  p50 {human_seconds(source['scrape_duration_p50_seconds']):>9}"
                f"  every {human_seconds(source['scrape_interval_seconds']):>8}"
            )
    mimir = figures["mimir"]
    lines.append(
        f"Mimir over {figures['window']}: {human_bytes(mimir['received_bytes_per_second'], per_second=True)} received, "
        f"{human_number(mimir['incoming_samples_per_second'], 'samples/s')} in, "
        f"{human_number(mimir['received_samples_per_second'], 'samples/s')} kept, "
        f"{human_number(mimir['deduplicated_samples_per_second'], 'samples/s')} deduplicated, "
        f"push p99 {human_seconds(mimir['push_p99_seconds'])}"
    )
    return lines


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080/prometheus")
    parser.add_argument("--tenant", default="lab")
    parser.add_argument("--window", default="5m")
    parser.add_argument("--mimir-selector", default='job="mimir"')
    args = parser.parse_args(argv)
    print("\n".join(report(measure(args.url, args.tenant, args.window, args.mimir_selector))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
