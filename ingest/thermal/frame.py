"""Radiometric frames: the JSON and the compact binary encodings, decoded to a float32 matrix in °C.

Binary encoding (all little-endian), documented in docs/devices/thermal.md::

    offset size type     field
    0      4    bytes    magic b"SETF" (SharpEye Thermal Frame)
    4      1    uint8    version = 1
    5      1    uint8    flags = 0 (reserved)
    6      2    uint16   width  (pixels)
    8      2    uint16   height (pixels)
    10     4    uint32   seq (the camera's frame counter)
    14     8    int64    ts, epoch milliseconds UTC (0: unknown, the hub uses the receive time)
    22     4    float32  scale  (°C per count, > 0)
    26     4    float32  offset (°C at count 0)
    30     2*w*h uint16  pixel counts, row-major from the top-left; temperature = count * scale + offset

JSON encoding: ``{"seq": 17, "ts": "2026-01-05T02:00:00Z", "width": 32, "height": 24,
"temps": [[row 0...], ..., [row 23...]]}`` with temperatures in °C.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import datetime

import msgspec
import numpy as np
import numpy.typing as npt
from sharpeye.ingest.driver import decode_json, finite, sequence, timestamp
from sharpeye.ingest.reading import DecodeError

MAGIC = b"SETF"
VERSION = 1
HEADER = struct.Struct("<4sBBHHIqff")
MAX_WIDTH = 640
MAX_HEIGHT = 512
MAX_BINARY = HEADER.size + 2 * MAX_WIDTH * MAX_HEIGHT
MAX_JSON = 4 * 1024 * 1024
MIN_C = -273.15
MAX_C = 3000.0

Temps = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded frame: ``temps[y, x]`` in °C."""

    temps: Temps
    seq: int | None
    ts: datetime

    @property
    def width(self) -> int:
        return int(self.temps.shape[1])

    @property
    def height(self) -> int:
        return int(self.temps.shape[0])


class JsonFrame(msgspec.Struct, forbid_unknown_fields=True):
    width: int
    height: int
    temps: list[list[float]]
    seq: int | None = None
    ts: datetime | int | None = None


_json_frame = msgspec.json.Decoder(JsonFrame)


def _check_shape(width: int, height: int, expect: tuple[int, int] | None) -> None:
    if width < 1 or height < 1:
        raise DecodeError("out_of_range", f"frame of {width}x{height} pixels")
    if width > MAX_WIDTH or height > MAX_HEIGHT:
        raise DecodeError("too_many_values", f"frame of {width}x{height} > {MAX_WIDTH}x{MAX_HEIGHT}")
    if expect is not None and (width, height) != expect:
        raise DecodeError("wrong_resolution", f"frame is {width}x{height}, the sensor is {expect[0]}x{expect[1]}")


def _check_range(temps: Temps) -> None:
    low, high = float(temps.min()), float(temps.max())
    if not (low >= MIN_C and high <= MAX_C):
        raise DecodeError("out_of_range", f"temperatures span [{low:.2f}, {high:.2f}] °C, outside [{MIN_C}, {MAX_C}]")


def encode_binary(temps: Temps, seq: int, ts_ms: int, scale: float = 0.02, offset: float = -100.0) -> bytes:
    """Encode a frame in the binary format (used by simulators and tests; devices do the same).

    The defaults cover -100 °C to 1210 °C in steps of 0.02 °C; temperatures outside are clipped.
    """
    counts = np.clip(np.rint((temps - offset) / scale), 0, 65535).astype("<u2")
    height, width = temps.shape
    header: bytes = HEADER.pack(MAGIC, VERSION, 0, width, height, seq, ts_ms, scale, offset)
    return header + bytes(counts.tobytes())


def encode_json(temps: Temps, seq: int, ts_ms: int) -> bytes:
    """Encode a frame as JSON with 0.01 °C precision."""
    rows = np.round(temps.astype(np.float64), 2).tolist()
    height, width = temps.shape
    return msgspec.json.encode({"seq": seq, "ts": ts_ms, "width": width, "height": height, "temps": rows})


def decode_frame(data: bytes, received: datetime, expect: tuple[int, int] | None = None) -> Frame:
    """Decode either encoding (binary frames start with ``SETF``); ``expect`` = the sensor's (width, height)."""
    if data[:4] == MAGIC:
        return _decode_binary(data, received, expect)
    return _decode_json(data, received, expect)


def _decode_binary(data: bytes, received: datetime, expect: tuple[int, int] | None) -> Frame:
    if len(data) > MAX_BINARY:
        raise DecodeError("oversize", f"{len(data)} bytes > {MAX_BINARY}")
    if len(data) < HEADER.size:
        raise DecodeError("bad_header", f"{len(data)} bytes is shorter than the {HEADER.size}-byte header")
    _, version, _flags, width, height, seq, ts_ms, scale, offset = HEADER.unpack_from(data)
    if version != VERSION:
        raise DecodeError("bad_header", f"version {version}, expected {VERSION}")
    _check_shape(width, height, expect)
    if len(data) != HEADER.size + 2 * width * height:
        raise DecodeError(
            "shape_mismatch", f"{len(data) - HEADER.size} data bytes for {width}x{height} (need {2 * width * height})"
        )
    finite(scale, "scale", 1e-6, 100.0)
    finite(offset, "offset", -1000.0, 1000.0)
    counts = np.frombuffer(data, dtype="<u2", count=width * height, offset=HEADER.size).reshape(height, width)
    low, high = int(counts.min()) * scale + offset, int(counts.max()) * scale + offset  # scale > 0: monotonic
    if not (low >= MIN_C and high <= MAX_C):
        raise DecodeError("out_of_range", f"temperatures span [{low:.2f}, {high:.2f}] °C, outside [{MIN_C}, {MAX_C}]")
    temps: Temps = counts.astype(np.float32)
    temps *= np.float32(scale)
    temps += np.float32(offset)
    return Frame(temps=temps, seq=seq, ts=timestamp(ts_ms or None, received))


def _decode_json(data: bytes, received: datetime, expect: tuple[int, int] | None) -> Frame:
    msg = decode_json(_json_frame, data, MAX_JSON)
    _check_shape(msg.width, msg.height, expect)
    if len(msg.temps) > MAX_HEIGHT or any(len(row) > MAX_WIDTH for row in msg.temps):
        raise DecodeError("too_many_values", f"more than {MAX_WIDTH}x{MAX_HEIGHT} temperatures")
    if len(msg.temps) != msg.height or any(len(row) != msg.width for row in msg.temps):
        raise DecodeError("shape_mismatch", f"temps is not {msg.height} rows of {msg.width} values")
    with np.errstate(over="ignore"):
        temps: Temps = np.array(msg.temps, dtype=np.float32)
    if not np.isfinite(temps).all():
        raise DecodeError("non_finite", "a temperature is beyond float32 range")
    _check_range(temps)
    return Frame(temps=temps, seq=sequence(msg.seq), ts=timestamp(msg.ts, received))
