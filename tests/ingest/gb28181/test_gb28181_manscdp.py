"""MANSCDP bodies: charsets, leniency, hardening; device codes; the driver and its config model."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError
from sharpeye.config.gb28181 import GbSettings
from sharpeye.config.gb_code import CodeError, type_of
from sharpeye.ingest.driver import Payload
from sharpeye.ingest.gb28181.config import GbDeviceConfig
from sharpeye.ingest.gb28181.manscdp import ManscdpError, build, parse_body
from sharpeye.ingest.reading import DecodeError
from sharpeye.ingest.registry import installed

from tests.helpers import env_secret

DEVICE = "34020000001320000001"
NOW = datetime(2026, 1, 5, 2, 0, tzinfo=UTC)


def _device() -> GbDeviceConfig:
    return GbDeviceConfig.model_validate({"id": DEVICE, "kind": "gb28181", "name": "东门", "grid": "g1"})


def test_gb2312_body_round_trip_declares_its_charset() -> None:
    body = build("Notify", "Alarm", 7, DEVICE, [("AlarmDescription", "区域入侵")])
    assert body.startswith(b'<?xml version="1.0" encoding="GB2312"?>')
    assert "区域入侵".encode("gb2312") in body
    parsed = parse_body(body)
    assert (parsed.root, parsed.cmd_type, parsed.sn, parsed.device_id) == ("notify", "Alarm", 7, DEVICE)
    assert parsed.fields["alarmdescription"] == "区域入侵"
    # a character outside GB2312 switches the declaration to GB18030, never a lie
    rare = build("Notify", "Alarm", 8, DEVICE, [("AlarmDescription", "㐀")])
    assert rare.startswith(b'<?xml version="1.0" encoding="GB18030"?>')
    assert parse_body(rare).fields["alarmdescription"] == "㐀"


def test_lenient_parsing_of_imperfect_devices() -> None:
    # declared UTF-8 but GB2312 bytes, stray '&', odd tag case, padded numbers, whitespace
    raw = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<NOTIFY><cmdtype> Keepalive </cmdtype><Sn>007</Sn>'
        f"<DEVICEID>{DEVICE}</DEVICEID><Status>OK & fine</Status></NOTIFY>"
    ).encode("gb2312")
    parsed = parse_body(raw)
    assert parsed.cmd_type == "Keepalive" and parsed.sn == 7 and parsed.fields["status"] == "OK & fine"
    utf8 = f"<Response><CmdType>Catalog</CmdType><SN>1</SN><DeviceID>{DEVICE}</DeviceID><SumNum> 02 </SumNum>"
    utf8 += '<DeviceList Num="1"><Item><DeviceID>1</DeviceID><Name>北门</Name></Item></DeviceList></Response>'
    parsed = parse_body(utf8.encode())
    assert parsed.sum_num == 2 and parsed.items == [{"deviceid": "1", "name": "北门"}]


XXE = b"""<?xml version="1.0"?>
<!DOCTYPE Notify [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<Notify><CmdType>Keepalive</CmdType><SN>1</SN><DeviceID>&xxe;</DeviceID></Notify>"""
BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<Notify><CmdType>Keepalive</CmdType><SN>1</SN><DeviceID>&lol3;</DeviceID></Notify>"""


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (XXE, "dtd_forbidden"),
        (BOMB, "dtd_forbidden"),
        (b"<Notify><CmdType>Keepalive</CmdType>", "bad_xml"),
        (b"<Notify><SN>1</SN><DeviceID>1</DeviceID></Notify>", "missing_cmdtype"),
        (b"<Notify><CmdType>Keepalive</CmdType><SN>x</SN><DeviceID>1</DeviceID></Notify>", "bad_sn"),
        (b"<Hello><CmdType>Keepalive</CmdType><SN>1</SN><DeviceID>1</DeviceID></Hello>", "bad_root"),
        (b"", "empty_body"),
    ],
)
def test_rejects_with_reason(data: bytes, reason: str) -> None:
    with pytest.raises(ManscdpError) as err:
        parse_body(data)
    assert err.value.reason == reason


def test_codes_are_validated_with_their_type() -> None:
    assert type_of(DEVICE) == 132
    with pytest.raises(CodeError):
        type_of("3402000000132000001")  # 19 digits
    with pytest.raises(ValidationError, match="type code 216"):
        GbDeviceConfig.model_validate({"id": "34020000002160000001", "kind": "gb28181", "name": "x", "grid": "g"})
    with pytest.raises(ValidationError, match="platform"):
        GbSettings(sip_id=DEVICE)
    with pytest.raises(ValidationError, match="keepalive"):
        GbSettings.model_validate(
            {
                "sip_id": "34020000002000000001",
                "cascade": {
                    "upper_id": "34010000002000000001",
                    "upper_host": "127.0.0.1",
                    "password": env_secret("p"),
                    "register_expires_s": 120,
                    "keepalive_interval_s": 60,
                    "keepalive_count": 3,
                },
            }
        )


def test_driver_is_registered_and_decodes_alarms_and_keepalives() -> None:
    driver = installed().get("gb28181")
    device = _device()
    assert installed().device_adapter().validate_python(device.model_dump()).id == DEVICE
    alarm = build(
        "Notify",
        "Alarm",
        3,
        DEVICE,
        [("AlarmPriority", 1), ("AlarmMethod", 2), ("AlarmTime", "2026-01-05T10:00:00"), ("Info", [("AlarmType", 2)])],
    )
    (reading,) = driver.decode(device, Payload(DEVICE, "MESSAGE", alarm, NOW))
    assert reading.kind == "gb28181.alarm" and reading.value == "alarm"
    assert reading.attrs["priority"] == 1 and reading.attrs["method"] == 2 and reading.attrs["type"] == 2
    assert reading.ts == NOW  # 10:00 in Asia/Shanghai
    keepalive = build("Notify", "Keepalive", 4, DEVICE, [("Status", "OK")])
    (beat,) = driver.decode(device, Payload(DEVICE, "MESSAGE", keepalive, NOW))
    assert beat.kind == "device.heartbeat" and beat.value is True
    assert set(driver.reading_kinds) >= {"gb28181.alarm", "device.online"}


@pytest.mark.parametrize(
    ("channel", "data", "reason"),
    [
        ("REGISTER", b"", "unknown_channel"),
        ("MESSAGE", XXE, "dtd_forbidden"),
        ("MESSAGE", build("Notify", "Alarm", 1, DEVICE, [("AlarmPriority", 9), ("AlarmMethod", 2)]), "bad_alarm"),
        ("MESSAGE", build("Notify", "Alarm", 1, DEVICE, [("AlarmPriority", 1), ("AlarmMethod", 0)]), "bad_alarm"),
        ("MESSAGE", build("Notify", "Keepalive", 1, "34020000001320000009"), "wrong_device"),
    ],
)
def test_driver_rejects_bad_payloads(channel: str, data: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as err:
        installed().get("gb28181").decode(_device(), Payload(DEVICE, channel, data, NOW))
    assert err.value.reason == reason
