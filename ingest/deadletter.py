"""Dead letters: rejected input kept (bounded) in a Redis stream for inspection, with its reason."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis

from sharpeye.keys import Keys

MAXLEN = 10_000
KEEP_BYTES = 2048


@dataclass(frozen=True, slots=True)
class DeadLetter:
    source: str  # "mqtt", "sip", "api", ...
    origin: str  # topic, peer address...
    device_id: str
    kind: str
    reason: str
    detail: str
    payload: bytes
    received: datetime

    def fields(self) -> dict[str, str]:
        body = self.payload[:KEEP_BYTES]
        return {
            "source": self.source,
            "origin": self.origin,
            "device": self.device_id,
            "kind": self.kind,
            "reason": self.reason,
            "detail": self.detail[:500],
            "size": str(len(self.payload)),
            "payload_b64": base64.b64encode(body).decode(),
            "received": self.received.isoformat(),
        }


def add_many(pipe: Any, keys: Keys, letters: list[DeadLetter]) -> None:
    """Queue XADDs for ``letters`` on a pipeline (the caller executes it with the rest of its batch)."""
    for letter in letters:
        pipe.xadd(keys.deadletters, letter.fields(), maxlen=MAXLEN, approximate=True)


async def recent(
    redis: aioredis.Redis, keys: Keys, count: int = 100, device: str | None = None
) -> list[dict[str, Any]]:
    """Newest first; optionally one device's only (scans at most 10x ``count`` entries)."""
    out: list[dict[str, Any]] = []
    entries = await redis.xrevrange(keys.deadletters, count=count * (10 if device else 1))
    for entry_id, raw in entries:
        fields = {k.decode(): v.decode() for k, v in raw.items()}
        if device and fields.get("device") != device:
            continue
        payload = base64.b64decode(fields.pop("payload_b64", ""))
        fields["payload_preview"] = payload[:200].decode("utf-8", errors="replace")
        fields["id"] = entry_id.decode()
        out.append(fields)
        if len(out) >= count:
            break
    return out
