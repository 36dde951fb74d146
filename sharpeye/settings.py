"""Process settings, read from the environment (``SHARPEYE_*``), kept apart from the site YAML."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """How this process runs: where its services are, where it keeps data, how it listens."""

    model_config = SettingsConfigDict(env_prefix="SHARPEYE_", extra="ignore")

    data_dir: Path = Field(
        default=Path("./sharpeye-data"),
        description="Directory for the embedded Redis and broker, the SQLite database, evidence and logs.",
    )
    redis_url: str | None = Field(
        default=None,
        description="redis:// URL of an existing Redis. Unset: start an embedded redis-server under data_dir.",
    )
    mqtt_url: str | None = Field(
        default=None,
        description="mqtt:// (or mqtts://) URL of an existing broker, credentials in the URL. "
        "Unset: start an embedded broker (Mosquitto if installed, else amqtt).",
    )
    mqtt_client_id: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9._-]{1,64}$",
        description="The persistent MQTT session the site's reader holds (the nodes of one site share it, so messages "
        "queued while the reader role moves are not lost). Default: sharpeye-hub-<site id>. Give a hub of the same "
        "site id its own (a staging hub, a test hub) when it shares the broker with another deployment: two "
        "deployments on one session take each other's messages.",
    )
    allow_open_broker: bool = Field(
        default=False,
        description="No longer needed (kept so existing settings load): the embedded MQTT broker, Mosquitto or the "
        "amqtt fallback, always enforces the device accounts and ACL.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy async URL of the durable record. Unset: SQLite file under data_dir.",
    )
    host: str = Field(default="127.0.0.1", description="Address the HTTP server binds.")
    port: int = Field(default=8000, ge=0, le=65535, description="Port of the HTTP server (0: any free port).")
    admin_password: SecretStr | None = Field(
        default=None,
        description="Initial password of the 'admin' user. Unset: generated and printed once at first start.",
    )
    device_secret: SecretStr | None = Field(
        default=None,
        min_length=16,
        description="Site secret every device password derives from (MQTT and GB/T 28181 SIP), 16+ characters. "
        "Unset: generated once and kept in data_dir/device-secret (mode 0600).",
    )
    token_ttl_s: int = Field(default=8 * 3600, ge=60, description="Lifetime of bearer tokens in seconds.")
    node_id: str | None = Field(default=None, description="Name of this hub node (default: host name + pid).")
    node_weight: float = Field(
        default=1.0, gt=0, le=1000,
        description="This node's share of the site's devices relative to the other nodes (e.g. its cores).",
    )  # fmt: skip
    lease_ttl_s: float = Field(
        default=5.0, ge=1, le=60,
        description="Lifetime of a device lease: a node silent this long loses its devices to the others.",
    )  # fmt: skip
    lease_period_s: float = Field(
        default=1.0, gt=0, le=20, description="How often a node renews its leases and rebalances (below lease_ttl_s)."
    )
    mqtt_share_group: str | None = Field(
        default=None, min_length=1, max_length=64, pattern=r"^[^/+#$]+$",
        description="Spread device messages over the nodes with the broker's shared subscription "
        "$share/<group>/... (every node reads) instead of one node reading for all. Only for a broker that "
        "dispatches a topic's messages to one member (EMQX hash_topic/sticky): Mosquitto 2 round-robins per "
        "message and so reorders a device's messages across nodes (docs/deployment.md).",
    )  # fmt: skip
    push_contact: str = Field(
        default="mailto:sharpeye@localhost.localdomain",
        pattern=r"^(mailto:[^@\s]+@[^@\s]+|https://\S+)$",
        max_length=200,
        description="Web Push: the contact (mailto: or https:) in the hub's VAPID claims, for push services to reach "
        "the operator of this hub.",
    )
    push_allow_http: bool = Field(
        default=False,
        description="Web Push: accept browser subscriptions with plain http:// push endpoints (tests' local "
        "receivers only; real push services are https).",
    )
    log_level: str = Field(default="INFO", description="Python logging level.")
    redis_prefix: str = Field(default="se", description="Prefix of every Redis key this hub uses.")
    cameras: bool = Field(
        default=True,
        description="Capture and analyse the site's cameras. False: cameras are opened only for live view.",
    )
    camera_workers: int | None = Field(
        default=None, ge=1, le=64, description="Video analytics worker processes (default: one per core, at least 2)."
    )
    detector_precision: Literal["int8", "float32"] = Field(
        default="int8",
        description="The object detector's model: its 8-bit version (about a third of the CPU per inference, the "
        "same verdicts; made by `sharpeye models install`) or the float one.",
    )
    evidence_cap_mb: int = Field(
        default=2048, ge=10, description="Size cap of stored evidence (snapshots, clips); oldest deleted first."
    )
    list_cache_s: float = Field(
        default=0.5,
        ge=0,
        le=60,
        description="The alarm and 研判 lists (GET /api/alarms, /api/verifications) are answered again from a "
        "cache for at most this long (0: never), and only until an alarm changes (the live alarm channel, every "
        "node's changes) or the caller writes anything through this node.",
    )
    list_cache_settle_s: float = Field(
        default=0.0,
        ge=0,
        le=60,
        description="How long a cached list may still be served after a change made elsewhere (another operator, "
        "the alarm intake, another node; 0: not at all). The caller's own changes through this node show at once.",
    )
    cors_origins: list[str] = Field(
        default_factory=list, description="Origins allowed to call the API from a browser (CORS closed when empty)."
    )

    @model_validator(mode="after")
    def _lease_period(self) -> Settings:
        if self.lease_period_s * 2 > self.lease_ttl_s:
            raise ValueError(
                f"lease_period_s ({self.lease_period_s}) must be at most half of lease_ttl_s ({self.lease_ttl_s})"
            )
        return self

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "sharpeye.db"

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.sqlite_path.resolve()}"


def redact_url(url: str) -> str:
    """Return ``url`` with any password replaced by ``***`` (for health output and logs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    netloc = f"{user}:***@{host}"
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
