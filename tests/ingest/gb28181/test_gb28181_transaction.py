"""Client transactions over UDP: retransmission on Timer E, Timer F timeout, responses matched by branch."""

from __future__ import annotations

import asyncio
import itertools
import socket
import time

import pytest
from sharpeye.ingest.transport.sip.endpoint import Peer, SipEndpoint, TransactionTimeout
from sharpeye.ingest.transport.sip.message import SipMessage, parse


def _request() -> SipMessage:
    msg = SipMessage(method="MESSAGE", uri="sip:34020000001320000001@127.0.0.1")
    msg.add("From", "<sip:34020000002000000001@3402000000>;tag=a")
    msg.add("To", "<sip:34020000001320000001@3402000000>")
    msg.add("Call-ID", "tx@127.0.0.1")
    msg.add("CSeq", "1 MESSAGE")
    return msg


async def test_retransmits_until_answered_and_ignores_foreign_branches() -> None:
    endpoint = SipEndpoint(lambda m, p: None, host="127.0.0.1", port=0, tcp=False, t1=0.1)
    await endpoint.start()
    peer_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer_sock.bind(("127.0.0.1", 0))
    peer_sock.setblocking(False)
    loop = asyncio.get_running_loop()
    copies: list[float] = []

    async def silent_then_answer() -> None:
        while True:
            data, addr = await loop.sock_recvfrom(peer_sock, 65535)
            copies.append(time.monotonic())
            if len(copies) < 3:
                continue  # drop the first two copies, as a lossy network would
            request = parse(data)
            foreign = request.response(200)
            foreign.set("Via", "SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bKother")
            await loop.sock_sendto(peer_sock, foreign.to_bytes(), addr)  # not ours: ignored
            await loop.sock_sendto(peer_sock, request.response(202).to_bytes(), addr)
            return

    answer = asyncio.ensure_future(silent_then_answer())
    try:
        response = await endpoint.request(_request(), Peer("udp", "127.0.0.1", peer_sock.getsockname()[1]))
        assert response.status == 202
        assert endpoint.stats["retransmissions"] == 2
        assert endpoint.stats["stray_responses"] == 1
        gaps = [b - a for a, b in itertools.pairwise(copies)]
        assert gaps[0] >= 0.095 and gaps[1] >= 0.195  # Timer E: T1, then 2*T1 (lower bounds: load only delays)
    finally:
        await answer
        peer_sock.close()
        await endpoint.stop()


async def test_times_out_after_timer_f() -> None:
    endpoint = SipEndpoint(lambda m, p: None, host="127.0.0.1", port=0, tcp=False, t1=0.02)
    await endpoint.start()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:
        sink.bind(("127.0.0.1", 0))
        started = time.monotonic()
        with pytest.raises(TransactionTimeout):
            await endpoint.request(_request(), Peer("udp", "127.0.0.1", sink.getsockname()[1]))
        assert 64 * 0.02 * 0.9 <= time.monotonic() - started < 5
        assert endpoint.stats["timeouts"] == 1 and endpoint.stats["retransmissions"] >= 5
    await endpoint.stop()
