"""Settings of the live-view service, from the environment (``SHARPEYE_LIVE_*``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class LiveSettings(BaseSettings):
    """How the live-view service gathers ICE candidates, buffers packets and encodes synthetic sources."""

    model_config = SettingsConfigDict(env_prefix="SHARPEYE_LIVE_", extra="ignore")

    ice_addresses: list[str] = Field(
        default_factory=lambda: ["127.0.0.1"],
        description="Local addresses offered as ICE host candidates (and the only ones bound). Empty: every "
        "non-loopback interface, aioice's default. Loopback is the safe default for tests and a single machine.",
    )
    queue_packets: int = Field(
        default=50, ge=5, le=1000, description="Packets queued per viewer; a viewer further behind is dropped."
    )
    max_viewers: int = Field(default=64, ge=1, le=10000, description="Viewers allowed at once over all cameras.")
    connect_timeout_s: float = Field(
        default=15, gt=0, le=300, description="A viewer whose connection is not up after this long is closed."
    )
    idle_stop_s: float = Field(
        default=10, ge=0, le=3600, description="A camera feed with no viewer is stopped after this many seconds."
    )
    key_frame_interval_s: float = Field(
        default=1.0, gt=0, le=10, description="Key-frame interval of the streams the hub encodes itself."
    )
    udp_gso: bool = Field(
        default=True,
        description="Send each access unit's RTP datagrams to a viewer with UDP segmentation offload (one system "
        "call per run of equal-size datagrams; Linux 4.18+, falls back by itself where refused). False: one sendto "
        "per datagram.",
    )
    synthetic_width: int = Field(default=640, ge=64, le=1920, description="Width of synthetic camera pictures.")
    synthetic_height: int = Field(default=360, ge=64, le=1080, description="Height of synthetic camera pictures.")
    synthetic_fps: float = Field(default=25, gt=0, le=60, description="Frame rate of synthetic cameras.")
