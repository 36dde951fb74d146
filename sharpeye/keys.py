"""Every Redis key SharpEye uses, in one place, under one prefix.

Keys that a Lua script touches together share a hash tag (``{...}``) so that the script stays
valid on Redis Cluster too.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str = "se"

    # --- ingest -----------------------------------------------------------------------------
    def device(self, device_id: str) -> str:
        """Hash: live state of one device (state, last_seen, messages, errors)."""
        return f"{self.prefix}:device:{device_id}"

    @property
    def inventory_version(self) -> str:
        """Counter: the site's inventory version, raised by every stored device change."""
        return f"{self.prefix}:inventory:version"

    @property
    def inventory_changes(self) -> str:
        """Stream: inventory changes (v, op upsert/remove/site, device, origin node), followed by every node."""
        return f"{self.prefix}:inventory:changes"

    @property
    def gb_registrations(self) -> str:
        """Hash: GB/T 28181 device id -> its registration (ingest/gb28181/registrations.py), for every node."""
        return f"{self.prefix}:gb28181:registrations"

    @property
    def site_devices(self) -> str:
        """String: the devices of the site YAML as last reloaded by a node (JSON list), for the other nodes."""
        return f"{self.prefix}:inventory:site-devices"

    @property
    def devices(self) -> str:
        """Set of ids of every known device (from YAML, the API and discovery)."""
        return f"{self.prefix}:devices"

    @property
    def device_configs(self) -> str:
        """Hash id -> JSON config of devices added at run time (API, MQTT discovery)."""
        return f"{self.prefix}:device-configs"

    @property
    def deadletters(self) -> str:
        """Stream (capped): rejected input with its reason and origin."""
        return f"{self.prefix}:deadletters"

    def gb_track(self, device_id: str) -> str:
        """Sorted set: a GB/T 28181 device's MobilePosition reports (JSON), scored by their time (epoch seconds)."""
        return f"{self.prefix}:gb-track:{device_id}"

    def device_lease(self, unit: str) -> str:
        """String with TTL: ``"<fencing token> <node id>"`` of the node that owns a device or a site role
        (``ingest/ownership.py``). Hash-tagged with its token counter."""
        return f"{self.prefix}:lease:{{{unit}}}"

    def device_lease_token(self, unit: str) -> str:
        """Counter: the last fencing token issued for a device's or role's lease (only grows)."""
        return f"{self.prefix}:lease-token:{{{unit}}}"

    # --- verification (研判) -------------------------------------------------------------------
    def verification(self, alarm_id: str) -> str:
        """Hash: an alarm awaiting its verdict (stage operator|supervisor, due, rule, since)."""
        return f"{self.prefix}:verify:{alarm_id}"

    @property
    def verification_waiting(self) -> str:
        """Set: ids of the alarms awaiting a verdict."""
        return f"{self.prefix}:verify-waiting"

    @property
    def verification_due(self) -> str:
        """Sorted set: alarm id -> when its verification escalates (epoch seconds)."""
        return f"{self.prefix}:verify-due"

    # --- alarms -----------------------------------------------------------------------------
    def fingerprint(self, fingerprint: str) -> str:
        """Hash: ordering and identity state of one fingerprint (last_seq, open alarm id)."""
        return f"{self.prefix}:fp:{{{fingerprint}}}"

    @property
    def alarm_prefix(self) -> str:
        return f"{self.prefix}:alarm:"

    @property
    def alarm_history_prefix(self) -> str:
        return f"{self.prefix}:alarm-history:"

    def alarm(self, alarm_id: str) -> str:
        """Hash: one alarm's fields (JSON document plus mutable counters)."""
        return f"{self.alarm_prefix}{alarm_id}"

    def alarm_history(self, alarm_id: str) -> str:
        """List: the alarm's transitions and actions, oldest first (JSON entries)."""
        return f"{self.alarm_history_prefix}{alarm_id}"

    @property
    def alarms_by_time(self) -> str:
        """Sorted set: alarm id scored by last change (epoch seconds), for listing."""
        return f"{self.prefix}:alarms:by-time"

    @property
    def alarms_open(self) -> str:
        """Sorted set: ids of alarms not yet cleared, scored by first seen."""
        return f"{self.prefix}:alarms:open"

    def fingerprint_window(self, fingerprint: str) -> str:
        """Sorted set: recent occurrences of a count-in-window condition."""
        return f"{self.prefix}:fpw:{{{fingerprint}}}"

    @property
    def alarms_silenced(self) -> str:
        """Set: ids of open alarms raised under a silence (notified when the silence ends)."""
        return f"{self.prefix}:alarms:silenced"

    @property
    def silences(self) -> str:
        """Hash: silence id -> JSON silence (matchers, start, end, reason, author)."""
        return f"{self.prefix}:silences"

    @property
    def incident_prefix(self) -> str:
        """Prefix of incident hashes (``<prefix><id>``) and their member sets (``<prefix><id>:members``)."""
        return f"{self.prefix}:incident:"

    @property
    def incident_open_prefix(self) -> str:
        """Prefix of strings holding the open incident id of a correlation group."""
        return f"{self.prefix}:incident-open:"

    @property
    def incidents(self) -> str:
        """Sorted set: incident ids by first seen."""
        return f"{self.prefix}:incidents"

    @property
    def alarm_counts(self) -> str:
        """Hash: number of alarms in each state, maintained by the transition script."""
        return f"{self.prefix}:alarm-counts"

    @property
    def alarm_timers(self) -> str:
        """Sorted set: fingerprint scored by when its quiet period ends (camera-style alarms)."""
        return f"{self.prefix}:alarm-timers"

    @property
    def alarm_live(self) -> str:
        """Pub/sub channel: every alarm change, repeats included, for live consoles (not a log)."""
        return f"{self.prefix}:alarm-live"

    @property
    def alarm_events(self) -> str:
        """Stream: the notification log; one entry per alarm transition (raised, cleared, ...)."""
        return f"{self.prefix}:alarm-events"

    # --- people in the field (governance/field.py, api/routes/field.py) ----------------------
    def field_report(self, client_id: str) -> str:
        """String with TTL: the case a field report's client-generated id created ("pending" while it is made),
        so a resend from the offline queue never makes a second case."""
        return f"{self.prefix}:field-report:{client_id}"

    def patrol(self, patrol_id: str) -> str:
        """String: JSON of one 巡查 patrol (who, grid, started, ended, point count)."""
        return f"{self.prefix}:patrol:{{{patrol_id}}}"

    def patrol_track(self, patrol_id: str) -> str:
        """List: the patrol's GPS track, one JSON point per entry, in the order received."""
        return f"{self.prefix}:patrol-track:{{{patrol_id}}}"

    @property
    def patrols(self) -> str:
        """Sorted set: patrol id -> start (epoch seconds), every patrol."""
        return f"{self.prefix}:patrols"

    def resident_limit(self, what: str) -> str:
        """Counter with TTL: requests of a resident's phone number or address in the current window."""
        return f"{self.prefix}:resident-limit:{what}"

    @property
    def resident_receipts(self) -> str:
        """Hash: receipt number -> JSON {case id, digest of the phone number} of a resident's report."""
        return f"{self.prefix}:resident-receipts"

    def resident_challenge(self, challenge_id: str) -> str:
        """String with TTL: the digests of a one-time code or captcha answer and its phone number, until used."""
        return f"{self.prefix}:resident-challenge:{challenge_id}"

    # --- governance -------------------------------------------------------------------------
    def case_queue(self, department: str) -> str:
        """Stream with a consumer group per department: case ids waiting to be claimed."""
        return f"{self.prefix}:case-queue:{department}"

    def case_sequence(self, day: str) -> str:
        """Counter: case numbers issued on ``day`` (YYYYMMDD)."""
        return f"{self.prefix}:case-seq:{day}"

    @property
    def case_events(self) -> str:
        """Stream: case transitions, for the console and uplinks."""
        return f"{self.prefix}:case-events"

    def sla_plan(self, case_id: str = "") -> str:
        """Hash: a case's supervision plan (steps, next index, generation, fired marks); no id: the prefix."""
        return f"{self.prefix}:sla:plan:{case_id}"

    @property
    def sla_fired(self) -> str:
        """Stream: every fired supervision step, once (the 督办 record, and the notifier's work queue)."""
        return f"{self.prefix}:sla:fired"

    @property
    def hotline_tickets(self) -> str:
        """Hash: 12345 hotline ticket number -> the case it became (imports are idempotent)."""
        return f"{self.prefix}:hotline:tickets"

    def hierarchy(self, part: str) -> str:
        """Hubs above hubs (governance.hierarchy): ``escalated``, ``links``, ``origin``, ``counters``, ``numbers``,
        ``applied`` (hashes), ``held:<dir>|<link>`` (hash), ``lock:...``, ``feeder`` (strings)."""
        return f"{self.prefix}:hier:{part}"

    def uplink(self, uplink_id: str, part: str) -> str:
        """An uplink's delivery state: ``events``, ``due``, ``attempts``, ``done``, ``dead``."""
        return f"{self.prefix}:uplink:{uplink_id}:{part}"

    @property
    def sla_deadlines(self) -> str:
        """Sorted set: case id scored by its next due time (epoch seconds)."""
        return f"{self.prefix}:sla:deadlines"

    # --- access -----------------------------------------------------------------------------
    @property
    def users(self) -> str:
        """Hash: username -> JSON user record (argon2 password hash, role, org unit, flags)."""
        return f"{self.prefix}:users"

    def token(self, token_hash: str) -> str:
        """String with TTL: JSON of the session behind a bearer token (stored hashed)."""
        return f"{self.prefix}:token:{token_hash}"

    def user_tokens(self, username: str) -> str:
        """Hash: token id -> JSON summary (digest, kind, name, expiry) of a user's live sessions and API tokens."""
        return f"{self.prefix}:user-tokens:{username}"

    @property
    def audit(self) -> str:
        """Stream: append-only audit log of operator and integrator actions."""
        return f"{self.prefix}:audit"

    def login_failures(self, username: str) -> str:
        """Counter with TTL for login throttling."""
        return f"{self.prefix}:login-failures:{username}"

    # --- cluster ----------------------------------------------------------------------------
    def node(self, node_id: str) -> str:
        """String with TTL: a live hub node's announcement (JSON: id, started_at, last_seen, weight, load,
        devices); gone when the node stops renewing it."""
        return f"{self.prefix}:node:{node_id}"

    @property
    def nodes(self) -> str:
        """Set: ids of nodes that announced themselves (an id whose ``node`` key expired is dead)."""
        return f"{self.prefix}:nodes"
