"""Users and bearer tokens, kept in Redis. Passwords are hashed with argon2; tokens are stored hashed."""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import hmac
import secrets
import string
from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from typing import Literal

import orjson
import redis.asyncio as aioredis
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerifyMismatchError
from pydantic import BaseModel, Field

from sharpeye.keys import Keys
from sharpeye.role import Role

_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash("timing-equaliser")


class User(BaseModel):
    username: str = Field(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")
    role: Role
    org_unit: str | None = Field(default=None, description="Scope: this unit and everything below (None: all).")
    department: str | None = Field(default=None, description="A department handler's department.")
    password_hash: str
    disabled: bool = False
    must_change_password: bool = False


class Principal(BaseModel):
    """Who is calling: carried by a token."""

    username: str
    role: Role
    org_unit: str | None = None
    department: str | None = None
    must_change_password: bool = False

    @property
    def actor(self) -> str:
        return f"user:{self.username}"


TokenKind = Literal["login", "session", "api"]


class TokenRecord(Principal):
    """What Redis keeps behind a token's digest: the principal, which token this is, and (for a cookie session)
    the digest of its CSRF token."""

    id: str = ""
    kind: TokenKind = "login"
    csrf_hash: str | None = None

    def principal(self) -> Principal:
        return Principal.model_validate(self.model_dump(include=set(Principal.model_fields)))


class TokenInfo(BaseModel):
    """A session or API token as its owner sees it (never the token itself)."""

    id: str = Field(description="Token id, for revoking it.")
    kind: TokenKind = Field(description="login (bearer from /api/auth/token), session (console cookie) or api.")
    name: str = Field(default="", description="Name given to an API token.")
    created_at: datetime
    expires_at: datetime


class IndexEntry(BaseModel):
    digest: str
    info: TokenInfo


MAX_FAILURES = 5
PRUNE_ABOVE = 64  # index entries per user before expired ones are pruned at the next sign-in
FAILURE_WINDOW_S = 900


class Throttled(Exception):
    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"too many failed logins; retry in {retry_after_s}s")
        self.retry_after_s = retry_after_s


class WeakPassword(ValueError):
    pass


def check_password_strength(password: str, username: str) -> None:
    if len(password) < 10:
        raise WeakPassword("a password needs at least 10 characters")
    if password.lower() == username.lower() or len(set(password)) < 5:
        raise WeakPassword("a password must not be the user name or a few repeated characters")


def generate_password(length: int = 20) -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


# A token's record and its user's, in one round trip (every API call looks its caller up).
_LOOKUP = """
local raw = redis.call('GET', KEYS[1])
if not raw then return false end
local ok, record = pcall(cjson.decode, raw)
if not ok or type(record) ~= 'table' or type(record.username) ~= 'string' then return {raw, false} end
return {raw, redis.call('HGET', KEYS[2], record.username)}
"""


class UserStore:
    def __init__(self, redis: aioredis.Redis, keys: Keys, token_ttl_s: int) -> None:
        self.redis = redis
        self.keys = keys
        self.token_ttl_s = token_ttl_s
        self._lookup = redis.register_script(_LOOKUP)

    async def get(self, username: str) -> User | None:
        raw = await self.redis.hget(self.keys.users, username)
        return User.model_validate_json(raw) if raw else None

    async def get_many(self, usernames: Collection[str]) -> builtins.list[User]:
        """The users of these names that exist (one round trip)."""
        names = builtins.list(usernames)
        if not names:
            return []
        return [User.model_validate_json(raw) for raw in await self.redis.hmget(self.keys.users, names) if raw]

    async def list(self) -> list[User]:
        raw = await self.redis.hgetall(self.keys.users)
        return sorted((User.model_validate_json(v) for v in raw.values()), key=lambda u: u.username)

    async def add(
        self,
        username: str,
        password: str,
        role: Role,
        org_unit: str | None = None,
        must_change_password: bool = False,
        department: str | None = None,
    ) -> User:
        user = User(
            username=username,
            role=role,
            org_unit=org_unit,
            department=department,
            password_hash=_hasher.hash(password),
            must_change_password=must_change_password,
        )
        created = await self.redis.hsetnx(self.keys.users, username, user.model_dump_json())
        if not created:
            raise ValueError(f"user {username!r} exists")
        return user

    async def ensure_admin(self, password: str | None) -> str | None:
        """Create the first admin if there is none. Returns the generated password, if one was generated."""
        if await self.redis.hexists(self.keys.users, "admin"):
            return None
        generated = None if password else generate_password()
        try:
            await self.add("admin", password or generated or "", Role.admin, None, must_change_password=bool(generated))
        except ValueError:
            return None  # another node created it first
        return generated

    async def check_throttle(self, username: str, origin: str) -> None:
        """Raise ``Throttled`` after ``MAX_FAILURES`` failed logins for this name from this origin."""
        key = self.keys.login_failures(f"{username}|{origin}")
        failures = int(await self.redis.get(key) or 0)
        if failures >= MAX_FAILURES:
            raise Throttled(max(int(await self.redis.ttl(key)), 1))

    async def record_failure(self, username: str, origin: str) -> None:
        key = self.keys.login_failures(f"{username}|{origin}")
        pipe = self.redis.pipeline(transaction=True)
        pipe.incr(key)
        pipe.expire(key, FAILURE_WINDOW_S)
        await pipe.execute()

    async def clear_failures(self, username: str, origin: str) -> None:
        await self.redis.delete(self.keys.login_failures(f"{username}|{origin}"))

    async def login(self, username: str, password: str, origin: str) -> User | None:
        """Authenticate with throttling: the caller gets ``Throttled`` while locked out."""
        await self.check_throttle(username, origin)
        user = await self.authenticate(username, password)
        if user is None:
            await self.record_failure(username, origin)
        else:
            await self.clear_failures(username, origin)
        return user

    async def set_password(self, username: str, password: str) -> None:
        user = await self.get(username)
        if user is None:
            raise KeyError(username)
        check_password_strength(password, username)
        updated = user.model_copy(update={"password_hash": _hasher.hash(password), "must_change_password": False})
        await self.redis.hset(self.keys.users, username, updated.model_dump_json())

    async def set_disabled(self, username: str, disabled: bool) -> User:
        user = await self.get(username)
        if user is None:
            raise KeyError(username)
        updated = user.model_copy(update={"disabled": disabled})
        await self.redis.hset(self.keys.users, username, updated.model_dump_json())
        return updated

    async def authenticate(self, username: str, password: str) -> User | None:
        user = await self.get(username)
        if user is None or user.disabled:
            # Spend the same time as a real check, so timing does not reveal which usernames exist.
            with contextlib.suppress(VerifyMismatchError, InvalidHashError):
                _hasher.verify(_DUMMY_HASH, password)
            return None
        try:
            _hasher.verify(user.password_hash, password)
        except (VerifyMismatchError, InvalidHashError):
            return None
        return user

    @staticmethod
    def _digest(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    async def issue_token(self, user: User) -> str:
        """A login token (bearer), valid for the store's token lifetime."""
        token, _ = await self._issue(user, "login", "", self.token_ttl_s)
        return token

    async def issue_session(self, user: User) -> tuple[str, str]:
        """A console session for a cookie: returns (session token, CSRF token). Unsafe requests made with the
        cookie must carry the CSRF token in the ``X-CSRF-Token`` header."""
        csrf = secrets.token_urlsafe(24)
        token, _ = await self._issue(user, "session", "", self.token_ttl_s, csrf=csrf)
        return token, csrf

    async def issue_api_token(self, user: User, name: str, ttl_s: int) -> tuple[str, TokenInfo]:
        """A named API token for scripts, valid for ``ttl_s`` seconds unless revoked first."""
        return await self._issue(user, "api", name, ttl_s)

    async def _issue(
        self, user: User, kind: TokenKind, name: str, ttl_s: int, csrf: str | None = None
    ) -> tuple[str, TokenInfo]:
        token = secrets.token_urlsafe(32)
        now = datetime.now(UTC)
        info = TokenInfo(
            id=secrets.token_hex(8), kind=kind, name=name, created_at=now, expires_at=now + timedelta(seconds=ttl_s)
        )
        record = TokenRecord(
            username=user.username,
            role=user.role,
            org_unit=user.org_unit,
            department=user.department,
            id=info.id,
            kind=kind,
            csrf_hash=self._digest(csrf) if csrf else None,
        )
        digest = self._digest(token)
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(self.keys.token(digest), record.model_dump_json(), ex=ttl_s)
        pipe.hset(self.keys.user_tokens(user.username), info.id, IndexEntry(digest=digest, info=info).model_dump_json())
        pipe.hlen(self.keys.user_tokens(user.username))
        *_, indexed = await pipe.execute()
        if int(indexed) > PRUNE_ABOVE:  # a client that logs in again and again: drop the expired entries
            await self.tokens(user.username)
        return token, info

    async def lookup(self, token: str) -> TokenRecord | None:
        """The live record behind ``token`` (None when unknown, expired, revoked, or the user is disabled)."""
        found = await self._lookup(keys=[self.keys.token(self._digest(token)), self.keys.users])
        if not found:
            return None
        record = TokenRecord.model_validate(orjson.loads(found[0]))
        user = User.model_validate_json(found[1]) if found[1] else None
        if user is None or user.disabled:
            return None
        return record.model_copy(update={"must_change_password": user.must_change_password})

    async def principal(self, token: str) -> Principal | None:
        record = await self.lookup(token)
        return None if record is None else record.principal()

    @staticmethod
    def csrf_matches(record: TokenRecord, csrf: str | None) -> bool:
        if record.csrf_hash is None or not csrf:
            return False
        return hmac.compare_digest(record.csrf_hash, UserStore._digest(csrf))

    async def revoke(self, token: str) -> None:
        digest = self._digest(token)
        raw = await self.redis.get(self.keys.token(digest))
        await self.redis.delete(self.keys.token(digest))
        if raw is not None:
            record = TokenRecord.model_validate(orjson.loads(raw))
            await self.redis.hdel(self.keys.user_tokens(record.username), record.id)

    async def tokens(self, username: str) -> builtins.list[TokenInfo]:
        """The user's live sessions and API tokens, oldest first (entries whose token expired are dropped)."""
        raw = await self.redis.hgetall(self.keys.user_tokens(username))
        live: builtins.list[TokenInfo] = []
        gone: builtins.list[bytes] = []
        for token_id, value in raw.items():
            entry = IndexEntry.model_validate_json(value)
            if await self.redis.exists(self.keys.token(entry.digest)):
                live.append(entry.info)
            else:
                gone.append(token_id)
        if gone:
            await self.redis.hdel(self.keys.user_tokens(username), *gone)
        return sorted(live, key=lambda info: info.created_at)

    async def revoke_id(self, username: str, token_id: str) -> bool:
        """Revoke one of the user's tokens by id; False when there is no such live token."""
        value = await self.redis.hget(self.keys.user_tokens(username), token_id)
        if value is None:
            return False
        entry = IndexEntry.model_validate_json(value)
        removed = await self.redis.delete(self.keys.token(entry.digest))
        await self.redis.hdel(self.keys.user_tokens(username), token_id)
        return bool(removed)

    async def revoke_all(self, username: str) -> int:
        """Revoke every session and token of the user (when they are disabled). Returns how many were live."""
        raw = await self.redis.hgetall(self.keys.user_tokens(username))
        digests = [IndexEntry.model_validate_json(v).digest for v in raw.values()]
        removed = await self.redis.delete(*(self.keys.token(d) for d in digests)) if digests else 0
        await self.redis.delete(self.keys.user_tokens(username))
        return int(removed)
