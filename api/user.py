"""Users and bearer tokens, kept in Redis. Passwords are hashed with argon2; tokens are stored hashed."""

from __future__ import annotations

import contextlib
import hashlib
import secrets
import string

import orjson
import redis.asyncio as aioredis
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerifyMismatchError
from pydantic import BaseModel, Field

from api.permission import Role
from sharpeye.keys import Keys

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


MAX_FAILURES = 5
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


class UserStore:
    def __init__(self, redis: aioredis.Redis, keys: Keys, token_ttl_s: int) -> None:
        self.redis = redis
        self.keys = keys
        self.token_ttl_s = token_ttl_s

    async def get(self, username: str) -> User | None:
        raw = await self.redis.hget(self.keys.users, username)
        return User.model_validate_json(raw) if raw else None

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
        token = secrets.token_urlsafe(32)
        principal = Principal(
            username=user.username, role=user.role, org_unit=user.org_unit, department=user.department
        )
        await self.redis.set(self.keys.token(self._digest(token)), principal.model_dump_json(), ex=self.token_ttl_s)
        return token

    async def principal(self, token: str) -> Principal | None:
        raw = await self.redis.get(self.keys.token(self._digest(token)))
        if raw is None:
            return None
        principal = Principal.model_validate(orjson.loads(raw))
        user = await self.get(principal.username)
        if user is None or user.disabled:
            return None
        return principal.model_copy(update={"must_change_password": user.must_change_password})

    async def revoke(self, token: str) -> None:
        await self.redis.delete(self.keys.token(self._digest(token)))
