"""Passthrough from a camera service's packet subscription: real H.264 from an MP4 (avcC, parameter sets out of
band) arrives as Annex B with SPS/PPS before key frames, decodable from the first packet."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import pytest
from sharpeye.api.live.camera import device_resolver, service_resolver
from sharpeye.api.live.setting import LiveSettings
from sharpeye.api.live.subscription import SubscriptionSource, avcc_to_annexb, has_sps, parameter_sets

from tests.api.live.test_container import write_clip


@dataclass(frozen=True)
class Info:
    codec: str
    time_base: tuple[int, int]
    extradata: bytes | None


@dataclass(frozen=True)
class Packet:
    data: bytes
    pts: int | None
    key: bool


class FileSubscription:
    """Stands in for ``ingest.camera``'s PacketSubscription: the packets of a real file, as demuxed."""

    def __init__(self, path: Path) -> None:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            tb = stream.time_base
            assert tb is not None
            self.info = Info("h264", (tb.numerator, tb.denominator), bytes(stream.codec_context.extradata or b""))
            self._packets = [Packet(bytes(p), p.pts, p.is_keyframe) for p in container.demux(stream) if p.size]
        self.closed = False

    async def get(self) -> Packet:
        if self.closed or not self._packets:
            raise EOFError
        return self._packets.pop(0)

    def close(self) -> None:
        self.closed = True


async def test_avcc_subscription_passes_through_as_annex_b(tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    write_clip(clip, "libx264", frames=20)
    sub = FileSubscription(clip)
    assert sub.info.extradata and sub.info.extradata[0] == 1, "MP4 keeps avcC extradata"
    source = SubscriptionSource("cam", lambda: sub)
    packets = [p async for p in source.packets()]
    assert sub.closed
    assert len(packets) == 20 and source.rejected == 0
    assert packets[0].is_keyframe and has_sps(bytes(packets[0]))
    assert all(bytes(p).startswith(b"\x00\x00\x00\x01") for p in packets)
    assert [p.pts for p in packets] == sorted(p.pts for p in packets)
    decoder = av.CodecContext.create("h264", "r")
    assert len([f for p in packets for f in decoder.decode(p)] + list(decoder.decode(None))) == 20


def test_avcc_helpers_reject_garbage() -> None:
    with pytest.raises(ValueError):
        parameter_sets(b"\x02garbage")
    with pytest.raises(ValueError):
        avcc_to_annexb(b"\x00\x00\x00\x09abc", 4)
    assert parameter_sets(b"\x00\x00\x00\x01\x67") == (b"\x00\x00\x00\x01\x67", 4)


def test_service_resolver_prefers_the_camera_service() -> None:
    settings = LiveSettings()
    devices = {"cam-1": type("Cam", (), {"kind": "camera", "url": "synthetic:x", "enabled": True})()}
    running: dict[str, FileSubscription] = {}

    def subscribe(camera_id: str) -> FileSubscription:
        return running[camera_id]

    resolve = service_resolver(subscribe, device_resolver(devices.get, settings))
    assert resolve("door") is None
    factory = resolve("cam-1")
    assert factory is not None
    assert factory().name == "synthetic:x"  # not running in the service: opened here
    running["cam-1"] = FileSubscription.__new__(FileSubscription)
    assert isinstance(factory(), SubscriptionSource)
