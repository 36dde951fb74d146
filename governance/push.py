"""Web Push (RFC 8030/8291/8292): notifications to operators' browsers, as one more notification channel.

The hub holds one VAPID key pair (P-256) for the whole site, kept in Redis so that every node signs with the key the
browsers subscribed against (``key``); browsers subscribe through the console (``api/static/sw.js``) and their
subscriptions are kept per user (``subscribe``, ``unsubscribe``), also from the field app's phones
(``api/static/field/sw.js``). A ``webpush`` uplink sends each event to the subscriptions of the users (or
``role:<role>``) in its ``to``, and with ``task:assignees`` to the people whose task the event's case is (the
handlers and grid workers of its lead and co-handling departments, within their units: new tasks reach the phones).
The JSON payload is encrypted for each browser (aes128gcm, ``http_ece``) and the request signed with a VAPID JWT
(``py_vapid``). A push service answering 404 or
410 has forgotten the subscription: it is removed. Other failures (5xx, 429, network) fail the attempt, which the
uplink queue retries; browsers already reached for that delivery are not sent it again.

Only people who may still be told are pushed to: before each send the node's ``readers`` (the user accounts) say
which subscribers are enabled and whose role may still subscribe (``push:subscribe``), with their current role
(which ``role:<role>`` recipients match). The subscriptions of a disabled user, or of one whose role lost the
right, are removed then, and at once when an administrator disables the user (``drop_user``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import logging
import os
from collections.abc import Awaitable, Callable, Collection, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import http_ece
import httpx
import orjson
import redis.asyncio as aioredis
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from prometheus_client import CollectorRegistry, Counter
from py_vapid import Vapid02
from pydantic import BaseModel, Field, field_validator

from sharpeye.keys import Keys

log = logging.getLogger(__name__)

MAX_PER_USER = 10  # browsers one user may subscribe (a new one beyond pushes out the oldest)
SENT_KEPT_S = 2 * 86_400  # how long the browsers reached for one delivery are remembered (for its retries)
TTL_S = 3600  # how long a push service keeps an undelivered notification
DEFAULT_CONTACT = "mailto:sharpeye@localhost.localdomain"
ASSIGNEES = "task:assignees"  # recipient: the people whose task the case is
# Given user names: those who may still be pushed to (enabled, their role may subscribe), with their current role.
Readers = Callable[[Collection[str]], Awaitable[dict[str, str]]]


class PushError(ValueError):
    """A subscription that cannot be used (the message says what is wrong)."""


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class PushKeys(BaseModel):
    p256dh: str = Field(max_length=200, description="The browser's P-256 public key (base64url, uncompressed point).")
    auth: str = Field(max_length=100, description="The browser's 16-byte authentication secret (base64url).")

    @field_validator("p256dh")
    @classmethod
    def _point(cls, value: str) -> str:
        try:
            raw = b64url_decode(value)
            ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
        except (binascii.Error, ValueError) as exc:
            raise ValueError("keys.p256dh is not a base64url P-256 public key (65-byte uncompressed point)") from exc
        if len(raw) != 65:
            raise ValueError("keys.p256dh must be a 65-byte uncompressed P-256 point")
        return value

    @field_validator("auth")
    @classmethod
    def _secret(cls, value: str) -> str:
        try:
            raw = b64url_decode(value)
        except (binascii.Error, ValueError) as exc:
            raise ValueError("keys.auth is not base64url") from exc
        if len(raw) != 16:
            raise ValueError(f"keys.auth must be 16 bytes, got {len(raw)}")
        return value


class PushSubscriptionIn(BaseModel):
    """What a browser's ``PushSubscription.toJSON()`` gives."""

    endpoint: str = Field(min_length=10, max_length=1000, description="The push service URL of this browser.")
    keys: PushKeys
    expirationTime: float | None = Field(default=None, description="Ignored (browsers renew subscriptions).")


class PushSubscription(BaseModel):
    """One browser of one user, as kept."""

    id: str = Field(description="SHA-256 of the endpoint (hex, 32 characters).")
    username: str
    role: str = Field(description="The user's role when the browser subscribed (for role:<role> recipients).")
    endpoint: str
    p256dh: str
    auth: str
    created_at: datetime
    user_agent: str = ""
    departments: list[str] = Field(default_factory=list, description="Departments whose cases are the user's tasks.")
    org_unit: str | None = Field(default=None, description="The user's unit (None: the whole site).")


def subscription_id(endpoint: str) -> str:
    return hashlib.sha256(endpoint.encode()).hexdigest()[:32]


def check_endpoint(endpoint: str, allow_http: bool) -> None:
    """Push services are HTTPS; plain http only where the deployment allows it (a test's local receiver)."""
    parts = urlsplit(endpoint)
    if parts.scheme != "https" and not (allow_http and parts.scheme == "http"):
        raise PushError("endpoint must be an https:// push service URL")
    if not parts.hostname:
        raise PushError("endpoint has no host")
    if parts.username or parts.password:
        raise PushError("endpoint must not carry credentials")


def origin(endpoint: str) -> str:
    parts = urlsplit(endpoint)
    default = {"https": 443, "http": 80}[parts.scheme]
    port = f":{parts.port}" if parts.port and parts.port != default else ""
    return f"{parts.scheme}://{parts.hostname}{port}"


def encrypt(payload: bytes, p256dh: str, auth: str) -> bytes:
    """RFC 8291: the payload for one browser (aes128gcm, a fresh sender key and salt each time)."""
    sender = ec.generate_private_key(ec.SECP256R1())
    body: bytes = http_ece.encrypt(payload, salt=os.urandom(16), private_key=sender, dh=b64url_decode(p256dh),
                                   auth_secret=b64url_decode(auth), version="aes128gcm")  # fmt: skip
    return body


class PushService:
    """The site's VAPID key, its users' browser subscriptions (Redis, shared by the nodes) and sending."""

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        *,
        contact: str = DEFAULT_CONTACT,
        allow_http: bool = False,
        registry: CollectorRegistry | None = None,
        units_below: Callable[[str], set[str]] | None = None,
        readers: Readers | None = None,
    ) -> None:
        self.redis = redis
        self.units_below = units_below or (lambda unit: {unit})
        self.readers = readers  # None: every subscriber (a node without user accounts, the unit tests)
        self.prefix = keys.prefix
        self.contact = contact
        self.allow_http = allow_http
        self._vapid: Vapid02 | None = None
        self._lock = asyncio.Lock()
        registry = registry if registry is not None else CollectorRegistry()  # the hub's; a private one otherwise
        self.sent = Counter("sharpeye_push_sent_total", "Web Push messages accepted by push services",
                            registry=registry)  # fmt: skip
        self.failed = Counter("sharpeye_push_failed_total", "Web Push attempts that failed (retried by the uplink)",
                              registry=registry)  # fmt: skip
        self.expired = Counter("sharpeye_push_gone_total", "Subscriptions removed: the push service answered 404/410",
                               registry=registry)  # fmt: skip
        self.dropped = Counter("sharpeye_push_dropped_total",
                               "Subscriptions removed: the user was disabled or their role no longer reads cases",
                               registry=registry)  # fmt: skip
        self.refused = Counter("sharpeye_push_subscriptions_refused_total", "Invalid subscriptions refused",
                               registry=registry)  # fmt: skip

    # --- keys ---------------------------------------------------------------------------------------
    @property
    def _key_name(self) -> str:
        return f"{self.prefix}:push:vapid"

    @property
    def _subs_name(self) -> str:
        return f"{self.prefix}:push:subscriptions"

    def _sent_name(self, uplink_id: str, delivery: str) -> str:
        return f"{self.prefix}:push:sent:{uplink_id}:{delivery}"

    async def vapid(self) -> Vapid02:
        """The site's VAPID key: made at first use and kept in Redis (SET NX: the first node's key wins)."""
        if self._vapid is not None:
            return self._vapid
        async with self._lock:
            if self._vapid is None:
                pem = await self.redis.get(self._key_name)
                if pem is None:
                    fresh = ec.generate_private_key(ec.SECP256R1())
                    made = fresh.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption())  # fmt: skip
                    await self.redis.set(self._key_name, made, nx=True)
                    pem = await self.redis.get(self._key_name)
                    log.info("web push: VAPID key %s", "made" if pem == made else "made by another node")
                key = serialization.load_pem_private_key(pem, password=None)
                if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
                    raise PushError(f"{self._key_name} holds no P-256 private key")
                vapid = Vapid02()
                vapid.private_key = key
                self._vapid = vapid
        return self._vapid

    async def public_key(self) -> str:
        """The application server key browsers subscribe with (base64url, uncompressed point)."""
        vapid = await self.vapid()
        raw = vapid.public_key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        return b64url(raw)

    # --- subscriptions ------------------------------------------------------------------------------
    async def subscribe(
        self,
        username: str,
        role: str,
        body: PushSubscriptionIn,
        user_agent: str = "",
        now: datetime | None = None,
        *,
        departments: frozenset[str] = frozenset(),
        org_unit: str | None = None,
    ) -> PushSubscription:
        try:
            check_endpoint(body.endpoint, self.allow_http)
        except PushError:
            self.refused.inc()
            raise
        sub = PushSubscription(
            id=subscription_id(body.endpoint), username=username, role=role, endpoint=body.endpoint,
            p256dh=body.keys.p256dh, auth=body.keys.auth, created_at=now or datetime.now(UTC),
            user_agent=user_agent[:300], departments=sorted(departments), org_unit=org_unit,
        )  # fmt: skip
        await self.redis.hset(self._subs_name, sub.id, sub.model_dump_json())
        mine = sorted(await self.of_user(username), key=lambda s: s.created_at)
        for old in mine[:-MAX_PER_USER]:
            await self.redis.hdel(self._subs_name, old.id)
        return sub

    async def unsubscribe(self, username: str, endpoint: str) -> bool:
        """Remove the user's subscription of ``endpoint``; False if the user has none there."""
        sid = subscription_id(endpoint)
        raw = await self.redis.hget(self._subs_name, sid)
        if raw is None or PushSubscription.model_validate_json(raw).username != username:
            return False
        return bool(await self.redis.hdel(self._subs_name, sid))

    async def all(self) -> list[PushSubscription]:
        out = []
        for sid, raw in (await self.redis.hgetall(self._subs_name)).items():
            try:
                out.append(PushSubscription.model_validate_json(raw))
            except ValueError:
                log.error("web push: subscription %r is unreadable; removed", sid)
                await self.redis.hdel(self._subs_name, sid)
        return out

    async def of_user(self, username: str) -> list[PushSubscription]:
        return [s for s in await self.all() if s.username == username]

    async def drop_user(self, username: str) -> int:
        """Remove every subscription of the user (disabled); returns how many there were."""
        subs = await self.of_user(username)
        if subs:
            await self.redis.hdel(self._subs_name, *(s.id for s in subs))
            self.dropped.inc(len(subs))
            log.info("web push: %d subscriptions of %s removed (user disabled)", len(subs), username)
        return len(subs)

    async def current(self) -> list[PushSubscription]:
        """Every subscription of a user who may still be pushed to, with the user's current role; the others' are
        removed."""
        subs = await self.all()
        if self.readers is None or not subs:
            return subs
        allowed = await self.readers({s.username for s in subs})
        gone = [s for s in subs if s.username not in allowed]
        if gone:
            await self.redis.hdel(self._subs_name, *(s.id for s in gone))
            self.dropped.inc(len(gone))
            log.info("web push: subscriptions of %s removed: disabled, or their role no longer reads cases",
                     "、".join(sorted({s.username for s in gone})))  # fmt: skip
        return [s.model_copy(update={"role": allowed[s.username]}) for s in subs if s.username in allowed]

    async def recipients(self, to: list[str], case: Mapping[str, Any] | None = None) -> list[PushSubscription]:
        """The subscriptions of the users named in ``to``, of the roles given as ``role:<role>`` (the users' current
        roles), and with ``task:assignees`` of the users whose task ``case`` is; only of users who may still be
        pushed to."""
        names = {t for t in to if ":" not in t}
        roles = {t.removeprefix("role:") for t in to if t.startswith("role:")}
        assigned = self._assignee(case) if ASSIGNEES in to and case else None
        return [s for s in await self.current()
                if s.username in names or s.role in roles or (assigned is not None and assigned(s))]  # fmt: skip

    def _assignee(self, case: Mapping[str, Any]) -> Callable[[PushSubscription], bool]:
        """Whether a subscription's user has ``case`` as a task: one of its departments (lead or co-handling) is
        theirs, and its unit is within theirs."""
        departments = {case.get("department")} | {a.get("department") for a in case.get("assists") or []}
        departments.discard(None)
        unit = case.get("org_unit")

        def mine(sub: PushSubscription) -> bool:
            if not departments & set(sub.departments):
                return False
            return sub.org_unit is None or (unit is not None and unit in self.units_below(sub.org_unit))

        return mine

    # --- sending ------------------------------------------------------------------------------------
    async def headers(self, endpoint: str, urgency: str, ttl: int = TTL_S) -> dict[str, str]:
        vapid = await self.vapid()
        claims = {"aud": origin(endpoint), "sub": self.contact, "exp": int(datetime.now(UTC).timestamp()) + 12 * 3600}
        signed: dict[str, str] = vapid.sign(claims)
        return {
            "Authorization": signed["Authorization"],
            "Content-Encoding": "aes128gcm",
            "Content-Type": "application/octet-stream",
            "TTL": str(ttl),
            "Urgency": urgency,
        }

    async def send_one(
        self, client: httpx.AsyncClient, sub: PushSubscription, payload: bytes, urgency: str, timeout_s: float
    ) -> str | None:
        """None: the push service took it (or forgot the subscription, which is then removed); else the error."""
        body = await asyncio.to_thread(encrypt, payload, sub.p256dh, sub.auth)
        try:
            response = await client.post(sub.endpoint, content=body, headers=await self.headers(sub.endpoint, urgency),
                                         timeout=timeout_s)  # fmt: skip
        except httpx.HTTPError as exc:
            self.failed.inc()
            return f"{sub.username}: {type(exc).__name__}: {exc}"[:200]
        if 200 <= response.status_code < 300:
            self.sent.inc()
            return None
        if response.status_code in (404, 410):
            self.expired.inc()
            await self.redis.hdel(self._subs_name, sub.id)
            log.info("web push: %s's subscription %s is gone (HTTP %d); removed", sub.username, sub.id,
                     response.status_code)  # fmt: skip
            return None
        self.failed.inc()
        return f"{sub.username}: HTTP {response.status_code}: {response.text[:100]}"

    async def send(
        self,
        client: httpx.AsyncClient,
        uplink_id: str,
        delivery: str,
        to: list[str],
        payload: dict[str, Any],
        *,
        urgency: str = "normal",
        timeout_s: float = 10.0,
        case: Mapping[str, Any] | None = None,
    ) -> str | None:
        """One delivery to every recipient's browsers not yet reached for it; None when all were reached."""
        sent_key = self._sent_name(uplink_id, delivery)
        done = {x.decode() if isinstance(x, bytes) else str(x) for x in await self.redis.smembers(sent_key)}
        targets = [s for s in await self.recipients(to, case) if s.id not in done]
        if not targets:
            return None
        body = orjson.dumps(payload)
        errors = await asyncio.gather(*(self.send_one(client, s, body, urgency, timeout_s) for s in targets))
        reached = [s.id for s, error in zip(targets, errors, strict=True) if error is None]
        if reached:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.sadd(sent_key, *reached)
                pipe.expire(sent_key, SENT_KEPT_S)
                await pipe.execute()
        failures = [e for e in errors if e is not None]
        return "; ".join(failures)[:300] if failures else None
