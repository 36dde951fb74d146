"""``python -m simulators SITE.yaml [--mqtt URL] [--scenario FILE] [--speed X]``: simulate a site's MQTT devices.

The hub's own CLI calls ``simulators.site.run_site`` the same way; this entry point lets an integrator run the
simulators alone against any broker.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from sharpeye.config.loader import ConfigError, load_file
from sharpeye.ingest.registry import installed
from sharpeye.simulators.site import ScenarioError, run_site


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulators", description=__doc__)
    parser.add_argument("site", type=Path, help="site YAML (e.g. config/demo.yaml)")
    parser.add_argument("--mqtt", default="mqtt://127.0.0.1:1883", help="broker URL (default: %(default)s)")
    parser.add_argument("--scenario", type=Path, default=None, help="scenario YAML (simulators/scenarios/...)")
    parser.add_argument("--speed", type=float, default=1.0, help="simulated seconds per real second")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        site = load_file(args.site, installed())
        run_site(site, args.mqtt, args.scenario, stop, args.speed)
    except (ConfigError, ScenarioError, ValueError) as exc:
        logging.getLogger("simulators").error("%s", exc)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
