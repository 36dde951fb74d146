"""The site's device secret: ``SHARPEYE_DEVICE_SECRET``, else one generated once and kept under the data dir.

Every device password (MQTT and GB/T 28181 SIP) derives from it (``ingest/credential.py``). A single hub with
embedded services needs nothing set: the secret is made at first start and kept in ``<data dir>/device-secret``,
readable by the owner only. Hubs that share a broker or devices must share the secret: set the variable.
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

from sharpeye.ingest.credential import MIN_SECRET_LENGTH
from sharpeye.settings import Settings

log = logging.getLogger(__name__)

FILE_NAME = "device-secret"


def secret_path(data_dir: Path) -> Path:
    return data_dir / FILE_NAME


def kept_device_secret(settings: Settings) -> str | None:
    """The device secret from the settings, else the one kept in the data dir, else None."""
    if settings.device_secret is not None:
        return settings.device_secret.get_secret_value()
    try:
        kept = secret_path(settings.data_dir.resolve()).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    if len(kept) < MIN_SECRET_LENGTH:
        raise ValueError(f"{secret_path(settings.data_dir)} holds no usable secret (16+ characters): delete it, or "
                         "set SHARPEYE_DEVICE_SECRET")  # fmt: skip
    return kept


def device_secret(settings: Settings) -> str:
    """The device secret from the settings, else from the data dir, made there at first use."""
    kept = kept_device_secret(settings)
    if kept is not None:
        return kept
    path = secret_path(settings.data_dir.resolve())
    path.parent.mkdir(parents=True, exist_ok=True)
    made = secrets.token_urlsafe(32)
    partial = path.with_name(f".{FILE_NAME}.{os.getpid()}.tmp")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(made + "\n")
    try:
        os.link(partial, path)  # complete, and never replaced: a process racing us reads the one made first
    except FileExistsError:
        return device_secret(settings)
    finally:
        partial.unlink()
    log.info("generated the device secret in %s (set SHARPEYE_DEVICE_SECRET to choose it)", path)
    return made
