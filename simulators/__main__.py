"""``python -m sharpeye.simulators site -c SITE.yaml --mqtt-url URL [--scenario NAME|FILE] [--speed X]``.

Plays every MQTT device of a site (heartbeats, frames, levels, and the scenario's events and faults) against a
broker until interrupted. ``sharpeye simulate ...`` and the demo run this program; an integrator can run it alone
against any broker. With ``SHARPEYE_DEVICE_SECRET`` set, each device logs in as itself (its id, and a password
derived from the secret). GB/T 28181 devices and upper platforms: ``python -m sharpeye.simulators.gb28181``.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from sharpeye.config.loader import ConfigError, load_file
from sharpeye.ingest.registry import installed
from sharpeye.simulators import site as sim_site
from sharpeye.simulators.site import ScenarioError, run_site

log = logging.getLogger("sharpeye.simulators")


def scenario_path(name: str | None) -> Path | None:
    """A scenario file, or the packaged scenario of that name (``demo``)."""
    if not name:
        return None
    path = Path(name)
    if path.exists():
        return path
    packaged = Path(sim_site.__file__).with_name("scenarios") / f"{name}.yaml"
    if packaged.exists():
        return packaged
    raise ScenarioError(f"no scenario file {name!r} (nor a packaged scenario of that name)")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="sharpeye simulate", description="Device simulators.")
    sub = top.add_subparsers(dest="what", required=True, metavar="WHAT")
    site = sub.add_parser(
        "site",
        help="simulate every MQTT device of a site config",
        description="Play every MQTT device of the site (heartbeats, and the scenario's events and faults) "
        "against the broker at --mqtt-url until interrupted.",
    )
    site.add_argument("-c", "--config", required=True, type=Path, help="site YAML file")
    site.add_argument(
        "--mqtt-url", default=os.environ.get("SHARPEYE_MQTT_URL"), help="broker URL (default SHARPEYE_MQTT_URL)"
    )
    site.add_argument("--scenario", default=None, help="scenario YAML file or packaged scenario name")
    site.add_argument("--speed", type=float, default=1.0, help="time factor for the scenario (2 = twice as fast)")
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.mqtt_url:
        log.error("give --mqtt-url or set SHARPEYE_MQTT_URL")
        return 1
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        site = load_file(args.config, installed())
        run_site(
            site,
            args.mqtt_url,
            scenario_path(args.scenario),
            stop,
            speed=args.speed,
            device_secret=os.environ.get("SHARPEYE_DEVICE_SECRET") or None,
        )
    except (ConfigError, ScenarioError, ValueError) as exc:
        log.error("%s", exc)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
