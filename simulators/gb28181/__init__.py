"""GB/T 28181 simulators: a device fleet (IPC/NVR) and an upper platform."""

from sharpeye.simulators.gb28181.device import DeviceFleet, SimDevice, fleet_devices
from sharpeye.simulators.gb28181.upper import UpperPlatformSimulator

__all__ = ["DeviceFleet", "SimDevice", "UpperPlatformSimulator", "fleet_devices"]
