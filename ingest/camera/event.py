"""``VideoEvent``: what the analytics report for one camera, before it becomes a ``Reading``."""

from __future__ import annotations

import msgspec


class VideoEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One analytics event.

    ``episode`` names one lasting occurrence (one object in one zone, one tamper spell); ``repeat`` counts the
    repetitions of that episode (0 = first). ``t`` is stream time in seconds; ``box`` is (x, y, w, h) normalized.
    """

    kind: str  # video.intrusion, video.tripwire, video.loitering, video.tamper
    value: str
    channel: str | None
    t: float
    episode: str
    repeat: int = 0
    object_id: int | None = None
    box: tuple[float, float, float, float] | None = None
    direction: str | None = None
    dwell_s: float | None = None
    label: str | None = None  # the detector's class of the object, when the rule names classes
    score: float | None = None
