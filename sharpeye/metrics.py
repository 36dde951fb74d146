"""Prometheus metrics of one hub (a registry per hub, so tests can run several)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.messages = Counter(
            "sharpeye_messages_total", "Messages received from devices, by kind", ["kind"], registry=r
        )
        self.readings = Counter("sharpeye_readings_total", "Readings decoded, by reading kind", ["kind"], registry=r)
        self.deadletters = Counter(
            "sharpeye_deadletters_total", "Rejected input, by source kind and reason", ["kind", "reason"], registry=r
        )
        self.rate_limited = Counter(
            "sharpeye_rate_limited_total", "Messages dropped by per-device rate limits", ["kind"], registry=r
        )
        self.alarm_transitions = Counter(
            "sharpeye_alarm_transitions_total",
            "Alarm engine outcomes (raised, repeated, cleared, stale...)",
            ["outcome"],
            registry=r,
        )
        self.alarms = Gauge("sharpeye_alarms", "Alarms by state", ["state"], registry=r)
        self.ingest_batch = Histogram(
            "sharpeye_ingest_batch_seconds",
            "Time to decode and apply one batch of MQTT messages",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
            registry=r,
        )
        self.ingest_backlog = Gauge("sharpeye_ingest_backlog", "Messages received but not yet processed", registry=r)
        self.devices = Gauge("sharpeye_devices", "Devices by kind and state", ["kind", "state"], registry=r)
        self.field = Counter(
            "sharpeye_field_requests_total",
            "Field app and resident page requests, by kind (report, claim, feedback, patrol, resident) and outcome",
            ["kind", "outcome"],
            registry=r,
        )
        self.cases = Gauge("sharpeye_cases", "Open cases by stage", ["stage"], registry=r)
        self.queue_depth = Gauge(
            "sharpeye_queue_depth", "Entries waiting in a stream for a consumer group", ["queue"], registry=r
        )
        self.queue_lag = Gauge(
            "sharpeye_queue_lag", "Entries not yet delivered to a consumer group", ["queue"], registry=r
        )
        self.consumer_pending = Gauge(
            "sharpeye_consumer_pending",
            "Messages or entries waiting for a consumer (unacknowledged or not yet delivered)",
            ["consumer"],
            registry=r,
        )
        self.consumer_lag_seconds = Gauge(
            "sharpeye_consumer_lag_seconds",
            "Age of the oldest message waiting for a consumer",
            ["consumer"],
            registry=r,
        )
        self.consumer_stuck = Gauge(
            "sharpeye_consumer_stuck", "1 while a consumer's current batch keeps failing", ["consumer"], registry=r
        )
        self.consumer_progress = Gauge(
            "sharpeye_consumer_last_progress_timestamp_seconds",
            "When a consumer last handled a batch (Unix time)",
            ["consumer"],
            registry=r,
        )
        self.camera_fps = Gauge("sharpeye_camera_fps", "Camera frames per second", ["camera", "stage"], registry=r)
        self.camera_reconnects = Gauge(
            "sharpeye_camera_reconnects", "Camera reconnects since the hub started", ["camera"], registry=r
        )
        self.camera_health = Gauge("sharpeye_camera_health", "Camera health score 0-100", ["camera"], registry=r)
        self.recording = Gauge(
            "sharpeye_recording",
            "Own recording per camera since the hub started: bytes_written, segments, retention_deleted, errors, "
            "dropped (packets the recorder queue could not take), disk_bytes (now on disk)",
            ["camera", "what"],
            registry=r,
        )
        self.sip_registrations = Gauge("sharpeye_sip_registrations", "GB/T 28181 devices registered", registry=r)
        self.requests = Histogram(
            "sharpeye_http_request_seconds", "HTTP request latency", ["method", "route", "status"], registry=r
        )
        self.list_cache = Counter(
            "sharpeye_api_list_cache_total",
            "List calls (GET /api/alarms, /api/verifications) by route and outcome: hit (served from the cache), "
            "shared (waited for the same answer being computed), miss (computed), bypass (not for the cache: "
            "refused, or the cache off)",
            ["route", "outcome"],
            registry=r,
        )
        self.embedded_restarts = Counter(
            "sharpeye_embedded_restarts_total",
            "Embedded services (Redis, MQTT broker) restarted by the hub after they died",
            ["service"],
            registry=r,
        )
        self.component_up = Gauge("sharpeye_component_up", "1 when a component is healthy", ["component"], registry=r)
        self.ownership_changes = Counter(
            "sharpeye_ownership_changes_total",
            "Device and role leases this node gained, lost or released (ingest/ownership.py)",
            ["change"],
            registry=r,
        )
        self.lease_round = Histogram(
            "sharpeye_lease_renewal_seconds",
            "Time of one lease round: announce, plan, claim and renew, release",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=r,
        )
        self.fenced = Counter(
            "sharpeye_fenced_readings_total",
            "Readings refused because this node no longer held the lease of their source",
            ["source"],
            registry=r,
        )
        self.inventory_changes = Counter(
            "sharpeye_inventory_changes_total",
            "Inventory changes made by other nodes and applied here from the change feed (ingest/inventory.py)",
            registry=r,
        )
        self.inventory_version = Gauge(
            "sharpeye_inventory_version", "The last inventory version this node has applied", registry=r
        )
        self.hierarchy = Counter(
            "sharpeye_hierarchy_messages_total",
            "Hub-to-hub messages (governance/hierarchy.py): up/down sent by type, in by outcome (applied_*, "
            "duplicate, held, busy, bad_signature, invalid)",
            ["direction", "outcome"],
            registry=r,
        )
        self.owned = Gauge("sharpeye_owned_units", "Devices and roles this node holds a lease for", registry=r)
