"""SIP message: a lenient parser and an exact serializer (RFC 3261 section 7).

Lenient in: bare LF line ends, compact header names, any header-name case, folded header lines, extra
blanks, a Content-Length that undercounts a datagram (the rest is dropped) or is absent on UDP.
Exact out: CRLF, canonical header names, Content-Length always written and counted in bytes.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field

MAX_MESSAGE = 65_535
MAX_HEADERS = 128

COMPACT = {
    "v": "Via",
    "f": "From",
    "t": "To",
    "i": "Call-ID",
    "m": "Contact",
    "l": "Content-Length",
    "c": "Content-Type",
    "k": "Supported",
    "s": "Subject",
    "o": "Event",
    "u": "Allow-Events",
    "e": "Content-Encoding",
}
CANONICAL = {
    name.lower(): name
    for name in (
        "Via",
        "From",
        "To",
        "Call-ID",
        "CSeq",
        "Contact",
        "Content-Length",
        "Content-Type",
        "Max-Forwards",
        "Expires",
        "User-Agent",
        "Date",
        "WWW-Authenticate",
        "Authorization",
        "Allow",
        "Supported",
        "Subject",
        "Event",
        "Subscription-State",
        "Allow-Events",
        "Content-Encoding",
        "Route",
        "Record-Route",
        "Server",
    )
}
CANONICAL["call-id"] = "Call-ID"
CANONICAL["cseq"] = "CSeq"
CANONICAL["www-authenticate"] = "WWW-Authenticate"

REASONS = {
    100: "Trying",
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    415: "Unsupported Media Type",
    481: "Call/Transaction Does Not Exist",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    489: "Bad Event",
    500: "Server Internal Error",
    501: "Not Implemented",
    503: "Service Unavailable",
}

_TOKEN = re.compile(r"^[A-Za-z0-9.!%*_+`'~\-]+$")
_VERSION = "SIP/2.0"
_TAG = re.compile(r";\s*tag=([^;>\s]+)", re.IGNORECASE)
_BRANCH = re.compile(r";\s*branch=([^;\s,]+)", re.IGNORECASE)
_URI_USER = re.compile(r"sips?:([^@;>\s]+)@", re.IGNORECASE)
_URI = re.compile(r"<([^>]*)>")


class SipParseError(ValueError):
    """A datagram or stream segment is not a SIP message. ``reason`` is short and groupable."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def canonical_name(name: str) -> str:
    lowered = name.strip().lower()
    if lowered in COMPACT:
        return COMPACT[lowered]
    if lowered in CANONICAL:
        return CANONICAL[lowered]
    return "-".join(part[:1].upper() + part[1:] for part in lowered.split("-"))


def new_branch() -> str:
    return "z9hG4bK" + secrets.token_hex(8)


def new_tag() -> str:
    return secrets.token_hex(6)


def new_call_id(host: str) -> str:
    return f"{secrets.token_hex(12)}@{host}"


@dataclass(slots=True)
class SipMessage:
    """A request (``method`` and ``uri`` set) or a response (``status`` and ``reason`` set)."""

    method: str = ""
    uri: str = ""
    status: int = 0
    reason: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    @property
    def is_request(self) -> bool:
        return bool(self.method)

    # --- headers ----------------------------------------------------------------------------
    def get(self, name: str, default: str = "") -> str:
        key = canonical_name(name)
        for hname, value in self.headers:
            if hname == key:
                return value
        return default

    def get_all(self, name: str) -> list[str]:
        key = canonical_name(name)
        return [value for hname, value in self.headers if hname == key]

    def set(self, name: str, value: str) -> None:
        """Replace every header of that name by one (appended if absent)."""
        key = canonical_name(name)
        for i, (hname, _) in enumerate(self.headers):
            if hname == key:
                self.headers[i] = (key, value)
                self.headers[i + 1 :] = [h for h in self.headers[i + 1 :] if h[0] != key]
                return
        self.headers.append((key, value))

    def add(self, name: str, value: str) -> None:
        self.headers.append((canonical_name(name), value))

    # --- derived fields ---------------------------------------------------------------------
    @property
    def call_id(self) -> str:
        return self.get("Call-ID")

    @property
    def cseq(self) -> tuple[int, str]:
        """(number, method) of the CSeq header; (0, "") when it is missing or malformed."""
        parts = self.get("CSeq").split()
        if len(parts) != 2 or not parts[0].isdigit():
            return 0, ""
        return int(parts[0]), parts[1].upper()

    @property
    def branch(self) -> str:
        """Branch of the top Via."""
        vias = self.get_all("Via")
        if not vias:
            return ""
        match = _BRANCH.search(vias[0].split(",")[0])
        return match.group(1) if match else ""

    @property
    def from_tag(self) -> str:
        match = _TAG.search(self.get("From"))
        return match.group(1) if match else ""

    @property
    def to_tag(self) -> str:
        match = _TAG.search(self.get("To"))
        return match.group(1) if match else ""

    @property
    def from_user(self) -> str:
        return uri_user(self.get("From"))

    @property
    def to_user(self) -> str:
        return uri_user(self.get("To"))

    @property
    def expires(self) -> int | None:
        """Expires header, else the Contact's expires parameter, else None."""
        value = self.get("Expires").strip()
        if value.isdigit():
            return int(value)
        match = re.search(r";\s*expires=(\d+)", self.get("Contact"), re.IGNORECASE)
        return int(match.group(1)) if match else None

    # --- serialization ----------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        if self.is_request:
            start = f"{self.method} {self.uri} {_VERSION}"
        else:
            start = f"{_VERSION} {self.status} {self.reason or REASONS.get(self.status, 'Unknown')}"
        lines = [start]
        lines.extend(f"{name}: {value}" for name, value in self.headers if name != "Content-Length")
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + self.body

    def response(self, status: int, reason: str = "", *, to_tag: str | None = None) -> SipMessage:
        """A response to this request: Via, From, To (tagged), Call-ID and CSeq copied (RFC 3261 8.2.6)."""
        reply = SipMessage(status=status, reason=reason or REASONS.get(status, "Unknown"))
        for via in self.get_all("Via"):
            reply.add("Via", via)
        reply.add("From", self.get("From"))
        to = self.get("To")
        if status > 100 and not _TAG.search(to):
            to = f"{to};tag={to_tag or new_tag()}"
        reply.add("To", to)
        reply.add("Call-ID", self.call_id)
        reply.add("CSeq", self.get("CSeq"))
        return reply


def uri_user(value: str) -> str:
    """User part of the URI in a name-addr or addr-spec (``"x" <sip:user@host>;tag=1`` gives ``user``)."""
    match = _URI_USER.search(value)
    return match.group(1) if match else ""


def uri_of(value: str) -> str:
    """The URI inside a name-addr (``<sip:...>``) or the addr-spec itself without parameters."""
    match = _URI.search(value)
    if match:
        return match.group(1).strip()
    return value.split(";")[0].strip()


def _split_head(data: bytes) -> tuple[bytes, bytes]:
    for sep in (b"\r\n\r\n", b"\n\n", b"\r\n\n", b"\n\r\n"):
        idx = data.find(sep)
        if idx >= 0:
            return data[:idx], data[idx + len(sep) :]
    return data, b""


def parse(data: bytes, *, stream: bool = False) -> SipMessage:
    """Parse one whole message (one datagram, or one framed stream segment).

    On a datagram a missing Content-Length means "the rest of the datagram", and bytes past the
    Content-Length are dropped; a Content-Length past the end is a truncated message. On a stream
    (``stream=True``) the framer has already cut the segment at Content-Length.
    """
    if len(data) > MAX_MESSAGE:
        raise SipParseError("oversize", f"{len(data)} bytes")
    data = data.lstrip(b"\r\n")
    if not data:
        raise SipParseError("empty")
    head, body = _split_head(data)
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = head.decode("gb18030", errors="replace")
    raw_lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    start = raw_lines[0].strip()
    lines: list[str] = []
    for line in raw_lines[1:]:
        if not line.strip():
            continue
        if line[0] in " \t" and lines:
            lines[-1] += " " + line.strip()
        else:
            lines.append(line)
    if len(lines) > MAX_HEADERS:
        raise SipParseError("too_many_headers", str(len(lines)))
    msg = _start_line(start)
    for line in lines:
        name, sep, value = line.partition(":")
        if not sep or not name.strip() or not _TOKEN.match(name.strip()):
            raise SipParseError("bad_header", line[:80])
        cname = canonical_name(name)
        value = value.strip()
        if cname == "Via" and "," in value:
            for part in value.split(","):
                if part.strip():
                    msg.headers.append((cname, part.strip()))
        else:
            msg.headers.append((cname, value))
    for required in ("Via", "From", "To", "Call-ID", "CSeq"):
        if not msg.get(required):
            raise SipParseError("missing_header", required)
    _, method = msg.cseq
    if not method:
        raise SipParseError("bad_cseq", msg.get("CSeq")[:40])
    if msg.is_request and method != msg.method and method != "ACK":
        raise SipParseError("bad_cseq", f"CSeq method {method} != {msg.method}")
    length_text = msg.get("Content-Length").strip()
    if length_text:
        if not length_text.isdigit():
            raise SipParseError("bad_content_length", length_text[:20])
        length = int(length_text)
        if length > len(body):
            raise SipParseError("truncated", f"Content-Length {length} > {len(body)} bytes received")
        body = body[:length]
    elif stream:
        body = b""
    msg.body = body
    return msg


def _start_line(start: str) -> SipMessage:
    parts = start.split(None, 2)
    if len(parts) < 2:
        raise SipParseError("bad_start_line", start[:80])
    if parts[0].upper() == _VERSION:
        code = parts[1]
        if not (code.isdigit() and len(code) == 3 and 100 <= int(code) <= 699):
            raise SipParseError("bad_status", start[:80])
        return SipMessage(status=int(code), reason=parts[2].strip() if len(parts) > 2 else "")
    if len(parts) != 3 or parts[2].strip().upper() != _VERSION:
        raise SipParseError("bad_start_line", start[:80])
    method = parts[0].upper()
    if not _TOKEN.match(method) or not parts[1].lower().startswith(("sip:", "sips:", "tel:")):
        raise SipParseError("bad_request_line", start[:80])
    return SipMessage(method=method, uri=parts[1])


class StreamFramer:
    """Cuts a TCP byte stream into messages by Content-Length (mandatory on streams)."""

    def __init__(self, limit: int = MAX_MESSAGE) -> None:
        self._buffer = bytearray()
        self._limit = limit

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return every complete message segment. Raises on a broken stream."""
        self._buffer += data
        out: list[bytes] = []
        while True:
            while self._buffer[:2] == b"\r\n":  # keepalive CRLFs (RFC 5626)
                del self._buffer[:2]
            end = self._buffer.find(b"\r\n\r\n")
            sep = 4
            if end < 0:
                end = self._buffer.find(b"\n\n")
                sep = 2
            if end < 0:
                if len(self._buffer) > self._limit:
                    raise SipParseError("oversize", "header block without end")
                return out
            head = bytes(self._buffer[:end])
            match = re.search(rb"(?im)^(?:content-length|l)[ \t]*:[ \t]*(\d+)[ \t]*\r?$", head)
            length = int(match.group(1)) if match else 0
            if length > self._limit:
                raise SipParseError("oversize", f"Content-Length {length}")
            total = end + sep + length
            if len(self._buffer) < total:
                return out
            out.append(bytes(self._buffer[:total]))
            del self._buffer[:total]
