"""Look-back on a simulated GB/T 28181 NVR over real SIP and RTP: Playback INVITE with the range (s=Playback, u=,
t=, history SSRC), pause / seek / speed over MANSRTSP INFO read back from the device's state and the stream's
timestamps, and Download (s=Download, downloadspeed) remuxed to an MP4 that decodes."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import av
import pytest
from sharpeye.config.gb28181 import GbSettings
from sharpeye.ingest.gb28181.platform import GbPlatform
from sharpeye.ingest.gb28181.playback import PlaybackError, download, open_playback
from sharpeye.ingest.transport.ps import AccessUnit
from sharpeye.simulators.gb28181.device import DeviceFleet, SimDevice, code
from sharpeye.simulators.gb28181.playback import MansrtspError, PlaybackControl, apply_mansrtsp

from tests.ingest.gb28181.conftest import PLATFORM_ID, device_config, until

START = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)


def _settings(**extra: Any) -> GbSettings:
    return GbSettings(sip_id=PLATFORM_ID, port=0, sip_t1_s=0.1, query_timeout_s=5, media_port_min=0,
                      media_port_max=0, **extra)  # fmt: skip


async def _online(make_platform: Any, dev: SimDevice, **settings: Any) -> tuple[GbPlatform, DeviceFleet]:
    platform = await make_platform([device_config(dev)], settings=_settings(**settings))
    fleet = DeviceFleet([dev], platform_id=PLATFORM_ID, platform_port=platform.port, t1=0.1)
    await fleet.start()
    await until(lambda: len(platform.device(dev.id).channels) == len(dev.channels))
    return platform, fleet


class Units:
    def __init__(self) -> None:
        self.units: list[tuple[float, AccessUnit]] = []

    def __call__(self, unit: AccessUnit) -> None:
        self.units.append((time.monotonic(), unit))

    def pts_s(self) -> float:
        return (self.units[-1][1].pts or 0) / 90000 if self.units else 0.0


async def test_playback_with_pause_seek_and_speed(make_platform: Any) -> None:
    nvr = SimDevice(id=code("34020000", 118, 41), password="pw", kind="nvr", channel_count=2)
    channel = nvr.channels[0][0]
    platform, fleet = await _online(make_platform, nvr)
    try:
        playback = await open_playback(platform, channel, START, START + timedelta(minutes=10))
        offer = fleet.invites[-1]
        assert offer.session == "Playback" and offer.uri == f"{channel}:0"
        assert offer.time == (int(START.timestamp()), int((START + timedelta(minutes=10)).timestamp()))
        assert offer.ssrc.startswith("1")  # a history stream
        control: PlaybackControl = next(iter(fleet.controls.values()))
        got = Units()
        playback.media.add_consumer(got)
        await until(lambda: got.pts_s() >= 1.0, 15)
        assert got.units[0][1].key
        # Pause: the device stops; the stream's time stands still.
        await playback.pause()
        assert control.paused and control.infos == ["PAUSE"]
        await asyncio.sleep(0.3)
        held = got.pts_s()
        await asyncio.sleep(0.6)
        assert got.pts_s() - held < 0.15
        # Seek 5 minutes in: timestamps jump to 300 s from the range's start.
        await playback.seek(300)
        await until(lambda: got.pts_s() >= 300, 10)
        assert not control.paused and control.infos[-1] == "PLAY"
        # Speed 4: the recording's time advances about four times as fast as the wall clock.
        await playback.speed(4)
        assert control.scale == 4
        t0, p0 = time.monotonic(), got.pts_s()
        await asyncio.sleep(1.5)
        rate = (got.pts_s() - p0) / (time.monotonic() - t0)
        assert 2.5 < rate < 5.0, rate
        with pytest.raises(PlaybackError, match="outside the range"):
            await playback.seek(3600)
        with pytest.raises(PlaybackError, match="speed 3"):
            await playback.speed(3)
        # The pictures decode.
        decoder = av.CodecContext.create("h264", "r")
        frames = [f for _, u in got.units[:40] for f in decoder.decode(av.Packet(u.data))]
        assert frames and (frames[0].width, frames[0].height) == (320, 180)
        await playback.close()
        await until(lambda: not fleet.streams)
        assert platform.stats["playback.info"] == 3
    finally:
        await fleet.stop()


async def test_download_is_remuxed_to_an_mp4_of_the_range(make_platform: Any, tmp_path: Path) -> None:
    nvr = SimDevice(id=code("34020000", 118, 42), password="pw", kind="nvr", channel_count=1)
    channel = nvr.channels[0][0]
    platform, fleet = await _online(make_platform, nvr)
    try:
        out = tmp_path / "download.mp4"
        t0 = time.monotonic()
        result = await download(platform, channel, START, START + timedelta(seconds=8), out, speed=4)
        took = time.monotonic() - t0
        offer = fleet.invites[-1]
        assert offer.session == "Download" and offer.download_speed == 4
        assert result.complete and result.reason == "range"
        assert result.seconds >= 7.5
        assert took < 6, took  # 8 s at four times real time
        with av.open(str(out)) as container:
            stream = container.streams.video[0]
            assert stream.codec_context.name == "h264"  # remuxed, not re-encoded
            frames = sum(1 for _ in container.decode(stream))
        assert frames >= 7.5 * 10, frames  # the simulator's scene runs at 10+ fps
        assert not out.with_name(out.name + ".part").exists()
        await until(lambda: not fleet.streams)  # the session was closed with BYE
        assert platform.stats["download.complete"] == 1
        with pytest.raises(PlaybackError, match="not after"):
            await download(platform, channel, START, START, out)
    finally:
        await fleet.stop()


async def test_a_refused_download_is_a_clear_error(make_platform: Any, tmp_path: Path) -> None:
    dev = SimDevice(id=code("34020000", 132, 43), password="pw", refuse_invite=404)
    platform, fleet = await _online(make_platform, dev)
    try:
        from sharpeye.ingest.gb28181.platform import MediaError

        with pytest.raises(MediaError, match="404"):
            await download(platform, dev.channels[0][0], START, START + timedelta(seconds=5), tmp_path / "x.mp4")
        assert not (tmp_path / "x.mp4").exists()
    finally:
        await fleet.stop()


def test_mansrtsp_bodies_are_validated() -> None:
    control = PlaybackControl("Playback", 0, 600)
    apply_mansrtsp(control, b"PLAY MANSRTSP/1.0\r\nCSeq: 1\r\nScale: 2\r\nRange: npt=12.5-\r\n\r\n")
    assert control.scale == 2 and control.seek_to == 12.5
    for bad in (b"", b"JUMP MANSRTSP/1.0\r\n", b"PLAY RTSP/1.0\r\n", b"PLAY MANSRTSP/1.0\r\nScale: fast\r\n",
                b"PLAY MANSRTSP/1.0\r\nScale: 1000\r\n", b"PLAY MANSRTSP/1.0\r\nRange: clock=1-\r\n"):  # fmt: skip
        with pytest.raises(MansrtspError):
            apply_mansrtsp(control, bad)
