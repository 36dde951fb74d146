"""SIP transport (RFC 3261 subset): message parsing and serialization, UDP/TCP, transactions, digest."""

from sharpeye.ingest.transport.sip.endpoint import Peer, SipEndpoint, TransactionTimeout
from sharpeye.ingest.transport.sip.message import SipMessage, SipParseError, parse

__all__ = ["Peer", "SipEndpoint", "SipMessage", "SipParseError", "TransactionTimeout", "parse"]
