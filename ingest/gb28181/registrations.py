"""GB/T 28181 registrations kept in Redis, so they outlive the node that took them.

The node holding the site's SIP signalling (``ingest/ownership.py``, role ``gb28181``) records every accepted
REGISTER here (device, transport, address, Contact, expiry, when, which node) and removes it on an
un-REGISTER or when it lapses. A node that takes the role over (the holder died or was replaced) restores the
registrations that have not expired: the devices' next keepalives are answered 200 instead of 403, so they
need not register again, and their catalogs are asked for at once. Every other node reads them for the API
(``Hub.device_statuses``).

Only UDP registrations are restored: a TCP device's connection ended with the node that held it, and it
connects and registers again by itself.

The SIP server calls ``registered``/``unregistered`` from its request handler (synchronous, in the event
loop); the writes are queued and made by ``run`` (latest state per device wins), so a slow Redis never holds
up SIP answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from datetime import UTC, datetime

import msgspec
import redis.asyncio as aioredis
from sharpeye.ingest.transport.sip.endpoint import Peer

from sharpeye.keys import Keys

log = logging.getLogger(__name__)


class Registration(msgspec.Struct, kw_only=True):
    """One device's registration as the signalling node accepted it."""

    device_id: str
    transport: str
    host: str
    port: int
    contact: str = ""
    expires_at: float  # epoch seconds
    registered_at: float
    node: str = ""

    @property
    def peer(self) -> Peer:
        return Peer(self.transport, self.host, self.port)  # type: ignore[arg-type]

    def view(self) -> dict[str, object]:
        """As the API shows a device's GB/T 28181 details."""
        return {"registered": True, "transport": self.transport, "address": f"{self.host}:{self.port}",
                "contact": self.contact, "registered_at": datetime.fromtimestamp(self.registered_at, UTC),
                "expires_at": datetime.fromtimestamp(self.expires_at, UTC), "signalling_node": self.node}  # fmt: skip


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(Registration).decode


class RegistrationStore:
    def __init__(self, redis: aioredis.Redis, keys: Keys, node_id: str) -> None:
        self.redis = redis
        self.key = keys.gb_registrations
        self.node_id = node_id
        self._pending: dict[str, Registration | None] = {}
        self._dirty = asyncio.Event()
        self.written = 0
        self.failures = 0

    # --- from the SIP server (synchronous) -------------------------------------------------------------
    def registered(
        self, device_id: str, peer: Peer, contact: str, expires_at: datetime, registered_at: datetime
    ) -> None:
        self._pending[device_id] = Registration(
            device_id=device_id, transport=peer.transport, host=peer.host, port=peer.port, contact=contact,
            expires_at=expires_at.timestamp(), registered_at=registered_at.timestamp(), node=self.node_id,
        )  # fmt: skip
        self._dirty.set()

    def unregistered(self, device_id: str) -> None:
        self._pending[device_id] = None
        self._dirty.set()

    # --- Redis ---------------------------------------------------------------------------------------
    async def flush(self) -> int:
        """Write what is queued; returns how many devices were written."""
        pending, self._pending = self._pending, {}
        if not pending:
            return 0
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for device_id, registration in pending.items():
                    if registration is None:
                        pipe.hdel(self.key, device_id)
                    else:
                        pipe.hset(self.key, device_id, _encode(registration))
                await pipe.execute()
        except BaseException:
            self.failures += 1
            self._pending = {**pending, **self._pending}  # newer news queued meanwhile wins
            raise
        self.written += len(pending)
        return len(pending)

    async def run(self) -> None:
        """Write queued changes as they come, until cancelled (what is queued then is written first)."""
        try:
            while True:
                await self._dirty.wait()
                self._dirty.clear()
                try:
                    await self.flush()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning("GB/T 28181 registrations: writing to Redis failed (%s); retrying", exc)
                    self._dirty.set()
                    await asyncio.sleep(1)
        finally:
            if self._pending:  # stopping: what is queued still goes (the next holder restores it)
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(2):
                        await self.flush()

    async def load(self, now: float | None = None) -> list[Registration]:
        """Every registration that has not expired (expired ones are removed)."""
        now = time.time() if now is None else now
        raw = await self.redis.hgetall(self.key)
        alive: list[Registration] = []
        stale: list[str] = []
        for device_id, value in raw.items():
            try:
                registration = _decode(value)
            except (msgspec.ValidationError, msgspec.DecodeError):
                log.warning("GB/T 28181 registration of %s is not valid; dropped", device_id.decode())
                stale.append(device_id.decode())
                continue
            if registration.expires_at <= now:
                stale.append(registration.device_id)
            else:
                alive.append(registration)
        if stale:
            await self.redis.hdel(self.key, *stale)
        return sorted(alive, key=lambda r: r.device_id)

    @staticmethod
    def restorable(registrations: Iterable[Registration]) -> list[Registration]:
        """Those a new signalling node can take over (UDP: the device's address still reaches it)."""
        return [r for r in registrations if r.transport == "udp"]
