"""A Redis client from a URL: ``redis://`` and ``rediss://`` as redis-py reads them, and ``redis+sentinel://`` for a
master found through Redis Sentinel (docs/deployment.md):

    redis+sentinel://[:password@]sentinel-1:26379,sentinel-2:26379/<master name>[/<db>]

The password, when given, is the data nodes' (the Sentinels are asked without one). After a failover the client
asks the Sentinels again and reconnects to the new master.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import unquote

import redis.asyncio as aioredis
import redis.exceptions as redis_exceptions
from redis.asyncio.sentinel import Sentinel

SENTINEL_SCHEME = "redis+sentinel://"


class RedisUrlError(ValueError):
    pass


def sentinel_parts(url: str) -> tuple[list[tuple[str, int]], str, int, str | None]:
    """(sentinel addresses, master name, database, password) of a ``redis+sentinel://`` URL."""
    rest = url.removeprefix(SENTINEL_SCHEME)
    netloc, _, path = rest.partition("/")
    password: str | None = None
    if "@" in netloc:
        credentials, netloc = netloc.rsplit("@", 1)
        password = unquote(credentials.partition(":")[2]) or None
    hosts: list[tuple[str, int]] = []
    for item in filter(None, netloc.split(",")):
        host, sep, port = item.rpartition(":")
        if not sep:
            host, port = item, "26379"
        if not host or not port.isdigit():
            raise RedisUrlError(f"sentinel address {item!r} is not host:port")
        hosts.append((host, int(port)))
    name, _, db = path.partition("/")
    if not hosts or not name:
        raise RedisUrlError("a Sentinel URL is redis+sentinel://host:26379[,host:26379...]/<master name>[/<db>]")
    if db and not db.isdigit():
        raise RedisUrlError(f"database {db!r} is not a number")
    return hosts, name, int(db or 0), password


def connect(url: str, **options: Any) -> aioredis.Redis:
    """An asyncio Redis client for ``url`` (``options`` go to the connections, e.g. ``health_check_interval``)."""
    if not url.startswith(SENTINEL_SCHEME):
        return aioredis.Redis.from_url(url, **options)
    hosts, name, db, password = sentinel_parts(url)
    sentinel = Sentinel(hosts, socket_timeout=2.0)
    client: aioredis.Redis = sentinel.master_for(name, db=db, password=password, **options)
    return client


REDIS_AWAY = (redis_exceptions.ConnectionError, redis_exceptions.TimeoutError, redis_exceptions.BusyLoadingError)


def log_retry(logger: logging.Logger, what: str, exc: BaseException) -> None:
    """Log a background loop's failure before it retries: one line when Redis is away (restarting, loading,
    unreachable: an expected, transient state health already shows), the traceback for anything else."""
    if isinstance(exc, REDIS_AWAY):
        logger.warning("%s waits for Redis (%s); retrying", what, exc)
    else:
        logger.warning("%s failed; retrying", what, exc_info=exc)


def stop_if_cancelled() -> None:
    """Raise ``CancelledError`` in a background loop whose task was asked to stop. Call it after each Redis call
    of a loop that runs until cancelled: on Python 3.11 a cancellation that lands as a reply arrives can be
    swallowed inside the client (``asyncio.wait_for`` returns the finished call's result and drops the cancel,
    CPython gh-86296, which redis-py uses on every command), and the loop would then run on for ever, with whoever
    cancelled it waiting on it."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
