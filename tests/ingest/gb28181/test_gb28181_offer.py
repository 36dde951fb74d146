"""RTSP and file cameras offered upward: a camera with a ``gb_code`` is in the Catalog SharpEye answers its upper
platform, and the upper platform's INVITE of that code gets the camera's own packets (from the camera service's
fan-out) as PS over RTP, re-framed but not re-encoded; demuxed back, every access unit is one the encoder made."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import av
import pytest
import yaml
from sharpeye.config.gb28181 import GbSettings
from sharpeye.config.loader import ConfigError, demo_path, load_text
from sharpeye.governance.cascade import GbCascade
from sharpeye.ingest.camera.config import CameraConfig
from sharpeye.ingest.camera.service import CameraService
from sharpeye.ingest.gb28181.offer import UpwardOffer, camera_channels
from sharpeye.ingest.gb28181.puller import ChannelPuller
from sharpeye.ingest.registry import installed
from sharpeye.ingest.transport.ps import AnnexB, nal_types, nal_units
from sharpeye.simulators.camera.rtsp import RtspSimulator
from sharpeye.simulators.camera.scenario import builtin
from sharpeye.simulators.camera.scene import Scene
from sharpeye.simulators.gb28181.device import code
from sharpeye.simulators.gb28181.upper import UpperPlatformSimulator

from sharpeye.clock import ManualClock
from tests.helpers import env_secret
from tests.ingest.camera.support import Collector
from tests.ingest.gb28181.conftest import PLATFORM_ID, UPPER_ID, until

PASSWORD = "upper-secret"
CAMERA_CODE = code("34020000", 131, 77)


def write_clip(path: Path, codec: str, seconds: float = 4.0, width: int = 320, height: int = 180) -> list[bytes]:
    """Encode a scene into ``path`` (the container decides: MPEG-TS keeps Annex B with parameter sets in band, MP4
    and Matroska store avcC/hvcC and length-prefixed NAL units); returns the encoder's access units (Annex B)."""
    scenario = builtin("intrusion")
    scene = Scene(scenario, width, height)
    fps = scenario.fps
    out: Any = av.open(str(path), "w")
    stream = out.add_stream("libx265" if codec == "hevc" else "libx264", rate=fps)
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    options = {"preset": "ultrafast", "g": str(fps), "bf": "0"}
    if codec == "hevc":
        options["x265-params"] = f"keyint={fps}:bframes=0:log-level=none"
    stream.codec_context.options = options
    units: list[bytes] = []
    for n in range(int(seconds * fps)):
        frame = av.VideoFrame.from_ndarray(scene.frame(n / fps), format="bgr24").reformat(format="yuv420p")
        frame.pts = n
        for packet in stream.encode(frame):
            units.append(bytes(packet))
            out.mux(packet)
    for packet in stream.encode(None):
        units.append(bytes(packet))
        out.mux(packet)
    out.close()
    return units


def vcl(data: bytes, codec: str) -> tuple[bytes, ...]:
    """The picture's slices (what re-framing must not touch; parameter sets and delimiters may be added)."""
    limit = 32 if codec == "hevc" else 6
    return tuple(n for n, t in zip(nal_units(data), nal_types(data, codec), strict=True) if t < limit)


def _settings(upper_port: int) -> GbSettings:
    return GbSettings.model_validate(
        {"sip_id": PLATFORM_ID, "port": 0, "sip_t1_s": 0.1, "media_port_min": 0, "media_port_max": 0,
         "cascade": {"upper_id": UPPER_ID, "upper_host": "127.0.0.1", "upper_port": upper_port, "local_port": 0,
                     "password": env_secret(PASSWORD), "retry_s": 0.2}}
    )  # fmt: skip


def _camera(url: str, gb_code: str | None = CAMERA_CODE, cam_id: str = "gate-cam") -> CameraConfig:
    return CameraConfig.model_validate(
        {"id": cam_id, "kind": "camera", "name": "北门卡口", "grid": "g1", "url": url, "gb_code": gb_code}
    )


def test_gb_code_must_be_a_camera_code() -> None:
    with pytest.raises(ValueError, match="type code 200"):
        _camera("rtsp://127.0.0.1/x", gb_code=PLATFORM_ID)
    with pytest.raises(ValueError, match="20-digit"):
        _camera("rtsp://127.0.0.1/x", gb_code="3402000013")
    cams = [_camera("rtsp://127.0.0.1/x"), _camera("a.mp4", gb_code=None, cam_id="b"),
            _camera("rtsp://127.0.0.1/y", cam_id="c")]  # fmt: skip
    (item,) = camera_channels(cams, PLATFORM_ID, live={"c"})
    assert (item.channel_id, item.name, item.status, item.model) == (CAMERA_CODE, "北门卡口", "OFF", "RTSP camera")


@pytest.mark.parametrize("codec", ["h264", "hevc"])
def test_length_prefixed_packets_become_decodable_annex_b(tmp_path: Path, codec: str) -> None:
    """MP4/Matroska: avcC/hvcC parameter sets go in front of each key frame; the slices are the encoder's."""
    path = tmp_path / ("clip.mp4" if codec == "h264" else "clip.mkv")
    units = write_clip(path, codec, seconds=2.0)
    container: Any = av.open(str(path))
    stream = container.streams.video[0]
    annexb = AnnexB(codec, stream.codec_context.extradata)
    assert annexb.length_size == 4 and annexb.params
    got = [annexb(bytes(p), bool(p.is_keyframe)) for p in container.demux(stream) if p.size]
    container.close()
    assert [vcl(g, codec) for g in got] == [vcl(u, codec) for u in units]
    decoder: Any = av.CodecContext.create(codec, "r")
    pictures = sum(len(decoder.decode(av.Packet(g))) for g in got) + len(decoder.decode(None))
    assert pictures == len(units)
    with pytest.raises(ValueError, match="overruns"):
        annexb(b"\x00\x00\x10\x00\x65", False)


@pytest.mark.parametrize(
    ("source", "codec", "mode"),
    [("rtsp", "h264", "udp"), ("mkv", "hevc", "tcp-passive"), ("mp4", "h264", "tcp-active"), ("ts", "hevc", "udp")],
)
async def test_upper_platform_watches_an_rtsp_or_file_camera(
    make_platform: Any, tmp_path: Path, source: str, codec: str, mode: str
) -> None:
    path = tmp_path / f"camera.{'ts' if source == 'rtsp' else source}"
    units = write_clip(path, codec)
    rtsp = RtspSimulator({"gate": path}) if source == "rtsp" else None
    if rtsp is not None:
        rtsp.start()
    camera = _camera(rtsp.url("gate") if rtsp is not None else str(path))
    service = CameraService([camera], tmp_path, Collector(), ManualClock(), workers=1, analytics=False)
    upper = UpperPlatformSimulator(UPPER_ID, PASSWORD, t1=0.1)
    await upper.start()
    settings = _settings(upper.port)
    platform = await make_platform([], settings=settings)
    puller = ChannelPuller(platform, grace_s=0)

    def live() -> set[str]:
        return {s.camera_id for s in service.stats() if s.state == "live"}

    offer = UpwardOffer(PLATFORM_ID, channels=platform.channels, devices=lambda: [camera], puller=puller,
                        cameras=lambda: service, live=live)  # fmt: skip
    cascade = GbCascade(settings, catalog=offer.catalog, media=offer.media)
    await service.start()
    await cascade.start()
    try:
        await until(lambda: PLATFORM_ID in upper.lowers, 10)
        await until(lambda: service.stats()[0].state == "live", 15)
        pages = await upper.query(PLATFORM_ID, "Catalog")
        items = {item["deviceid"]: item for page in pages for item in page.items}
        assert items[CAMERA_CODE]["name"] == "北门卡口" and items[CAMERA_CODE]["status"] == "ON"
        assert items[CAMERA_CODE]["parentid"] == PLATFORM_ID

        watch = await upper.invite(PLATFORM_ID, CAMERA_CODE, mode=mode)  # type: ignore[arg-type]
        assert watch.status == 200 and watch.answer is not None
        await until(lambda: len(watch.units) >= 15, 15)
        assert {u.codec for u in watch.units} == {codec}  # from our program stream map
        sent = {vcl(u, codec) for u in units}
        assert all(vcl(u.data, codec) in sent for u in watch.units), "access units changed on the way"
        assert watch.units[0].key
        decoder: Any = av.CodecContext.create(codec, "r")
        pictures = sum(len(decoder.decode(av.Packet(u.data))) for u in watch.units)
        assert pictures >= len(watch.units) - 1  # every unit decodes, from the first key frame on
        assert offer.stats["invite.camera"] == 1 and not fleet_invites(platform)
        assert await upper.bye(watch) == 200
        await until(lambda: not cascade.streams)
        await until(lambda: not service._cameras[camera.id].subscriptions)  # the fan-out lost its subscriber
    finally:
        await cascade.stop()
        await puller.stop()
        await upper.stop()
        await service.stop()
        if rtsp is not None:
            rtsp.stop()


def fleet_invites(platform: Any) -> int:
    """INVITEs SharpEye sent down to devices (none: a camera's own stream is served)."""
    return len(platform.sessions)


async def test_invite_for_a_coded_camera_not_running_here_gets_503(make_platform: Any, tmp_path: Path) -> None:
    camera = _camera(str(tmp_path / "missing.mp4"))
    upper = UpperPlatformSimulator(UPPER_ID, PASSWORD, t1=0.1)
    await upper.start()
    settings = _settings(upper.port)
    platform = await make_platform([], settings=settings)
    offer = UpwardOffer(PLATFORM_ID, channels=platform.channels, devices=lambda: [camera], puller=None,
                        cameras=lambda: None)  # fmt: skip
    cascade = GbCascade(settings, catalog=offer.catalog, media=offer.media)
    await cascade.start()
    try:
        await until(lambda: PLATFORM_ID in upper.lowers)
        watch = await upper.invite(PLATFORM_ID, CAMERA_CODE)
        assert watch.status == 503 and offer.stats["invite.camera.unavailable"] == 1
        assert cascade.stats["invite.unavailable.unavailable"] == 1
        watch = await upper.invite(PLATFORM_ID, code("34020000", 131, 999))
        assert watch.status == 404
    finally:
        await cascade.stop()
        await upper.stop()


def test_config_check_refuses_a_gb_code_given_twice() -> None:
    data: dict[str, Any] = yaml.safe_load(demo_path().read_text(encoding="utf-8"))
    grid = data["devices"][0]["grid"]
    for name in ("cam-a", "cam-b"):
        data["devices"].append({"id": name, "kind": "camera", "name": name, "grid": grid, "url": f"{name}.mp4",
                                "gb_code": CAMERA_CODE})  # fmt: skip
    with pytest.raises(ConfigError, match=f"gb_code {CAMERA_CODE} is given to two cameras"):
        load_text(yaml.safe_dump(data, allow_unicode=True), installed())
    other = code("34020000", 131, 78)
    data["devices"][-1]["id"] = data["devices"][-1]["gb_code"] = other  # its own id as its code: fine
    load_text(yaml.safe_dump(data, allow_unicode=True), installed())
    data["devices"][-2]["gb_code"] = other
    with pytest.raises(ConfigError, match=f"gb_code {other} of cam-a is another device's id"):
        load_text(yaml.safe_dump(data, allow_unicode=True), installed())
