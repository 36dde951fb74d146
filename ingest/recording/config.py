"""``RecordConfig``: a camera's own recording (the ``record:`` block of a camera in the site config)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator
from sharpeye.config.base import StrictModel


class RecordConfig(StrictModel):
    """Segmented MP4 written by remuxing the camera's own packets (no re-encoding): all the time (``continuous``)
    or around its video alarms and the evidence asked of it by linked alarms (``events``). H.264, H.265 and MPEG-4
    part 2 streams are recorded; other codecs (MJPEG, MS-MPEG4) are refused with a recorder error."""

    mode: Literal["continuous", "events"] = Field(
        default="continuous", description="continuous: every packet; events: pre_s before to post_s after each alarm."
    )
    pre_s: float = Field(default=10, ge=0, le=300, description="Events mode: seconds kept before an alarm.")
    post_s: float = Field(default=30, ge=0, le=3600, description="Events mode: seconds recorded after an alarm.")
    segment_s: float = Field(
        default=60, ge=2, le=3600, description="A segment is closed at the first key frame after this many seconds."
    )
    keep_days: float = Field(default=7, gt=0, le=3650, description="Segments older than this are deleted.")
    max_mb: int = Field(
        default=10240, ge=1, le=100_000_000, description="Most disk the camera's segments take; the oldest go first."
    )
    queue_mb: int = Field(
        default=32, ge=1, le=1024, description="Packets waiting for the recorder thread; more are dropped (counted)."
    )

    @model_validator(mode="after")
    def _pre_buffer(self) -> RecordConfig:
        if self.mode == "events" and self.pre_s > self.segment_s * 10:
            raise ValueError(f"pre_s {self.pre_s} is more than ten segments of {self.segment_s} s")
        return self
