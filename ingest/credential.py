"""Device passwords derived from one site secret (``SHARPEYE_DEVICE_SECRET``).

Each device's password is HMAC-SHA256 of ``<purpose>:<device id>`` under the secret, so the hub can re-create
the broker's password file, check a GB/T 28181 device's digest, or print a provisioning sheet at any time without
keeping a second copy of each password. The purpose label keeps the passwords of one device apart: its MQTT
password (``mqtt``) tells nothing about its SIP digest password (``sip``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac

MIN_SECRET_LENGTH = 16
PURPOSES = frozenset({"mqtt", "sip"})


def device_password(secret: str, device_id: str, purpose: str = "mqtt") -> str:
    """The password of ``device_id`` for ``purpose``: HMAC-SHA256 under the site secret, URL-safe base64 (32 chars)."""
    if len(secret) < MIN_SECRET_LENGTH:
        raise ValueError(f"the device secret needs at least {MIN_SECRET_LENGTH} characters")
    if purpose not in PURPOSES:
        raise ValueError(f"unknown password purpose {purpose!r}")
    digest = hmac.new(secret.encode(), f"{purpose}:{device_id}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:24]).decode()
