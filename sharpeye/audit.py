"""The audit log: an append-only Redis stream of who did what, to what, and when."""

from __future__ import annotations

from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import orjson
import redis.asyncio as aioredis

from sharpeye.keys import Keys

MAXLEN = 1_000_000

# Where the current request came from, set once it is authenticated (api.deps): entries recorded while handling
# it say "from where" without every route passing it along.
REQUEST_ORIGIN: ContextVar[str] = ContextVar("audit_request_origin", default="")


def entry(
    actor: str, action: str, target: str, details: dict[str, Any] | None = None, origin: str = ""
) -> dict[str, str]:
    """The fields of one audit entry (``record`` appends it; a caller with a pipeline of its own may add it there,
    ``XADD keys.audit`` with ``maxlen=MAXLEN, approximate=True``). ``origin`` defaults to the address of the request
    being handled."""
    return {
        "at": datetime.now(UTC).isoformat(),
        "actor": actor,
        "action": action,
        "target": target,
        "origin": origin or REQUEST_ORIGIN.get(),
        "details": orjson.dumps(details or {}).decode(),
    }


async def record(
    redis: aioredis.Redis,
    keys: Keys,
    actor: str,
    action: str,
    target: str,
    details: dict[str, Any] | None = None,
    origin: str = "",
) -> str:
    """Append one entry; returns its stream id. ``origin`` defaults to the address of the request being handled."""
    fields = entry(actor, action, target, details, origin)
    entry_id = await redis.xadd(keys.audit, fields, maxlen=MAXLEN, approximate=True)
    return str(entry_id.decode() if isinstance(entry_id, bytes) else entry_id)


async def entries(redis: aioredis.Redis, keys: Keys, count: int = 100) -> list[dict[str, Any]]:
    out = []
    for entry_id, raw in await redis.xrevrange(keys.audit, count=count):
        fields = {k.decode(): v.decode() for k, v in raw.items()}
        fields["details"] = orjson.loads(fields.get("details", "{}"))
        fields["id"] = entry_id.decode()
        out.append(fields)
    return out
