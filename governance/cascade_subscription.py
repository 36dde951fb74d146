"""What an upper platform's SUBSCRIBE asks for: the event, the subscribed DeviceID and the query's conditions.

GB/T 28181-2016 defines the body of a SUBSCRIBE as the query of its event: ``Query/Catalog``, ``Query/Alarm``
(A.2.4.5: ``StartAlarmPriority``/``EndAlarmPriority`` 0 = any, 1 highest to 4; ``AlarmMethod`` 0 = any, or a
combination of method digits such as ``25``; ``AlarmType`` the type within the method; ``StartAlarmTime``/
``EndAlarmTime`` local times) and
``Query/MobilePosition`` (``Interval`` in seconds, default 5). ``subscription_query`` validates such a body and
raises ``SubscribeError`` naming what is wrong (the SUBSCRIBE is answered 400 with it and counted).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sharpeye.ingest.gb28181.driver import local_time
from sharpeye.ingest.gb28181.manscdp import Manscdp

EVENTS = {"catalog": "Catalog", "alarm": "Alarm", "mobileposition": "MobilePosition"}
DEFAULT_INTERVAL_S = 5
MAX_INTERVAL_S = 3600


class SubscribeError(ValueError):
    """A SUBSCRIBE that cannot be carried out: ``reason`` is short and groupable (a metric label)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class AlarmFilter:
    """The conditions of an Alarm subscription; an empty filter lets every alarm through."""

    start_priority: int = 0
    end_priority: int = 0
    methods: frozenset[int] = frozenset()
    start: datetime | None = None
    end: datetime | None = None
    alarm_type: int | None = None

    def matches(self, priority: int, method: int, when: datetime, alarm_type: int | None = None) -> bool:
        if self.start_priority and priority < self.start_priority:
            return False
        if self.end_priority and priority > self.end_priority:
            return False
        if self.methods and method not in self.methods:
            return False
        if self.alarm_type is not None and alarm_type != self.alarm_type:
            return False
        if self.start is not None and when < self.start:
            return False
        return self.end is None or when <= self.end


@dataclass(frozen=True, slots=True)
class SubscriptionQuery:
    """A validated SUBSCRIBE: its event, the DeviceID subscribed, its SN and the event's conditions."""

    event: str
    target: str
    sn: int = 0
    alarms: AlarmFilter = field(default_factory=AlarmFilter)
    interval_s: int = DEFAULT_INTERVAL_S


def event_of(header: str) -> str:
    """The canonical event name of an ``Event`` header (``Catalog;id=1`` gives ``Catalog``), or ``""``."""
    return EVENTS.get(header.split(";")[0].strip().lower(), "")


def _priority(body: Manscdp, name: str, tag: str) -> int:
    text = body.fields.get(name, "").strip()
    if not text:
        return 0
    if not text.isdigit() or int(text) > 4:
        raise SubscribeError("bad_priority", f"{tag} {text[:20]!r} is not 0-4")
    return int(text)


def _alarm_filter(body: Manscdp, zone: str) -> AlarmFilter:
    start_priority = _priority(body, "startalarmpriority", "StartAlarmPriority")
    end_priority = _priority(body, "endalarmpriority", "EndAlarmPriority")
    if start_priority and end_priority and start_priority > end_priority:
        raise SubscribeError("bad_priority", f"StartAlarmPriority {start_priority} > EndAlarmPriority {end_priority}")
    method_text = body.fields.get("alarmmethod", "").strip()
    if method_text and (not method_text.isdigit() or any(d not in "01234567" for d in method_text)):
        raise SubscribeError("bad_method", f"AlarmMethod {method_text[:20]!r} is not a combination of 0-7")
    methods = frozenset(int(d) for d in method_text if d != "0") if "0" not in method_text else frozenset()
    type_text = body.fields.get("alarmtype", "").strip()
    if type_text and (not type_text.isdigit() or len(type_text) > 3):
        raise SubscribeError("bad_type", f"AlarmType {type_text[:20]!r} is not a type number")
    bounds: list[datetime | None] = []
    for name, tag in (("startalarmtime", "StartAlarmTime"), ("endalarmtime", "EndAlarmTime")):
        text = body.fields.get(name, "").strip()
        when = local_time(text, zone) if text else None
        if text and when is None:
            raise SubscribeError("bad_time", f"{tag} {text[:40]!r} is not yyyy-MM-ddTHH:mm:ss")
        bounds.append(when)
    start, end = bounds
    if start is not None and end is not None and start > end:
        raise SubscribeError("bad_time", "StartAlarmTime is after EndAlarmTime")
    return AlarmFilter(start_priority, end_priority, methods, start, end, int(type_text) if type_text else None)


def subscription_query(event: str, body: Manscdp | None, own_id: str, zone: str) -> SubscriptionQuery:
    """The SUBSCRIBE's query (``body`` None: an empty body, everything of SharpEye with the defaults)."""
    if body is None:
        return SubscriptionQuery(event, own_id)
    if body.root != "query":
        raise SubscribeError("bad_root", f"<{body.root}> where a <Query> is expected")
    if body.cmd_type.lower() != event.lower():
        raise SubscribeError("cmdtype_mismatch", f"CmdType {body.cmd_type[:40]!r} in a SUBSCRIBE for {event}")
    target = body.device_id
    if not target.isdigit() or len(target) != 20:
        raise SubscribeError("bad_deviceid", f"DeviceID {target[:40]!r} is not a 20-digit code")
    if event == "Alarm":
        return SubscriptionQuery(event, target, body.sn, alarms=_alarm_filter(body, zone))
    if event == "MobilePosition":
        text = body.fields.get("interval", "").strip()
        if not text:
            return SubscriptionQuery(event, target, body.sn)
        if not text.isdigit() or not 1 <= int(text) <= MAX_INTERVAL_S:
            raise SubscribeError("bad_interval", f"Interval {text[:20]!r} is not 1-{MAX_INTERVAL_S} seconds")
        return SubscriptionQuery(event, target, body.sn, interval_s=int(text))
    return SubscriptionQuery(event, target, body.sn)
