"""GB/T 28181 devices (IPC, NVR, lower platforms) registering to SharpEye over SIP, and the cascade upward."""

from sharpeye.ingest.gb28181.driver import GbDriver

driver = GbDriver()

__all__ = ["driver"]
