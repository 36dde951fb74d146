"""Live alarm changes over WebSocket.

Protocol: the client opens ``/api/ws/alarms`` and sends ``{"token": "<bearer token>"}`` as its first message
within 5 seconds (tokens stay out of URLs and logs); the console sends ``{}`` instead and is known by its
session cookie, accepted only from a page of the hub's own origin. The server answers
``{"type": "hello", "user": ...}`` and then sends one JSON message per alarm change:
``{"type": "raised"|"repeated"|"acknowledged"|"cleared"|"commented"|..., "alarm": "<id>", "at": "...",
"state": "..."}``, and ``{"type": "case_opened", "alarm": "<id>", "case": "<case id>", "at": "..."}`` when a confirmed
alarm's case has been opened (研判). Clients fetch details with ``GET /api/alarms/{id}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import orjson
from fastapi import APIRouter, WebSocket, WebSocketDisconnect, status
from sharpeye.api.deps import SESSION_COOKIE, in_scope
from sharpeye.api.permission import Permission, allowed
from sharpeye.api.services import Services
from sharpeye.api.user import Principal, UserStore

log = logging.getLogger(__name__)

router = APIRouter(tags=["alarms"])

AUTH_TIMEOUT_S = 5.0


async def _cookie_principal(websocket: WebSocket, users: UserStore) -> Principal | None:
    """The console's session, from its cookie, when the page that opened the socket is of this origin."""
    cookie = websocket.cookies.get(SESSION_COOKIE)
    origin = websocket.headers.get("origin", "")
    if not cookie or origin.split("://", 1)[-1] != websocket.headers.get("host", ""):
        return None
    record = await users.lookup(cookie)
    return record.principal() if record is not None and record.kind == "session" else None


@router.websocket("/api/ws/alarms")
async def alarm_stream(websocket: WebSocket) -> None:
    """Permission: alarms:read, checked on the token sent as the first message."""
    await websocket.accept()
    services: Services = websocket.app.state.services
    users = services.users
    try:
        async with asyncio.timeout(AUTH_TIMEOUT_S):
            first = await websocket.receive_text()
        token = orjson.loads(first).get("token", "")
    except (TimeoutError, orjson.JSONDecodeError, AttributeError, WebSocketDisconnect):
        await websocket.close(status.WS_1008_POLICY_VIOLATION, 'send {"token": ...} first')
        return
    principal = await users.principal(str(token)) if token else await _cookie_principal(websocket, users)
    if principal is None or not allowed(principal.role, Permission.alarms_read):
        await websocket.close(status.WS_1008_POLICY_VIOLATION, "not authorised")
        return

    async def visible(data: bytes) -> bool:
        if principal.org_unit is None:
            return True
        alarm = await services.alarms.get(str(orjson.loads(data).get("alarm", "")))
        return alarm is not None and in_scope(services.inventory, principal, alarm.org_unit)

    async def forward(messages: AsyncIterator[bytes]) -> None:
        async for data in messages:
            if await visible(data):
                await websocket.send_text(data.decode())

    async def watch_close() -> None:
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                await websocket.receive_text()

    async with services.alarm_feed.subscribe() as messages:  # subscribed before the hello: no change is missed
        await websocket.send_json({"type": "hello", "user": principal.username})
        tasks = [asyncio.create_task(forward(messages)), asyncio.create_task(watch_close())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            with contextlib.suppress(Exception):
                await websocket.close()
