"""The mapping of SharpEye alarms to GB/T 28181 AlarmMethod/AlarmType documented in docs/gb28181.md."""

from __future__ import annotations

import pytest
from sharpeye.governance.alarm_class import OTHER, AlarmClass, classify_words


@pytest.mark.parametrize(
    ("category", "rule_id", "expected"),
    [
        ("perimeter_intrusion", "fence-intrusion", AlarmClass(2, None)),
        ("perimeter_intrusion", "fence-wire-cut", AlarmClass(2, None)),
        ("device_fault", "fence-tamper", AlarmClass(2, 2)),
        ("device_fault", "fence-power-loss", AlarmClass(6, None)),
        ("fire", "thermal-hot-spot", AlarmClass(2, 4)),
        ("video_intrusion", "zone-a", AlarmClass(5, 6)),
        ("video", "gate-tripwire", AlarmClass(5, 5)),
        ("video", "square-loitering", AlarmClass(5, 8)),
        ("video_loss", "cam-1", AlarmClass(2, 1)),
        ("storage", "nvr-disk", AlarmClass(6, 1)),
        ("report", "12345-hotline", AlarmClass(1, None)),
        ("noise", "night-noise", OTHER),
    ],
)
def test_mapping(category: str, rule_id: str, expected: AlarmClass) -> None:
    assert classify_words(category, rule_id) == expected


def test_words_inside_other_words_do_not_match() -> None:
    assert classify_words("infant_safety", "community-watch") == OTHER
    assert classify_words("device_fault", "nvr-fan") == AlarmClass(6, 2)
