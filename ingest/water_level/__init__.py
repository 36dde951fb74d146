"""Water-level gauges (水位计) on reservoirs and rivers over MQTT: the integrators' worked example."""

from sharpeye.ingest.water_level.driver import WaterLevelDriver

driver = WaterLevelDriver()

__all__ = ["driver"]
