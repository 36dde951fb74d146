"""SIP messages: lenient parsing of real-world shapes, exact serialization, stream framing, digest."""

from __future__ import annotations

import pytest
from sharpeye.ingest.transport.sip.digest import Challenge, DigestServer, parse_params, response_digest
from sharpeye.ingest.transport.sip.message import SipMessage, SipParseError, StreamFramer, parse

# A REGISTER as IPCs send it: bare LF line ends, compact and odd-case header names, folded header,
# Content-Length absent (allowed on UDP).
IPC_REGISTER = (
    b"REGISTER sip:34020000002000000001@3402000000 SIP/2.0\n"
    b"v: SIP/2.0/UDP 192.168.1.64:5060;rport;branch=z9hG4bK1817405727\n"
    b"f: <sip:34020000001320000001@3402000000>;tag=1510195434\n"
    b"t: <sip:34020000001320000001@3402000000>\n"
    b"i: 1427537745\n"
    b"CSEQ: 1 REGISTER\n"
    b"contact: <sip:34020000001320000001@192.168.1.64:5060>\n"
    b"Max-Forwards: 70\n"
    b"User-Agent: IP Camera\n"
    b"Expires:   3600\n"
    b"Subject: a folded\n"
    b"  header\n"
    b"\n"
)


def test_parses_lenient_real_world_register() -> None:
    msg = parse(IPC_REGISTER)
    assert msg.method == "REGISTER" and msg.uri == "sip:34020000002000000001@3402000000"
    assert msg.from_user == "34020000001320000001" and msg.from_tag == "1510195434"
    assert msg.call_id == "1427537745"
    assert msg.cseq == (1, "REGISTER")
    assert msg.branch == "z9hG4bK1817405727"
    assert msg.expires == 3600
    assert msg.get("subject") == "a folded header"
    assert msg.body == b""


def test_serializes_exactly_with_byte_content_length() -> None:
    body = "<Name>东门摄像机</Name>".encode("gb2312")
    msg = SipMessage(method="MESSAGE", uri="sip:a@b")
    msg.add("via", "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKx")
    msg.add("from", "<sip:x@y>;tag=1")
    msg.add("to", "<sip:a@b>")
    msg.add("call-id", "c1")
    msg.add("cseq", "1 MESSAGE")
    msg.add("Content-Length", "999")  # a stale value is never sent
    msg.body = body
    wire = msg.to_bytes()
    head, _, tail = wire.partition(b"\r\n\r\n")
    assert tail == body
    assert head.split(b"\r\n") == [
        b"MESSAGE sip:a@b SIP/2.0",
        b"Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKx",
        b"From: <sip:x@y>;tag=1",
        b"To: <sip:a@b>",
        b"Call-ID: c1",
        b"CSeq: 1 MESSAGE",
        f"Content-Length: {len(body)}".encode(),
    ]
    assert len(body) != len("<Name>东门摄像机</Name>")  # bytes, not characters
    assert parse(wire).body == body


def test_content_length_rules_on_datagrams() -> None:
    base = IPC_REGISTER.replace(b"REGISTER sip", b"MESSAGE sip").replace(b"1 REGISTER", b"1 MESSAGE")
    head = base[:-1]
    shorter = parse(head + b"Content-Length: 3\n\nabcdef")
    assert shorter.body == b"abc"  # bytes past Content-Length are dropped
    with pytest.raises(SipParseError) as err:
        parse(head + b"Content-Length: 10\n\nabc")
    assert err.value.reason == "truncated"
    with pytest.raises(SipParseError) as err:
        parse(head + b"Content-Length: x\n\nabc")
    assert err.value.reason == "bad_content_length"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (b"HELLO\r\n\r\n", "bad_start_line"),
        (b"SIP/2.0 99 Odd\r\n\r\n", "bad_status"),
        (b"REGISTER nowhere SIP/2.0\r\n\r\n", "bad_request_line"),
        (b"OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n\r\n", "missing_header"),
        (b"OPTIONS sip:a@b SIP/2.0\r\nno colon here\r\n\r\n", "bad_header"),
    ],
)
def test_rejects_with_reason(data: bytes, reason: str) -> None:
    with pytest.raises(SipParseError) as err:
        parse(data)
    assert err.value.reason == reason


def test_response_copies_transaction_headers_and_tags_to() -> None:
    request = parse(IPC_REGISTER)
    reply = request.response(401)
    assert reply.status == 401 and reply.reason == "Unauthorized"
    assert reply.get("Via") == request.get("Via") and reply.get("CSeq") == "1 REGISTER"
    assert reply.to_tag and reply.from_tag == request.from_tag
    again = parse(reply.to_bytes())
    assert again.status == 401 and again.branch == request.branch


def test_stream_framer_cuts_by_content_length_across_chunks() -> None:
    one = SipMessage(method="MESSAGE", uri="sip:a@b", headers=[("Via", "v"), ("CSeq", "1 MESSAGE")], body=b"x" * 10)
    two = SipMessage(status=200, reason="OK", headers=[("Via", "v")])
    wire = b"\r\n\r\n" + one.to_bytes() + two.to_bytes()
    framer = StreamFramer()
    out: list[bytes] = []
    for i in range(0, len(wire), 7):
        out += framer.feed(wire[i : i + 7])
    assert out == [one.to_bytes(), two.to_bytes()]
    with pytest.raises(SipParseError):
        StreamFramer(limit=100).feed(b"A" * 200)


def test_digest_matches_rfc2617_example() -> None:
    # RFC 2617 section 3.5 (the "Mufasa" example)
    assert (
        response_digest(
            username="Mufasa",
            realm="testrealm@host.com",
            password="Circle Of Life",
            method="GET",
            uri="/dir/index.html",
            nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
            qop="auth",
            nc="00000001",
            cnonce="0a4f113b",
        )
        == "6629fae49393a05397450978507c4ef1"
    )


def test_digest_server_round_trip_and_refusals() -> None:
    server = DigestServer("3402000000")
    challenge = Challenge.parse(server.challenge())
    assert challenge.qop == "auth" and challenge.realm == "3402000000"
    uri = "sip:34020000002000000001@3402000000"
    user = "34020000001320000001"
    good = challenge.authorization(username=user, password="pw", method="REGISTER", uri=uri)
    assert server.check(good, method="REGISTER", password="pw", username=user) == ""
    assert server.check(good, method="REGISTER", password="other", username=user) == "wrong_password"
    assert server.check(good, method="REGISTER", password="pw", username="34020000001320000002") == "wrong_username"
    forged = good.replace(challenge.nonce, "1.deadbeef")
    assert server.check(forged, method="REGISTER", password="pw", username=user) == "unknown_nonce"
    assert server.check(good, method="REGISTER", password="pw", username=user) == "replayed_nc"
    again = challenge.authorization(username=user, password="pw", method="REGISTER", uri=uri, nc=2)
    assert server.check(again, method="REGISTER", password="pw", username=user) == ""
    # without qop (RFC 2069 style, some old devices) is still accepted
    plain = Challenge(realm="3402000000", nonce=challenge.nonce, qop="")
    old = plain.authorization(username=user, password="pw", method="REGISTER", uri=uri)
    assert server.check(old, method="REGISTER", password="pw", username=user) == ""
    scheme, params = parse_params(good)
    assert scheme == "digest" and params["qop"] == "auth" and params["nc"] == "00000001"
