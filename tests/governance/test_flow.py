"""The case state machine: every path of DOMAIN.md, refusals with reasons, and random action sequences
checked against invariants and an independent reference model."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from sharpeye.config.org import Level
from sharpeye.config.rule import Severity
from sharpeye.governance.case import Case, CaseEvent, Source, Stage
from sharpeye.governance.dispatch import Dispatcher
from sharpeye.governance.flow import Action, Actor, Args, Assignment, Flow, Role, TransitionError, allowed, new_case

from tests.governance.casebook import OPERATOR, SUPERVISOR, VIEWER, cst, handler

H = 3600.0
JWH = Assignment("hd-jwh", Level.village, "hedong", rule="dispatch[3]")
SFS = Assignment("qs-sfs", Level.town, "qingshui", rule="dispatch[3]")
ADMIN = Actor("root", Role.admin)
INTEGRATOR = Actor("int-1", Role.integrator)


def reported(now_hour: int = 10) -> Case:
    return new_case(
        case_id="QS-20251009-0001",
        title="楼道堆物纠纷",
        category="dispute",
        severity=Severity.minor,
        source=Source.resident,
        org_unit="hedong-g1",
        actor=OPERATOR,
        now=cst(2025, 10, 9, now_hour),
    ).case


class Runner:
    """Applies actions one hour apart and keeps the history."""

    def __init__(self, flow: Flow, case: Case) -> None:
        self.flow = flow
        self.case = case
        self.now = case.updated_at
        self.history: list[CaseEvent] = []

    def do(self, action: Action, actor: Actor, **kw: object) -> Case:
        self.now += timedelta(hours=1)
        step = self.flow.apply(self.case, action, actor, self.now, Args(**kw))  # type: ignore[arg-type]
        self.case = step.case
        self.history.append(step.event)
        return self.case


def test_main_path_to_closure_with_history(flow: Flow) -> None:
    run = Runner(flow, reported())
    run.do(Action.accept, OPERATOR)
    run.do(Action.dispatch, OPERATOR, assignment=JWH)
    assert run.case.department == "hd-jwh" and run.case.level == "village"
    assert run.case.due_at is not None and run.case.light is not None
    worker = handler("hd-jwh")
    run.do(Action.claim, worker)
    assert run.case.claimed_by == worker.id
    run.do(Action.feedback, worker, reason="已协调清理")
    run.do(Action.verify, OPERATOR)
    case = run.do(Action.pass_check, OPERATOR)
    assert case.stage is Stage.closed and case.closed_at == run.now
    assert [e.action for e in run.history] == ["accept", "dispatch", "claim", "feedback", "verify", "pass_check"]
    assert [e.to_stage for e in run.history][-1] is Stage.closed
    assert run.history[1].data["department"] == "hd-jwh" and "due_at" in run.history[1].data
    assert all(e.case_id == case.id for e in run.history)
    assert allowed(case, ADMIN) == []


def test_return_then_reassign_restarts_the_clock(flow: Flow) -> None:
    run = Runner(flow, reported())
    run.do(Action.accept, OPERATOR)
    run.do(Action.dispatch, OPERATOR, assignment=JWH)
    run.do(Action.claim, handler("hd-jwh"))
    with pytest.raises(TransitionError, match="reason is required"):
        run.do(Action.return_, handler("hd-jwh"))
    case = run.do(Action.return_, handler("hd-jwh"), reason="涉及司法调解，非本单位职责")
    assert case.stage is Stage.accepted and case.department is None and case.due_at is None and case.returns == 1
    with pytest.raises(TransitionError, match="use reassign"):
        run.do(Action.dispatch, OPERATOR, assignment=SFS)
    case = run.do(Action.reassign, OPERATOR, assignment=SFS)
    assert case.stage is Stage.dispatched and case.department == "qs-sfs" and case.reassignments == 1
    assert case.dispatched_at == run.now
    # A supervisor may also reassign directly, but not to the same department.
    with pytest.raises(TransitionError, match="already with qs-sfs"):
        run.do(Action.reassign, SUPERVISOR, assignment=SFS)


def test_rework_after_a_failed_check(flow: Flow) -> None:
    run = Runner(flow, reported())
    run.do(Action.accept, OPERATOR)
    run.do(Action.dispatch, OPERATOR, assignment=JWH)
    worker = handler("hd-jwh")
    run.do(Action.claim, worker)
    run.do(Action.feedback, worker, reason="已清理")
    run.do(Action.verify, OPERATOR)
    case = run.do(Action.fail_check, OPERATOR, reason="现场仍有堆物")
    assert case.stage is Stage.handling and case.reworks == 1 and case.handled_at is None
    run.do(Action.feedback, worker, reason="已彻底清理")
    run.do(Action.verify, OPERATOR)
    assert run.do(Action.pass_check, OPERATOR).stage is Stage.closed


def test_cancel_merge_park_and_reopen(flow: Flow) -> None:
    run = Runner(flow, reported())
    with pytest.raises(TransitionError, match="reason is required"):
        run.do(Action.cancel, OPERATOR)
    assert run.do(Action.cancel, OPERATOR, reason="重复测试数据").stage is Stage.cancelled
    with pytest.raises(TransitionError, match="not allowed from stage cancelled"):
        run.do(Action.accept, OPERATOR)

    run = Runner(flow, reported())
    with pytest.raises(TransitionError, match="into itself"):
        run.do(Action.merge, OPERATOR, target=run.case.id)
    case = run.do(Action.merge, OPERATOR, target="QS-20251009-0000")
    assert case.stage is Stage.merged and case.merged_into == "QS-20251009-0000"

    run = Runner(flow, reported())
    run.do(Action.accept, OPERATOR)
    run.do(Action.dispatch, OPERATOR, assignment=JWH)
    with pytest.raises(TransitionError, match="role operator may not park"):
        run.do(Action.park, OPERATOR, reason="历史遗留")
    case = run.do(Action.park, SUPERVISOR, reason="历史遗留，需区级统筹")
    assert case.stage is Stage.parked
    case = run.do(Action.reopen, SUPERVISOR, reason="区里已有方案")
    assert case.stage is Stage.accepted and case.department is None
    assert run.do(Action.dispatch, OPERATOR, assignment=SFS).department == "qs-sfs"


def test_extension_rules(flow: Flow) -> None:
    run = Runner(flow, reported())
    run.do(Action.accept, OPERATOR)
    run.do(Action.dispatch, OPERATOR, assignment=JWH)
    worker = handler("hd-jwh")
    run.do(Action.claim, worker)
    with pytest.raises(TransitionError, match="positive duration"):
        run.do(Action.request_extension, worker, reason="等鉴定", extra_s=0)
    with pytest.raises(TransitionError, match="no extension request"):
        run.do(Action.approve_extension, SUPERVISOR)
    run.do(Action.request_extension, worker, reason="等鉴定", extra_s=8 * H)
    with pytest.raises(TransitionError, match="waiting for approval"):
        run.do(Action.feedback, worker, reason="done")
    with pytest.raises(TransitionError, match="role department_handler may not approve_extension"):
        run.do(Action.approve_extension, worker)
    case = run.do(Action.approve_extension, SUPERVISOR, extra_s=4 * H)
    assert case.extensions == 1 and not case.extension_pending
    assert case.sla is not None and case.sla.limit_s == 3 * 8 * H + 4 * H


def test_refusals_name_the_reason(flow: Flow) -> None:
    case = reported()
    with pytest.raises(TransitionError, match=r"not allowed from stage reported \(上报\); allowed from: dispatched"):
        flow.apply(case, Action.claim, handler("hd-jwh"), cst(2025, 10, 9, 11))
    with pytest.raises(TransitionError, match="role viewer may not accept"):
        flow.apply(case, Action.accept, VIEWER, cst(2025, 10, 9, 11))
    with pytest.raises(TransitionError, match="unknown action"):
        flow.apply(case, "teleport", ADMIN, cst(2025, 10, 9, 11))
    with pytest.raises(TransitionError, match="before the case's last change"):
        flow.apply(case, Action.accept, OPERATOR, cst(2025, 10, 9, 9))
    accepted = flow.apply(case, Action.accept, OPERATOR, cst(2025, 10, 9, 11)).case
    override = Assignment("qs-sfs", Level.town, "qingshui", rule="manual", overridden_by="op-li")
    with pytest.raises(TransitionError, match="override needs a reason"):
        flow.apply(accepted, Action.dispatch, OPERATOR, cst(2025, 10, 9, 12), Args(assignment=override))
    dispatched = flow.apply(accepted, Action.dispatch, OPERATOR, cst(2025, 10, 9, 12), Args(assignment=JWH)).case
    with pytest.raises(TransitionError, match="h-qs-sfs is not a handler of department hd-jwh"):
        flow.apply(dispatched, Action.claim, handler("qs-sfs"), cst(2025, 10, 9, 13))


def test_manual_override_is_recorded(flow: Flow, dispatcher: Dispatcher) -> None:
    case = flow.apply(reported(), Action.accept, OPERATOR, cst(2025, 10, 9, 11)).case
    choice = dispatcher.override("dispute", "hedong-g1", "qs-sfs", OPERATOR, "当事人要求司法所调解")
    step = flow.apply(case, Action.dispatch, OPERATOR, cst(2025, 10, 9, 12), Args(assignment=choice))
    assert step.event.data["overridden_by"] == "op-li"
    assert step.event.data["override_reason"] == "当事人要求司法所调解"
    assert step.case.level == "town"


# --- random sequences ------------------------------------------------------------------------------------

ACTORS = [
    OPERATOR,
    SUPERVISOR,
    ADMIN,
    VIEWER,
    INTEGRATOR,
    handler("hd-jwh"),
    handler("qs-sfs"),
    Actor("gw-1", Role.grid_worker, "hd-jwh"),  # the field roles: their department's tasks only
    Actor("fh-1", Role.handler, "qs-sfs"),
]
DEPARTMENT_SETS: list[tuple[str, ...]] = [(), ("qs-sfs",), ("hd-jwh", "qs-sfs"), ("qs-zfd",)]  # 协办
ASSIGNMENTS = [None, JWH, SFS, Assignment("qs-sfs", Level.town, "qingshui", overridden_by="op-li")]

_OPS = {Role.operator, Role.supervisor, Role.admin}
_SUPS = {Role.supervisor, Role.admin}
_HANDS = {Role.department_handler, Role.supervisor, Role.admin}
_TAKERS = _HANDS | {Role.grid_worker, Role.handler}  # 签收 and 反馈 also from the field app
_DEPARTMENTAL = {Role.department_handler, Role.grid_worker, Role.handler}
_OPEN = {Stage.dispatched, Stage.handling, Stage.feedback, Stage.verifying}


@dataclass(frozen=True)
class Model:
    """The reference: the stage and the few facts the rules depend on, nothing else."""

    stage: Stage = Stage.reported
    department: str | None = None
    pending: bool = False
    returns: int = 0
    extensions: int = 0
    reworks: int = 0
    reassignments: int = 0
    assists: frozenset[str] = frozenset()  # co-handling departments (协办)
    assisted: frozenset[str] = frozenset()  # those that fed back


def predict(m: Model, action: Action, actor: Actor, args: Args, case_id: str) -> Model | None:
    """The next model state, or None when the action must be refused."""
    own = actor.role not in _DEPARTMENTAL or (m.department is not None and actor.department == m.department)
    new_assists = set(args.departments) - m.assists - {m.department}
    owes = actor.department is not None and actor.department in m.assists - m.assisted
    reason = bool(args.reason.strip())
    a = args.assignment
    assign_ok = a is not None and (a.overridden_by is None or bool(a.reason.strip()))
    table: dict[Action, tuple[set[Stage], Stage, set[Role], bool]] = {
        Action.accept: ({Stage.reported}, Stage.accepted, _OPS, True),
        Action.cancel: ({Stage.reported, Stage.accepted}, Stage.cancelled, _OPS, reason),
        Action.merge: ({Stage.reported, Stage.accepted}, Stage.merged, _OPS, args.target not in (None, "", case_id)),
        Action.dispatch: ({Stage.accepted}, Stage.dispatched, _OPS, assign_ok and m.returns == 0),
        Action.claim: ({Stage.dispatched}, Stage.handling, _TAKERS, own),
        Action.return_: ({Stage.dispatched, Stage.handling}, Stage.accepted, _HANDS, own and reason and not m.pending),
        Action.reassign: (
            {Stage.accepted, Stage.dispatched, Stage.handling},
            Stage.dispatched,
            _OPS,
            assign_ok
            and not (m.stage is Stage.accepted and m.returns == 0)
            and (a is None or a.department != m.department)
            and not m.pending,
        ),
        Action.request_extension: (
            {Stage.handling},
            Stage.handling,
            _HANDS,
            own and reason and (args.extra_s or 0) > 0 and not m.pending,
        ),
        Action.approve_extension: ({Stage.handling}, Stage.handling, _SUPS, m.pending),
        Action.reject_extension: ({Stage.handling}, Stage.handling, _SUPS, m.pending and reason),
        Action.feedback: ({Stage.handling}, Stage.feedback, _TAKERS, own and reason and not m.pending),
        Action.verify: ({Stage.feedback}, Stage.verifying, _OPS, True),
        Action.pass_check: ({Stage.verifying}, Stage.closed, _OPS, True),
        Action.fail_check: ({Stage.verifying}, Stage.handling, _OPS, reason),
        Action.park: (
            {Stage.accepted, Stage.dispatched, Stage.handling, Stage.feedback},
            Stage.parked,
            _SUPS,
            reason and not m.pending,
        ),
        Action.reopen: ({Stage.parked}, Stage.accepted, _SUPS, reason),
        Action.assist: (
            {Stage.dispatched, Stage.handling},
            m.stage,
            _OPS,
            bool(args.departments) and m.department not in args.departments and bool(new_assists),
        ),
        Action.assist_feedback: (_OPEN, m.stage, _TAKERS, owes and reason),
    }
    sources, target, roles, ok = table[action]
    if m.stage not in sources or actor.role not in roles or not ok:
        return None
    nxt = replace(m, stage=target)
    match action:
        case Action.dispatch:
            assert a is not None
            nxt = replace(nxt, department=a.department, pending=False)
        case Action.reassign:
            assert a is not None
            nxt = replace(nxt, department=a.department, pending=False, reassignments=m.reassignments + 1)
        case Action.return_:
            nxt = replace(nxt, department=None, returns=m.returns + 1)
        case Action.reopen:
            nxt = replace(nxt, department=None, pending=False)
        case Action.request_extension:
            nxt = replace(nxt, pending=True)
        case Action.approve_extension:
            nxt = replace(nxt, pending=False, extensions=m.extensions + 1)
        case Action.reject_extension:
            nxt = replace(nxt, pending=False)
        case Action.fail_check:
            nxt = replace(nxt, reworks=m.reworks + 1)
        case Action.assist:
            nxt = replace(nxt, assists=m.assists | new_assists)
        case Action.assist_feedback:
            assert actor.department is not None
            nxt = replace(nxt, assisted=m.assisted | {actor.department})
    return nxt


def check_invariants(case: Case) -> None:
    if case.stage in _OPEN:
        assert case.department and case.level and case.dispatched_at and case.due_at and case.sla
        assert case.light is not None
        assert case.due_at >= case.dispatched_at
        assert case.accepted_at is not None
    if case.stage in (Stage.reported, Stage.accepted):
        assert case.department is None and case.sla is None and case.due_at is None
    assert case.extension_pending == (case.sla is not None and case.sla.paused_at is not None)
    if case.extension_pending:
        assert case.stage is Stage.handling
    if case.stage in (Stage.feedback, Stage.verifying, Stage.closed):
        assert case.handled_at is not None
    if case.stage is Stage.closed:
        assert case.closed_at is not None and case.accepted_at is not None
    assert (case.stage is Stage.merged) == (case.merged_into is not None)


SOURCES = {
    Action.accept: {Stage.reported},
    Action.cancel: {Stage.reported, Stage.accepted},
    Action.merge: {Stage.reported, Stage.accepted},
    Action.dispatch: {Stage.accepted},
    Action.claim: {Stage.dispatched},
    Action.return_: {Stage.dispatched, Stage.handling},
    Action.reassign: {Stage.accepted, Stage.dispatched, Stage.handling},
    Action.request_extension: {Stage.handling},
    Action.approve_extension: {Stage.handling},
    Action.reject_extension: {Stage.handling},
    Action.feedback: {Stage.handling},
    Action.verify: {Stage.feedback},
    Action.pass_check: {Stage.verifying},
    Action.fail_check: {Stage.verifying},
    Action.park: {Stage.accepted, Stage.dispatched, Stage.handling, Stage.feedback},
    Action.reopen: {Stage.parked},
    Action.assist: {Stage.dispatched, Stage.handling},
    Action.assist_feedback: _OPEN,
}
ROLES = {
    Action.accept: _OPS,
    Action.cancel: _OPS,
    Action.merge: _OPS,
    Action.dispatch: _OPS,
    Action.claim: _TAKERS,
    Action.return_: _HANDS,
    Action.reassign: _OPS,
    Action.request_extension: _HANDS,
    Action.approve_extension: _SUPS,
    Action.reject_extension: _SUPS,
    Action.feedback: _TAKERS,
    Action.verify: _OPS,
    Action.pass_check: _OPS,
    Action.fail_check: _OPS,
    Action.park: _SUPS,
    Action.reopen: _SUPS,
    Action.assist: _OPS,
    Action.assist_feedback: _TAKERS,
}
# Ending a case early (cancel, merge) is plausible but rarer, so that random runs also reach the long paths.
_RARE = {Action.cancel, Action.merge, Action.park}
PLAUSIBLE = {
    stage: [a for a, src in SOURCES.items() if stage in src for _ in range(1 if a in _RARE else 4)] for stage in Stage
}


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_random_sequences_agree_with_the_model(flow: Flow, data: st.DataObject) -> None:
    """Mostly actions that make sense in the current stage (so long paths are reached), some that do not."""
    case = reported()
    model = Model()
    now = case.updated_at
    reached: set[Stage] = set()
    for _ in range(data.draw(st.integers(min_value=1, max_value=40), label="length")):
        plausible = PLAUSIBLE[model.stage]
        if plausible and data.draw(st.integers(0, 9)) < 8:
            action = data.draw(st.sampled_from(plausible))
        else:
            action = data.draw(st.sampled_from(list(Action)))
        fitting = [a for a in ACTORS if a.role in ROLES[action]]
        actor = data.draw(st.sampled_from(fitting if data.draw(st.integers(0, 9)) < 8 else ACTORS))
        args = Args(
            reason=data.draw(st.sampled_from(["原因", "原因", "原因", "", " "])),
            assignment=data.draw(st.sampled_from(ASSIGNMENTS)),
            target=data.draw(st.sampled_from([None, "QS-20251009-0001", "QS-OTHER"])),
            extra_s=data.draw(st.sampled_from([None, 0.0, 4 * H])),
            departments=data.draw(st.sampled_from(DEPARTMENT_SETS)),
        )
        now = now + timedelta(seconds=data.draw(st.integers(min_value=0, max_value=30 * 3600)))
        expected = predict(model, action, actor, args, case.id)
        try:
            step = flow.apply(case, action, actor, now, args)
        except TransitionError as exc:
            assert expected is None, f"{action} by {actor.role} from {model} refused: {exc}"
            assert exc.reason
            continue
        assert expected is not None, f"{action} by {actor.role} from {model} was allowed"
        assert step.event.from_stage is case.stage and step.event.to_stage is step.case.stage
        case, model = step.case, expected
        reached.add(case.stage)
        assert case.stage is model.stage
        assert case.department == model.department
        assert case.extension_pending == model.pending
        assert (case.returns, case.extensions, case.reworks, case.reassignments) == (
            model.returns,
            model.extensions,
            model.reworks,
            model.reassignments,
        )
        assert {a.department for a in case.assists} == model.assists
        assert {a.department for a in case.assists if a.done_at is not None} == model.assisted
        check_invariants(case)
        if case.stage.terminal:
            assert allowed(case, ADMIN) == []
    for stage in reached:
        event(f"reached {stage}")
