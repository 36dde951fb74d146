"""Config of a camera: its stream, and the analytics drawn on its picture.

Every shape is in normalized image coordinates (0..1, origin top left, y down), so a zone survives a change
of resolution. Polygons must lie inside the frame and be simple (no edge crossing another).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from pydantic import Field, field_validator, model_validator
from sharpeye.config.base import Identifier, StrictModel
from sharpeye.config.device import DeviceConfig
from sharpeye.config.gb_code import CameraCode
from sharpeye.config.secret import check_url, expand_url
from sharpeye.ingest.camera import geometry
from sharpeye.ingest.recording.config import RecordConfig

NormPoint = Annotated[
    tuple[Annotated[float, Field(ge=0, le=1)], Annotated[float, Field(ge=0, le=1)]],
    Field(description="Point (x, y) as fractions of the frame width and height; must lie inside the frame."),
]

ObjectClass = Literal["person", "bicycle", "car", "motorcycle", "bus", "truck"]
ObjectFilter = Annotated[
    Literal["any"] | list[ObjectClass],
    Field(
        description="'any' moving object, or the object classes that count (a class name alone is a list of one); "
        "classes need the object detector (`sharpeye models install`)."
    ),
]


def _object_list(value: object) -> object:
    """``objects: person`` is ``objects: [person]``."""
    if isinstance(value, str) and value != "any":
        return [value]
    return value


def needs_detector(objects: object) -> bool:
    """A rule's ``objects`` other than 'any' needs the object detector."""
    return objects != "any"


_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$|^24:00$")


def _check_polygon(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    if len(points) < 3:
        raise ValueError("a polygon needs at least 3 points")
    crossing = geometry.self_intersection(points)
    if crossing is not None:
        i, j = crossing
        raise ValueError(f"polygon is self-intersecting: edge {i}-{i + 1} crosses edge {j}-{(j + 1) % len(points)}")
    if geometry.area(points) < 1e-4:
        raise ValueError("polygon has (almost) no area")
    return points


class ScheduleWindow(StrictModel):
    """A weekly arming window in the site's local time."""

    days: list[Annotated[int, Field(ge=0, le=6)]] = Field(
        default=[0, 1, 2, 3, 4, 5, 6], min_length=1, description="Weekdays, 0 = Monday … 6 = Sunday."
    )
    start: str = Field(default="00:00", description="Start time HH:MM (local).")
    end: str = Field(default="24:00", description="End time HH:MM (local), after start; 24:00 = end of day.")

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        if not _HHMM.match(v):
            raise ValueError(f"{v!r} is not HH:MM")
        return v

    @model_validator(mode="after")
    def _order(self) -> ScheduleWindow:
        if self.end <= self.start:
            raise ValueError(f"end {self.end} must be after start {self.start}")
        return self

    def covers(self, local: datetime) -> bool:
        hhmm = local.strftime("%H:%M")
        return local.weekday() in self.days and self.start <= hhmm < self.end


class Schedule(StrictModel):
    """When a rule is armed: any of its windows, in its time zone."""

    timezone: str = Field(default="Asia/Shanghai", description="IANA time zone of the windows.")
    windows: list[ScheduleWindow] = Field(min_length=1, description="Weekly windows; armed inside any of them.")

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except Exception as exc:
            raise ValueError(f"unknown time zone {v!r}") from exc
        return v

    def armed(self, when: datetime) -> bool:
        local = when.astimezone(ZoneInfo(self.timezone))
        return any(w.covers(local) for w in self.windows)


class ZoneConfig(StrictModel):
    """A polygon on the picture: intrusion when an object's foot point stays inside, loitering when it lingers."""

    id: Identifier = Field(description="Zone id; the reading's channel.")
    name: str = Field(default="", max_length=100, description="Display name.")
    polygon: list[NormPoint] = Field(description="Vertices in order; a simple polygon inside the frame.")
    intrusion: bool = Field(default=True, description="Raise video.intrusion when an object enters.")
    dwell_s: float = Field(default=0.5, ge=0, le=600, description="Seconds inside before intrusion is raised.")
    loitering_s: float | None = Field(
        default=None, gt=0, le=86400, description="Raise video.loitering after this many seconds inside; off if unset."
    )
    min_size: float = Field(default=0.05, ge=0, le=1, description="Minimum object height, fraction of frame height.")
    max_size: float = Field(default=1.0, gt=0, le=1, description="Maximum object height, fraction of frame height.")
    objects: ObjectFilter = "any"
    min_score: float = Field(
        default=0.5, ge=0.05, le=1, description="Detector score an object class needs (with objects other than any)."
    )
    schedule: Schedule | None = Field(default=None, description="Arming schedule; always armed if unset.")

    _objects = field_validator("objects", mode="before")(_object_list)

    @field_validator("polygon")
    @classmethod
    def _polygon(cls, v: list[tuple[float, float]]) -> list[tuple[float, float]]:
        return _check_polygon(v)

    @model_validator(mode="after")
    def _sizes(self) -> ZoneConfig:
        if self.max_size <= self.min_size:
            raise ValueError("max_size must be greater than min_size")
        return self


class TripwireConfig(StrictModel):
    """A line segment from ``a`` to ``b``. Side A is on the right-hand side of a→b as seen on screen.

    For a line drawn left to right, side A is below it and side B above it.
    """

    id: Identifier = Field(description="Line id; the reading's channel.")
    name: str = Field(default="", max_length=100, description="Display name.")
    a: NormPoint = Field(description="First end of the line.")
    b: NormPoint = Field(description="Second end of the line.")
    direction: Literal["a_to_b", "b_to_a", "both"] = Field(
        default="both", description="Which crossings alarm: from side A to side B, B to A, or both."
    )
    min_size: float = Field(default=0.05, ge=0, le=1, description="Minimum object height, fraction of frame height.")
    max_size: float = Field(default=1.0, gt=0, le=1, description="Maximum object height, fraction of frame height.")
    objects: ObjectFilter = "any"
    min_score: float = Field(default=0.5, ge=0.05, le=1, description="As for zones.")
    schedule: Schedule | None = Field(default=None, description="Arming schedule; always armed if unset.")

    _objects = field_validator("objects", mode="before")(_object_list)

    @model_validator(mode="after")
    def _length(self) -> TripwireConfig:
        if abs(self.a[0] - self.b[0]) + abs(self.a[1] - self.b[1]) < 0.01:
            raise ValueError("tripwire ends a and b are (almost) the same point")
        return self


class MaskConfig(StrictModel):
    """A region where motion is ignored (a road outside the fence, a flag, a tree)."""

    id: Identifier = Field(description="Mask id.")
    polygon: list[NormPoint] = Field(description="Vertices of the ignored region; a simple polygon.")

    @field_validator("polygon")
    @classmethod
    def _polygon(cls, v: list[tuple[float, float]]) -> list[tuple[float, float]]:
        return _check_polygon(v)


class DetectionConfig(StrictModel):
    """Background model and tracker."""

    min_area: float = Field(default=0.0006, gt=0, lt=1, description="Smallest moving blob, fraction of the frame area.")
    var_threshold: float = Field(default=25, gt=0, le=500, description="MOG2 variance threshold.")
    history_s: float = Field(default=20, gt=0, le=600, description="Background model memory, seconds.")
    min_travel: float = Field(
        default=0.03,
        ge=0,
        le=1,
        description="An object must have moved this far (fraction of the frame) to count; filters swaying foliage.",
    )
    max_missing_s: float = Field(default=1.0, gt=0, le=30, description="A track not seen for this long ends.")
    motion_scale: int = Field(
        default=2,
        ge=1,
        le=4,
        description="The background model sees the analysed frame shrunk by this factor (its foreground is scaled "
        "back up, so blobs, tracks and rules keep analysis_width): 2 is a quarter of the pixels and about a third "
        "less motion CPU; 1 for objects only a few pixels wide at analysis_width.",
    )


class DetectorConfig(StrictModel):
    """The object detector (NanoDet, COCO classes) run on regions of motion for rules that name object classes."""

    fps: float = Field(default=5, gt=0, le=30, description="At most this many detector passes per second.")
    votes: int = Field(
        default=5, ge=1, le=50, description="Each track's class is the vote of its last this many detector passes."
    )
    padding: float = Field(
        default=0.3, ge=0, le=2, description="Motion regions grow by this fraction of their size before detection."
    )
    max_regions: int = Field(default=3, ge=1, le=16, description="Most regions sent to the detector per pass.")
    region_size: int = Field(
        default=96,
        ge=64,
        le=640,
        multiple_of=32,
        description="Longer side at which the detector sees the padded region of one moving object (a merged "
        "region of several is seen at the same scale, up to input_size). The detector's cost is about proportional "
        "to the pixels it sees: 96 px costs about a tenth of 320, 128 px a fifth.",
    )
    input_size: int = Field(
        default=320,
        ge=128,
        le=640,
        multiple_of=32,
        description="Largest side the detector sees a region at (NanoDet was trained at 416; 320 costs about 60 % "
        "of it).",
    )
    recheck_s: float = Field(
        default=2.0,
        gt=0,
        le=60,
        description="A track whose last two detector votes agree is looked at again after this many seconds (its "
        "rolling vote kept), after three times as long when its box kept its shape since the last look or its "
        "alarms in its class-filtered zones are raised, after five times as long once its last 3 votes name one "
        "class at 0.6 or more; one whose votes disagree after a quarter of it; a new track at the next pass.",
    )
    max_lag_s: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="While the frame being analysed is older than this (the worker is behind), detector passes are "
        "skipped and counted; motion analysis goes on.",
    )
    degraded_skip: float = Field(
        default=0.2,
        ge=0,
        le=1,
        description="Health calls the detector behind when more than this fraction of its due passes were skipped "
        "over the last 30 s.",
    )


class TamperConfig(StrictModel):
    """Lens covered, defocused, or the camera turned away from its reference view."""

    enabled: bool = Field(default=True, description="Check for tamper.")
    learn_s: float = Field(default=2.0, gt=0, le=600, description="Seconds of picture used as the reference.")
    hold_s: float = Field(default=1.5, gt=0, le=600, description="A condition must last this long to alarm.")
    check_fps: float = Field(default=2, gt=0, le=30, description="Tamper checks per second (cheaper than every frame).")
    covered_std: float = Field(default=10, gt=0, le=128, description="Grey-level spread below which it is covered.")
    defocus_ratio: float = Field(
        default=0.3, gt=0, lt=1, description="Sharpness below this fraction of the reference means defocused."
    )
    turned_overlap: float = Field(
        default=0.55, gt=0, lt=1, description="Reference edges still matched below this fraction means turned away."
    )


class EvidenceConfig(StrictModel):
    """Snapshot and clip written for each video alarm."""

    enabled: bool = Field(default=True, description="Write evidence.")
    pre_s: float = Field(default=3, ge=0, le=60, description="Clip seconds before the alarm.")
    post_s: float = Field(default=3, ge=0, le=60, description="Clip seconds after the alarm.")
    share_s: float = Field(
        default=6,
        ge=0,
        le=60,
        description="Alarms of the camera that come while its last clip is still being recorded (within post_s "
        "after that clip's newest alarm) and within this many seconds of the clip's first alarm share that clip, "
        "which then runs to post_s after the newest: a burst of alarms gets one clip, each alarm its own snapshot. "
        "0: a clip per alarm (alarms raised on one picture still share one, as they share their snapshot). The "
        "camera's packet ring holds pre_s + share_s + post_s + 4 seconds.",
    )


class CameraConfig(DeviceConfig):
    """A camera whose stream the hub opens once and analyses at a reduced rate."""

    kind: Literal["camera"] = Field(description="Device kind.")
    url: str = Field(
        min_length=1,
        description="rtsp://, http(s):// or file path of the stream, or 'synthetic:<scene>' for the built-in "
        "generator. A password in it only as ${NAME} (rtsp://admin:${GATE_CAM_PASSWORD}@10.0.0.9/ch1).",
    )
    rtsp_transport: Literal["tcp", "udp"] = Field(default="tcp", description="RTSP transport.")
    gb_code: CameraCode | None = Field(
        default=None,
        description="GB/T 28181 code (20 digits, type 131 or 132) under which the camera is offered to the upper "
        "platform (cascade): listed in its Catalog and playable by its INVITE. Without one the camera is not offered.",
    )
    analysis_fps: float = Field(default=5, gt=0, le=30, description="Frames analysed per second.")
    analysis_width: int = Field(default=320, ge=64, le=1920, description="Width of analysed frames, pixels.")
    loss_after_s: float = Field(default=5, gt=0, le=600, description="No packets for this long raises video.loss.")
    repeat_s: float = Field(default=5, gt=0, le=3600, description="Lasting camera events are repeated this often.")
    zones: list[ZoneConfig] = Field(default=[], description="Intrusion and loitering zones.")
    tripwires: list[TripwireConfig] = Field(default=[], description="Lines with a crossing direction.")
    masks: list[MaskConfig] = Field(default=[], description="Regions where motion is ignored.")
    detection: DetectionConfig = Field(default_factory=DetectionConfig, description="Background model and tracker.")
    detector: DetectorConfig = Field(default_factory=DetectorConfig, description="Object detector on motion.")
    tamper: TamperConfig = Field(default_factory=TamperConfig, description="Tamper detection.")
    evidence: EvidenceConfig = Field(default_factory=EvidenceConfig, description="Snapshot and clip per alarm.")
    record: RecordConfig | None = Field(
        default=None, description="Own recording (segmented MP4, for cameras without an NVR); off if unset."
    )

    @field_validator("url")
    @classmethod
    def _url_secret(cls, url: str) -> str:
        return check_url(url)

    @property
    def open_url(self) -> str:
        """The URL to open: a ``${NAME}`` password replaced by its value (``url`` itself keeps the reference)."""
        return expand_url(self.url)

    @model_validator(mode="after")
    def _unique_channels(self) -> CameraConfig:
        ids = [z.id for z in self.zones] + [t.id for t in self.tripwires]
        dup = {i for i in ids if ids.count(i) > 1}
        if dup:
            raise ValueError(f"zone and tripwire ids must be unique within a camera: {', '.join(sorted(dup))}")
        return self

    @property
    def needs_detector(self) -> bool:
        """Some zone or line names object classes."""
        return any(needs_detector(z.objects) for z in self.zones) or any(
            needs_detector(t.objects) for t in self.tripwires
        )

    def channel_schedule(self, channel: str) -> Schedule | None:
        for z in self.zones:
            if z.id == channel:
                return z.schedule
        for t in self.tripwires:
            if t.id == channel:
                return t.schedule
        return None
