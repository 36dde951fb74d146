"""MANSCDP XML bodies (``Application/MANSCDP+xml``): hardened, lenient parsing and exact building.

Parsing goes through defusedxml with DTDs forbidden, so external entities and entity-expansion bombs
are rejected before any expansion. Real devices send GB2312 declared as UTF-8 (and the reverse),
stray ``&``, odd tag case and padded numbers: all tolerated. Building always declares the charset the
bytes are in, so Content-Length (counted by the SIP layer in bytes) is right.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from xml.etree.ElementTree import Element, ParseError
from xml.sax.saxutils import escape

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

MAX_BODY = 256 * 1024
CONTENT_TYPE = "Application/MANSCDP+xml"
ROOTS = ("query", "response", "notify", "control")

_DECL = re.compile(rb"^\s*<\?xml[^>]*?\?>", re.IGNORECASE)
_ENCODING = re.compile(rb"encoding\s*=\s*[\"']([A-Za-z0-9_\-]+)[\"']", re.IGNORECASE)
_STRAY_AMP = re.compile(r"&(?!(?:[A-Za-z][A-Za-z0-9]*|#[0-9]+|#x[0-9A-Fa-f]+);)")
_GB = {"gb2312", "gbk", "gb18030", "cp936", "euc-cn", "gb_2312-80"}


class ManscdpError(ValueError):
    """A body was rejected. ``reason`` is short and groupable."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(slots=True)
class Manscdp:
    """A parsed body: root (lower case), command type, SN, device id, the root's simple children by
    lower-cased tag, and list items (``DeviceList``/``AlarmList``...) as dicts of lower-cased tags."""

    root: str
    cmd_type: str
    sn: int
    device_id: str
    fields: dict[str, str] = field(default_factory=dict)
    items: list[dict[str, str]] = field(default_factory=list)
    sum_num: int | None = None
    element: Element | None = None

    def int_field(self, name: str) -> int | None:
        text = self.fields.get(name, "").strip()
        if not text:
            return None
        try:
            return int(text)
        except ValueError:
            return None

    def float_field(self, name: str) -> float | None:
        text = self.fields.get(name, "").strip()
        try:
            return float(text) if text else None
        except ValueError:
            return None


def decode_text(data: bytes) -> str:
    """Bytes to text: the declared charset, else UTF-8, falling back to GB18030 (a superset of GB2312)."""
    declared = ""
    decl = _DECL.match(data)
    if decl:
        enc = _ENCODING.search(decl.group(0))
        declared = enc.group(1).decode("ascii").lower() if enc else ""
        data = data[decl.end() :]
    order = ["gb18030", "utf-8"] if declared in _GB else ["utf-8", "gb18030"]
    for codec in order:
        try:
            return data.decode(codec)
        except UnicodeDecodeError:
            continue
    raise ManscdpError("bad_charset", f"neither UTF-8 nor GB18030 (declared {declared or 'none'})")


def _tag(element: Element) -> str:
    tag = element.tag if isinstance(element.tag, str) else ""
    return tag.rsplit("}", 1)[-1].lower()


def _children(element: Element) -> dict[str, str]:
    out: dict[str, str] = {}
    for child in element:
        if len(child) == 0:
            out.setdefault(_tag(child), (child.text or "").strip())
    return out


def info_ids(body: Manscdp, limit: int = 1024) -> list[str]:
    """The DeviceIDs listed under the body's ``<Info>`` (a Keepalive's faulty devices), in order, at most ``limit``."""
    out: list[str] = []
    if body.element is None:
        return out
    for child in body.element:
        if _tag(child) != "info":
            continue
        for sub in child:
            text = (sub.text or "").strip()
            if _tag(sub) == "deviceid" and text and len(out) < limit:
                out.append(text)
    return out


def parse_body(data: bytes) -> Manscdp:
    """Parse one MANSCDP body, or raise ``ManscdpError``."""
    if len(data) > MAX_BODY:
        raise ManscdpError("oversize", f"{len(data)} bytes")
    if b"<!" in data.upper().replace(b"<![CDATA[", b""):
        raise ManscdpError("dtd_forbidden", "DOCTYPE/ENTITY declarations are not accepted")
    text = decode_text(data).strip()
    if not text:
        raise ManscdpError("empty_body")
    text = _STRAY_AMP.sub("&amp;", text)
    try:
        root = fromstring(text, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise ManscdpError("dtd_forbidden", type(exc).__name__) from None
    except ParseError as exc:
        raise ManscdpError("bad_xml", str(exc)) from None
    root_name = _tag(root)
    if root_name not in ROOTS:
        raise ManscdpError("bad_root", root_name[:40])
    fields = _children(root)
    cmd_type = fields.get("cmdtype", "")
    if not cmd_type:
        raise ManscdpError("missing_cmdtype")
    sn_text = fields.get("sn", "").strip()
    if not sn_text.isdigit():
        raise ManscdpError("bad_sn", sn_text[:20])
    device_id = fields.get("deviceid", "").strip()
    if not device_id:
        raise ManscdpError("missing_deviceid")
    items: list[dict[str, str]] = []
    for child in root:
        if len(child) and _tag(child) in ("devicelist", "alarmlist", "recordlist", "presetlist"):
            for item in child:
                if _tag(item) == "item":
                    entry = _children(item)
                    for sub in item:
                        if len(sub):  # nested <Info> etc.: flatten one level
                            for key, value in _children(sub).items():
                                entry.setdefault(key, value)
                    items.append(entry)
        elif len(child) and _tag(child) == "info":
            for key, value in _children(child).items():
                fields.setdefault(key, value)
    sum_num: int | None = None
    sum_text = fields.get("sumnum", "").strip()
    if sum_text:
        if not sum_text.isdigit():
            raise ManscdpError("bad_sumnum", sum_text[:20])
        sum_num = int(sum_text)
    return Manscdp(
        root=root_name,
        cmd_type=cmd_type.strip(),
        sn=int(sn_text),
        device_id=device_id,
        fields=fields,
        items=items,
        sum_num=sum_num,
        element=root,
    )


Value = str | int | float | None
Node = tuple[str, "Value | list[Node]"]


def _render(nodes: list[Node], out: list[str]) -> None:
    for tag, value in nodes:
        if value is None:
            continue
        if isinstance(value, list):
            out.append(f"<{tag}>")
            _render(value, out)
            out.append(f"</{tag}>")
        else:
            out.append(f"<{tag}>{escape(str(value))}</{tag}>")


def build(
    root: str,
    cmd_type: str,
    sn: int,
    device_id: str,
    body: list[Node] | None = None,
    *,
    charset: str = "GB2312",
    device_list: tuple[str, list[list[Node]]] | None = None,
) -> bytes:
    """One MANSCDP body, encoded in ``charset`` (GB2312 falls back to GB18030 for characters outside it)."""
    lines = [f"<{root}>", f"<CmdType>{escape(cmd_type)}</CmdType>", f"<SN>{sn}</SN>"]
    lines.append(f"<DeviceID>{escape(device_id)}</DeviceID>")
    _render(body or [], lines)
    if device_list is not None:
        tag, items = device_list
        lines.append(f'<{tag} Num="{len(items)}">')
        for item in items:
            lines.append("<Item>")
            _render(item, lines)
            lines.append("</Item>")
        lines.append(f"</{tag}>")
    lines.append(f"</{root}>")
    text = "\r\n".join(lines) + "\r\n"
    codec = charset.upper()
    if codec == "GB2312":
        try:
            payload = text.encode("gb2312")
        except UnicodeEncodeError:
            codec, payload = "GB18030", text.encode("gb18030")
    else:
        payload = text.encode(codec.lower())
    return f'<?xml version="1.0" encoding="{codec}"?>\r\n'.encode("ascii") + payload
