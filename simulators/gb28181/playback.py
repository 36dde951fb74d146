"""Playback and download of the simulated devices' recordings: a clip streamed from the requested time, at the
requested speed, controlled by MANSRTSP in SIP INFO (PLAY with Scale and Range, PAUSE).

The "recording" at simulated time T is the device's looped clip at frame ``T * fps`` (modulo its length), so any
time has pictures. RTP timestamps count the recording's time from the start asked (``t=`` of the INVITE) in 90 kHz:
after a seek they jump to the new position, at a speed of 2 they advance twice as fast as the wall clock. At the end
of the range the device stops sending and tells the platform with a MediaStatus NOTIFY (NotifyType 121).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from sharpeye.ingest.transport.ps import PsMuxer, rtp_payloads
from sharpeye.ingest.transport.rtp import RtpSender, build_rtp
from sharpeye.simulators.gb28181.media import Clip

log = logging.getLogger(__name__)


class MansrtspError(ValueError):
    """A MANSRTSP body the device does not understand."""


@dataclass(slots=True)
class PlaybackControl:
    """One Playback/Download session of the device: its range and what the platform asked last."""

    session: str  # Playback or Download
    start: int  # t= of the INVITE, seconds since the epoch
    end: int
    scale: float = 1.0
    paused: bool = False
    seek_to: float | None = None  # seconds from ``start`` asked by a PLAY Range, taken by the sender
    position: float = 0.0  # seconds from ``start`` of the next frame sent
    finished: bool = False
    infos: list[str] = field(default_factory=list)
    wake: asyncio.Event = field(default_factory=asyncio.Event)


def parse_mansrtsp(body: bytes) -> tuple[str, dict[str, str]]:
    """The method (PLAY, PAUSE, TEARDOWN) and headers (lower-cased names) of a MANSRTSP request."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise MansrtspError("not UTF-8") from None
    lines = [line.strip() for line in text.replace("\r\n", "\n").split("\n") if line.strip()]
    if not lines:
        raise MansrtspError("empty body")
    parts = lines[0].split()
    if len(parts) != 2 or not parts[1].upper().startswith("MANSRTSP/"):
        raise MansrtspError(f"bad request line {lines[0][:40]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise MansrtspError(f"bad header {line[:40]!r}")
        headers[name.strip().lower()] = value.strip()
    return parts[0].upper(), headers


def apply_mansrtsp(control: PlaybackControl, body: bytes) -> None:
    """Pause, resume, change speed or seek as the request says; raises ``MansrtspError``."""
    method, headers = parse_mansrtsp(body)
    if method == "PAUSE":
        control.paused = True
    elif method == "PLAY":
        scale = headers.get("scale")
        if scale is not None:
            try:
                value = float(scale)
            except ValueError:
                raise MansrtspError(f"bad Scale {scale!r}") from None
            if not 0.0625 <= value <= 64:
                raise MansrtspError(f"Scale {value} out of range")
            control.scale = value
        rng = headers.get("range", "")
        if rng:
            if not rng.startswith("npt="):
                raise MansrtspError(f"bad Range {rng!r}")
            first = rng[4:].split("-", 1)[0].strip()
            if first and first != "now":
                try:
                    control.seek_to = max(0.0, float(first))
                except ValueError:
                    raise MansrtspError(f"bad Range {rng!r}") from None
        control.paused = False
    elif method != "TEARDOWN":
        raise MansrtspError(f"unknown method {method}")
    control.infos.append(method)
    control.wake.set()


async def stream_history(
    sender: RtpSender, clip: Clip, control: PlaybackControl, on_end: Callable[[], Awaitable[None]]
) -> None:
    """Send the clip from the range's start as the control says, until the range ends (then ``on_end``)."""
    loop = asyncio.get_running_loop()
    muxer = PsMuxer(clip.codec)
    n_frames = len(clip.frames)
    duration = control.end - control.start
    frame_s = 1 / clip.fps
    # The first frame: the key frame at or before the start time in the looped clip.
    index = int(control.start * clip.fps) % n_frames
    while index > 0 and not clip.frames[index][1]:
        index -= 1
    wall0, pos0 = loop.time(), 0.0
    while control.position < duration:
        if control.paused:
            control.wake.clear()
            await control.wake.wait()
            wall0, pos0 = loop.time(), control.position
            continue
        if control.seek_to is not None:
            control.position = min(control.seek_to, duration)
            control.seek_to = None
            index = int((control.start + control.position) * clip.fps) % n_frames
            while index > 0 and not clip.frames[index][1]:
                index -= 1
            wall0, pos0 = loop.time(), control.position
        due = wall0 + (control.position - pos0) / control.scale
        delay = due - loop.time()
        if delay > 0:
            control.wake.clear()
            try:
                await asyncio.wait_for(control.wake.wait(), delay)
                continue  # a control request came: look again
            except TimeoutError:
                pass
        data, key = clip.frames[index % n_frames]
        ts = round(control.position * 90000) & 0xFFFFFFFF
        payloads = rtp_payloads(muxer.mux(data, ts, key))
        last = len(payloads) - 1
        for i, payload in enumerate(payloads):
            sender.send_packet(build_rtp(sender.payload_type, sender.seq, ts, sender.ssrc, payload, marker=i == last))
            sender.seq = (sender.seq + 1) & 0xFFFF
        index += 1
        control.position += frame_s
    control.finished = True
    await on_end()
