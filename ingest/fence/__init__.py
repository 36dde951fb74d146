"""Pulse electronic fence controllers (脉冲电子围栏, GB/T 7946) over MQTT."""

from sharpeye.ingest.fence.driver import FenceDriver

driver = FenceDriver()

__all__ = ["driver"]
