"""Hubs above hubs: a town hub and a district hub as real processes, each with its own Redis key space and its own
database, linked by signed uplinks both ways. A case escalated at the town opens once at the district; the
district's actions come back into the town case's history; the town's updates, a photo and the closure follow it
up; a repeated delivery is applied once, an early one is held until the gap closes; the district counts it once."""

from __future__ import annotations

import struct
import time
import uuid
import zlib
from pathlib import Path
from typing import Any

import httpx
import orjson
import yaml
from sharpeye.config.loader import demo_path
from sharpeye.governance.channel import DELIVERY, EVENT, SIGNATURE, TIMESTAMP, sign

from sharpeye.keys import Keys
from sharpeye.node.embedded import EmbeddedMosquitto, EmbeddedRedis, free_port
from tests.cluster.node import Node
from tests.helpers import env_secret, wait_for

SECRET = "town-district-pair-key-0123456789"


def png() -> bytes:
    """A valid 1×1 PNG (real bytes, checked by the receiving hub's magic-byte test)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0\xff\0\0")) + chunk(
        b"IEND", b""
    )


def hub_site(tmp: Path, site_id: str, governance: dict[str, Any]) -> Path:
    """The demo site without cameras, GB/T 28181 and video rules, under ``site_id``, with these governance keys."""
    site = yaml.safe_load(demo_path().read_text(encoding="utf-8"))
    site["site"]["id"] = site_id
    site["devices"] = [d for d in site["devices"] if d["kind"] not in ("camera", "gb28181")]
    site.pop("gb28181", None)
    for device in site["devices"]:
        for zone in device.get("zones", []):
            zone.pop("cameras", None)
    site["rules"] = [r for r in site["rules"] if not str(r["match"].get("kind", "")).startswith("video.")]
    site["governance"].update(governance)
    path = tmp / f"{site_id}.yaml"
    path.write_text(yaml.safe_dump(site, allow_unicode=True), encoding="utf-8")
    return path


def uplink(uplink_id: str, port: int) -> dict[str, Any]:
    return {"id": uplink_id, "url": f"http://127.0.0.1:{port}/api/hierarchy/inbox", "secret": env_secret(SECRET),
            "events": ["hub"], "backoff_s": 0.05, "backoff_max_s": 0.5}  # fmt: skip


def signed_post(base: str, envelope: dict[str, Any]) -> httpx.Response:
    body = orjson.dumps(envelope, option=orjson.OPT_SORT_KEYS)
    stamp = int(time.time())
    headers = {"Content-Type": "application/json", DELIVERY: envelope["id"], EVENT: envelope["type"],
               TIMESTAMP: str(stamp), SIGNATURE: sign(SECRET, stamp, body)}  # fmt: skip
    return httpx.post(f"{base}/api/hierarchy/inbox", content=body, headers=headers, timeout=10)


def history(node: Node, case_id: str, action: str) -> list[dict[str, Any]]:
    return [e for e in node.get(f"/api/cases/{case_id}")["history"] if e["action"] == action]


def test_escalation_round_trip(
    tmp_path: Path, redis_server: EmbeddedRedis, mqtt_broker: EmbeddedMosquitto, keys: Keys
) -> None:
    town_port, district_port = free_port(), free_port()
    town_id, district_id = f"town{uuid.uuid4().hex[:6]}", f"dist{uuid.uuid4().hex[:6]}"
    town_site = hub_site(tmp_path, town_id, {"uplinks": [uplink("district", district_port)],
                                             "hierarchy": {"upper": {"uplink": "district"}}})  # fmt: skip
    district_site = hub_site(
        tmp_path, district_id,
        {"uplinks": [uplink("town", town_port)],
         "hierarchy": {"lowers": [{"site": town_id, "uplink": "town", "org_unit": "hedong"}]}},
    )  # fmt: skip
    nodes: list[Node] = []
    try:
        for name, site, port in (("town", town_site, town_port), ("district", district_site, district_port)):
            own = tmp_path / name
            own.mkdir()
            nodes.append(Node(own, name, site, redis_server.url, mqtt_broker.url, Keys(f"{keys.prefix}{name}"),
                              port=port, SHARPEYE_DATABASE_URL=f"sqlite+aiosqlite:///{own / 'cases.db'}"))  # fmt: skip
        town, district = nodes

        # --- escalate down → up ------------------------------------------------------------------------------
        report = {"title": "河东桥下堆放易燃物", "category": "fire", "org_unit": "hedong-g1",
                  "description": "网格员巡查发现", "severity": "major"}  # fmt: skip
        lower = town.post("/api/reports", report)["id"]
        town.post(f"/api/cases/{lower}/photos", files={"photos": ("before.png", png(), "image/png")})
        escalated = town.post(f"/api/cases/{lower}/escalate-up", {"reason": "涉及多个部门，需区级协调"})
        assert escalated["case_id"] == lower
        refused = httpx.post(f"{town.base}/api/cases/{lower}/escalate-up", json={"reason": "again"},
                             headers=town.auth, timeout=10)  # fmt: skip
        assert refused.status_code == 409  # escalated once

        def linked() -> list[dict[str, Any]]:
            return list(district.get("/api/hierarchy")["linked"])

        (link,) = wait_for(linked, timeout=20, what="the escalated case opened at the district")
        upper = link["case_id"]
        assert link == {"case_id": upper, "site": town_id, "lower_case": lower}
        case = district.get(f"/api/cases/{upper}")["case"]
        assert (case["title"], case["category"], case["severity"], case["stage"], case["org_unit"]) == (
            report["title"], "fire", "major", "reported", "hedong"
        )
        assert lower in case["description"] and "区级协调" in case["description"]
        # the photo taken before escalation follows
        photos = wait_for(lambda: district.get(f"/api/cases/{upper}/photos"), timeout=20, what="photo at district")
        assert [p["media_type"] for p in photos] == ["image/png"]
        assert photos[0]["sha256"] == town.get(f"/api/cases/{lower}/photos")[0]["sha256"]

        # --- the district acts; the town sees it -------------------------------------------------------------
        district.post(f"/api/cases/{upper}/actions", {"action": "accept"})
        district.post(f"/api/cases/{upper}/actions", {"action": "dispatch"})
        seen = wait_for(lambda: len(lines := history(town, lower, "upper_action")) >= 2 and lines, timeout=20,
                        what="the district's accept and dispatch in the town case")  # fmt: skip
        assert "accept" in seen[0]["note"] and "dispatch" in seen[1]["note"]
        assert all(e["actor"] == f"hub:{district_id}" for e in seen)
        state = town.get("/api/hierarchy")["escalated"][0]
        assert (state["upper_case"], state["upper_stage"]) == (upper, "dispatched")

        # --- updates and a photo follow up -------------------------------------------------------------------
        town.post(f"/api/cases/{lower}/actions", {"action": "accept"})
        town.post(f"/api/cases/{lower}/photos", files={"photos": ("after.png", png() + b"\0", "image/png")})
        wait_for(lambda: history(district, upper, "lower_update"), timeout=20, what="the town's accept upstream")
        wait_for(lambda: len(district.get(f"/api/cases/{upper}/photos")) == 2, timeout=20, what="second photo")

        # --- a repeated and an early delivery ----------------------------------------------------------------
        base = {"kind": "hub", "site": town_id, "occurred_at": ""}
        snapshot = {"title": "重复投递", "category": "fire", "severity": "minor", "source": "grid_worker",
                    "description": ""}  # fmt: skip
        again = {**base, "id": f"hub-up-{town_id}:{lower}-1", "type": "hub.escalate",
                 "data": {"link": f"{town_id}:{lower}", "seq": 1, "case": snapshot, "reason": "重复"}}  # fmt: skip
        answer = signed_post(district.base, again)
        assert answer.status_code == 200 and answer.json()["status"] == "duplicate"
        ghost = f"{town_id}:GHOST-1"
        update = {**base, "id": f"hub-up-{ghost}-2", "type": "hub.update",
                  "data": {"link": ghost, "seq": 2, "action": "accept", "from": "reported",
                           "to": "accepted"}}  # fmt: skip
        first = {**base, "id": f"hub-up-{ghost}-1", "type": "hub.escalate",
                 "data": {"link": ghost, "seq": 1, "case": snapshot, "reason": "乱序"}}  # fmt: skip
        assert signed_post(district.base, update).json()["status"] == "held"
        assert district.get("/api/hierarchy")["held"] == 1 and len(linked()) == 1
        assert signed_post(district.base, first).json() == {"status": "applied", "applied": 2}
        assert signed_post(district.base, update).json()["status"] == "duplicate"
        ghost_case = next(x["case_id"] for x in linked() if x["lower_case"] == "GHOST-1")
        assert len(history(district, ghost_case, "lower_update")) == 1
        foreign = {**first, "id": "hub-up-foreign-1", "data": {**first["data"], "link": "another-town:X-1"}}
        assert signed_post(district.base, foreign).status_code == 403  # a lower hub speaks for its own cases only
        forged = {**update, "id": "hub-up-forged", "data": {**update["data"], "seq": 3}}
        body = orjson.dumps(forged)
        stamp = int(time.time())
        wrong = {TIMESTAMP: str(stamp), SIGNATURE: sign("not-the-pair-key-000000", stamp, body)}
        bad = httpx.post(f"{district.base}/api/hierarchy/inbox", content=body, headers=wrong)
        assert bad.status_code == 401
        assert district.metric("sharpeye_hierarchy_messages_total", 'outcome="bad_signature"') == 1

        # --- closure at the town closes the district case ----------------------------------------------------
        town.post(f"/api/cases/{lower}/actions", {"action": "dispatch"})
        town.post(f"/api/cases/{lower}/actions", {"action": "claim"})
        town.post(f"/api/cases/{lower}/actions", {"action": "feedback", "note": "已清理"})
        town.post(f"/api/cases/{lower}/actions", {"action": "verify"})
        assert town.post(f"/api/cases/{lower}/actions", {"action": "pass_check"})["case"]["stage"] == "closed"
        closed = wait_for(lambda: (c := district.get(f"/api/cases/{upper}")["case"])["stage"] == "closed" and c,
                          timeout=20, what="the district case closed from below")  # fmt: skip
        assert closed["closed_at"]
        assert [e["to_stage"] for e in history(district, upper, "closed_below")] == ["closed"]

        # --- counted once ------------------------------------------------------------------------------------
        (row,) = district.get("/api/stats")
        assert (row["opened"], row["closed"]) == (1, 1)  # accepted (立案) at the district: the escalated case only
        assert len(linked()) == 2  # the real case and the ghost, each once
        assert district.metric("sharpeye_hierarchy_messages_total", 'outcome="duplicate"') >= 2
        assert town.metric("sharpeye_hierarchy_messages_total", 'outcome="applied_action"') >= 2
    finally:
        for node in nodes:
            node.stop()
