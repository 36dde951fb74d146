"""Photos attached to cases (a report's evidence): checked by their bytes, stored under the data dir.

Only JPEG and PNG are kept, recognised by their magic bytes (the declared content type and the file name
are not trusted); each photo and each upload have a size cap (``config.governance.ReportLimits``). The
bytes go to ``<root>/<case id>/<photo id>.<ext>`` (written to a temporary name and renamed, so a reader
never sees half a file) and a ``case_photos`` row records them.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, Field
from sharpeye.config.governance import ReportLimits
from sharpeye.governance.store import CasePhotoRow, Database
from sqlalchemy import select

log = logging.getLogger(__name__)

_SIGNATURES: tuple[tuple[bytes, str, str], ...] = (
    (b"\xff\xd8\xff", "image/jpeg", "jpg"),
    (b"\x89PNG\r\n\x1a\n", "image/png", "png"),
)
EXTENSIONS = {media: ext for _, media, ext in _SIGNATURES}


def sniff(data: bytes) -> str | None:
    """The media type by magic bytes: image/jpeg, image/png, or None for anything else."""
    for magic, media, _ in _SIGNATURES:
        if data.startswith(magic):
            return media
    return None


class PhotoRejected(ValueError):
    """An upload refused, with the reason (the whole upload is refused: nothing is stored)."""

    def __init__(self, reason: str, *, too_large: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.too_large = too_large


@dataclass(frozen=True, slots=True)
class Upload:
    filename: str
    data: bytes


class Photo(BaseModel):
    id: str = Field(description="Photo id.")
    case_id: str = Field(description="The case it belongs to.")
    media_type: str = Field(description="image/jpeg or image/png, from the bytes.")
    size: int = Field(description="Bytes.")
    sha256: str = Field(description="SHA-256 of the bytes, hex.")
    filename: str = Field(description="The uploader's file name (informational only).")
    actor: str = Field(description="Who uploaded it.")
    created_at: datetime = Field(description="When it was stored (UTC).")


def check(uploads: list[Upload], limits: ReportLimits) -> list[str]:
    """The media type of each upload, or PhotoRejected naming the first bad file and why."""
    if len(uploads) > limits.photos_per_request:
        raise PhotoRejected(f"{len(uploads)} photos: at most {limits.photos_per_request} per upload")
    total = sum(len(u.data) for u in uploads)
    if total > limits.request_max_bytes:
        raise PhotoRejected(f"photos total {total} bytes: at most {limits.request_max_bytes}", too_large=True)
    types = []
    for u in uploads:
        if not u.data:
            raise PhotoRejected(f"{u.filename!r} is empty")
        if len(u.data) > limits.photo_max_bytes:
            raise PhotoRejected(f"{u.filename!r} is {len(u.data)} bytes: at most {limits.photo_max_bytes}",
                                too_large=True)  # fmt: skip
        media = sniff(u.data)
        if media is None:
            raise PhotoRejected(f"{u.filename!r} is not a JPEG or PNG image")
        types.append(media)
    return types


class PhotoStore:
    def __init__(self, db: Database, root: Path, limits: ReportLimits) -> None:
        self.db = db
        self.root = root
        self.limits = limits

    def path(self, photo: Photo) -> Path:
        return self.root / photo.case_id / f"{photo.id}.{EXTENSIONS[photo.media_type]}"

    async def add(self, case_id: str, uploads: list[Upload], actor: str, now: datetime) -> list[Photo]:
        """Check every upload, then store them all (or none, when one is refused)."""
        types = check(uploads, self.limits)
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
