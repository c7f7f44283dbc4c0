"""Prometheus remote-write 1.0 bodies: prompb.WriteRequest in protobuf, snappy block compressed.

Field numbers follow prometheus/prometheus prompb/remote.proto and prompb/types.proto:
WriteRequest{timeseries=1, metadata=3}, TimeSeries{labels=1, samples=2, exemplars=3, histograms=4},
Label{name=1, value=2}, Sample{value=1 double, timestamp=2 int64},
MetricMetadata{type=1, metric_family_name=2, help=4, unit=5}.
Exemplars and native histograms are skipped when decoding and never encoded.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

import cramjam

_VARINT = 0
_FIXED64 = 1
_LENGTH_DELIMITED = 2
_FIXED32 = 5

Labels = tuple[tuple[str, str], ...]


class DecodeError(ValueError):
    """The body is not a valid snappy-compressed WriteRequest."""


@dataclass(frozen=True)
class Sample:
    value: float
    timestamp_ms: int


@dataclass
class TimeSeries:
    """Labels keep their wire order and duplicates, so a receiver can reject bad series."""

    labels: Labels
    samples: list[Sample] = field(default_factory=list)

    def label(self, name: str) -> str | None:
        return next((value for key, value in self.labels if key == name), None)


@dataclass(frozen=True)
class MetricMetadata:
    type: int
    metric_family_name: str
    help: str = ""
    unit: str = ""


@dataclass
class WriteRequest:
    timeseries: list[TimeSeries] = field(default_factory=list)
    metadata: list[MetricMetadata] = field(default_factory=list)

    def sample_count(self) -> int:
        return sum(len(series.samples) for series in self.timeseries)


# --- encoding ---------------------------------------------------------------------------------


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int64 values are sent as ten-byte two's complement
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _key(number: int, wire_type: int) -> bytes:
    return _varint(number << 3 | wire_type)


def _bytes_field(number: int, payload: bytes) -> bytes:
    return _key(number, _LENGTH_DELIMITED) + _varint(len(payload)) + payload


def _string_field(number: int, text: str) -> bytes:
    return _bytes_field(number, text.encode()) if text else b""


def _encode_sample(sample: Sample) -> bytes:
    return (
        _key(1, _FIXED64)
        + struct.pack("<d", sample.value)
        + (_key(2, _VARINT) + _varint(sample.timestamp_ms) if sample.timestamp_ms else b"")
    )


def _encode_series(series: TimeSeries) -> bytes:
    labels = b"".join(
        _bytes_field(1, _string_field(1, name) + _string_field(2, value)) for name, value in series.labels
    )
    samples = b"".join(_bytes_field(2, _encode_sample(sample)) for sample in series.samples)
    return labels + samples


def _encode_metadata(metadata: MetricMetadata) -> bytes:
    kind = _key(1, _VARINT) + _varint(metadata.type) if metadata.type else b""
    return (
        kind
        + _string_field(2, metadata.metric_family_name)
        + _string_field(4, metadata.help)
        + _string_field(5, metadata.unit)
    )


def encode_write_request(request: WriteRequest) -> bytes:
    """The protobuf bytes of a WriteRequest (uncompressed)."""
    series = b"".join(_bytes_field(1, _encode_series(item)) for item in request.timeseries)
    metadata = b"".join(_bytes_field(3, _encode_metadata(item)) for item in request.metadata)
    return series + metadata


def encode_body(request: WriteRequest) -> bytes:
    """An HTTP body as Prometheus sends it: protobuf, snappy block format (not framed)."""
    return bytes(cramjam.snappy.compress_raw(encode_write_request(request)))


# --- decoding ---------------------------------------------------------------------------------


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise DecodeError("truncated or overlong varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(data: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """Yield (field number, wire type, value) where value is an int or the raw bytes."""
    pos = 0
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        number, wire_type = key >> 3, key & 7
        if wire_type == _VARINT:
            value, pos = _read_varint(data, pos)
        elif wire_type in (_FIXED64, _FIXED32):
            width = 8 if wire_type == _FIXED64 else 4
            value, pos = data[pos : pos + width], pos + width
        elif wire_type == _LENGTH_DELIMITED:
            length, pos = _read_varint(data, pos)
            value, pos = data[pos : pos + length], pos + length
        else:
            raise DecodeError(f"unsupported wire type {wire_type}")
        if pos > len(data):
            raise DecodeError("field runs past the end of the message")
        yield number, wire_type, value


def _int64(raw: int) -> int:
    return raw - (1 << 64) if raw >= 1 << 63 else raw


def _text(value: int | bytes) -> str:
    if not isinstance(value, bytes):
        raise DecodeError("expected a length-delimited field")
    try:
        return value.decode()
    except UnicodeDecodeError as error:
        raise DecodeError("label is not valid UTF-8") from error


def _decode_label(data: bytes) -> tuple[str, str]:
    parts = {1: "", 2: ""}
    for number, _, value in _fields(data):
        if number in parts:
            parts[number] = _text(value)
    return parts[1], parts[2]


def _decode_sample(data: bytes) -> Sample:
    value, timestamp = 0.0, 0
    for number, wire_type, raw in _fields(data):
        if number == 1 and wire_type == _FIXED64:
            (value,) = struct.unpack("<d", raw)
        elif number == 2 and wire_type == _VARINT:
            timestamp = _int64(raw)
    return Sample(value, timestamp)


def _decode_series(data: bytes) -> TimeSeries:
    labels: list[tuple[str, str]] = []
    samples: list[Sample] = []
    for number, wire_type, value in _fields(data):
        if wire_type != _LENGTH_DELIMITED:
            continue
        if number == 1:
            labels.append(_decode_label(value))
        elif number == 2:
            samples.append(_decode_sample(value))
    return TimeSeries(tuple(labels), samples)


def _decode_metadata(data: bytes) -> MetricMetadata:
    kind, texts = 0, {2: "", 4: "", 5: ""}
    for number, wire_type, value in _fields(data):
        if number == 1 and wire_type == _VARINT:
            kind = value
        elif number in texts:
            texts[number] = _text(value)
    return MetricMetadata(kind, texts[2], texts[4], texts[5])


def decode_write_request(data: bytes) -> WriteRequest:
    """Parse protobuf bytes into a WriteRequest."""
    request = WriteRequest()
    for number, wire_type, value in _fields(data):
        if wire_type != _LENGTH_DELIMITED:
            continue
        if number == 1:
            request.timeseries.append(_decode_series(value))
        elif number == 3:
            request.metadata.append(_decode_metadata(value))
    return request


def decode_body(body: bytes) -> WriteRequest:
    """Decompress (snappy block) and parse a remote-write HTTP body."""
    try:
        raw = bytes(cramjam.snappy.decompress_raw(body))
    except cramjam.DecompressionError as error:
        raise DecodeError(f"snappy: {error}") from error
    return decode_write_request(raw)
