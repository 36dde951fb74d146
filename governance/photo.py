"""Photos and voice notes attached to cases (a report's evidence): checked by their bytes, stored under the data dir.

Photos: only JPEG and PNG are kept, recognised by their magic bytes (the declared content type and the file name
are not trusted). A voice note (one per upload, the form's ``voice`` file): WebM/Matroska, Ogg, MP4/M4A or WAV by
its magic bytes, then opened with FFmpeg (PyAV): it must hold an audio stream that decodes, no longer than
``voice_max_s``. Each file and each upload have a size cap (``config.governance.ReportLimits``). The bytes go to
``<root>/<case id>/<photo id>.<ext>`` (written to a temporary name and renamed, so a reader never sees half a file)
and a ``case_photos`` row records them (its media type tells a photo from a voice note).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from pathlib import Path
from typing import Literal

import av
from pydantic import BaseModel, Field
from sharpeye.config.governance import ReportLimits
from sharpeye.governance.store import CasePhotoRow, Database
from sqlalchemy import select

log = logging.getLogger(__name__)

_SIGNATURES: tuple[tuple[bytes, str, str], ...] = (
    (b"\xff\xd8\xff", "image/jpeg", "jpg"),
    (b"\x89PNG\r\n\x1a\n", "image/png", "png"),
)
_AUDIO: dict[str, str] = {"audio/webm": "webm", "audio/ogg": "ogg", "audio/mp4": "m4a", "audio/wav": "wav"}
EXTENSIONS = {media: ext for _, media, ext in _SIGNATURES} | _AUDIO
_DECODE_CHECK_S = 1.0  # a voice note's first second is decoded (the rest is demuxed for its length)


def sniff_audio(data: bytes) -> str | None:
    """An audio container's media type by magic bytes (WebM/Matroska, Ogg, MP4/M4A, WAV), or None."""
    if data.startswith(b"\x1a\x45\xdf\xa3"):
        return "audio/webm"
    if data.startswith(b"OggS"):
        return "audio/ogg"
    if data[4:8] == b"ftyp":
        return "audio/mp4"
    if data.startswith(b"RIFF") and data[8:12] == b"WAVE":
        return "audio/wav"
    return None


def audio_problem(data: bytes, max_s: float) -> str | None:
    """What is wrong with a voice note (None: an audio stream that decodes, at most ``max_s`` long). Its length is
    read from the packets, not the header (a phone's MediaRecorder writes WebM without a duration)."""
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.audio:
                return "holds no audio stream"
            stream = container.streams.audio[0]
            base = stream.time_base or Fraction(1, 1000)
            first: int | None = None
            last = 0
            decoded = 0
            for packet in container.demux(stream):
                if packet.pts is None:
                    continue
                first = packet.pts if first is None else min(first, packet.pts)
                last = max(last, packet.pts + (packet.duration or 0))
                if float((packet.pts - first) * base) <= _DECODE_CHECK_S:
                    decoded += len(packet.decode())
                if float((last - first) * base) > max_s:
                    return f"is longer than {max_s:g} s"  # the rest need not be read
            if first is None or decoded == 0:
                return "has no audio that decodes"
    except (av.error.FFmpegError, ValueError, OSError) as exc:
        return f"is not a playable audio file ({exc})"
    return None


def sniff(data: bytes) -> str | None:
    """The media type by magic bytes: image/jpeg, image/png, or None for anything else."""
    for magic, media, _ in _SIGNATURES:
        if data.startswith(magic):
            return media
    return None


class PhotoRejected(ValueError):
    """An upload refused, with the reason (the whole upload is refused: nothing is stored)."""

    def __init__(self, reason: str, *, too_large: bool = False, too_many: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.too_large = too_large
        self.too_many = too_many


@dataclass(frozen=True, slots=True)
class Upload:
    filename: str
    data: bytes
    field: Literal["photos", "voice"] = "photos"


class Photo(BaseModel):
    id: str = Field(description="Photo id.")
    case_id: str = Field(description="The case it belongs to.")
    media_type: str = Field(
        description="image/jpeg or image/png for a photo; audio/webm, audio/ogg, audio/mp4 or "
        "audio/wav for a voice note; from the bytes."
    )
    size: int = Field(description="Bytes.")
    sha256: str = Field(description="SHA-256 of the bytes, hex.")
    filename: str = Field(description="The uploader's file name (informational only).")
    actor: str = Field(description="Who uploaded it.")
    created_at: datetime = Field(description="When it was stored (UTC).")


def check(uploads: list[Upload], limits: ReportLimits) -> list[str]:
    """The media type of each upload, or PhotoRejected naming the first bad file and why."""
    photos = [u for u in uploads if u.field == "photos"]
    voices = [u for u in uploads if u.field == "voice"]
    if len(photos) > limits.photos_per_request:
        raise PhotoRejected(f"{len(photos)} photos: at most {limits.photos_per_request} per upload", too_many=True)
    if len(voices) > 1:
        raise PhotoRejected(f"{len(voices)} voice notes: at most one per upload", too_many=True)
    total = sum(len(u.data) for u in uploads)
    if total > limits.request_max_bytes:
        raise PhotoRejected(f"photos total {total} bytes: at most {limits.request_max_bytes}", too_large=True)
    types = []
    for u in uploads:
        if not u.data:
            raise PhotoRejected(f"{u.filename!r} is empty")
        if u.field == "voice":
            types.append(_voice_type(u, limits))
            continue
        if len(u.data) > limits.photo_max_bytes:
            raise PhotoRejected(f"{u.filename!r} is {len(u.data)} bytes: at most {limits.photo_max_bytes}",
                                too_large=True)  # fmt: skip
        media = sniff(u.data)
        if media is None:
            raise PhotoRejected(f"{u.filename!r} is not a JPEG or PNG image")
        if media == "image/jpeg":
            problem = exif_problem(u.data)
            if problem is not None:
                raise PhotoRejected(f"{u.filename!r}: {problem}")
        types.append(media)
    return types


async def check_async(uploads: list[Upload], limits: ReportLimits) -> list[str]:
    """``check`` off the event loop (a voice note is demuxed and partly decoded: tens of ms)."""
    if any(u.field == "voice" for u in uploads):
        return await asyncio.to_thread(check, uploads, limits)
    return check(uploads, limits)


def _voice_type(upload: Upload, limits: ReportLimits) -> str:
    if len(upload.data) > limits.voice_max_bytes:
        raise PhotoRejected(f"voice note {upload.filename!r} is {len(upload.data)} bytes: at most "
                            f"{limits.voice_max_bytes}", too_large=True)  # fmt: skip
    media = sniff_audio(upload.data)
    if media is None:
        raise PhotoRejected(f"voice note {upload.filename!r} is not WebM, Ogg, MP4/M4A or WAV audio")
    problem = audio_problem(upload.data, limits.voice_max_s)
    if problem is not None:
        raise PhotoRejected(f"voice note {upload.filename!r} {problem}")
    return media


# --- EXIF (JPEG APP1): a photo whose EXIF is malformed or says something impossible is refused ------------------
_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8}
_ORIENTATION, _EXIF_IFD, _GPS_IFD = 0x0112, 0x8769, 0x8825
_MAX_ENTRIES = 1000


def exif_problem(data: bytes) -> str | None:
    """What is wrong with a JPEG's EXIF (None: no EXIF, or nothing wrong). Checked: the segment structure up to
    the image data, the TIFF header, every IFD and value offset within the block, the orientation (1-8), and the
    GPS position (within WGS-84 ranges, no zero denominators)."""
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return f"corrupt JPEG: no segment marker at byte {i}"
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD9, 0xDA):  # end of image, start of scan: no more metadata
            return None
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            i += 2
            continue
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if length < 2 or i + 2 + length > len(data):
            return f"corrupt JPEG: segment at byte {i} runs past the end of the file"
        if marker == 0xE1 and data[i + 4 : i + 10] == b"Exif\0\0":
            problem = _tiff_problem(data[i + 10 : i + 2 + length])
            if problem is not None:
                return f"wrong EXIF: {problem}"
        i += 2 + length
    return None


class _Bad(ValueError):
    pass


def _tiff_problem(tiff: bytes) -> str | None:
    try:
        if tiff[:2] == b"II":
            order = "little"
        elif tiff[:2] == b"MM":
            order = "big"
        else:
            return "unknown byte order"
        if len(tiff) < 8 or int.from_bytes(tiff[2:4], order) != 42:  # type: ignore[arg-type]
            return "not a TIFF header"
        ifd0 = _ifd(tiff, int.from_bytes(tiff[4:8], order), order)  # type: ignore[arg-type]
        orientation = ifd0.get(_ORIENTATION)
        if orientation is not None and not (len(orientation) == 1 and 1 <= orientation[0] <= 8):
            return f"orientation {[int(v) for v in orientation]} is not 1-8"
        if _EXIF_IFD in ifd0:
            _ifd(tiff, int(ifd0[_EXIF_IFD][0]), order)
        if _GPS_IFD in ifd0:
            return _gps_problem(_ifd(tiff, int(ifd0[_GPS_IFD][0]), order))
    except _Bad as exc:
        return str(exc)
    return None


def _ifd(tiff: bytes, offset: int, order: str) -> dict[int, list[float]]:
    """The numeric values of one IFD's entries (text and unknown types as their bytes' count only)."""
    if offset < 8 or offset + 2 > len(tiff):
        raise _Bad(f"IFD offset {offset} is outside the EXIF block")
    count = int.from_bytes(tiff[offset : offset + 2], order)  # type: ignore[arg-type]
    if count > _MAX_ENTRIES or offset + 2 + 12 * count > len(tiff):
        raise _Bad(f"IFD at {offset} with {count} entries runs past the EXIF block")
    out: dict[int, list[float]] = {}
    for n in range(count):
        entry = tiff[offset + 2 + 12 * n : offset + 14 + 12 * n]
        tag = int.from_bytes(entry[0:2], order)  # type: ignore[arg-type]
        kind = int.from_bytes(entry[2:4], order)  # type: ignore[arg-type]
        number = int.from_bytes(entry[4:8], order)  # type: ignore[arg-type]
        size = _TYPE_SIZES.get(kind)
        if size is None:
            continue  # a type this check does not read
        total = size * number
        if total <= 4:
            raw = entry[8 : 8 + total]
        else:
            start = int.from_bytes(entry[8:12], order)  # type: ignore[arg-type]
            if start + total > len(tiff):
                raise _Bad(f"tag 0x{tag:04x} points outside the EXIF block")
            raw = tiff[start : start + total]
        out[tag] = _values(raw, kind, size, number, order, tag)
    return out


def _values(raw: bytes, kind: int, size: int, number: int, order: str, tag: int) -> list[float]:
    if kind in (3, 4, 8, 9):
        signed = kind in (8, 9)
        return [float(int.from_bytes(raw[k * size : (k + 1) * size], order, signed=signed))  # type: ignore[arg-type]
                for k in range(number)]  # fmt: skip
    if kind in (5, 10):
        values = []
        for k in range(number):
            num = int.from_bytes(raw[8 * k : 8 * k + 4], order, signed=kind == 10)  # type: ignore[arg-type]
            den = int.from_bytes(raw[8 * k + 4 : 8 * k + 8], order, signed=kind == 10)  # type: ignore[arg-type]
            if den == 0:
                raise _Bad(f"tag 0x{tag:04x} has a zero denominator")
            values.append(num / den)
        return values
    if kind == 2:
        return [float(b) for b in raw]
    return [float(len(raw))]


def _gps_problem(gps: dict[int, list[float]]) -> str | None:
    for ref_tag, value_tag, refs, limit, what in ((1, 2, "NS", 90.0, "latitude"), (3, 4, "EW", 180.0, "longitude")):
        value = gps.get(value_tag)
        if value is None:
            continue
        if len(value) != 3:
            return f"GPS {what} needs degrees, minutes and seconds"
        degrees = value[0] + value[1] / 60 + value[2] / 3600
        if not (0 <= degrees <= limit) or not (0 <= value[1] < 60 and 0 <= value[2] < 60):
            return f"GPS {what} {degrees:.6f} is out of range (at most {limit:g} degrees)"
        ref = gps.get(ref_tag)
        if ref is not None and (not ref or chr(int(ref[0])) not in refs):
            return f"GPS {what} reference is not {' or '.join(refs)}"
    return None


class PhotoStore:
    def __init__(self, db: Database, root: Path, limits: ReportLimits) -> None:
        self.db = db
        self.root = root
        self.limits = limits

    def path(self, photo: Photo) -> Path:
        return self.root / photo.case_id / f"{photo.id}.{EXTENSIONS[photo.media_type]}"

    async def add(self, case_id: str, uploads: list[Upload], actor: str, now: datetime) -> list[Photo]:
        """Check every upload, then store them all (or none, when one is refused)."""
        types = await check_async(uploads, self.limits)
        photos = [
            Photo(id=uuid.uuid4().hex, case_id=case_id, media_type=media, size=len(u.data),
                  sha256=hashlib.sha256(u.data).hexdigest(), filename=_clean_name(u.filename), actor=actor,
                  created_at=now)
            for u, media in zip(uploads, types, strict=True)
        ]  # fmt: skip
        written: list[Path] = []
        try:
            for photo, upload in zip(photos, uploads, strict=True):
                target = self.path(photo)
                await asyncio.to_thread(_write, target, upload.data)
                written.append(target)
            async with self.db.sessions() as session:
                session.add_all(CasePhotoRow(**p.model_dump()) for p in photos)
                await session.commit()
        except BaseException:
            for path in written:
                path.unlink(missing_ok=True)
            raise
        log.info("stored %d photo(s) for case %s", len(photos), case_id)
        return photos

    async def list(self, case_id: str) -> list[Photo]:
        async with self.db.sessions() as session:
            rows = await session.scalars(
                select(CasePhotoRow).where(CasePhotoRow.case_id == case_id).order_by(CasePhotoRow.created_at)
            )
            return [_photo(r) for r in rows]

    async def get(self, case_id: str, photo_id: str) -> Photo | None:
        async with self.db.sessions() as session:
            row = await session.get(CasePhotoRow, photo_id)
        return _photo(row) if row is not None and row.case_id == case_id else None


def _photo(row: CasePhotoRow) -> Photo:
    return Photo(id=row.id, case_id=row.case_id, media_type=row.media_type, size=row.size, sha256=row.sha256,
                 filename=row.filename, actor=row.actor, created_at=row.created_at)  # fmt: skip


def _write(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_suffix(".part")
    part.write_bytes(data)
    part.replace(target)


def _clean_name(name: str) -> str:
    """The base name only, printable, at most 200 characters (it is shown, never used as a path)."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    return "".join(ch for ch in base if ch.isprintable())[:200] or "photo"
