"""Thermal (radiometric) cameras over MQTT: frames analysed in the hub, or the camera's own results."""

from sharpeye.ingest.thermal.driver import ThermalDriver

driver = ThermalDriver()

__all__ = ["driver"]
