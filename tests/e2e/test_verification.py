"""研判 before dispatch, through the API against a real hub: an alarm of a rule with ``verification`` opens no case
until an operator confirms it; a false alarm (误报) stops at the operator and is counted; 转人工复核 hands it to the
supervisors; an alarm nobody judges escalates, then opens its case anyway. A confirmation answers at once and the alarm
intake opens the case from the verdict's notification: a database that is busy meanwhile, or a hub stopped before the
case, delays it but neither loses nor doubles it."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from sharpeye.api.permission import Role
from sharpeye.config.loader import demo_path, load_file
from sharpeye.config.rule import Verification
from sharpeye.config.site import SiteConfig
from sharpeye.ingest.registry import installed

from sharpeye.keys import Keys
from sharpeye.node.cli import main
from sharpeye.node.embedded import EmbeddedMosquitto, EmbeddedRedis
from tests.conftest import HubClient, app_client, hub_settings
from tests.helpers import Publisher, wait_for

PW = "Verify-Test-Password-1"


def verifying_site() -> SiteConfig:
    site = load_file(demo_path(), installed())
    rules = []
    for rule in site.rules:
        if rule.id == "fence-intrusion":
            rule = rule.model_copy(update={"verification": Verification(within_s=120), "correlate": False})
        elif rule.id == "fence-tamper":
            rule = rule.model_copy(update={"verification": Verification(within_s=0.5, supervisor_within_s=0.5)})
        rules.append(rule)
    return site.model_copy(update={"rules": rules})


@pytest.fixture
def client(
    tmp_path: Path, redis_server: EmbeddedRedis, mqtt_broker: EmbeddedMosquitto, keys: Keys
) -> Iterator[HubClient]:
    settings = hub_settings(tmp_path, redis_server.url, mqtt_broker.url, admin_password=PW, prefix=keys.prefix)
    with app_client(settings, verifying_site(), connected=True) as c:
        c.call(lambda: c.users.add("duty", PW, Role.operator))
        c.call(lambda: c.users.add("chief", PW, Role.supervisor))
        c.call(lambda: c.users.add("hedong", PW, Role.operator, "hedong"))
        yield c


def login(client: HubClient, name: str) -> dict[str, str]:
    token = client.post("/api/auth/token", data={"username": name, "password": PW}).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


def fence(pub: Publisher, seq: int, cause: str, zone: str) -> None:
    now = datetime.now(UTC).isoformat()
    pub.publish("sharpeye/fence/fence-reservoir/event",
                {"seq": seq, "ts": now, "event": "alarm", "cause": cause, "zone": zone})  # fmt: skip


def intrusion_waiting(client: HubClient, broker_url: str, who: dict[str, str], zone: str) -> str:
    """One fence intrusion in ``zone``: the id of its alarm, once it waits for a verdict."""
    pub = Publisher(broker_url)
    try:
        fence(pub, 1, "intrusion", zone)
        return str(waiting_for(client, who, zone)["alarm_id"])
    finally:
        pub.close()


def waiting_for(client: HubClient, who: dict[str, str], zone: str) -> dict[str, Any]:
    def find() -> dict[str, Any] | None:
        for item in client.get("/api/verifications", headers=who).json():
            if item["alarm"]["channel"] == zone:
                return dict(item)
        return None

    found = wait_for(find, what=f"the alarm of zone {zone} to wait for a verdict")
    assert found is not None
    return found


def cases(client: HubClient, who: dict[str, str]) -> list[dict[str, Any]]:
    return list(client.get("/api/cases", headers=who).json()["items"])


def case_of(client: HubClient, who: dict[str, str], alarm_id: str, timeout: float = 10.0) -> str:
    """The case of a confirmed alarm, once the alarm intake has opened it."""
    found = wait_for(lambda: client.get(f"/api/alarms/{alarm_id}", headers=who).json()["case_id"], timeout=timeout,
                     what=f"the case of alarm {alarm_id}")  # fmt: skip
    return str(found)


def test_verdicts_decide_whether_an_alarm_becomes_a_case(
    client: HubClient, mqtt_broker: EmbeddedMosquitto, capsys: pytest.CaptureFixture[str]
) -> None:
    duty, chief, hedong = login(client, "duty"), login(client, "chief"), login(client, "hedong")
    pub = Publisher(mqtt_broker.url)
    try:
        fence(pub, 1, "intrusion", "z1")
        first = waiting_for(client, duty, "z1")
        assert first["stage"] == "operator" and first["alarm"]["verdict"] == "pending"
        assert cases(client, duty) == []  # nothing reaches a department before the verdict
        assert client.get("/api/verifications", headers=hedong).json() == []  # 河东 does not see 山下's alarms
        alarm_id = first["alarm_id"]

        wrong = client.post(f"/api/alarms/{alarm_id}/verdict", json={"verdict": "false_alarm", "reason": "风太大"},
                            headers=duty)  # fmt: skip
        assert wrong.status_code == 422 and "小动物" in wrong.json()["detail"]
        body = {"verdict": "false_alarm", "reason": "小动物", "note": "野猫翻越"}
        judged = client.post(f"/api/alarms/{alarm_id}/verdict", json=body, headers=duty)
        assert judged.status_code == 200, judged.text
        assert judged.json() == {"verdict": "false_alarm", "case_pending": False}
        again = client.post(f"/api/alarms/{alarm_id}/verdict", json={"verdict": "confirm"}, headers=duty)
        assert again.status_code == 409
        alarm = client.get(f"/api/alarms/{alarm_id}", headers=duty).json()
        assert alarm["alarm"]["verdict"] == "false_alarm" and alarm["alarm"]["state"] == "active_ack"
        assert any(h["action"] == "verdict:false_alarm" for h in alarm["history"])
        assert cases(client, duty) == []

        fence(pub, 2, "intrusion", "z2")
        second = waiting_for(client, duty, "z2")
        confirmed = client.post(f"/api/alarms/{second['alarm_id']}/verdict",
                                json={"verdict": "confirm", "note": "画面可见两人翻越"}, headers=duty)  # fmt: skip
        assert confirmed.status_code == 200, confirmed.text
        assert confirmed.json() == {"verdict": "confirm", "case_pending": True}  # the intake is opening it
        case_id = case_of(client, duty, second["alarm_id"])
        case = client.get(f"/api/cases/{case_id}", headers=duty).json()["case"]
        assert case["stage"] == "dispatched" and "画面可见两人翻越" in case["description"]

        fence(pub, 3, "intrusion", "z3")
        third = waiting_for(client, duty, "z3")
        handed = client.post(f"/api/alarms/{third['alarm_id']}/verdict", json={"verdict": "review", "note": "看不清"},
                             headers=duty)  # fmt: skip
        assert handed.status_code == 200
        assert waiting_for(client, duty, "z3")["stage"] == "supervisor"
        refused = client.post(f"/api/alarms/{third['alarm_id']}/verdict", json={"verdict": "confirm"}, headers=duty)
        assert refused.status_code == 409 and "supervisors" in refused.json()["detail"]
        by_chief = client.post(f"/api/alarms/{third['alarm_id']}/verdict",
                               json={"verdict": "false_alarm", "reason": "光线变化"}, headers=chief)  # fmt: skip
        assert by_chief.status_code == 200
    finally:
        pub.close()

    # each verdict in the audit log (written in the same round trip as the alarm's record), by whom, with its reason
    audit = client.call(lambda: client.hub.redis.xrange(client.hub.keys.audit))
    verdicts = [(f[b"actor"].decode(), f[b"action"].decode(), f[b"target"].decode(), orjson.loads(f[b"details"]))
                for _, f in audit if f[b"action"].startswith(b"alarm.verdict.")]  # fmt: skip
    assert [(actor, action, target) for actor, action, target, _ in verdicts] == [
        ("user:duty", "alarm.verdict.false_alarm", alarm_id),
        ("user:duty", "alarm.verdict.confirm", second["alarm_id"]),
        ("user:duty", "alarm.verdict.review", third["alarm_id"]),
        ("user:chief", "alarm.verdict.false_alarm", third["alarm_id"])]  # fmt: skip
    assert verdicts[0][3] == {"reason": "小动物", "note": "野猫翻越"}

    # the record of verdicts is written by the intake from the verdicts' notifications, just after the answers
    def false_by_camera() -> dict[str, Any] | None:
        stats = client.get("/api/stats/false-alarms", params={"by": "camera"}, headers=duty).json()
        return dict(stats) if stats["total"] == 2 else None

    by_camera = wait_for(false_by_camera, what="both false alarms in the statistics")
    assert by_camera is not None and by_camera["items"] == [{"key": "fence-reservoir", "count": 2}]
    by_zone = client.get("/api/stats/false-alarms", params={"by": "zone"}, headers=duty).json()
    assert {i["key"] for i in by_zone["items"]} == {"fence-reservoir/z1", "fence-reservoir/z3"}
    by_reason = client.get("/api/stats/false-alarms", params={"by": "reason"}, headers=duty).json()
    assert {i["key"]: i["count"] for i in by_reason["items"]} == {"小动物": 1, "光线变化": 1}
    assert client.get("/api/stats/false-alarms", headers=hedong).json()["total"] == 0  # scope
    assert [c["id"] for c in cases(client, duty)] == [case_id]

    # the accuracy report: one confirmed and two false alarms of the reservoir fence, per camera, rule and zone
    def precision(by: str) -> dict[str, Any] | None:
        stats = client.get("/api/stats/precision", params={"by": by}, headers=duty).json()
        return dict(stats) if stats["confirmed"] + stats["false_alarms"] == 3 else None

    by_camera = wait_for(lambda: precision("camera"), what="three verdicts in the accuracy report")
    assert by_camera is not None
    assert by_camera["items"] == [{"key": "fence-reservoir", "confirmed": 1, "false_alarms": 2, "precision": 0.3333}]
    assert by_camera["precision"] == 0.3333
    zones = {i["key"]: (i["confirmed"], i["false_alarms"]) for i in client.get(
        "/api/stats/precision", params={"by": "zone"}, headers=duty).json()["items"]}  # fmt: skip
    assert zones == {"fence-reservoir/z1": (0, 1), "fence-reservoir/z2": (1, 0), "fence-reservoir/z3": (0, 1)}
    rules = client.get("/api/stats/precision", params={"by": "rule"}, headers=duty).json()["items"]
    assert [(i["key"], i["precision"]) for i in rules] == [("fence-intrusion", 0.3333)]
    assert client.get("/api/stats/precision", headers=hedong).json()["items"] == []  # scope
    naive = client.get("/api/stats/precision", params={"since": "2026-01-01T00:00:00"}, headers=duty)
    assert naive.status_code == 422 and "time zone" in naive.json()["detail"]
    assert client.get("/api/stats/precision", params={"by": "hour"}, headers=duty).status_code == 422

    # the same per camera on the command line, from the hub's database
    assert main(["verdicts", "--data-dir", str(client.hub.settings.data_dir)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split("\t") == ["camera", "confirmed", "false", "precision"]
    assert lines[1].split("\t") == ["fence-reservoir", "1", "2", "33.3%"]
    assert lines[2].startswith("all\t1\t2\t33.3%")

    # a redelivered batch of notifications (a consumer that crashed before its acknowledgement) counts nothing twice
    events = client.call(lambda: client.hub.redis.xrange(client.hub.keys.alarm_events))
    decoded = [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in events]
    assert client.call(lambda: client.hub.verification.record(decoded)) == 3
    again = precision("camera")
    assert again is not None and again["items"] == by_camera["items"]
    assert client.get("/api/stats/false-alarms", params={"by": "camera"}, headers=duty).json()["total"] == 2
    # ... and opens no case twice (the confirmation's entry read again, as after a crash past the case's commit)
    client.call(lambda: client.hub.intake.handle_batch(decoded))
    assert [c["id"] for c in cases(client, duty)] == [case_id]
    assert client.hub.intake.verified == 1


def test_an_alarm_nobody_judges_escalates_then_opens_its_case(
    client: HubClient, mqtt_broker: EmbeddedMosquitto
) -> None:
    duty = login(client, "duty")
    pub = Publisher(mqtt_broker.url)
    try:
        fence(pub, 1, "tamper", "tamper")
    finally:
        pub.close()
    case = wait_for(lambda: cases(client, duty), what="the case opened when the limits passed")[0]
    alarm_id = case["alarm_ids"][0]
    detail = client.get(f"/api/alarms/{alarm_id}", headers=duty).json()
    verdicts = [h["action"] for h in detail["history"] if h["action"].startswith("verdict:")]
    assert verdicts == ["verdict:pending", "verdict:escalated", "verdict:confirmed"]
    assert "研判超时" in client.get(f"/api/cases/{case['id']}", headers=duty).json()["case"]["description"]
    assert client.get("/api/verifications", headers=duty).json() == []
    # the time limit's verdict counts in the accuracy report as a confirmation by the system
    rules = wait_for(lambda: client.get("/api/stats/precision", params={"by": "rule"}, headers=duty).json()["items"],
                     what="the time limit's verdict in the accuracy report")  # fmt: skip
    assert rules == [{"key": "fence-tamper", "confirmed": 1, "false_alarms": 0, "precision": 1.0}]


def test_a_confirmation_answers_while_the_database_is_busy_and_its_case_opens_once_it_is_free(
    client: HubClient, mqtt_broker: EmbeddedMosquitto
) -> None:
    """The SQL record is busy past its busy timeout (another writer holds SQLite's lock, as a starved hub's own
    transactions did under bench/alarm_handling.py): the confirmation still answers at once; the intake's attempt to
    open the case fails, its notification stays unacknowledged and is read again, and the case opens once the
    database is free, exactly once."""
    duty = login(client, "duty")
    alarm_id = intrusion_waiting(client, mqtt_broker.url, duty, "z3")
    intake = client.hub.intake
    blocker = sqlite3.connect(client.hub.settings.sqlite_path, timeout=1)
    try:
        blocker.execute("BEGIN IMMEDIATE")  # SQLite's write lock, held past the hub's busy timeout
        confirmed = client.post(f"/api/alarms/{alarm_id}/verdict", json={"verdict": "confirm", "note": "翻越"},
                                headers=duty)  # fmt: skip
        assert confirmed.status_code == 200 and confirmed.json()["case_pending"], confirmed.text
        assert client.get("/api/verifications", headers=duty).json() == []  # judged: no other operator takes it
        wait_for(lambda: intake.progress.failing_since, timeout=20, what="the intake's attempt to fail on the lock")
        assert client.get(f"/api/alarms/{alarm_id}", headers=duty).json()["case_id"] is None
    finally:
        blocker.rollback()
        blocker.close()
    case_id = case_of(client, duty, alarm_id, timeout=20)
    assert [c["id"] for c in cases(client, duty)] == [case_id]
    assert "研判确认 user:duty：翻越" in client.get(f"/api/cases/{case_id}", headers=duty).json()["case"]["description"]
    assert intake.progress.failing_since is None and intake.verified == 1


def test_a_hub_stopped_between_the_confirmation_and_the_case_opens_it_once_when_back(
    tmp_path: Path, redis_server: EmbeddedRedis, mqtt_broker: EmbeddedMosquitto, keys: Keys
) -> None:
    """The confirmation is answered; the hub stops before its intake could open the case (the database was busy); a
    hub started again on the same Redis and database reads the unacknowledged notification and opens the case, once."""
    settings = hub_settings(tmp_path, redis_server.url, mqtt_broker.url, admin_password=PW, prefix=keys.prefix)
    blocker: sqlite3.Connection | None = None
    try:
        with app_client(settings, verifying_site(), connected=True) as first:
            first.call(lambda: first.users.add("duty", PW, Role.operator))
            duty = login(first, "duty")
            pub = Publisher(mqtt_broker.url)
            try:
                fence(pub, 1, "intrusion", "z2")
                alarm_id = waiting_for(first, duty, "z2")["alarm_id"]
            finally:
                pub.close()
            blocker = sqlite3.connect(settings.sqlite_path, timeout=1, isolation_level=None)
            blocker.execute("BEGIN IMMEDIATE")  # SQLite's write lock, held until this hub has stopped
            confirmed = first.post(f"/api/alarms/{alarm_id}/verdict", json={"verdict": "confirm"}, headers=duty)
            assert confirmed.status_code == 200 and confirmed.json()["case_pending"], confirmed.text
            wait_for(lambda: first.hub.intake.progress.failing_since, timeout=20, what="the intake to fail on the lock")
            assert first.hub.intake.verified == 0
    finally:
        if blocker is not None:
            blocker.rollback()
            blocker.close()
    with app_client(settings, verifying_site(), connected=True) as again:
        duty = login(again, "duty")
        case_id = case_of(again, duty, alarm_id, timeout=20)
        assert [c["id"] for c in cases(again, duty)] == [case_id]
        assert again.hub.intake.verified == 1


def test_two_verdicts_at_once_through_the_api_one_wins_the_other_is_told_409(
    client: HubClient, mqtt_broker: EmbeddedMosquitto
) -> None:
    """Two operators (a duty officer and a supervisor) post their verdicts on one alarm at the same moment, from two
    threads: exactly one is answered 200, the other 409; the alarm carries the winner's verdict, with one verdict
    notification and one audit entry (the take, the record and the audit entry are one script call)."""
    duty, chief = login(client, "duty"), login(client, "chief")
    pub = Publisher(mqtt_broker.url)
    try:
        for seq, zone in enumerate(("z1", "z2", "z3"), start=1):
            fence(pub, seq, "intrusion", zone)
        alarm_ids = [waiting_for(client, duty, zone)["alarm_id"] for zone in ("z1", "z2", "z3")]
    finally:
        pub.close()
    bodies = {"duty": (duty, {"verdict": "confirm", "note": "翻越"}),
              "chief": (chief, {"verdict": "false_alarm", "reason": "小动物"})}  # fmt: skip
    for alarm_id in alarm_ids:
        start = threading.Barrier(len(bodies))

        def post(who: str, alarm_id: str = alarm_id, start: threading.Barrier = start) -> tuple[int, dict[str, Any]]:
            headers, body = bodies[who]
            start.wait(timeout=10)
            res = client.post(f"/api/alarms/{alarm_id}/verdict", json=body, headers=headers)
            return res.status_code, dict(res.json())

        with ThreadPoolExecutor(len(bodies)) as pool:
            answers = dict(zip(bodies, pool.map(post, bodies), strict=True))
        assert sorted(code for code, _ in answers.values()) == [200, 409], answers
        winner = next(who for who, (code, _) in answers.items() if code == 200)
        loser = "chief" if winner == "duty" else "duty"
        assert "not waiting" in answers[loser][1]["detail"]
        recorded = "confirmed" if winner == "duty" else "false_alarm"
        assert client.get(f"/api/alarms/{alarm_id}", headers=duty).json()["alarm"]["verdict"] == recorded
        events = client.call(lambda: client.hub.redis.xrange(client.hub.keys.alarm_events))
        notes = [f[b"note"].decode() for _, f in events
                 if f[b"type"] == b"verdict" and f[b"alarm"].decode() == alarm_id]  # fmt: skip
        assert [n.split(":")[0] for n in notes] == ["pending", recorded]
        audit = client.call(lambda: client.hub.redis.xrange(client.hub.keys.audit))
        entries = [(f[b"actor"].decode(), f[b"action"].decode()) for _, f in audit if f[b"target"].decode() == alarm_id]
        assert entries == [(f"user:{winner}", f"alarm.verdict.{'confirm' if winner == 'duty' else 'false_alarm'}")]
    assert client.get("/api/verifications", headers=duty).json() == []


def test_a_verdict_sent_twice_is_answered_as_given_and_an_unknown_alarm_is_404(
    client: HubClient, mqtt_broker: EmbeddedMosquitto
) -> None:
    """An unscoped operator's verdict is one script call without reading the alarm first: an alarm that does not exist
    is still 404, as one out of a scoped operator's scope; the same verdict sent again (its answer lost) is 200."""
    duty, hedong = login(client, "duty"), login(client, "hedong")
    body = {"verdict": "false_alarm", "reason": "小动物", "note": "野猫"}
    assert client.post("/api/alarms/no-such-alarm/verdict", json=body, headers=duty).status_code == 404
    alarm_id = intrusion_waiting(client, mqtt_broker.url, duty, "z1")
    assert client.post(f"/api/alarms/{alarm_id}/verdict", json=body, headers=hedong).status_code == 404
    for _ in range(2):
        judged = client.post(f"/api/alarms/{alarm_id}/verdict", json=body, headers=duty)
        assert judged.status_code == 200 and judged.json() == {"verdict": "false_alarm", "case_pending": False}
    other = client.post(f"/api/alarms/{alarm_id}/verdict", json={**body, "note": "另一只"}, headers=duty)
    assert other.status_code == 409
    history = client.get(f"/api/alarms/{alarm_id}", headers=duty).json()["history"]
    assert [h["action"] for h in history].count("verdict:false_alarm") == 1
