"""The ``sharpeye`` command line."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

from config.loader import ConfigError, demo_path, load_file
from ingest.registry import installed
from sharpeye.settings import Settings

log = logging.getLogger("sharpeye")


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def cmd_config_check(args: argparse.Namespace) -> int:
    try:
        site = load_file(Path(args.file), installed())
    except ConfigError as exc:
        sys.stderr.write(str(exc) + "\n")
        return 1
    kinds: dict[str, int] = {}
    for device in site.devices:
        kinds[device.kind] = kinds.get(device.kind, 0) + 1
    summary = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) or "no devices"
    _out(
        f"{args.file}: OK — site {site.site.id}: {summary}; {len(site.rules)} rules; "
        f"{len(site.departments)} departments"
    )
    return 0


def cmd_config_docs(args: argparse.Namespace) -> int:
    from config.reference_doc import render

    sys.stdout.write(render(installed()))
    return 0


def _serve(args: argparse.Namespace, config_path: Path, demo: bool) -> int:
    import uvicorn

    from api.app import create_app
    from sharpeye.hub import Hub

    settings = Settings()
    if args.data_dir:
        settings = settings.model_copy(update={"data_dir": Path(args.data_dir)})
    site = load_file(config_path, installed()) if config_path else None
    if site is None:
        return 1
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    host = args.host or settings.host
    sock.bind((host, args.port if args.port is not None else settings.port))
    port = sock.getsockname()[1]
    sock.listen(2048)  # connections made once the address is printed wait in the backlog, never refused
    children: list[subprocess.Popen[bytes]] = []

    def on_ready(hub: Hub, generated: str | None) -> None:
        if generated:
            _out(f"Initial admin password (shown once, change it): admin / {generated}")
        _out(f"SharpEye console: http://{host}:{port}/  (API docs: http://{host}:{port}/docs)")
        _out(
            f"Redis: {hub.redis_url}  MQTT: {hub.mqtt_url}  "
            f"({hub.embedded_broker.name if hub.embedded_broker else 'external'} broker)"
        )
        if demo:
            cmd = [
                sys.executable,
                "-m",
                "sharpeye.cli",
                "simulate",
                "site",
                "-c",
                str(config_path),
                "--mqtt-url",
                hub.mqtt_url,
                "--scenario",
                args.scenario,
            ]
            children.append(subprocess.Popen(cmd, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent))
            _out(f"Simulators running (pid {children[-1].pid}): scenario {args.scenario}")

    app = create_app(settings, site, on_ready=on_ready)
    server = uvicorn.Server(uvicorn.Config(app, log_level=settings.log_level.lower(), access_log=False))
    try:
        server.run(sockets=[sock])
    finally:
        for child in children:
            child.terminate()
            try:
                child.wait(10)
            except subprocess.TimeoutExpired:
                child.kill()
    return 0


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    from sharpeye.embedded import _die_with_parent as die

    die()


def cmd_demo(args: argparse.Namespace) -> int:
    if args.data_dir is None:
        args.data_dir = os.environ.get("SHARPEYE_DATA_DIR", "./sharpeye-demo-data")
    return _serve(args, demo_path(), demo=True)


def cmd_run(args: argparse.Namespace) -> int:
    return _serve(args, Path(args.config), demo=False)


def cmd_simulate_site(args: argparse.Namespace) -> int:
    from simulators.site import run_site

    site = load_file(Path(args.config), installed())
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    scenario = _scenario_path(args.scenario)
    run_site(site, args.mqtt_url, scenario, stop, speed=args.speed)
    return 0


def _scenario_path(name: str | None) -> Path | None:
    if not name:
        return None
    path = Path(name)
    if path.exists():
        return path
    from simulators import site as sim_site

    packaged = Path(sim_site.__file__).with_name("scenarios") / f"{name}.yaml"
    if packaged.exists():
        return packaged
    raise SystemExit(f"no scenario file {name!r} (nor a packaged scenario of that name)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sharpeye",
        description="SharpEye: integration hub for Sharp Eyes (雪亮工程) devices and governance command centres.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug output")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def serve_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--host", default=None, help="address to bind (default SHARPEYE_HOST or 127.0.0.1)")
        p.add_argument("--port", type=int, default=None, help="HTTP port (default SHARPEYE_PORT or 8000; 0 = any)")
        p.add_argument("--data-dir", default=None, help="data directory (default SHARPEYE_DATA_DIR)")

    demo = sub.add_parser(
        "demo",
        help="run the hub with simulators for the demo site on embedded Redis and MQTT",
        description="Start the hub on the packaged demo site (config/demo.yaml) with a private Redis and MQTT broker "
        "under the data directory, and simulators that play the site's devices. A fence intrusion arrives "
        "within seconds and becomes an alarm and a case. Ctrl-C stops everything.",
    )
    serve_args(demo)
    demo.add_argument("--scenario", default="demo", help="simulator scenario (file or packaged name)")
    demo.set_defaults(func=cmd_demo)

    run = sub.add_parser(
        "run",
        help="run the hub for a site config",
        description="Run the hub for your site. Redis and MQTT come from SHARPEYE_REDIS_URL and SHARPEYE_MQTT_URL; "
        "unset, embedded ones are started under the data directory.",
    )
    run.add_argument("-c", "--config", required=True, help="site YAML file")
    serve_args(run)
    run.set_defaults(func=cmd_run)

    cfg = sub.add_parser("config", help="check a site config or print the configuration reference")
    cfg_sub = cfg.add_subparsers(dest="config_command", required=True, metavar="SUBCOMMAND")
    check = cfg_sub.add_parser(
        "check",
        help="validate a site YAML file",
        description="Validate a site YAML: every unknown key, wrong type and broken reference is listed with its "
        "path in the file and line number. Exit status 0 when valid, 1 otherwise.",
    )
    check.add_argument("file")
    check.set_defaults(func=cmd_config_check)
    docs = cfg_sub.add_parser("docs", help="print the configuration reference (Markdown) from the models")
    docs.set_defaults(func=cmd_config_docs)

    sim = sub.add_parser("simulate", help="run device simulators against a broker")
    sim_sub = sim.add_subparsers(dest="sim_command", required=True, metavar="WHAT")
    site = sim_sub.add_parser(
        "site",
        help="simulate every MQTT device of a site config",
        description="Play every MQTT device of the site (heartbeats, and the scenario's events and faults) "
        "against the broker at --mqtt-url until interrupted.",
    )
    site.add_argument("-c", "--config", required=True, help="site YAML file")
    site.add_argument(
        "--mqtt-url",
        default=os.environ.get("SHARPEYE_MQTT_URL"),
        required=False,
        help="broker URL (default SHARPEYE_MQTT_URL)",
    )
    site.add_argument("--scenario", default=None, help="scenario YAML file or packaged scenario name")
    site.add_argument("--speed", type=float, default=1.0, help="time factor for the scenario (2 = twice as fast)")
    site.set_defaults(func=cmd_simulate_site)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    settings_level = os.environ.get("SHARPEYE_LOG_LEVEL", "INFO")
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else settings_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
