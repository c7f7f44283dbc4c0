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
from ansible.module_utils.promql import ClientSettings, PromQLClient  # noqa: E402

PIPELINES = {
    "legacy": (
        'prometheus="monitoring/kube-prometheus-stack-prometheus"',
        ("kubelet", "cadvisor", "kube-state-metrics", "node-exporter"),
    ),
    "new": ('prometheus=""', ("kubelet", "containerd", "kube-state-metrics", "node-exporter")),
}


def samples_per_second(measurer: Measurer, pipeline: str, jobs: tuple[str, ...], window: str) -> float | None:
    seconds = {"s": 1, "m": 60, "h": 3600}[window[-1]] * float(window[:-1])
    scraped = selector("scrape_samples_post_metric_relabeling", pipeline, f'job=~"{"|".join(jobs)}"')
    return measurer.single(f"{pipeline}.samples", f"sum(sum_over_time({scraped}[{window}])) / {seconds:g}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080/prometheus")
    parser.add_argument("--tenant", default="lab")
    parser.add_argument("--window", default="5m")
    parser.add_argument("--mimir-selector", default='job="mimir"')
    args = parser.parse_args(argv)
    measurer = Measurer(PromQLClient(ClientSettings(url=args.url, tenant=args.tenant, timeout=30)), time.time())
    for name, (pipeline, jobs) in PIPELINES.items():
        query = ScrapeQuery(pipeline, jobs, args.window)
        sources = summarize_sources(measure_targets(measurer, query, name), measure_metric_names(measurer, query, name))
        rate = samples_per_second(measurer, pipeline, jobs, args.window)
        print(f"{name} pipeline ({pipeline}): {human_number(rate, 'samples/s')} stored")
        if not sources:
            print("  no series")
        for key, source in sources.items():
            print(
                f"  {key:28} {source['targets']:3} targets  p99 {human_seconds(source['scrape_duration_p99_seconds']):>9}"
                f"  p50 {human_seconds(source['scrape_duration_p50_seconds']):>9}"
                f"  every {human_seconds(source['scrape_interval_seconds']):>8}"
            )
    mimir = measure_mimir(measurer, MimirQuery(args.mimir_selector, args.tenant, args.window))
    print(
        f"Mimir over {args.window}: {human_bytes(mimir['received_bytes_per_second'], per_second=True)} received, "
        f"{human_number(mimir['incoming_samples_per_second'], 'samples/s')} in, "
        f"{human_number(mimir['received_samples_per_second'], 'samples/s')} kept, "
        f"{human_number(mimir['deduplicated_samples_per_second'], 'samples/s')} deduplicated, "
        f"push p99 {human_seconds(mimir['push_p99_seconds'])}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
