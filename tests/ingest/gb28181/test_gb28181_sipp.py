"""Interoperability with real SIPp (Debian package sip-tester), in both directions, judged by sipp's exit code.

- sipp plays a device (tests/gb28181/sipp/device.xml + device_ooc.xml): REGISTER with digest (qop=auth),
  answer the hub's Catalog query in two pages and its DeviceInfo query, keepalive, alarm, accept the
  hub's alarm answer. With a wrong password the hub answers 403 and sipp must fail.
- sipp plays the upper platform (tests/gb28181/sipp/upper.xml): challenge, verify the hub's digest,
  query its catalog and check every page's SumNum. With a wrong password sipp refuses and must fail.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sharpeye.config.gb28181 import GbSettings
from sharpeye.governance.cascade import GbCascade
from sharpeye.ingest.credential import device_password
from sharpeye.ingest.gb28181.config import GbDeviceConfig
from sharpeye.ingest.gb28181.platform import Channel
from sharpeye.ingest.gb28181.record import RecordList, RecordQueryError, query_records

from tests.helpers import env_secret
from tests.ingest.gb28181.conftest import PLATFORM_ID, Sink

SCENARIOS = Path(__file__).parent / "sipp"
DEVICE_ID = "34020000001320000077"
SECRET = "sipp-site-device-secret-01"
PASSWORD = device_password(SECRET, DEVICE_ID, "sip")  # no password of its own: derived from the device secret


def _sipp() -> str:
    path = shutil.which("sipp")
    if path is None:
        pytest.fail("sipp is not installed: apt-get install sip-tester (listed in scripts/apt-packages.txt)")
    return path


def _free_udp_port() -> int:
    """A port free for UDP and for TCP alike (sipp's main socket is one or the other: a port free for UDP only was
    once taken for TCP and sipp could not bind it)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp, socket.socket() as tcp:
            udp.bind(("127.0.0.1", 0))
            port = int(udp.getsockname()[1])
            try:
                tcp.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


async def _run(args: list[str | bytes], tmp_path: Path, limit_s: float = 40, transport: str = "u1") -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        _sipp(),
        *args,
        "-i",
        "127.0.0.1",
        "-t",
        transport,
        "-nostdin",
        "-trace_err",
        "-error_file",
        str(tmp_path / "sipp-errors.log"),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(limit_s):
        _, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, err.decode("utf-8", "replace")


def _device_args(port: int, password: str) -> list[str | bytes]:
    return [
        f"127.0.0.1:{port}",
        "-sf",
        str(SCENARIOS / "device.xml"),
        "-oocsf",
        str(SCENARIOS / "device_ooc.xml"),
        "-m",
        "1",
        "-p",
        str(_free_udp_port()),
        "-au",
        DEVICE_ID,
        "-ap",
        password,
        "-key",
        "device_id",
        DEVICE_ID,
        "-key",
        "platform_id",
        PLATFORM_ID,
        "-key",
        "domain",
        PLATFORM_ID[:10],
        "-key",
        "channel_prefix",
        "3402000000131",
        "-key",
        "channel_name",
        "东门".encode("gb2312"),
        "-key",
        "alarm_desc",
        "区域入侵".encode("gb2312"),
        "-timeout",
        "20s",
        "-timeout_error",
    ]


def _device() -> GbDeviceConfig:
    return GbDeviceConfig(id=DEVICE_ID, kind="gb28181", name="sipp", grid="g1")


@pytest.mark.parametrize("transport", ["u1", "t1"], ids=["udp", "tcp"])
async def test_sipp_device_registers_reports_and_alarms(
    make_platform: Any, sink: Sink, tmp_path: Path, transport: str
) -> None:
    platform = await make_platform([_device()], device_secret=SECRET)
    code, err = await _run(_device_args(platform.port, PASSWORD), tmp_path, transport=transport)
    assert code == 0, err
    state = platform.devices_state()[0]
    assert state["transport"] == ("udp" if transport == "u1" else "tcp")
    assert state["registered"] and state["online"] and state["manufacturer"] == "SIPp"
    assert sorted((c.channel_id, c.name, c.status) for c in platform.channels()) == [
        ("34020000001310000001", "东门1", "ON"),
        ("34020000001310000002", "东门2", "ON"),
        ("34020000001310000003", "东门3", "OFF"),
    ]
    assert [r.value for r in sink.of("device.heartbeat")] == [True]
    (alarm,) = sink.of("gb28181.alarm")
    assert (alarm.attrs["priority"], alarm.attrs["method"], alarm.attrs["type"]) == (1, 5, 6)
    assert alarm.attrs["description"] == "区域入侵"
    assert alarm.ts.isoformat() == "2026-01-05T02:00:00+00:00"  # 10:00 Beijing time


async def test_sipp_device_with_wrong_password_fails(make_platform: Any, sink: Sink, tmp_path: Path) -> None:
    platform = await make_platform([_device()], device_secret=SECRET)
    # The device's MQTT password, derived from the same secret, is not its SIP password.
    code, err = await _run(_device_args(platform.port, device_password(SECRET, DEVICE_ID, "mqtt")), tmp_path)
    assert code != 0
    assert "403" in err
    assert platform.stats["register.wrong_password"] == 1
    assert not platform.devices_state()[0]["registered"]
    assert not sink.readings


def _cascade_settings(upper_port: int, password: str) -> GbSettings:
    return GbSettings.model_validate(
        {
            "sip_id": PLATFORM_ID,
            "port": 0,
            "sip_t1_s": 0.1,
            "cascade": {
                "upper_id": "34010000002000000001",
                "upper_host": "127.0.0.1",
                "upper_port": upper_port,
                "local_port": 0,
                "password": env_secret(password),
                "catalog_page_size": 2,
                "keepalive_interval_s": 300,
                "retry_s": 30,
            },
        }
    )


async def _cascade_against_sipp(
    password: str, calls: int, tmp_path: Path, scenario: str = "upper.xml", records: Any = None
) -> tuple[int, str, GbCascade]:
    port = _free_udp_port()
    channels = [
        Channel(device_id=PLATFORM_ID, channel_id=f"340200000013100000{i:02d}", name=f"点位{i}") for i in range(1, 6)
    ]
    run = asyncio.ensure_future(
        _run(
            [
                "-sf",
                str(SCENARIOS / scenario),
                "-m",
                str(calls),
                "-p",
                str(port),
                "-timeout",
                "20s",
                "-timeout_error",
            ],
            tmp_path,
        )
    )
    cascade = GbCascade(_cascade_settings(port, password), lambda: channels, records=records)
    await asyncio.sleep(0.3)  # let sipp bind before the first REGISTER (a lost one is retransmitted anyway)
    await cascade.start()
    try:
        code, err = await run
    finally:
        await cascade.stop(unregister=False)
    return code, err, cascade


async def test_sipp_upper_platform_verifies_digest_and_reads_catalog_pages(tmp_path: Path) -> None:
    # 1 registration call + 3 catalog pages (5 channels, 2 per page), each page checked for SumNum 5
    code, err, cascade = await _cascade_against_sipp("upper-secret", 4, tmp_path)
    assert code == 0, err
    assert cascade.stats["registrations"] == 1
    assert cascade.stats["catalog_answers"] == 1


async def test_sipp_upper_platform_asks_record_info_and_checks_every_page(tmp_path: Path) -> None:
    """sipp as the upper platform asks RecordInfo for one of our channels: 3 records in pages of 2, each page
    checked by sipp for the SN, the channel, SumNum 3 and the local start time."""
    base = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)  # 09:00 Beijing time

    async def records(channel: str, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
        assert (start, end) == (base, base + timedelta(hours=1))
        return [(base + timedelta(minutes=20 * i), base + timedelta(minutes=20 * i + 10)) for i in range(3)]

    code, err, cascade = await _cascade_against_sipp("upper-secret", 3, tmp_path, "upper_records.xml", records)
    assert code == 0, err
    assert cascade.stats["recordinfo.answers"] == 1

    async def four(channel: str, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
        return [(base + timedelta(minutes=10 * i), base + timedelta(minutes=10 * i + 5)) for i in range(4)]

    code, _, _ = await _cascade_against_sipp("upper-secret", 3, tmp_path, "upper_records.xml", four)
    assert code != 0  # SumNum 4 where sipp expects 3: sipp's check fails, so the check above means something


async def test_sipp_upper_platform_refuses_wrong_password(tmp_path: Path) -> None:
    code, _, cascade = await _cascade_against_sipp("wrong-secret", 1, tmp_path)
    assert code != 0
    assert cascade.stats["register.403"] == 1
    assert cascade.stats["registrations"] == 0


async def test_sipp_exit_code_is_trusted(tmp_path: Path) -> None:
    """A scenario that cannot succeed (nobody listens) must make sipp exit non-zero."""
    args = _device_args(_free_udp_port(), PASSWORD)
    args[args.index("20s")] = "2s"
    code, _ = await _run(args, tmp_path)
    assert code != 0


async def _sipp_nvr_records(
    make_platform: Any, tmp_path: Path, sum_num: int, start: datetime
) -> tuple[int, str, RecordList | Exception]:
    """sipp as an NVR (``device_records.xml`` + ``device_records_ooc.xml``) registers; once its channel is known the
    hub asks the channel's RecordInfo from ``start`` for an hour; sipp answers three records in two pages with
    ``SumNum`` ``sum_num``."""
    platform = await make_platform([_device()], device_secret=SECRET)
    args = _device_args(platform.port, PASSWORD)
    args[args.index(str(SCENARIOS / "device.xml"))] = str(SCENARIOS / "device_records.xml")
    args[args.index(str(SCENARIOS / "device_ooc.xml"))] = str(SCENARIOS / "device_records_ooc.xml")
    args += ["-key", "sum_num", str(sum_num)]
    run = asyncio.ensure_future(_run(args, tmp_path))
    try:
        async with asyncio.timeout(10):
            while not platform.channels():  # noqa: ASYNC110 - the platform's state, polled with a deadline
                await asyncio.sleep(0.05)
        channel = platform.channels()[0].channel_id
        found: RecordList | Exception
        try:
            found = await query_records(platform, channel, start, start + timedelta(hours=1), timeout_s=1.5)
        except RecordQueryError as exc:
            found = exc
    finally:
        code, err = await run
    return code, err, found


async def test_sipp_nvr_answers_record_info_in_pages(make_platform: Any, tmp_path: Path) -> None:
    """A device's RecordInfo pages from real sipp: three records in two pages are merged (local times read in
    Beijing time); a device that says SumNum 4 gives a partial list with the reason; a query sipp does not expect
    is left unanswered and ends in a clear timeout."""
    base = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)  # 09:00 Beijing time
    code, err, found = await _sipp_nvr_records(make_platform, tmp_path, 3, base)
    assert code == 0, err
    assert isinstance(found, RecordList), found
    assert found.complete and found.sum_num == 3 and found.pages == 2
    assert [(r.start, r.end) for r in found.records] == [
        (base + timedelta(minutes=20 * i), base + timedelta(minutes=20 * i + 10)) for i in range(3)
    ]
    code, err, found = await _sipp_nvr_records(make_platform, tmp_path, 4, base)
    assert code == 0, err
    assert isinstance(found, RecordList) and not found.complete and len(found.records) == 3
    assert found.error is not None and "3 of 4" in found.error
    # sipp answers only a query from 09:00 (it checks the hub's StartTime): any other goes unanswered, and the hub
    # says so after its timeout instead of waiting on
    code, _, found = await _sipp_nvr_records(make_platform, tmp_path, 3, base + timedelta(hours=1))
    assert isinstance(found, RecordQueryError) and "incomplete answer (0 items)" in str(found), found
