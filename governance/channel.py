"""Notification channels: how an uplink's queued event reaches people (企业微信 and 钉钉 group robots, an SMS
gateway, e-mail, Web Push to operators' browsers through ``governance.push``) or a system (SharpEye's signed
webhook).

The uplink queue (``governance.uplink``) holds the event's JSON envelope whatever the format; this module decides
whether an event is for a channel at all (``wanted``), whether it may go now (``hold_until``: quiet hours), renders
the text from a template (``render``) and sends it (``send``). Rate limits are counted in Redis by the uplink
service, so several hub nodes share one limit.
"""

from __future__ import annotations

import asyncio
import base64
import fnmatch
import hashlib
import hmac
import json
import logging
import smtplib
import ssl
import string
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any
from urllib.parse import quote_plus, urlsplit
from zoneinfo import ZoneInfo

import httpx
import orjson
from sharpeye.config.governance import Uplink
from sharpeye.config.rule import Severity
from sharpeye.governance.push import PushService

log = logging.getLogger(__name__)

SIGNATURE = "X-SharpEye-Signature"
TIMESTAMP = "X-SharpEye-Timestamp"
DELIVERY = "X-SharpEye-Delivery"
EVENT = "X-SharpEye-Event"

_RANK = {Severity.critical: 4, Severity.major: 3, Severity.minor: 2, Severity.warning: 1}
_SEVERITY_ZH = {"critical": "紧急", "major": "重要", "minor": "一般", "warning": "提示"}
_ACTION_ZH = {
    "report": "新事件",
    "accept": "立案",
    "cancel": "注销",
    "merge": "并单",
    "dispatch": "派遣",
    "claim": "签收",
    "return": "回退",
    "reassign": "改派",
    "request_extension": "延期申请",
    "approve_extension": "延期批准",
    "reject_extension": "延期驳回",
    "feedback": "反馈",
    "verify": "核查",
    "pass_check": "结案",
    "fail_check": "返工",
    "park": "挂账",
    "reopen": "重办",
    "supervise": "督办",
}
_ALARM_ZH = {"raised": "告警", "cleared": "告警恢复", "acknowledged": "告警确认", "escalated": "告警升级"}
_NOTIFY_ZH = {"handler": "提醒承办部门", "centre": "提醒中心", "level_above": "上报上级"}

DEFAULT_TEMPLATES = {
    "case": "【SharpEye 综治】${type_zh}：${case_title}\n"
    "类别：${case_category}  等级：${severity_zh}\n承办：${case_department}  期限：${case_due_at}\n"
    "编号：${case_id}  时间：${occurred_at}",
    "supervise": "【SharpEye 督办】${notify_zh}：${case_title}\n"
    "承办：${case_department}  期限：${case_due_at}  灯色：${case_light}\n编号：${case_id}  时间：${occurred_at}",
    "alarm": "【SharpEye ${type_zh}】${severity_zh} ${alarm_title}\n位置：${alarm_place}\n时间：${occurred_at}  "
    "告警号：${alarm_id}",
}
DEFAULT_SUBJECT = "【SharpEye】${type_zh}：${title}"
DEFAULT_SMS_BODY = '{"phones": ${phone_list}, "text": ${text}}'


@dataclass(frozen=True, slots=True)
class Attempt:
    ok: bool
    error: str = ""


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """SharpEye's webhook signature: HMAC-SHA256 of ``<timestamp>.<body>``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """钉钉 加签: base64 of HMAC-SHA256 of ``<timestamp ms>\\n<secret>`` under the secret, URL-encoded."""
    mac = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return quote_plus(base64.b64encode(mac).decode())


# --- which events, and when ----------------------------------------------------------------------------------
def severity_of(envelope: dict[str, Any]) -> Severity | None:
    for part in ("case", "alarm"):
        summary = envelope.get(part)
        if isinstance(summary, dict) and summary.get("severity") in _RANK:
            return Severity(summary["severity"])
    return None


def wanted(uplink: Uplink, envelope: dict[str, Any]) -> bool:
    """Whether ``uplink`` sends this event at all: its type patterns, departments and minimum severity."""
    kind = str(envelope.get("type", ""))
    if not any(fnmatch.fnmatchcase(kind, pattern) for pattern in uplink.types):
        return False
    severity = severity_of(envelope)
    if severity is not None and _RANK[severity] < _RANK[uplink.min_severity]:
        return False
    if uplink.departments and envelope.get("kind") == "case":
        case = envelope.get("case") or {}
        data = envelope.get("data") or {}
        aimed = {case.get("department"), data.get("target")}
        if not aimed & set(uplink.departments):
            return False
    return True


def hold_until(uplink: Uplink, envelope: dict[str, Any], now: datetime, zone: ZoneInfo) -> datetime | None:
    """The end of the channel's quiet hours if ``now`` falls in them and the event is not severe enough to be
    sent anyway; None: send now."""
    quiet = uplink.quiet_hours
    if quiet is None:
        return None
    severity = severity_of(envelope)
    if severity is not None and _RANK[severity] >= _RANK[quiet.send_from]:
        return None
    local = now.astimezone(zone)
    hour = local.hour
    inside = quiet.start <= hour < quiet.end if quiet.start < quiet.end else (hour >= quiet.start or hour < quiet.end)
    if not inside or quiet.start == quiet.end:
        return None
    end = local.replace(hour=quiet.end, minute=0, second=0, microsecond=0)
    if end <= local:
        end += timedelta(days=1)
    return end


# --- text --------------------------------------------------------------------------------------------------
def _local(value: Any, zone: ZoneInfo) -> str:
    if not value:
        return ""
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return str(value)
    if moment.tzinfo is None:
        return moment.strftime("%Y-%m-%d %H:%M")
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M")


def fields(envelope: dict[str, Any], zone: ZoneInfo) -> dict[str, str]:
    """The placeholders a template may use, as text (times in the site's zone)."""
    data = envelope.get("data") or {}
    case = envelope.get("case") or {}
    alarm = envelope.get("alarm") or {}
    kind = str(envelope.get("kind", ""))
    action = str(data.get("action") if kind == "case" else data.get("type", ""))
    severity = str(case.get("severity") or alarm.get("severity") or "")
    out = {
        "site": str(envelope.get("site", "")),
        "type": str(envelope.get("type", "")),
        "type_zh": (_ACTION_ZH if kind == "case" else _ALARM_ZH).get(action, action),
        "occurred_at": _local(envelope.get("occurred_at"), zone),
        "severity": severity,
        "severity_zh": _SEVERITY_ZH.get(severity, severity),
        "actor": str(data.get("actor", "")),
        "step": str(data.get("step", "")),
        "notify": str(data.get("notify", "")),
        "notify_zh": _NOTIFY_ZH.get(str(data.get("notify", "")), str(data.get("notify", ""))),
        "target": str(data.get("target", "")),
        "case_id": str(case.get("id") or data.get("case_id", "")),
        "case_title": str(case.get("title", "")),
        "case_category": str(case.get("category", "")),
        "case_department": str(case.get("department") or ""),
        "case_level": str(case.get("level") or ""),
        "case_stage": str(case.get("stage", "")),
        "case_due_at": _local(case.get("due_at"), zone),
        "case_light": str(case.get("light") or ""),
        "alarm_id": str(alarm.get("id") or data.get("alarm", "")),
        "alarm_title": str(alarm.get("title", "")),
        "alarm_device": str(alarm.get("device_id", "")),
        "alarm_place": str(alarm.get("place", "")),
        "alarm_category": str(alarm.get("category", "")),
        "alarm_state": str(alarm.get("state") or data.get("state", "")),
    }
    out["title"] = out["case_title"] or out["alarm_title"]
    return out


def template_for(uplink: Uplink, envelope: dict[str, Any]) -> str:
    if uplink.template:
        return uplink.template
    if envelope.get("kind") == "alarm":
        return DEFAULT_TEMPLATES["alarm"]
    action = (envelope.get("data") or {}).get("action")
    return DEFAULT_TEMPLATES["supervise" if action == "supervise" else "case"]


def render(text: str, values: dict[str, str]) -> str:
    """``${field}`` placeholders filled; unknown ones are left as written (a typo shows, nothing fails)."""
    return string.Template(text).safe_substitute(values)


# --- sending -------------------------------------------------------------------------------------------------
async def send(
    client: httpx.AsyncClient,
    uplink: Uplink,
    delivery: str,
    body: bytes,
    now: datetime,
    zone: ZoneInfo,
    push: PushService | None = None,
) -> Attempt:
    """One delivery attempt in the uplink's format (``push``: the hub's Web Push service, for webpush uplinks)."""
    envelope = orjson.loads(body)
    if uplink.format == "webhook":
        return await _webhook(client, uplink, delivery, body, envelope, now)
    values = fields(envelope, zone)
    text = render(template_for(uplink, envelope), values)
    if uplink.format == "wecom":
        return await _robot(client, uplink, _wecom_url(uplink), _wecom_body(uplink, text))
    if uplink.format == "dingtalk":
        return await _robot(client, uplink, _dingtalk_url(uplink, now), _dingtalk_body(uplink, text))
    if uplink.format == "sms":
        return await _sms(client, uplink, delivery, text)
    if uplink.format == "webpush":
        if push is None:
            return Attempt(False, "web push is not running on this node")
        error = await push.send(client, uplink.id, delivery, list(uplink.to), push_payload(envelope, text, delivery),
                                urgency=push_urgency(envelope), timeout_s=uplink.timeout_s,
                                case=envelope.get("case") if envelope.get("kind") == "case" else None)  # fmt: skip
        return Attempt(error is None, error or "")
    subject = render(uplink.subject or DEFAULT_SUBJECT, values)
    return await asyncio.to_thread(_email, uplink, delivery, subject, text)


async def _webhook(
    client: httpx.AsyncClient, uplink: Uplink, delivery: str, body: bytes, envelope: dict[str, Any], now: datetime
) -> Attempt:
    assert uplink.secret is not None
    stamp = int(now.timestamp())
    headers = {
        "Content-Type": "application/json",
        DELIVERY: delivery,
        "Idempotency-Key": delivery,
        EVENT: str(envelope.get("type", "")),
        TIMESTAMP: str(stamp),
        SIGNATURE: sign(uplink.secret.get_secret_value(), stamp, body),
    }
    return await _post(client, uplink, uplink.endpoint, body, headers)


async def _post(client: httpx.AsyncClient, uplink: Uplink, url: str, body: bytes, headers: dict[str, str]) -> Attempt:
    try:
        response = await client.post(url, content=body, headers=headers, timeout=uplink.timeout_s)
    except httpx.HTTPError as exc:
        return Attempt(False, f"{type(exc).__name__}: {exc}"[:300])
    if 200 <= response.status_code < 300:
        return Attempt(True)
    return Attempt(False, f"HTTP {response.status_code}: {response.text[:200]}")


def push_payload(envelope: dict[str, Any], text: str, delivery: str) -> dict[str, Any]:
    """What the console's service worker shows (api/static/sw.js): the text's first line as the title, the rest as
    the body, and where a click leads (the case, else the alarm)."""
    title, _, rest = text.partition("\n")
    case_id = (envelope.get("case") or {}).get("id") or (envelope.get("data") or {}).get("case_id")
    alarm_id = (envelope.get("alarm") or {}).get("id") or (envelope.get("data") or {}).get("alarm")
    target = f"case:{case_id}" if case_id else f"alarm:{alarm_id}" if alarm_id else ""
    return {
        "title": title[:200],
        "body": rest[:1000],
        "tag": target or delivery,
        "open": target,
        "severity": severity_of(envelope) or "",
        "type": str(envelope.get("type", "")),
        "delivery": delivery,
    }


def push_urgency(envelope: dict[str, Any]) -> str:
    """RFC 8030 Urgency: a phone's push service wakes the device at once for "high"."""
    severity = severity_of(envelope)
    return "high" if severity in (Severity.critical, Severity.major) else "normal"


def _with_query(url: str, extra: str) -> str:
    return url + ("&" if "?" in url else "?") + extra


def _wecom_url(uplink: Uplink) -> str:
    assert uplink.secret is not None
    return _with_query(uplink.endpoint, f"key={quote_plus(uplink.secret.get_secret_value())}")


def _wecom_body(uplink: Uplink, text: str) -> bytes:
    message: dict[str, Any] = {"content": text}
    if uplink.to:
        message["mentioned_mobile_list"] = list(uplink.to)
    return orjson.dumps({"msgtype": "text", "text": message})


def _dingtalk_url(uplink: Uplink, now: datetime) -> str:
    assert uplink.secret is not None
    url = _with_query(uplink.endpoint, f"access_token={quote_plus(uplink.secret.get_secret_value())}")
    if uplink.sign_secret is not None:
        stamp = int(now.timestamp() * 1000)
        url += f"&timestamp={stamp}&sign={dingtalk_sign(uplink.sign_secret.get_secret_value(), stamp)}"
    return url


def _dingtalk_body(uplink: Uplink, text: str) -> bytes:
    return orjson.dumps({"msgtype": "text", "text": {"content": text}, "at": {"atMobiles": list(uplink.to)}})


async def _robot(client: httpx.AsyncClient, uplink: Uplink, url: str, body: bytes) -> Attempt:
    """企业微信 and 钉钉 robots answer HTTP 200 with ``{"errcode": 0}``; any other errcode is a failure (45009 is
    their rate limit), retried like a refused request."""
    try:
        response = await client.post(
            url, content=body, headers={"Content-Type": "application/json"}, timeout=uplink.timeout_s
        )
    except httpx.HTTPError as exc:
        return Attempt(False, f"{type(exc).__name__}: {exc}"[:300])
    if response.status_code != 200:
        return Attempt(False, f"HTTP {response.status_code}: {response.text[:200]}")
    try:
        answer = response.json()
    except ValueError:
        return Attempt(False, f"not JSON: {response.text[:200]}")
    code = answer.get("errcode") if isinstance(answer, dict) else None
    if code == 0:
        return Attempt(True)
    return Attempt(False, f"errcode {code}: {str(answer.get('errmsg', ''))[:200] if isinstance(answer, dict) else ''}")


async def send_sms(uplink: Uplink, phone: str, text: str, delivery: str) -> Attempt:
    """One text to one phone through an sms uplink's gateway (its URL, token and body template), now: for the
    residents' one-time codes, which go to the number typed in, not to the uplink's own recipients."""
    async with httpx.AsyncClient(timeout=uplink.timeout_s) as client:
        return await _sms(client, uplink.model_copy(update={"to": [phone]}), delivery, text)


async def _sms(client: httpx.AsyncClient, uplink: Uplink, delivery: str, text: str) -> Attempt:
    body = render(
        uplink.body_template or DEFAULT_SMS_BODY,
        {
            "phones": ",".join(uplink.to),
            "phone_list": json.dumps(list(uplink.to)),
            "text": json.dumps(text, ensure_ascii=False),
        },
    ).encode()
    headers = {"Content-Type": "application/json", "Idempotency-Key": delivery}
    if uplink.secret is not None:
        headers["Authorization"] = f"Bearer {uplink.secret.get_secret_value()}"
    return await _post(client, uplink, uplink.endpoint, body, headers)


def _email(uplink: Uplink, delivery: str, subject: str, text: str) -> Attempt:
    parts = urlsplit(uplink.endpoint)
    secure = parts.scheme == "smtps"
    port = parts.port or (465 if secure else 25)
    message = EmailMessage()
    message["From"] = uplink.sender or ""
    message["To"] = ", ".join(uplink.to)
    message["Subject"] = subject
    message["Message-ID"] = f"<{delivery}@sharpeye>"
    message.set_content(text)
    started = time.monotonic()
    try:
        smtp: smtplib.SMTP
        if secure:
            smtp = smtplib.SMTP_SSL(parts.hostname or "", port, timeout=uplink.timeout_s,
                                    context=ssl.create_default_context())  # fmt: skip
        else:
            smtp = smtplib.SMTP(parts.hostname or "", port, timeout=uplink.timeout_s)
        with smtp:
            if not secure and smtp.has_extn("starttls"):
                smtp.starttls(context=ssl.create_default_context())
            if uplink.username and uplink.secret is not None:
                smtp.login(uplink.username, uplink.secret.get_secret_value())
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        return Attempt(False, f"{type(exc).__name__}: {exc}"[:300])
    log.debug("uplink %s: mail %s sent in %.2fs", uplink.id, delivery, time.monotonic() - started)
    return Attempt(True)
