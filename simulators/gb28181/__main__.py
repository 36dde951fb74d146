"""Run a device fleet against a platform: ``python -m simulators.gb28181 --count 1000 --port 5060``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging

from simulators.gb28181.device import DeviceFleet, fleet_devices

log = logging.getLogger("simulators.gb28181")


async def _main(args: argparse.Namespace) -> None:
    devices = fleet_devices(args.count, password=args.password, keepalive_s=args.keepalive)
    fleet = DeviceFleet(
        devices,
        platform_id=args.platform_id,
        platform_host=args.host,
        platform_port=args.port,
        transport=args.transport,
    )
    await fleet.start()
    try:
        while True:
            await asyncio.sleep(10)
            log.info("%d/%d registered; %s", fleet.registered, len(devices), dict(fleet.stats))
    finally:
        await fleet.stop(unregister=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=100, help="number of devices (every 10th an NVR)")
    parser.add_argument("--host", default="127.0.0.1", help="platform host")
    parser.add_argument("--port", type=int, default=5060, help="platform SIP port")
    parser.add_argument("--platform-id", default="34020000002000000001", help="platform SIP id")
    parser.add_argument("--password", default="12345678", help="device digest password")
    parser.add_argument("--keepalive", type=float, default=60.0, help="keepalive interval, seconds")
    parser.add_argument("--transport", choices=("udp", "tcp"), default="udp")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(args))


if __name__ == "__main__":
    main()
