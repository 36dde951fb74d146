"""Prometheus view of GB/T 28181 media, read at scrape time from the platform, puller and cascade counters."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sharpeye.ingest.gb28181.platform import GbPlatform
from sharpeye.ingest.gb28181.puller import ChannelPuller

PREFIXES = ("invite.", "media.", "bye.", "rtp.", "ps.")


class GbMediaCollector(Collector):
    """``sharpeye_gb_media_sessions``, ``sharpeye_gb_media_events_total{side,event}`` (INVITE outcomes, closes and
    their reasons, RTP packets dropped by reason, PS bytes skipped...), ``sharpeye_gb_rtp_lost_total`` and the
    INVITE-to-first-frame time of the last pulls."""

    def __init__(
        self, platform: GbPlatform, puller: ChannelPuller, cascade_stats: Callable[[], tuple[int, Counter[str]]]
    ) -> None:
        self._platform = platform
        self._puller = puller
        self._cascade = cascade_stats

    def collect(self) -> Iterator[Any]:
        sessions = GaugeMetricFamily("sharpeye_gb_media_sessions", "GB/T 28181 media sessions open", labels=["side"])
        sessions.add_metric(["pulled"], len(self._platform.sessions))
        upstreams, upper_stats = self._cascade()
        sessions.add_metric(["upper"], upstreams)
        yield sessions
        events = CounterMetricFamily(
            "sharpeye_gb_media_events", "GB/T 28181 media events by side and event", labels=["side", "event"]
        )
        totals = self._platform.media_totals()
        for key, value in sorted(totals.items()):
            if key.startswith(PREFIXES):
                events.add_metric(["platform", key], value)
        for key, value in sorted(self._puller.stats.items()):
            events.add_metric(["puller", key], value)
        for key, value in sorted(upper_stats.items()):
            if key.startswith(("invite.", "upstream.", "bye")):
                events.add_metric(["upper", key], value)
        yield events
        lost = CounterMetricFamily("sharpeye_gb_rtp_lost", "RTP packets lost (sequence gaps) on pulled channels")
        lost.add_metric([], totals.get("rtp.lost", 0))
        yield lost
        first = GaugeMetricFamily(
            "sharpeye_gb_first_frame_seconds",
            "INVITE to first key frame of recent pulls (quantile)",
            labels=["quantile"],
        )
        times = list(self._puller.first_frame_s)
        if times:
            first.add_metric(["0.5"], statistics.median(times))
            first.add_metric(["0.95"], sorted(times)[min(len(times) - 1, int(len(times) * 0.95))])
        yield first
