"""Settings of SharpEye's own GB/T 28181 side: the platform devices register to, and the cascade upward."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator
from sharpeye.config.base import StrictModel
from sharpeye.config.gb_code import PlatformCode
from sharpeye.config.secret import EnvSecret

Charset = Literal["GB2312", "GB18030", "UTF-8"]


class CascadeSettings(StrictModel):
    """An upper platform SharpEye registers to as a lower platform (级联); one entry of ``cascades``."""

    id: str = Field(
        default="",
        pattern=r"^$|^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$",
        description="Name of this upper platform in metrics, health and logs (default: upper_id).",
    )
    upper_id: PlatformCode = Field(description="SIP id of the upper platform (type 200).")
    upper_host: str = Field(description="Host or IP address of the upper platform.")
    upper_port: int = Field(default=5060, ge=1, le=65535, description="SIP port of the upper platform.")
    upper_domain: str = Field(
        default="", description="SIP domain of the upper platform (default: first 10 digits of upper_id)."
    )
    transport: Literal["udp", "tcp"] = Field(default="udp", description="Transport used towards the upper platform.")
    local_port: int = Field(default=5061, ge=0, le=65535, description="Local SIP port of the cascade client (0: any).")
    password: EnvSecret = Field(
        description="Digest password the upper platform gave SharpEye, as ${NAME} (read from environment "
        "variable NAME)."
    )
    register_expires_s: int = Field(default=3600, ge=60, le=86400, description="Registration period asked for.")
    refresh_ratio: float = Field(
        default=0.75, gt=0.1, lt=0.95, description="Share of the granted period after which registration is refreshed."
    )
    keepalive_interval_s: float = Field(default=60, gt=0, le=3600, description="Seconds between keepalives upward.")
    keepalive_count: int = Field(
        default=3, ge=1, le=20, description="Unanswered keepalives in a row after which SharpEye registers again."
    )
    retry_s: float = Field(
        default=30,
        gt=0,
        le=3600,
        description="First wait before registering again after a failure (doubles, max 10 min).",
    )
    catalog_watch_s: float = Field(
        default=10, gt=0, le=3600, description="Period of the check for channel changes sent to a Catalog subscriber."
    )
    catalog_page_size: int = Field(default=10, ge=1, le=100, description="Catalog items per Response message.")
    notify_failures: int = Field(
        default=3,
        ge=1,
        le=100,
        description="NOTIFYs in a row the upper platform leaves unanswered (or refuses) after which its subscription "
        "(Catalog, Alarm, MobilePosition) ends; alarms then go by MESSAGE again.",
    )
    pause_limit_s: float = Field(
        default=600,
        gt=0,
        le=86400,
        description="A Playback the upper platform keeps paused (MANSRTSP PAUSE) this long is ended with a BYE, "
        "releasing the recording or the device's stream it holds.",
    )
    charset: Charset = Field(default="GB2312", description="Charset of the XML bodies sent upward.")
    channels: list[str] = Field(
        default_factory=list,
        description="Channels this upper platform may see: GB codes or code prefixes (e.g. a civil code "
        "'340200'); its Catalog, RecordInfo, INVITE, DeviceControl and forwarded alarms are limited to them. "
        "Empty: every channel SharpEye publishes.",
    )

    @property
    def name(self) -> str:
        return self.id or self.upper_id

    def allows(self, channel_id: str) -> bool:
        """Whether this upper platform may see the channel (its ``channels`` filter)."""
        return not self.channels or any(channel_id.startswith(prefix) for prefix in self.channels)

    @model_validator(mode="after")
    def _channel_codes(self) -> CascadeSettings:
        for prefix in self.channels:
            if not prefix.isdigit() or len(prefix) > 20:
                raise ValueError(f"channels: {prefix!r} is not a GB code or code prefix (1 to 20 digits)")
        return self

    @model_validator(mode="after")
    def _keepalive_fits_registration(self) -> CascadeSettings:
        if self.keepalive_interval_s * self.keepalive_count >= self.register_expires_s:
            raise ValueError(
                "keepalive_interval_s * keepalive_count must be shorter than register_expires_s, "
                "or a dead link is noticed only after the registration has lapsed"
            )
        return self


class GbSettings(StrictModel):
    """SharpEye as a GB/T 28181 platform (SIP server) for devices."""

    sip_id: PlatformCode = Field(description="SharpEye's own SIP id (20 digits, type 200), e.g. 34020000002000000001.")
    domain: str = Field(default="", description="SIP domain (default: first 10 digits of sip_id).")
    realm: str = Field(default="", description="Digest realm (default: the domain).")
    host: str = Field(default="127.0.0.1", description="Address to bind and to advertise in Via/Contact.")
    port: int = Field(default=5060, ge=0, le=65535, description="SIP port, UDP and TCP (0: any free port).")
    tcp: bool = Field(default=True, description="Also listen on TCP.")
    register_expires_min_s: int = Field(default=60, ge=10, description="Shortest registration period granted.")
    register_expires_max_s: int = Field(default=3600, ge=60, description="Longest registration period granted.")
    catalog_interval_s: float = Field(default=3600, gt=0, description="Period of the catalog re-query of each device.")
    catalog_retry_s: float = Field(
        default=60, gt=0, description="Wait before asking again for a catalog that came incomplete or not at all."
    )
    query_timeout_s: float = Field(default=15, gt=0, le=120, description="Wait for a query's Response messages.")
    sip_t1_s: float = Field(default=0.5, gt=0, le=5, description="SIP timer T1 (UDP retransmission start), seconds.")
    charset: Charset = Field(default="GB2312", description="Charset of the XML bodies sent to devices.")
    timezone: str = Field(default="Asia/Shanghai", description="Zone of the local times sent (Date, AlarmTime).")
    cascade: CascadeSettings | None = Field(
        default=None,
        description="Deprecated: one upper platform; read as one more entry of cascades. Write cascades instead.",
    )
    cascades: list[CascadeSettings] = Field(
        default_factory=list,
        description="Upper platforms to register to (级联), each with its own SIP client, registration, "
        "keepalive, Catalog (optionally filtered by its channels) and forwarded alarms.",
    )
    sip_ip: str = Field(
        default="",
        description="Address written in Via/Contact/SDP origin for devices to reach SharpEye's SIP port (default: "
        "host). Set it to the public address when devices are behind NAT or host is 0.0.0.0.",
    )
    media_ip: str = Field(
        default="",
        description="Address devices send RTP to, written in the SDP c= line (default: sip_ip, else host).",
    )
    media_host: str = Field(default="", description="Address RTP ports bind to (default: host).")
    media_port_min: int = Field(default=30000, ge=0, le=65535, description="First RTP port (0 with max 0: any).")
    media_port_max: int = Field(default=30499, ge=0, le=65535, description="Last RTP port of the range.")
    media_transport: Literal["udp", "tcp-passive", "tcp-active"] = Field(
        default="udp",
        description="How RTP arrives: udp; tcp-passive (SharpEye listens, the device connects: works through the "
        "device's NAT); tcp-active (SharpEye connects to the device's port).",
    )
    invite_timeout_s: float = Field(default=8, gt=0, le=60, description="Wait for the device's answer to INVITE.")
    media_start_timeout_s: float = Field(
        default=5, gt=0, le=60, description="Wait for the first RTP packet after the answer before giving up."
    )
    media_timeout_s: float = Field(
        default=10, gt=0, le=300, description="No RTP for this long ends the session (a video-loss for the camera)."
    )
    release_grace_s: float = Field(
        default=30, ge=0, le=3600, description="A pulled channel is released (BYE) this long after its last user."
    )
    max_media_sessions: int = Field(default=256, ge=1, le=10000, description="Sessions pulled at once (INVITE storm).")

    @property
    def uppers(self) -> list[CascadeSettings]:
        """Every upper platform: ``cascades`` and the deprecated single ``cascade``."""
        return [*self.cascades, *([self.cascade] if self.cascade is not None else [])]

    @property
    def sip_domain(self) -> str:
        return self.domain or self.sip_id[:10]

    @property
    def sip_realm(self) -> str:
        return self.realm or self.sip_domain

    @property
    def advertised_sip_ip(self) -> str:
        return self.sip_ip or self.host

    @property
    def advertised_media_ip(self) -> str:
        return self.media_ip or self.sip_ip or self.host

    @model_validator(mode="after")
    def _expires_range(self) -> GbSettings:
        if self.register_expires_min_s > self.register_expires_max_s:
            raise ValueError("register_expires_min_s must not exceed register_expires_max_s")
        if self.media_port_min > self.media_port_max:
            raise ValueError("media_port_min must not exceed media_port_max")
        names = [upper.name for upper in self.uppers]
        if len(set(names)) != len(names):
            raise ValueError(f"cascades: two upper platforms share the id {max(names, key=names.count)!r}")
        ports = [upper.local_port for upper in self.uppers if upper.local_port]
        if len(set(ports)) != len(ports):
            raise ValueError(
                f"cascades: two upper platforms share local_port {max(ports, key=ports.count)} "
                "(each cascade client binds its own port; give each its own, or 0 for any)"
            )
        return self
