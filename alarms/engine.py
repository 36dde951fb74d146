"""The alarm engine: readings in, deduplicated alarm transitions out (stored atomically in Redis)."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from alarms.rule import RuleSet, Signal
from alarms.store import AlarmStore, Apply, Transition
from alarms.system_rule import with_system_rules
from config.site import SiteConfig
from ingest.reading import Reading
from sharpeye.clock import Clock

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Location:
    """Where a device channel is, for the operator: org unit, readable place, linked cameras."""

    org_unit: str
    place: str
    cameras: tuple[str, ...] = ()


class Locator(Protocol):
    def locate(self, device_id: str, channel: str | None) -> Location: ...

    def in_unit(self, unit_id: str, device_id: str, channel: str | None) -> bool: ...


@dataclass
class EngineStats:
    readings: int = 0
    signals: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)


class AlarmEngine:
    def __init__(self, site: SiteConfig, store: AlarmStore, locator: Locator, clock: Clock) -> None:
        self.site = site
        self.store = store
        self.locator = locator
        self.clock = clock
        self.rules = RuleSet(with_system_rules(list(site.rules)), locator.in_unit)
        self.stats = EngineStats()

    def _apply(self, signal: Signal) -> Apply:
        rule, reading = signal.rule, signal.reading
        where = self.locator.locate(reading.device_id, reading.channel)
        cameras = list(where.cameras) if rule.linkage.zone_cameras else []
        cameras += [c for c in rule.linkage.cameras if c not in cameras]
        quiet = rule.clear.quiet_s if rule.clear.mode == "quiet" else None
        doc = {
            "fingerprint": signal.fingerprint,
            "rule_id": rule.id,
            "device_id": reading.device_id,
            "channel": reading.channel,
            "title": rule.name,
            "severity": rule.severity.value,
            "category": rule.category,
            "site": self.site.site.id,
            "org_unit": where.org_unit,
            "place": where.place,
            "cameras": cameras,
            "quiet_s": quiet,
        }
        return Apply(
            fingerprint=signal.fingerprint,
            action=signal.action,
            order=reading.order_key(),
            ts_epoch=reading.ts.timestamp(),
            doc=doc,
            actor=f"rule:{rule.id}",
            value=reading.value,
            evidence=reading.evidence,
            quiet_s=quiet,
        )

    async def process(self, readings: Sequence[Reading]) -> list[Transition]:
        """Evaluate a batch of readings and apply their signals in order, in one Redis round trip."""
        applies: list[Apply] = []
        for reading in readings:
            for signal in self.rules.evaluate(reading):
                applies.append(self._apply(signal))
        self.stats.readings += len(readings)
        self.stats.signals += len(applies)
        if not applies:
            return []
        transitions = await self.store.apply_many(applies, self.clock.now())
        self.stats.outcomes.update(t.outcome for t in transitions)
        for transition, item in zip(transitions, applies, strict=True):
            if transition.outcome in ("raised", "cleared"):
                log.info("alarm %s %s (%s)", transition.outcome, transition.alarm_id, item.fingerprint)
        return transitions

    async def run_timers(self, interval: float = 1.0) -> None:
        """Clear alarms whose quiet period has passed, forever (cancel to stop)."""
        while True:
            try:
                await self.sweep()
            except Exception:
                log.warning("quiet-period sweep failed; retrying", exc_info=True)
            await asyncio.sleep(interval)

    async def sweep(self) -> list[Transition]:
        transitions = await self.store.sweep_quiet(self.clock.now())
        self.stats.outcomes.update(t.outcome for t in transitions if t.outcome == "cleared")
        return transitions
