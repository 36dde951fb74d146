"""Governance settings: intake policy, dispatch table and SLA table."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator
from sharpeye.config.base import Identifier, StrictModel
from sharpeye.config.org import Level
from sharpeye.config.rule import Severity
from sharpeye.config.secret import EnvSecret, min_length

from sharpeye.role import Role

ROLE_NAMES = [r.value for r in Role]
WEBPUSH_USER = re.compile(r"[A-Za-z0-9_.\-]{1,64}")  # the user names accounts may have


class IntakeRule(StrictModel):
    """Which alarms become cases. The first matching entry decides."""

    category: str = Field(description="Alarm category, or '*' for any.")
    min_severity: Severity = Field(default=Severity.warning, description="Alarms at least this severe become cases.")
    open_case: bool = Field(default=True, description="False: alarms of this category stay alarms only.")


class DispatchRule(StrictModel):
    """Where cases of a category go: the lowest level that may handle them, raised by severity."""

    category: str = Field(description="Case category, or '*' for any.")
    level: Level = Field(description="Lowest level that handles this category.")
    severity_levels: dict[Severity, Level] = Field(
        default_factory=dict,
        description="Minimum level per severity, e.g. {critical: town}: severe cases go higher.",
    )
    department: Identifier | None = Field(
        default=None, description="Fixed department id; unset: a department at the level that handles it."
    )


class SlaRule(StrictModel):
    """Time limit of a category, counted from dispatch."""

    category: str = Field(description="Case category, or '*' for the default.")
    limit: float = Field(gt=0, description="Time limit in 'unit'.")
    unit: Literal["working_hours", "working_days", "hours"] = Field(
        default="working_hours", description="Unit of the limit, on the Chinese working calendar."
    )
    yellow_share: float = Field(
        default=0.8, gt=0, lt=1, description="Light turns yellow when this share of the limit is used."
    )


class EscalationStep(StrictModel):
    """One supervision (督办) step, fired once per case when its time comes.

    The step fires when the case has used ``share`` of its limit plus ``after_hours`` more, both counted
    on the case's own clock (working time for working-hour and working-day limits).
    """

    id: Identifier = Field(description="Stable step id, recorded with every firing.")
    share: float = Field(ge=0, le=10, description="Share of the limit used, e.g. 0.8; 1.0 = at the deadline.")
    after_hours: float = Field(default=0, ge=0, description="Further time after that share, in (working) hours.")
    notify: Literal["handler", "centre", "level_above"] = Field(
        description="Who is told: the handling department, the centre's operators, or the level above."
    )


def _default_escalation() -> list[EscalationStep]:
    return [
        EscalationStep(id="remind-handler", share=0.8, notify="handler"),
        EscalationStep(id="remind-centre", share=1.0, notify="centre"),
        EscalationStep(id="escalate", share=1.0, after_hours=4, notify="level_above"),
    ]


class ReportLimits(StrictModel):
    """Limits on photos (JPEG and PNG only) and voice notes (one per upload: WebM, Ogg, MP4/M4A or WAV audio that
    decodes) uploaded with people's reports, checked by their bytes."""

    photo_max_bytes: int = Field(default=5 * 1024 * 1024, gt=0, description="Largest photo accepted, bytes.")
    photos_per_request: int = Field(default=6, gt=0, le=50, description="Most photos in one upload.")
    request_max_bytes: int = Field(
        default=24 * 1024 * 1024, gt=0, description="Largest upload request (all photos and fields), bytes."
    )
    voice_max_s: float = Field(default=60, gt=0, le=600, description="Longest voice note accepted, seconds.")
    voice_max_bytes: int = Field(default=2 * 1024 * 1024, gt=0, description="Largest voice note accepted, bytes.")


class ResidentReports(StrictModel):
    """The public report page for residents (/field/resident.html, no account): a phone number proven by a
    one-time code sent through an SMS uplink, or an image captcha when no SMS uplink is named; rate limits."""

    enabled: bool = Field(default=True, description="False: the public report routes answer 404.")
    sms_uplink: Identifier | None = Field(
        default=None, description="Id of an sms uplink whose gateway sends the one-time codes; none: a captcha."
    )
    code_ttl_s: int = Field(default=300, ge=30, le=3600, description="A code or captcha is valid this long, once.")
    challenges_per_phone_per_hour: int = Field(default=5, ge=1, le=1000, description="Codes sent to one number.")
    challenges_per_address_per_hour: int = Field(
        default=30, ge=1, le=100_000, description="Codes and captchas asked for from one IP address."
    )
    reports_per_phone_per_day: int = Field(default=5, ge=1, le=1000, description="Reports from one number a day.")
    lookups_per_address_per_hour: int = Field(
        default=60, ge=1, le=100_000, description="Receipt look-ups and ratings from one IP address."
    )


class MergePolicy(StrictModel):
    """When a new report is proposed for merging (并单) into an open case of the same category."""

    radius_m: float = Field(default=200.0, gt=0, le=10_000, description="At most this far apart, metres.")
    window_hours: float = Field(default=72.0, gt=0, le=24 * 90, description="Reported at most this far apart.")


UplinkEvent = Literal["case", "alarm", "hub"]
"""case / alarm: the hub's event streams; hub: only what ``governance.hierarchy`` sends another hub (an uplink
with events [hub] carries escalated cases up, or an upper hub's actions down, and nothing else)."""


def _all_events() -> list[UplinkEvent]:
    return ["case", "alarm"]


ChannelFormat = Literal["webhook", "wecom", "dingtalk", "sms", "email", "webpush"]

DEFAULT_URLS: dict[str, str] = {
    "wecom": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send",
    "dingtalk": "https://oapi.dingtalk.com/robot/send",
}
DEFAULT_RATES: dict[str, int] = {"wecom": 20, "dingtalk": 20, "sms": 10, "email": 30, "webpush": 60}
"""Messages per minute a channel sends at most (the robots' own limits are 20 a minute), unless configured."""


class QuietHours(StrictModel):
    """Hours (local time) in which a channel holds its messages until the quiet time ends, unless severe enough."""

    start: int = Field(ge=0, le=23, description="First quiet hour, e.g. 22.")
    end: int = Field(ge=0, le=23, description="First hour that is no longer quiet, e.g. 7 (may be below start).")
    send_from: Severity = Field(
        default=Severity.critical, description="Alarms and cases at least this severe are sent even when quiet."
    )


class Uplink(StrictModel):
    """Where case and alarm events leave the hub: a signed webhook, or a notification channel people read
    (企业微信 or 钉钉 group robot, an SMS gateway, e-mail, Web Push to operators' browsers). Each has a durable queue
    with retries and dead letters."""

    id: Identifier = Field(description="Stable uplink id (keys its retry queue and dead letters).")
    format: ChannelFormat = Field(
        default="webhook",
        description="webhook: SharpEye's signed JSON envelope; wecom / dingtalk: a group robot's text message; "
        "sms: an HTTP SMS gateway (body_template); email: SMTP; webpush: the browsers the users in 'to' subscribed "
        "in the console (Web Push, signed with the hub's VAPID key).",
    )
    url: str | None = Field(
        default=None,
        pattern=r"^(https?|smtps?)://",
        max_length=500,
        description="Receiver URL: http(s) for webhook and sms; smtp:// or smtps://host:port for email; wecom and "
        "dingtalk default to the public robot endpoints (set it for a proxy inside the network).",
    )
    secret: EnvSecret | None = Field(
        default=None,
        description="${NAME}: webhook: the HMAC-SHA256 key shared with the receiver (16+ characters, required); "
        "wecom: the robot's key; dingtalk: the robot's access_token; sms: a bearer token; email: the SMTP password.",
    )
    sign_secret: EnvSecret | None = Field(
        default=None, description="${NAME}: dingtalk only: the robot's 加签 secret (requests are then signed)."
    )
    username: str | None = Field(default=None, max_length=200, description="email: the SMTP user name.")
    sender: str | None = Field(default=None, max_length=200, description="email: the From address.")
    to: list[str] = Field(
        default_factory=list,
        max_length=200,
        description="Recipients: phone numbers (sms; wecom/dingtalk: mobiles to @-mention), e-mail addresses, or "
        "(webpush) user names, role:<role> and task:assignees (the handlers and grid workers whose task the case is).",
    )
    events: list[UplinkEvent] = Field(
        default_factory=_all_events, min_length=1, description="Which event kinds to forward."
    )
    types: list[str] = Field(
        default_factory=lambda: ["*"],
        min_length=1,
        description="Event types to send, as patterns: case.dispatch, case.supervise (督办), alarm.raised, case.*, *.",
    )
    departments: list[Identifier] = Field(
        default_factory=list,
        description="Case events only of cases at these departments (or 督办 aimed at them); empty: all.",
    )
    min_severity: Severity = Field(
        default=Severity.warning, description="Alarm and case events at least this severe (default: all)."
    )
    template: str | None = Field(
        default=None,
        max_length=2000,
        description="Message text with ${field} placeholders (docs/operators.md lists them); default: a Chinese "
        "text per event kind.",
    )
    subject: str | None = Field(default=None, max_length=200, description="email: subject template.")
    body_template: str | None = Field(
        default=None,
        max_length=4000,
        description="sms: the gateway's request body with ${phones} (comma-separated), ${phone_list} (JSON array) "
        'and ${text} (JSON-escaped) placeholders; default: {"phones": ${phone_list}, "text": ${text}}.',
    )
    rate_per_min: int | None = Field(
        default=None, ge=1, le=10_000, description="At most this many messages a minute (more wait); default by format."
    )
    quiet_hours: QuietHours | None = Field(default=None, description="Hold less severe messages in these hours.")
    timeout_s: float = Field(default=10.0, gt=0, le=120, description="One delivery attempt's time limit.")
    max_attempts: int = Field(
        default=20, ge=1, le=100, description="Attempts before dead-lettering (20 with the default backoff: about 2 h)."
    )
    backoff_s: float = Field(default=2.0, gt=0, le=3600, description="Delay before the second attempt.")
    backoff_max_s: float = Field(default=600.0, gt=0, le=86_400, description="Longest delay between attempts.")

    @field_validator("secret")
    @classmethod
    def _long_webhook_secret(cls, secret: EnvSecret | None, info: ValidationInfo) -> EnvSecret | None:
        if secret is not None and info.data.get("format", "webhook") == "webhook":
            return min_length(16)(secret)
        return secret

    @model_validator(mode="after")
    def _fits_format(self) -> Uplink:
        if self.format == "webpush":
            if self.url is not None or self.secret is not None or self.sign_secret is not None:
                raise ValueError("webpush takes no url or secret: browsers' subscriptions say where, the hub's VAPID "
                                 "key signs")  # fmt: skip
            if not self.to:
                raise ValueError("webpush needs recipients in 'to' (user names, role:<role> or task:assignees)")
            for entry in self.to:
                if entry.startswith("role:"):
                    if entry.removeprefix("role:") not in ROLE_NAMES:
                        raise ValueError(f"webpush recipient {entry!r}: no such role (roles: {', '.join(ROLE_NAMES)})")
                elif entry != "task:assignees" and not WEBPUSH_USER.fullmatch(entry):
                    raise ValueError(f"webpush recipient {entry!r} is not a user name, role:<role> or task:assignees")
            return self
        url = self.url or DEFAULT_URLS.get(self.format)
        if url is None:
            raise ValueError(f"a {self.format} uplink needs a url")
        email = self.format == "email"
        if email != url.startswith(("smtp://", "smtps://")):
            raise ValueError("email takes smtp:// or smtps:// URLs; the other formats http(s)://")
        if self.format == "webhook" and self.secret is None:
            raise ValueError("a webhook needs a secret (${NAME}, 16+ characters): the receiver checks its signatures")
        if self.format in ("wecom", "dingtalk") and self.secret is None:
            raise ValueError(f"a {self.format} robot needs its key as secret (${{NAME}})")
        if self.format in ("sms", "email") and not self.to:
            raise ValueError(f"{self.format} needs recipients in 'to'")
        if email and not self.sender:
            raise ValueError("email needs a sender (From address)")
        if self.sign_secret is not None and self.format != "dingtalk":
            raise ValueError("sign_secret is for dingtalk robots only")
        return self

    @property
    def endpoint(self) -> str:
        """The URL to send to (the format's default when none is configured)."""
        return self.url or DEFAULT_URLS.get(self.format, "")

    @property
    def rate(self) -> int | None:
        return self.rate_per_min if self.rate_per_min is not None else DEFAULT_RATES.get(self.format)


class Contact(StrictModel):
    name: str = Field(min_length=1, max_length=100, description="Who: a person, a duty desk.")
    phone: str = Field(pattern=r"^[0-9+\-() ]{3,30}$", description="Phone number.")


class Procedure(StrictModel):
    """处置预案: what an operator does for an alarm of these rules or categories, step by step."""

    id: Identifier = Field(description="Stable procedure id.")
    title: str = Field(min_length=1, max_length=200, description="Shown above the steps, e.g. 周界入侵处置预案.")
    rules: list[Identifier] = Field(default_factory=list, description="Alarm rules it applies to.")
    categories: list[str] = Field(default_factory=list, description="Or alarm categories it applies to.")
    steps: list[str] = Field(min_length=1, max_length=30, description="The steps, in order; the operator ticks each.")
    contacts: list[Contact] = Field(default_factory=list, description="Phone numbers to call.")
    cameras: list[Identifier] = Field(default_factory=list, description="Cameras to bring up beside the alarm's.")

    @model_validator(mode="after")
    def _applies(self) -> Procedure:
        if not self.rules and not self.categories:
            raise ValueError("a procedure applies to some rules or categories")
        return self


class UpperHub(StrictModel):
    """The hub above this one (village/town → district → city): cases escalated here go there."""

    uplink: Identifier = Field(
        description="An uplink of this hub (webhook, events [hub]) whose url is the upper hub's "
        "/api/hierarchy/inbox; its secret is the pair's key (the upper hub signs its actions with it too)."
    )
    escalate_overdue: bool = Field(
        default=False,
        description="Escalate a case to the upper hub by itself when a supervision step that goes to the level above "
        "(notify: level_above) fires and this hub has no level above the case's department.",
    )


class LowerHub(StrictModel):
    """A hub below this one whose escalated cases this hub takes."""

    site: Identifier = Field(description="The lower hub's site id (it signs its deliveries as this site).")
    uplink: Identifier = Field(
        description="An uplink of this hub (webhook, events [hub]) whose url is the lower hub's /api/hierarchy/inbox; "
        "its secret is the pair's key (the lower hub's deliveries are checked with it)."
    )
    org_unit: Identifier = Field(description="This hub's org unit that stands for the lower hub's area (its cases "
                                 "are opened there).")  # fmt: skip


class Hierarchy(StrictModel):
    """Hubs above hubs, like the 综治 levels: escalated cases go up with their updates, photos and closure; the
    upper hub's actions come back down (docs/deployment.md)."""

    upper: UpperHub | None = Field(default=None, description="Where this hub escalates cases (none: the top).")
    lowers: list[LowerHub] = Field(default_factory=list, description="Hubs below that escalate cases here.")


class Governance(StrictModel):
    """Intake, dispatch and time limits."""

    intake: list[IntakeRule] = Field(default_factory=list, description="Alarm → case policy, in order.")
    dispatch: list[DispatchRule] = Field(default_factory=list, description="Dispatch table, in order.")
    sla: list[SlaRule] = Field(default_factory=list, description="Time limits per category.")
    working_hours: tuple[int, int] = Field(
        default=(9, 17), description="Working day as (start hour, end hour), local time."
    )
    escalation: list[EscalationStep] = Field(
        default_factory=_default_escalation,
        description="Supervision steps (督办), in firing order: remind the handler, the centre, then escalate.",
    )

    reports: ReportLimits = Field(default_factory=ReportLimits, description="Photo upload limits.")
    merge: MergePolicy = Field(default_factory=MergePolicy, description="Merge proposals (并单).")
    residents: ResidentReports = Field(default_factory=ResidentReports, description="The residents' report page.")
    uplinks: list[Uplink] = Field(default_factory=list, description="Webhook receivers of case and alarm events.")
    hierarchy: Hierarchy = Field(default_factory=Hierarchy, description="Hubs above and below this one.")
    procedures: list[Procedure] = Field(
        default_factory=list,
        description="处置预案 shown with the alarms they apply to (a rule's own first, then its category's).",
    )
    false_alarm_reasons: list[str] = Field(
        default_factory=lambda: ["树木晃动", "光线变化", "小动物", "设备故障", "其他"],
        min_length=1,
        max_length=50,
        description="The reasons an operator picks from when judging an alarm false (误报).",
    )

    @field_validator("uplinks")
    @classmethod
    def _unique_uplinks(cls, uplinks: list[Uplink]) -> list[Uplink]:
        ids = [u.id for u in uplinks]
        for i in ids:
            if ids.count(i) > 1:
                raise ValueError(f"uplink id {i!r} is used twice")
        return uplinks

    @model_validator(mode="after")
    def _hub_links(self) -> Governance:
        uplinks = {u.id: u for u in self.uplinks}
        links = [("upper", self.hierarchy.upper.uplink)] if self.hierarchy.upper is not None else []
        links += [(f"lower {lower.site!r}", lower.uplink) for lower in self.hierarchy.lowers]
        for what, uplink_id in links:
            uplink = uplinks.get(uplink_id)
            if uplink is None:
                raise ValueError(f"hierarchy {what}: no uplink {uplink_id!r}")
            if uplink.format != "webhook" or uplink.events != ["hub"]:
                raise ValueError(f"hierarchy {what}: uplink {uplink_id!r} must be a webhook with events [hub]")
        sites = [lower.site for lower in self.hierarchy.lowers]
        if len(sites) != len(set(sites)):
            raise ValueError("hierarchy: a lower hub's site is listed twice")
        return self

    @model_validator(mode="after")
    def _resident_sms(self) -> Governance:
        name = self.residents.sms_uplink
        if name is not None and not any(u.id == name and u.format == "sms" for u in self.uplinks):
            raise ValueError(f"residents.sms_uplink {name!r} is not an sms uplink of this site")
        return self

    @field_validator("escalation")
    @classmethod
    def _unique_steps(cls, steps: list[EscalationStep]) -> list[EscalationStep]:
        seen: set[str] = set()
        for step in steps:
            if step.id in seen:
                raise ValueError(f"escalation step id {step.id!r} is used twice")
            seen.add(step.id)
        return steps
