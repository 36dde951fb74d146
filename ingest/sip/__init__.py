"""SIP transport (RFC 3261 subset): message parsing and serialization, UDP/TCP, transactions, digest."""

from ingest.sip.endpoint import Peer, SipEndpoint, TransactionTimeout
from ingest.sip.message import SipMessage, SipParseError, parse

__all__ = ["Peer", "SipEndpoint", "SipMessage", "SipParseError", "TransactionTimeout", "parse"]
