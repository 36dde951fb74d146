"""The alarm engine: readings in, deduplicated alarm transitions out (stored atomically in Redis)."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from sharpeye.alarms.alarm import fingerprint
from sharpeye.alarms.rule import RuleSet, Signal
from sharpeye.alarms.silence import SilenceStore, alarm_fields
from sharpeye.alarms.store import AlarmStore, Apply, Transition
from sharpeye.alarms.system_rule import with_system_rules
from sharpeye.config.rule import AbsenceCondition, CountCondition, Rule
from sharpeye.config.site import SiteConfig
from sharpeye.ingest.location import Location
from sharpeye.ingest.reading import Reading

from sharpeye.clock import Clock
from sharpeye.redis_connection import log_retry

log = logging.getLogger(__name__)


class Locator(Protocol):
    def locate(self, device_id: str, channel: str | None) -> Location: ...

    def in_unit(self, unit_id: str, device_id: str, channel: str | None) -> bool: ...


_STATIC_CACHE = 100_000


@dataclass(frozen=True, slots=True)
class _Static:
    rule: Rule
    where: Location
    doc: dict[str, object]
    fields: dict[str, object]
    actor: str
    quiet_s: float | None
    count_n: int
    count_window_s: float
    absent_s: float
    inhibitors: tuple[str, ...]
    incident_group: str


@dataclass
class EngineStats:
    readings: int = 0
    signals: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)


class AlarmEngine:
    def __init__(
        self,
        site: SiteConfig,
        store: AlarmStore,
        locator: Locator,
        clock: Clock,
        silences: SilenceStore | None = None,
    ) -> None:
        self.site = site
        self.store = store
        self.locator = locator
        self.clock = clock
        self.silences = silences or SilenceStore(store.redis, store.keys)
        rules = with_system_rules(list(site.rules))
        self.rules = RuleSet(rules, locator.in_unit)
        self._inhibited_by: dict[str, list[str]] = {}
        for rule in rules:
            for target in rule.inhibits:
                self._inhibited_by.setdefault(target, []).append(rule.id)
        self.stats = EngineStats()
        self._statics: dict[tuple[str, str, str | None], _Static] = {}

    def doc(self, rule: Rule, device_id: str, channel: str | None) -> dict[str, object]:
        where = self.locator.locate(device_id, channel)
        cameras = list(where.cameras) if rule.linkage.zone_cameras else []
        cameras += [c for c in rule.linkage.cameras if c not in cameras]
        return {
            "fingerprint": fingerprint(rule.id, device_id, channel),
            "rule_id": rule.id,
            "device_id": device_id,
            "channel": channel,
            "title": rule.name,
            "severity": rule.severity.value,
            "category": rule.category,
            "site": self.site.site.id,
            "org_unit": where.org_unit,
            "place": where.place,
            "cameras": cameras,
            "quiet_s": rule.clear.quiet_s if rule.clear.mode == "quiet" else None,
        }

    def _static(self, rule: Rule, device_id: str, channel: str | None) -> _Static:
        """The parts of a signal's item that depend only on rule, device channel and where it is (cached:
        this runs for every signal; a device whose place changes gets a different ``Location``, which renews it)."""
        where = self.locator.locate(device_id, channel)
        key = (rule.id, device_id, channel)
        found = self._statics.get(key)
        if found is not None and found.rule is rule and found.where == where:
            return found
        if len(self._statics) >= _STATIC_CACHE:
            self._statics.clear()
        doc = self.doc(rule, device_id, channel)
        cond = rule.condition
        window = self.site.alarms.correlation_window_s
        found = self._statics[key] = _Static(
            rule=rule,
            where=where,
            doc=doc,
            fields=alarm_fields(doc),
            actor=f"rule:{rule.id}",
            quiet_s=rule.clear.quiet_s if rule.clear.mode == "quiet" else None,
            count_n=cond.count if isinstance(cond, CountCondition) else 0,
            count_window_s=cond.window_s if isinstance(cond, CountCondition) else 0,
            absent_s=cond.absent_s if isinstance(cond, AbsenceCondition) else 0,
            inhibitors=tuple(fingerprint(r, device_id, None) for r in self._inhibited_by.get(rule.id, ())),
            incident_group=f"{self.site.site.id}|{doc['org_unit']}" if rule.correlate and window > 0 else "",
        )
        return found

    def _apply(self, signal: Signal) -> Apply:
        rule, reading = signal.rule, signal.reading
        static = self._static(rule, reading.device_id, reading.channel)
        silence = None
        if signal.action != "clear" and self.silences.cache:
            silence = self.silences.matching(static.fields, self.clock.now())
        return Apply(
            fingerprint=signal.fingerprint,
            action=signal.action,
            order=reading.order_key(),
            ts_epoch=reading.ts.timestamp(),
            doc=static.doc,
            actor=static.actor,
            value=reading.value,
            evidence=reading.evidence,
            quiet_s=static.quiet_s,
            hold_s=rule.hold_s,
            count_n=static.count_n,
            count_window_s=static.count_window_s,
            absent_s=static.absent_s,
            flap_n=rule.flapping.transitions,
            flap_window_s=rule.flapping.window_s,
            silenced="silence" if silence is not None else "",
            inhibitors=static.inhibitors,
            incident_group=static.incident_group,
            incident_window_s=self.site.alarms.correlation_window_s,
            rank=rule.severity.rank,
        )

    async def process(self, readings: Sequence[Reading], fence: tuple[str, str] | None = None) -> list[Transition]:
        """Evaluate a batch of readings and apply their signals in order, in one Redis round trip (only while
        ``fence``, the lease this node holds for their source, still holds: see ``AlarmStore.apply_many``)."""
        applies = [self._apply(signal) for reading in readings for signal in self.rules.evaluate(reading)]
        self.stats.readings += len(readings)
        self.stats.signals += len(applies)
        if not applies:
            return []
        transitions = await self.store.apply_many(applies, self.clock.now(), fence)
        self.stats.outcomes.update(t.outcome for t in transitions)
        for transition, item in zip(transitions, applies, strict=True):
            if transition.outcome in ("raised", "cleared", "flapping"):
                log.info("alarm %s %s (%s)", transition.outcome, transition.alarm_id, item.fingerprint)
        return transitions

    async def sweep(self) -> list[Transition]:
        """Fire due timers (quiet periods, hold durations, absences, flapping ends) and end silences."""
        now = self.clock.now()
        transitions = await self.store.fire_timers(await self.store.due_timers(now), now)
        await self.silences.refresh()
        for alarm_id in await self.store.silenced_ids():
            alarm = await self.store.get(alarm_id)
            if alarm is None:
                continue
            if self.silences.matching(alarm_fields(alarm.model_dump(mode="json")), now) is None:
                rule = self.rules.rules.get(alarm.rule_id)
                window = self.site.alarms.correlation_window_s
                group = f"{alarm.site}|{alarm.org_unit}" if rule is not None and rule.correlate and window else ""
                extra = {"incident_group": group, "incident_window": window, "severity": alarm.severity.value,
                         "rank": alarm.severity.rank, "site": alarm.site, "org_unit": alarm.org_unit}  # fmt: skip
                transitions.append(await self.store.act(alarm_id, "unsilence", "silence-ended", now, extra=extra))
        self.stats.outcomes.update(t.outcome for t in transitions)
        return transitions

    async def run_timers(self, interval: float = 1.0) -> None:
        """Sweep forever (cancel to stop)."""
        while True:
            try:
                await self.sweep()
            except Exception as exc:
                log_retry(log, "alarm timer sweep", exc)
            await asyncio.sleep(interval)
