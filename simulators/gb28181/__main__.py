"""GB/T 28181 simulators from the command line.

``python -m simulators.gb28181 devices --count 1000 --port 5060``: a fleet of IPCs and NVRs registering
to a platform, each with the SIP password derived from ``SHARPEYE_DEVICE_SECRET`` (as the hub expects of devices
configured without a password of their own), or all with ``--password``.
``python -m sharpeye.simulators.gb28181 site -c site.yaml --port 5060``: the site's own gb28181 devices with their
configured channels, answering INVITE with real H.265/H.264 (what ``sharpeye demo`` runs for the demo's NVR).
``python -m simulators.gb28181 upper --port 15060 --password secret``: an upper platform that accepts a
lower platform, queries its catalog every ``--query-every`` seconds and logs alarms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os

from sharpeye.simulators.gb28181.device import DeviceFleet, SimDevice, fleet_devices
from sharpeye.simulators.gb28181.upper import UpperPlatformSimulator

log = logging.getLogger("sharpeye.simulators.gb28181")


async def _devices(args: argparse.Namespace) -> None:
    secret = None if args.password else os.environ.get("SHARPEYE_DEVICE_SECRET")
    if not (secret or args.password):
        raise SystemExit("set SHARPEYE_DEVICE_SECRET (the hub's) or give --password")
    devices = fleet_devices(args.count, password=args.password or "", secret=secret, keepalive_s=args.keepalive)
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


async def _site(args: argparse.Namespace) -> None:
    """The GB/T 28181 devices of a site config, with their configured channels: the first channel of each NVR
    streams H.265, the others H.264 (the intrusion scene, 640x360)."""
    from pathlib import Path

    from sharpeye.config.loader import load_file
    from sharpeye.ingest.credential import device_password
    from sharpeye.ingest.registry import installed

    secret = os.environ.get("SHARPEYE_DEVICE_SECRET")
    if not secret:
        raise SystemExit("set SHARPEYE_DEVICE_SECRET (the hub's)")
    site = load_file(Path(args.config), installed())
    if site.gb28181 is None:
        raise SystemExit(f"{args.config} has no gb28181 section")
    devices = []
    for config in site.devices:
        if config.kind != "gb28181":
            continue
        channels = [(c.id, c.name or c.id) for c in getattr(config, "channels", [])]
        nvr = config.id[10:13] == "118"
        device = SimDevice(id=config.id, password=device_password(secret, config.id, "sip"), name=config.name,
                           kind="nvr" if nvr else "ipc", channel_count=len(channels) or 1, channels=channels,
                           keepalive_s=getattr(config, "heartbeat_s", 60.0), media_size=(640, 360),
                           media_seconds=16.0)  # fmt: skip
        if nvr and device.channels:
            device.codecs[device.channels[0][0]] = "hevc"
        devices.append(device)
    fleet = DeviceFleet(devices, platform_id=site.gb28181.sip_id, platform_host=args.host, platform_port=args.port)
    await fleet.start()
    log.info("GB/T 28181 devices of %s registering to %s:%d: %s", args.config, args.host, args.port,
             ", ".join(d.id for d in devices))  # fmt: skip
    try:
        await asyncio.Event().wait()
    finally:
        await fleet.stop(unregister=True)


async def _upper(args: argparse.Namespace) -> None:
    upper = UpperPlatformSimulator(args.sip_id, args.password, host=args.host, port=args.port)
    await upper.start()
    log.info("upper platform %s on %s:%d", args.sip_id, args.host, upper.port)
    seen: dict[str, int] = {}
    try:
        while True:
            await asyncio.sleep(args.query_every)
            for lower_id, lower in list(upper.lowers.items()):
                for alarm in lower.alarms[seen.get(lower_id, 0) :]:
                    log.info("alarm from %s: %s", lower_id, alarm.fields)
                seen[lower_id] = len(lower.alarms)
                try:
                    pages = await upper.query(lower_id, "Catalog")
                except (TimeoutError, RuntimeError) as exc:
                    log.warning("catalog query to %s failed: %s", lower_id, exc)
                    continue
                items = sum(len(p.items) for p in pages)
                log.info(
                    "%s: %d catalog items in %d pages, %d keepalives", lower_id, items, len(pages), lower.keepalives
                )
    finally:
        await upper.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="role", required=True)
    dev = sub.add_parser("devices", help="a fleet of devices registering to a platform")
    dev.add_argument("--count", type=int, default=100, help="number of devices (every 10th an NVR)")
    dev.add_argument("--host", default="127.0.0.1", help="platform host")
    dev.add_argument("--port", type=int, default=5060, help="platform SIP port")
    dev.add_argument("--platform-id", default="34020000002000000001", help="platform SIP id")
    dev.add_argument("--password", default=None, help="one digest password for every device (default: each "
                     "device's own, derived from SHARPEYE_DEVICE_SECRET)")  # fmt: skip
    dev.add_argument("--keepalive", type=float, default=60.0, help="keepalive interval, seconds")
    dev.add_argument("--transport", choices=("udp", "tcp"), default="udp")
    st = sub.add_parser("site", help="the gb28181 devices of a site config (the demo's NVR), streaming on INVITE")
    st.add_argument("-c", "--config", required=True, help="site YAML file")
    st.add_argument("--host", default="127.0.0.1", help="platform host")
    st.add_argument("--port", type=int, required=True, help="platform SIP port")
    up = sub.add_parser("upper", help="an upper platform a lower platform registers to")
    up.add_argument("--sip-id", default="34010000002000000001", help="the upper platform's SIP id")
    up.add_argument("--host", default="127.0.0.1", help="address to bind")
    up.add_argument("--port", type=int, default=15060, help="SIP port (UDP and TCP)")
    up.add_argument("--password", default="12345678", help="digest password expected from lower platforms")
    up.add_argument("--query-every", type=float, default=30.0, help="seconds between catalog queries")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run({"devices": _devices, "site": _site, "upper": _upper}[args.role](args))


if __name__ == "__main__":
    main()
