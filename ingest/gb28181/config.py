"""Config of one GB/T 28181 device (IPC, NVR, or a lower platform) that registers to SharpEye."""

from __future__ import annotations

from typing import Literal
from zoneinfo import available_timezones

from pydantic import Field, field_validator
from sharpeye.config.base import StrictModel
from sharpeye.config.device import DeviceConfig
from sharpeye.config.gb_code import ChannelCode, DeviceCode
from sharpeye.config.secret import EnvSecret, check_url
from sharpeye.ingest.credential import device_password


class GbChannelConfig(StrictModel):
    """Operator additions to one channel the device reports in its catalog."""

    id: ChannelCode = Field(description="Channel code as the device reports it in its catalog.")
    name: str | None = Field(default=None, max_length=100, description="Display name (default: the catalog's name).")
    media_url: str | None = Field(
        default=None, description="Media URL (RTSP/HTTP) of the channel, if known (a password in it only as ${NAME})."
    )

    @field_validator("media_url")
    @classmethod
    def _url_secret(cls, url: str | None) -> str | None:
        return check_url(url) if url is not None else None


class GbDeviceConfig(DeviceConfig):
    """A device registering to SharpEye over SIP with its 20-digit code as the Digest username."""

    kind: Literal["gb28181"] = Field(description="Device kind.")
    id: DeviceCode = Field(description="The device's 20-digit GB/T 28181 code (its SIP user and Digest username).")
    password: EnvSecret | None = Field(
        default=None,
        description="The device's own Digest password, as ${NAME} (read from environment variable NAME). "
        "Default: derived from SHARPEYE_DEVICE_SECRET (`sharpeye broker files` lists it).",
    )
    channels: list[GbChannelConfig] = Field(
        default_factory=list, description="Channels with operator-given names or media URLs."
    )
    charset: Literal["GB2312", "GB18030", "UTF-8"] = Field(
        default="GB2312", description="Charset of the XML bodies SharpEye sends to this device."
    )
    timezone: str = Field(default="Asia/Shanghai", description="Zone of the device's local times (AlarmTime, Date).")

    def digest_password(self, device_secret: str | None) -> str | None:
        """The Digest password: the device's own, else derived from the site's device secret (None: neither)."""
        if self.password is not None:
            return self.password.get_secret_value()
        return device_password(device_secret, self.id, "sip") if device_secret else None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        if value not in available_timezones():
            raise ValueError(f"unknown time zone {value!r}")
        return value
