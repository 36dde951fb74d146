"""Fuzzing: malformed SIP and XML, truncated datagrams, wrong Content-Length. No crash, no hang.

Every input either parses or raises the module's own error with a reason; the endpoint survives any
datagram and still answers a good request afterwards. Hypothesis' deadline catches hangs.
"""

from __future__ import annotations

import asyncio
import socket
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sharpeye.ingest.gb28181.manscdp import ManscdpError, build, parse_body
from sharpeye.ingest.transport.sip.digest import DigestServer
from sharpeye.ingest.transport.sip.endpoint import Peer, SipEndpoint
from sharpeye.ingest.transport.sip.message import SipMessage, SipParseError, StreamFramer, parse

DEVICE = "34020000001320000001"
BODY = build("Notify", "Alarm", 1, DEVICE, [("AlarmPriority", 1), ("AlarmMethod", 5), ("AlarmDescription", "入侵")])


def _good_message() -> bytes:
    msg = SipMessage(method="MESSAGE", uri="sip:34020000002000000001@3402000000")
    msg.add("Via", "SIP/2.0/UDP 127.0.0.1:5062;rport;branch=z9hG4bKfuzz")
    msg.add("From", f"<sip:{DEVICE}@3402000000>;tag=1")
    msg.add("To", "<sip:34020000002000000001@3402000000>")
    msg.add("Call-ID", "fuzz@127.0.0.1")
    msg.add("CSeq", "1 MESSAGE")
    msg.add("Content-Type", "Application/MANSCDP+xml")
    msg.body = BODY
    return msg.to_bytes()


GOOD = _good_message()
FAST = settings(max_examples=300, deadline=timedelta(milliseconds=500), suppress_health_check=[HealthCheck.too_slow])


def _parse_or_reason(data: bytes) -> None:
    try:
        parse(data)
    except SipParseError as exc:
        assert exc.reason


@FAST
@given(st.binary(max_size=2048))
def test_random_bytes(data: bytes) -> None:
    _parse_or_reason(data)


@FAST
@given(st.integers(min_value=0, max_value=len(GOOD)))
def test_truncated_datagrams(cut: int) -> None:
    _parse_or_reason(GOOD[:cut])


@FAST
@given(st.integers(min_value=0, max_value=10**12), st.binary(max_size=64))
def test_wrong_content_length(length: int, tail: bytes) -> None:
    head, _, body = GOOD.partition(b"\r\n\r\n")
    head = head.replace(f"Content-Length: {len(BODY)}".encode(), f"Content-Length: {length}".encode())
    try:
        msg = parse(head + b"\r\n\r\n" + body + tail)
    except SipParseError as exc:
        assert exc.reason == "truncated"
        assert length > len(body) + len(tail)
    else:
        assert len(msg.body) == length


@FAST
@given(st.lists(st.tuples(st.integers(0, len(GOOD) - 1), st.binary(min_size=1, max_size=8)), max_size=8))
def test_mutated_messages(edits: list[tuple[int, bytes]]) -> None:
    data = bytearray(GOOD)
    for pos, chunk in edits:
        data[pos : pos + len(chunk)] = chunk
    _parse_or_reason(bytes(data))


@FAST
@given(st.binary(max_size=512), st.integers(1, 64))
def test_stream_framer(data: bytes, step: int) -> None:
    framer = StreamFramer(limit=4096)
    try:
        for i in range(0, len(data), step):
            for segment in framer.feed(data[i : i + step]):
                _parse_or_reason(segment)
    except SipParseError as exc:
        assert exc.reason == "oversize"


XML_PIECES = st.sampled_from(
    [
        "<Notify>",
        "</Notify>",
        "<CmdType>",
        "</CmdType>",
        "Alarm",
        "<SN>",
        "</SN>",
        "12",
        "<DeviceID>",
        "</DeviceID>",
        DEVICE,
        "&",
        "&amp;",
        "&lol;",
        "<!DOCTYPE x [<!ENTITY lol 'a'>]>",
        "<![CDATA[x]]>",
        '<?xml version="1.0" encoding="GB2312"?>',
        "区域",
        "<Item>",
        "</Item>",
        '<DeviceList Num="1">',
        "</DeviceList>",
        "<SumNum>",
        "</SumNum>",
        "\x00",
        "<",
        ">",
        '"',
        "'",
    ]
)


def _parse_body_or_reason(data: bytes) -> None:
    try:
        parse_body(data)
    except ManscdpError as exc:
        assert exc.reason


@FAST
@given(st.lists(XML_PIECES, max_size=40), st.sampled_from(["utf-8", "gb18030"]))
def test_xml_pieces(pieces: list[str], codec: str) -> None:
    _parse_body_or_reason("".join(pieces).encode(codec))


@FAST
@given(st.binary(max_size=1024))
def test_xml_random_bytes(data: bytes) -> None:
    _parse_body_or_reason(data)


@FAST
@given(st.integers(min_value=0, max_value=len(BODY)))
def test_xml_truncated(cut: int) -> None:
    _parse_body_or_reason(BODY[:cut])


async def test_endpoint_survives_garbage_and_still_answers() -> None:
    answered: list[str] = []

    def handler(msg: SipMessage, peer: Peer) -> SipMessage:
        answered.append(msg.method)
        return msg.response(200)

    endpoint = SipEndpoint(handler, host="127.0.0.1", port=0, t1=0.05)
    await endpoint.start()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    sock.bind(("127.0.0.1", 0))
    loop = asyncio.get_running_loop()
    try:
        garbage = [b"", b"\x00" * 100, GOOD[:50], GOOD.replace(b"CSeq: 1", b"CSeq: x"), b"SIP/2.0 200 OK\r\n\r\n"]
        garbage += [GOOD[:i] for i in range(0, len(GOOD), 37)]
        for data in garbage:
            sock.sendto(data, ("127.0.0.1", endpoint.port))
        sock.sendto(GOOD, ("127.0.0.1", endpoint.port))
        async with asyncio.timeout(5):
            reply = await loop.sock_recv(sock, 65535)
        assert parse(reply).status == 200
        assert answered == ["MESSAGE"]
        assert sum(v for k, v in endpoint.stats.items() if k.startswith("parse_error.")) >= len(garbage) - 2
        # a retransmitted request is answered from the transaction cache, not handled twice
        sock.sendto(GOOD, ("127.0.0.1", endpoint.port))
        async with asyncio.timeout(5):
            again = await loop.sock_recv(sock, 65535)
        assert again == reply and answered == ["MESSAGE"]
    finally:
        sock.close()
        await endpoint.stop()


async def test_tcp_garbage_closes_only_that_connection() -> None:
    def handler(msg: SipMessage, peer: Peer) -> SipMessage:
        return msg.response(200)

    endpoint = SipEndpoint(handler, host="127.0.0.1", port=0, t1=0.05)
    await endpoint.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", endpoint.port)
        writer.write(b"X" * 70_000)  # a header block that never ends
        await writer.drain()
        async with asyncio.timeout(5):
            assert await reader.read() == b""  # closed by the endpoint
        writer.close()
        reader, writer = await asyncio.open_connection("127.0.0.1", endpoint.port)
        writer.write(b"garbage\r\n\r\n" + GOOD)  # a bad segment is dropped, the next one answered
        await writer.drain()
        async with asyncio.timeout(5):
            head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"SIP/2.0 200 OK")
        writer.close()
        assert endpoint.stats["parse_error.oversize"] == 1
    finally:
        await endpoint.stop()


@FAST
@given(st.text(max_size=300))
def test_digest_check_never_raises(header: str) -> None:
    server = DigestServer("3402000000")
    for value in (header, "Digest " + header, server.challenge().replace("realm", header[:20])):
        reason = server.check(value, method="REGISTER", password="pw", username=DEVICE)
        assert reason  # nothing random is ever a valid answer
