"""End to end through real RTSP: scripted scenarios raise exactly their expected alarms, with evidence."""

from __future__ import annotations

import hashlib
import multiprocessing
import threading
from pathlib import Path

import av
import cv2
import pytest
from sharpeye.ingest.camera.config import CameraConfig
from sharpeye.ingest.camera.evidence import EvidenceError
from sharpeye.ingest.camera.service import CameraService
from sharpeye.simulators.camera.grader import Grader, Observed
from sharpeye.simulators.camera.rtsp import RtspSimulator
from sharpeye.simulators.camera.scenario import builtin

from sharpeye.clock import ManualClock
from tests.ingest.camera.support import SCENARIOS, Collector, wait_until

# RTSP start-up and network jitter on top of each expectation's own window.
SLACK_S = 1.0


def _thread_names() -> set[str]:
    return {t.name for t in threading.enumerate()}


async def test_scenarios_over_rtsp_raise_expected_alarms_with_evidence(rtsp_sim: RtspSimulator, tmp_path: Path) -> None:
    transports = {"intrusion": "tcp", "loitering": "udp", "tamper": "tcp"}
    configs = []
    for name in SCENARIOS:
        scenario = builtin(name)
        cfg = scenario.camera_config(f"cam-{name}", rtsp_sim.url(name))
        configs.append(cfg.model_copy(update={"rtsp_transport": transports[name]}))
    threads_before = _thread_names()
    collector = Collector()
    clock = ManualClock()
    service = CameraService(configs, tmp_path, collector, clock, workers=2)
    await service.start()
    try:
        # Watch every clip to the end of its scenario (stream time, as the analytics saw it).
        durations = {f"cam-{n}": builtin(n).duration_s for n in SCENARIOS}
        assert await wait_until(
            lambda: all(s.stream_s >= durations[s.camera_id] for s in service.stats()),
            within=max(durations.values()) + 8,
            step=0.25,
        ), service.stats()
        stats = {s.camera_id: s for s in service.stats()}
        for name in SCENARIOS:
            s = stats[f"cam-{name}"]
            assert s.state == "live", s
            assert s.codec == "h264" and (s.width, s.height) == (640, 360)
            assert 3.5 <= s.fps_analysed <= 6.5, s
            assert 8 <= s.fps_in <= 12, s
            assert s.reconnects == 0 and s.health >= 70, s
    finally:
        await service.stop()

    grader = Grader(early_s=0.5)
    for name in SCENARIOS:
        scenario = builtin(name)
        firsts = collector.firsts(f"cam-{name}")
        observed = [
            Observed(r.kind, r.channel, str(r.value), float(r.attrs["since_connect_s"]), r.attrs.get("direction"))
            for r in firsts
            if r.kind != "video.loss"
        ]
        expected = [e.model_copy(update={"within_s": e.within_s + SLACK_S}) for e in scenario.expected]
        grade = grader.grade(expected, observed)
        assert grade.exact, f"{name}: missed {grade.missed}, extra {grade.extra}"
        assert not collector.of(f"cam-{name}", "video.loss")
        for r in firsts:
            assert r.ts == clock.now()
            assert r.device_id == f"cam-{name}"
            if r.kind == "video.tamper":
                assert r.channel is None and r.value in ("covered", "defocused", "turned_away")
                continue
            assert r.value == "alarm" and r.channel is not None
            assert isinstance(r.attrs["object_id"], int) and len(r.attrs["box"]) == 4
            jpg_ref, mp4_ref = r.evidence
            jpg = service.evidence_path(jpg_ref)
            image = cv2.imread(str(jpg))
            assert image is not None and image.shape == (360, 640, 3)
            clip = service.evidence_path(mp4_ref)
            with av.open(str(clip)) as container:
                stream = container.streams.video[0]
                assert stream.codec_context.name == "h264"
                packets = [p for p in container.demux(stream) if p.size]
                frames = sum(1 for p in packets for _ in p.decode())
            pre, post, share = (configs[0].evidence.pre_s, configs[0].evidence.post_s, configs[0].evidence.share_s)
            # 10 fps source: a clip from the key frame before (alarm - pre) to alarm + post, or longer when it is
            # shared by alarms that came while it was being recorded (up to share_s after the first).
            assert (pre + post) * 10 * 0.8 <= len(packets) <= (pre + share + post + 2) * 10, len(packets)
            assert frames == len(packets)
            assert packets[0].is_keyframe

    # The clip is the camera's own bitstream, remuxed, not re-encoded: its frames decode to exactly the
    # source's pixels, in the source's order.
    def frame_hashes(path: Path) -> list[str]:
        with av.open(str(path)) as container:
            frames = container.decode(video=0)
            return [hashlib.sha1(f.to_ndarray(format="yuv420p").tobytes()).hexdigest() for f in frames]

    source = frame_hashes(Path(rtsp_sim.mounts["intrusion"]))
    clip_ref = next(r.evidence[1] for r in collector.firsts("cam-intrusion") if r.kind == "video.intrusion")
    clip = frame_hashes(service.evidence_path(clip_ref))
    assert len(clip) >= 40
    start = source.index(clip[0])
    assert source[start : start + len(clip)] == clip

    for bad in ("../../etc/passwd", "cam-intrusion/20260101/../../../x.jpg", "/etc/passwd", "cam-x/2026/a.jpg"):
        with pytest.raises(EvidenceError):
            service.evidence_path(bad)

    # No orphans: worker processes ended, capture and pipe threads gone.
    assert multiprocessing.active_children() == []
    leaked = {n for n in _thread_names() - threads_before if n.startswith(("capture-", "video-"))}
    assert leaked == set()


async def test_video_loss_alarm_and_restore(scenario_clips: dict[str, Path], tmp_path: Path) -> None:
    sim = RtspSimulator({"lake": scenario_clips["intrusion"]})
    sim.start()
    collector = Collector()
    cfg = builtin("intrusion").camera_config("cam-lake", sim.url("lake"))
    cfg = cfg.model_copy(update={"loss_after_s": 2.0, "repeat_s": 1.5})
    service = CameraService([cfg], tmp_path, collector, ManualClock(), workers=1, backoff_max=1.0)
    await service.start()
    try:
        assert await wait_until(lambda: service.stats()[0].state == "live" and service.stats()[0].stream_s > 1, 10)
        before = len(collector.of("cam-lake", "video.loss"))
        sim.kill()
        assert await wait_until(lambda: len(collector.of("cam-lake", "video.loss")) > before, 6)
        losses = collector.of("cam-lake", "video.loss")[before:]
        assert losses[0].value == "alarm" and losses[0].attrs["repeat"] == 0
        assert service.stats()[0].state == "lost" and service.stats()[0].health == 0
        assert service.stats()[0].last_error is not None
        # The alarm repeats while the loss lasts.
        assert await wait_until(lambda: len(collector.of("cam-lake", "video.loss")) >= before + 2, 4)
        assert all(r.value == "alarm" for r in collector.of("cam-lake", "video.loss")[before:])
        before = len(collector.of("cam-lake", "video.loss"))
        sim.start()
        assert await wait_until(
            lambda: any(r.value == "restore" for r in collector.of("cam-lake", "video.loss")[before:]), 10
        )
        stats = service.stats()[0]
        assert stats.state == "live" and stats.reconnects >= 1
        assert await wait_until(lambda: service.stats()[0].fps_analysed > 2, 6)
    finally:
        await service.stop()
        sim.stop()


async def test_schedules_disarm_rules_by_the_hub_clock(rtsp_sim: RtspSimulator, tmp_path: Path) -> None:
    scenario = builtin("intrusion")
    cfg = scenario.camera_config("cam-sched", rtsp_sim.url("intrusion"))
    # ManualClock starts Monday 2026-01-05 02:00 UTC = 10:00 in Shanghai: the line is armed only at night.
    night = {"windows": [{"start": "20:00", "end": "24:00"}]}
    data = cfg.model_dump()
    data["tripwires"][0]["schedule"] = night
    cfg = CameraConfig.model_validate(data)
    collector = Collector()
    service = CameraService([cfg], tmp_path, collector, ManualClock(), workers=1)
    await service.start()
    try:
        assert await wait_until(lambda: bool(collector.of("cam-sched", "video.intrusion")), 20)
    finally:
        await service.stop()
    # The person crossed the line before entering the zone: the disarmed line stayed silent.
    assert collector.of("cam-sched", "video.tripwire") == []


def _packets(path: Path) -> tuple[int, int]:
    """Packets of a clip and the pictures they decode to."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        packets = [p for p in container.demux(stream) if p.size]
        return len(packets), sum(1 for p in packets for _ in p.decode())


async def test_a_burst_of_alarms_shares_one_clip_and_one_picture_one_snapshot(
    rtsp_sim: RtspSimulator, tmp_path: Path
) -> None:
    # The intrusion scenario: the line crossed at 6.6 s, the gate zone entered (dwell 1 s) at 9.5 s. Its gate zone
    # twice (gate2 the same polygon), so one picture raises two intrusions.
    scenario = builtin("intrusion")
    base = scenario.camera_config("cam-burst", rtsp_sim.url("intrusion")).model_dump()
    base["zones"].append({**base["zones"][0], "id": "gate2"})
    # Clips to 4 s after an alarm: the intrusion comes well within the line's.
    burst = CameraConfig.model_validate({**base, "evidence": {"pre_s": 2, "post_s": 4}})
    apart = CameraConfig.model_validate(
        {**base, "id": "cam-apart", "evidence": {"pre_s": 2, "post_s": 4, "share_s": 0}}
    )
    cams = ("cam-burst", "cam-apart")
    collector = Collector()
    service = CameraService([burst, apart], tmp_path, collector, ManualClock(), workers=2)
    await service.start()
    try:
        assert await wait_until(
            lambda: all(len([r for r in collector.firsts(c) if r.kind != "video.loss"]) >= 3 for c in cams),
            within=scenario.duration_s + 8,
            step=0.25,
        )
        # And the clips' post_s after the intrusion (at 9.5 s) recorded.
        assert await wait_until(lambda: all(s.stream_s >= 14.5 for s in service.stats()), within=10, step=0.25)
    finally:
        await service.stop()
    pre, post = burst.evidence.pre_s, burst.evidence.post_s
    for cam in cams:
        firsts = {r.channel: r for r in collector.firsts(cam) if r.kind != "video.loss"}
        assert set(firsts) == {"line1", "gate", "gate2"}, firsts
        line, gate, gate2 = firsts["line1"], firsts["gate"], firsts["gate2"]
        # The two intrusions of one picture: one snapshot (both boxes drawn), one clip.
        assert gate.evidence == gate2.evidence
        assert line.evidence[0] != gate.evidence[0]
        for ref in {*line.evidence, *gate.evidence}:
            assert service.evidence_path(ref).stat().st_size > 0
        apart_s = gate.attrs["since_connect_s"] - line.attrs["since_connect_s"]
        assert 2 <= apart_s <= 4, apart_s
        n_line, pictures = _packets(service.evidence_path(line.evidence[1]))
        assert pictures == n_line
        if cam == "cam-burst":
            # The intrusion came while the line's clip was being recorded: it shares it, extended to post_s after
            # the intrusion (10 fps: a clip from the key frame before the line's alarm - pre to gate + post).
            assert line.evidence[1] == gate.evidence[1]
            assert (pre + apart_s + post) * 10 * 0.8 <= n_line <= (pre + apart_s + post + 2) * 10, n_line
        else:
            # share_s 0: a clip for each alarm but for those of one picture.
            assert line.evidence[1] != gate.evidence[1]
            n_gate, pictures = _packets(service.evidence_path(gate.evidence[1]))
            assert pictures == n_gate
            for n in (n_line, n_gate):
                assert (pre + post) * 10 * 0.8 <= n <= (pre + post + 2) * 10, n
    assert service.clips_made == 3 and service.clips_shared == 3
    assert service.snapshots_written == 4
