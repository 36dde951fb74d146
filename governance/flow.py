"""The case state machine of DOMAIN.md, with its side paths.

Main path: report → accept (立案) → dispatch (派遣, clock starts) → claim (签收) → feedback (反馈) →
verify (核查) → pass (结案). Side paths: cancel (注销), merge (并单), return with reasons (回退) then
reassign (改派), extension request (延期) then approve or reject, fail a check (返工), park (挂账) and
reopen from the problem library.

Each action is named, lists the stages it may start from and the roles that may take it, and may have
guards. ``Flow.apply`` is pure: (case, action, actor, now, arguments) → (new case, CaseEvent); an illegal
transition raises ``TransitionError`` whose message says why.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from sharpeye.config.org import Level
from sharpeye.config.rule import Severity
from sharpeye.governance.case import Assist, Case, CaseEvent, GeoPoint, Source, Stage
from sharpeye.governance.sla import SlaPolicy
from sharpeye.ingest.driver import Labels

from sharpeye.role import Role


class Action(StrEnum):
    accept = "accept"  # 受理/立案
    cancel = "cancel"  # 注销
    merge = "merge"  # 并单
    dispatch = "dispatch"  # 派遣
    claim = "claim"  # 签收
    return_ = "return"  # 回退
    reassign = "reassign"  # 改派
    request_extension = "request_extension"  # 延期申请
    approve_extension = "approve_extension"  # 延期批准
    reject_extension = "reject_extension"  # 延期驳回
    feedback = "feedback"  # 反馈
    verify = "verify"  # 核查
    pass_check = "pass_check"  # noqa: S105  核查通过 → 结案
    fail_check = "fail_check"  # 核查不通过 → 返工
    park = "park"  # 挂账
    reopen = "reopen"  # 出库重办
    assist = "assist"  # 协办: co-handling departments join the case
    assist_feedback = "assist_feedback"  # 协办反馈: a co-handling department's own feedback

    @property
    def label_zh(self) -> str:
        return ACTION_LABELS[self]["zh"]


ACTION_LABELS: dict[Action, Labels] = {
    Action.accept: {"zh": "立案", "en": "Accept"},
    Action.cancel: {"zh": "注销", "en": "Cancel"},
    Action.merge: {"zh": "并单", "en": "Merge"},
    Action.dispatch: {"zh": "派遣", "en": "Dispatch"},
    Action.claim: {"zh": "签收", "en": "Claim"},
    Action.return_: {"zh": "回退", "en": "Return"},
    Action.reassign: {"zh": "改派", "en": "Reassign"},
    Action.request_extension: {"zh": "申请延期", "en": "Ask for more time"},
    Action.approve_extension: {"zh": "批准延期", "en": "Approve extension"},
    Action.reject_extension: {"zh": "驳回延期", "en": "Refuse extension"},
    Action.feedback: {"zh": "反馈", "en": "Feedback"},
    Action.verify: {"zh": "核查", "en": "Verify"},
    Action.pass_check: {"zh": "核查通过", "en": "Pass check"},
    Action.fail_check: {"zh": "核查不通过", "en": "Fail check"},
    Action.park: {"zh": "挂账", "en": "Park"},
    Action.reopen: {"zh": "重办", "en": "Reopen"},
    Action.assist: {"zh": "协办", "en": "Co-handling"},
    Action.assist_feedback: {"zh": "协办反馈", "en": "Co-handling feedback"},
}
"""The one source of the actions' display names: the console's buttons and case history show them."""

EVENT_LABELS: dict[str, Labels] = {
    **{action.value: labels for action, labels in ACTION_LABELS.items()},
    "report": {"zh": "上报", "en": "reported"},
    "alarm_added": {"zh": "追加报警", "en": "alarm added"},
    "merged_from": {"zh": "并入", "en": "merged in"},
    "supervise": {"zh": "督办", "en": "supervised"},
    "notified": {"zh": "已通知", "en": "notified"},
    "escalate_up": {"zh": "上报上级", "en": "escalated to the upper hub"},
    "upper_action": {"zh": "上级处置", "en": "upper hub acted"},
    "lower_update": {"zh": "下级续报", "en": "lower hub update"},
    "closed_below": {"zh": "下级办结", "en": "closed by the lower hub"},
    "rate": {"zh": "评价", "en": "rated"},
}
"""Display names of every ``CaseEvent.action`` in a case's history: the actions and the events no one takes."""


class TransitionError(ValueError):
    """An action that may not be taken; the message says why."""

    def __init__(self, action: Action | str, reason: str) -> None:
        super().__init__(f"{action}: {reason}")
        self.action = str(action)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts. A department handler acts only on cases of their own department; a grid worker or field handler
    only on their tasks: cases dispatched to their department or to one of ``task_departments`` (a grid worker's:
    the departments of their grid)."""

    id: str
    role: Role
    department: str | None = None
    task_departments: frozenset[str] = frozenset()

    def tasks(self) -> frozenset[str]:
        """The departments whose cases are this actor's tasks."""
        return self.task_departments | ({self.department} if self.department else set())


@dataclass(frozen=True, slots=True)
class Assignment:
    """Where a case goes: chosen by the dispatch table, or overridden by a person with a reason."""

    department: str
    level: Level
    unit: str
    rule: str = ""
    overridden_by: str | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Args:
    """Arguments an action may need. Which ones each action requires is checked in ``Flow.apply``."""

    reason: str = ""
    assignment: Assignment | None = None
    target: str | None = None  # merge: the case this one folds into
    extra_s: float | None = None  # extension: measured seconds asked for / granted
    position: GeoPoint | None = None  # claim/feedback from the field: where the actor was (kept in the history)
    departments: tuple[str, ...] = ()  # assist: the co-handling departments to add


@dataclass(frozen=True, slots=True)
class Transition:
    case: Case
    event: CaseEvent


_OPERATORS = frozenset({Role.operator, Role.supervisor, Role.admin})
_SUPERVISORS = frozenset({Role.supervisor, Role.admin})
_HANDLERS = frozenset({Role.department_handler, Role.supervisor, Role.admin})
_FIELD = frozenset({Role.grid_worker, Role.handler})
_TAKERS = _HANDLERS | _FIELD  # 签收 and 反馈: also from the field app

Guard = Callable[[Case, Actor, Args], str | None]


def _needs_reason(case: Case, actor: Actor, args: Args) -> str | None:
    return None if args.reason.strip() else "a reason is required"


def _needs_assignment(case: Case, actor: Actor, args: Args) -> str | None:
    if args.assignment is None:
        return "a department assignment is required"
    if args.assignment.overridden_by is not None and not args.assignment.reason.strip():
        return "a manual override needs a reason"
    return None


def _never_dispatched(case: Case, actor: Actor, args: Args) -> str | None:
    return "the case was dispatched before and returned: use reassign" if case.returns else None


def _returned_or_dispatched(case: Case, actor: Actor, args: Args) -> str | None:
    if case.stage is Stage.accepted and not case.returns:
        return "the case was never dispatched: use dispatch"
    if args.assignment is not None and args.assignment.department == case.department:
        return f"the case is already with {case.department}"
    return None


def _own_department(case: Case, actor: Actor, args: Args) -> str | None:
    if actor.role is Role.department_handler and actor.department != case.department:
        return f"{actor.id} is not a handler of department {case.department}"
    if actor.role in _FIELD and (case.department is None or case.department not in actor.tasks()):
        return f"the case is not a task of {actor.id} (dispatched to {case.department})"
    return None


def _assist_departments(case: Case, actor: Actor, args: Args) -> str | None:
    if not args.departments:
        return "the co-handling departments are required"
    if case.department in args.departments:
        return f"{case.department} leads the case: it cannot also co-handle it"
    if all(case.assisting(d) for d in args.departments):
        return "these departments co-handle the case already"
    return None


def assisting_department(case: Case, actor: Actor) -> str | None:
    """The department the actor feeds back for as a co-handler (协办), if any still owes its feedback."""
    mine = actor.tasks() if actor.role in _FIELD else ({actor.department} if actor.department else set())
    for assist in case.assists:
        if assist.department in mine and assist.done_at is None:
            return assist.department
    return None


def _assisting(case: Case, actor: Actor, args: Args) -> str | None:
    if assisting_department(case, actor) is None:
        return f"{actor.id} has no co-handling (协办) of this case to feed back"
    return None


def _no_pending_extension(case: Case, actor: Actor, args: Args) -> str | None:
    return "an extension request is waiting for approval" if case.extension_pending else None


def _pending_extension(case: Case, actor: Actor, args: Args) -> str | None:
    return None if case.extension_pending else "no extension request is waiting"


def _extension_amount(case: Case, actor: Actor, args: Args) -> str | None:
    if args.extra_s is None or args.extra_s <= 0:
        return "the extension needs a positive duration"
    return None


def _merge_target(case: Case, actor: Actor, args: Args) -> str | None:
    if not args.target:
        return "the case to merge into is required"
    if args.target == case.id:
        return "a case cannot be merged into itself"
    return None


@dataclass(frozen=True, slots=True)
class Rule:
    """One action: from which stages, to which stage (None: stays), by which roles, with which guards."""

    action: Action
    sources: frozenset[Stage]
    target: Stage | None
    roles: frozenset[Role]
    guards: tuple[Guard, ...] = field(default=())


_CLOCKED = frozenset({Stage.dispatched, Stage.handling})

RULES: Mapping[Action, Rule] = {
    r.action: r
    for r in (
        Rule(Action.accept, frozenset({Stage.reported}), Stage.accepted, _OPERATORS),
        Rule(Action.cancel, frozenset({Stage.reported, Stage.accepted}), Stage.cancelled, _OPERATORS, (_needs_reason,)),
        Rule(Action.merge, frozenset({Stage.reported, Stage.accepted}), Stage.merged, _OPERATORS, (_merge_target,)),
        Rule(
            Action.dispatch,
            frozenset({Stage.accepted}),
            Stage.dispatched,
            _OPERATORS,
            (_needs_assignment, _never_dispatched),
        ),
        Rule(Action.claim, frozenset({Stage.dispatched}), Stage.handling, _TAKERS, (_own_department,)),
        Rule(
            Action.return_,
            _CLOCKED,
            Stage.accepted,
            _HANDLERS,
            (_own_department, _needs_reason, _no_pending_extension),
        ),
        Rule(
            Action.reassign,
            frozenset({Stage.accepted, Stage.dispatched, Stage.handling}),
            Stage.dispatched,
            _OPERATORS,
            (_needs_assignment, _returned_or_dispatched, _no_pending_extension),
        ),
        Rule(
            Action.request_extension,
            frozenset({Stage.handling}),
            None,
            _HANDLERS,
            (_own_department, _needs_reason, _extension_amount, _no_pending_extension),
        ),
        Rule(
            Action.approve_extension,
            frozenset({Stage.handling}),
            None,
            _SUPERVISORS,
            (_pending_extension,),
        ),
        Rule(
            Action.reject_extension,
            frozenset({Stage.handling}),
            None,
            _SUPERVISORS,
            (_pending_extension, _needs_reason),
        ),
        Rule(
            Action.feedback,
            frozenset({Stage.handling}),
            Stage.feedback,
            _TAKERS,
            (_own_department, _needs_reason, _no_pending_extension),
        ),
        Rule(Action.verify, frozenset({Stage.feedback}), Stage.verifying, _OPERATORS),
        Rule(Action.pass_check, frozenset({Stage.verifying}), Stage.closed, _OPERATORS),
        Rule(Action.fail_check, frozenset({Stage.verifying}), Stage.handling, _OPERATORS, (_needs_reason,)),
        Rule(
            Action.park,
            frozenset({Stage.accepted, Stage.dispatched, Stage.handling, Stage.feedback}),
            Stage.parked,
            _SUPERVISORS,
            (_needs_reason, _no_pending_extension),
        ),
        Rule(Action.reopen, frozenset({Stage.parked}), Stage.accepted, _SUPERVISORS, (_needs_reason,)),
        Rule(Action.assist, _CLOCKED, None, _OPERATORS, (_assist_departments,)),
        Rule(
            Action.assist_feedback,
            frozenset({Stage.dispatched, Stage.handling, Stage.feedback, Stage.verifying}),
            None,
            _TAKERS,
            (_assisting, _needs_reason),
        ),
    )
}


def allowed(case: Case, actor: Actor) -> list[Action]:
    """Actions this actor could take now (ignoring arguments a guard would check)."""
    out: list[Action] = []
    for action, rule in RULES.items():
        if case.stage not in rule.sources or actor.role not in rule.roles:
            continue
        if action is Action.assist_feedback:
            if assisting_department(case, actor) is not None:
                out.append(action)
        elif _own_department(case, actor, Args()) is None:
            out.append(action)
    return out


def new_case(
    *,
    case_id: str,
    title: str,
    category: str,
    severity: Severity,
    source: Source,
    org_unit: str,
    actor: Actor,
    now: datetime,
    description: str = "",
    location: GeoPoint | None = None,
    alarm_ids: list[str] | None = None,
) -> Transition:
    """A freshly reported case (上报) and its first history entry."""
    if actor.role in (Role.viewer, Role.handler):
        raise TransitionError("report", f"role {actor.role} may not report cases")
    if now.tzinfo is None:
        raise TransitionError("report", "the time must be aware")
    case = Case(
        id=case_id,
        title=title,
        category=category,
        severity=severity,
        source=source,
        stage=Stage.reported,
        org_unit=org_unit,
        created_at=now,
        updated_at=now,
        description=description,
        location=location,
        alarm_ids=list(alarm_ids or []),
    )
    event = CaseEvent(
        at=now,
        action="report",
        actor=actor.id,
        role=str(actor.role),
        from_stage=None,
        to_stage=Stage.reported,
        case_id=case_id,
        data={"source": str(source)},
    )
    return Transition(case, event)


class Flow:
    """Applies actions to cases; owns the SLA policy that starts, pauses and resumes clocks."""

    def __init__(self, sla: SlaPolicy) -> None:
        self.sla = sla

    def check(self, case: Case, action: Action, actor: Actor, args: Args) -> Rule:
        rule = RULES.get(action)
        if rule is None:
            raise TransitionError(action, "unknown action")
        if case.stage not in rule.sources:
            allowed_from = ", ".join(sorted(s.value for s in rule.sources))
            raise TransitionError(
                action, f"not allowed from stage {case.stage} ({case.stage.label_zh}); allowed from: {allowed_from}"
            )
        if actor.role not in rule.roles:
            raise TransitionError(action, f"role {actor.role} may not {action}")
        for guard in rule.guards:
            reason = guard(case, actor, args)
            if reason is not None:
                raise TransitionError(action, reason)
        return rule

    def apply(
        self, case: Case, action: Action | str, actor: Actor, now: datetime, args: Args | None = None
    ) -> Transition:
        args = args or Args()
        try:
            action = Action(action)
        except ValueError:
            raise TransitionError(str(action), "unknown action") from None
        if now.tzinfo is None:
            raise TransitionError(action, "the time must be aware")
        if now < case.updated_at:
            raise TransitionError(action, f"time {now.isoformat()} is before the case's last change")
        rule = self.check(case, action, actor, args)
        update, data = self._effect(case, action, actor, now, args)
        target = rule.target or case.stage
        new = case.model_copy(update={**update, "stage": target, "updated_at": now})
        if new.sla is not None and new.dispatched_at is not None:
            new = new.model_copy(update={"light": self.sla.light(new, now)})
        if args.reason:
            data.setdefault("reason", args.reason)
        if args.position is not None:
            data["lat"], data["lon"] = f"{args.position.lat:.6f}", f"{args.position.lon:.6f}"
        event = CaseEvent(
            at=now,
            action=str(action),
            actor=actor.id,
            role=str(actor.role),
            from_stage=case.stage,
            to_stage=target,
            note=args.reason,
            case_id=case.id,
            data=data,
        )
        return Transition(new, event)

    def _dispatch_update(
        self, case: Case, assignment: Assignment, now: datetime
    ) -> tuple[dict[str, object], dict[str, str]]:
        state, due = self.sla.start(case.category, now)
        data = {"department": assignment.department, "level": str(assignment.level), "unit": assignment.unit}
        if assignment.rule:
            data["rule"] = assignment.rule
        if assignment.overridden_by is not None:
            data["overridden_by"] = assignment.overridden_by
            data["override_reason"] = assignment.reason
        data["due_at"] = due.isoformat()
        update: dict[str, object] = {
            "department": assignment.department,
            "level": str(assignment.level),
            "dispatched_at": now,
            "due_at": due,
            "sla": state,
            "claimed_by": None,
            "extension_pending": False,
        }
        return update, data

    def _effect(
        self, case: Case, action: Action, actor: Actor, now: datetime, args: Args
    ) -> tuple[dict[str, object], dict[str, str]]:
        match action:
            case Action.accept:
                return {"accepted_at": now}, {}
            case Action.cancel:
                return {}, {}
            case Action.merge:
                assert args.target is not None
                return {"merged_into": args.target}, {"target": args.target}
            case Action.dispatch:
                assert args.assignment is not None
                return self._dispatch_update(case, args.assignment, now)
            case Action.reassign:
                assert args.assignment is not None
                update, data = self._dispatch_update(case, args.assignment, now)
                update["reassignments"] = case.reassignments + 1
                if case.department:
                    data["from_department"] = case.department
                return update, data
            case Action.claim:
                return {"claimed_by": actor.id}, {}
            case Action.return_:
                data = {"department": case.department or ""}
                return {
                    "returns": case.returns + 1,
                    "department": None,
                    "level": None,
                    "dispatched_at": None,
                    "due_at": None,
                    "sla": None,
                    "light": None,
                    "claimed_by": None,
                }, data
            case Action.request_extension:
                assert case.sla is not None
                assert args.extra_s is not None
                return {
                    "extension_pending": True,
                    "sla": self.sla.pause(case.sla, now).model_copy(update={"requested_s": args.extra_s}),
                }, {"extra_s": f"{args.extra_s:g}"}
            case Action.approve_extension | Action.reject_extension:
                assert case.sla is not None and case.dispatched_at is not None
                granted = 0.0
                if action is Action.approve_extension:
                    granted = args.extra_s if args.extra_s is not None else case.sla.requested_s
                state, due = self.sla.resume(case.sla, case.dispatched_at, now, granted)
                resumed: dict[str, object] = {"extension_pending": False, "sla": state, "due_at": due}
                if action is Action.approve_extension:
                    resumed["extensions"] = case.extensions + 1
                return resumed, {"extra_s": f"{granted:g}", "due_at": due.isoformat()}
            case Action.feedback:
                return {"handled_at": now}, {}
            case Action.verify:
                return {}, {}
            case Action.pass_check:
                return {"closed_at": now}, {}
            case Action.fail_check:
                return {"reworks": case.reworks + 1, "handled_at": None}, {}
            case Action.park:
                return {}, {}
            case Action.assist:
                added = [d for d in dict.fromkeys(args.departments) if not case.assisting(d) and d != case.department]
                joined = [*case.assists, *(Assist(department=d, assigned_at=now) for d in added)]
                return {"assists": joined}, {"departments": ",".join(added)}
            case Action.assist_feedback:
                department = assisting_department(case, actor)
                done = [a.model_copy(update={"done_at": now, "note": args.reason, "actor": actor.id})
                        if a.department == department else a for a in case.assists]  # fmt: skip
                return {"assists": done}, {"department": department or ""}
            case Action.reopen:
                return {
                    "department": None,
                    "level": None,
                    "dispatched_at": None,
                    "due_at": None,
                    "sla": None,
                    "light": None,
                    "claimed_by": None,
                    "handled_at": None,
                    "extension_pending": False,
                }, {}
        raise TransitionError(action, "unknown action")  # pragma: no cover - every Action is matched above
