"""Residents' reports without an account (平安E家, "人人都是网格员"): a phone number proven by a one-time code sent
through an SMS uplink (or, when the site names none, an image captcha made here), rate limits per phone number and
per address, and a receipt number to follow the case and rate it after closing.

Codes and captcha answers are kept only as digests, for ``code_ttl_s``, and used once: a wrong answer spends the
challenge, so guessing needs a new challenge per try (and those are rate-limited). Phone numbers in Redis keys are
digests too. A receipt number is 80 random bits (16 base-32 characters): it cannot be guessed, and one not issued
here is refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import random
import re
import secrets
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import orjson
import redis.asyncio as aioredis
from sharpeye.config.governance import ResidentReports, Uplink
from sharpeye.governance.channel import send_sms

from sharpeye.keys import Keys

log = logging.getLogger(__name__)

PHONE = re.compile(r"^1[3-9]\d{9}$")  # a mainland mobile number
RECEIPT = re.compile(r"^[A-Z2-7]{16}$")
CAPTCHA_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I/L
HOUR, DAY = 3600, 86400


class RateLimited(Exception):
    def __init__(self, what: str, retry_after_s: int) -> None:
        super().__init__(f"too many {what}; try again in {retry_after_s} s")
        self.retry_after_s = retry_after_s


class ChallengeFailed(ValueError):
    """The code or captcha answer is wrong, expired or used (the reason says which)."""


class SmsFailed(RuntimeError):
    """The SMS gateway did not take the code."""


@dataclass(frozen=True, slots=True)
class Challenge:
    id: str
    kind: str  # "sms" or "captcha"
    image: str | None  # the captcha as a data: URL (PNG)
    expires_in_s: int


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def mask(phone: str) -> str:
    return f"{phone[:3]}****{phone[-4:]}"


def normal_receipt(text: str) -> str | None:
    """A receipt number as typed (any case, dashes, spaces) in its canonical form, or None when it cannot be one."""
    cleaned = re.sub(r"[\s-]", "", text).upper()
    return cleaned if RECEIPT.match(cleaned) else None


def shown_receipt(receipt: str) -> str:
    return "-".join(receipt[i : i + 4] for i in range(0, len(receipt), 4))


def captcha_image(text: str, rng: random.Random | None = None) -> bytes:
    """A PNG of ``text``: jittered, rotated letters over noise lines (enough against casual scripts)."""
    rng = rng or random.SystemRandom()
    height, width = 60, 36 * len(text) + 24
    image: Any = np.full((height, width, 3), 246, np.uint8)
    for _ in range(6):
        color = tuple(rng.randrange(90, 200) for _ in range(3))
        cv2.line(image, (rng.randrange(width), rng.randrange(height)), (rng.randrange(width), rng.randrange(height)),
                 color, 1, cv2.LINE_AA)  # fmt: skip
    for n, char in enumerate(text):
        color = tuple(rng.randrange(10, 110) for _ in range(3))
        origin = (12 + 36 * n + rng.randrange(-3, 4), 44 + rng.randrange(-6, 7))
        cv2.putText(image, char, origin, cv2.FONT_HERSHEY_SIMPLEX, rng.uniform(1.1, 1.4), color, 3, cv2.LINE_AA)
    shear = np.array([[1, rng.uniform(-0.3, 0.3), 0], [rng.uniform(-0.08, 0.08), 1, 0]], np.float32)
    image = cv2.warpAffine(image, shear, (width, height), borderMode=cv2.BORDER_REPLICATE)
    noise = np.array([rng.randrange(-18, 19) for _ in range(height * width)], np.int16).reshape(height, width, 1)
    image = np.clip(image.astype(np.int16) + noise, 0, 255).astype(np.uint8)
    ok, data = cv2.imencode(".png", image)
    if not ok:  # pragma: no cover - OpenCV encodes any 8-bit image
        raise RuntimeError("captcha could not be encoded")
    return bytes(data.tobytes())


class ResidentStore:
    def __init__(self, redis: aioredis.Redis, keys: Keys, settings: ResidentReports, uplinks: list[Uplink]) -> None:
        self.redis = redis
        self.keys = keys
        self.settings = settings
        self.sms: Uplink | None = next((u for u in uplinks if u.id == settings.sms_uplink), None)

    async def limit(self, what: str, most: int, window_s: int, name: str) -> None:
        """Count one more request of ``what`` in its window; RateLimited beyond ``most``."""
        key = self.keys.resident_limit(what)
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(key, 0, ex=window_s, nx=True)  # the window starts with its first request (INCR keeps the TTL)
        pipe.incr(key)
        _, count = await pipe.execute()
        if int(count) > most:
            raise RateLimited(name, max(int(await self.redis.ttl(key)), 1))

    async def challenge(self, phone: str, address: str) -> Challenge:
        """A one-time code by SMS (when an SMS uplink is named) or a captcha, for proving ``phone``."""
        s = self.settings
        await self.limit(f"challenge-ip:{address}", s.challenges_per_address_per_hour, HOUR, "requests from here")
        await self.limit(f"challenge-phone:{digest(phone)}", s.challenges_per_phone_per_hour, HOUR,
                         "codes for this number")  # fmt: skip
        challenge_id = secrets.token_urlsafe(18)
        if self.sms is not None:
            answer = f"{secrets.randbelow(10**6):06d}"
            image = None
        else:
            answer = "".join(secrets.choice(CAPTCHA_ALPHABET) for _ in range(5))
            image = "data:image/png;base64," + base64.b64encode(captcha_image(answer)).decode()
        record = {"phone": digest(phone), "answer": digest(answer)}
        await self.redis.set(self.keys.resident_challenge(challenge_id), orjson.dumps(record), ex=s.code_ttl_s)
        if self.sms is not None:
            minutes = max(1, s.code_ttl_s // 60)
            text = f"【SharpEye】您的验证码是 {answer}，{minutes} 分钟内有效，仅用于群众上报。"
            attempt = await send_sms(self.sms, phone, text, challenge_id)
            if not attempt.ok:
                await self.redis.delete(self.keys.resident_challenge(challenge_id))
                log.warning("resident code to %s not sent: %s", mask(phone), attempt.error)
                raise SmsFailed(attempt.error)
            return Challenge(challenge_id, "sms", None, s.code_ttl_s)
        return Challenge(challenge_id, "captcha", image, s.code_ttl_s)

    async def verify(self, challenge_id: str, phone: str, answer: str) -> None:
        """Spend the challenge: ChallengeFailed unless it is live, for this phone, and answered right."""
        raw = await self.redis.getdel(self.keys.resident_challenge(challenge_id))
        if raw is None:
            raise ChallengeFailed("the code has expired or was used: ask for a new one")
        record = orjson.loads(raw)
        if not hmac.compare_digest(record["phone"], digest(phone)):
            raise ChallengeFailed("the code was sent for another phone number")
        if not hmac.compare_digest(record["answer"], digest(answer.strip().upper())):
            raise ChallengeFailed("wrong code: ask for a new one")

    async def limit_reports(self, phone: str) -> None:
        await self.limit(f"report-phone:{digest(phone)}", self.settings.reports_per_phone_per_day, DAY,
                         "reports from this number today")  # fmt: skip

    async def limit_lookups(self, address: str) -> None:
        await self.limit(f"lookup-ip:{address}", self.settings.lookups_per_address_per_hour, HOUR,
                         "look-ups from here")  # fmt: skip

    async def issue_receipt(self, case_id: str, phone: str) -> str:
        receipt = base64.b32encode(secrets.token_bytes(10)).decode()
        record = {"case_id": case_id, "phone": digest(phone)}
        await self.redis.hset(self.keys.resident_receipts, receipt, orjson.dumps(record))
        return receipt

    async def case_of(self, receipt: str) -> str | None:
        """The case a receipt number was issued for (None: never issued, or not a receipt number at all)."""
        canonical = normal_receipt(receipt)
        if canonical is None:
            return None
        raw = await self.redis.hget(self.keys.resident_receipts, canonical)
        return str(orjson.loads(raw)["case_id"]) if raw else None
