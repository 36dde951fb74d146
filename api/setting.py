"""Settings of the HTTP API itself, from the environment (``SHARPEYE_API_*``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ApiSettings(BaseSettings):
    """What the API accepts from the network: how large a body, and whose forwarded headers it believes."""

    model_config = SettingsConfigDict(env_prefix="SHARPEYE_API_", extra="ignore")

    max_body_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        le=1024 * 1024 * 1024,
        description="Largest request body accepted (413 above it, refused before it is read). Photo uploads and "
        "the hotline import have their own caps.",
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="Addresses (or networks) of reverse proxies whose X-Forwarded-For / X-Forwarded-Proto are "
        "believed. Empty: none; the peer address is the client (login throttling and the audit use it).",
    )
