"""Remote-write codec: round trips, error handling, and a body sent by a real Prometheus agent."""

from __future__ import annotations

import math
from pathlib import Path

import cramjam
import pytest
from metrics_support import CapturingStorage, free_port, wait_for

from lab.metrics.prometheus import start_agent
from lab.metrics.remote_write import (
    DecodeError,
    MetricMetadata,
    Sample,
    TimeSeries,
    WriteRequest,
    decode_body,
    decode_write_request,
    encode_body,
    encode_write_request,
)


def test_round_trip_keeps_labels_samples_and_metadata() -> None:
    request = WriteRequest(
        timeseries=[
            TimeSeries(
                (("__name__", "container_cpu_usage_seconds_total"), ("pod", "web-0"), ("container", "äpp")),
                [Sample(1.5, 1_700_000_000_000), Sample(-2.25e-9, 1_700_000_015_000)],
            ),
            TimeSeries((("__name__", "up"), ("job", "kubelet")), [Sample(0.0, 0)]),
        ],
        metadata=[MetricMetadata(1, "container_cpu_usage_seconds_total", "Cumulative cpu time.", "seconds")],
    )
    assert decode_body(encode_body(request)) == request


def test_special_values_and_negative_timestamps_survive() -> None:
    request = WriteRequest([TimeSeries((("__name__", "x"),), [Sample(math.inf, -5), Sample(-math.inf, 2**62)])])
    decoded = decode_write_request(encode_write_request(request))
    assert decoded.timeseries[0].samples == [Sample(math.inf, -5), Sample(-math.inf, 2**62)]
    stale = decode_write_request(encode_write_request(WriteRequest([TimeSeries((), [Sample(math.nan, 1)])])))
    assert math.isnan(stale.timeseries[0].samples[0].value)


def test_duplicate_labels_are_kept_in_wire_order() -> None:
    labels = (("__name__", "m"), ("a", "1"), ("a", "2"))
    decoded = decode_body(encode_body(WriteRequest([TimeSeries(labels, [Sample(1, 1)])])))
    assert decoded.timeseries[0].labels == labels


def test_body_is_snappy_block_format_not_framed() -> None:
    body = encode_body(WriteRequest([TimeSeries((("__name__", "m"),), [Sample(1, 1)])]))
    assert bytes(cramjam.snappy.decompress_raw(body)) == encode_write_request(decode_body(body))
    with pytest.raises(cramjam.DecompressionError):
        cramjam.snappy.decompress(body)


@pytest.mark.parametrize(
    "body",
    [
        b"not snappy at all",
        bytes(cramjam.snappy.compress_raw(b"\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01")),
    ],
)
def test_garbage_is_a_decode_error(body: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_body(body)


def test_decodes_what_a_real_prometheus_agent_sends(tmp_path: Path, capturing_storage: CapturingStorage) -> None:
    port = free_port()
    config = {
        "global": {
            "scrape_interval": "500ms",
            "external_labels": {"cluster": "lab", "__replica__": "replica-0"},
        },
        "scrape_configs": [{"job_name": "self", "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}],
        "remote_write": [
            {
                "url": f"{capturing_storage.endpoint.url}/api/v1/write",
                "queue_config": {"batch_send_deadline": "500ms"},
            }
        ],
    }
    agent = start_agent("codec-agent", tmp_path / "agent", port, config, ready_timeout=20)
    try:
        ups = wait_for(lambda: [s for s in capturing_storage.series() if s.get("__name__") == "up"], timeout=30)
    finally:
        agent.stop()
    assert ups[0] == {
        "__name__": "up",
        "__replica__": "replica-0",
        "cluster": "lab",
        "instance": f"127.0.0.1:{port}",
        "job": "self",
    }
    samples = [s for w in capturing_storage.writes for t in w.timeseries if dict(t.labels) == ups[0] for s in t.samples]
    assert samples[0].value == 1.0
    assert samples[0].timestamp_ms > 1_700_000_000_000
