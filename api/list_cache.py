"""The monitoring room's list calls (``GET /api/alarms``, ``GET /api/verifications``) answered from a short-lived
cache while nothing they show can have changed.

Twenty operators ask the same lists over and over (same query, same scope); computing each answer reads and
validates fifty alarms. An answer is kept as the bytes the route produced, keyed by the path, the query string and
the caller's visibility scope (their org unit: both lists filter by nothing else of the caller), and served again
until one of these makes it stale:

- **a change elsewhere**: every alarm change is published on the live alarm channel (``Keys.alarm_live``, the one
  the WebSocket relays: raised, cleared, verdicts, holds, owners, cases opened...), from this node or any other;
  this node follows it and, ``settle_s`` after a message (at once by default), serves no answer computed before it;
- **the caller's own write**: any request of this node that may change something (POST, PUT, PATCH, DELETE) makes
  every answer computed before it stale for its caller before its own answer leaves (read-your-writes), and for
  everyone else as a change elsewhere;
- **age**: no answer is served more than ``max_age_s`` after its computation began, whatever the channel said (a
  message lost while the subscription reconnected, a change that publishes nothing: the org tree reloaded);
- the channel's subscription lost: nothing is served from the cache until it is back (and then nothing older).

Identical requests arriving while an answer is being computed wait for it instead of computing it again, if it began
after everything their caller must see. The caller is authenticated here, as the routes do (bearer token or
session cookie, permission ``alarms:read``); whoever is not (401, 403, a password to change) goes to the route as
before, and the principal found is handed to the route (``PRINCIPAL_SCOPE_KEY``) so it is not looked up twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from fastapi.security.utils import get_authorization_scheme_param
from prometheus_client import Counter
from sharpeye.api.permission import Permission, allowed
from sharpeye.api.user import Principal, UserStore
from starlette.datastructures import Headers
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sharpeye.redis_connection import REDIS_AWAY

log = logging.getLogger(__name__)

CACHED_PATHS = frozenset({"/api/alarms", "/api/verifications"})
PRINCIPAL_SCOPE_KEY = "sharpeye.principal"  # the caller, as found here, for ``deps.current_principal``
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SESSION_COOKIE = "sharpeye_session"  # as ``deps.SESSION_COOKIE`` (deps imports this module's key)
MAX_ENTRIES = 512
MAX_BYTES = 64 * 1024 * 1024  # all answers kept; an answer larger than a quarter of it is not kept
RESUBSCRIBE_S = 1.0

Key = tuple[str, bytes, str | None]


@dataclass(slots=True)
class Entry:
    seq: int  # the change counter when its computation began
    began: float  # monotonic time its computation began
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


class ListCache:
    """Which list answers may still be served (no ASGI here: ``CachedLists`` serves them).

    Changes are counted (``seq``); an answer remembers the count when its computation began. ``floor``: answers
    begun before it are stale for everyone; ``user_floor``: for that user (their own writes)."""

    def __init__(
        self,
        max_age_s: float,
        settle_s: float = 0.0,
        counter: Counter | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_age_s = max_age_s
        self.settle_s = settle_s
        self.counter = counter
        self.clock = clock
        self.seq = 0
        self.floor = 0
        self.user_floor: dict[str, int] = {}
        self.live = False  # following the alarm channel (set by ``follow``)
        self.entries: dict[Key, Entry] = {}
        self.bytes = 0
        self.inflight: dict[Key, tuple[int, asyncio.Future[Entry | None]]] = {}
        self._settling: deque[tuple[float, int]] = deque()  # changes elsewhere not yet applied: (when, seq)

    @property
    def enabled(self) -> bool:
        return self.max_age_s > 0 and self.live

    def count(self, path: str, outcome: str) -> None:
        if self.counter is not None:
            self.counter.labels(path, outcome).inc()

    # --- changes ------------------------------------------------------------------------------------------
    def changed(self) -> int:
        """Something changed elsewhere (a message on the alarm channel): answers begun before now are stale once
        ``settle_s`` has passed. Returns the change's number."""
        self.seq += 1
        if self.settle_s <= 0:
            self.floor = self.seq
        else:
            self._settling.append((self.clock(), self.seq))
        return self.seq

    def wrote(self, username: str | None) -> None:
        """A request of this node that may have changed something has finished: its caller sees nothing older
        from now on (read-your-writes), everyone else as after any change elsewhere."""
        seq = self.changed()
        if username is None:
            self.floor = seq
        else:
            self.user_floor[username] = seq

    def reset(self) -> None:
        """Nothing computed until now is served again (the channel's subscription was lost or is new)."""
        self.seq += 1
        self.floor = self.seq
        self._settling.clear()
        self.entries.clear()
        self.bytes = 0

    def _needed(self, username: str) -> int:
        """The oldest start an answer for ``username`` may have."""
        if self._settling:
            due = self.clock() - self.settle_s
            while self._settling and self._settling[0][0] <= due:
                self.floor = max(self.floor, self._settling.popleft()[1])
        return max(self.floor, self.user_floor.get(username, 0))

    # --- answers ------------------------------------------------------------------------------------------
    def get(self, key: Key, username: str) -> Entry | None:
        entry = self.entries.get(key)
        if entry is None:
            return None
        if entry.seq < self._needed(username) or self.clock() - entry.began > self.max_age_s:
            return None
        return entry

    def joinable(self, key: Key, username: str) -> asyncio.Future[Entry | None] | None:
        """An answer being computed that this caller may wait for (begun after everything they must see)."""
        running = self.inflight.get(key)
        if running is None or running[0] < self._needed(username):
            return None
        return running[1]

    def begin(self, key: Key) -> tuple[int, float, asyncio.Future[Entry | None]]:
        future: asyncio.Future[Entry | None] = asyncio.get_running_loop().create_future()
        self.inflight[key] = (self.seq, future)
        return self.seq, self.clock(), future

    def end(self, key: Key, future: asyncio.Future[Entry | None], entry: Entry | None) -> None:
        """The computation of ``future`` finished with ``entry`` (None: not an answer to keep)."""
        if self.inflight.get(key, (0, None))[1] is future:
            del self.inflight[key]
        if not future.done():
            future.set_result(entry)
        if entry is None or len(entry.body) > MAX_BYTES // 4:
            return
        old = self.entries.get(key)
        if old is not None:
            if old.seq > entry.seq:
                return  # a newer computation finished first
            self.bytes -= len(old.body)
            del self.entries[key]
        while self.entries and (len(self.entries) >= MAX_ENTRIES or self.bytes + len(entry.body) > MAX_BYTES):
            oldest = next(iter(self.entries))
            self.bytes -= len(self.entries.pop(oldest).body)
        self.entries[key] = entry
        self.bytes += len(entry.body)

    # --- the alarm channel --------------------------------------------------------------------------------
    async def follow(self, redis: aioredis.Redis, channel: str) -> None:
        """Follow the alarm channel until cancelled; the cache serves only while subscribed."""
        while True:
            pubsub = redis.pubsub()
            try:
                await pubsub.subscribe(channel)
                async for message in pubsub.listen():
                    kind = message.get("type")
                    if kind == "message":
                        self.changed()
                    elif kind == "subscribe":  # (re)subscribed: what was said meanwhile is unknown
                        self.reset()
                        self.live = True
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if isinstance(exc, REDIS_AWAY):
                    log.warning("list cache off: the alarm channel is unreachable (%s); resubscribing", exc)
                else:
                    log.warning("list cache off: following the alarm channel failed; resubscribing", exc_info=exc)
            finally:
                self.live = False
                self.reset()
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            await asyncio.sleep(RESUBSCRIBE_S)


async def principal_of(users: UserStore, scope: Scope) -> Principal | None:
    """The caller of a GET, exactly as ``deps.current_principal`` finds it (bearer token, else the console's
    session cookie); None when that would refuse the request."""
    headers = Headers(scope=scope)
    scheme, token = get_authorization_scheme_param(headers.get("authorization"))
    if token and scheme.lower() == "bearer":
        record = await users.lookup(token)
        return record.principal() if record is not None else None
    cookie = cookie_parser(headers.get("cookie", "")).get(SESSION_COOKIE)
    if not cookie:
        return None
    record = await users.lookup(cookie)
    return record.principal() if record is not None and record.kind == "session" else None


class CachedLists:
    """ASGI middleware serving the list calls from ``ListCache`` (see the module's docstring). ``running()``: the
    cache and the user store once the app has started (None before)."""

    def __init__(self, app: ASGIApp, running: Callable[[], tuple[ListCache, UserStore] | None]) -> None:
        self.app = app
        self.running = running
        self.routes: dict[str, Any] = {}  # path -> the route the router matched (for the request-time metric)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        running = self.running() if scope["type"] == "http" else None
        if running is None:
            await self.app(scope, receive, send)
            return
        cache, users = running
        if scope["method"] not in SAFE_METHODS:
            await self._write(cache, scope, receive, send)
            return
        path: str = scope["path"]
        if scope["method"] != "GET" or path not in CACHED_PATHS or not cache.enabled:
            await self.app(scope, receive, send)
            return
        try:
            principal = await principal_of(users, scope)
        except Exception:  # Redis away (or anything else): the route answers as it would have (503 ...)
            principal = None
        if principal is None or principal.must_change_password or not allowed(principal.role, Permission.alarms_read):
            cache.count(path, "bypass")
            await self.app(scope, receive, send)
            return
        scope[PRINCIPAL_SCOPE_KEY] = principal
        key: Key = (path, scope["query_string"], principal.org_unit)
        user = principal.username
        entry = cache.get(key, user)
        if entry is not None:
            cache.count(path, "hit")
        elif (pending := cache.joinable(key, user)) is not None and (entry := await asyncio.shield(pending)):
            cache.count(path, "shared")
        if entry is not None:
            scope["route"] = self.routes.get(path)  # labels the request-time metric as the router would
            await send({"type": "http.response.start", "status": entry.status, "headers": list(entry.headers)})
            await send({"type": "http.response.body", "body": entry.body})
            return
        cache.count(path, "miss")
        await self._compute(cache, key, scope, receive, send)

    async def _compute(self, cache: ListCache, key: Key, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the route, answering the caller as it goes and keeping a complete 200 answer."""
        seq, began, future = cache.begin(key)
        status = 0
        headers: list[tuple[bytes, bytes]] = []
        body: list[bytes] = []
        complete = False

        async def keep(message: Message) -> None:
            nonlocal status, headers, complete
            if message["type"] == "http.response.start":
                status, headers = message["status"], list(message.get("headers", ()))
            elif message["type"] == "http.response.body":
                body.append(message.get("body", b""))
                complete = not message.get("more_body", False)
            await send(message)

        entry: Entry | None = None
        try:
            await self.app(scope, receive, keep)
            self.routes[scope["path"]] = scope.get("route")
            if status == 200 and complete:
                entry = Entry(seq, began, status, headers, b"".join(body))
        finally:
            cache.end(key, future, entry)

    async def _write(self, cache: ListCache, scope: Scope, receive: Receive, send: Send) -> None:
        """A request that may change something: its caller's later lists are computed after it (marked before
        its answer leaves, and again once it has finished, whatever happened)."""

        def mark() -> None:
            principal: Any = scope.get(PRINCIPAL_SCOPE_KEY)
            cache.wrote(principal.username if isinstance(principal, Principal) else None)

        async def marked(message: Message) -> None:
            if message["type"] == "http.response.start":
                mark()
            await send(message)

        try:
            await self.app(scope, receive, marked)
        finally:
            mark()
