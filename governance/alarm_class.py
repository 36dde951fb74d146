"""How a SharpEye alarm is classified in GB/T 28181 terms (AlarmMethod and AlarmType, GB/T 28181-2016 A.2.x).

AlarmMethod: 1 phone, 2 device, 3 SMS, 4 GPS, 5 video, 6 device fault, 7 other.
AlarmType with method 2: none = alarm-input device alarm, 1 video loss, 2 tamper, 3 disk full, 4 device high
temperature, 5 device low temperature. With method 5: 1 manual, 2 motion, 3 left object, 4 object removed,
5 tripwire, 6 intrusion, 7 wrong-way, 8 loitering, 9 flow counting, 10 density, 11 video abnormal,
12 fast moving. With method 6: 1 disk fault, 2 fan fault. See docs/gb28181.md for the table and reasons.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sharpeye.alarms.alarm import Alarm


@dataclass(frozen=True, slots=True)
class AlarmClass:
    method: int
    type: int | None


# First match wins: (pattern over "category rule_id", class). Video-specific words come before the
# generic "intrusion" so that a camera's intrusion is a video alarm and a fence's a device alarm, and
# faults come before "fence" so that a fence controller's power loss is a fault, not an intrusion.
RULES: tuple[tuple[str, AlarmClass], ...] = (
    (r"video[_.\- ]?loss|signal[_.\- ]?loss|no[_.\- ]?frames", AlarmClass(2, 1)),
    (r"tamper", AlarmClass(2, 2)),
    (r"disk[_.\- ]?full", AlarmClass(2, 3)),
    (r"tripwire|line[_.\- ]?cross", AlarmClass(5, 5)),
    (r"loiter", AlarmClass(5, 8)),
    (r"left[_.\- ]?object|abandon", AlarmClass(5, 3)),
    (r"object[_.\- ]?removed|removal", AlarmClass(5, 4)),
    (r"wrong[_.\- ]?way|retrograde", AlarmClass(5, 7)),
    (r"crowd|density", AlarmClass(5, 10)),
    (r"fast[_.\- ]?mov|running", AlarmClass(5, 12)),
    (r"motion", AlarmClass(5, 2)),
    (r"(video|camera|zone)[_.\- ]?intrusion|intrusion[_.\- ]?(video|camera)|^video", AlarmClass(5, 6)),
    (r"disk|storage", AlarmClass(6, 1)),
    (r"(?<![a-z])fan(?![a-z])", AlarmClass(6, 2)),
    (r"fault|offline|power|battery|comm[_.\- ]?fail|communication", AlarmClass(6, None)),
    (r"fence|perimeter|intrusion|wire[_.\- ]?cut|short[_.\- ]?circuit", AlarmClass(2, None)),
    (r"fire|thermal|temperature|overheat|hot[_.\- ]?spot", AlarmClass(2, 4)),
    (r"cold|freez|low[_.\- ]?temp", AlarmClass(2, 5)),
    (r"manual|report|phone|12345", AlarmClass(1, None)),
)
_COMPILED = tuple((re.compile(pattern, re.IGNORECASE), cls) for pattern, cls in RULES)
OTHER = AlarmClass(7, None)


def classify_words(category: str, rule_id: str = "") -> AlarmClass:
    text = f"{category} {rule_id}".strip()
    for pattern, cls in _COMPILED:
        if pattern.search(text):
            return cls
    return OTHER


def classify(alarm: Alarm) -> AlarmClass:
    """AlarmMethod and AlarmType for a SharpEye alarm, from its category and rule id."""
    return classify_words(alarm.category, alarm.rule_id)
