"""A ``LiveSource`` over a camera service's packet subscription, so a camera the hub already reads for analytics
is not opened a second time for live view.

The subscription is duck-typed (the camera service lives in ``ingest/camera``): ``info`` with ``codec``,
``time_base`` (num, den) and ``extradata``; ``async get()`` returning packets with ``data``, ``pts`` and ``key``,
raising ``EOFError`` when closed; ``close()``. H.264 leaves as it came, converted to Annex B when the camera's
container stores length-prefixed NAL units (avcC), with the parameter sets put before each key frame when the
stream carries them only out of band.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

import av
from sharpeye.api.live.encoder import PTS_TIME_BASE

log = logging.getLogger(__name__)

START = b"\x00\x00\x00\x01"
NAL_SPS = 7


class PacketSubscriptionLike(Protocol):
    info: Any

    async def get(self) -> Any: ...

    def close(self) -> None: ...


def is_annexb(data: bytes) -> bool:
    return data.startswith((b"\x00\x00\x01", START))


def parameter_sets(extradata: bytes | None) -> tuple[bytes, int]:
    """Annex B SPS/PPS from a stream's extradata (Annex B or avcC), and the avcC NAL length size (4 if Annex B)."""
    if not extradata:
        return b"", 4
    if is_annexb(extradata):
        return extradata, 4
    if len(extradata) < 7 or extradata[0] != 1:
        raise ValueError("extradata is neither Annex B nor avcC")
    length_size = (extradata[4] & 0x03) + 1
    out = bytearray()
    pos = 5
    for count_mask in (0x1F, 0xFF):  # SPS count (5 bits), then PPS count (8 bits)
        count = extradata[pos] & count_mask
        pos += 1
        for _ in range(count):
            size = int.from_bytes(extradata[pos : pos + 2], "big")
            out += START + extradata[pos + 2 : pos + 2 + size]
            pos += 2 + size
    return bytes(out), length_size


def avcc_to_annexb(data: bytes, length_size: int) -> bytes:
    """Length-prefixed NAL units to start-code-prefixed ones; raises ``ValueError`` on a truncated packet."""
    out = bytearray()
    pos = 0
    while pos < len(data):
        size = int.from_bytes(data[pos : pos + length_size], "big")
        pos += length_size
        if size == 0 or pos + size > len(data):
            raise ValueError("truncated avcC packet")
        out += START + data[pos : pos + size]
        pos += size
    return bytes(out)


def has_sps(annexb: bytes) -> bool:
    index = annexb.find(b"\x00\x00\x01")
    while index != -1:
        if index + 3 < len(annexb) and annexb[index + 3] & 0x1F == NAL_SPS:
            return True
        index = annexb.find(b"\x00\x00\x01", index + 3)
    return False


class SubscriptionSource:
    """Passthrough of one subscription; a new one is opened by ``open_subscription`` each time the feed starts."""

    key_frame_on_request = False

    def __init__(self, name: str, open_subscription: Callable[[], PacketSubscriptionLike]) -> None:
        self._name = name
        self._open = open_subscription
        self.rejected = 0

    @property
    def name(self) -> str:
        return self._name

    def request_key_frame(self) -> None:
        """Passthrough: viewers wait for the camera's next key frame."""

    async def packets(self) -> AsyncIterator[av.Packet[Any]]:
        sub = self._open()
        try:
            info = sub.info
            codec = str(getattr(info, "codec", "")).lower()
            if codec not in ("h264", "avc1"):
                raise ValueError(f"{self._name} sends {codec or 'an unknown codec'}, not H.264")
            num, den = getattr(info, "time_base", (1, 90000))
            headers, length_size = parameter_sets(getattr(info, "extradata", None))
            while True:
                try:
                    packet = await sub.get()
                except EOFError:
                    return
                data = bytes(packet.data)
                try:
                    annexb = data if is_annexb(data) else avcc_to_annexb(data, length_size)
                except ValueError as exc:
                    self.rejected += 1
                    log.warning("live source %s: packet dropped (%s)", self._name, exc)
                    continue
                if packet.key and headers and not has_sps(annexb):
                    annexb = headers + annexb
                out = av.Packet(annexb)
                out.pts = out.dts = round((packet.pts or 0) * num * 90000 / den)
                out.time_base = PTS_TIME_BASE
                out.is_keyframe = bool(packet.key)
                yield out
        finally:
            sub.close()
