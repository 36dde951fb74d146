"""The upper platform looks back at a camera SharpEye records itself (no NVR): RecordInfo answered from the
recording index, then a Playback INVITE with the range streams the recorded segments as PS over RTP, paced, with
MANSRTSP pause and speed, every frame timed inside the range; the stream ends (BYE) once the range is played."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sharpeye.config.gb28181 import GbSettings
from sharpeye.governance.cascade import GbCascade
from sharpeye.governance.cascade_record import merge_spans
from sharpeye.ingest.gb28181.platform import Channel
from sharpeye.ingest.gb28181.record import gb_time
from sharpeye.ingest.recording.config import RecordConfig
from sharpeye.ingest.recording.playback import ControlError, RecordedPlayback, parse_mansrtsp
from sharpeye.ingest.recording.recorder import Recorder
from sharpeye.ingest.recording.store import RecordingStore
from sharpeye.ingest.transport.sip.sdp import MediaDescription
from sharpeye.ingest.transport.video.subscription import PacketSubscription
from sharpeye.simulators.gb28181.upper import UpperPlatformSimulator

from tests.helpers import env_secret
from tests.ingest.gb28181.conftest import PLATFORM_ID, UPPER_ID, until
from tests.ingest.gb28181.test_gb28181_offer import CAMERA_CODE, vcl, write_clip
from tests.ingest.gb28181.test_gb28181_sipp import SCENARIOS, _free_udp_port, _run
from tests.ingest.gb28181.test_gb28181_sipp_media import _units
from tests.ingest.recording.support import clip_packets

PASSWORD = "upper-secret"
CAMERA = "gate-cam"
ZONE = "Asia/Shanghai"


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[RecordingStore, set[tuple[bytes, ...]]]:
    """12 s of a camera recorded in 2 s segments, ending about now (the clip's pictures, to check what arrives)."""
    directory = tmp_path_factory.mktemp("upward-recording")
    clip = directory / "gate.ts"
    pictures = {vcl(u, "h264") for u in write_clip(clip, "h264")}
    store = RecordingStore(directory / "rec")
    info, packets = clip_packets(clip, loops=3)
    recorder = Recorder(CAMERA, RecordConfig(segment_s=2), store)
    recorder.start()
    recorder.open(info)
    for packet in packets:
        recorder.push(packet)
    recorder.stop()
    assert recorder.join(60) and recorder.errors == 0
    return store, pictures


@pytest.fixture
async def upper() -> AsyncIterator[UpperPlatformSimulator]:
    sim = UpperPlatformSimulator(UPPER_ID, PASSWORD, t1=0.1)
    await sim.start()
    yield sim
    await sim.stop()


async def _cascade(
    upper: UpperPlatformSimulator, store: RecordingStore, *, scale_from_offer: bool = False, **extra: Any
) -> GbCascade:
    settings = GbSettings.model_validate(
        {"sip_id": PLATFORM_ID, "port": 0, "sip_t1_s": 0.1, "media_port_min": 0, "media_port_max": 0,
         "cascades": [{"id": "city", "upper_id": UPPER_ID, "upper_host": "127.0.0.1", "upper_port": upper.port,
                       "local_port": 0, "password": env_secret(PASSWORD), "retry_s": 0.2, **extra}]}
    )  # fmt: skip

    async def records(channel: str, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
        spans = merge_spans([(s.start, s.end) for s in store.segments(CAMERA, start.timestamp(), end.timestamp())])
        return [(datetime.fromtimestamp(a, UTC), datetime.fromtimestamp(b, UTC)) for a, b in spans]

    async def history(channel: str, offer: MediaDescription) -> RecordedPlayback:
        return await RecordedPlayback.for_offer(store, CAMERA, offer)

    async def live(channel: str) -> PacketSubscription:
        raise RuntimeError("live is not asked here")

    channels = [Channel(device_id=PLATFORM_ID, channel_id=CAMERA_CODE, name="北门卡口")]
    cascade = GbCascade(settings, lambda: channels, media=live, records=records, history=history)
    await cascade.start()
    await upper.wait_for(lambda: PLATFORM_ID in upper.lowers)
    return cascade


async def test_record_info_then_playback_of_own_recordings_with_pause_and_speed(
    upper: UpperPlatformSimulator, recorded: Any
) -> None:
    store, pictures = recorded
    segments = store.segments(CAMERA, 0, 4e9)
    t0 = segments[0].start
    cascade = await _cascade(upper, store)
    try:
        fields = [("StartTime", gb_time(datetime.fromtimestamp(t0 - 60, UTC), ZONE)),
                  ("EndTime", gb_time(datetime.fromtimestamp(t0 + 3600, UTC), ZONE)), ("Type", "all")]  # fmt: skip
        pages = await upper.query(PLATFORM_ID, "RecordInfo", target=CAMERA_CODE, fields=fields)
        items = [item for page in pages for item in page.items]
        assert len(items) == 1  # consecutive segments merged into one span
        assert items[0]["starttime"] == gb_time(datetime.fromtimestamp(t0, UTC), ZONE)
        a, b = int(t0) + 3, int(t0) + 8  # five seconds from the middle of the recording
        watch = await upper.invite(PLATFORM_ID, CAMERA_CODE, session="Playback", time=(a, b), ssrc="1100000001")
        assert watch.status == 200
        await until(lambda: len(watch.units) >= 3, limit_s=10)
        assert await upper.info(watch, "PAUSE MANSRTSP/1.0\r\nCSeq: 1\r\nPauseTime: now\r\n\r\n") == 200
        await until(lambda: cascade.streams and next(iter(cascade.streams.values())).control.paused)  # type: ignore[union-attr]
        held = len(watch.units)
        await asyncio.sleep(0.6)  # nothing may arrive while paused: a poll cannot show an absence
        assert len(watch.units) <= held + 1  # at most the frame already on its way
        bad = await upper.info(watch, "JUMP MANSRTSP/1.0\r\nCSeq: 2\r\n\r\n")
        assert bad == 400
        beyond = await upper.info(watch, "PLAY MANSRTSP/1.0\r\nCSeq: 3\r\nRange: npt=99-\r\n\r\n")
        assert beyond == 400  # the range is 5 s: refused in the answer, not only in a log
        loop = asyncio.get_running_loop()
        resumed = loop.time()
        assert await upper.info(watch, "PLAY MANSRTSP/1.0\r\nCSeq: 3\r\nScale: 4\r\nRange: npt=now-\r\n\r\n") == 200
        await until(lambda: cascade.stats["upstream.closed.source_ended"] == 1, limit_s=10)  # range played: BYE
        elapsed = loop.time() - resumed
        assert elapsed < 3.5, elapsed  # ~4.5 s of video left at 4x (real time would take > 4 s)
        seconds = [u.pts / 90000 for u in watch.units if u.pts is not None]
        assert seconds and all(0 <= s <= b - a for s in seconds), seconds
        assert seconds == sorted(seconds)
        assert seconds[-1] > (b - a) - 0.5  # played to the end of the range
        assert watch.units[0].key
        assert len(watch.units) >= (b - a - 1.5) * 10  # ten pictures a second, from the first key frame on
        assert all(vcl(u.data, "h264") in pictures for u in watch.units)  # the recorded pictures, not re-encoded
        await upper.wait_for(lambda: upper.media_status)  # the end announced as a device does (NotifyType 121)
        assert upper.media_status[0].device_id == CAMERA_CODE
        assert upper.media_status[0].fields["notifytype"] == "121"
    finally:
        await cascade.stop()


async def test_a_playback_paused_too_long_is_ended(
    upper: UpperPlatformSimulator, recorded: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A PAUSE followed by PLAY within ``pause_limit_s`` keeps the playback; one left paused past it is ended with a
    BYE (and a log line), releasing the recording it reads."""
    store, _ = recorded
    t0 = store.segments(CAMERA, 0, 4e9)[0].start
    cascade = await _cascade(upper, store, pause_limit_s=1.0)
    try:
        watch = await upper.invite(PLATFORM_ID, CAMERA_CODE, session="Playback", time=(int(t0) + 1, int(t0) + 11),
                                   ssrc="1100000005")  # fmt: skip
        assert watch.status == 200 and watch.dialog is not None
        (up,) = cascade.streams.values()
        assert await upper.info(watch, "PAUSE MANSRTSP/1.0\r\nCSeq: 1\r\nPauseTime: now\r\n\r\n") == 200
        assert await upper.info(watch, "PLAY MANSRTSP/1.0\r\nCSeq: 2\r\nRange: npt=now-\r\n\r\n") == 200
        assert up.paused is None  # resumed: the limit no longer runs
        assert await upper.info(watch, "PAUSE MANSRTSP/1.0\r\nCSeq: 3\r\nPauseTime: now\r\n\r\n") == 200
        assert up.paused is not None
        with caplog.at_level("INFO", logger="sharpeye.governance.cascade"):
            await upper.wait_for(lambda: watch.dialog is not None and watch.dialog.call_id in upper.byes, limit_s=5)
        assert cascade.stats["upstream.closed.paused_too_long"] == 1 and not cascade.streams
        assert up.subscription is not None
        with pytest.raises(EOFError):  # the recording reader let go: what is queued drains, then the end
            async with asyncio.timeout(5):
                while True:
                    await up.subscription.get()
        assert any("paused over 1 s: ended with a BYE" in r.getMessage() for r in caplog.records)
    finally:
        await cascade.stop()


async def test_download_of_own_recordings_runs_at_the_download_speed(
    upper: UpperPlatformSimulator, recorded: Any
) -> None:
    store, _ = recorded
    t0 = store.segments(CAMERA, 0, 4e9)[0].start
    cascade = await _cascade(upper, store)
    try:
        a, b = int(t0) + 1, int(t0) + 9
        loop = asyncio.get_running_loop()
        began = loop.time()
        watch = await upper.invite(PLATFORM_ID, CAMERA_CODE, session="Download", time=(a, b), download_speed=8,
                                   ssrc="1100000003")  # fmt: skip
        assert watch.status == 200
        await until(lambda: cascade.stats["upstream.closed.source_ended"] == 1, limit_s=10)
        assert loop.time() - began < 4  # 8 s of video at 8x (real time would take 8 s)
        seconds = [u.pts / 90000 for u in watch.units if u.pts is not None]
        assert len(seconds) >= (b - a - 1.5) * 10 and all(0 <= s <= b - a for s in seconds)
    finally:
        await cascade.stop()


async def test_playback_of_a_range_with_no_recording_is_refused(upper: UpperPlatformSimulator, recorded: Any) -> None:
    store, _ = recorded
    cascade = await _cascade(upper, store)
    try:
        watch = await upper.invite(PLATFORM_ID, CAMERA_CODE, session="Playback", time=(1000, 2000))
        assert watch.status == 503
        assert cascade.stats["invite.unavailable.RecordingError"] == 1
    finally:
        await cascade.stop()


async def test_seek_restarts_at_the_asked_moment(recorded: Any) -> None:
    store, _ = recorded
    t0 = store.segments(CAMERA, 0, 4e9)[0].start
    playback = await RecordedPlayback.open(store, CAMERA, t0, t0 + 10)
    try:
        first = await asyncio.wait_for(playback.subscription.get(), 5)
        assert first.key and first.pts is not None and first.pts < 90000
        await playback.control(b"PLAY MANSRTSP/1.0\r\nCSeq: 2\r\nRange: npt=6-\r\n\r\n")
        later = await asyncio.wait_for(playback.subscription.get(), 5)
        while later.pts is not None and later.pts < 6 * 90000:  # what was queued before the seek
            later = await asyncio.wait_for(playback.subscription.get(), 5)
        assert later.key and later.pts is not None and 6 * 90000 <= later.pts < 9 * 90000
        assert playback.stats["seek"] == 1
        for body, reason in [(b"PLAY MANSRTSP/1.0\r\nScale: 3\r\n", "Scale 3"),
                             (b"PLAY MANSRTSP/1.0\r\nRange: npt=99-\r\n", "outside"),
                             (b"GET / HTTP/1.1\r\n", "not a MANSRTSP")]:  # fmt: skip
            with pytest.raises(ControlError, match=reason):
                await playback.control(body)
    finally:
        await playback.close()
    assert parse_mansrtsp(b"PAUSE MANSRTSP/1.0\r\nCSeq: 1\r\n") == ("PAUSE", {"cseq": "1"})


class _RtpSink(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.packets: list[bytes] = []

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.packets.append(data)


async def test_sipp_upper_platform_plays_back_an_own_recording_with_mansrtsp(tmp_path: Path, recorded: Any) -> None:
    """Real sipp as the upper platform (``sipp/upper_playback.xml``): Playback INVITE of the recorded camera, INFO
    PAUSE, a bad MANSRTSP method (400), PLAY at Scale 4, then SharpEye's BYE at the range's end; the RTP that
    reached sipp's media port carries the offered SSRC and PS frames timed inside the range."""
    store, pictures = recorded
    t0 = store.segments(CAMERA, 0, 4e9)[0].start
    a, b = int(t0) + 3, int(t0) + 7
    settings = GbSettings.model_validate(
        {"sip_id": PLATFORM_ID, "port": 0, "sip_t1_s": 0.1, "media_port_min": 0, "media_port_max": 0,
         "cascade": {"upper_id": UPPER_ID, "upper_host": "127.0.0.1", "upper_port": _free_udp_port(),
                     "local_port": 0, "password": env_secret("unused"), "retry_s": 5}}
    )  # fmt: skip
    played: list[RecordedPlayback] = []

    async def history(channel: str, offer: MediaDescription) -> RecordedPlayback:
        played.append(await RecordedPlayback.open(store, CAMERA, *offer.time))
        return played[-1]

    async def live(channel: str) -> PacketSubscription:
        raise RuntimeError("live is not asked here")

    channels = [Channel(device_id=PLATFORM_ID, channel_id=CAMERA_CODE, name="北门卡口")]
    cascade = GbCascade(settings, lambda: channels, media=live, history=history)
    loop = asyncio.get_running_loop()
    transport, sink = await loop.create_datagram_endpoint(_RtpSink, local_addr=("127.0.0.1", 0))
    rtp_port = transport.get_extra_info("sockname")[1]
    await cascade.start()
    try:
        args: list[str | bytes] = [
            f"127.0.0.1:{cascade.endpoint.port}", "-sf", str(SCENARIOS / "upper_playback.xml"), "-m", "1",
            "-p", str(_free_udp_port()), "-key", "channel", CAMERA_CODE, "-key", "upper_id", UPPER_ID,
            "-key", "upper_domain", UPPER_ID[:10], "-key", "lower_domain", PLATFORM_ID[:10],
            "-key", "rtp_port", str(rtp_port), "-key", "t_start", str(a), "-key", "t_end", str(b),
            "-timeout", "30s", "-timeout_error",
        ]  # fmt: skip
        rc, err = await _run(args, tmp_path)
        assert rc == 0, err
        assert played[0].stats["pause"] == 1 and played[0].stats["scale"] == 1 and played[0].scale == 4
        assert cascade.stats["info.bad"] == 1 and cascade.stats["info.forwarded"] == 2
        assert cascade.stats["upstream.closed.source_ended"] == 1
        assert {struct.unpack("!I", p[8:12])[0] for p in sink.packets} == {1100000078}
        units = _units(sink.packets)
        assert len(units) >= (b - a - 1.5) * 10 and units[0].key
        assert all(u.pts is not None and 0 <= u.pts <= (b - a) * 90000 for u in units)
        assert all(vcl(u.data, "h264") in pictures for u in units)
    finally:
        transport.close()
        await cascade.stop()
