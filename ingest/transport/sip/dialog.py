"""A SIP dialog made by an INVITE (RFC 3261 section 12): enough to ACK it, CANCEL it and BYE it, from either side."""

from __future__ import annotations

from dataclasses import dataclass, field

from sharpeye.ingest.transport.sip.endpoint import Peer
from sharpeye.ingest.transport.sip.message import SipMessage, uri_of


@dataclass(slots=True)
class Dialog:
    """Call-ID, both tags and URIs, our CSeq and where the other side's requests go (its Contact)."""

    call_id: str
    local: str  # our From (caller) or To (callee) header value, with our tag
    remote: str  # theirs, with their tag once known
    remote_target: str  # Request-URI of in-dialog requests: the other side's Contact
    peer: Peer
    cseq: int
    invite_cseq: int = 0
    confirmed: bool = False
    routes: list[str] = field(default_factory=list)

    @classmethod
    def as_caller(cls, invite: SipMessage, response: SipMessage, peer: Peer) -> Dialog:
        contact = response.get("Contact")
        return cls(
            call_id=invite.call_id,
            local=invite.get("From"),
            remote=response.get("To"),
            remote_target=uri_of(contact) if contact else invite.uri,
            peer=peer,
            cseq=invite.cseq[0],
            invite_cseq=invite.cseq[0],
            routes=list(reversed(response.get_all("Record-Route"))),
        )

    @classmethod
    def as_callee(cls, invite: SipMessage, response: SipMessage, peer: Peer) -> Dialog:
        contact = invite.get("Contact")
        return cls(
            call_id=invite.call_id,
            local=response.get("To"),
            remote=invite.get("From"),
            remote_target=uri_of(contact) if contact else f"sip:{invite.from_user}@{peer.host}:{peer.port}",
            peer=peer,
            cseq=0,
            invite_cseq=invite.cseq[0],
            routes=invite.get_all("Record-Route"),
        )

    def request(self, method: str) -> SipMessage:
        """A new in-dialog request (BYE, INFO...); ACK reuses the INVITE's CSeq number."""
        if method != "ACK":
            self.cseq += 1
        msg = SipMessage(method=method, uri=self.remote_target)
        for route in self.routes:
            msg.add("Route", route)
        msg.add("From", self.local)
        msg.add("To", self.remote)
        msg.add("Call-ID", self.call_id)
        msg.add("CSeq", f"{self.invite_cseq if method == 'ACK' else self.cseq} {method}")
        return msg


def cancel_of(invite: SipMessage) -> SipMessage:
    """The CANCEL of a pending INVITE: same Request-URI, top Via, Call-ID, From, To and CSeq number."""
    msg = SipMessage(method="CANCEL", uri=invite.uri)
    msg.add("Via", invite.get_all("Via")[0])
    for name in ("From", "To", "Call-ID"):
        msg.add(name, invite.get(name))
    msg.add("CSeq", f"{invite.cseq[0]} CANCEL")
    return msg
