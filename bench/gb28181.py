"""GB/T 28181 platform benchmark: registrations per second and CPU share with many devices.

The platform runs in this process; the device fleet (simulators.gb28181) in a child process, so the
CPU measured here is the platform's alone. Baselines measured in the same run:
- registrations/s is set beside bare asyncio UDP request/response round trips/s on the same loopback
  with the same concurrency (a registration is 2 SIP transactions plus the catalog and DeviceInfo
  queries it triggers);
- the CPU share with N devices keeping alive is set beside the same process idle for the same window.

Full size (the issue's figure): ``python bench/gb28181.py --devices 1000 --keepalive 60 --window 120``.
Reduced (faster keepalives, projected to 60 s): ``python bench/gb28181.py --devices 1000 --keepalive 10 --window 30``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import secrets
import sys
import time
from pathlib import Path

import psutil
from sharpeye.config.gb28181 import GbSettings
from sharpeye.ingest.gb28181.config import GbDeviceConfig
from sharpeye.ingest.gb28181.platform import GbPlatform
from sharpeye.ingest.reading import Reading
from sharpeye.simulators.gb28181.device import fleet_devices

PLATFORM_ID = "34020000002000000001"
ROOT = Path(__file__).resolve().parents[1]


class _Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.transport.sendto(data, addr)  # type: ignore[attr-defined]


class _Client(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.waiting: dict[bytes, asyncio.Future[None]] = {}

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        future = self.waiting.pop(data[:8], None)
        if future is not None and not future.done():
            future.set_result(None)


async def udp_round_trips(seconds: float, concurrency: int = 64) -> float:
    """Bare asyncio UDP request/response round trips per second (the baseline)."""
    loop = asyncio.get_running_loop()
    server, _ = await loop.create_datagram_endpoint(_Echo, local_addr=("127.0.0.1", 0))
    port = server.get_extra_info("sockname")[1]
    client_transport, client = await loop.create_datagram_endpoint(_Client, remote_addr=("127.0.0.1", port))
    payload = b"x" * 400
    done = 0
    deadline = loop.time() + seconds

    async def worker(n: int) -> None:
        nonlocal done
        i = 0
        while loop.time() < deadline:
            key = f"{n:04d}{i:04d}".encode()[:8]
            i = (i + 1) % 10000
            future: asyncio.Future[None] = loop.create_future()
            client.waiting[key] = future
            client_transport.sendto(key + payload)
            try:
                await asyncio.wait_for(future, 1)
                done += 1
            except TimeoutError:
                pass

    await asyncio.gather(*(worker(n) for n in range(concurrency)))
    client_transport.close()
    server.close()
    return done / seconds


async def main(args: argparse.Namespace) -> None:
    secret = secrets.token_urlsafe(24)  # devices without their own password: derived from the site's device secret
    sims = fleet_devices(args.devices, secret=secret, keepalive_s=args.keepalive, expires=3600)
    devices = [
        GbDeviceConfig.model_validate(
            {
                "id": s.id,
                "kind": "gb28181",
                "name": s.name,
                "grid": "g1",
                "heartbeat_s": args.keepalive,
            }
        )
        for s in sims
    ]
    readings = 0

    def emit(batch: list[Reading]) -> None:
        nonlocal readings
        readings += len(batch)

    baseline_rtt = await udp_round_trips(3.0)
    platform = GbPlatform(GbSettings(sip_id=PLATFORM_ID, port=0, tcp=False), devices, emit, device_secret=secret)
    await platform.start()
    proc = psutil.Process()
    idle_start_cpu, idle_start = time.process_time(), time.monotonic()
    await asyncio.sleep(args.idle)
    idle_share = (time.process_time() - idle_start_cpu) / (time.monotonic() - idle_start)

    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sharpeye.simulators.gb28181",
        "devices",
        "--count",
        str(args.devices),
        "--port",
        str(platform.port),
        "--keepalive",
        str(args.keepalive),
        "--platform-id",
        PLATFORM_ID,
        cwd=str(ROOT),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    fleet = psutil.Process(child.pid)
    started = time.monotonic()
    first: float | None = None
    registered = 0
    while time.monotonic() - started < 120:
        registered = sum(1 for s in platform.devices_state() if s["registered"])
        if registered and first is None:
            first = time.monotonic()  # the child's start-up (imports) is not the platform's time
        if registered == args.devices:
            break
        await asyncio.sleep(0.02)
    reg_elapsed = time.monotonic() - (first or started)
    reg_rate = (registered - 1) / reg_elapsed if registered > 1 else 0.0
    # let the catalog/DeviceInfo queries triggered by the registrations finish before measuring
    await asyncio.sleep(min(5.0, args.keepalive / 2))
    keepalives_before = platform.stats["keepalives"]
    cpu_before, wall_before = proc.cpu_times(), time.monotonic()
    fleet_before = fleet.cpu_times()
    await asyncio.sleep(args.window)
    wall = time.monotonic() - wall_before
    cpu_after = proc.cpu_times()
    fleet_after = fleet.cpu_times()
    share = ((cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system)) / wall
    fleet_share = ((fleet_after.user + fleet_after.system) - (fleet_before.user + fleet_before.system)) / wall
    keepalives = platform.stats["keepalives"] - keepalives_before
    online = sum(1 for s in platform.devices_state() if s["online"])
    per_keepalive = max(0.0, share - idle_share) * wall / max(keepalives, 1)
    projected = idle_share + per_keepalive * args.devices / 60.0
    child.terminate()
    await child.wait()
    await platform.stop()

    print(f"devices {args.devices}, keepalive {args.keepalive:g} s, window {wall:.1f} s")
    print(f"registered {registered}/{args.devices} in {reg_elapsed:.2f} s: {reg_rate:.0f} registrations/s")
    print(f"  baseline bare asyncio UDP round trips: {baseline_rtt:.0f}/s; ratio {reg_rate / baseline_rtt:.3f}")
    print(f"keepalives handled in window: {keepalives} ({keepalives / wall:.1f}/s); online at end {online}")
    print(f"platform CPU share of one core: {share * 100:.2f}%  (baseline idle: {idle_share * 100:.2f}%)")
    print(f"  CPU per keepalive: {per_keepalive * 1e6:.0f} us")
    print(f"  projected at {args.devices} devices / 60 s keepalive: {projected * 100:.2f}% (goal <= 10%)")
    print(f"fleet simulator CPU share (child process): {fleet_share * 100:.2f}%")
    print(f"readings emitted: {readings}; platform stats: {dict(platform.stats)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--keepalive", type=float, default=60.0)
    parser.add_argument("--window", type=float, default=60.0, help="CPU measurement window, seconds")
    parser.add_argument("--idle", type=float, default=3.0, help="idle baseline window, seconds")
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main(parser.parse_args()))
