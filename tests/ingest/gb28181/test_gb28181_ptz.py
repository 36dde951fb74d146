"""PTZ over GB/T 28181: the PTZCmd codec, and DeviceControl/PresetQuery against the simulated camera's head."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from sharpeye.ingest.gb28181.control import ControlError, GbControl
from sharpeye.ingest.gb28181.platform import GbPlatform
from sharpeye.ingest.gb28181.ptz import PtzCommand, PtzError, command_for, decode, encode
from sharpeye.simulators.gb28181.control import PtzHead
from sharpeye.simulators.gb28181.device import DeviceFleet, SimDevice, code

from tests.ingest.gb28181.conftest import PLATFORM_ID, device_config, until


# --- the codec ------------------------------------------------------------------------------------
def test_stop_and_known_commands_encode_as_the_standard_writes_them() -> None:
    assert encode(PtzCommand("move")) == "A50F0100000000B5"  # stop
    right = encode(command_for("right", 0x80))
    assert right[:8] == "A50F0101" and right[8:10] == "80" and right[10:12] == "00"
    assert int(right[14:16], 16) == sum(bytes.fromhex(right[:14])) % 256
    assert encode(command_for("up", 0x40))[6:8] == "08"
    assert encode(command_for("downleft", 0x40))[6:8] == "06"
    zoom = encode(command_for("zoom_in", 0xFF))
    assert zoom[6:8] == "10" and zoom[12] == "F"  # zoom speed in the high nibble of byte 7
    assert encode(command_for("zoom_out", 0x10))[6:8] == "20"
    assert encode(command_for("focus_near", 0x20))[6:8] == "42"
    assert encode(command_for("iris_close", 0x20))[6:8] == "48"
    call = encode(PtzCommand("preset", op="call", preset=3))
    assert call[6:8] == "82" and call[10:12] == "03"


@pytest.mark.parametrize("action", ["left", "right", "up", "downright", "zoom_in", "zoom_out", "stop",
                                    "focus_far", "focus_near", "iris_open", "iris_close"])  # fmt: skip
def test_round_trip(action: str) -> None:
    cmd = command_for(action, 200)
    assert decode(cmd.encode()) == cmd


def test_address_of_12_bits_round_trips() -> None:
    cmd = PtzCommand("move", pan=1, pan_speed=9, address=0xABC)
    text = cmd.encode()
    assert text[4:6] == "BC" and text[13] == "A"
    assert decode(text) == cmd


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("A50F01", "bad_length"),
        ("A50F0100000000B5FF", "bad_length"),
        ("ZZ0F0100000000B5", "not_hex"),
        ("A40F0100000000B4", "bad_header"),
        ("A5000100000000A6", "bad_version_check"),
        ("A50F0100000000B6", "bad_checksum"),
        ("A50F010300000000", "bad_checksum"),
    ],
)
def test_malformed_ptzcmd_is_named(text: str, reason: str) -> None:
    with pytest.raises(PtzError) as caught:
        decode(text)
    assert caught.value.reason == reason


def _sealed(*body: int) -> str:
    raw = bytes([0xA5, 0x0F, 0x01, *body])
    return (raw + bytes([sum(raw) % 256])).hex().upper()


@pytest.mark.parametrize(
    ("instruction", "data2", "reason"),
    [(0x03, 0, "conflicting_directions"), (0x0C, 0, "conflicting_directions"), (0x30, 0, "conflicting_directions"),
     (0x43, 0, "conflicting_directions"), (0x82, 0, "bad_preset"), (0x99, 0, "unknown_instruction")],
)  # fmt: skip
def test_well_formed_but_meaningless_instructions_are_refused(instruction: int, data2: int, reason: str) -> None:
    with pytest.raises(PtzError) as caught:
        decode(_sealed(instruction, 0, data2, 0))
    assert caught.value.reason == reason


def test_out_of_range_values_are_refused_when_building() -> None:
    for bad, reason in [
        (PtzCommand("move", pan=2), "bad_axis"),
        (PtzCommand("move", pan=1, pan_speed=300), "bad_speed"),
        (PtzCommand("move", zoom=1, zoom_speed=16), "bad_speed"),
        (PtzCommand("preset", op="call", preset=0), "bad_preset"),
        (PtzCommand("move", address=5000), "bad_address"),
    ]:
        with pytest.raises(PtzError) as caught:
            encode(bad)
        assert caught.value.reason == reason
    with pytest.raises(PtzError) as unknown:
        command_for("spin", 10)
    assert unknown.value.reason == "unknown_action"


def test_simulated_head_moves_while_moving_and_stops() -> None:
    now = [100.0]
    head = PtzHead(clock=lambda: now[0])
    head.apply(command_for("right", 255).encode())
    now[0] += 1.5
    assert head.position()["pan"] == pytest.approx(90.0)
    head.apply(command_for("stop", 0).encode())
    now[0] += 5
    assert head.position()["pan"] == pytest.approx(90.0) and not head.position()["moving"]
    head.apply(command_for("up", 255).encode())
    now[0] += 10
    assert head.position()["tilt"] == 90.0  # clamped


# --- against the simulated device -----------------------------------------------------------------
async def _started(make_platform: Any, *devices: SimDevice) -> tuple[GbPlatform, DeviceFleet]:
    platform = await make_platform([device_config(d) for d in devices])
    fleet = DeviceFleet(list(devices), platform_id=PLATFORM_ID, platform_port=platform.port, t1=0.1)
    await fleet.start()
    wanted = sum(len(d.channels) for d in devices)
    await until(lambda: len(platform.channels()) == wanted)
    return platform, fleet


async def test_ptz_moves_the_channel_of_an_nvr_and_stops(make_platform: Any) -> None:
    nvr = SimDevice(id=code("34020000", 118, 7), password="pw-nvr", kind="nvr", channel_count=4)
    platform, fleet = await _started(make_platform, nvr)
    control = GbControl(platform)
    channel = nvr.channels[2][0]
    try:
        await control.ptz(channel, "right", 255)
        head = nvr.control.head(channel)
        assert head.moving
        await until(lambda: head.position()["pan"] > 10)  # the head turns while the move lasts
        await control.ptz(channel, "stop")
        stopped = head.position()["pan"]
        assert not head.moving and stopped > 10
        await asyncio.sleep(0.2)
        assert head.position()["pan"] == stopped
        assert nvr.control.head(nvr.channels[0][0]).commands == []  # only the addressed channel moved
        await control.ptz(channel, "zoom_in", 255)
        await until(lambda: head.position()["zoom"] > 1.5)
        await control.ptz(channel, "stop")
        assert control.stats["ptz.move"] == 4
    finally:
        await control.stop()
        await fleet.stop()


async def test_a_move_without_a_stop_is_stopped_after_the_hold_time(make_platform: Any) -> None:
    ipc = SimDevice(id=code("34020000", 132, 8), password="pw-ipc")
    platform, fleet = await _started(make_platform, ipc)
    control = GbControl(platform, hold_s=0.3)
    channel = ipc.channels[0][0]
    try:
        await control.ptz(channel, "left", 100)
        head = ipc.control.head(channel)
        started = time.monotonic()
        await until(lambda: not head.moving, limit_s=3)
        assert time.monotonic() - started >= 0.25
        assert control.stats["ptz.auto_stop"] == 1
    finally:
        await control.stop()
        await fleet.stop()


async def test_presets_set_list_call_delete(make_platform: Any) -> None:
    ipc = SimDevice(id=code("34020000", 132, 9), password="pw-ipc")
    platform, fleet = await _started(make_platform, ipc)
    control = GbControl(platform)
    channel = ipc.channels[0][0]
    head = ipc.control.head(channel)
    try:
        assert await control.presets(channel) == []
        await control.ptz(channel, "right", 255)
        await until(lambda: head.position()["pan"] > 20)
        await control.ptz(channel, "stop")
        await control.preset(channel, "set", 5)
        guard_pan = head.position()["pan"]
        await control.ptz(channel, "left", 255)
        await until(lambda: abs(head.position()["pan"] - guard_pan) > 10)
        await control.ptz(channel, "stop")
        listed = await control.presets(channel)
        assert [(p.number, p.name) for p in listed] == [(5, "预置位5")]
        await control.preset(channel, "call", 5)
        assert head.position()["pan"] == guard_pan
        await control.preset(channel, "delete", 5)
        assert await control.presets(channel) == []
        with pytest.raises(ControlError) as bad:
            await control.preset(channel, "call", 0)
        assert bad.value.reason == "bad_request" and bad.value.status == 422
    finally:
        await control.stop()
        await fleet.stop()


async def test_unknown_channel_and_a_device_that_never_answers(make_platform: Any) -> None:
    ipc = SimDevice(id=code("34020000", 132, 10), password="pw-ipc")
    platform, fleet = await _started(make_platform, ipc)
    control = GbControl(platform, timeout_s=0.5)
    channel = ipc.channels[0][0]
    try:
        with pytest.raises(ControlError) as unknown:
            await control.ptz(code("34020000", 131, 999), "left", 10)
        assert unknown.value.reason == "unknown_channel" and unknown.value.status == 404
        ipc.answer_control = False
        for call in (control.ptz(channel, "left", 10), control.presets(channel),
                     control.device_command(channel, "guard")):  # fmt: skip
            started = time.monotonic()
            with pytest.raises(ControlError) as silent:
                await call
            assert silent.value.reason == "timeout" and silent.value.status == 504
            assert time.monotonic() - started < 3
        assert control.stats["error.timeout"] == 3
        ipc.answer_control = True  # nothing stuck: the next command goes through
        await control.ptz(channel, "left", 10)
        assert ipc.control.head(channel).moving
        assert not platform.endpoint._pending  # no transaction left waiting
    finally:
        await control.stop()
        await fleet.stop()


async def test_device_commands_guard_record_reboot(make_platform: Any) -> None:
    ipc = SimDevice(id=code("34020000", 132, 11), password="pw-ipc")
    platform, fleet = await _started(make_platform, ipc)
    control = GbControl(platform)
    channel = ipc.channels[0][0]
    try:
        assert await control.device_command(ipc.id, "guard") == "OK"
        assert ipc.control.guard
        assert await control.device_command(ipc.id, "unguard") == "OK"
        assert not ipc.control.guard
        assert await control.device_command(channel, "record_start") == "OK"
        assert ipc.control.recording == {channel}
        assert await control.device_command(channel, "record_stop") == "OK"
        assert ipc.control.recording == set()
        assert await control.device_command(ipc.id, "teleboot") == "sent"
        assert ipc.control.reboots == 1
    finally:
        await control.stop()
        await fleet.stop()


async def test_a_device_refusing_a_malformed_ptzcmd_is_a_clear_error(make_platform: Any) -> None:
    ipc = SimDevice(id=code("34020000", 132, 12), password="pw-ipc")
    platform, fleet = await _started(make_platform, ipc)
    control = GbControl(platform)
    channel = ipc.channels[0][0]
    try:
        bad = build_control(channel, "A50F0100000000B6")
        status = await platform.send_message(ipc.id, bad)
        assert status == 400 and ipc.control.rejected == ["bad_checksum"]
    finally:
        await control.stop()
        await fleet.stop()


def build_control(channel: str, ptzcmd: str) -> bytes:
    from sharpeye.ingest.gb28181.manscdp import build

    return build("Control", "DeviceControl", 1, channel, [("PTZCmd", ptzcmd)])
